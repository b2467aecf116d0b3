"""The batch format: what the batcher posts to L1 and what derivation reads back.

Version 1: the batch *is* its leaves (see _batch_input), each framed with its length::

    batch = 0x01 || frame+
    frame = uint24 big-endian length || leaf        (1 <= length <= 2**24 - 1)
    leaf  = 0x00 || raw tx                          (TX leaf, length >= 1)
          | 0x01 || 5 abi words                     (BLOCK leaf, exactly 161 bytes)

posted as ``appendBatch(batch)``, or cut at leaf boundaries into several batches of this format
posted as the frames of one channel (``appendFrame``, see _frames: there "frame" means an L1
transaction's piece of a batch, not a leaf's length prefix). BatchInbox walks the same framing
on L1, computes the input root (the sized Merkle root over the leaves' hashes, ``input_root``)
and stores it, so what derivation reads and what a one-step proof opens are bound by L1 itself.

``decode_batch`` refuses exactly what ``appendBatch`` refuses for its form (contracts/BatchInbox.sol):
no data, another version byte, no leaves, a frame running past the end, an empty leaf, a leaf of
neither kind or a BLOCK leaf of another size. The inbox's other refusals depend on L1 (the
caller, and each BLOCK leaf's origin against L1's block hashes), so they are not the decoder's:
a batch in the inbox passed them. There is no compression: no contract can afford to inflate it,
and the root must be computed from what derivation reads (measured in bench/batch_gas.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ._batch_input import BLOCK_LEAF, BLOCK_LEAF_SIZE, TX_LEAF, BlockLeaf, Leaf, TxLeaf, batch_leaves, input_root

BATCH_VERSION: Final = 1
#: Bytes of a frame's length prefix; a leaf is at most 2**24 - 1 bytes.
FRAME_HEADER: Final = 3
MAX_LEAF_SIZE: Final = 2 ** (8 * FRAME_HEADER) - 1


@dataclass(frozen=True, slots=True)
class BatchBlock:
    number: int
    timestamp: int
    l1_origin_number: int
    l1_origin_hash: bytes
    transactions: tuple[bytes, ...]


class BatchFormatError(ValueError):
    """Bytes ``appendBatch`` refuses; ``reason`` names the contract's error."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def encode_leaves(leaves: Sequence[Leaf]) -> bytes:
    """The batch of these leaves, in order (at least one; each at most MAX_LEAF_SIZE bytes)."""
    parts = [bytes((BATCH_VERSION,))]
    for leaf in leaves:
        data = leaf.encode()
        parts.append(len(data).to_bytes(FRAME_HEADER, "big"))
        parts.append(data)
    return b"".join(parts)


def encode_batch(blocks: Sequence[BatchBlock]) -> bytes:
    """The batch that carries ``blocks``: their leaves, framed."""
    return encode_leaves(batch_leaves(blocks))


def batch_size(blocks: Sequence[BatchBlock]) -> int:
    """len(encode_batch(blocks)), without encoding."""
    return 1 + sum(FRAME_HEADER + BLOCK_LEAF_SIZE + sum(FRAME_HEADER + 1 + len(t) for t in b.transactions)
                   for b in blocks)


def batch_input_root(blocks: Sequence[BatchBlock]) -> bytes:
    """The input root the inbox computes for ``encode_batch(blocks)`` (see _batch_input)."""
    return input_root(batch_leaves(blocks))


def decode_batch(data: bytes) -> tuple[Leaf, ...]:
    """The leaves of a batch, in order; BatchFormatError for what ``appendBatch`` refuses."""
    if not data:
        raise BatchFormatError("EmptyData", "empty batch")
    if data[0] != BATCH_VERSION:
        raise BatchFormatError("UnknownVersion", f"unknown batch version {data[0]}")
    leaves: list[Leaf] = []
    pos, end = 1, len(data)
    while pos < end:
        n = len(leaves)
        if pos + FRAME_HEADER > end:
            raise BatchFormatError("TruncatedLeaf", f"leaf {n}: its length runs past the end of the batch")
        size = int.from_bytes(data[pos : pos + FRAME_HEADER], "big")
        pos += FRAME_HEADER
        if size == 0:
            raise BatchFormatError("EmptyLeaf", f"leaf {n} is empty")
        if pos + size > end:
            raise BatchFormatError("TruncatedLeaf", f"leaf {n}: {size} bytes run past the end of the batch")
        kind = data[pos]
        if kind == TX_LEAF:
            leaves.append(TxLeaf(data[pos + 1 : pos + size]))
        elif kind == BLOCK_LEAF and size == BLOCK_LEAF_SIZE:
            w = [int.from_bytes(data[pos + 1 + 32 * i : pos + 33 + 32 * i], "big") for i in range(5)]
            leaves.append(BlockLeaf(w[0], w[1], w[2], data[pos + 97 : pos + 129], w[4]))
        else:
            raise BatchFormatError("UnknownLeaf",
                                   f"leaf {n} is neither a TX leaf nor a {BLOCK_LEAF_SIZE}-byte BLOCK leaf")
        pos += size
    if not leaves:
        raise BatchFormatError("NoLeaves", "a batch of no leaves")
    return tuple(leaves)


def batch_blocks(leaves: Sequence[Leaf]) -> tuple[BatchBlock, ...]:
    """The blocks of a well-formed batch (each BLOCK leaf followed by exactly its transactions, as
    ``encode_batch`` writes them): what the sequencer reads back of its own batches. Anything else
    (a stray TX leaf, a block claiming more or fewer transactions than follow it) is a
    BatchFormatError: derivation still reads such a batch leaf by leaf (services.rollups._machine
    rules 4, 5 and 11), but it holds no block list."""
    blocks: list[BatchBlock] = []
    i, count = 0, len(leaves)
    while i < count:
        head = leaves[i]
        if not isinstance(head, BlockLeaf):
            raise BatchFormatError("StrayLeaf", f"leaf {i}: a transaction outside any block")
        txs = leaves[i + 1 : i + 1 + head.tx_count]
        if len(txs) != head.tx_count or not all(isinstance(t, TxLeaf) for t in txs):
            raise BatchFormatError("ShortBlock", f"leaf {i}: block {head.number} claims {head.tx_count} transactions")
        blocks.append(BatchBlock(head.number, head.timestamp, head.l1_origin_number, head.l1_origin_hash,
                                 tuple(t.raw for t in txs if isinstance(t, TxLeaf))))
        i += 1 + head.tx_count
    return tuple(blocks)
