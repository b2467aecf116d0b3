"""Derivation kept up to date from L1, and the per-step traces disputes are played over.

``DerivedChain`` follows L1 to its safe head (``confirmation_depth`` blocks back, so an L1
reorg above that depth cannot change what was derived) and derives every block it can.

A dispute over output B (start output A: the latest finalized output when B was proposed)
bisects over positions 0..traceLength: position k is the commitment of the snapshot after k
steps from A's snapshot towards B (``trace``), reading only what L1 held up to B's L1 horizon
(B's batch limit: the batches included by then; see _machine's Inputs notes).
Traces are rebuilt on demand from the nearest checkpoint at or below A (see _checkpoints; from
genesis without one): fast up to A, then step by step with exact roots. A dispute is rare and
bounded, and keeping a state copy per output would cost more than this.

With a checkpoint store, ``sync`` writes a checkpoint at most every ``checkpoint_interval_s``,
and the first ``sync`` of a process resumes from the latest one still on the canonical L1 chain.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from opentelemetry import trace

from protocol import ZERO_HASH, Account, Genesis, L1InputReader, PostedBatch, State, keccak256
from services.l1 import Contract, L1Client
from services.runtime import keyed_context

from . import _metrics as metrics
from ._checkpoints import Checkpoint, CheckpointStore
from ._contracts import OutputRecord
from ._derivation import Deriver, read_l1
from ._machine import DerivedBlock, L1Inputs, Machine, Rules, genesis_snapshot
from ._snapshot import Snapshot

_log = logging.getLogger("l2node.rollups.derivation")
_tracer = trace.get_tracer("l2node.rollups")
#: Links per span, at most.
MAX_LINKS = 32
#: With no new L2 block, a checkpoint only once the horizon moved this many L1 blocks (a restart
#: reads at most these again: one eth_getLogs).
IDLE_STRIDE = 64


class DerivedChain:
    """The L2 chain as L1 alone defines it, extended each ``sync``."""

    def __init__(self, l1: L1Client, inbox: Contract, portal: Contract, genesis: Genesis, rules: Rules,
                 from_block: int, confirmation_depth: int, executor: Executor | None = None,
                 store: CheckpointStore | None = None, checkpoint_interval_s: float = 2.0) -> None:
        self.l1, self.inbox, self.portal = l1, inbox, portal
        self._reader = L1InputReader(l1, inbox, portal)
        self.genesis, self.rules = genesis, rules
        #: ``executor`` (a thread pool) recovers each new batch's senders in parallel.
        self._executor = executor
        #: Built at first use (the genesis state is not on the worker's way to SERVING), or by ``resume``.
        self._deriver: Deriver | None = None
        self.confirmation_depth = confirmation_depth
        self._next_l1 = from_block
        #: Batch index -> the span context of its post (see ``sync``).
        self._posts: dict[int, trace.SpanContext] = {}
        #: One sync at a time (the proposer and the challenger share this chain).
        self._lock = asyncio.Lock()
        self.store = store
        self.checkpoint_interval_s = checkpoint_interval_s
        #: The latest checkpoint written or resumed from, and when it was written (monotonic).
        self.checkpoint: Checkpoint | None = None
        self._checkpoint_at = 0.0
        self._resumed = store is None
        #: What the restart did: the checkpoint resumed from (its L1 and L2 blocks), the L1 blocks
        #: read since, and how long loading the state took (once it was needed).
        self.stats: dict[str, float] = {"l1_blocks_read": 0}
        self._preload: asyncio.Task[State] | None = None

    @property
    def deriver(self) -> Deriver:
        if self._deriver is None:
            self._deriver = Deriver(self.genesis, self.rules, self._executor)
            if self.store is not None:
                self._deriver.machine.touched = {}  # what each checkpoint writes
        return self._deriver

    @property
    def inputs(self) -> L1Inputs:
        return self.deriver.inputs

    @property
    def head(self) -> DerivedBlock:
        return self.deriver.head

    @property
    def horizon(self) -> int:
        """The L1 horizon of this derivation: it has read every input in L1 blocks up to here."""
        return self.inputs.l1_horizon

    @property
    def batch_count(self) -> int:
        """How many batches it read: the inbox's batches in L1 blocks up to ``horizon``."""
        return self.inputs.batch_count

    def block(self, number: int) -> DerivedBlock | None:
        block = self.deriver.block(number)
        if block is None and self.store is not None and 0 <= number < self.deriver.base:
            block = self.store.block(number)  # derived before this process resumed
        return block

    async def resume(self) -> Checkpoint | None:
        """Go on from the latest checkpoint whose L1 block is still canonical (None: none is, or
        there are none: from genesis). Checkpoints above a reorg are dropped, with what they cover."""
        assert self.store is not None
        store = self.store
        chosen, stored = None, await asyncio.to_thread(store.checkpoints)
        for checkpoint in reversed(stored):
            header = await self.l1.get_block(checkpoint.l1_block)
            if header is not None and header.hash == checkpoint.l1_hash:
                chosen = checkpoint
                break
            _log.warning("derivation checkpoint no longer on L1's chain: dropped", extra={
                "l1_block": checkpoint.l1_block, "l2_block": checkpoint.l2_block})
        if stored and chosen != stored[-1]:  # a reorg (the drop scans the account versions)
            await asyncio.to_thread(store.drop_above, chosen)
        if chosen is None:
            return None
        block = store.block(chosen.l2_block)
        assert block is not None
        s = block.snapshot
        inputs = L1Inputs(l1_horizon=chosen.l1_block, batch_base=s.batch_index, deposit_base=s.deposit_index,
                          forced_base=s.forced_index)
        self._deriver = Deriver(self.genesis, self.rules, self._executor,
                                resume=(block, functools.partial(self._load_state, chosen), inputs))
        self.deriver.machine.touched = {}
        self._next_l1 = chosen.reread_from
        self.checkpoint, self._checkpoint_at = chosen, time.monotonic()
        self.stats.update(resumed_l1_block=chosen.l1_block, resumed_l2_block=chosen.l2_block)
        metrics.RESUMED_FROM.set(chosen.l1_block)
        _log.info("derivation resumed from a checkpoint", extra={
            "l1_block": chosen.l1_block, "l2_block": chosen.l2_block, "reread_from": chosen.reread_from})
        return chosen

    def _load_state(self, checkpoint: Checkpoint) -> State:
        """The state at the checkpoint resumed from: by the machine's first step that needs it, or
        ahead of it by ``sync`` once caught up (``Machine.state`` loads it once)."""
        assert self.store is not None
        started = time.perf_counter()
        state = self.store.state_at(checkpoint)
        self.stats["state_load_s"] = time.perf_counter() - started
        _log.info("derivation state loaded from its checkpoint", extra={
            "l1_block": checkpoint.l1_block, "accounts": checkpoint.account_count,
            "seconds": round(self.stats["state_load_s"], 3)})
        return state

    async def sync(self) -> int:
        """Read L1 up to its safe head and derive; how many new L2 blocks that gave."""
        async with self._lock:
            if not self._resumed:
                self.stats["resumed_at"] = time.monotonic()
                await self.resume()
                self._resumed = True
            added = await self._sync()
            metrics.DERIVED_HEAD.set(self.head.header.number)  # after a sync: what a restart caught up with
            if "caught_up_s" not in self.stats and "resumed_at" in self.stats:
                self.stats["caught_up_s"] = time.monotonic() - self.stats["resumed_at"]
                _log.info("derivation caught up", extra={
                    "l2_block": self.head.header.number, "l1_block": self.horizon,
                    "l1_blocks_read": self.stats["l1_blocks_read"], "seconds": round(self.stats["caught_up_s"], 3)})
                if not self.deriver.machine.state_loaded:
                    # Caught up without it: load it now, in the background, rather than when the next
                    # batch comes (O(accounts): see _checkpoints).
                    self._preload = asyncio.create_task(asyncio.to_thread(lambda: self.deriver.machine.state))
                    self._preload.add_done_callback(_preload_done)
            # At most every interval while blocks keep coming; at once when a round brings none
            # and the head is not in a checkpoint yet (so a quiet chain's head always is).
            if self.store is not None and (time.monotonic() - self._checkpoint_at >= self.checkpoint_interval_s or (
                    added == 0 and (self.checkpoint is None or self.checkpoint.l2_block != self.head.header.number))):
                await self._save_checkpoint()
            return added

    async def _sync(self) -> int:
        safe = await self.l1.block_number() - self.confirmation_depth
        metrics.DERIVATION_LAG.set(safe + self.confirmation_depth - self._next_l1 + 1)
        if safe < self._next_l1:
            return 0
        # Read before any span: an L1 range with nothing in it is a poll, not work, and makes no
        # span (its L1 calls, outside a span, make none either). Derivation depends on the inputs
        # alone, so without new ones there is nothing to derive.
        started = time.time_ns()
        first = self._next_l1
        items = await read_l1(self._reader, self.inputs, first, safe)
        self._next_l1 = safe + 1
        self.stats["l1_blocks_read"] += safe - first + 1
        metrics.L1_BLOCKS_READ.inc(safe - first + 1)
        self.inputs.l1_horizon = safe  # every input up to it is read: rule F's horizon
        if not items and not self.deriver.machine.window_lapsed():
            return 0
        batches = [item for item in items if isinstance(item, PostedBatch)]
        for batch in batches:  # the post's span has ids derived from the batch data (keyed_context)
            self._posts[batch.index] = keyed_context(keccak256(batch.data))
        links = [trace.Link(self._posts[b.index]) for b in batches[-MAX_LINKS:]]
        with _tracer.start_as_current_span("derive", start_time=started, links=links) as span:
            span.set_attribute("l1.from_block", first)
            span.set_attribute("l1.to_block", safe)
            span.set_attribute("l2.batches_read", len(batches))
            added = await asyncio.to_thread(self.deriver.advance)  # off the loop: RPCs keep flowing
            span.set_attribute("l2.blocks_derived", added)
            span.set_attribute("l2.head", self.head.header.number)
        metrics.DERIVATION_LAG.set(self.confirmation_depth)
        metrics.DERIVED_HEAD.set(self.head.header.number)
        return added

    async def _save_checkpoint(self) -> None:
        """A checkpoint at the derived head and the L1 horizon, if either moved since the last one."""
        assert self.store is not None
        last, horizon = self.checkpoint, self.horizon
        if horizon == 0 or (last is not None and last.l1_block >= horizon):
            return
        if last is not None and last.l2_block == self.head.header.number and horizon - last.l1_block < IDLE_STRIDE:
            return  # an idle chain: no fsync and L1 call every interval for a few empty L1 blocks
        header = await self.l1.get_block(horizon)
        if header is None:
            return
        await asyncio.to_thread(self._write_checkpoint, header.hash, last)
        self._checkpoint_at = time.monotonic()
        metrics.CHECKPOINT_L1_BLOCK.set(horizon)

    def _write_checkpoint(self, l1_hash: bytes, last: Checkpoint | None) -> None:
        """In a thread, with the machine at rest (the lock is held): what the head and the inputs
        are now, and the state's changes since ``last``."""
        assert self.store is not None
        machine, head, inputs = self.deriver.machine, self.head, self.inputs
        s = head.snapshot
        # Inputs the head's snapshot has not consumed must be read again on resume.
        pending = [e.l1_block for e in (inputs.batch(s.batch_index), inputs.deposit(s.deposit_index),
                                        inputs.forced_entry(s.forced_index)) if e is not None]
        reread_from = min([*pending, self.horizon + 1])
        touched = machine.touched or {}
        machine.touched = {}
        if last is not None and head.header.number == last.l2_block and not touched:
            accounts: list[tuple[int, bytes, Account]] = []
            messages: list[tuple[int, bytes]] = []
            sizes = last.account_count, last.message_count
        else:
            state = machine.state
            tree = state.account_tree
            written = state.accounts.keys() if last is None else touched  # the first: every account
            accounts = [(slot, a, state.accounts[a]) for a in written if (slot := tree.index_of(a)) is not None]
            first_message = 0 if last is None else last.message_count
            messages = list(enumerate(state.message_hashes[first_message:], start=first_message))
            sizes = tree.count, state.message_count
        saved_upto = last.l2_block if last is not None else -1
        blocks = [b for b in self.deriver.blocks if b.header.number > saved_upto]
        checkpoint = Checkpoint(self.horizon, l1_hash, reread_from, head.header.number, *sizes)
        self.store.save(checkpoint, blocks, accounts, messages)
        self.checkpoint = checkpoint

    def batch_links(self, first_block: int, last_block: int) -> list[trace.Link]:
        """Links to the posts of the batches L2 blocks ``first_block..last_block`` were derived
        from (the last ``MAX_LINKS``), as far as this process read them."""
        low, high = self.block(first_block), self.block(last_block)
        if low is None or high is None:
            return []
        indices = range(max(low.snapshot.batch_index, high.snapshot.batch_index - MAX_LINKS + 1),
                        high.snapshot.batch_index + 1)
        return [trace.Link(self._posts[i]) for i in indices if i in self._posts]

    def judge(self, out: OutputRecord, start: DerivedBlock) -> bool | None:
        """Whether output ``out`` is right: its trace from ``start`` (our block at its start
        output's, which the caller has found equal to it), over what L1 held up to its horizon,
        has its snapshot at position ``trace_length``. None while this view cannot tell: we have
        not read L1 as far as its horizon yet.

        The trace pads with no-ops once at the output's block, so it is right iff the block is
        derivable within its bounds with that snapshot and the trace is long enough to reach it.
        Once we have read past its horizon (``sync`` derives whatever it reads), a block not
        derivable within its bounds is one no dispute can prove: a wrong output, whatever later
        batches say."""
        if self.horizon < out.l1_horizon:
            return None
        derived = self.block(out.l2_block)
        if derived is None or not self._derivable(derived, out.batch_limit, out.l1_horizon):
            return False
        return derived.snapshot.commitment() == out.snapshot_hash and out.trace_length >= derived.step - start.step

    def traces(self, batch_limit: int, l1_horizon: int) -> Traces:
        """The traces of a dispute over an output with this batch limit and L1 horizon, from genesis."""
        return Traces(self.genesis, self.rules, self.inputs, batch_limit, l1_horizon)

    async def dispute_traces(self, batch_limit: int, l1_horizon: int, start_block: int) -> Traces:
        """``traces``, from the nearest checkpoint at or below ``start_block`` (the disputed output's
        start) rather than genesis: the same snapshots, its state loaded once. The inputs from that
        checkpoint on are this chain's if it holds them, else read again from L1 (a checkpoint from
        before this process resumed)."""
        checkpoint = None if self.store is None else await asyncio.to_thread(self.store.at_or_below, start_block)
        base = None if checkpoint is None else self.block(checkpoint.l2_block)
        if checkpoint is None or base is None:
            return self.traces(batch_limit, l1_horizon)
        s, inputs = base.snapshot, self.inputs
        if s.batch_index < inputs.batch_base or s.deposit_index < inputs.deposit_base \
                or s.forced_index < inputs.forced_base:
            inputs = L1Inputs(batch_base=s.batch_index, deposit_base=s.deposit_index, forced_base=s.forced_index)
            await read_l1(self._reader, inputs, checkpoint.reread_from, l1_horizon)
            inputs.l1_horizon = l1_horizon
        store = self.store
        assert store is not None
        return Traces(self.genesis, self.rules, inputs, batch_limit, l1_horizon,
                      base=(s, functools.partial(store.state_at, checkpoint)))

    def _derivable(self, block: DerivedBlock, batch_limit: int, l1_horizon: int) -> bool:
        """Whether ``block`` (derived following L1) is derived within an output's bounds too: iff
        every block up to it is. A block from a batch is iff that batch is below the limit (a block
        never leaves the batch it started in). A block derivation made itself (rule F: a zero
        origin hash) is iff the batch at its cursor is below the limit (the same batch then
        decides the same) or the horizon alone lapses its window (h >= its origin - 1 + W): the
        output's view never lapses a window earlier than ours, and only these two let it lapse
        one as ours did. Batch indices, cursors and origins only grow along the chain, so each
        condition holds for a prefix of it: the last block of each kind up to ``block`` decides
        (genesis reads nothing)."""
        window = self.rules.sequencer_window
        made = self._last_of_kind(block.header.number, made_by_derivation=True)
        if made is not None and made.snapshot.batch_index >= batch_limit \
                and l1_horizon < made.header.l1_origin_number - 1 + window:
            return False
        posted = self._last_of_kind(block.header.number, made_by_derivation=False)
        return posted is None or posted.snapshot.batch_index < batch_limit

    def _last_of_kind(self, number: int, *, made_by_derivation: bool) -> DerivedBlock | None:
        """The last block up to ``number`` (genesis excluded) that derivation made itself (rule F:
        a zero origin hash), or the last one from a batch: in memory, then in the checkpoint store."""
        base, number = self.deriver.base, min(number, self.head.header.number)
        for n in range(number, base, -1):
            b = self.deriver.block(n)
            assert b is not None
            if (b.header.l1_origin_hash == ZERO_HASH) == made_by_derivation:
                return b
        if self.store is None or min(number, base) < 1:
            return None
        return self.store.last_block(min(number, base), made_by_derivation=made_by_derivation)


def _preload_done(task: asyncio.Task[State]) -> None:
    """A background state load that failed is logged here; the next step that needs the state
    loads it again and raises in the derivation's own round."""
    if not task.cancelled() and task.exception() is not None:
        _log.error("loading the derivation state from its checkpoint failed", exc_info=task.exception())


class Traces:
    """Per-step traces between two derived blocks, over L1's inputs within a disputed output's
    bounds (its batch limit and L1 horizon, as L1's step reads them): the same whatever is posted
    after the output."""

    def __init__(self, genesis: Genesis, rules: Rules, inputs: L1Inputs, batch_limit: int, l1_horizon: int,
                 base: tuple[Snapshot, Callable[[], State]] | None = None) -> None:
        self.genesis, self.rules = genesis, rules
        self.inputs = inputs.limited(batch_limit, l1_horizon)
        #: Where machines start instead of genesis: a block's snapshot at its seal, and what loads
        #: the state after it (a checkpoint's; loaded at the first machine, copied for each).
        self._base = base
        self._base_state: State | None = None

    def machine_at(self, block: int) -> Machine:
        """A trace-mode machine at the snapshot right after ``block`` sealed."""
        if self._base is not None and self._base[0].number <= block:
            snapshot, load = self._base
            if self._base_state is None:
                self._base_state = load()
            machine = Machine(snapshot, self._base_state.copy(), self.inputs, self.rules)
        else:
            state = self.genesis.state()
            machine = Machine(genesis_snapshot(self.genesis, state), state, self.inputs, self.rules)
        machine.run(target=block)
        if machine.snapshot.number != block:
            raise LookupError(f"L2 block {block} is not derivable from L1's first "
                              f"{self.inputs.batch_limit} batches (yet)")
        machine.trace = True
        return machine

    def snapshots(self, start_block: int, target: int, length: int) -> list[Snapshot]:
        """Positions 0..length of the trace from ``start_block``'s snapshot towards ``target``."""
        machine = self.machine_at(start_block)
        out = [machine.snapshot]
        for _ in range(length):
            machine.step(target)
            out.append(machine.snapshot)
        return out

    def machine_before(self, start_block: int, target: int, position: int,
                       check: Callable[[Snapshot], bool] | None = None) -> Machine:
        """A trace-mode machine at trace position ``position`` (about to take the next step)."""
        machine = self.machine_at(start_block)
        for _ in range(position):
            machine.step(target)
        if check is not None and not check(machine.snapshot):
            raise ValueError(f"position {position} is not the snapshot the game agreed on")
        return machine
