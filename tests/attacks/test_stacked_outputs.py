"""Attack (issue 12, item 8): stack wrong outputs for the price of one bond.

Before: outputs built on a wrong output were refunded when it fell, and so was an orphan after
its own game proved it wrong: a rogue could stack lies and lose one bond.

Now nothing is built on a pending output and a challenger win pays that output's bond only: every
wrong output is judged on its own by the real Challenger, challenged, and loses its own bond, with
no refund to anyone. Three lies: a wrong state root, a lie continued on top of it, and the right
snapshot with a trace too short to reach it (the claim at position traceLength is not the trace's).
"""

from __future__ import annotations

import asyncio
import dataclasses

from protocol import keccak256
from services.l1 import TxSender
from services.rollups._contracts import GameStatus, OutputStatus, Side
from tests.rollups._rollup import Rollup


async def test_every_wrong_output_loses_its_own_bond(r: Rollup, rogue: TxSender) -> None:
    p = r.params
    await r.extend(4)
    block2, block4 = r.derived(2), r.derived(4)
    lie = dataclasses.replace(block2.snapshot, state_root=keccak256(b"lie"))
    on_lie = dataclasses.replace(block4.snapshot, state_root=keccak256(b"built on the lie" + lie.state_root))
    lies = [(lie, block2.step), (on_lie, block4.step), (block4.snapshot, 1)]
    assert [await r.propose(rogue, s, length) for s, length in lies] == [1, 2, 3]
    assert await r.proposer.propose_once() == 4  # the honest output beside them

    games = await r.challenger.check()
    assert [(out.index, side) for _, side, out in games] == [(i, Side.CHALLENGER) for i in (1, 2, 3)]
    assert r.challenger.challenged == [1, 2, 3]
    # The rogue defends its first lie to the one-step proof (honest claims but the last), and
    # abandons the others.
    (first, _, out1), *rest = games
    assert (await r.lie_to_the_step(rogue, first, out1)).hi == out1.trace_length
    (second, _, out2), (third, _, out3) = rest
    # A trace of one step starts at the step, the challenger's move: L1's step from the start
    # is not the claim.
    assert await r.challenger.play(third, Side.CHALLENGER, out3) == GameStatus.CHALLENGER_WON
    abandoned = asyncio.create_task(r.challenger.play(second, Side.CHALLENGER, out2))
    await r.pass_time(p.max_clock_s + 1)
    assert await asyncio.wait_for(abandoned, 60) == GameStatus.CHALLENGER_WON

    assert await r.statuses() == [OutputStatus.FINALIZED, *[OutputStatus.INVALIDATED] * 3, OutputStatus.PROPOSED]
    # Each lie paid its own bond to the challenger; nothing was refunded to the rogue.
    assert (await r.credit(r.challenger.sender), await r.credit(rogue)) == (3 * p.proposal_bond, 0)
    assert [await r.registry.games_of(i) for i in (1, 2, 3)] == [[0], [1], [2]]
    # The honest output is untouched and finalizes.
    assert await r.proposer.finalize_ready() == [4]
    assert await r.credit(r.proposer.sender) == p.proposal_bond
