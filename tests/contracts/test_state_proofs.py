"""StateProofs on a real anvil: the Solidity verifier agrees with protocol/_commitment.

One table of account proofs (trees of 0, 1, 5 and 100 accounts; first, middle and last slots;
absent addresses below, between and above the accounts; tampered proofs) runs against both
verifiers, and each must give every row's expected answer. Then the post-state helpers: a
rewritten leaf and an insertion computed on L1 from proofs give the Python tree's new roots.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from protocol import Account
from protocol._commitment import (
    MAX_LEAVES,
    ZERO_HASH,
    AccountLeaf,
    AccountProof,
    AccountTree,
    MerkleProof,
    MerkleTree,
    root_from_proof,
    verify_account,
)
from services.l1 import Artifact, Contract, L1Client, LocalSigner, RpcError, TxSender, keccak
from tests.l1.anvil import DEV_KEYS

ARTIFACT = Artifact.load("StateProofsHarness")
DEPLOYER = LocalSigner(DEV_KEYS[0])
ZERO_ADDRESS = bytes(20)
#: Generous: the point is "well under a block", not a gas budget (the figure is printed).
GAS_SANITY_BOUND = 200_000


def address(seed: int) -> bytes:
    """A spread-out address, so creation order (slots) differs from address order (the list)."""
    return keccak(seed.to_bytes(32, "big"))[:20]


def tree_of(n: int) -> AccountTree:
    return AccountTree([(address(i), Account(i % 7, 10**18 * i + i)) for i in range(1, n + 1)])


def as_int(a: bytes) -> int:
    return int.from_bytes(a, "big")


def as_address(n: int) -> bytes:
    return n.to_bytes(20, "big")


@dataclass(frozen=True)
class Vector:
    """A claim: `root` holds `address` with `account` (None: the address is absent), by `proof`."""

    name: str
    root: bytes
    address: bytes
    account: Account | None
    proof: AccountProof
    valid: bool


def _flip(siblings: tuple[bytes, ...], k: int) -> tuple[bytes, ...]:
    s = bytearray(siblings[k])
    s[31] ^= 1
    return (*siblings[:k], bytes(s), *siblings[k + 1 :])


def _with_path(proof: AccountProof, **changes: Any) -> AccountProof:
    return replace(proof, path=replace(proof.path, **changes))


def _vectors(label: str, tree: AccountTree) -> list[Vector]:
    root, count = tree.root(), tree.count
    out: list[Vector] = []

    def claim(name: str, who: bytes, account: Account | None, proof: AccountProof, valid: bool) -> None:
        out.append(Vector(f"{label}: {name}", root, who, account, proof, valid))

    # inclusion: first (the zero address), middle and last slot
    for name, slot in {"first slot": 0, "middle slot": count // 2, "last slot": count - 1}.items():
        leaf = tree.leaf(slot)
        who, account, proof = leaf.account, Account(leaf.nonce, leaf.balance), tree.prove(leaf.account)
        claim(f"inclusion, {name}", who, account, proof, True)
        claim(f"inclusion, {name}, wrong balance", who, Account(account.nonce, account.balance + 1), proof, False)
        claim(f"inclusion, {name}, wrong nonce", who, Account(account.nonce + 1, account.balance), proof, False)
        claim(f"inclusion, {name}, as exclusion", who, None, proof, False)
        for k in (0, 3 * 15 + 2):  # a sibling next to the leaf, and one below the tree root
            claim(f"inclusion, {name}, flipped sibling {k}", who, account, _with_path(proof, siblings=_flip(
                proof.path.siblings, k)), False)
        claim(f"inclusion, {name}, count + 1", who, account, _with_path(proof, count=count + 1), False)
        claim(f"inclusion, {name}, index = count", who, account, _with_path(proof, index=count), False)
        claim(f"inclusion, {name}, index + 4**16", who, account,
              _with_path(proof, index=slot + MAX_LEAVES), False)
        if count > 1:
            claim(f"inclusion, {name}, wrong index", who, account,
                  _with_path(proof, index=(slot + 1) % count), False)
            claim(f"inclusion, {name}, count - 1", who, account, _with_path(proof, count=count - 1), False)

    # exclusion: below the smallest account, between two, above the largest
    ordered = sorted(a for a, _ in tree.items() if a != ZERO_ADDRESS)
    absent = {"below the smallest": as_address(1), "above the largest": b"\xff" * 20}
    if len(ordered) >= 2:
        middle = len(ordered) // 2
        absent["between two"] = as_address(as_int(ordered[middle - 1]) + 1)
    for name, who in absent.items():
        assert tree.get(who) is None
        proof = tree.prove(who)
        claim(f"exclusion, {name}", who, None, proof, True)
        claim(f"exclusion, {name}, as inclusion of nothing", who, Account(0, 0), proof, False)
        claim(f"exclusion, {name}, wrong low balance", who, None,
              replace(proof, leaf=replace(proof.leaf, balance=proof.leaf.balance + 1)), False)
        claim(f"exclusion, {name}, flipped sibling", who, None,
              _with_path(proof, siblings=_flip(proof.path.siblings, 1)), False)
        claim(f"exclusion, {name}, wrong count", who, None, _with_path(proof, count=count + 1), False)
        if proof.leaf.next != ZERO_ADDRESS:  # a low leaf that does not skip over the address
            claim(f"exclusion, {name}, by the successor's leaf", who, None, tree.prove(proof.leaf.next), False)
        if proof.leaf.account != ZERO_ADDRESS:
            below = tree.prove(as_address(as_int(proof.leaf.account) - 1)).leaf.account
            claim(f"exclusion, {name}, by the predecessor's leaf", who, None, tree.prove(below), False)
    claim("exclusion of the zero address", ZERO_ADDRESS, None, tree.prove(ZERO_ADDRESS), False)
    return out


TREES = {f"{n} accounts": tree_of(n) for n in (0, 1, 5, 100)}
VECTORS = [v for label, tree in TREES.items() for v in _vectors(label, tree)]


def test_the_table_covers_what_it_claims() -> None:
    assert len({v.name for v in VECTORS}) == len(VECTORS)
    assert sum(v.valid for v in VECTORS) == sum(3 + (3 if t.count > 2 else 2) for t in TREES.values())
    assert TREES["0 accounts"].count == 1 and TREES["100 accounts"].count == 101


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_python_verifier(vector: Vector) -> None:
    assert verify_account(vector.root, vector.address, vector.account, vector.proof) is vector.valid


@pytest.fixture
async def harness(l1: L1Client) -> Contract:
    deployer = await TxSender.create(l1, DEPLOYER)
    receipt = await deployer.wait_receipt(await deployer.send(None, Contract(ARTIFACT).encode_deploy()), 5)
    assert receipt.success and receipt.contract_address is not None
    return Contract(ARTIFACT, receipt.contract_address)


def path_args(path: MerkleProof) -> tuple[int, int, list[bytes]]:
    return path.index, path.count, list(path.siblings)


def solidity_call(vector: Vector) -> tuple[str, tuple[object, ...]]:
    """The harness call that makes `vector`'s claim."""
    leaf, path = vector.proof.leaf, vector.proof.path
    if vector.account is None:
        return "verifyExclusion", (vector.root, vector.address, leaf.account, leaf.nonce, leaf.balance, leaf.next,
                                   *path_args(path))
    # Inclusion hashes the claimed address, nonce and balance; the proof supplies `next`.
    return "verifyInclusion", (vector.root, vector.address, vector.account.nonce, vector.account.balance, leaf.next,
                               *path_args(path))


async def test_solidity_verifier_agrees_with_python_on_every_row(l1: L1Client, harness: Contract) -> None:
    disagreements = []
    for vector in VECTORS:
        function, args = solidity_call(vector)
        (answer,) = await harness.read(l1, function, *args)
        python = verify_account(vector.root, vector.address, vector.account, vector.proof)
        if not (answer == python == vector.valid):
            disagreements.append(f"{vector.name}: solidity {answer}, python {python}, expected {vector.valid}")
    assert not disagreements, "\n".join(disagreements)


async def test_leaf_hash_and_roots_match(l1: L1Client, harness: Contract) -> None:
    tree = TREES["100 accounts"]
    for slot in (0, 57, 100):
        leaf = tree.leaf(slot)
        (digest,) = await harness.read(l1, "accountLeafHash", leaf.account, leaf.nonce, leaf.balance, leaf.next)
        assert digest == leaf.hash()
        path = tree.prove_slot(slot)
        assert (await harness.read(l1, "merkleRoot", digest, *path_args(path)))[0] == tree.root()
        assert (await harness.read(l1, "verifyMerkleProof", tree.root(), digest, *path_args(path)))[0]
    empty = tree.prove_slot(tree.count)  # the next free slot: the path an append uses
    assert (await harness.read(l1, "merkleRoot", ZERO_HASH, *path_args(empty)))[0] == tree.root()
    assert not (await harness.read(l1, "verifyMerkleProof", tree.root(), ZERO_HASH, *path_args(empty)))[0]


async def test_updated_root_is_the_python_tree_after_a_balance_change(l1: L1Client, harness: Contract) -> None:
    before = TREES["100 accounts"]
    who = before.leaf(42).account
    proof = before.prove(who)
    after = before.copy()
    after.update([(who, Account(proof.leaf.nonce, proof.leaf.balance + 12345))])
    new_leaf = after.leaf(42).hash()
    assert after.root() != before.root()
    (root,) = await harness.read(l1, "updatedRoot", before.root(), proof.leaf.hash(), new_leaf, *path_args(proof.path))
    assert root == after.root()
    # A pre-state that the proof does not show is refused, not silently rewritten.
    with pytest.raises(RpcError) as caught:
        await harness.read(l1, "updatedRoot", before.root(), new_leaf, new_leaf, *path_args(proof.path))
    error = harness.decode_error(caught.value.revert_data)
    assert error is not None and error.name == "InvalidProof"


async def test_an_insertion_from_proofs_gives_the_python_tree(l1: L1Client, harness: Contract) -> None:
    """What the one-step proof will do for a new account: relink the low leaf, then append."""
    before = TREES["100 accounts"]
    new, account = address(4242), Account(0, 123)
    low_proof = before.prove(new)
    low = low_proof.leaf
    relinked = replace(low, next=new).hash()
    (mid,) = await harness.read(l1, "updatedRoot", before.root(), low.hash(), relinked, *path_args(low_proof.path))
    assert mid == root_from_proof(relinked, low_proof.path)
    leaves = [before.leaf(i).hash() for i in range(before.count)]  # the prover's intermediate tree
    leaves[low_proof.path.index] = relinked
    slot = MerkleTree(leaves).prove(before.count)
    new_leaf = AccountLeaf(new, account.nonce, account.balance, low.next).hash()
    (root,) = await harness.read(l1, "appendedRoot", mid, new_leaf, before.count, list(slot.siblings))
    after = before.copy()
    after.update([(new, account)])
    assert root == after.root()
    with pytest.raises(RpcError) as caught:  # the slot's path, but against the pre-relink root
        await harness.read(l1, "appendedRoot", before.root(), new_leaf, before.count, list(slot.siblings))
    error = harness.decode_error(caught.value.revert_data)
    assert error is not None and error.name == "InvalidProof"


async def test_gas_of_verify_inclusion(l1: L1Client, harness: Contract) -> None:
    """Printed, not budgeted (pytest -s shows it). The verifier's own execution is small; a
    transaction carrying a proof pays mostly for its calldata, and on a fork with EIP-7623
    (Prague, anvil's default) at the calldata floor of 10 gas per token."""
    assert harness.address is not None
    tree = TREES["100 accounts"]
    leaf = tree.leaf(57)
    args = (tree.root(), leaf.account, leaf.nonce, leaf.balance, leaf.next, *path_args(tree.prove_slot(57)))
    valid, execution = await harness.read(l1, "verifyInclusionGas", *args)
    data = harness.encode_call("verifyInclusion", *args)
    total = await l1.estimate_gas(harness.address, data)
    zeros = data.count(0)
    standard = 21_000 + 4 * zeros + 16 * (len(data) - zeros)
    floor = 21_000 + 10 * (zeros + 4 * (len(data) - zeros))
    print(f"\nverifyInclusion: {execution} gas in the library; a transaction calling it: {total} gas "
          f"({len(data)} bytes of calldata: {standard} with calldata at 4/16 gas per byte, "
          f"{floor} at the EIP-7623 floor)")
    assert valid and 0 < execution < total < GAS_SANITY_BOUND
