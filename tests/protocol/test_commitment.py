"""Merkle commitments: proofs verify, tampering fails, batches equal rebuilds, L1-style updates."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import MERKLE_ARITY, MERKLE_DEPTH, ZERO_ADDRESS, Account, keccak256
from protocol._commitment import (
    ZERO,
    ZERO_HASH,
    AccountLeaf,
    AccountProof,
    AccountTree,
    MerkleProof,
    MerkleTree,
    account_leaf_hash,
    merkle_root,
    root_from_proof,
    sized_root,
    verify_account,
    verify_merkle_proof,
)


def address(n: int) -> bytes:
    return keccak256(n.to_bytes(8, "big"))[:20]


def leaf(n: int) -> bytes:
    return keccak256(b"leaf" + n.to_bytes(8, "big"))


# --- the generic tree -----------------------------------------------------------------------


def test_empty_subtree_hashes() -> None:
    assert ZERO[0] == bytes(32)
    assert ZERO[1] == keccak256(bytes(32) * MERKLE_ARITY)
    assert len(ZERO) == MERKLE_DEPTH + 1
    empty = MerkleTree()
    assert empty.root() == keccak256(ZERO[MERKLE_DEPTH] + bytes(32)) != bytes(32)


def naive_root(leaves: list[bytes], arity: int = MERKLE_ARITY, depth: int = MERKLE_DEPTH) -> bytes:
    """The definition, computed the slow way: pad every level with empty subtrees."""
    level = list(leaves)
    zero = ZERO_HASH
    for _ in range(depth):
        level += [zero] * (-len(level) % arity)
        level = [keccak256(b"".join(level[i : i + arity])) for i in range(0, len(level), arity)] or [
            keccak256(zero * arity)
        ]
        zero = keccak256(zero * arity)
    return sized_root(level[0], len(leaves))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 16, 17, 100])
def test_root_matches_the_definition(n: int) -> None:
    leaves = [leaf(i) for i in range(n)]
    assert merkle_root(leaves) == naive_root(leaves)
    assert MerkleTree(leaves, arity=2, depth=32).root() == naive_root(leaves, 2, 32)


def test_proofs_verify_and_tampering_fails() -> None:
    leaves = [leaf(i) for i in range(37)]
    tree = MerkleTree(leaves)
    root = tree.root()
    for i in (0, 1, 3, 4, 15, 16, 36):
        proof = tree.prove(i)
        assert len(proof.siblings) == MERKLE_DEPTH * (MERKLE_ARITY - 1)
        assert verify_merkle_proof(root, leaves[i], proof)
        assert not verify_merkle_proof(root, leaves[i + 1 if i < 36 else 0], proof)
        assert not verify_merkle_proof(root, leaves[i], replace(proof, index=proof.index ^ 1))
        assert not verify_merkle_proof(root, leaves[i], replace(proof, count=proof.count + 1))
        for k in (0, 1, 2, len(proof.siblings) - 1):
            siblings = list(proof.siblings)
            siblings[k] = keccak256(siblings[k])
            assert not verify_merkle_proof(root, leaves[i], replace(proof, siblings=tuple(siblings)))
        assert not verify_merkle_proof(root, leaves[i], replace(proof, siblings=proof.siblings[:-1]))
    # an index past the count is never proven, even with the right path
    assert not verify_merkle_proof(root, ZERO_HASH, tree.prove(37))


def test_binary_tree_proofs() -> None:
    leaves = [leaf(i) for i in range(9)]
    tree = MerkleTree(leaves, arity=2, depth=32)
    for i in range(9):
        assert verify_merkle_proof(tree.root(), leaves[i], tree.prove(i), arity=2, depth=32)


def test_append_from_the_empty_slot_proof() -> None:
    """What L1 does to append a message: prove slot `count` empty, then hash the new leaf in."""
    tree = MerkleTree([leaf(i) for i in range(6)])
    old_root = tree.root()
    proof = tree.prove(6)
    assert proof.index == proof.count == 6
    assert root_from_proof(ZERO_HASH, proof) == old_root
    new_root = root_from_proof(leaf(6), MerkleProof(6, 7, proof.siblings))
    tree.append([leaf(6)])
    assert tree.root() == new_root


@given(st.lists(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 3)), max_size=12), max_size=8))
@settings(max_examples=60, deadline=None)
def test_batch_updates_equal_a_rebuild(batches: list[list[tuple[int, int]]]) -> None:
    tree = MerkleTree()
    model: list[bytes] = []
    for batch in batches:
        updates: dict[int, bytes] = {}
        for slot, salt in batch:
            if slot < len(model):
                updates[slot] = keccak256(bytes((salt,)) + model[slot])
        grow = [leaf(len(model) + k) for k in range(len(batch) % 3)]
        for k, new in enumerate(grow):
            updates[len(model) + k] = new
        tree.update(updates)
        for slot, value in sorted(updates.items()):
            if slot < len(model):
                model[slot] = value
            else:
                model.append(value)
        assert tree.root() == MerkleTree(model).root()
    with pytest.raises(IndexError):
        tree.update({tree.count + 1: leaf(0)})


# --- accounts -------------------------------------------------------------------------------

ACCOUNTS = [(address(i), Account(i % 3, 10**18 * i + 7)) for i in range(1, 41)]


def test_account_leaf_encoding() -> None:
    a, b = address(1), address(2)
    packed = a + (5).to_bytes(8, "big") + (10**20).to_bytes(32, "big") + b
    assert len(packed) == 80
    assert account_leaf_hash(a, 5, 10**20, b) == keccak256(packed)
    assert AccountLeaf(a, 5, 10**20, b).hash() == keccak256(packed)


def test_sorted_linked_list_and_sentinel() -> None:
    tree = AccountTree(ACCOUNTS)
    assert tree.count == len(ACCOUNTS) + 1
    assert tree.leaf(0).account == ZERO_ADDRESS
    chain = [tree.leaf(0)]
    while chain[-1].next != ZERO_ADDRESS:
        index = tree.index_of(chain[-1].next)
        assert index is not None
        chain.append(tree.leaf(index))
    assert [x.account for x in chain] == sorted([ZERO_ADDRESS] + [a for a, _ in ACCOUNTS])
    # slots are in creation order
    assert [tree.leaf(i + 1).account for i in range(len(ACCOUNTS))] == [a for a, _ in ACCOUNTS]


def test_inclusion_and_exclusion_proofs() -> None:
    tree = AccountTree(ACCOUNTS)
    root = tree.root()
    for addr, account in ACCOUNTS:
        proof = tree.prove(addr)
        assert proof.leaf.account == addr
        assert verify_account(root, addr, account, proof)
        assert not verify_account(root, addr, Account(account.nonce + 1, account.balance), proof)
        assert not verify_account(root, addr, Account(account.nonce, account.balance + 1), proof)
        assert not verify_account(root, addr, None, proof)  # present: cannot be excluded
    ordered = sorted(a for a, _ in ACCOUNTS)
    absent = [
        b"\x00" * 19 + b"\x01",  # just above the sentinel
        bytes.fromhex("ff" * 20),  # above the largest: low leaf has next == 0
        (int.from_bytes(ordered[5], "big") + 1).to_bytes(20, "big"),  # between two
        address(1000),
    ]
    for addr in absent:
        proof = tree.prove(addr)
        assert proof.leaf.account < addr
        assert verify_account(root, addr, None, proof)
        assert not verify_account(root, addr, Account(0, 0), proof)
        # the low leaf of one address does not exclude an address past its next
        if proof.leaf.next != ZERO_ADDRESS:
            beyond = (int.from_bytes(proof.leaf.next, "big") + 1).to_bytes(20, "big")
            assert not verify_account(root, beyond, None, proof)
    # the zero address is always included (as the empty account until funded)
    assert verify_account(root, ZERO_ADDRESS, Account(0, 0), tree.prove(ZERO_ADDRESS))


def test_tampered_account_proofs_fail() -> None:
    tree = AccountTree(ACCOUNTS)
    root = tree.root()
    addr, account = ACCOUNTS[7]
    proof = tree.prove(addr)
    bad_next = replace(proof, leaf=replace(proof.leaf, next=address(999)))
    assert not verify_account(root, addr, account, bad_next)
    siblings = list(proof.path.siblings)
    siblings[3] = bytes(32)
    assert not verify_account(root, addr, account, replace(proof, path=replace(proof.path, siblings=tuple(siblings))))
    assert not verify_account(root, addr, account, replace(proof, path=replace(proof.path, index=0)))
    assert not verify_account(keccak256(root), addr, account, proof)
    # a forged low leaf claiming a gap where an account exists
    other, _ = ACCOUNTS[8]
    forged = AccountProof(AccountLeaf(ZERO_ADDRESS, 0, 0, ZERO_ADDRESS), tree.prove(ZERO_ADDRESS).path)
    assert not verify_account(root, other, None, forged)


def test_batch_update_equals_rebuild_and_is_order_free_for_existing() -> None:
    rng = random.Random(7)
    tree = AccountTree(ACCOUNTS[:10])
    creation = list(ACCOUNTS[:10])
    current = dict(ACCOUNTS[:10])
    for round_ in range(6):
        changes = [(a, Account(current[a].nonce + 1, rng.randrange(10**30))) for a in rng.sample(list(current), 5)]
        fresh = [(address(500 + round_ * 10 + k), Account(0, k + 1)) for k in range(round_)]
        tree.update(changes + fresh)
        creation += fresh
        current.update(changes + fresh)
        rebuilt = AccountTree((a, current[a]) for a, _ in creation)
        assert tree.root() == rebuilt.root()
        assert tree.items()[1:] == [(a, current[a]) for a, _ in creation]
    # existing accounts: the order of a batch does not matter
    changes = [(a, Account(9, 9)) for a, _ in creation[:8]]
    one, two = AccountTree(creation), AccountTree(creation)
    one.update(changes)
    two.update(list(reversed(changes)))
    assert one.root() == two.root()


def test_insert_from_proofs_like_l1() -> None:
    """The one-step proof's insertion: exclusion via the low leaf, relink, append at `count`."""
    tree = AccountTree(ACCOUNTS)
    root = tree.root()
    new = address(4242)
    account = Account(0, 123)
    low_proof = tree.prove(new)
    assert verify_account(root, new, None, low_proof)
    low = low_proof.leaf
    # 1. the low leaf now points at the new address
    mid = root_from_proof(replace(low, next=new).hash(), low_proof.path)
    # 2. the empty slot `count`, proven against that intermediate tree (the prover supplies it)
    leaves = [tree.leaf(i).hash() for i in range(tree.count)]
    leaves[low_proof.path.index] = replace(low, next=new).hash()
    slot = MerkleTree(leaves).prove(tree.count)
    assert root_from_proof(ZERO_HASH, slot) == mid
    # 3. the new leaf takes the slot and the old low.next
    new_leaf = AccountLeaf(new, account.nonce, account.balance, low.next)
    expected = root_from_proof(new_leaf.hash(), MerkleProof(slot.index, slot.count + 1, slot.siblings))
    tree.update([(new, account)])
    assert tree.root() == expected
    assert verify_account(expected, new, account, tree.prove(new))


def test_copy_is_independent() -> None:
    tree = AccountTree(ACCOUNTS)
    root = tree.root()
    clone = tree.copy()
    clone.update([(address(777), Account(0, 1)), (ACCOUNTS[0][0], Account(5, 5))])
    assert tree.root() == root != clone.root()
    assert tree.get(address(777)) is None


def test_pinned_vector() -> None:
    """Guards the encoding: a change here is a hard fork (and the Solidity verifier's test vector)."""
    a1, a2 = address(1), address(2)
    tree = AccountTree([(a1, Account(1, 10**18)), (a2, Account(0, 5))])
    # the definition, by hand: slots in creation order, `next` in address order
    order = sorted([a1, a2])
    successor = {ZERO_ADDRESS: order[0], order[0]: order[1], order[1]: ZERO_ADDRESS}
    leaves = [
        account_leaf_hash(ZERO_ADDRESS, 0, 0, successor[ZERO_ADDRESS]),
        account_leaf_hash(a1, 1, 10**18, successor[a1]),
        account_leaf_hash(a2, 0, 5, successor[a2]),
    ]
    assert tree.root() == naive_root(leaves)
    assert tree.root().hex() == PINNED_ACCOUNT_ROOT
    assert merkle_root([leaf(0), leaf(1), leaf(2)]).hex() == PINNED_MERKLE_ROOT


PINNED_ACCOUNT_ROOT = "cb5cc9d4c61982ce1ed07f0d8d4647d3bae82110e77d6d748042885163df50d0"
PINNED_MERKLE_ROOT = "2f9be25cd510f06789ff5c0b04b84b9fcb2d4bc961a8c15190d7f1506eb9eb2b"
