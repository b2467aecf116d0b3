"""The batch format: what the batcher posts to L1 and what derivation reads back.

Version 0::

    batch = 0x00 || zlib(rlp([block, ...]))
    block = [number, timestamp, l1_origin_number, l1_origin_hash, [raw_tx, ...]]

posted as ``appendBatch(batch, inputRoot)``, the input root being the Merkle root over the
batch's leaves (see _batch_input): what a one-step fraud proof reads a transaction against.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import rlp  # type: ignore[import-untyped, unused-ignore]

from services.l1 import rlp_bytes, rlp_int, rlp_list

from ._batch_input import batch_leaves, input_root

BATCH_VERSION: Final = 0


@dataclass(frozen=True, slots=True)
class BatchBlock:
    number: int
    timestamp: int
    l1_origin_number: int
    l1_origin_hash: bytes
    transactions: tuple[bytes, ...]


class BatchFormatError(ValueError):
    pass


def encode_batch(blocks: Sequence[BatchBlock]) -> bytes:
    items = [
        rlp_list([rlp_int(b.number), rlp_int(b.timestamp), rlp_int(b.l1_origin_number), rlp_bytes(b.l1_origin_hash),
                  rlp_list(rlp_bytes(t) for t in b.transactions)])
        for b in blocks
    ]
    return bytes([BATCH_VERSION]) + zlib.compress(rlp_list(items), 6)


def batch_input_root(blocks: Sequence[BatchBlock]) -> bytes:
    """The input root ``appendBatch`` posts with these blocks (see _batch_input)."""
    return input_root(batch_leaves(blocks))


#: A batch never inflates beyond this: a zlib bomb in calldata must not take the follower down.
MAX_DECOMPRESSED: Final = 64 * 1024 * 1024


def decode_batch(data: bytes) -> list[BatchBlock]:
    if not data or data[0] != BATCH_VERSION:
        raise BatchFormatError(f"unknown batch version {data[:1].hex() or 'none'}")
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data[1:], MAX_DECOMPRESSED)
        if inflater.unconsumed_tail:
            raise BatchFormatError("batch inflates beyond the limit")
        items = rlp.decode(raw)
        blocks = []
        for item in items:
            number, timestamp, origin_number, origin_hash, txs = item
            # Each field must fit its word in the block's input leaf (see _batch_input), or the
            # batch has no leaves at all: refused whole, never half-derived.
            if any(len(word) > 32 for word in (number, timestamp, origin_number)) or len(origin_hash) != 32:
                raise BatchFormatError("a block field does not fit its 32-byte word")
            blocks.append(BatchBlock(int.from_bytes(number, "big"), int.from_bytes(timestamp, "big"),
                                     int.from_bytes(origin_number, "big"), bytes(origin_hash),
                                     tuple(bytes(t) for t in txs)))
    except (zlib.error, rlp.exceptions.DecodingError, ValueError, TypeError) as exc:
        raise BatchFormatError(f"malformed batch: {exc}") from None
    return blocks
