"""Attack (found while closing issue 12's items 3 and 4): play on the start moving under a proposal.

Every output's games start from the latest finalized output at its proposal, which the proposer
does not choose: anyone may finalize an output just before a proposal lands. A proposal computed
against an older start stays right (the trace from the newer start reaches the block sooner and
pads with no-ops), so front-running finalization cannot make an honest output lose; and a lie
proposed from a later start is disproven by the real Challenger replaying from that start.
"""

from __future__ import annotations

import asyncio
import dataclasses

from protocol import keccak256
from services.l1 import TxSender
from services.rollups._contracts import GameStatus, OutputStatus, Side
from tests.rollups._rollup import Rollup


async def test_outputs_are_judged_and_played_from_the_start_the_registry_recorded(
        r: Rollup, rogue: TxSender, accomplice: TxSender) -> None:
    p = r.params
    await r.extend(2)
    assert await r.proposer.propose_once() == 1
    await r.pass_time(p.challenge_window_s + 1)
    assert await r.proposer.finalize_ready() == [1]  # the start moves to block 2
    await r.extend(2)
    block4 = r.derived(4)

    # Stale: computed against the anchor (a trace from block 0), landing after the start moved.
    assert await r.propose(accomplice, block4.snapshot, block4.step) == 2
    stale = await r.registry.output(2)
    assert stale.start_index == 1 and stale.trace_length == block4.step
    # A lie about block 4 from the new start.
    wrong = dataclasses.replace(block4.snapshot, state_root=keccak256(b"from the new start"))
    assert await r.propose(rogue, wrong, block4.step - r.derived(2).step) == 3

    # The challenger finds the stale output right and the lie wrong, judging both from block 2.
    ((game_id, side, lie),) = await r.challenger.check()
    assert (side, lie.index) == (Side.CHALLENGER, 3)
    game = await r.lie_to_the_step(rogue, game_id, lie)
    start = r.derived(2).snapshot.commitment()
    assert (await r.registry.game(game.address).read(r.l1, "startClaim")) == (start,)
    # The stale output, challenged, is defended from block 2 with its padded trace, and wins.
    await r.registry.challenge(rogue, 2)
    stale_game = await r.registry.game_address(1)
    claims = await r.honest_claims(stale)
    assert claims[-1] == stale.snapshot_hash and claims[-1] == claims[-2]  # padded with no-ops
    lies = [claims[0], *(b"\x02" * 32 for _ in claims[1:])]
    results = await asyncio.gather(r.defend(accomplice, stale, claims, stale_game),
                                   r.attack(rogue, stale_game, lies))
    assert results == [GameStatus.DEFENDER_WON] * 2
    assert (await r.statuses())[1:] == [OutputStatus.FINALIZED, OutputStatus.PROPOSED,
                                                   OutputStatus.INVALIDATED]
