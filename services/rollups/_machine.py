"""The derivation machine: L2 from L1 data alone, one small deterministic step at a time.

Derivation (the challenger rebuilding L2), the trace a dispute bisects over and the one-step
proof on L1 (contracts/StepVerifier.sol) are the same function, ``step``, applied to a
``Snapshot`` (see _snapshot) and to what L1 holds. A step reads at most one L1 input: one leaf
of an inbox batch (see protocol._batch_input), one portal deposit or one forced-queue
entry. The sequencer follows the same rules when it builds blocks (services.sequencer._chain).

Inputs (all on L1, all append-only)
    batch b      inbox.batch(b) = (inputRoot, l1Block), the root computed by the inbox from the
                 batch's calldata; its leaves prove against inputRoot, whose sized-root count
                 is the number of leaves. A batch posted in frames (appendFrame, protocol._frames)
                 is the same entry: its leaves are its frames' in order, l1Block the closing
                 frame's block (so rule 5c and F judge it when it closes); a channel not closed is
                 no batch, and nothing here waits on it (rule F covers a batcher that never closes).
    deposit d    portal.sourceHash(d) = keccak256(abi.encode(d, from, to, mint, l1Block)).
    forced f     inbox.forcedTransaction(f) = (keccak256(raw), l1Block).

Append-only is not enough for a step to give the same answer whenever it is replayed: whether
batch b exists changes when it is posted, and so does how far L1 has been read. Every derivation
therefore has a batch limit L and an L1 horizon h: it has read every input in L1 blocks <= h, and
batch b exists only if b < L (``L1Inputs.limited``; StepVerifier takes both). Derivation following
L1 has no batch limit, and its horizon is the last L1 block it has read. A dispute reads what its
output claims: the output's l1Horizon, and its batchLimit, the number of inbox batches with an L1
block <= that horizon (OutputRegistry checks it). Without the bound a batch posted during a game
would turn a no-op into a real step, and an output claiming a block that no batch held when it was
proposed (a "future" or invented block) could not be disproven before it finalized: its trace would
only fail once the block's batch arrived, if ever. With it, an output claims what L1 held at its
horizon; the honest trace stops (no-ops) where those batches do, so such an output loses. Deposits
and forced entries need no bound of their own: a block takes only those whose L1 block is at most
its L1 origin, itself at most its batch's L1 block (rule 5c) or (a derived block, rule F) at most
h + 1 - W <= h, so all of them are on L1 within the horizon; an entry appended later has a later L1
block and is skipped (rules 7, 9) exactly as if it did not exist.

Rules (W = the sequencer window in L1 blocks, a deployment constant; chain id likewise). Rule F
and 5c decide with protocol._window's functions, which the sequencer uses to follow derivation.
``s`` is the snapshot before the step; "+=" and "skip" change only the fields named.

IDLE (between blocks)
  1. s.number >= target                     no-op (the trace is padded with these)
  F. the sequencer's window lapsed: with o = s.l1OriginNumber (the last sealed block's origin) and
     E = the L1 block of batch s.batchIndex if it exists (as in 2), else h + 1: if E >= o + W + 1
     (no block posted before the window of the chain's latest origin closed remains to be read),
     derivation makes the block itself (Optimism's forced empty batches): phase DEPOSITS,
     blockTimestamp s.timestamp, blockOriginNumber o + 1, blockOriginHash zero, blockBaseFee =
     next_base_fee(s.baseFee, s.gasUsed, s.gasLimit), blockGasUsed 0, txRoot = the empty tree's
     sized root, txLeft 0; cursors unchanged. Its due deposits and forced transactions (L1 block
     <= o + 1) go in by rules 6-9, then it seals (10). Origins advance by exactly one per derived
     block, so the derived chain is a function of L1 alone, and a larger horizon only extends it
     (E can only grow with h: it never changes a block already derived). A sequencer block posted
     later for the same number is 5a's duplicate: the sequencer must follow the derived chain.
  2. batch s.batchIndex does not exist      no-op (nothing to read yet; in a dispute trace, a batch at
     or past the output's batch limit does not exist, even once posted: see Inputs)
  3. s.itemIndex >= leaf count              batchIndex += 1, itemIndex = 0
  4. the leaf is not a BLOCK leaf           itemIndex += 1 (a stray leaf is skipped)
  5. BLOCK(n, t, on, oh, c):
     a. n <= s.number (already derived)     itemIndex = min(itemIndex + 1 + c, count)
     b. n > s.number + 1 (a gap)            batchIndex += 1, itemIndex = 0 (rest ignored)
     c. invalid: t < s.timestamp, or t >= 2**64 (a field the snapshot range check refuses), or
        on < s.l1OriginNumber (origins never go back), or on > the batch's l1Block (an origin from
        the future), or on + W < the batch's l1Block (posted too late: the sequencer window, which
        bounds how long forced transactions can be kept out; with origins never going back, rule F
        now catches such a batch first: kept as the guard it always was), or (a blob batch) (on, oh)
        is not one of the origins the inbox checked for the batch (protocol._blob: it cannot read
        blobs, so their origins are named in calldata; a calldata batch's leaves were checked)
                                            itemIndex = min(itemIndex + 1 + c, count)
     d. otherwise the block starts: phase DEPOSITS, blockTimestamp t, blockOriginNumber on,
        blockOriginHash oh, blockBaseFee = next_base_fee(s.baseFee, s.gasUsed, s.gasLimit),
        blockGasUsed 0, txRoot = sized root of the empty tree, txLeft c, itemIndex += 1
DEPOSITS
  6. deposit s.depositIndex exists and its l1Block <= blockOriginNumber:
        mint to its recipient (apply_deposit), append Deposit.hash() to txRoot, depositIndex += 1
  7. otherwise                              phase FORCED
FORCED
  8. entry s.forcedIndex exists and its l1Block <= blockOriginNumber: decode and apply it by the
     forced rules (protocol.apply_forced: executed at base fee min(blockBaseFee, its fee cap), so
     the sequencer-controlled base fee cannot refuse it; block env: number s.number + 1,
     blockTimestamp, s.gasLimit, blockGasUsed):
        refused for BLOCK_GAS_LIMIT_REACHED  phase BATCH (it leads the next block, where it is
                                             first: it fits there, or is refused for another reason)
        refused for any other reason         forcedIndex += 1 (dropped; GAS_LIMIT_ABOVE_BLOCK too)
        applied                              blockGasUsed += gas, append its hash, forcedIndex += 1
  9. otherwise                              phase BATCH
BATCH
 10. txLeft == 0: the block seals. header = (s.number + 1, s.blockHash, blockTimestamp,
     stateRoot, txRoot, messageRoot, blockBaseFee, blockGasUsed, s.gasLimit, blockOriginNumber,
     blockOriginHash); the sealed fields become the header's, blockHash its hash; phase IDLE
     and fields 10-16 zero. Cursors stay.
 11. the leaf at (batchIndex, itemIndex) does not exist (its batch included, as in 2) or is a
     BLOCK leaf (a block claimed more transactions than its batch holds)  txLeft = 0
 12. a TX leaf: decode and apply it (protocol.apply_transaction at blockBaseFee; any refusal,
     BLOCK_GAS_LIMIT_REACHED included, skips it); itemIndex += 1, txLeft -= 1

Blob batches (protocol._blob) are read by these same rules, leaf by leaf. Their framing is
not checked by the inbox, so it has a meaning by rule, never a halt: a bad header is a batch of 0
leaves (rule 3 at once), a leaf with bad offsets is empty, and a leaf that is neither a TX nor a
161-byte BLOCK leaf is a StrayLeaf: skipped when IDLE (rule 4), and in BATCH phase "not a TX leaf",
so the block's transactions end there (rule 11, as StepVerifier cuts at any non-TX leaf); a TX
leaf whose transaction does not decode is skipped (rule 12), as in a calldata batch.

A transaction "applied" means protocol._execution.apply_transaction succeeded on
the decoded transaction (protocol._tx.decode_transaction with the chain id); the
state and message roots in the snapshot are those of the state after the step.

What is trusted: nothing beyond L1 itself for what derivation reads (the inbox computes each
batch's input root from its calldata); the sequencer only for liveness within a window, since rule
F derives the chain's deposits and forced transactions once a window lapses. Not built: checking
origin hashes in derivation (the inbox checks them when a batch is posted; a derived block's origin
hash is zero), and any sequencer control of the gas limit (the genesis's, for ever).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final, TypeVar

from protocol import (
    DEFAULT_CHAIN_ID,
    DEFAULT_SEQUENCER_WINDOW,
    DERIVED_ORIGIN_HASH,
    BatchDataError,
    BlobBatch,
    BlockEnv,
    BlockHeader,
    BlockLeaf,
    Genesis,
    Leaf,
    MerkleTree,
    QueuedDeposit,
    QueuedForced,
    Reason,
    State,
    StateRoots,
    Transaction,
    TxLeaf,
    TxRejected,
    TxResult,
    apply_deposit,
    apply_forced,
    apply_plain,
    apply_transaction,
    decode_blob_leaves,
    decode_transaction,
    decode_transactions,
    derived_origin,
    input_root,
    leaf_acceptable,
    merkle_root,
    next_base_fee,
    window_lapsed,
)

from ._snapshot import Phase, Snapshot

#: The sized root of an empty transactions tree (a block that has included nothing yet).
EMPTY_TX_ROOT: Final = merkle_root(())


@dataclass(frozen=True, slots=True)
class Rules:
    """The deployment's derivation constants: the step verifier on L1 is built with the same."""

    chain_id: int = DEFAULT_CHAIN_ID
    #: A block must be posted within this many L1 blocks of its parent's L1 origin (rule F; and of
    #: its own, 5c), or derivation makes it.
    sequencer_window: int = DEFAULT_SEQUENCER_WINDOW


DEFAULT_RULES: Final = Rules()


# --- what L1 holds --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class L1Batch:
    index: int
    l1_block: int
    input_root: bytes
    leaves: tuple[Leaf, ...]
    #: A blob batch's blobs, versioned hashes and origins (None: a calldata batch).
    blob: BlobBatch | None = None


@dataclass
class L1Inputs:
    """Everything derivation reads from L1, in each queue's own order (a repeat is ignored).

    A derivation resumed from a checkpoint (see _checkpoints) holds each queue from the first
    entry its snapshot has not consumed: ``batches[0]`` is batch ``batch_base``, and so on. An
    entry below a base is not held: asking for it is a caller's error (``LookupError``), never
    "it does not exist" (which would be a rule's answer)."""

    batches: list[L1Batch] = field(default_factory=list)
    deposits: list[QueuedDeposit] = field(default_factory=list)
    forced: list[QueuedForced] = field(default_factory=list)
    #: Batches from this index on do not exist for these inputs (None: no bound); see ``limited``.
    batch_limit: int | None = None
    #: Every input in L1 blocks <= this has been read (rule F's h): the last L1 block read, or a
    #: dispute's l1Horizon. Set it only as far as every queue above holds what L1 held there.
    l1_horizon: int = 0
    #: The index of ``batches[0]``, ``deposits[0]`` and ``forced[0]`` (0 from genesis).
    batch_base: int = 0
    deposit_base: int = 0
    forced_base: int = 0

    @property
    def batch_count(self) -> int:
        """Batches read: the index the next one has."""
        return self.batch_base + len(self.batches)

    def add_batch(self, index: int, l1_block: int, root: bytes, leaves: tuple[Leaf, ...],
                  blob: BlobBatch | None = None) -> None:
        """Batch ``index`` as L1 holds it: the inbox computed ``root`` from the very calldata
        ``leaves`` were read from (a blob batch: from its blobs' versioned hashes and origins; the
        reader checked the blobs against the hashes), so leaves that do not reproduce it are an L1
        client's fault, raised (``BatchDataError``), never a batch to skip or stop at."""
        if index != self.batch_base + len(self.batches):
            return
        if blob is None:
            bound = input_root(leaves) == root
        else:
            bound = blob.input_root() == root and decode_blob_leaves(blob.stream()) == leaves
        if not bound:
            raise BatchDataError(f"batch {index}: its leaves do not reproduce the inbox's input root")
        self.batches.append(L1Batch(index, l1_block, root, leaves, blob))

    def add_deposit(self, d: QueuedDeposit) -> None:
        if d.index == self.deposit_base + len(self.deposits):
            self.deposits.append(d)

    def add_forced(self, f: QueuedForced) -> None:
        if f.index == self.forced_base + len(self.forced):
            self.forced.append(f)

    def limited(self, batch_limit: int, l1_horizon: int) -> L1Inputs:
        """A view of the same inputs as a dispute over an output with this ``batch_limit`` and
        ``l1_horizon`` reads them: batch ``batch_limit`` and later ones do not exist (rule 2), and
        rule F sees the horizon ``l1_horizon`` (see the Inputs notes). It shares the queues, so it
        sees what is added later (batches past the bound excepted); it is read, not fed: read L1
        up to ``l1_horizon`` first. A view's batches narrow, never widen (the lower bound wins)."""
        if self.batch_limit is not None:
            batch_limit = min(batch_limit, self.batch_limit)
        return replace(self, batch_limit=batch_limit, l1_horizon=l1_horizon)

    def batch(self, index: int) -> L1Batch | None:
        if self.batch_limit is not None and index >= self.batch_limit:
            return None
        return _entry(self.batches, index - self.batch_base, "batch", index)

    def deposit(self, index: int) -> QueuedDeposit | None:
        return _entry(self.deposits, index - self.deposit_base, "deposit", index)

    def forced_entry(self, index: int) -> QueuedForced | None:
        return _entry(self.forced, index - self.forced_base, "forced entry", index)


_T = TypeVar("_T")


def _entry(queue: list[_T], offset: int, what: str, index: int) -> _T | None:
    if offset < 0:
        raise LookupError(f"{what} {index} is below the checkpoint these inputs were read from")
    return queue[offset] if offset < len(queue) else None


# --- steps ------------------------------------------------------------------------------------


class StepKind(StrEnum):
    """Which rule a step applied (numbers refer to the module notes)."""

    NOOP = "NOOP"  # 1, 2
    FORCED_BLOCK = "FORCED_BLOCK"  # F: the window lapsed, derivation starts the block itself
    NEXT_BATCH = "NEXT_BATCH"  # 3
    SKIP_LEAF = "SKIP_LEAF"  # 4
    SKIP_BLOCK = "SKIP_BLOCK"  # 5a, 5c
    SKIP_REST = "SKIP_REST"  # 5b
    START = "START"  # 5d
    DEPOSIT = "DEPOSIT"  # 6
    DEPOSITS_DONE = "DEPOSITS_DONE"  # 7
    FORCED_FULL = "FORCED_FULL"  # 8, no room: it leads the next block
    FORCED_SKIPPED = "FORCED_SKIPPED"  # 8, refused: dropped
    FORCED_APPLIED = "FORCED_APPLIED"  # 8
    FORCED_DONE = "FORCED_DONE"  # 9
    SEAL = "SEAL"  # 10
    TXS_CUT = "TXS_CUT"  # 11
    TX_SKIPPED = "TX_SKIPPED"  # 12, refused
    TX_APPLIED = "TX_APPLIED"  # 12


@dataclass(frozen=True, slots=True)
class Skipped:
    """A transaction the rules refused: where it was and why."""

    block: int
    source: str  # "batch" or "forced"
    reason: Reason


@dataclass(frozen=True, slots=True)
class DerivedBlock:
    header: BlockHeader
    hash: bytes
    #: Empty in a block read back from a checkpoint store (nothing in the service reads them).
    tx_hashes: tuple[bytes, ...]
    #: The machine's snapshot right after the block sealed (what an output proposes).
    snapshot: Snapshot
    #: Steps from the machine's start to that snapshot: trace positions are differences of these.
    step: int


def genesis_snapshot(genesis: Genesis, state: State | None = None) -> Snapshot:
    """The snapshot at block 0: the anchor every trace starts from."""
    header = genesis.header(state)
    return sealed_snapshot(header, header.hash(), Snapshot(header.state_root, header.message_root, bytes(32), 0, 0, 0,
                                                           0, 0, 0))


def sealed_snapshot(header: BlockHeader, block_hash: bytes, cursors: Snapshot) -> Snapshot:
    """IDLE after sealing ``header``: its fields, and ``cursors``' cursors."""
    return Snapshot(
        header.state_root, header.message_root, block_hash, header.number, header.timestamp, header.base_fee,
        header.gas_used, header.gas_limit, header.l1_origin_number, Phase.IDLE,
        batch_index=cursors.batch_index, item_index=cursors.item_index, deposit_index=cursors.deposit_index,
        forced_index=cursors.forced_index,
    )


class Machine:
    """Applies ``step`` to a snapshot and the state it commits to.

    With ``trace`` the state is committed after every step, so every snapshot is exact (what
    a dispute needs, ~16 hashes per written account). Without it, roots are computed only
    when a block seals: the snapshot is exact whenever it is IDLE, which is all that outputs
    and derivation compare (the fast path).
    """

    def __init__(self, snapshot: Snapshot, state: State | Callable[[], State], inputs: L1Inputs,
                 rules: Rules = DEFAULT_RULES, *, trace: bool = False, executor: Executor | None = None,
                 steps: int = 0) -> None:
        if snapshot.phase != Phase.IDLE:
            raise ValueError("a machine starts from a sealed (IDLE) snapshot")
        self.snapshot = snapshot
        #: The state ``snapshot`` commits to, or what loads it (a checkpoint's: see _checkpoints),
        #: called at the first step that reads or writes an account, not before: a resumed
        #: derivation with nothing new to derive never loads it.
        self._state: State | None = state if isinstance(state, State) else None
        self._load_state = None if isinstance(state, State) else state
        self._state_lock = threading.Lock()
        self.inputs = inputs
        self.rules = rules
        self.trace = trace
        self.sealed: list[DerivedBlock] = []
        self.skipped: list[Skipped] = []
        #: Steps taken so far (no-ops excluded: a trace never needs them before its end); a
        #: machine resumed at a block starts at that block's count.
        self.steps = steps
        #: Addresses written since ``take_touched`` last ran, first write first (what a checkpoint
        #: persists); kept only when set to a dict.
        self.touched: dict[bytes, None] | None = None
        self._tx_hashes: list[bytes] = []
        self._tx_tree = MerkleTree()
        #: With a thread pool, a batch's transactions are decoded (senders recovered: the bulk of
        #: derivation's time, in libsecp256k1 without the GIL) all at once when it is first read;
        #: the steps then take the results in order. Without one, each step decodes its own.
        self._executor = executor
        self._decoded: dict[bytes, Transaction | TxRejected] = {}
        self._decoded_batch = -1

    @property
    def state(self) -> State:
        state = self._state
        if state is None:
            # A worker thread may preload it (DerivedChain.sync) while a step in another wants it:
            # one loads, the other waits for that load, and a failed load is tried again.
            with self._state_lock:
                if self._state is None:
                    assert self._load_state is not None
                    self._state, self._load_state = self._load_state(), None
                state = self._state
        return state

    @state.setter
    def state(self, state: State) -> None:
        """Put the machine on another state (with ``snapshot``, to replay from a known step: tests and
        proofs of other accounts); a load not yet done is dropped."""
        with self._state_lock:
            self._state, self._load_state = state, None

    @property
    def state_loaded(self) -> bool:
        return self._state is not None

    def _commit(self) -> StateRoots:
        state = self.state
        if self.touched is not None:
            self.touched.update(dict.fromkeys(state.changed_addresses()))
        return state.commit()

    # -- driving ------------------------------------------------------------------------------

    def run(self, target: int | None = None) -> int:
        """Step until IDLE at ``target`` (or, without one, until L1 has nothing more); the step count."""
        start = self.steps
        limit = target if target is not None else 2**63
        while True:
            if not self.trace and self.snapshot.phase == Phase.BATCH:
                self._transactions()
            if self.step(limit) is StepKind.NOOP:
                return self.steps - start

    def step(self, target: int) -> StepKind:
        s = self.snapshot
        if s.phase == Phase.IDLE:
            kind, s = self._idle(s, target)
        elif s.phase == Phase.DEPOSITS:
            kind, s = self._deposits(s)
        elif s.phase == Phase.FORCED:
            kind, s = self._forced(s)
        else:
            kind, s = self._batch(s)
        if self.trace and kind is not StepKind.NOOP and s.phase != Phase.IDLE:
            roots = self._commit()
            s = replace(s, state_root=roots.state_root, message_root=roots.message_root, tx_root=self._tx_tree.root())
        self.snapshot = s
        if kind is not StepKind.NOOP:
            self.steps += 1
        return kind

    # -- the rules (numbers as in the module notes) --------------------------------------------

    def window_lapsed(self, s: Snapshot | None = None) -> bool:
        """Rule F's condition at the IDLE snapshot ``s`` (the machine's own by default): the next
        block is derivation's to make, since none posted within the sequencer window remains."""
        if s is None:
            s = self.snapshot
        batch = self.inputs.batch(s.batch_index)
        end = batch.l1_block if batch is not None else self.inputs.l1_horizon + 1
        return window_lapsed(s.l1_origin_number, end, self.rules.sequencer_window)

    def _idle(self, s: Snapshot, target: int) -> tuple[StepKind, Snapshot]:
        if s.number >= target:
            return StepKind.NOOP, s  # 1
        if self.window_lapsed(s):  # F
            return StepKind.FORCED_BLOCK, self._start(s, s.timestamp, derived_origin(s.l1_origin_number),
                                                      DERIVED_ORIGIN_HASH, 0, s.item_index)
        batch = self.inputs.batch(s.batch_index)
        if batch is None:
            return StepKind.NOOP, s  # 2
        if self._executor is not None and batch.index != self._decoded_batch:
            self._decode_ahead(batch)
        count = len(batch.leaves)
        if s.item_index >= count:
            return StepKind.NEXT_BATCH, replace(s, batch_index=s.batch_index + 1, item_index=0)  # 3
        leaf = batch.leaves[s.item_index]
        if not isinstance(leaf, BlockLeaf):
            return StepKind.SKIP_LEAF, replace(s, item_index=s.item_index + 1)  # 4
        past = min(s.item_index + 1 + leaf.tx_count, count)
        if leaf.number <= s.number:
            return StepKind.SKIP_BLOCK, replace(s, item_index=past)  # 5a
        if leaf.number != s.number + 1:
            return StepKind.SKIP_REST, replace(s, batch_index=s.batch_index + 1, item_index=0)  # 5b
        if not leaf_acceptable(s.timestamp, s.l1_origin_number, leaf.timestamp, leaf.l1_origin_number, batch.l1_block,
                               self.rules.sequencer_window) or (
                batch.blob is not None and not batch.blob.attests(leaf.l1_origin_number, leaf.l1_origin_hash)):
            return StepKind.SKIP_BLOCK, replace(s, item_index=past)  # 5c
        return StepKind.START, self._start(s, leaf.timestamp, leaf.l1_origin_number, leaf.l1_origin_hash,  # 5d
                                           leaf.tx_count, s.item_index + 1)

    def _start(self, s: Snapshot, timestamp: int, origin: int, origin_hash: bytes, tx_left: int,
               item_index: int) -> Snapshot:
        """A block in progress (rules F and 5d)."""
        self._tx_hashes = []
        if self.trace:
            self._tx_tree = MerkleTree()
        return replace(
            s, phase=Phase.DEPOSITS, block_timestamp=timestamp, block_origin_number=origin,
            block_origin_hash=origin_hash, block_base_fee=next_base_fee(s.base_fee, s.gas_used, s.gas_limit),
            block_gas_used=0, tx_root=EMPTY_TX_ROOT, tx_left=tx_left, item_index=item_index,
        )

    def _deposits(self, s: Snapshot) -> tuple[StepKind, Snapshot]:
        queued = self.inputs.deposit(s.deposit_index)
        if queued is None or queued.l1_block > s.block_origin_number:
            return StepKind.DEPOSITS_DONE, replace(s, phase=Phase.FORCED)  # 7
        apply_deposit(self.state, queued.deposit)  # 6
        self._include(queued.deposit.hash())
        return StepKind.DEPOSIT, replace(s, deposit_index=s.deposit_index + 1)

    def _forced(self, s: Snapshot) -> tuple[StepKind, Snapshot]:
        entry = self.inputs.forced_entry(s.forced_index)
        if entry is None or entry.l1_block > s.block_origin_number:
            return StepKind.FORCED_DONE, replace(s, phase=Phase.BATCH)  # 9
        forced = apply_forced(self.state, entry.raw, self.rules.chain_id, self._env(s), s.block_gas_used)  # 8
        if forced.result is None:
            assert forced.reason is not None
            self.skipped.append(Skipped(s.number + 1, "forced", forced.reason))
            if forced.waits:
                return StepKind.FORCED_FULL, replace(s, phase=Phase.BATCH)
            return StepKind.FORCED_SKIPPED, replace(s, forced_index=s.forced_index + 1)
        self._include(forced.result.tx_hash)
        return StepKind.FORCED_APPLIED, replace(s, forced_index=s.forced_index + 1,
                                                block_gas_used=s.block_gas_used + forced.result.gas_used)

    def _batch(self, s: Snapshot) -> tuple[StepKind, Snapshot]:
        if s.tx_left == 0:
            return StepKind.SEAL, self._seal(s)  # 10
        batch = self.inputs.batch(s.batch_index)
        leaf = batch.leaves[s.item_index] if batch is not None and s.item_index < len(batch.leaves) else None
        if not isinstance(leaf, TxLeaf):
            return StepKind.TXS_CUT, replace(s, tx_left=0)  # 11
        moved = replace(s, item_index=s.item_index + 1, tx_left=s.tx_left - 1)
        try:  # 12
            decoded = self._decoded.pop(leaf.raw, None)
            if isinstance(decoded, TxRejected):
                raise decoded
            tx = decoded if decoded is not None else decode_transaction(leaf.raw, self.rules.chain_id)
            gas = apply_transaction(self.state, tx, self._env(s), s.block_gas_used).gas_used
        except TxRejected as e:
            self.skipped.append(Skipped(s.number + 1, "batch", e.reason))
            return StepKind.TX_SKIPPED, moved
        self._include(tx.hash)
        return StepKind.TX_APPLIED, replace(moved, block_gas_used=s.block_gas_used + gas)

    def _transactions(self) -> None:
        """Rule 12 over the run of transaction leaves at the snapshot, as that many steps of
        ``_batch`` would take them, without the snapshots between them (out of trace mode nothing
        reads those: only a dispute's trace does). Its cost was 2 snapshot copies a transaction."""
        s = self.snapshot
        batch = self.inputs.batch(s.batch_index)
        if batch is None:
            return
        leaves, index, end = batch.leaves, s.item_index, min(len(batch.leaves), s.item_index + s.tx_left)
        env, gas_used, decoded_of, state = self._env(s), s.block_gas_used, self._decoded.pop, self.state
        run: list[Transaction | TxRejected] = []  # the leaves' transactions, decoded (stateless: all first)
        while index < end:
            leaf = leaves[index]
            if not isinstance(leaf, TxLeaf):
                break
            index += 1
            decoded = decoded_of(leaf.raw, None)
            if decoded is None:
                try:
                    decoded = decode_transaction(leaf.raw, self.rules.chain_id)
                except TxRejected as e:
                    decoded = e
            run.append(decoded)
        applied: list[tuple[Transaction, TxResult]] = []
        at = 0
        while at < len(run):
            at, gas_used = apply_plain(state, run, at, env, gas_used, applied)  # the plain transfers, in C
            if at == len(run):
                break
            item = run[at]
            at += 1
            try:
                if isinstance(item, TxRejected):
                    raise item
                applied.append((item, apply_transaction(state, item, env, gas_used)))
                gas_used += applied[-1][1].gas_used
            except TxRejected as e:
                self.skipped.append(Skipped(s.number + 1, "batch", e.reason))
        for tx, _ in applied:
            self._include(tx.hash)
        taken = index - s.item_index
        if taken:
            self.snapshot = replace(s, item_index=index, tx_left=s.tx_left - taken, block_gas_used=gas_used)
            self.steps += taken

    @staticmethod
    def _env(s: Snapshot) -> BlockEnv:
        return BlockEnv(s.number + 1, s.block_timestamp, s.block_base_fee, s.gas_limit)

    def _decode_ahead(self, batch: L1Batch) -> None:
        raws = [leaf.raw for leaf in batch.leaves if isinstance(leaf, TxLeaf)]
        self._decoded = dict(zip(raws, decode_transactions(raws, self.rules.chain_id, executor=self._executor),
                                 strict=True))
        self._decoded_batch = batch.index

    def _include(self, tx_hash: bytes) -> None:
        self._tx_hashes.append(tx_hash)
        if self.trace:
            self._tx_tree.append((tx_hash,))

    def _seal(self, s: Snapshot) -> Snapshot:
        roots = self._commit()
        header = BlockHeader(
            number=s.number + 1, parent_hash=s.block_hash, timestamp=s.block_timestamp, state_root=roots.state_root,
            transactions_root=merkle_root(self._tx_hashes), message_root=roots.message_root,
            base_fee=s.block_base_fee, gas_used=s.block_gas_used, gas_limit=s.gas_limit,
            l1_origin_number=s.block_origin_number, l1_origin_hash=s.block_origin_hash,
        )
        block_hash = header.hash()
        after = sealed_snapshot(header, block_hash, s)
        self.sealed.append(DerivedBlock(header, block_hash, tuple(self._tx_hashes), after, self.steps + 1))
        self._tx_hashes = []
        return after
