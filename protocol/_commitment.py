"""State commitments: Merkle trees whose proofs a Solidity contract verifies in one loop.

Everything a Solidity verifier needs is defined here; tests/sequencer/test_commitment.py pins
test vectors (``test_pinned_vector``) and rebuilds roots from this text (``naive_root``).

Hashing (all trees: accounts, messages, transactions)
    H(x) = keccak256(x). A tree is 4-ary with a fixed depth D = 16 (4**16 = 2**32 leaf
    slots). An unused slot is bytes32(0). ZERO[0] = bytes32(0) and ZERO[l+1] =
    H(ZERO[l] ‖ ZERO[l] ‖ ZERO[l] ‖ ZERO[l]) is the root of an empty subtree of height l. An
    inner node is H(c0 ‖ c1 ‖ c2 ‖ c3) of its four children (128 bytes: one keccak-f
    permutation, keccak's rate being 136 bytes, as cheap as a binary node's 64). Leaves fill
    slots 0, 1, 2, ... in order: slots are append-only (a used slot's content may change).

Sized root (what headers, outputs and proofs use)
    root = H(treeRoot ‖ uint256(count)) (64 bytes), ``count`` = number of used slots.
    Committing to the count fixes the slot the next leaf takes, so an insertion re-executed
    on L1 has exactly one result; and no root is ever bytes32(0), even an empty tree's (Nomad).

Merkle proof (``MerkleProof``)
    (uint256 index, uint256 count, bytes32[48] siblings): for each level l = 0..15 from the
    leaf up, the three other children of the node on the path, left to right. Verify::

        node = leafHash; i = index
        for l in 0..15:
            p = i % 4;  s = siblings[3l .. 3l+2]
            node = H(p==0 ? node‖s0‖s1‖s2 : p==1 ? s0‖node‖s1‖s2 : p==2 ? s0‖s1‖node‖s2 : s0‖s1‖s2‖node)
            i = i / 4
        require(index < count && H(node ‖ uint256(count)) == root)

    Append at slot ``count``: the same path for that empty slot (leaf bytes32(0), index ==
    count) reproduces the old tree root; with the new leaf and count + 1 it gives the new one.

Accounts: an indexed Merkle tree (the state root)
    Each used slot holds one account; slot 0 is always the zero address (a sentinel that is
    also the real account 0x0). The accounts form a linked list sorted by address (as
    uint160): each leaf names the next-larger address present, or address(0) for the largest.
    Slots are taken in creation order (see _execution for the order within a transaction).
    Leaf::

        leafHash = H(abi.encodePacked(address account, uint64 nonce, uint256 balance, address next))
                 // 20 + 8 + 32 + 20 = 80 bytes

    Inclusion of (address, nonce, balance): the ``AccountProof`` (leaf, path) of the leaf with
    leaf.account == address. Exclusion of ``address`` (never created: nonce 0, balance 0): the
    proof of its predecessor ("low leaf") with leaf.account < address and (leaf.next ==
    address(0) or address < leaf.next). The zero address is always included, never excluded.
    Inserting ``address`` on L1: exclusion proof of the low leaf; set low.next = address (same
    path, count unchanged); then prove slot ``count`` empty in that tree and put there
    (address, nonce, balance, old low.next) with count + 1 (test_insert_from_proofs_like_l1).

Messages: the message-passer root
    Leaves are the L2->L1 message hashes (``WithdrawalMessage.hash()``) in the order the chain
    recorded them: slot i holds the message with nonce i. Root and proofs as above.

Transactions root (block headers)
    Leaves are the hashes of a block's transactions and deposits in block order; same tree.

Why this tree, in numbers (bench/sequencer_core.py; shared 2-core machine; best of 5, range of 3 runs)
    Roots are taken per block, so what must be fast is one batch update of the accounts a block
    touched: ~7,500 at 15k tx/s in 250 ms blocks. Each costs its leaf hash plus the inner nodes
    of its path that no other touched path already rehashed.

    - A plain sparse Merkle tree keyed by keccak(address) (depth 256) needs ~1.83M node hashes
      for 7,500 accounts (their paths share only the top ~13 levels): >= 1,350-1,960 ms at
      0.74-1.07 us per bare keccak here, several blocks' worth. Compressing single-leaf subtrees
      makes it about as cheap as this tree, but its proofs then have variable depth and two
      leaf shapes that the Solidity verifier and the one-step proof must both handle.
    - An indexed tree keeps slots dense from 0: the levels above log4(count) have one node,
      shared by every path, so an update costs ~log4(count) hashes per account, less sharing.
      Exclusion is one ordinary inclusion proof of the low leaf: one verifier for everything.
    - 4-ary rather than binary: the same number of keccak permutations per path, half the
      Python-level node operations. Rehashing 7,500 random slots: 4.0-4.3 ms (4-ary) vs
      10.5-11.1 ms (binary) with 10,000 leaves, 21-27 vs 44-61 ms with 100,000. The
      price: 48 siblings (1,536 bytes of calldata) per proof instead of 32.
    - Whole per-block update (leaf hashes, linked list, tree, root) of 7,500 touched accounts:
      19-26 ms with 10,000 accounts and 40-44 ms with 100,000; 7,500 new accounts
      (two paths each: low leaf and new slot) 39-50 / 73-77 ms. From scratch: 440-520
      ms for 100,000 accounts, ~8 s for a million: so the sequencer keeps the nodes in its store
      and a restart opens them lazily (``StoredAccountTree``: the same tree, read on demand).
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sha3 import keccak_256  # type: ignore[import-untyped]

from ._account import Account
from ._native import account_leaves, hash_level
from ._rules import ADDRESS_SIZE, HASH_SIZE, MERKLE_ARITY, MERKLE_DEPTH, ZERO_ADDRESS

ZERO_HASH = bytes(HASH_SIZE)


def _zero_hashes(arity: int, depth: int) -> tuple[bytes, ...]:
    zeros = [ZERO_HASH]
    for _ in range(depth):
        zeros.append(keccak_256(zeros[-1] * arity).digest())
    return tuple(zeros)


#: ZERO[l]: the root of an empty subtree of height l (ZERO[0] is an empty leaf slot).
ZERO: tuple[bytes, ...] = _zero_hashes(MERKLE_ARITY, MERKLE_DEPTH)
MAX_LEAVES = MERKLE_ARITY**MERKLE_DEPTH


def sized_root(tree_root: bytes, count: int) -> bytes:
    """H(treeRoot ‖ uint256(count)): the root every header, output and proof uses."""
    digest: bytes = keccak_256(tree_root + count.to_bytes(32, "big")).digest()
    return digest


@dataclass(frozen=True, slots=True)
class MerkleProof:
    """The path of slot ``index`` in a tree of ``count`` used slots.

    ``siblings``: per level from the leaf up, the node's other children left to right
    (depth x (arity - 1) hashes: 16 x 3 = 48).
    """

    index: int
    count: int
    siblings: tuple[bytes, ...]


def root_from_proof(
    leaf_hash: bytes, proof: MerkleProof, *, arity: int = MERKLE_ARITY, depth: int = MERKLE_DEPTH
) -> bytes:
    """The sized root the proof leads to from ``leaf_hash`` (the Solidity loop, in Python)."""
    node = leaf_hash
    index = proof.index
    width = arity - 1
    siblings = proof.siblings
    for level in range(depth):
        position = index % arity
        others = siblings[level * width : (level + 1) * width]
        node = keccak_256(b"".join((*others[:position], node, *others[position:]))).digest()
        index //= arity
    return sized_root(node, proof.count)


def verify_merkle_proof(
    root: bytes, leaf_hash: bytes, proof: MerkleProof, *, arity: int = MERKLE_ARITY, depth: int = MERKLE_DEPTH
) -> bool:
    """Whether slot ``proof.index`` of the tree with sized root ``root`` holds ``leaf_hash``."""
    return (
        len(proof.siblings) == depth * (arity - 1)
        and all(len(s) == HASH_SIZE for s in proof.siblings)
        and 0 <= proof.index < proof.count <= arity**depth
        and root_from_proof(leaf_hash, proof, arity=arity, depth=depth) == root
    )


class MerkleTree:
    """A fixed-depth tree over slots 0..count-1, every level cached, rehashed along touched paths.

    ``levels[l]`` holds the nodes of height l that have a used slot below them; the nodes right
    of them are empty subtrees (ZERO[l]). A batch update rehashes each touched node once.
    ``arity`` and ``depth`` exist for measurements (bench/sequencer_core.py compares a binary
    tree); the chain uses the rule: MERKLE_ARITY, MERKLE_DEPTH.
    """

    __slots__ = ("_arity", "_depth", "_levels", "_shift", "_zero")

    def __init__(self, leaves: Iterable[bytes] = (), *, arity: int = MERKLE_ARITY, depth: int = MERKLE_DEPTH) -> None:
        if arity < 2 or arity & (arity - 1):
            raise ValueError("arity must be a power of two")
        self._arity = arity
        self._depth = depth
        self._shift = arity.bit_length() - 1
        self._zero = ZERO if (arity, depth) == (MERKLE_ARITY, MERKLE_DEPTH) else _zero_hashes(arity, depth)
        self._levels: list[list[bytes]] = [[] for _ in range(depth + 1)]
        self.append(leaves)

    @property
    def count(self) -> int:
        return len(self._levels[0])

    @property
    def capacity(self) -> int:
        return int(self._arity**self._depth)

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def tree_root(self) -> bytes:
        """The root of the fixed-depth tree, without the count."""
        top = self._levels[self._depth]
        return top[0] if top else self._zero[self._depth]

    def root(self) -> bytes:
        """The sized root: H(treeRoot ‖ uint256(count))."""
        return sized_root(self.tree_root(), self.count)

    def append(self, leaves: Iterable[bytes]) -> None:
        """Fill the next slots with ``leaves``, in order."""
        level0 = self._levels[0]
        first = len(level0)
        level0.extend(leaves)
        if len(level0) > self.capacity:
            del level0[first:]
            raise OverflowError("Merkle tree full")
        self._rehash(range(first, len(level0)))

    def update(self, leaves: dict[int, bytes]) -> None:
        """Set slots (index -> leaf hash). Indices at or past ``count`` grow the tree; together
        they must be count, count+1, ... (no gaps)."""
        level0 = self._levels[0]
        n = len(level0)
        grow = sorted(i for i in leaves if i >= n)
        if grow and grow != list(range(n, n + len(grow))):
            raise IndexError("new slots must follow the last used one without gaps")
        if n + len(grow) > self.capacity:
            raise OverflowError("Merkle tree full")
        level0.extend([ZERO_HASH] * len(grow))
        for index, leaf in leaves.items():
            level0[index] = leaf
        self._rehash(leaves)

    def _rehash(self, touched: Iterable[int]) -> None:
        arity = self._arity
        shift = self._shift
        zero = self._zero
        levels = self._levels
        dirty = set(touched)
        for height in range(self._depth):
            if not dirty:
                return
            below = levels[height]
            above = levels[height + 1]
            n = len(below)
            missing = -(-n // arity) - len(above)
            if missing > 0:
                above.extend([ZERO_HASH] * missing)
            pad = -n % arity
            if pad:  # complete the last node with empty subtrees for the duration of the level
                below.extend([zero[height]] * pad)
            parents = {i >> shift for i in dirty}
            hash_level(below, above, list(parents), arity)  # one C call a level, not a keccak call a node
            if pad:
                del below[n:]
            dirty = parents

    def prove(self, index: int) -> MerkleProof:
        """The proof of slot ``index`` (a used slot, or ``count``: the next, empty one)."""
        if not 0 <= index <= self.count or index >= self.capacity:
            raise IndexError(f"slot {index} of a tree of {self.count}")
        arity = self._arity
        siblings: list[bytes] = []
        i = index
        for height in range(self._depth):
            level = self._levels[height]
            first = i - i % arity
            empty = self._zero[height]
            siblings.extend(level[j] if j < len(level) else empty for j in range(first, first + arity) if j != i)
            i //= arity
        return MerkleProof(index, self.count, tuple(siblings))

    def nodes(self) -> Iterator[tuple[int, bytes]]:
        """Every node of a used subtree as (node_key(height, index), hash), leaves included: what a
        :class:`StoredAccountTree` reads (the nodes right of them are empty subtrees, never stored)."""
        for height, level in enumerate(self._levels):
            for index, node in enumerate(level):
                yield node_key(height, index), node

    def copy(self) -> MerkleTree:
        clone = MerkleTree.__new__(MerkleTree)
        clone._arity = self._arity
        clone._depth = self._depth
        clone._shift = self._shift
        clone._zero = self._zero
        clone._levels = [level.copy() for level in self._levels]
        return clone


def node_key(height: int, index: int) -> int:
    """One integer naming a node of a fixed-depth tree: its height (0: a leaf) above its index
    (under 4**16 = 2**32). A stored tree keys its nodes by it."""
    return height << _INDEX_BITS | index


_LEVEL_BITS = MERKLE_ARITY.bit_length() - 1  # log2(arity): a level's index is the one below shifted by it
_INDEX_BITS = _LEVEL_BITS * MERKLE_DEPTH  # every index of the rule's tree


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The sized root of a tree over ``leaves`` (a block's transaction hashes, for one)."""
    return MerkleTree(leaves).root()


# --- accounts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountLeaf:
    """What one slot of the account tree commits to."""

    account: bytes
    nonce: int
    balance: int
    #: The next-larger address in the tree, or the zero address for the largest.
    next: bytes

    def hash(self) -> bytes:
        return account_leaf_hash(self.account, self.nonce, self.balance, self.next)


def account_leaf_hash(address: bytes, nonce: int, balance: int, next_address: bytes) -> bytes:
    """H(abi.encodePacked(address, uint64 nonce, uint256 balance, address next))."""
    digest: bytes = keccak_256(address + nonce.to_bytes(8, "big") + balance.to_bytes(32, "big") + next_address).digest()
    return digest


@dataclass(frozen=True, slots=True)
class AccountProof:
    """Inclusion (leaf.account is the address) or exclusion (leaf is its low leaf) proof."""

    leaf: AccountLeaf
    path: MerkleProof


def verify_account(root: bytes, address: bytes, account: Account | None, proof: AccountProof) -> bool:
    """Whether ``root`` commits to ``address`` holding ``account`` (None: never created).

    Inclusion: proof.leaf.account == address and its nonce and balance equal ``account``.
    Exclusion: proof.leaf.account < address < proof.leaf.next (or next is the zero address).
    Either way the leaf must sit at proof.path.index under ``root``.
    """
    leaf = proof.leaf
    if len(address) != ADDRESS_SIZE or len(leaf.account) != ADDRESS_SIZE or len(leaf.next) != ADDRESS_SIZE:
        return False
    if not (0 <= leaf.nonce < 2**64 and 0 <= leaf.balance < 2**256):
        return False
    if account is not None:
        if leaf.account != address or (leaf.nonce, leaf.balance) != (account.nonce, account.balance):
            return False
    elif not (leaf.account < address and (leaf.next == ZERO_ADDRESS or address < leaf.next)):
        return False
    return verify_merkle_proof(root, leaf.hash(), proof.path)


class _SortedAddresses:
    """Addresses in order with O(sqrt n) inserts (a list of bounded sorted blocks)."""

    __slots__ = ("_blocks", "_maxes")
    _BLOCK = 1024

    def __init__(self) -> None:
        self._blocks: list[list[bytes]] = []
        self._maxes: list[bytes] = []

    def insert(self, address: bytes) -> bytes | None:
        """Insert a new address; returns its predecessor (the largest address below it), if any."""
        if not self._blocks:
            self._blocks.append([address])
            self._maxes.append(address)
            return None
        maxes = self._maxes
        k = bisect_left(maxes, address)
        if k == len(maxes):  # above everything: append to the last block
            k -= 1
            block = self._blocks[k]
            low: bytes | None = block[-1]
            block.append(address)
        else:
            block = self._blocks[k]
            j = bisect_left(block, address)
            low = block[j - 1] if j else (maxes[k - 1] if k else None)
            block.insert(j, address)
        maxes[k] = block[-1]
        if len(block) > 2 * self._BLOCK:
            half = self._BLOCK
            self._blocks[k : k + 1] = [block[:half], block[half:]]
            maxes[k : k + 1] = [block[half - 1], block[-1]]
        return low

    def predecessor(self, address: bytes) -> bytes | None:
        """The largest address below ``address``, if any."""
        k = bisect_left(self._maxes, address)
        if k < len(self._blocks):
            block = self._blocks[k]
            j = bisect_left(block, address)
            if j:
                return block[j - 1]
        return self._maxes[k - 1] if k else None

    def copy(self) -> _SortedAddresses:
        clone = _SortedAddresses()
        clone._blocks = [block.copy() for block in self._blocks]
        clone._maxes = self._maxes.copy()
        return clone


class AccountTree:
    """The indexed Merkle tree of accounts (see the module docstring)."""

    __slots__ = ("_accounts", "_addresses", "_index", "_next", "_sorted", "_tree")

    def __init__(self, accounts: Iterable[tuple[bytes, Account]] = ()) -> None:
        """A tree of ``accounts``, given in creation order (the zero address first, or added)."""
        self._tree = MerkleTree()
        self._index: dict[bytes, int] = {}
        self._addresses: list[bytes] = []
        self._accounts: list[Account] = []
        self._next: list[bytes] = []
        self._sorted = _SortedAddresses()
        self.update([(ZERO_ADDRESS, Account(0, 0)), *accounts])

    @property
    def count(self) -> int:
        return len(self._addresses)

    def root(self) -> bytes:
        """The state root: the sized root of the account tree."""
        return self._tree.root()

    def index_of(self, address: bytes) -> int | None:
        return self._index.get(address)

    def get(self, address: bytes) -> Account | None:
        i = self._index.get(address)
        return None if i is None else self._accounts[i]

    def update(self, changes: Iterable[tuple[bytes, Account]]) -> None:
        """Write accounts; an address not in the tree yet takes the next slot, in ``changes`` order."""
        index = self._index
        addresses = self._addresses
        accounts = self._accounts
        next_of = self._next
        insert = self._sorted.insert
        dirty: set[int] = set()
        for address, account in changes:
            i = index.get(address)
            if i is None:
                if len(address) != ADDRESS_SIZE:
                    raise ValueError("an address is 20 bytes")
                i = len(addresses)
                low = insert(address)
                if low is None:  # only the zero address has no predecessor: it is the sentinel
                    next_of.append(ZERO_ADDRESS)
                else:
                    low_index = index[low]
                    next_of.append(next_of[low_index])
                    next_of[low_index] = address
                    dirty.add(low_index)
                index[address] = i
                addresses.append(address)
                accounts.append(account)
            else:
                accounts[i] = account
            dirty.add(i)
        # account_leaf_hash for every touched account of the block, in one C call
        slots = list(dirty)
        self._tree.update(dict(zip(slots, account_leaves(addresses, accounts, next_of, slots), strict=True)))

    def leaf(self, index: int) -> AccountLeaf:
        nonce, balance = self._accounts[index]
        return AccountLeaf(self._addresses[index], nonce, balance, self._next[index])

    def prove(self, address: bytes) -> AccountProof:
        """Inclusion proof if ``address`` is in the tree, else exclusion proof (its low leaf)."""
        i = self._index.get(address)
        if i is None:
            low = self._sorted.predecessor(address)
            assert low is not None  # the zero address is always there and below any other
            i = self._index[low]
        return AccountProof(self.leaf(i), self._tree.prove(i))

    def prove_slot(self, index: int) -> MerkleProof:
        """The path of any slot, including ``count`` (the empty slot an insertion fills)."""
        return self._tree.prove(index)

    def items(self) -> list[tuple[bytes, Account]]:
        """Every account in slot (= creation) order: rebuilds this exact tree."""
        return list(zip(self._addresses, self._accounts, strict=True))

    def nodes(self) -> Iterator[tuple[int, bytes]]:
        """Every node as (node_key, hash): what a :class:`StoredAccountTree` over a store holding
        them (and the accounts) reads."""
        return self._tree.nodes()

    def read(self, addresses: Iterable[bytes]) -> dict[bytes, Account]:
        """The accounts of ``addresses`` that the tree holds (a stored tree reads them)."""
        return {a: account for a in addresses if (account := self.get(a)) is not None}

    def copy(self) -> AccountTree:
        clone = AccountTree.__new__(AccountTree)
        clone._tree = self._tree.copy()
        clone._index = self._index.copy()
        clone._addresses = self._addresses.copy()
        clone._accounts = self._accounts.copy()
        clone._next = self._next.copy()
        clone._sorted = self._sorted.copy()
        return clone


class AccountSource(Protocol):
    """Where a :class:`StoredAccountTree` reads what it has not cached: the accounts and tree nodes
    of the last durable state (the sequencer's store). Never the changes not yet written."""

    def accounts_at(self, addresses: Sequence[bytes]) -> dict[bytes, tuple[int, Account]]:
        """(slot, account) of each of ``addresses`` that is stored; the others are absent."""
        ...

    def below(self, address: bytes) -> bytes | None:
        """The largest stored address below ``address``, if any."""
        ...

    def above(self, address: bytes) -> bytes | None:
        """The smallest stored address above ``address``, if any."""
        ...

    def at_slot(self, slot: int) -> tuple[bytes, Account] | None:
        """The account in slot ``slot``, if it is used."""
        ...

    def nodes(self, keys: Sequence[int]) -> dict[int, bytes]:
        """The stored nodes of ``keys`` (node_key); a key of an empty subtree is never stored."""
        ...


class StoredAccountTree(AccountTree):
    """The account tree over a store: the same slots, leaves, nodes and root as :class:`AccountTree`
    (tests/sequencer/test_stored_tree.py compares them), but nothing is read until it is needed.

    Opening one costs nothing but the top node: a restart at a million accounts reads neither the
    accounts nor the leaves. ``update`` reads the accounts it does not know, the low leaves of new
    accounts (``below`` / ``above`` find them), and the siblings of the paths it rehashes, then
    keeps what it computed (``take_writes``: the nodes to write with the block, in the same durable
    commit). Reads see the last durable state, so a tree is updated once between durable writes:
    the chain seals one block at a time and writes it before the next; if a write fails, it opens a
    new tree over the store. ``evict`` bounds the caches once a write is durable.
    """

    __slots__ = ("_count", "_known", "_levels", "_next_of", "_source", "_writes")

    def __init__(self, source: AccountSource, count: int) -> None:
        if count < 1:
            raise ValueError("a stored account tree holds the zero address at least")
        self._source = source
        self._count = count
        #: node caches, per height: index -> hash (what was read, and what ``update`` computed)
        self._levels: list[dict[int, bytes]] = [{} for _ in range(MERKLE_DEPTH + 1)]
        #: address -> slot, for addresses read or created
        self._known: dict[bytes, int] = {}
        #: address -> the next-larger address (the linked list), for addresses whose leaf was hashed
        self._next_of: dict[bytes, bytes] = {}
        #: nodes computed since the last ``take_writes``
        self._writes: dict[int, bytes] = {}

    @property
    def count(self) -> int:
        return self._count

    def root(self) -> bytes:
        return sized_root(self._node(MERKLE_DEPTH, 0), self._count)

    def index_of(self, address: bytes) -> int | None:
        slot = self._known.get(address)
        if slot is None:
            found = self._source.accounts_at([address]).get(address)
            if found is None:
                return None
            slot = self._known[address] = found[0]
        return slot

    def get(self, address: bytes) -> Account | None:
        return self.read([address]).get(address)

    def read(self, addresses: Iterable[bytes]) -> dict[bytes, Account]:
        """The stored accounts of ``addresses`` (their last durable values)."""
        wanted = list(addresses)
        if not wanted:
            return {}
        found = self._source.accounts_at(wanted)
        known = self._known
        for address, (slot, _) in found.items():
            known[address] = slot
        return {address: account for address, (_, account) in found.items()}

    def update(self, changes: Iterable[tuple[bytes, Account]]) -> None:
        """Write accounts; an address not in the tree yet takes the next slot, in ``changes`` order."""
        values = dict(changes)  # the last write of each; first writes in order (new slots)
        known = self._known
        unknown = [a for a in values if a not in known]
        if unknown:
            self.read(unknown)
        dirty: dict[int, bytes] = {}  # slot -> address
        created: list[bytes] = []  # this update's new addresses, sorted (not in the store yet)
        for address in values:
            slot = known.get(address)
            if slot is None:
                if len(address) != ADDRESS_SIZE:
                    raise ValueError("an address is 20 bytes")
                low = self._below(address, created)
                if low is None:
                    raise ValueError("the zero address is in every stored tree")
                low_slot = self.index_of(low)
                assert low_slot is not None  # a stored address, or one created above
                self._next_of[address] = self._successor(low, created)
                self._next_of[low] = address
                slot = known[address] = self._count
                if slot >= MAX_LEAVES:
                    raise OverflowError("Merkle tree full")
                self._count += 1
                created.insert(bisect_left(created, address), address)
                dirty[low_slot] = low
            dirty[slot] = address
        lows = [a for a in dirty.values() if a not in values]
        if lows:
            values.update(self.read(lows))  # unchanged since the last durable write
        slots = list(dirty)
        addresses = [dirty[s] for s in slots]
        nexts = self._next_of
        leaves = account_leaves(addresses, [values[a] for a in addresses],
                                [nexts[a] if a in nexts else self._successor(a, created) for a in addresses],
                                list(range(len(slots))))
        self._rehash(dict(zip(slots, leaves, strict=True)))

    def _below(self, address: bytes, created: list[bytes]) -> bytes | None:
        """The predecessor of ``address`` among the stored addresses and ``created``."""
        stored = self._source.below(address)
        j = bisect_left(created, address)
        local = created[j - 1] if j else None
        if stored is None or (local is not None and local > stored):
            return local
        return stored

    def _successor(self, address: bytes, created: list[bytes]) -> bytes:
        """The next-larger address after ``address`` (the zero address after the largest)."""
        found = self._next_of.get(address)
        if found is None:
            stored = self._source.above(address)
            j = bisect_left(created, address)
            if j < len(created) and created[j] == address:
                j += 1
            local = created[j] if j < len(created) else None
            candidates = [a for a in (stored, local) if a is not None]
            found = self._next_of[address] = min(candidates) if candidates else ZERO_ADDRESS
        return found

    def _width(self, height: int) -> int:
        """Nodes at ``height`` that have a used slot below them."""
        return -(-self._count >> _LEVEL_BITS * height)

    def _node(self, height: int, index: int) -> bytes:
        if index >= self._width(height):
            return ZERO[height]
        level = self._levels[height]
        node = level.get(index)
        if node is None:
            self._fetch(height, [index])
            node = level[index]
        return node

    def _fetch(self, height: int, indices: Iterable[int]) -> None:
        """Read the nodes at ``height`` of ``indices`` (used ones, not cached) from the store."""
        level = self._levels[height]
        keys = [node_key(height, i) for i in indices if i not in level]
        if not keys:
            return
        found = self._source.nodes(keys)
        if len(found) != len(keys):
            raise LookupError(f"the store lacks {len(keys) - len(found)} node(s) of height {height}")
        base = node_key(height, 0)
        for key, node in found.items():
            level[key - base] = node

    def _rehash(self, leaves: Mapping[int, bytes]) -> None:
        """Set leaves (slot -> hash) and rehash their paths, reading the siblings not cached."""
        writes = self._writes
        self._levels[0].update(leaves)
        writes.update(leaves)  # node_key(0, slot) is the slot
        dirty: Iterable[int] = leaves.keys()
        for height in range(MERKLE_DEPTH):
            parents = sorted({i >> _LEVEL_BITS for i in dirty})
            width = self._width(height)
            below = self._levels[height]
            spans = [c for p in parents for c in range(p << _LEVEL_BITS, (p << _LEVEL_BITS) + MERKLE_ARITY)]
            missing = [c for c in spans if c < width and c not in below]
            if missing:
                self._fetch(height, missing)
            # A cached node is always left of ``width`` (the tree only grows): absent means empty.
            children = list(map(below.get, spans, itertools.repeat(ZERO[height])))
            hashed: list[bytes] = [ZERO_HASH] * len(parents)
            hash_level(children, hashed, list(range(len(parents))), MERKLE_ARITY)
            self._levels[height + 1].update(zip(parents, hashed, strict=True))
            base = node_key(height + 1, 0)
            writes.update(zip([base | p for p in parents], hashed, strict=True))
            dirty = parents

    def take_writes(self) -> dict[int, bytes]:
        """The nodes ``update`` computed since the last call (node_key -> hash): the block writes them."""
        writes, self._writes = self._writes, {}
        return writes

    def evict(self, max_nodes: int, max_addresses: int) -> None:
        """Forget cached nodes (the lowest levels first) and addresses beyond these bounds. Only once
        every change is durable (``take_writes`` written): what is forgotten is read back."""
        assert not self._writes, "evicting nodes not yet written"
        total = sum(len(level) for level in self._levels)
        for level in self._levels:
            if total <= max_nodes:
                break
            total -= len(level)
            level.clear()
        if len(self._known) > max_addresses:
            self._known.clear()
        if len(self._next_of) > max_addresses:
            self._next_of.clear()

    def leaf(self, index: int) -> AccountLeaf:
        found = self._source.at_slot(index)
        if found is None:
            raise IndexError(f"slot {index} of a tree of {self._count}")
        address, (nonce, balance) = found
        return AccountLeaf(address, nonce, balance, self._successor(address, []))

    def prove(self, address: bytes) -> AccountProof:
        slot = self.index_of(address)
        if slot is None:
            low = self._source.below(address)
            assert low is not None  # the zero address is always there and below any other
            address = low
            slot = self.index_of(low)
            assert slot is not None
        account = self.get(address)
        assert account is not None
        leaf = AccountLeaf(address, account.nonce, account.balance, self._successor(address, []))
        return AccountProof(leaf, self.prove_slot(slot))

    def prove_slot(self, index: int) -> MerkleProof:
        if not 0 <= index <= self._count or index >= MAX_LEAVES:
            raise IndexError(f"slot {index} of a tree of {self._count}")
        siblings: list[bytes] = []
        i = index
        for height in range(MERKLE_DEPTH):
            first = i - i % MERKLE_ARITY
            siblings.extend(self._node(height, j) for j in range(first, first + MERKLE_ARITY) if j != i)
            i //= MERKLE_ARITY
        return MerkleProof(index, self._count, tuple(siblings))

    def items(self) -> list[tuple[bytes, Account]]:
        raise NotImplementedError("a stored tree does not list its accounts: its store does")

    def nodes(self) -> Iterator[tuple[int, bytes]]:
        raise NotImplementedError("a stored tree's nodes are in its store")

    def copy(self) -> AccountTree:
        raise NotImplementedError("a stored tree is not copied: open another over its store")
