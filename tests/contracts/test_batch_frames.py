"""BatchInbox.appendFrame on a real anvil: a batch (a channel) whose leaves arrive in several L1
transactions. The closing frame stores the same entry ``appendBatch`` stores for the same leaves
(root and all), whatever the cut; each frame is refused as ``appendBatch`` refuses a batch; the
frame rules (numbering, abandoning, interleaving with ``appendBatch``) and a reorg of a frame."""

from __future__ import annotations

import random
from typing import Any

import pytest

from protocol import Leaf, TxLeaf, batch_leaves, decode_batch, encode_leaves, frames_hash, input_root, split_frames
from services.l1 import Contract, L1Client, Receipt, keccak
from tests.contracts.test_batch_inbox import (
    ALICE,
    ARTIFACT,
    BATCHER,
    REFUSED,
    Framings,
    blocks_on,
    deploy,
    origin,
    revert_of,
    transact,
)
from tests.l1.anvil import Anvil


@pytest.fixture
async def inbox(l1: L1Client) -> Contract:
    return await deploy(l1, ARTIFACT, BATCHER.address)


async def post_frames(l1: L1Client, inbox: Contract, frames: tuple[bytes, ...]) -> list[Receipt]:
    receipts = []
    for i, frame in enumerate(frames):
        receipt = await transact(l1, BATCHER, inbox, "appendFrame", frame, i, i == len(frames) - 1)
        assert receipt.success
        receipts.append(receipt)
    return receipts


def events(inbox: Contract, receipt: Receipt) -> dict[str, dict[str, Any]]:
    found = [inbox.decode_log(log) for log in receipt.logs]
    return {e.name: e.args for e in found if e is not None}


def cut(leaves: list[Leaf], parts: int) -> tuple[bytes, ...]:
    """The leaves in ``parts`` frames of about equal size (the batcher's cut, ``split_frames``)."""
    size = len(encode_leaves(leaves))
    frames = split_frames(leaves, -(-size // parts) + max(len(leaf.encode()) for leaf in leaves) + 3)
    assert len(frames) == parts and b"".join(f[1:] for f in frames) == encode_leaves(leaves)[1:]
    return frames


async def test_three_frames_store_what_one_append_batch_stores(l1: L1Client, inbox: Contract) -> None:
    blocks = await blocks_on(l1, 1, 6, txs=5)  # 36 leaves: the frontier crosses levels 0-2
    leaves = batch_leaves(blocks)
    frames = cut(leaves, 3)
    receipts = await post_frames(l1, inbox, frames)
    closing = events(inbox, receipts[-1])
    one = await transact(l1, BATCHER, inbox, "appendBatch", encode_leaves(leaves))
    (root_one, _) = await inbox.read(l1, "batch", 1)
    assert closing["BatchAppended"] == {"index": 0, "dataHash": frames_hash(frames), "inputRoot": root_one,
                                        "l1Block": receipts[-1].block_number}
    assert root_one == input_root(leaves) and one.success
    assert await inbox.read(l1, "batch", 0) == (root_one, receipts[-1].block_number)
    # Each frame logged its channel, number, hash and the channel's first block.
    for i, (frame, receipt) in enumerate(zip(frames, receipts, strict=True)):
        assert events(inbox, receipt)["FrameAppended"] == {
            "channel": 1, "frame": i, "frameHash": keccak(frame), "openedBlock": receipts[0].block_number}
    assert (await inbox.read(l1, "openChannel"))[1] == 0  # closed


@pytest.mark.parametrize("seed", range(3))
async def test_the_frontier_root_is_the_tree_root_for_any_cut(l1: L1Client, inbox: Contract, seed: int) -> None:
    """Random leaf counts (around powers of 4) cut at random points: the root is the one-batch root."""
    rng = random.Random(seed)
    framings = Framings(rng, await origin(l1))
    for count in (1, 3, 4, 5, 15, 16, 17, rng.randrange(60, 300)):
        leaves = [framings.leaf() for _ in range(count)]
        points = sorted(rng.sample(range(1, count), min(count - 1, rng.randrange(0, 4))))
        groups = [leaves[a:b] for a, b in zip([0, *points], [*points, count], strict=True)]
        frames = tuple(encode_leaves(g) for g in groups)
        receipts = await post_frames(l1, inbox, frames)
        assert events(inbox, receipts[-1])["BatchAppended"]["inputRoot"] == input_root(leaves), (count, points)


async def test_gas_per_frame_is_the_calldata_and_a_few_frontier_slots(l1: L1Client, inbox: Contract) -> None:
    """The frontier costs a few slots a frame (at most 3 a level, rewritten, not created, after the
    first channel); no bound is asserted on time, only on gas, which is deterministic."""
    for _ in range(2):  # the second channel rewrites slots the first created
        blocks = await blocks_on(l1, 1, 4, txs=60)
        leaves = batch_leaves(blocks)
        frames = cut(leaves, 3)
        receipts = await post_frames(l1, inbox, frames)
    one = await transact(l1, BATCHER, inbox, "appendBatch", encode_leaves(leaves))
    framed = sum(r.gas_used for r in receipts)
    # Three transactions' base cost and two more frontier writes, beside the same calldata.
    assert framed - one.gas_used < 2 * 21_000 + 2 * 60_000, (framed, one.gas_used)


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "name", "args"), REFUSED)
async def test_a_malformed_frame_is_refused_as_append_batch_refuses_it(
        l1: L1Client, inbox: Contract, data: bytes, name: str, args: tuple[int, ...]) -> None:
    for frame_index, last in ((0, False), (0, True)):
        error = await revert_of(l1, inbox, BATCHER, "appendFrame", data, frame_index, last)
        assert (error.name, error.args) == (name, args)


async def test_only_the_batcher_may_append_frames(l1: L1Client, inbox: Contract) -> None:
    frame = encode_leaves([TxLeaf(b"\x02tx")])
    error = await revert_of(l1, inbox, ALICE, "appendFrame", frame, 0, True)
    assert (error.name, error.args) == ("NotBatcher", (ALICE.address,))
    receipt = await transact(l1, ALICE, inbox, "appendFrame", frame, 0, True, gas=300_000)
    assert not receipt.success and await inbox.read(l1, "batchCount") == (0,)


async def test_frames_must_come_in_order_in_an_open_channel(l1: L1Client, inbox: Contract) -> None:
    frame = encode_leaves([TxLeaf(b"\x02tx")])
    # No channel open: only frame 0 may come, even to close (an empty channel cannot be closed:
    # a frame has at least one leaf, and a close is a frame).
    error = await revert_of(l1, inbox, BATCHER, "appendFrame", frame, 1, True)
    assert (error.name, error.args) == ("NoOpenChannel", (1,))
    error = await revert_of(l1, inbox, BATCHER, "appendFrame", b"\x01", 0, True)
    assert (error.name, error.args) == ("NoLeaves", ())
    await transact(l1, BATCHER, inbox, "appendFrame", frame, 0, False)
    for wrong in (2, 5):
        error = await revert_of(l1, inbox, BATCHER, "appendFrame", frame, wrong, True)
        assert (error.name, error.args) == ("FrameOutOfOrder", (1, 1, wrong))
    assert (await transact(l1, BATCHER, inbox, "appendFrame", frame, 1, True)).success
    error = await revert_of(l1, inbox, BATCHER, "appendFrame", frame, 2, True)  # closed: nothing open
    assert (error.name, error.args) == ("NoOpenChannel", (2,))
    assert await inbox.read(l1, "batchCount") == (1,)


async def test_a_new_frame_zero_abandons_the_open_channel(l1: L1Client, inbox: Contract) -> None:
    """A batcher that restarted mid-channel starts over: the abandoned frames are never a batch."""
    old, new = [TxLeaf(b"\x02old")], [TxLeaf(b"\x02new1"), TxLeaf(b"\x02new2")]
    await transact(l1, BATCHER, inbox, "appendFrame", encode_leaves(old), 0, False)
    receipt = await transact(l1, BATCHER, inbox, "appendFrame", encode_leaves(new[:1]), 0, False)
    assert events(inbox, receipt)["ChannelAbandoned"] == {"channel": 1, "frames": 1}
    receipt = await transact(l1, BATCHER, inbox, "appendFrame", encode_leaves(new[1:]), 1, True)
    assert events(inbox, receipt)["BatchAppended"]["inputRoot"] == input_root(new)
    assert events(inbox, receipt)["FrameAppended"]["channel"] == 2


async def test_append_batch_while_a_channel_is_open_takes_the_index_before_it(l1: L1Client, inbox: Contract
                                                                              ) -> None:
    """A channel is a staging area: its batch takes an index when it closes."""
    framed, plain = [TxLeaf(b"\x02a"), TxLeaf(b"\x02b")], [TxLeaf(b"\x02c")]
    await transact(l1, BATCHER, inbox, "appendFrame", encode_leaves(framed[:1]), 0, False)
    receipt = await transact(l1, BATCHER, inbox, "appendBatch", encode_leaves(plain))
    assert events(inbox, receipt)["BatchAppended"]["index"] == 0
    receipt = await transact(l1, BATCHER, inbox, "appendFrame", encode_leaves(framed[1:]), 1, True)
    assert events(inbox, receipt)["BatchAppended"]["index"] == 1
    assert await inbox.read(l1, "batch", 1) == (input_root(framed), receipt.block_number)


async def test_a_frame_reorged_out_is_gone_with_its_channel_state(l1: L1Client, chain: Anvil,
                                                                  inbox: Contract) -> None:
    """The channel lives in the contract's storage, so an L1 reorg takes a frame back with it: the
    frame after it is then refused (out of order), and the batcher posts the channel again."""
    leaves = [TxLeaf(bytes([2, i])) for i in range(9)]
    frames = cut(leaves, 3)
    counts = [len(decode_batch(f)) for f in frames]
    await transact(l1, BATCHER, inbox, "appendFrame", frames[0], 0, False)
    snapshot = chain.rpc("evm_snapshot")
    await transact(l1, BATCHER, inbox, "appendFrame", frames[1], 1, False)
    assert (await inbox.read(l1, "openChannel"))[1:3] == (2, counts[0] + counts[1])
    chain.rpc("evm_revert", snapshot)  # frame 1's block is gone
    assert (await inbox.read(l1, "openChannel"))[1:3] == (1, counts[0])
    error = await revert_of(l1, inbox, BATCHER, "appendFrame", frames[2], 2, True)
    assert (error.name, error.args) == ("FrameOutOfOrder", (1, 1, 2))
    receipts = await post_frames(l1, inbox, frames)  # again from frame 0: a fresh channel
    assert events(inbox, receipts[-1])["BatchAppended"]["inputRoot"] == input_root(leaves)
    assert events(inbox, receipts[0])["ChannelAbandoned"] == {"channel": 1, "frames": 1}
