"""A dispute over a step in a batch posted in frames (BatchInbox.appendFrame): the inbox stores the
same entry as for one transaction, so the one-step proof opens its leaves as any other's and the
honest challenger wins, at the transaction where the faulty trace goes wrong."""

from __future__ import annotations

import asyncio
import pathlib

from bench.rollup_dispute import play_dispute
from services.rollups._contracts import GameStatus
from services.rollups._snapshot import Phase
from tests.l1.anvil import Anvil

TXS = 90


def test_the_honest_side_wins_a_dispute_over_a_framed_batch(chain: Anvil, tmp_path: pathlib.Path) -> None:
    wrong_from = 2 * TXS // 3  # a transaction in the batch's last frame
    r = asyncio.run(play_dispute(chain.url, TXS, tmp_path, wrong_from, frames=3))
    assert r.winner == GameStatus.CHALLENGER_WON
    assert r.step_position == wrong_from - 1 and r.step_phase == Phase.BATCH
