"""The proposer: bonded outputs of the L1-derived chain, finalized when their window has passed.

It proposes what it derived from L1 itself, never what the sequencer says: an output is a
claim its proposer must be able to defend step by step, from L1 data, in a dispute. Its
derivation reads L1 a few blocks back, so every batch it used is below the batch count the
registry records at the proposal (the bound of the output's disputes).

An output builds on the registry's head (the latest output not invalidated). The proposer only
extends a head it agrees with (``DerivedChain.judge``: same snapshot commitment as its own
derivation, from the batches L1 held when the head was proposed): a wrong head is the
challenger's business, and an output on top of it would be invalidated with it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from opentelemetry import trace

from services.l1 import OUTAGE, L1Error, Pacer, TxSender

from . import _metrics as metrics
from ._contracts import ContractFailed, OutputStatus, Registry
from ._settings import RollupsSettings
from ._snapshot import Snapshot
from ._trace import DerivedChain

_log = logging.getLogger("l2node.rollups.proposer")
_tracer = trace.get_tracer("l2node.rollups")


#: The sequencer's hash of an L2 block (None: it has no such block); raises when unreachable.
SequencerBlockHash = Callable[[int], Awaitable[bytes | None]]


class Proposer:
    def __init__(self, chain: DerivedChain, registry: Registry, sender: TxSender, settings: RollupsSettings,
                 sequencer_block_hash: SequencerBlockHash | None = None) -> None:
        self.chain, self.registry, self.sender, self.settings = chain, registry, sender, settings
        self.sequencer_block_hash = sequencer_block_hash
        #: Outputs whose block the sequencer had differently (or not at all): an operator alarm.
        self.divergences = 0
        self._last_proposal = time.monotonic()
        self._finalized_upto = 0
        self.proposed = 0
        #: Work the clock will make due: derived blocks not yet proposed, outputs not yet finalized.
        self._pending = False

    async def run(self) -> None:
        pacer = Pacer(self.settings.poll_interval_s, self.settings.idle_poll_s, self.registry.l1.activity)
        while True:
            active = False
            try:
                self._pending = False
                active = await self.chain.sync() > 0
                active = await self.propose_once() is not None or active
                active = bool(await self.finalize_ready()) or active
            except (*OUTAGE, L1Error, ContractFailed) as exc:  # L1 unreachable or a race: next round
                _log.warning("proposer round failed", extra={"error": str(exc)})
            await pacer.sleep(active or self._pending)

    async def propose_once(self) -> int | None:
        """Propose the derived head if it is due; the new output's index, or None."""
        head_index = await self.registry.head()
        head = await self.registry.output(head_index)
        parent = self.chain.block(head.l2_block)
        if parent is None or self.chain.judge(head.l2_block, head.snapshot_hash, head.batch_limit) is not True:
            return None  # not derived that far yet, or a head we disagree with (wrong, or from the future)
        derived = self.chain.head
        new_blocks = derived.header.number - head.l2_block
        due = new_blocks >= self.settings.output_interval_blocks or (
            new_blocks > 0 and time.monotonic() - self._last_proposal >= self.settings.output_interval_s)
        self._pending = self._pending or new_blocks > 0
        if not due:
            return None
        index = await self.registry.output_count()
        snapshot = self.claim(index, derived.snapshot)
        length = derived.step - parent.step
        # Linked to the posts of the batches the output's new blocks came from.
        links = self.chain.batch_links(head.l2_block + 1, derived.header.number)
        with _tracer.start_as_current_span("propose_output", links=links) as span:
            span.set_attribute("l2.output.index", index)
            span.set_attribute("l2.output.l2_block", derived.header.number)
            agrees = await self._compare_with_sequencer(derived.header.number, derived.hash)
            receipt = await self.registry.propose(self.sender, head_index, snapshot, length)
            span.set_attribute("l1.block", receipt.block_number)
            _log.info("output proposed", extra={"index": index, "l2_block": derived.header.number,
                                                "output_root": "0x" + snapshot.output_root().hex(),
                                                "faulty": snapshot is not derived.snapshot,
                                                "sequencer_agrees": agrees})
        self._last_proposal = time.monotonic()
        self.proposed += 1
        metrics.OUTPUTS.labels("proposed").inc()
        return index

    def claim(self, index: int, derived: Snapshot) -> Snapshot:
        """What output ``index`` claims: the snapshot derived from L1. (A test's faulty proposer,
        tests/workers/faulty_rollups.py, claims something else here.)"""
        return derived

    async def _compare_with_sequencer(self, number: int, l1_hash: bytes) -> bool | None:
        """Whether the sequencer has block ``number`` as L1 defines it (None: not asked / unreachable)."""
        if self.sequencer_block_hash is None:
            return None
        try:
            ours = await self.sequencer_block_hash(number)
        except Exception as exc:  # unreachable or breaker open: the check is advisory
            _log.warning("sequencer not reachable for the output cross-check", extra={"error": repr(exc)})
            return None
        if ours == l1_hash:
            return True
        self.divergences += 1
        _log.error("the sequencer's block differs from the one L1 defines; proposing L1's", extra={
            "l2_block": number, "l1_derived": "0x" + l1_hash.hex(),
            "sequencer": "0x" + ours.hex() if ours is not None else None})
        return False

    async def finalize_ready(self) -> list[int]:
        """Finalize, in order, every output whose window has passed without a winning challenge."""
        done: list[int] = []
        count = await self.registry.output_count()
        if count <= self._finalized_upto + 1:
            return done  # nothing awaits finalization: no need to ask L1 the time
        window = await self.registry.param("challengeWindow")
        latest = await self.l1_time()
        for index in range(self._finalized_upto + 1, count):
            out = await self.registry.output(index)
            if out.status in (OutputStatus.FINALIZED, OutputStatus.INVALIDATED):
                if index == self._finalized_upto + 1:
                    self._finalized_upto = index
                continue
            if out.status != OutputStatus.PROPOSED or latest < out.proposed_at + window:
                # Full speed only once its window is about to pass (a 7-day window is not news).
                due_in_s = out.proposed_at + window - latest
                self._pending |= out.status == OutputStatus.PROPOSED and due_in_s <= self.settings.idle_poll_s
                break  # outputs finalize parent first: nothing after this one can
            with contextlib.suppress(ContractFailed), _tracer.start_as_current_span("finalize_output") as span:
                span.set_attribute("l2.output.index", index)
                await self.registry.finalize(self.sender, index)
                done.append(index)
                metrics.OUTPUTS.labels("finalized").inc()
                self._finalized_upto = index
        return done

    async def l1_time(self) -> int:
        block = await self.registry.l1.get_block("latest")
        return block.timestamp if block is not None else 0


