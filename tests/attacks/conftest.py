"""The attacks' rollup: the real contracts on the session's anvil (reverted after each test), the
honest Proposer and Challenger, and the attackers' L1 senders (tests/rollups/_rollup.py)."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest

from bench.rollup_dispute import PARAMS
from l2node.node.deploy import RollupParams
from services.l1 import TxSender
from tests.l1.anvil import Anvil
from tests.rollups._rollup import ACCOMPLICE, ROGUE, Rollup, rollup, sender


@pytest.fixture
def params() -> RollupParams:
    """The deployment's parameters (a test module may override this fixture)."""
    return PARAMS


@pytest.fixture
async def r(chain: Anvil, tmp_path: pathlib.Path, params: RollupParams) -> AsyncIterator[Rollup]:
    honest = await rollup(chain.url, tmp_path, params)
    async with honest.l1:
        yield honest


@pytest.fixture
async def rogue(r: Rollup) -> TxSender:
    return await sender(r.l1, ROGUE)


@pytest.fixture
async def accomplice(r: Rollup) -> TxSender:
    return await sender(r.l1, ACCOMPLICE)
