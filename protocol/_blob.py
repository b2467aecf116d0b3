"""Blob batches (EIP-4844): the batch's leaves in the blobs of a type-3 transaction, bound on L1 by
the blobs' versioned hashes.

No contract can read a blob: ``BatchInbox.appendBlobBatch`` sees only ``blobhash(i)``. So the inbox
cannot compute a blob batch's leaves, check its framing or its BLOCK leaves' L1 origins, as
``appendBatch`` does for calldata. What it stores instead (kind BLOB, see contracts/BatchInbox.sol)::

    inputRoot = keccak256(abi.encode(bytes32[] versionedHashes, (uint256 number, bytes32 hash)[] origins))

with ``versionedHashes`` every blob of the transaction, in order, and ``origins`` the L1 origins
the batch's blocks use, given in calldata and checked at post time exactly as appendBatch checks a
BLOCK leaf's (BLOCKHASH / EIP-2935, not in the future): strictly increasing numbers, at most
MAX_BLOB_ORIGINS. Derivation then skips (rule 5c) a BLOCK leaf whose (l1OriginNumber,
l1OriginHash) is not one of them. Why origins in calldata rather than a derivation-only check: the
inbox's guarantee "an origin L1 does not attest never enters the inbox" must hold for blob batches
too (a batch built on a reorged-out L1 block must fail to land, so the batcher re-posts it), and a
step on L1 cannot ask BLOCKHASH about an origin 8191 blocks later; checked once at post time and
carried in the binding, a step only compares against the list (a few pairs).

**Layout.** Bytes 1..31 of every field element (byte 0 is ignored: it is zero in what the batcher
writes, which keeps every element below the BLS modulus), element after element, blob after blob,
form the stream B of ``k * 126976`` bytes::

    B = version (1 byte, BLOB_VERSION) || N (uint24) || offset[0..N] (N + 1 uint32, big-endian,
        absolute positions in B) || the leaves || zero padding
    leaf i = B[offset[i] : offset[i + 1]]      (the TX / BLOCK leaf encoding of _batch_input)

**Well-formedness is by rule, never a halt** (the inbox accepted the blobs unseen, so derivation
must give any blobs a meaning, the same one StepVerifier gives them):

- a version byte other than BLOB_VERSION, or a table that does not fit (4 + 4 (N + 1) > |B|):
  a batch of 0 leaves (rule 3 moves on to the next batch);
- leaf i with offset[i] < table end, offset[i] > offset[i + 1], offset[i + 1] > |B|, or longer than
  MAX_BLOB_LEAF: the empty leaf (a ``StrayLeaf``);
- leaf bytes that are neither 0x00 || tx (length >= 1) nor 0x01 || 160 bytes: a ``StrayLeaf``.

The machine's rules then apply unchanged: a StrayLeaf is skipped when IDLE (rule 4), and in BATCH
phase it is "not a TX leaf", so the block's transactions end there (rule 11), as for a BLOCK leaf;
a TX leaf whose transaction does not decode is skipped (rule 12). Offsets may overlap or repeat:
each leaf is read from its own pair, which is all a step opens.

**The one-step proof** opens leaf i with KZG point evaluations (the 0x0A precompile, one per field
element: ~50k gas each): element 0 (the header), the elements holding offset[i] and offset[i + 1],
and those holding the leaf's bytes (``leaf_elements``). MAX_BLOB_LEAF bounds a leaf so that a step
stays well inside a transaction's gas (4096 bytes: 133 elements, ~6.7M gas); a longer transaction
goes in a calldata batch (the batcher decides, ``fits_blob``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from eth_abi.abi import encode

from ._batch import BatchBlock
from ._batch_input import BLOCK_LEAF, BLOCK_LEAF_SIZE, TX_LEAF, BlockLeaf, Leaf, StrayLeaf, TxLeaf, batch_leaves
from ._keccak import keccak256

BLOB_VERSION: Final = 1
FIELD_ELEMENTS_PER_BLOB: Final = 4096
#: Usable bytes of a field element (its top byte is left zero) and of a blob.
ELEMENT_BYTES: Final = 31
BLOB_BYTES: Final = FIELD_ELEMENTS_PER_BLOB * ELEMENT_BYTES
#: The version byte and the uint24 leaf count; then N + 1 uint32 offsets.
HEADER_SIZE: Final = 4
OFFSET_SIZE: Final = 4
#: A longer leaf is read as the empty leaf (see the module notes: what one step can open).
MAX_BLOB_LEAF: Final = 4096
#: Most L1 origins one blob batch may name (appendBlobBatch refuses more).
MAX_BLOB_ORIGINS: Final = 64
MAX_LEAVES: Final = 2**24 - 1

Origin = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class BlobBatch:
    """What L1 holds of a blob batch: its blobs' versioned hashes, the origins its calldata named
    (the inbox checked them), and the blobs themselves (from the L1 node)."""

    versioned_hashes: tuple[bytes, ...]
    origins: tuple[Origin, ...]
    blobs: tuple[bytes, ...]

    def input_root(self) -> bytes:
        return blob_input_root(self.versioned_hashes, self.origins)

    def attests(self, number: int, origin_hash: bytes) -> bool:
        """Whether a BLOCK leaf's origin is one the inbox checked for this batch (rule 5c)."""
        return (number, origin_hash) in self.origins

    def stream(self) -> bytes:
        return blob_stream(self.blobs)

    def leaves(self) -> tuple[Leaf, ...]:
        return decode_blob_leaves(self.stream())


def blob_input_root(versioned_hashes: Sequence[bytes], origins: Sequence[Origin]) -> bytes:
    """What appendBlobBatch stores as the batch's input root (see the module notes)."""
    return keccak256(encode(["bytes32[]", "(uint256,bytes32)[]"], [list(versioned_hashes), list(origins)]))


def origins_of(blocks: Iterable[BatchBlock]) -> tuple[Origin, ...]:
    """The distinct L1 origins of ``blocks``, by number (appendBlobBatch's argument)."""
    return tuple(sorted({(b.l1_origin_number, b.l1_origin_hash) for b in blocks}))


# --- the layout ---------------------------------------------------------------------------------


def encode_blob_leaves(leaves: Sequence[Leaf]) -> bytes:
    """The stream B of these leaves, unpadded (``to_blobs`` pads it)."""
    datas = [leaf.encode() for leaf in leaves]
    if len(datas) > MAX_LEAVES:
        raise ValueError(f"a blob batch holds at most {MAX_LEAVES} leaves")
    position = HEADER_SIZE + OFFSET_SIZE * (len(datas) + 1)
    offsets = [position]
    for data in datas:
        position += len(data)
        offsets.append(position)
    return b"".join((bytes((BLOB_VERSION,)), len(datas).to_bytes(3, "big"),
                     b"".join(o.to_bytes(OFFSET_SIZE, "big") for o in offsets), *datas))


def blob_batch_size(blocks: Sequence[BatchBlock]) -> int:
    """len(encode_blob_leaves(batch_leaves(blocks))), without encoding."""
    leaves = sum(1 + len(b.transactions) for b in blocks)
    return HEADER_SIZE + OFFSET_SIZE * (leaves + 1) + sum(
        BLOCK_LEAF_SIZE + sum(1 + len(t) for t in b.transactions) for b in blocks)


def fits_blob(blocks: Sequence[BatchBlock]) -> bool:
    """Whether every leaf of ``blocks`` can be opened by a step (at most MAX_BLOB_LEAF bytes)."""
    return all(1 + len(t) <= MAX_BLOB_LEAF for b in blocks for t in b.transactions)


def encode_blob_batch(blocks: Sequence[BatchBlock]) -> tuple[bytes, ...]:
    """The blobs that carry ``blocks``."""
    return to_blobs(encode_blob_leaves(batch_leaves(blocks)))


def to_blobs(stream: bytes) -> tuple[bytes, ...]:
    """``stream`` in as few blobs as hold it (at least one), 31 bytes an element, zero-padded."""
    count = max(1, -(-len(stream) // BLOB_BYTES))
    padded = stream.ljust(count * BLOB_BYTES, b"\0")
    return tuple(
        b"".join(b"\0" + padded[o : o + ELEMENT_BYTES] for o in range(start, start + BLOB_BYTES, ELEMENT_BYTES))
        for start in range(0, len(padded), BLOB_BYTES))


def blob_stream(blobs: Sequence[bytes]) -> bytes:
    """B: bytes 1..31 of every field element, in order (byte 0 ignored)."""
    return b"".join(blob[o + 1 : o + 32] for blob in blobs for o in range(0, len(blob), 32))


def leaf_count(stream: bytes) -> int:
    """N, or 0 if the header is bad (another version, or a table that does not fit)."""
    if len(stream) < HEADER_SIZE or stream[0] != BLOB_VERSION:
        return 0
    count = int.from_bytes(stream[1:HEADER_SIZE], "big")
    return count if HEADER_SIZE + OFFSET_SIZE * (count + 1) <= len(stream) else 0


def leaf_bounds(stream: bytes, index: int) -> tuple[int, int] | None:
    """Where leaf ``index`` (< leaf_count) lies in B: (start, end), or None (the empty leaf)."""
    count = leaf_count(stream)
    at = HEADER_SIZE + OFFSET_SIZE * index
    start = int.from_bytes(stream[at : at + OFFSET_SIZE], "big")
    end = int.from_bytes(stream[at + OFFSET_SIZE : at + 2 * OFFSET_SIZE], "big")
    table_end = HEADER_SIZE + OFFSET_SIZE * (count + 1)
    if start < table_end or end < start or end > len(stream) or end - start > MAX_BLOB_LEAF:
        return None
    return start, end


def read_leaf(data: bytes) -> Leaf:
    """The leaf these bytes are: TX, BLOCK, or stray (what StepVerifier's kind checks say)."""
    if data and data[0] == TX_LEAF:
        return TxLeaf(data[1:])
    if len(data) == BLOCK_LEAF_SIZE and data[0] == BLOCK_LEAF:
        w = [int.from_bytes(data[1 + 32 * i : 33 + 32 * i], "big") for i in range(5)]
        return BlockLeaf(w[0], w[1], w[2], data[97:129], w[4])
    return StrayLeaf(data)


def decode_blob_leaves(stream: bytes) -> tuple[Leaf, ...]:
    """The leaves of B by the rules of the module notes: never an error."""
    leaves: list[Leaf] = []
    for i in range(leaf_count(stream)):
        bounds = leaf_bounds(stream, i)
        leaves.append(read_leaf(stream[bounds[0] : bounds[1]]) if bounds is not None else StrayLeaf(b""))
    return tuple(leaves)


def elements_of(start: int, end: int) -> range:
    """The indices (blob * 4096 + element) of the field elements holding B[start:end]."""
    if end <= start:
        return range(0)
    return range(start // ELEMENT_BYTES, (end - 1) // ELEMENT_BYTES + 1)


def leaf_elements(stream: bytes, index: int) -> list[int]:
    """The field elements a step opens to read leaf ``index`` (or, past the last, the count): the
    header's; then the two offsets'; then the leaf's bytes'. Sorted, without repeats."""
    wanted = set(elements_of(0, HEADER_SIZE))
    if index < leaf_count(stream):
        at = HEADER_SIZE + OFFSET_SIZE * index
        wanted.update(elements_of(at, at + 2 * OFFSET_SIZE))
        bounds = leaf_bounds(stream, index)
        if bounds is not None:
            wanted.update(elements_of(*bounds))
    return sorted(wanted)
