"""Outputs over the blocks derivation makes itself once the sequencer's window lapses (rule F).

The sequencer goes silent after a deposit and a forced transaction are queued on L1: derivation
puts both on L2 in a block it makes itself, and an honest output over the derived blocks (its
state holding both) is judged right and finalizes. A liar who claims those same
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
from protocol import DERIVED_ORIGIN_HASH, DEV_PRIVATE_KEYS, Deposit, keccak256
from services.l1 import TxSender, UnsignedTransaction, sign_transaction
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
    # The sequencer goes silent; an L1 user deposits and forces a transfer in (from a dev account
    # the posted blocks did not use).
    depositee, payee = keccak256(b"depositee")[:20], keccak256(b"payee")[:20]
    assert r.portal.address is not None and r.inbox.address is not None
    sent = await rogue.send(r.portal.address, r.portal.encode_call("depositTransaction", depositee), 10**18)
    (log,) = (await rogue.wait_receipt(sent, 10)).logs
    forced = sign_transaction(UnsignedTransaction(r.params.chain_id, 0, 10**9, 10**10, 21_000, payee, 5),
                              DEV_PRIVATE_KEYS[9])
    await rogue.wait_receipt(await rogue.send(r.inbox.address, r.inbox.encode_call("forceInclude", forced)), 10)
    chain.rpc("anvil_mine", hex(3 * WINDOW))
    await r.sync()
    head = r.chain.head
    assert head.header.number > 2 and head.header.l1_origin_hash == DERIVED_ORIGIN_HASH
    deposit = Deposit(log.data[64:96], depositee, 10**18)
    # Each in the derived block of its L1 block's origin (they were mined one L1 block apart).
    holding = [b for b in r.chain.deriver.blocks if {deposit.hash(), keccak256(forced)} & set(b.tx_hashes)]
    assert [b.tx_hashes for b in holding] == [(deposit.hash(),), (keccak256(forced),)]
    assert all(b.header.l1_origin_hash == DERIVED_ORIGIN_HASH for b in holding)
    state = r.chain.deriver.state
    assert (state.get(depositee).balance, state.get(payee).balance) == (10**18, 5)

    # The honest proposer proposes the derived head; the honest challenger finds it right.
    honest = await r.proposer.propose_once()
    assert honest is not None
    assert (await r.registry.output(honest)).output_root == head.snapshot.output_root()  # holds both
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
