"""A batch's input commitment: what the inbox stores so one transaction of it can be proven on L1.

Batch data is compressed (see _batch), which no contract can afford to inflate. So the batcher
also posts ``inputRoot``, the sized Merkle root (see _commitment) over the batch's *leaves*, and
the inbox stores it with the batch's L1 block. A one-step fraud proof reads one leaf with a
Merkle proof against that root; derivation reads the leaves from the data and checks them
against the root (a batch whose data does not reproduce its root is unavailable: derivation
stops there rather than guess; the batcher is trusted for data availability, see
services.rollups._machine).

Leaves, in order: for each block, one BLOCK leaf then one TX leaf per transaction::

    BLOCK leaf = 0x01 || abi.encode(uint256 number, uint256 timestamp, uint256 l1OriginNumber,
                                    bytes32 l1OriginHash, uint256 txCount)      // 161 bytes
    TX leaf    = 0x00 || raw signed transaction
    leaf hash  = keccak256(leaf)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._commitment import merkle_root
from ._keccak import keccak256

if TYPE_CHECKING:
    from ._batch import BatchBlock  # _batch encodes blocks and imports this module for their leaves

TX_LEAF: Final = 0x00
BLOCK_LEAF: Final = 0x01
BLOCK_LEAF_SIZE: Final = 1 + 5 * 32


@dataclass(frozen=True, slots=True)
class BlockLeaf:
    number: int
    timestamp: int
    l1_origin_number: int
    l1_origin_hash: bytes
    tx_count: int

    def encode(self) -> bytes:
        return bytes((BLOCK_LEAF,)) + b"".join((
            self.number.to_bytes(32, "big"), self.timestamp.to_bytes(32, "big"),
            self.l1_origin_number.to_bytes(32, "big"), self.l1_origin_hash, self.tx_count.to_bytes(32, "big"),
        ))


@dataclass(frozen=True, slots=True)
class TxLeaf:
    raw: bytes

    def encode(self) -> bytes:
        return bytes((TX_LEAF,)) + self.raw


Leaf = BlockLeaf | TxLeaf


def decode_leaf(data: bytes) -> Leaf | None:
    """The leaf these bytes encode; None for bytes that are neither kind (never produced)."""
    if data[:1] == bytes((TX_LEAF,)):
        return TxLeaf(data[1:])
    if len(data) == BLOCK_LEAF_SIZE and data[0] == BLOCK_LEAF:
        words = [data[1 + 32 * i : 33 + 32 * i] for i in range(5)]
        return BlockLeaf(int.from_bytes(words[0], "big"), int.from_bytes(words[1], "big"),
                         int.from_bytes(words[2], "big"), words[3], int.from_bytes(words[4], "big"))
    return None


def leaf_hash(leaf: Leaf) -> bytes:
    return keccak256(leaf.encode())


def batch_leaves(blocks: Sequence[BatchBlock]) -> list[Leaf]:
    """The leaves of a batch's blocks, in order."""
    leaves: list[Leaf] = []
    for b in blocks:
        leaves.append(BlockLeaf(b.number, b.timestamp, b.l1_origin_number, b.l1_origin_hash, len(b.transactions)))
        leaves.extend(TxLeaf(raw) for raw in b.transactions)
    return leaves


def input_root(leaves: Sequence[Leaf]) -> bytes:
    """The sized Merkle root over the leaves' hashes: what ``appendBatch`` stores."""
    return merkle_root([leaf_hash(leaf) for leaf in leaves])
