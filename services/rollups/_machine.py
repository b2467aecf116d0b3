"""The derivation machine: L2 from L1 data alone, one small deterministic step at a time.

Derivation (the challenger rebuilding L2), the trace a dispute bisects over and the one-step
proof on L1 (contracts/StepVerifier.sol) are the same function, ``step``, applied to a
``Snapshot`` (see _snapshot) and to what L1 holds. A step reads at most one L1 input: one leaf
of an inbox batch (see protocol._batch_input), one portal deposit or one forced-queue
entry. The sequencer follows the same rules when it builds blocks (services.sequencer._chain).

Inputs (all on L1, all append-only)
    batch b      inbox.batch(b) = (dataHash, inputRoot, l1Block); its leaves prove against
                 inputRoot, whose sized-root count is the number of leaves.
    deposit d    portal.sourceHash(d) = keccak256(abi.encode(d, from, to, mint, l1Block)).
    forced f     inbox.forcedTransaction(f) = (keccak256(raw), l1Block).

Append-only is not enough for a step to give the same answer whenever it is replayed: whether
batch b exists changes when it is posted. A dispute trace is therefore bounded by its output's
batch limit L, the inbox's batch count when the output was proposed (OutputRegistry records it):
batch b exists only if b < L (``L1Inputs.limited``; StepVerifier takes L). Without the bound a
batch posted during a game would turn a no-op into a real step, and an output claiming a block
that no batch held when it was proposed (a "future" or invented block) could not be disproven
before it finalized: its trace would only fail once the block's batch arrived, if ever. With it,
an output claims what L1 held at proposal; the honest trace stops (no-ops) where those batches
do, so such an output loses. Derivation itself (following L1) is unbounded. Deposits and forced
entries need no bound: a block takes only those whose L1 block is at most its L1 origin, itself
at most its batch's L1 block (rule 5c), which is at most the proposal's, so all of them are on L1
once the proposal's L1 block is; an entry appended later has a later L1 block and is skipped
(rules 7, 9) exactly as if it did not exist.

Rules (W = the sequencer window in L1 blocks, a deployment constant; chain id likewise).
``s`` is the snapshot before the step; "+=" and "skip" change only the fields named.

IDLE (between blocks)
  1. s.number >= target                     no-op (the trace is padded with these)
  2. batch s.batchIndex does not exist      no-op (nothing to read yet; in a dispute trace, a batch at
     or past the output's batch limit does not exist, even once posted: see Inputs)
  3. s.itemIndex >= leaf count              batchIndex += 1, itemIndex = 0
  4. the leaf is not a BLOCK leaf           itemIndex += 1 (a stray leaf is skipped)
  5. BLOCK(n, t, on, oh, c):
     a. n <= s.number (already derived)     itemIndex = min(itemIndex + 1 + c, count)
     b. n > s.number + 1 (a gap)            batchIndex += 1, itemIndex = 0 (rest ignored)
     c. invalid: t < s.timestamp, or on > the batch's l1Block (an origin from the future), or
        on + W < the batch's l1Block (posted too late: the sequencer window, which bounds how
        long forced transactions can be kept out)
                                            itemIndex = min(itemIndex + 1 + c, count)
     d. otherwise the block starts: phase DEPOSITS, blockTimestamp t, blockOriginNumber on,
        blockOriginHash oh, blockBaseFee = next_base_fee(s.baseFee, s.gasUsed, s.gasLimit),
        blockGasUsed 0, txRoot = sized root of the empty tree, txLeft c, itemIndex += 1
DEPOSITS
  6. deposit s.depositIndex exists and its l1Block <= blockOriginNumber:
        mint to its recipient (apply_deposit), append Deposit.hash() to txRoot, depositIndex += 1
  7. otherwise                              phase FORCED
FORCED
  8. entry s.forcedIndex exists and its l1Block <= blockOriginNumber: decode and apply it
     (block env: number s.number + 1, blockTimestamp, blockBaseFee, s.gasLimit, blockGasUsed):
        refused for BLOCK_GAS_LIMIT_REACHED  phase BATCH (it leads the next block)
        refused for any other reason         forcedIndex += 1
        applied                              blockGasUsed += gas, append its hash, forcedIndex += 1
  9. otherwise                              phase BATCH
BATCH
 10. txLeft == 0: the block seals. header = (s.number + 1, s.blockHash, blockTimestamp,
     stateRoot, txRoot, messageRoot, blockBaseFee, blockGasUsed, s.gasLimit, blockOriginNumber,
     blockOriginHash); the sealed fields become the header's, blockHash its hash; phase IDLE
     and fields 10-16 zero. Cursors stay.
 11. the leaf at (batchIndex, itemIndex) does not exist (its batch included, as in 2) or is a
     BLOCK leaf (a block claimed more transactions than its batch holds)  txLeft = 0
 12. a TX leaf: decode and apply it as in 8 (any refusal, BLOCK_GAS_LIMIT_REACHED included,
     skips it); itemIndex += 1, txLeft -= 1

A transaction "applied" means protocol._execution.apply_transaction succeeded on
the decoded transaction (protocol._tx.decode_transaction with the chain id); the
state and message roots in the snapshot are those of the state after the step.

What is trusted: the batcher for data availability (that the calldata reproduces its input
root; when it does not, ``L1Inputs`` refuses the batch and derivation stops there, since no
rule can say what an unavailable batch held). Not built: deriving empty blocks when the
sequencer posts nothing for a whole window (Optimism does; here forced transactions wait for
the next valid block), and checking origin hashes against L1 (the EVM only sees 256 blocks
back; deposits are matched by index and L1 block instead).
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from protocol import (
    DEFAULT_CHAIN_ID,
    BatchDataError,
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
    Transaction,
    TxLeaf,
    TxRejected,
    apply_deposit,
    apply_transaction,
    decode_transaction,
    decode_transactions,
    input_root,
    merkle_root,
    next_base_fee,
)

from ._snapshot import Phase, Snapshot

#: The sized root of an empty transactions tree (a block that has included nothing yet).
EMPTY_TX_ROOT: Final = merkle_root(())
#: Optimism's default sequencer window: 3,600 L1 blocks (12 h at 12 s).
DEFAULT_SEQUENCER_WINDOW: Final = 3_600


@dataclass(frozen=True, slots=True)
class Rules:
    """The deployment's derivation constants: the step verifier on L1 is built with the same."""

    chain_id: int = DEFAULT_CHAIN_ID
    #: A block must be posted within this many L1 blocks of its L1 origin.
    sequencer_window: int = DEFAULT_SEQUENCER_WINDOW


DEFAULT_RULES: Final = Rules()


# --- what L1 holds --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class L1Batch:
    index: int
    l1_block: int
    input_root: bytes
    leaves: tuple[Leaf, ...]




@dataclass
class L1Inputs:
    """Everything derivation reads from L1, in each queue's own order (a repeat is ignored)."""

    batches: list[L1Batch] = field(default_factory=list)
    deposits: list[QueuedDeposit] = field(default_factory=list)
    forced: list[QueuedForced] = field(default_factory=list)
    #: Batches from this index on do not exist for these inputs (None: no bound); see ``limited``.
    batch_limit: int | None = None

    def add_batch(self, index: int, l1_block: int, root: bytes, leaves: tuple[Leaf, ...]) -> None:
        """Batch ``index`` as L1 holds it: the inbox computed ``root`` from the very calldata
        ``leaves`` were read from, so leaves that do not reproduce it are an L1 client's fault,
        raised (``BatchDataError``), never a batch to skip or stop at."""
        if index != len(self.batches):
            return
        if input_root(leaves) != root:
            raise BatchDataError(f"batch {index}: its leaves do not reproduce the inbox's input root")
        self.batches.append(L1Batch(index, l1_block, root, leaves))

    def add_deposit(self, d: QueuedDeposit) -> None:
        if d.index == len(self.deposits):
            self.deposits.append(d)

    def add_forced(self, f: QueuedForced) -> None:
        if f.index == len(self.forced):
            self.forced.append(f)

    def limited(self, batch_limit: int) -> L1Inputs:
        """A view of the same inputs in which batch ``batch_limit`` and later ones do not exist: what
        the dispute over an output proposed when L1 held ``batch_limit`` batches reads (rule 2 and
        the Inputs notes). It shares the queues, so it sees what is added later (batches past the
        bound excepted); it is read, not fed."""
        if self.batch_limit is not None:
            batch_limit = min(batch_limit, self.batch_limit)
        return replace(self, batch_limit=batch_limit)

    def batch(self, index: int) -> L1Batch | None:
        if self.batch_limit is not None and index >= self.batch_limit:
            return None
        return self.batches[index] if index < len(self.batches) else None

    def deposit(self, index: int) -> QueuedDeposit | None:
        return self.deposits[index] if index < len(self.deposits) else None

    def forced_entry(self, index: int) -> QueuedForced | None:
        return self.forced[index] if index < len(self.forced) else None


# --- steps ------------------------------------------------------------------------------------


class StepKind(StrEnum):
    """Which rule a step applied (numbers refer to the module notes)."""

    NOOP = "NOOP"  # 1, 2
    NEXT_BATCH = "NEXT_BATCH"  # 3
    SKIP_LEAF = "SKIP_LEAF"  # 4
    SKIP_BLOCK = "SKIP_BLOCK"  # 5a, 5c
    SKIP_REST = "SKIP_REST"  # 5b
    START = "START"  # 5d
    DEPOSIT = "DEPOSIT"  # 6
    DEPOSITS_DONE = "DEPOSITS_DONE"  # 7
    FORCED_FULL = "FORCED_FULL"  # 8, no room
    FORCED_SKIPPED = "FORCED_SKIPPED"  # 8, refused
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

    def __init__(self, snapshot: Snapshot, state: State, inputs: L1Inputs, rules: Rules = DEFAULT_RULES, *,
                 trace: bool = False, executor: Executor | None = None) -> None:
        if snapshot.phase != Phase.IDLE:
            raise ValueError("a machine starts from a sealed (IDLE) snapshot")
        self.snapshot = snapshot
        self.state = state
        self.inputs = inputs
        self.rules = rules
        self.trace = trace
        self.sealed: list[DerivedBlock] = []
        self.skipped: list[Skipped] = []
        #: Steps taken so far (no-ops excluded: a trace never needs them before its end).
        self.steps = 0
        self._tx_hashes: list[bytes] = []
        self._tx_tree = MerkleTree()
        #: With a thread pool, a batch's transactions are decoded (senders recovered: the bulk of
        #: derivation's time, in libsecp256k1 without the GIL) all at once when it is first read;
        #: the steps then take the results in order. Without one, each step decodes its own.
        self._executor = executor
        self._decoded: dict[bytes, Transaction | TxRejected] = {}
        self._decoded_batch = -1

    # -- driving ------------------------------------------------------------------------------

    def run(self, target: int | None = None) -> int:
        """Step until IDLE at ``target`` (or, without one, until L1 has nothing more); the step count."""
        start = self.steps
        limit = target if target is not None else 2**63
        while self.step(limit) is not StepKind.NOOP:
            pass
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
            roots = self.state.commit()
            s = replace(s, state_root=roots.state_root, message_root=roots.message_root, tx_root=self._tx_tree.root())
        self.snapshot = s
        if kind is not StepKind.NOOP:
            self.steps += 1
        return kind

    # -- the rules (numbers as in the module notes) --------------------------------------------

    def _idle(self, s: Snapshot, target: int) -> tuple[StepKind, Snapshot]:
        if s.number >= target:
            return StepKind.NOOP, s  # 1
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
        if (leaf.timestamp < s.timestamp or leaf.l1_origin_number > batch.l1_block
                or leaf.l1_origin_number + self.rules.sequencer_window < batch.l1_block):
            return StepKind.SKIP_BLOCK, replace(s, item_index=past)  # 5c
        self._tx_hashes = []
        if self.trace:
            self._tx_tree = MerkleTree()
        return StepKind.START, replace(  # 5d
            s, phase=Phase.DEPOSITS, block_timestamp=leaf.timestamp, block_origin_number=leaf.l1_origin_number,
            block_origin_hash=leaf.l1_origin_hash, block_base_fee=next_base_fee(s.base_fee, s.gas_used, s.gas_limit),
            block_gas_used=0, tx_root=EMPTY_TX_ROOT, tx_left=leaf.tx_count, item_index=s.item_index + 1,
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
        gas = self._apply(s, entry.raw, "forced")  # 8
        if gas is None:
            return StepKind.FORCED_FULL, replace(s, phase=Phase.BATCH)
        if gas < 0:
            return StepKind.FORCED_SKIPPED, replace(s, forced_index=s.forced_index + 1)
        return StepKind.FORCED_APPLIED, replace(s, forced_index=s.forced_index + 1,
                                                block_gas_used=s.block_gas_used + gas)

    def _batch(self, s: Snapshot) -> tuple[StepKind, Snapshot]:
        if s.tx_left == 0:
            return StepKind.SEAL, self._seal(s)  # 10
        batch = self.inputs.batch(s.batch_index)
        leaf = batch.leaves[s.item_index] if batch is not None and s.item_index < len(batch.leaves) else None
        if not isinstance(leaf, TxLeaf):
            return StepKind.TXS_CUT, replace(s, tx_left=0)  # 11
        gas = self._apply(s, leaf.raw, "batch")  # 12
        moved = replace(s, item_index=s.item_index + 1, tx_left=s.tx_left - 1)
        if gas is None or gas < 0:
            return StepKind.TX_SKIPPED, moved
        return StepKind.TX_APPLIED, replace(moved, block_gas_used=s.block_gas_used + gas)

    def _apply(self, s: Snapshot, raw: bytes, source: str) -> int | None:
        """Gas used if applied; -1 if the rules refused it; None if the block has no room."""
        env = BlockEnv(s.number + 1, s.block_timestamp, s.block_base_fee, s.gas_limit)
        try:
            decoded = self._decoded.pop(raw, None)
            if isinstance(decoded, TxRejected):
                raise decoded
            tx = decoded if decoded is not None else decode_transaction(raw, self.rules.chain_id)
            gas = apply_transaction(self.state, tx, env, s.block_gas_used).gas_used
        except TxRejected as e:
            self.skipped.append(Skipped(s.number + 1, source, e.reason))
            return None if e.reason is Reason.BLOCK_GAS_LIMIT_REACHED else -1
        self._include(tx.hash)
        return gas

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
        roots = self.state.commit()
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
