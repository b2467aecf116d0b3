"""The proposer: bonded outputs of the L1-derived chain, finalized when their window has passed.

It proposes what it derived from L1 itself, never what the sequencer says: an output is a
claim its proposer must be able to defend step by step, from L1 data, in a dispute. Its
derivation reads L1 a few blocks back (the L1 horizon: the last block it read), and the output
carries that horizon and the number of batches L1 included by then (its batch limit, which the
registry checks): the bounds of the output's disputes.

Outputs are independent (see OutputRegistry): each starts from the latest finalized output,
which the registry records. The proposer proposes only from a start it agrees with (the same
snapshot commitment as its own derivation at that block); a wrong finalized start means L1
finalized a wrong output, which no proposal can fix: it says so loudly and waits. It proposes
every ``output_interval_blocks`` blocks (or ``output_interval_s`` with news) after its own
latest valid output, whatever other outputs are doing: a disputed output, right or wrong,
holds up nobody else's.
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
from ._snapshot import Snapshot, check_range
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
        #: Outputs read so far looking for ours (0: none yet), and our latest one (index, L2 block).
        self._scanned = 0
        self._ours: tuple[int, int] | None = None
        #: The finalized output found wrong (logged once).
        self._wrong_start = -1
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
        covered = await self._last_proposed()
        if self.chain.head.header.number == covered:
            return None  # nothing derived since our latest (valid) output
        start_index = await self.registry.latest_finalized()
        start = await self.registry.output(start_index)
        base = self.chain.block(start.l2_block)
        if base is None or self.chain.horizon < start.l1_horizon:
            return None  # not derived that far yet
        if base.snapshot.commitment() != start.snapshot_hash:
            if start_index != self._wrong_start:
                self._wrong_start = start_index
                _log.error("the latest finalized output is not what L1 derives: no output can start from it",
                           extra={"index": start_index, "l2_block": start.l2_block})
            return None
        derived = self.chain.head
        new_blocks = derived.header.number - max(start.l2_block, covered)
        due = new_blocks >= self.settings.output_interval_blocks or (
            new_blocks > 0 and time.monotonic() - self._last_proposal >= self.settings.output_interval_s)
        self._pending = self._pending or new_blocks > 0
        if not due:
            return None
        index = await self.registry.output_count()
        snapshot = self.claim(index, derived.snapshot)
        check_range(snapshot)  # what the registry refuses; an honest derivation never produces it
        length = derived.step - base.step
        horizon, batch_limit = self.chain.horizon, self.chain.batch_count
        # Linked to the posts of the batches the output's new blocks came from.
        links = self.chain.batch_links(start.l2_block + 1, derived.header.number)
        with _tracer.start_as_current_span("propose_output", links=links) as span:
            span.set_attribute("l2.output.index", index)
            span.set_attribute("l2.output.l2_block", derived.header.number)
            agrees = await self._compare_with_sequencer(derived.header.number, derived.hash)
            receipt = await self.registry.propose(self.sender, snapshot, length, batch_limit, horizon)
            span.set_attribute("l1.block", receipt.block_number)
            _log.info("output proposed", extra={"index": index, "l2_block": derived.header.number,
                                                "start": start_index, "l1_horizon": horizon,
                                                "output_root": "0x" + snapshot.output_root().hex(),
                                                "faulty": snapshot is not derived.snapshot,
                                                "sequencer_agrees": agrees})
        self._last_proposal = time.monotonic()
        self._ours = (index, derived.header.number)
        self.proposed += 1
        metrics.OUTPUTS.labels("proposed").inc()
        return index

    async def _last_proposed(self) -> int:
        """The L2 block of our latest output that is not invalidated (0: none), from L1, so that a
        restarted proposer does not propose again what it already has."""
        count = await self.registry.output_count()
        # New outputs, oldest first; at the first call, every output, newest first, up to our latest.
        new = range(self._scanned, count) if self._scanned else range(count - 1, 0, -1)
        for index in new:
            out = await self.registry.output(index)
            if out.proposer == self.sender.address:
                self._ours = (index, out.l2_block)
                if not self._scanned:
                    break
        self._scanned = count
        if self._ours is None:
            return 0
        index, block = self._ours
        if (await self.registry.output(index)).status == OutputStatus.INVALIDATED:
            self._ours = None  # it lost a game: propose that range again
            return 0
        return block

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
        """Finalize every output whose window has passed with no game open and none won against it."""
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
            if latest < out.proposed_at + window:
                # Full speed only once its window is about to pass (a 7-day window is not news).
                due_in_s = out.proposed_at + window - latest
                self._pending |= due_in_s <= self.settings.idle_poll_s
                break  # later outputs were proposed later: their windows are open too
            if out.status != OutputStatus.PROPOSED:
                continue  # disputed: it finalizes (if ever) once its games are over
            with contextlib.suppress(ContractFailed), _tracer.start_as_current_span("finalize_output") as span:
                span.set_attribute("l2.output.index", index)
                await self.registry.finalize(self.sender, index)
                done.append(index)
                metrics.OUTPUTS.labels("finalized").inc()
                if index == self._finalized_upto + 1:
                    self._finalized_upto = index
        return done

    async def l1_time(self) -> int:
        block = await self.registry.l1.get_block("latest")
        return block.timestamp if block is not None else 0


