"""The one reader of L1 inputs, for a batch posted in frames (``appendFrame``, protocol._frames) on
a real anvil: read back as one batch (the same leaves, data and root as the same leaves in one
``appendBatch``), whatever else lands between its frames; a channel never closed is no batch and
holds nothing up; followed through a reorg of its closing frame; frames whose calldata an L1
client misreports are raised, never skipped."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from protocol import (
    BatchBlock,
    BatchDataError,
    PostedBatch,
    batch_leaves,
    encode_batch,
    input_root,
    split_frames,
)
from services.l1 import L1Client, Receipt, Transaction
from tests.l1.anvil import Anvil
from tests.protocol.test_l1_inputs import (
    ALICE,
    BATCHER,
    FOLLOW,
    L1,
    OtherCalldata,
    deploy,
    l2_transaction,
    until,
)


@pytest.fixture
async def l1(chain: Anvil) -> AsyncIterator[L1]:
    async with L1Client(chain.url) as client:
        yield L1(chain, client, *await deploy(client, BATCHER.address))


def blocks(l1: L1, first: int, count: int) -> list[BatchBlock]:
    origin = bytes.fromhex(l1.chain.rpc("eth_getBlockByNumber", hex(l1.deployed_at), False)["hash"][2:])
    return [BatchBlock(n, 1000 + n, l1.deployed_at, origin, tuple(l2_transaction(100 * n + i) for i in range(3)))
            for n in range(first, first + count)]


def three_frames(bs: list[BatchBlock]) -> tuple[bytes, ...]:
    data = encode_batch(bs)
    frames = split_frames(batch_leaves(bs), len(data) // 3 + 200)
    assert len(frames) == 3
    return frames


async def post_frames(l1: L1, frames: tuple[bytes, ...], *, close: bool = True) -> list[Receipt]:
    return [await l1.receipt(await l1.send(BATCHER, l1.inbox, "appendFrame", f, i, close and i == len(frames) - 1))
            for i, f in enumerate(frames)]


def framed(index: int, receipts: list[Receipt], bs: list[BatchBlock]) -> PostedBatch:
    leaves = tuple(batch_leaves(bs))
    last = receipts[-1]
    return PostedBatch(index, last.block_number, last.block_hash, last.tx_hash, input_root(leaves),
                       encode_batch(bs), leaves, tuple(r.tx_hash for r in receipts[:-1]))


async def test_a_batch_in_three_frames_reads_as_the_same_batch_in_one_transaction(l1: L1) -> None:
    bs = blocks(l1, 1, 4)
    frames = three_frames(bs)
    receipts = await post_frames(l1, frames[:1], close=False)
    # Other inputs between its frames: a forced transaction and a plain batch (which takes index 0).
    await l1.receipt(await l1.send(ALICE, l1.inbox, "forceInclude", l2_transaction(7)))
    plain = await l1.post(0, 9)
    receipts += [await l1.receipt(await l1.send(BATCHER, l1.inbox, "appendFrame", frames[1], 1, False)),
                 await l1.receipt(await l1.send(BATCHER, l1.inbox, "appendFrame", frames[2], 2, True))]
    one = await l1.receipt(await l1.send(BATCHER, l1.inbox, "appendBatch", encode_batch(bs)))
    items = await l1.reader().read(l1.deployed_at, one.block_number)
    batches = [x for x in items if isinstance(x, PostedBatch)]
    assert batches[0] == plain
    assert batches[1] == framed(1, receipts, bs)
    # The same leaves, data and root as the one-transaction batch of the same blocks.
    assert (batches[1].leaves, batches[1].data, batches[1].input_root) == (
        batches[2].leaves, batches[2].data, batches[2].input_root)
    assert batches[2].l1_tx_hash == one.tx_hash and batches[2].earlier_frames == ()


async def test_a_channel_never_closed_is_no_batch_and_holds_nothing_up(l1: L1) -> None:
    frames = three_frames(blocks(l1, 1, 4))
    await post_frames(l1, frames[:2], close=False)
    after = await l1.post(0, 5)  # the next batch: index 0, read at once
    assert [x for x in await l1.reader().read(l1.deployed_at, after.l1_block) if isinstance(x, PostedBatch)] == [
        after]


async def test_following_a_framed_batch_through_a_reorg_of_a_frame(l1: L1) -> None:
    """A frame reorged out takes the frames after it (the close included) with it: the batch is
    removed, the channel is back to its first frame, and the channel posted again is read."""
    bs = blocks(l1, 1, 4)
    frames = three_frames(bs)
    async with contextlib.aclosing(l1.reader().follow(l1.deployed_at, FOLLOW)) as stream:
        first = await post_frames(l1, frames[:1], close=False)
        snapshot = l1.chain.rpc("evm_snapshot")
        doomed = [*first, await l1.receipt(await l1.send(BATCHER, l1.inbox, "appendFrame", frames[1], 1, False)),
                  await l1.receipt(await l1.send(BATCHER, l1.inbox, "appendFrame", frames[2], 2, True))]
        updates = await until(stream, lambda u: bool(u.added))
        assert [b for u in updates for b in u.added] == [framed(0, doomed, bs)]
        assert l1.chain.rpc("evm_revert", snapshot)  # frames 1 and 2 are gone; the channel holds frame 0
        assert (await l1.inbox.read(l1.client, "openChannel"))[1] == 1
        await l1.senders[BATCHER.address].resync_nonce()
        l1.chain.rpc("evm_mine")  # a new block at that height: the follower sees the reorg
        (update,) = await until(stream, lambda u: bool(u.removed))
        assert update.removed == (doomed[-1].tx_hash,) and update.added == ()
        again = await post_frames(l1, frames)  # the batcher posts the channel again, from frame 0
        updates = await until(stream, lambda u: bool(u.added))
        assert [b for u in updates for b in u.added] == [framed(0, again, bs)]


class OneFrameWrong(OtherCalldata):
    """The real client, except that one transaction's input comes back with a byte flipped."""

    def __init__(self, url: str, target: bytes) -> None:
        super().__init__(url, lambda data: data[:-40] + bytes([data[-40] ^ 1]) + data[-39:])
        self._target = target

    async def get_transaction(self, tx_hash: bytes) -> Transaction | None:
        if tx_hash == self._target:
            return await super().get_transaction(tx_hash)
        return await L1Client.get_transaction(self, tx_hash)


@pytest.mark.parametrize("frame", [0, 1, 2])
async def test_a_frame_whose_calldata_is_misreported_is_raised_not_skipped(l1: L1, frame: int) -> None:
    bs = blocks(l1, 1, 4)
    receipts = await post_frames(l1, three_frames(bs))
    async with OneFrameWrong(l1.chain.url, receipts[frame].tx_hash) as client:
        with pytest.raises(BatchDataError, match=f"frame {frame} of channel 1"):
            await l1.reader(client).read(l1.deployed_at, receipts[-1].block_number)
    assert await l1.reader().read(l1.deployed_at, receipts[-1].block_number) == [framed(0, receipts, bs)]
