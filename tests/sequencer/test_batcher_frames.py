"""The batcher posting a block too large for one L1 transaction in frames (``appendFrame``), on a
real anvil: the frames go at consecutive nonces, derivation reads them back as the block's batch
(the same chain as the sequencer's, and the same input root as one ``appendBatch`` of the same
leaves), the sequencer's own follower records the block posted; and a frame reorged out is posted
again, from the batch's first frame on a fresh channel; a frame not mined gives up the whole channel."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from l2node.node.deploy import DEVNET_BATCHER_KEY, Addresses
from protocol import (
    BatchBlock,
    L1InputReader,
    PostedBatch,
    batch_leaves,
    devnet_genesis,
    encode_batch,
    split_frames,
)
from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender
from services.rollups._derivation import Deriver, read_l1
from services.sequencer._batcher import Batcher, BatcherSettings
from tests.conftest import running
from tests.l1.anvil import Anvil
from tests.sequencer.test_batches_in_flight import pool, posting, until
from tests.sequencer.test_chain import Sequencer

#: The pool holds at most 16 transactions of one sender: a block of them is ~2 KB of batch data ...
TXS = 16
#: ... which goes in three frames of at most this.
FRAME = 750
SETTINGS = BatcherSettings(interval_s=3600, max_bytes=100_000, max_in_flight=8, max_frame_bytes=FRAME)


def inbox_of(deployed: Addresses) -> tuple[Contract, Contract]:
    return (Contract(Artifact.load("BatchInbox"), deployed.batch_inbox),
            Contract(Artifact.load("DepositPortal"), deployed.deposit_portal))


def sealed(sequencer: Sequencer, number: int) -> BatchBlock:
    block = sequencer.chain.block(number)
    assert block is not None
    h = block.header
    return BatchBlock(h.number, h.timestamp, h.l1_origin_number, h.l1_origin_hash,
                      tuple(sequencer.store.block_batch_txs(number)))


async def batches(anvil: Anvil, deployed: Addresses) -> list[PostedBatch]:
    async with L1Client(anvil.url) as client:
        items = await L1InputReader(client, *inbox_of(deployed)).read(deployed.block_number,
                                                                      await client.block_number())
    return [x for x in items if isinstance(x, PostedBatch)]


async def test_a_block_in_three_frames_derives_the_sequencers_chain(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path) -> None:
    async with posting(sequencer, anvil, tmp_path, blocks=1, max_in_flight=8, txs=TXS, settings=SETTINGS) as (
            batcher, deployed, _):
        block = sealed(sequencer, 1)
        assert len(block.transactions) == TXS and len(split_frames(batch_leaves([block]), FRAME)) == 3
        closing = await batcher.post_once()
        assert closing is not None and batcher.in_flight == 3  # each frame counts
        in_pool = pool(anvil)
        assert sorted(in_pool) == list(range(min(in_pool), min(in_pool) + 3))  # consecutive nonces
        assert in_pool[max(in_pool)] == "0x" + closing.hex()
        anvil.rpc("anvil_mine", 1)
        await until(lambda: batcher.in_flight == 0)
        async with running(batcher.run_follower()):
            await until(lambda: sequencer.store.posted_upto() == 1)  # the follower read the framed batch

        # The same leaves again, in one appendBatch: the same input root.
        sender = await TxSender.create(batcher._l1, LocalSigner(DEVNET_BATCHER_KEY))
        inbox, _ = inbox_of(deployed)
        anvil.rpc("evm_setAutomine", True)
        whole_tx = await sender.send(deployed.batch_inbox, inbox.encode_call("appendBatch", encode_batch([block])))
        # Accepted is not mined: automine mines it just after (a loaded CI run read L1 before that).
        assert (await sender.wait_receipt(whole_tx, 30)).success
    framed, whole = await batches(anvil, deployed)
    assert len(framed.earlier_frames) == 2 and whole.earlier_frames == ()
    assert framed.leaves == whole.leaves == tuple(batch_leaves([block]))
    assert framed.input_root == whole.input_root and framed.data == whole.data

    deriver = Deriver(devnet_genesis())
    async with L1Client(anvil.url) as client:
        await read_l1(L1InputReader(client, *inbox_of(deployed)), deriver.inputs, deployed.block_number,
                      await client.block_number())
    deriver.advance()
    ours = sequencer.chain.block(1)
    assert ours is not None and deriver.head.header.number == 1 and deriver.head.hash == ours.hash
    assert len(deriver.head.tx_hashes) == TXS


@pytest.mark.parametrize("lost", [1, 2])
async def test_a_frame_reorged_out_is_posted_again_on_a_fresh_channel(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path, lost: int) -> None:
    """Frames land in separate L1 blocks; a reorg takes frame ``lost`` (and the close with it). The
    channel left open on L1 holds frames the batch never completes: the follower sees the batch
    removed, and the poster posts the block again from frame 0 (which abandons that channel)."""
    async with posting(sequencer, anvil, tmp_path, blocks=1, max_in_flight=8, txs=TXS, settings=SETTINGS) as (
            batcher, deployed, _):
        anvil.rpc("evm_setAutomine", True)  # a block per frame
        async with running(batcher.run_follower()):
            closing = await batcher.post_once()
            assert closing is not None
            await until(lambda: sequencer.store.posted_upto() == 1 and batcher.in_flight == 0)
            (first,) = await batches(anvil, deployed)
            frames = [*first.earlier_frames, first.l1_tx_hash]
            assert len(frames) == 3
            # The reorg: L1 back to before frame ``lost``'s block, its transactions not mined again.
            block_of = int(anvil.rpc("eth_getTransactionReceipt", "0x" + frames[lost].hex())["blockNumber"], 16)
            anvil.rpc("anvil_reorg", int(anvil.rpc("eth_blockNumber"), 16) - block_of + 1, [])
            assert await batches(anvil, deployed) == []  # the close is gone with the frame
            inbox, _ = inbox_of(deployed)
            assert (await inbox.read(batcher._l1, "openChannel"))[:2] == (1, lost)  # frames before it stand
            await until(lambda: sequencer.store.posted_upto() == 0)  # the follower saw the batch removed
            again_hash = await batcher.post_once()
            assert again_hash is not None
            await until(lambda: sequencer.store.posted_upto() == 1 and batcher.in_flight == 0)
            assert (await inbox.read(batcher._l1, "openChannel"))[:2] == (2, 0)  # a fresh channel, closed
        (again,) = await batches(anvil, deployed)
    assert again.leaves == first.leaves and again.input_root == first.input_root
    assert len(again.earlier_frames) == 2 and again.l1_tx_hash != first.l1_tx_hash


async def test_a_restarted_batcher_takes_back_a_channel_whose_frames_are_all_in_the_pool(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path) -> None:
    """After a restart, the pool's frames of a channel are one flight again: watched, not posted twice."""
    async with posting(sequencer, anvil, tmp_path, blocks=1, max_in_flight=8, txs=TXS, settings=SETTINGS) as (
            batcher, deployed, _):
        assert await batcher.post_once() is not None and len(pool(anvil)) == 3
        sender = await TxSender.create(batcher._l1, LocalSigner(DEVNET_BATCHER_KEY))
        restarted = Batcher(sequencer.store, sequencer.chain, batcher._l1, sender, batcher._inbox, batcher._portal,
                            SETTINGS, batcher._follower_config, deployed.block_number, window=3600)
        try:
            await restarted.recover()
            assert restarted.in_flight == 3
            assert await restarted.post_once() is None  # block 1 is in flight: nothing more to post
            anvil.rpc("anvil_mine", 1)
            await until(lambda: restarted.in_flight == 0)
        finally:
            for task in list(restarted._watchers):
                task.cancel()
        (batch,) = await batches(anvil, deployed)
    assert len(batch.earlier_frames) == 2 and batch.leaves == tuple(batch_leaves([sealed(sequencer, 1)]))


async def test_a_frame_not_mined_gives_up_the_frames_behind_it(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path) -> None:
    """L1 mines nothing: frame 0 is not mined within the receipt timeout, so the batch goes again on a
    fresh channel, and the sender tracks no frame of the failed one any more (those behind frame 0
    were never waited for: they stayed in its pending list until a restart, ahead of the new ones)."""
    settings = dataclasses.replace(SETTINGS, receipt_timeout_s=1.0)
    async with posting(sequencer, anvil, tmp_path, blocks=1, max_in_flight=8, txs=TXS, settings=settings) as (
            batcher, deployed, _):
        sender = batcher._poster
        assert await batcher.post_once() is not None and len(sender.pending()) == 3
        failed = pool(anvil)
        await until(lambda: batcher.in_flight == 0)  # the watcher gave the batch up
        assert sender.pending() == ()
        batcher._settings = dataclasses.replace(settings, receipt_timeout_s=120)  # the next waits for L1
        assert await batcher.post_once() is not None  # block 1 again, behind the failed channel's frames
        again = {p.nonce: "0x" + p.hashes[0].hex() for p in sender.pending()}
        assert sorted(again) == [max(failed) + 1, max(failed) + 2, max(failed) + 3] and pool(anvil) == failed | again
        anvil.rpc("anvil_mine", 1)
        await until(lambda: batcher.in_flight == 0)
        assert sender.pending() == ()
    first, second = await batches(anvil, deployed)  # the failed channel landed after all, then the fresh one
    assert first.leaves == second.leaves == tuple(batch_leaves([sealed(sequencer, 1)]))
