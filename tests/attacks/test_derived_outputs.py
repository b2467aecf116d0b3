"""Outputs over the blocks derivation makes itself once the sequencer's window lapses (rule F).

An honest output over derived blocks is judged right and finalizes. A liar who claims those same
blocks at an L1 horizon where the window had not lapsed yet (so L1, as the output reads it, does
not make them) is judged wrong and loses its bond: the dispute comes down to the one step where
rule F fires on the liar's view and not on the output's, and the StepVerifier decides it with the
horizon the registry recorded for the output.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from bench.rollup_dispute import PARAMS
from l2node.node.deploy import RollupParams
from protocol import DERIVED_ORIGIN_HASH
from services.l1 import TxSender
from services.rollups._contracts import GameStatus, OutputStatus, Side
from tests.l1.anvil import Anvil
from tests.rollups._rollup import Rollup

WINDOW = 6


@pytest.fixture
def params() -> RollupParams:
    return dataclasses.replace(PARAMS, sequencer_window=WINDOW)


async def test_outputs_over_derived_blocks_are_judged_by_their_horizon(chain: Anvil, r: Rollup,
                                                                       rogue: TxSender) -> None:
    await r.extend(2)
    posted_at = r.chain.horizon  # L1 read this far when block 2 came: its origin's window is open
    chain.rpc("anvil_mine", hex(3 * WINDOW))  # the sequencer goes silent
    await r.sync()
    head = r.chain.head
    assert head.header.number > 2 and head.header.l1_origin_hash == DERIVED_ORIGIN_HASH

    # The honest proposer proposes the derived head; the honest challenger finds it right.
    honest = await r.proposer.propose_once()
    assert honest is not None
    assert await r.challenger.check() == []

    # The liar claims the same block at the horizon block 2 was posted at, where L1 makes none.
    liar = await r.registry.output_count()
    await r.registry.propose(rogue, head.snapshot, head.step, r.chain.batch_count, posted_at)
    ((game_id, side, out),) = await r.challenger.check()
    assert (side, out.index, out.l1_horizon) == (Side.CHALLENGER, liar, posted_at)
    # It defends with the trace of the later horizon: it agrees up to block 2's seal, then claims
    # the derived block's start, which the output's own horizon does not give.
    start = await r.registry.output(out.start_index)
    later = r.chain.traces(out.batch_limit, r.chain.horizon)
    claims = [s.commitment() for s in await asyncio.to_thread(later.snapshots, start.l2_block, out.l2_block,
                                                              out.trace_length)]
    address = await r.registry.game_address(game_id)
    results = await asyncio.gather(r.challenger.play(game_id, Side.CHALLENGER, out),
                                   r.defend(rogue, out, claims, address))
    assert results == [GameStatus.CHALLENGER_WON] * 2
    game = await r.registry.game_state(address)
    # The step they disagree on: after block 2's seal and the move past its batch (rule 3), the
    # first IDLE step with no batch left to read: rule F on the later horizon, a no-op on the output's.
    assert game.lo == r.derived(2).step + 1 and game.hi == game.lo + 1

    assert (await r.registry.output(liar)).status == OutputStatus.INVALIDATED
    assert await r.credit(r.challenger.sender) == r.params.proposal_bond
    await r.pass_time(r.params.challenge_window_s + 1)
    assert await r.proposer.finalize_ready() == [honest]
