"""Frames: one batch (a *channel*) posted in several L1 transactions, as Optimism's batcher does.

An L1 transaction carries at most ~414 KB of calldata under EIP-7825's 2**24 gas cap at EIP-7623's
floor (and geth's pool takes 128 KiB), while a batch, even one block, may hold more. So the
batcher may cut a batch's leaves (see _batch_input) into frames, each itself in batch format 1
(``0x01 || (uint24 length || leaf)+``, whole leaves: see _batch, whose FRAME_HEADER is a leaf's
length prefix, not one of these frames), posted in order as
``appendFrame(frame, frameIndex, last)``. BatchInbox checks each frame as ``appendBatch`` checks a
batch, folds its leaves into the channel's Merkle frontier, and the closing frame (``last``)
stores the same BatchEntry (input root, its own L1 block) that ``appendBatch`` of all the leaves
would: what derivation and the one-step proof read does not depend on how the batch travelled.

Why whole leaves per frame rather than Optimism's byte stream cut anywhere: the inbox must hash
each leaf as it arrives (it never sees the other frames' bytes again), so a leaf cut in two would
need its first part kept in storage (~20k gas a word); a leaf is at most one L2 transaction (128 KiB
in the pool) plus its kind byte, so a frame of whole leaves still fills an L1 transaction.

The closing frame logs ``BatchAppended`` with ``dataHash`` = the frames' hash chain
(``frames_hash``): h = 0, then h = keccak256(h || keccak256(frame)) per frame, which derivation
checks after reading the frames back (protocol._l1_inputs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._batch import BATCH_VERSION, FRAME_HEADER, encode_leaves
from ._batch_input import Leaf
from ._commitment import ZERO_HASH
from ._keccak import keccak256


def split_frames(leaves: Sequence[Leaf], max_bytes: int) -> tuple[bytes, ...]:
    """The leaves (at least one) cut into frames of whole leaves, in order, each at most
    ``max_bytes`` long unless one leaf alone is longer (then it is a frame by itself). Frame i+1
    starts where frame i ends: their leaves, concatenated, are ``leaves``."""
    frames: list[bytes] = []
    group: list[Leaf] = []
    size = len(bytes((BATCH_VERSION,)))
    for leaf in leaves:
        cost = FRAME_HEADER + len(leaf.encode())
        if group and size + cost > max_bytes:
            frames.append(encode_leaves(group))
            group, size = [], 1
        group.append(leaf)
        size += cost
    if group:
        frames.append(encode_leaves(group))
    return tuple(frames)


def frames_hash(frames: Iterable[bytes]) -> bytes:
    """The hash chain the inbox logs as a framed batch's ``dataHash``."""
    chain = ZERO_HASH
    for frame in frames:
        chain = keccak256(chain + keccak256(frame))
    return chain
