"""One-step proofs: what L1's StepVerifier reads to re-execute one step of the derivation machine.

A dispute bisects over the commitments of a trace (``trace``) down to one step; L1 then runs
that step (contracts/StepVerifier.sol) from the agreed snapshot with ``step_proof``'s bytes and
compares the result with the disputed commitment. The proof carries everything the step reads
that L1's storage does not hold itself, opened against what it does hold:

    proof = abi.encode(Proof), contracts/StepState.sol:
      Proof    (bytes input, uint256 inputCount, bytes32 inputTreeRoot, bytes32[48] inputSiblings,
                AccountWitness[] accounts, Append message, Append txs, bytes blob)
      AccountWitness (address account, uint64 nonce, uint256 balance, address next, uint256 index,
                uint256 count, bytes32[48] siblings, bytes32[48] appendSiblings)
      Append   (uint256 count, bytes32[48] siblings)

  input        IDLE and BATCH: the batch leaf at (batchIndex, itemIndex), proven by inputSiblings
               against the inbox's input root of the batch (inputCount: its leaf count). With no
               leaf there, inputTreeRoot instead: the root is keccak256(inputTreeRoot ‖ inputCount).
               FORCED: the raw transaction (its hash is in the inbox). DEPOSITS: abi.encode(from,
               to, mint, l1Block), the preimage of the portal's source hash with the index.
  accounts     every account the step reads or writes, in its order (sender, then ``to``, then
               FEE_VAULT; a deposit's recipient): its leaf, or its low leaf if it has no account,
               with the path, each against the state root the previous write left. For an account
               the step creates, appendSiblings is the path of the free slot once the low leaf
               points to it (see _commitment on insertion).
  message      the message-passer append path (a withdrawal); txs: the transactions-root append.
  blob         a blob batch's leaf (IDLE, BATCH) instead of input and its path: abi.encode of
               contracts/BlobInput.sol's Opening (the batch's versioned hashes and origins, one
               KZG commitment per blob, and the point-evaluation proofs of the field elements
               protocol._blob.leaf_elements names: the header, the leaf's offsets, its bytes).

Fields a step does not read are left empty, and L1 ignores them. The snapshot a proof goes with
must be exact, so the machine must run in trace mode (``Machine(..., trace=True)``).

A dispute's machine reads ``L1Inputs.limited(batch_limit, l1_horizon)`` (the output's batch limit
and L1 horizon, which L1 gets as StepVerifier.step's ``batchLimit`` and ``l1Horizon``): a batch at
or past the limit does not exist, so the step there reads nothing (rule 2's no-op, rule 11's cut)
and its proof is empty, as on L1, even when L1 holds that batch by now. Rule F (a derived block's
start) reads only L1's storage (the batch's L1 block) and the horizon: its proof is empty too.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from eth_abi.abi import encode

from protocol import (
    EMPTY_ACCOUNT,
    FEE_VAULT,
    MERKLE_ARITY,
    MERKLE_DEPTH,
    MESSAGE_PASSER,
    ZERO_HASH,
    Account,
    AccountLeaf,
    AccountTree,
    Leaf,
    MerkleProof,
    MerkleTree,
    State,
    TxLeaf,
    TxRejected,
    decode_transaction,
    leaf_elements,
    leaf_hash,
)
from services.l1 import FIELD_ELEMENTS_PER_BLOB, blob_commitments, point_proofs

from ._machine import DEFAULT_RULES, L1Batch, L1Inputs, Machine, Rules, StepKind
from ._snapshot import Phase, Snapshot

SIBLINGS: Final = MERKLE_DEPTH * (MERKLE_ARITY - 1)
NO_SIBLINGS: Final = (ZERO_HASH,) * SIBLINGS

_PATH = f"bytes32[{SIBLINGS}]"
_ACCOUNT = f"(address,uint64,uint256,address,uint256,uint256,{_PATH},{_PATH})"
_APPEND = f"(uint256,{_PATH})"
#: The ABI type of StepState.Proof.
PROOF_TYPE: Final = f"(bytes,uint256,bytes32,{_PATH},{_ACCOUNT}[],{_APPEND},{_APPEND},bytes)"
#: The ABI type of BlobInput.Opening.
OPENING_TYPE: Final = "(bytes32[],(uint256,bytes32)[],bytes[],uint256[],bytes32[],bytes[])"


@dataclass(frozen=True, slots=True)
class AccountWitness:
    """An account as the tree held it when the step touched it (its leaf, or its low leaf)."""

    leaf: AccountLeaf
    path: MerkleProof
    #: Only for an account the step creates: the free slot's path after the low leaf was relinked.
    append_siblings: tuple[bytes, ...] = NO_SIBLINGS


@dataclass(frozen=True, slots=True)
class AppendWitness:
    """The free slot ``count`` of a tree: its path (the tree's size is ``count``)."""

    count: int = 0
    siblings: tuple[bytes, ...] = NO_SIBLINGS

    @classmethod
    def of(cls, tree: MerkleTree) -> AppendWitness:
        return cls(tree.count, tree.prove(tree.count).siblings)


@dataclass(slots=True)
class StepWitness:
    """StepState.Proof, field for field (see the module notes)."""

    input: bytes = b""
    input_count: int = 0
    input_tree_root: bytes = ZERO_HASH
    input_siblings: tuple[bytes, ...] = NO_SIBLINGS
    accounts: list[AccountWitness] = field(default_factory=list)
    message: AppendWitness = field(default_factory=AppendWitness)
    txs: AppendWitness = field(default_factory=AppendWitness)
    blob: bytes = b""

    def encode(self) -> bytes:
        accounts = [
            (w.leaf.account, w.leaf.nonce, w.leaf.balance, w.leaf.next, w.path.index, w.path.count,
             list(w.path.siblings), list(w.append_siblings))
            for w in self.accounts
        ]
        value = (self.input, self.input_count, self.input_tree_root, list(self.input_siblings), accounts,
                 (self.message.count, list(self.message.siblings)), (self.txs.count, list(self.txs.siblings)),
                 self.blob)
        return encode([PROOF_TYPE], [value])


# --- the proof of one step --------------------------------------------------------------------


def step_proof(machine: Machine, target: int) -> bytes:
    """The proof for the step ``machine.step(target)`` would take next: StepVerifier.step's ``proof``
    (with ``machine.snapshot`` as ``pre``, ``machine.inputs.batch_limit`` as ``batchLimit`` and
    ``machine.inputs.l1_horizon`` as ``l1Horizon``).
    ``machine`` is not changed. Empty for a step that reads nothing (a no-op, a seal, an exhausted
    queue, a batch past the bound, rule F): the contract then decodes nothing."""
    witness = step_witness(machine, target)
    return b"" if witness == StepWitness() else witness.encode()


def step_witness(machine: Machine, target: int) -> StepWitness:
    """What ``step_proof`` encodes. Follows the machine's rules (services.rollups._machine) to find
    what the step reads, and _execution's write order for what it writes."""
    s = machine.snapshot
    _check_exact(machine)
    w = StepWitness()
    inputs = machine.inputs
    if s.phase == Phase.IDLE:
        batch = inputs.batch(s.batch_index)  # None past the bound too
        if s.number < target and batch is not None and not machine.window_lapsed():  # rules 1, F, 2 read nothing
            _batch_leaf(w, batch, s.item_index)
    elif s.phase == Phase.DEPOSITS:
        queued = inputs.deposit(s.deposit_index)
        if queued is not None:
            d = queued.deposit
            w.input = encode(["address", "address", "uint256", "uint256"], [queued.sender, d.to, d.mint,
                                                                              queued.l1_block])
            if queued.l1_block <= s.block_origin_number:  # rule 6
                accounts = _Accounts(machine.state.account_tree, w.accounts)
                accounts.credit(d.to, d.mint)
                w.txs = AppendWitness.of(machine._tx_tree)
    elif s.phase == Phase.FORCED:
        entry = inputs.forced_entry(s.forced_index)
        if entry is not None and entry.l1_block <= s.block_origin_number:  # rule 8
            w.input = entry.raw
            _transaction(w, machine, entry.raw, forced=True)
    elif s.tx_left:  # BATCH; rule 10 (the seal) reads nothing
        batch = inputs.batch(s.batch_index)
        # No batch (past the bound, unreachable from START): rule 11 cuts, L1 reads no proof.
        leaf = _batch_leaf(w, batch, s.item_index) if batch is not None else None
        if isinstance(leaf, TxLeaf):  # rule 12
            _transaction(w, machine, leaf.raw, forced=False)
    return w


def _check_exact(machine: Machine) -> None:
    """The proofs come from the machine's trees: they must be those the snapshot commits to."""
    s, state = machine.snapshot, machine.state
    if state.changed_addresses() or state.message_tree.count != state.message_count:
        raise ValueError("the state has uncommitted changes: run the machine with trace=True")
    if state.account_tree.root() != s.state_root or state.message_tree.root() != s.message_root:
        raise ValueError("the snapshot's roots are not the state's: run the machine with trace=True")
    if s.phase != Phase.IDLE and machine._tx_tree.root() != s.tx_root:
        raise ValueError("the snapshot's transactions root is not the block's: run the machine with trace=True")


def _batch_leaf(w: StepWitness, batch: L1Batch, index: int) -> Leaf | None:
    """Open the batch at ``index``: the leaf and its path, or (no leaf) the leaf count."""
    if batch.blob is not None:
        w.blob = blob_opening(batch, index)
        return batch.leaves[index] if index < len(batch.leaves) else None
    tree = _input_tree(batch)
    w.input_count = tree.count
    if index >= tree.count:
        w.input_tree_root = tree.tree_root()
        return None
    leaf = batch.leaves[index]
    w.input = leaf.encode()
    w.input_siblings = tree.prove(index).siblings
    return leaf


def blob_opening(batch: L1Batch, index: int) -> bytes:
    """BlobInput.Opening for leaf ``index`` of a blob batch: a KZG proof per field element read."""
    blob = batch.blob
    assert blob is not None
    elements = leaf_elements(blob.stream(), index)
    # In the KZG helper processes: a proof holds the GIL ~40 ms, and a long leaf needs ~130 of them.
    proofs = point_proofs([(blob.blobs[e // FIELD_ELEMENTS_PER_BLOB], e % FIELD_ELEMENTS_PER_BLOB) for e in elements])
    value = (list(blob.versioned_hashes), list(blob.origins), list(_commitments(blob.blobs)), elements,
             [y for _, y in proofs], [p for p, _ in proofs])
    return encode([OPENING_TYPE], [value])


@functools.lru_cache(maxsize=4)
def _commitments(blobs: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """A batch's commitments (a trace opens its leaves one by one), in the KZG helpers as the proofs."""
    return tuple(blob_commitments(blobs))



#: Input trees of the last few batches read (a trace reads one batch leaf by leaf), by input root.
_INPUT_TREES: OrderedDict[bytes, MerkleTree] = OrderedDict()
_INPUT_TREES_KEPT: Final = 8


def _input_tree(batch: L1Batch) -> MerkleTree:
    tree = _INPUT_TREES.get(batch.input_root)
    if tree is None:
        tree = MerkleTree([leaf_hash(leaf) for leaf in batch.leaves])
        _INPUT_TREES[batch.input_root] = tree
        if len(_INPUT_TREES) > _INPUT_TREES_KEPT:
            _INPUT_TREES.popitem(last=False)
    else:
        _INPUT_TREES.move_to_end(batch.input_root)
    return tree


def _transaction(w: StepWitness, machine: Machine, raw: bytes, *, forced: bool) -> None:
    """Rules 8 and 12: decode_transaction then apply_transaction (``forced``: apply_forced's base
    fee waiver), as StepState.applyTransaction reads them (this mirrors _execution; the contract
    tests check both agree)."""
    s = machine.snapshot
    try:
        tx = decode_transaction(raw, machine.rules.chain_id)
    except TxRejected:
        return
    base_fee = min(s.block_base_fee, tx.max_fee_per_gas) if forced else s.block_base_fee
    if tx.max_fee_per_gas < base_fee or s.block_gas_used + tx.gas_limit > s.gas_limit:
        return  # refused before any account is read (GAS_LIMIT_ABOVE_BLOCK is a case of the latter)
    accounts = _Accounts(machine.state.account_tree, w.accounts)
    nonce, balance = accounts.read(tx.sender)
    if tx.nonce != nonce or balance < tx.gas_limit * tx.max_fee_per_gas + tx.value:
        return
    gas = tx.intrinsic_gas
    tip = min(tx.max_priority_fee_per_gas, tx.max_fee_per_gas - base_fee)
    accounts.write(tx.sender, Account(nonce + 1, balance - gas * (base_fee + tip) - tx.value))
    assert tx.to is not None  # decode_transaction refuses contract creations
    accounts.credit(tx.to, tx.value)
    accounts.credit(FEE_VAULT, tip * gas)
    if tx.to == MESSAGE_PASSER:
        w.message = AppendWitness.of(machine.state.message_tree)
    w.txs = AppendWitness.of(machine._tx_tree)


class _Accounts:
    """The account tree as L1 rewrites it: one write at a time, each proven against the root the
    previous one left. Works on a copy (made at the first write): the machine's tree is untouched."""

    def __init__(self, tree: AccountTree, witnesses: list[AccountWitness]) -> None:
        self._tree = tree
        self._copied = False
        self._witnesses = witnesses

    def read(self, address: bytes) -> Account:
        """Its account (nonce 0, balance 0 if none), proven: the next witness."""
        proof = self._tree.prove(address)
        self._witnesses.append(AccountWitness(proof.leaf, proof.path))
        return self._tree.get(address) or EMPTY_ACCOUNT

    def write(self, address: bytes, account: Account) -> None:
        """Set the account ``read`` just proved (creating it if it had none)."""
        if not self._copied:
            self._tree = self._tree.copy()
            self._copied = True
        count = self._tree.count
        created = self._tree.index_of(address) is None
        self._tree.update([(address, account)])
        if created:
            # The new slot's siblings do not include the slot itself: the path of slot `count`
            # in the final tree is its path in the tree where only the low leaf had changed.
            self._witnesses[-1] = AccountWitness(self._witnesses[-1].leaf, self._witnesses[-1].path,
                                                 self._tree.prove_slot(count).siblings)

    def credit(self, address: bytes, amount: int) -> None:
        """State.credit: 0 wei reads and writes nothing."""
        if amount:
            nonce, balance = self.read(address)
            self.write(address, Account(nonce, balance + amount))


# --- traces -----------------------------------------------------------------------------------


def trace(start: Snapshot, state: State, inputs: L1Inputs, target: int, rules: Rules = DEFAULT_RULES) -> list[Snapshot]:
    """The derivation trace from ``start`` (IDLE, with ``state`` the state it commits to) towards
    L2 block ``target``: element i is the snapshot after i steps. It ends with the first snapshot
    the machine does not move from (a no-op: past ``target``, or nothing more on L1), which the
    trace repeats forever after. For a dispute's trace, ``inputs`` is bounded by the output's batch
    limit and horizon (``L1Inputs.limited``). ``state`` is copied, not changed."""
    machine = Machine(start, state.copy(), inputs, rules, trace=True)
    snapshots = [machine.snapshot]
    while machine.step(target) is not StepKind.NOOP:
        snapshots.append(machine.snapshot)
    return snapshots


def commitments(snapshots: list[Snapshot]) -> list[bytes]:
    """What the dispute bisects over: each snapshot's commitment."""
    return [s.commitment() for s in snapshots]


def proof_at(start: Snapshot, state: State, inputs: L1Inputs, target: int, index: int,
             rules: Rules = DEFAULT_RULES) -> tuple[Snapshot, bytes]:
    """Step ``index`` (from 0) of the trace ``trace`` gives: its pre-snapshot and proof, i.e.
    StepVerifier.step(pre, target, inputs.batch_limit, inputs.l1_horizon, proof) returns the commitment of snapshot
    ``index + 1`` (past the end of the trace, the last snapshot and a no-op's proof). ``state`` is
    copied, not changed."""
    machine = Machine(start, state.copy(), inputs, rules, trace=True)
    for _ in range(index):
        if machine.step(target) is StepKind.NOOP:
            break
    return machine.snapshot, step_proof(machine, target)
