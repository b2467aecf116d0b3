"""Attack (issue 12, item 4): squat the head.

Before: proposals went only on the single head, so one wrong output, disputed, blocked every
honest proposal for a whole chess clock (3.5 days at production settings) for one bond.

Now anyone proposes at any L2 block, each output from the latest finalized one: while the rogue's
wrong output is disputed (and the rogue runs its whole clock down), the real Proposer keeps
proposing and its outputs finalize as soon as their own windows pass; the wrong output then loses
its bond to the real Challenger.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from l2node.node.deploy import RollupParams
from protocol import keccak256
from services.l1 import TxSender
from services.rollups._contracts import GameStatus, OutputStatus, Side
from tests.rollups._rollup import Rollup

#: A window shorter than the clock, so the honest outputs finalize while the game still runs.
PARAMS = RollupParams(challenge_window_s=600, max_clock_s=3600)


@pytest.fixture
def params() -> RollupParams:
    return PARAMS


async def test_a_disputed_wrong_output_holds_up_no_honest_output(r: Rollup, rogue: TxSender) -> None:
    await r.extend(2)
    block2 = r.derived(2)
    wrong = dataclasses.replace(block2.snapshot, state_root=keccak256(b"squat"))
    assert await r.propose(rogue, wrong, block2.step) == 1
    ((game_id, side, out),) = await r.challenger.check()
    assert side == Side.CHALLENGER and out.index == 1
    # The challenger plays on; the rogue never answers, to hold its output disputed for its whole clock.
    game = asyncio.create_task(r.challenger.play(game_id, Side.CHALLENGER, out))

    # Meanwhile the honest proposer proposes, at the very block the rogue claims and beyond.
    assert await r.proposer.propose_once() == 2
    await r.extend(2)
    assert await r.proposer.propose_once() == 3
    await r.pass_time(PARAMS.challenge_window_s + 1)
    assert await r.proposer.finalize_ready() == [2, 3]
    assert await r.registry.latest_finalized() == 3
    state = await r.registry.game_state(await r.registry.game_address(game_id))
    assert state.status == GameStatus.IN_PROGRESS and state.turn == Side.DEFENDER
    # ... and keeps going from the new finalized output.
    await r.extend(1)
    assert await r.proposer.propose_once() == 4
    assert (await r.registry.output(4)).start_index == 3
    assert await r.challenger.check() == []  # nothing else is wrong

    # The rogue's clock runs out: the challenger claims the game and the rogue's bond.
    await r.pass_time(PARAMS.max_clock_s)
    assert await asyncio.wait_for(game, 60) == GameStatus.CHALLENGER_WON
    assert await r.statuses() == [OutputStatus.FINALIZED, OutputStatus.INVALIDATED, OutputStatus.FINALIZED,
                                  OutputStatus.FINALIZED, OutputStatus.PROPOSED]
    assert (await r.credit(r.challenger.sender), await r.credit(rogue)) == (PARAMS.proposal_bond, 0)
    assert await r.credit(r.proposer.sender) == 2 * PARAMS.proposal_bond
