"""A dispute over hundreds of transactions, played to the one-step proof by the real contracts.

The faulty proposer's trace goes wrong at one transaction in the middle of the range: bisection
must narrow the range to exactly that step in at most ceil(log2 n) rounds, and L1's re-execution
of that one transfer must decide for the challenger.
"""

from __future__ import annotations

import asyncio
import pathlib

from bench.rollup_dispute import play_dispute
from services.rollups._contracts import GameStatus
from services.rollups._snapshot import Phase
from tests.l1.anvil import Anvil

TXS = 300
#: The one-step proof must stay far below an L1 block (30M gas).
GAS_BOUND = 1_000_000


def test_bisection_finds_the_wrong_transaction_in_the_middle(chain: Anvil, tmp_path: pathlib.Path) -> None:
    wrong_from = TXS // 2
    r = asyncio.run(play_dispute(chain.url, TXS, tmp_path, wrong_from))
    assert r.winner == GameStatus.CHALLENGER_WON
    assert r.rounds <= (r.length - 1).bit_length()  # ceil(log2 n)
    # The step proven is the last one both agree on, into the first wrong claim: a transfer.
    assert r.step_position == wrong_from - 1 and r.step_phase == Phase.BATCH
    assert r.step_gas < GAS_BOUND
    print(f"{r.length} steps, {r.rounds} rounds, one-step proof {r.step_gas:,} gas")
