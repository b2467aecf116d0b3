"""Withdrawals: from the sequencer's L2->L1 messages to their finalization on L1.

INITIATED   the sequencer's ListMessages lists it (in a sealed L2 block); read from the next nonce,
            and re-read from where the sequencer's chain rewound (a message's hash at a nonce
            changed, or the count went down).
IN_OUTPUT   an output on L1 (the rollups worker's ListOutputs) covers its block and matches this
            node's chain (``_proofs``); if that output is invalidated before a proof, another is chosen.
PROVEN      DepositPortal's ``WithdrawalProven`` (by anyone: a wallet proving by itself shows up
            too); a proof against an output later invalidated is void: back to choosing an output.
READY       proven, matured (L1's latest block timestamp >= matures_at) and the output FINALIZED.
FINALIZED   ``WithdrawalFinalized`` (outcome SUCCEEDED or FAILED; a retry that succeeds makes it
            SUCCEEDED), ``WithdrawalRefunded`` (REFUNDED: a FAILED one, or one no block can call, W14).

Portal events come from the same L1 follower as deposits (``_bridge``), applied at the unsafe
head and undone when a reorg removes them. The relayer, when the worker has one, is handed each
served withdrawal to prove (IN_OUTPUT, proven by nobody) and to finalize (READY).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

from opentelemetry import trace

from protocol import WithdrawalMessage
from protos.l2node.sequencer.v1 import sequencer_pb2
from services.l1 import Contract, FollowerUpdate, L1Client, Log
from services.runtime import DomainError

from ._clients import Output, RollupsClient, SequencerClient
from ._proofs import Proofs
from ._records import WithdrawalOutcome, WithdrawalProof, WithdrawalRecord, WithdrawalStatus
from ._spans import record_change
from ._store import BridgeStore

#: Statuses a withdrawal can still leave.
OPEN: Final = (WithdrawalStatus.INITIATED, WithdrawalStatus.IN_OUTPUT, WithdrawalStatus.PROVEN,
               WithdrawalStatus.READY)
PORTAL_EVENTS: Final = ("WithdrawalProven", "WithdrawalFinalized", "WithdrawalRefunded")
_PAGE: Final = 256


class RelayerLike(Protocol):
    """What the tracker hands work to (services/bridge/_relayer.py's Relayer)."""

    async def prove(self, proof: WithdrawalProof) -> Any: ...

    async def finalize(self, record: WithdrawalRecord) -> Any: ...


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def message_of(m: sequencer_pb2.L2ToL1Message) -> WithdrawalMessage:
    return WithdrawalMessage(m.nonce, _bytes(m.sender), _bytes(m.target), int(m.value), m.gas_limit, _bytes(m.data))


class Withdrawals:
    def __init__(self, l1: L1Client, portal: Contract, store: BridgeStore, sequencer: SequencerClient | None,
                 rollups: RollupsClient | None, proofs: Proofs | None, maturity_delay_s: int, tracer: trace.Tracer,
                 logger: logging.Logger) -> None:
        self._l1 = l1
        self._portal = portal
        self._store = store
        self._sequencer = sequencer
        self._rollups = rollups
        self.proofs = proofs
        self.maturity_delay_s = maturity_delay_s
        self._tracer = tracer
        self._log = logger
        #: The portal's withdrawal events this artifact knows (an older portal has none).
        self._topics = {portal.topic(name): name for name in PORTAL_EVENTS if _has_event(portal, name)}
        #: Outputs by index, as last read; below ``_settled`` all are FINALIZED or INVALIDATED.
        self.outputs: dict[int, Output] = {}
        self._settled = 0
        #: Portal events for a withdrawal whose message is not read yet (catching up after a restart).
        self._early: dict[bytes, list[tuple[Log, bool]]] = {}
        #: What this run handed the relayer, (hash, action, output index) -> when it may be handed
        #: again (inf: never; the relayer settled it, or the record moves on to another key).
        self._handed: dict[tuple[bytes, str, int | None], float] = {}
        self.relay_queue: asyncio.Queue[WithdrawalProof | WithdrawalRecord] = asyncio.Queue()

    @property
    def topics(self) -> list[bytes]:
        return list(self._topics)

    # --- messages from the sequencer --------------------------------------------------------------

    async def read_messages(self) -> int:
        """New messages in, after undoing a rewind of the sequencer's chain; how many were new."""
        if self._sequencer is None:
            return 0
        first = await self._divergence(self._store.next_nonce())
        if first < self._store.next_nonce():
            gone = self._store.forget_withdrawals_from(first)
            self._log.warning("the sequencer's chain rewound: messages from nonce %d read again", first,
                              extra={"forgotten": len(gone)})
            if self.proofs is not None:
                self.proofs.forget()
        new = 0
        while True:
            start = self._store.next_nonce()
            reply = await self._sequencer.messages(start, _PAGE)
            records: list[WithdrawalRecord] = []
            for m in reply.messages:
                message = message_of(m)
                if m.nonce != start + len(records) or message.hash() != _bytes(m.hash):
                    self._log.error("the sequencer listed message %d with a hash its fields do not give", m.nonce)
                    break
                records.append(WithdrawalRecord(message, message.hash(), WithdrawalStatus.INITIATED, m.block_number,
                                                _bytes(m.tx_hash), traceparent=m.traceparent))
            self._write(records)
            new += len(records)
            for r in records:
                for log, removed in self._early.pop(r.withdrawal_hash, []):
                    await self._apply_event(log, removed)
            if len(reply.messages) < _PAGE or len(records) < len(reply.messages):
                return new

    async def _divergence(self, stored: int) -> int:
        """The first nonce below ``stored`` whose message the sequencer lists differently (or no
        longer has); ``stored`` if all agree. One call when nothing changed."""
        assert self._sequencer is not None
        n = stored
        while n > 0:
            start = max(0, n - (1 if n == stored else _PAGE))
            reply = await self._sequencer.messages(start, n - start)
            ours = self._store.message_hashes(n)[start:]
            theirs = [_bytes(m.hash) for m in reply.messages]
            mismatch = next((i for i, h in enumerate(ours) if i >= len(theirs) or theirs[i] != h), None)
            if mismatch is None:
                return n
            if mismatch > 0:
                return start + mismatch
            n = start
        return 0

    # --- portal events from L1 --------------------------------------------------------------------

    async def apply(self, update: FollowerUpdate) -> None:
        for log in update.removed:
            if log.topics and log.topics[0] in self._topics:
                await self._apply_event(log, removed=True)
        for log in update.added:
            if log.topics and log.topics[0] in self._topics:
                await self._apply_event(log, removed=False)

    async def _apply_event(self, log: Log, removed: bool) -> None:
        event = self._portal.decode_log(log)
        if event is None:
            return
        a = event.args
        h = bytes(a["withdrawalHash"])
        record = self._store.withdrawal(h)
        if record is None:
            self._early.setdefault(h, []).append((log, removed))
            return
        new = record
        if event.name == "WithdrawalProven":
            if removed and record.proven_l1_tx_hash == log.tx_hash and record.status in (
                    WithdrawalStatus.PROVEN, WithdrawalStatus.READY):
                new = _unproven(record)
            elif not removed and record.status in (WithdrawalStatus.INITIATED, WithdrawalStatus.IN_OUTPUT):
                block = await self._l1.get_block(log.block_number)
                proven_at = block.timestamp if block is not None else 0
                new = dataclasses.replace(record, status=WithdrawalStatus.PROVEN, prover=bytes(a["prover"]),
                                          output_index=int(a["outputIndex"]), proven_l1_tx_hash=log.tx_hash,
                                          proven_at=proven_at, matures_at=proven_at + self.maturity_delay_s)
        elif event.name == "WithdrawalFinalized":
            if removed and record.finalized_l1_tx_hash == log.tx_hash:
                new = dataclasses.replace(record, status=WithdrawalStatus.READY, finalized_l1_tx_hash=b"",
                                          outcome=WithdrawalOutcome.NONE)
            elif not removed:
                outcome = WithdrawalOutcome.SUCCEEDED if a["success"] else WithdrawalOutcome.FAILED
                if record.outcome != WithdrawalOutcome.SUCCEEDED:
                    new = dataclasses.replace(record, status=WithdrawalStatus.FINALIZED,
                                              finalized_l1_tx_hash=log.tx_hash, outcome=outcome)
        elif event.name == "WithdrawalRefunded":
            if removed and record.outcome == WithdrawalOutcome.REFUNDED and record.finalized_l1_tx_hash:
                new = dataclasses.replace(record, outcome=WithdrawalOutcome.FAILED)
            elif removed and record.outcome == WithdrawalOutcome.REFUNDED:
                # W14 refunds a withdrawal no block can call without a finalize first: back to READY.
                new = dataclasses.replace(record, status=WithdrawalStatus.READY, outcome=WithdrawalOutcome.NONE)
            elif not removed:
                new = dataclasses.replace(record, status=WithdrawalStatus.FINALIZED, outcome=WithdrawalOutcome.REFUNDED)
        if new != record:
            self._write([new])

    # --- outputs, maturity --------------------------------------------------------------------------

    async def refresh_outputs(self) -> None:
        """Read the outputs not settled yet (FINALIZED and INVALIDATED never change again)."""
        if self._rollups is None:
            return
        for output in await self._rollups.outputs(self._settled):
            self.outputs[output.index] = output
        while self._settled in self.outputs and (self.outputs[self._settled].finalized
                                                 or self.outputs[self._settled].invalidated):
            self._settled += 1

    async def progress(self) -> int:
        """Moves the open withdrawals on (outputs, invalidations, maturity); how many are open."""
        open_ = self._store.withdrawals_in(OPEN)
        if not open_ or self._rollups is None or self.proofs is None:
            return len(open_)
        await self.refresh_outputs()
        now: int | None = None
        changed = []
        for record in open_:
            new = record
            output = self.outputs.get(record.output_index) if record.output_index is not None else None
            if record.status in (WithdrawalStatus.PROVEN, WithdrawalStatus.READY) and output is not None \
                    and output.invalidated:
                new = _unproven(record)  # the proof is void: prove again against another output
                output = None
            if new.status == WithdrawalStatus.IN_OUTPUT and (output is None or output.invalidated):
                new = dataclasses.replace(new, status=WithdrawalStatus.INITIATED, output_index=None)
            if new.status == WithdrawalStatus.INITIATED:
                chosen = await self.proofs.choose(new, self.outputs.values())
                if chosen is not None:
                    new = dataclasses.replace(new, status=WithdrawalStatus.IN_OUTPUT, output_index=chosen[0].index)
            if new.status == WithdrawalStatus.PROVEN and output is not None and output.finalized:
                if now is None:
                    head = await self._l1.get_block("latest")
                    now = head.timestamp if head is not None else 0
                if now >= new.matures_at:
                    new = dataclasses.replace(new, status=WithdrawalStatus.READY)
            if new != record:
                changed.append(new)
        self._write(changed)
        return len(open_)

    async def hand_to_relayer(self, serves: Callable[[WithdrawalRecord], bool]) -> None:
        """Queue the served withdrawals the relayer has work on: a proof (IN_OUTPUT, proven by
        nobody) or a finalize (READY); each once per run and state (the relayer is idempotent).
        With no sequencer there is nothing to prove from: no withdrawal reaches either state."""
        if self.proofs is None:
            return
        for record in self._store.withdrawals_in((WithdrawalStatus.IN_OUTPUT, WithdrawalStatus.READY)):
            if not serves(record):
                continue
            action = "prove" if record.status == WithdrawalStatus.IN_OUTPUT else "finalize"
            key = (record.withdrawal_hash, action, record.output_index)
            if self._handed.get(key, 0.0) > time.monotonic():
                continue
            if action == "finalize":
                self._handed[key] = math.inf
                self.relay_queue.put_nowait(record)
                continue
            output = self.outputs.get(record.output_index) if record.output_index is not None else None
            if output is None:
                continue
            block = await self.proofs.block_of(output)
            if block is None:
                continue  # the output no longer matches (invalidated meanwhile): chosen again next round
            try:
                proof = self.proofs.build(record, output, block)
            except DomainError as exc:
                self._log.debug("no proof yet for 0x%s: %s", record.withdrawal_hash.hex(), exc.message)
                continue
            self._handed[key] = math.inf
            self.relay_queue.put_nowait(proof)

    def retry_later(self, item: WithdrawalProof | WithdrawalRecord, after_s: float = 0.0) -> None:
        """The relayer did not settle ``item`` (L1 down, a revert): hand it again, not before ``after_s``."""
        record = item.withdrawal if isinstance(item, WithdrawalProof) else item
        action = "prove" if isinstance(item, WithdrawalProof) else "finalize"
        self._handed[(record.withdrawal_hash, action, record.output_index)] = time.monotonic() + after_s

    def _write(self, records: Iterable[WithdrawalRecord]) -> None:
        for record in self._store.put(records):
            assert isinstance(record, WithdrawalRecord)
            record_change(self._tracer, record)
            self._log.info("withdrawal %s", record.status.name, extra={
                "withdrawal_hash": _hex(record.withdrawal_hash), "l2_block": record.l2_block,
                "output_index": record.output_index, "outcome": record.outcome.name})


def _unproven(record: WithdrawalRecord) -> WithdrawalRecord:
    return dataclasses.replace(record, status=WithdrawalStatus.IN_OUTPUT, prover=b"", proven_l1_tx_hash=b"",
                               proven_at=0, matures_at=0)


def _has_event(contract: Contract, name: str) -> bool:
    try:
        contract.event(name)
    except (KeyError, ValueError):
        return False
    return True
