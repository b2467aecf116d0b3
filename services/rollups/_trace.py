"""Derivation kept up to date from L1, and the per-step traces disputes are played over.

``DerivedChain`` follows L1 to its safe head (``confirmation_depth`` blocks back, so an L1
reorg above that depth cannot change what was derived) and derives every block it can.

A dispute over output B (start output A: the latest finalized output when B was proposed)
bisects over positions 0..traceLength: position k is the commitment of the snapshot after k
steps from A's snapshot towards B (``trace``), reading only what L1 held up to B's L1 horizon
(B's batch limit: the batches included by then; see _machine's Inputs notes).
Traces are rebuilt on demand from genesis (fast up to A, then step by step with exact roots): a
dispute is rare and bounded, and keeping a state copy per output would cost more than this.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from opentelemetry import trace

from protocol import ZERO_HASH, Genesis, L1InputReader, PostedBatch, keccak256
from services.l1 import Contract, L1Client
from services.runtime import keyed_context

from . import _metrics as metrics
from ._contracts import OutputRecord
from ._derivation import Deriver, read_l1
from ._machine import DerivedBlock, L1Inputs, Machine, Rules, genesis_snapshot
from ._snapshot import Snapshot

_log = logging.getLogger("l2node.rollups.derivation")
_tracer = trace.get_tracer("l2node.rollups")
#: Links per span, at most.
MAX_LINKS = 32


class DerivedChain:
    """The L2 chain as L1 alone defines it, extended each ``sync``."""

    def __init__(self, l1: L1Client, inbox: Contract, portal: Contract, genesis: Genesis, rules: Rules,
                 from_block: int, confirmation_depth: int, executor: Executor | None = None) -> None:
        self.l1, self.inbox, self.portal = l1, inbox, portal
        self._reader = L1InputReader(l1, inbox, portal)
        self.genesis, self.rules = genesis, rules
        #: ``executor`` (a thread pool) recovers each new batch's senders in parallel.
        self.deriver = Deriver(genesis, rules, executor)
        self.confirmation_depth = confirmation_depth
        self._next_l1 = from_block
        #: Batch index -> the span context of its post (see ``sync``).
        self._posts: dict[int, trace.SpanContext] = {}

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
        return len(self.inputs.batches)

    def block(self, number: int) -> DerivedBlock | None:
        blocks = self.deriver.blocks
        return blocks[number] if 0 <= number < len(blocks) else None

    async def sync(self) -> int:
        """Read L1 up to its safe head and derive; how many new L2 blocks that gave."""
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
        """The traces of a dispute over an output with this batch limit and L1 horizon."""
        return Traces(self.genesis, self.rules, self.inputs, batch_limit, l1_horizon)

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
        decided_batch = decided_window = False
        for number in range(block.header.number, 0, -1):
            b = self.deriver.blocks[number]
            if b.header.l1_origin_hash == ZERO_HASH:
                if not decided_window:
                    decided_window = True
                    if b.snapshot.batch_index >= batch_limit and l1_horizon < b.header.l1_origin_number - 1 + window:
                        return False
            elif not decided_batch:
                decided_batch = True
                if b.snapshot.batch_index >= batch_limit:
                    return False
            if decided_batch and decided_window:
                break
        return True


class Traces:
    """Per-step traces between two derived blocks, over L1's inputs within a disputed output's
    bounds (its batch limit and L1 horizon, as L1's step reads them): the same whatever is posted
    after the output."""

    def __init__(self, genesis: Genesis, rules: Rules, inputs: L1Inputs, batch_limit: int, l1_horizon: int) -> None:
        self.genesis, self.rules = genesis, rules
        self.inputs = inputs.limited(batch_limit, l1_horizon)

    def machine_at(self, block: int) -> Machine:
        """A trace-mode machine at the snapshot right after ``block`` sealed."""
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
