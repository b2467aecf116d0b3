"""Attack: a made-up output over blocks posted in blobs (EIP-4844). The contract cannot read a blob,
so a dispute whose disputed step reads a blob leaf must be decided by opening that leaf on L1 with
KZG (contracts/BlobInput.sol): the liar defends a trace that agrees with L1's up to a transfer read
from the blob and goes wrong right after it; bisection narrows the game to that step, L1 re-executes
it from the honest proof, and the honest challenger wins the bond. A block naming an origin the
blob batch's calldata did not name is skipped by derivation and by L1 alike (rule 5c).
"""

from __future__ import annotations

import asyncio
import dataclasses

from bench.rollup_verify import transfers
from protocol import BatchBlock, batch_leaves, encode_blob_leaves, keccak256, origins_of, to_blobs
from services.l1 import TxSender
from services.rollups._contracts import GameStatus, OutputStatus, Side
from services.rollups._snapshot import Phase
from tests.l1.anvil import Anvil
from tests.rollups._rollup import Rollup


async def post_blobs(r: Rollup, blocks: list[BatchBlock], origins: tuple[tuple[int, bytes], ...] | None = None) -> None:
    assert r.inbox.address is not None
    call = r.inbox.encode_call("appendBlobBatch", list(origins or origins_of(blocks)))
    blobs = to_blobs(encode_blob_leaves(batch_leaves(blocks)))
    tx_hash = await r.batcher.send_blobs(r.inbox.address, call, await r.batcher.sidecar(blobs))
    assert (await r.batcher.wait_receipt(tx_hash, 60)).success


async def test_a_dispute_over_a_blob_leaf_is_won_by_the_honest_side_on_l1(
        chain: Anvil, r: Rollup, rogue: TxSender) -> None:
    head = await r.l1.get_block(await r.l1.block_number() - 1)
    assert head is not None
    txs = tuple(transfers(6))
    await post_blobs(r, [BatchBlock(1, 100, head.number, head.hash, txs[:4])])
    await r.sync()
    derived = r.derived(1)
    assert len(derived.tx_hashes) == 4 and r.chain.inputs.batches[0].blob is not None

    made_up = dataclasses.replace(derived.snapshot, state_root=keccak256(b"made up"))
    index = await r.propose(rogue, made_up, derived.step)
    ((game_id, side, out),) = await r.challenger.check()
    assert side == Side.CHALLENGER and out.index == index
    # The liar's trace: L1's up to the third transfer (a TX leaf of the blob), wrong from there on.
    start = await r.registry.output(out.start_index)
    snapshots = r.chain.traces(out.batch_limit, out.l1_horizon).snapshots(start.l2_block, out.l2_block,
                                                                          out.trace_length)
    claims = [s.commitment() for s in snapshots]
    step = next(i for i, s in enumerate(snapshots) if s.phase == Phase.BATCH and s.item_index == 3 and s.tx_left)
    claims[step + 1 :] = [keccak256(b"a lie" + bytes([i])) for i in range(len(claims) - step - 1)]
    claims[-1] = out.snapshot_hash
    address = await r.registry.game_address(game_id)
    results = await asyncio.gather(r.challenger.play(game_id, Side.CHALLENGER, out),
                                   r.defend(rogue, out, claims, address))
    assert results == [GameStatus.CHALLENGER_WON] * 2
    game = await r.registry.game_state(address)
    assert (game.lo, game.hi) == (step, step + 1)  # L1 executed exactly the step that reads the blob leaf
    assert (await r.registry.output(index)).status == OutputStatus.INVALIDATED
    assert await r.credit(r.challenger.sender) == r.params.proposal_bond


async def test_a_block_whose_origin_the_blob_batch_did_not_name_is_skipped(chain: Anvil, r: Rollup) -> None:
    chain.rpc("anvil_mine", "0x2")
    named = await r.l1.get_block(await r.l1.block_number() - 2)
    other = await r.l1.get_block(await r.l1.block_number() - 1)
    assert named is not None and other is not None
    txs = tuple(transfers(4))
    blocks = [BatchBlock(1, 100, named.number, named.hash, txs[:2]),
              BatchBlock(2, 101, other.number, other.hash, txs[2:])]  # a real L1 block, not named
    await post_blobs(r, blocks, origins=((named.number, named.hash),))
    await r.sync()
    assert r.chain.head.header.number == 1 and r.chain.block(1) is not None
