"""Attacks on batches posted in frames (BatchInbox.appendFrame), on the real contracts with the
honest proposer and challenger deriving from L1 alone: frames from anyone but the batcher,
malformed frames and a close with nothing open are refused (mined, they revert and leave no
trace derivation reads); a channel the batcher opens and never closes is no batch, and derivation
does not wait on it: once the sequencer window lapses, it makes the blocks itself (rule F), and a
later channel from frame 0 abandons the stale one and is read as any batch."""

from __future__ import annotations

import dataclasses

import pytest

from bench.rollup_dispute import PARAMS
from protocol import DERIVED_ORIGIN_HASH, BatchBlock, batch_leaves, decode_batch, encode_batch, split_frames
from services.l1 import TxSender
from tests.rollups._rollup import Rollup

WINDOW = 8
#: The deployment's parameters: the devnet's window, or a short one that lapses within the test.
DEVNET, SHORT_WINDOW = PARAMS, dataclasses.replace(PARAMS, sequencer_window=WINDOW)


async def frames_of(r: Rollup, first: int, count: int) -> tuple[bytes, ...]:
    """``count`` valid L2 blocks from ``first`` on (origin: the L1 head's parent; the first transfers
    of the batch's senders: none was applied before), in three frames."""
    head = await r.l1.get_block(await r.l1.block_number() - 1)
    assert head is not None
    blocks = [BatchBlock(n, 100 + n, head.number, head.hash, tuple(r._txs[2 * (n - first) : 2 * (n - first + 1)]))
              for n in range(first, first + count)]
    frames = split_frames(batch_leaves(blocks), len(encode_batch(blocks)) // 3 + 120)
    assert len(frames) == 3
    return frames


async def frame(r: Rollup, who: TxSender, data: bytes, index: int, last: bool, *, gas: int | None = None) -> bool:
    """``who`` sends appendFrame (mined even if it reverts when ``gas`` is given); whether it succeeded."""
    assert r.inbox.address is not None
    call = r.inbox.encode_call("appendFrame", data, index, last)
    return (await who.wait_receipt(await who.send(r.inbox.address, call, gas=gas), 10)).success


@pytest.mark.parametrize("params", [DEVNET])
async def test_refused_frames_leave_nothing_for_derivation(r: Rollup, rogue: TxSender) -> None:
    frames = await frames_of(r, 1, 3)
    # Not the batcher: reverted, whatever the frame.
    assert not await frame(r, rogue, frames[0], 0, True, gas=1_000_000)
    # The batcher's own malformed frame, a close with nothing open, an empty close: all reverted.
    assert not await frame(r, r.batcher, b"\x01\x00\x00\x09\x00", 0, False, gas=1_000_000)
    assert not await frame(r, r.batcher, frames[2], 2, True, gas=1_000_000)
    assert not await frame(r, r.batcher, b"\x01", 0, True, gas=1_000_000)
    await r.sync()
    assert r.chain.batch_count == 0 and r.chain.head.header.number == 0
    # The honest channel after all that: derived as one batch.
    for i, data in enumerate(frames):
        assert await frame(r, r.batcher, data, i, i == 2)
    await r.sync()
    assert r.chain.batch_count == 1 and r.chain.head.header.number == 3
    assert [len(r.derived(n).tx_hashes) for n in (1, 2, 3)] == [2, 2, 2]


@pytest.mark.parametrize("params", [SHORT_WINDOW])
async def test_a_channel_never_closed_does_not_halt_derivation(r: Rollup) -> None:
    frames = await frames_of(r, 1, 3)
    for i, data in enumerate(frames[:2]):
        assert await frame(r, r.batcher, data, i, False)  # frame 2, the close, never comes
    await r.l1.request("anvil_mine", WINDOW + 2)
    await r.sync()
    # Nothing to read, and nothing waited on: the window lapsed, derivation made the blocks itself.
    assert r.chain.batch_count == 0
    head = r.chain.head.header
    assert head.number >= 1
    assert all(r.derived(n).header.l1_origin_hash == DERIVED_ORIGIN_HASH for n in range(1, head.number + 1))
    assert all(r.derived(n).tx_hashes == () for n in range(1, head.number + 1))
    # The batcher starts over at frame 0 (the stale channel is abandoned): a batch again, read as one
    # (whether its blocks still stand after the lapsed window is rule F's and 5a's, as for any batch).
    again = await frames_of(r, head.number + 1, 3)
    for i, data in enumerate(again):
        assert await frame(r, r.batcher, data, i, i == 2)
    await r.sync()
    assert r.chain.batch_count == 1 and r.chain.head.header.number >= head.number
    assert r.chain.inputs.batches[0].leaves == tuple(leaf for data in again for leaf in decode_batch(data))
