"""Derivation kept up to date from L1, and the per-step traces disputes are played over.

``DerivedChain`` follows L1 to its safe head (``confirmation_depth`` blocks back, so an L1
reorg above that depth cannot change what was derived) and derives every block it can.

A dispute over output B (parent output A) bisects over positions 0..traceLength: position k
is the commitment of the snapshot after k steps from A's snapshot towards B (``trace``), reading
only the batches L1 held when B was proposed (B's batch limit, see _machine's Inputs notes).
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

from protocol import Genesis, L1InputReader, PostedBatch, keccak256
from services.l1 import Contract, L1Client
from services.runtime import keyed_context

from . import _metrics as metrics
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
        if not items:
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

    def judge(self, l2_block: int, snapshot_hash: bytes, batch_limit: int) -> bool | None:
        """Whether an output claiming ``snapshot_hash`` at ``l2_block``, proposed when L1 held
        ``batch_limit`` batches, is right: its block derived from those batches alone, with that
        snapshot. None while this view cannot tell: the block is not derived (or only from later
        batches) and we have not read every batch below the limit yet.

        A block's reads end in the batch its sealed snapshot points at (a block never leaves the
        batch it started in), so it is derivable from the first ``batch_limit`` batches iff that
        batch is below the limit (genesis reads nothing). When we hold all of those and have
        derived over them (``sync`` derives whatever it reads), a block they do not derive is
        one no dispute can prove: a wrong output, whatever later batches say."""
        derived = self.block(l2_block)
        if derived is not None and (derived.step == 0 or derived.snapshot.batch_index < batch_limit):
            return derived.snapshot.commitment() == snapshot_hash
        if len(self.inputs.batches) >= batch_limit:
            return False
        return None

    def traces(self, batch_limit: int) -> Traces:
        """The traces of a dispute over an output proposed when L1 held ``batch_limit`` batches."""
        return Traces(self.genesis, self.rules, self.inputs, batch_limit)


class Traces:
    """Per-step traces between two derived blocks, over L1's inputs below a batch limit (the
    disputed output's): the same whatever is posted after the output."""

    def __init__(self, genesis: Genesis, rules: Rules, inputs: L1Inputs, batch_limit: int) -> None:
        self.genesis, self.rules = genesis, rules
        self.inputs = inputs.limited(batch_limit)

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
