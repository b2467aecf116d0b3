"""protocol._batch_input.leaf_hashes (C, ``_native.leaf_hashes``) held to the rule it replaces:
``[leaf_hash(leaf) for leaf in leaves]``, keccak256(leaf.encode()) leaf by leaf, and the input root
to the sized Merkle root over those (what the inbox stores)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sha3 import keccak_256  # type: ignore[import-untyped]

from protocol import _native
from protocol._batch_input import BlockLeaf, Leaf, StrayLeaf, TxLeaf, input_root, leaf_hash, leaf_hashes
from protocol._commitment import MerkleTree

_words = st.integers(min_value=0, max_value=2**256 - 1)
_leaves = st.one_of(
    st.builds(TxLeaf, st.binary(max_size=400)),
    st.builds(BlockLeaf, _words, _words, _words, st.binary(min_size=32, max_size=32), _words),
    st.builds(StrayLeaf, st.binary(max_size=300)),
)


@given(st.lists(_leaves, max_size=70))
@settings(max_examples=300, deadline=None)
def test_leaf_hashes_and_input_root_follow_the_rule(leaves: list[Leaf]) -> None:
    by_rule = [keccak_256(leaf.encode()).digest() for leaf in leaves]
    assert leaf_hashes(leaves) == by_rule == [leaf_hash(leaf) for leaf in leaves]
    assert leaf_hashes(tuple(leaves)) == by_rule  # any sequence
    assert input_root(leaves) == MerkleTree(by_rule).root()


@pytest.mark.parametrize("size", [0, 1, 134, 135, 136, 271, 272, 100_000])
def test_a_tx_leaf_at_keccak_block_boundaries(size: int) -> None:
    leaf = TxLeaf(bytes(range(256)) * (size // 256) + bytes(size % 256))
    assert leaf_hashes([leaf]) == [keccak_256(b"\x00" + leaf.raw).digest()]


@dataclass(frozen=True, slots=True)
class _OwnEncoding(TxLeaf):
    """Not a TxLeaf exactly: its own encode() is its rule, the C path must not read ``raw``."""

    def encode(self) -> bytes:
        return b"other" + self.raw


class _BufferLeaf:
    def encode(self) -> Any:
        return bytearray(b"\x00abc")  # keccak256 hashes any buffer


class _Failing:
    def encode(self) -> bytes:
        raise ValueError("no encoding")


class _NotBytes:
    def encode(self) -> Any:
        return 5


def test_anything_but_an_exact_tx_leaf_with_bytes_goes_through_its_encode() -> None:
    leaves: list[Any] = [_OwnEncoding(b"xyz"), TxLeaf(bytearray(b"abc")), _BufferLeaf()]  # type: ignore[arg-type]
    assert _native.leaf_hashes(leaves, TxLeaf) == [keccak_256(bytes(leaf.encode())).digest() for leaf in leaves]


def test_an_encode_that_fails_raises_as_the_rule_does() -> None:
    with pytest.raises(ValueError, match="no encoding"):
        _native.leaf_hashes([TxLeaf(b"a"), _Failing()], TxLeaf)
    with pytest.raises(TypeError):
        leaf_hash(_NotBytes())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _native.leaf_hashes([_NotBytes()], TxLeaf)
    with pytest.raises(TypeError):
        _native.leaf_hashes((TxLeaf(b"a"),), TxLeaf)  # type: ignore[arg-type]  # a list, as the wrapper passes


def test_an_encode_that_empties_the_list_is_refused() -> None:
    leaves: list[Any] = []

    class _Emptying:
        def encode(self) -> bytes:
            leaves.clear()
            return b""

    leaves += [_Emptying(), TxLeaf(b"a")]
    with pytest.raises(RuntimeError, match="changed size"):
        _native.leaf_hashes(leaves, TxLeaf)
