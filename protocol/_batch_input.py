"""A batch's leaves and their input commitment: what the inbox stores so one transaction of a batch
can be proven on L1.

A batch is its leaves, framed (see _batch); BatchInbox computes the sized Merkle root (see
_commitment) over the leaves' hashes from the calldata itself and stores it, ``inputRoot``, with
the batch's L1 block. A one-step fraud proof reads one leaf with a Merkle proof against that
root; derivation reads the same leaves from the same calldata. So the two cannot differ: no batch
in the inbox is "unavailable" (an L1 client that returns calldata not reproducing the event's
root is broken, and derivation says so loudly: see protocol._l1_inputs).

Leaves, in order: for each block, one BLOCK leaf then one TX leaf per transaction::

    BLOCK leaf = 0x01 || abi.encode(uint256 number, uint256 timestamp, uint256 l1OriginNumber,
                                    bytes32 l1OriginHash, uint256 txCount)      // 161 bytes
    TX leaf    = 0x00 || raw signed transaction
    leaf hash  = keccak256(leaf)

The inbox also checks every BLOCK leaf's (l1OriginNumber, l1OriginHash) against L1's own block
hashes (BLOCKHASH, EIP-2935): an origin L1 does not attest never enters the inbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from . import _native
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


@dataclass(frozen=True, slots=True)
class StrayLeaf:
    """A leaf of neither kind, as only a blob batch can hold (see _blob: the inbox cannot read a
    blob, so it cannot refuse one): bytes that are no TX leaf (0x00 || tx) nor a 161-byte BLOCK leaf,
    or (out-of-bounds offsets) no bytes at all. Derivation skips it when IDLE (rule 4) and a block's
    transactions end at it (rule 11), as StepVerifier reads any leaf that is neither kind."""

    data: bytes

    def encode(self) -> bytes:
        return self.data


Leaf = BlockLeaf | TxLeaf | StrayLeaf


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
    return merkle_root(leaf_hashes(leaves))


def leaf_hashes(leaves: Sequence[Leaf]) -> list[bytes]:
    """[leaf_hash(leaf) for leaf in leaves] (the rule), in one C call: a TX leaf's bytes are hashed
    in place, not copied behind its kind byte first (~1.3 us a leaf less; derivation hashes every
    leaf of every batch). Any other leaf goes through its own ``encode``."""
    return _native.leaf_hashes(leaves if isinstance(leaves, list) else list(leaves), TxLeaf)
