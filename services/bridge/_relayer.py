"""The relayer: proves and finalizes the withdrawals it serves, with its own key, exactly once.

Every L1 transaction goes through the :class:`~._outbox.Outbox` (signed, stored, then sent; see
its docstring for kill -9 and nonces). The relayer decides what to send:

- prove (the bridge hands a proof when the withdrawal is IN_OUTPUT and proven by nobody): not if
  the withdrawal is finalized already, nor if this relayer's own proof on L1 is for that output
  already; again (a new attempt) only after a revert, or for another output than its last proof's
  (the bridge re-hands a proof when the first one's output was invalidated: that proof is void).
- finalize (READY): with the record's prover's proof (its own, or a wallet's), or its own when the
  record names none; not if the portal's state says finalized (by anyone).

Only a CONFIRMED attempt settles an action for good. After a revert, or a DROPPED attempt (its
nonce cancelled because the portal showed the action done, or taken by a transaction this key
sent elsewhere), the action is looked at again when asked again: the portal's state first (done
by anyone: nothing is sent), then a fresh simulation, at most ``MAX_ATTEMPTS`` attempts per action.

Each call waits for its transaction to be mined (the bridge hands each action once), and first
looks again at any intent an earlier call left open; an L1 outage meanwhile is waited out, the
intent stays stored, and the calls are safe to repeat (an action asked again sends nothing new).
An L1 outage before anything is stored raises (``services.l1.OUTAGE``): the caller asks again.

Spans ``relay.prove`` / ``relay.finalize`` (``l2.withdrawal.hash``, ``l1.tx.hash``), children of
the withdrawal's trace (``record.traceparent``, the sending call's on L2) when it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import time
from collections.abc import Callable
from typing import Final

from opentelemetry import propagate, trace
from opentelemetry.trace import Status, StatusCode

from services.l1 import OUTAGE, Contract, L1Client, LocalSigner, RpcError, SenderConfig
from services.runtime import quiet

from ._calls import finalize_calldata, prove_calldata
from ._outbox import Intent, IntentState, Outbox, OutboxStatistics
from ._records import WithdrawalProof, WithdrawalRecord

_tracer = trace.get_tracer("l2node.bridge")

PROVE: Final = "prove"
FINALIZE: Final = "finalize"
#: Attempts per action (a revert each) before the relayer leaves it to the user.
MAX_ATTEMPTS: Final = 3
#: How long a call waits for its transaction to be mined (an outage included) before leaving it
#: to the next call's sweep.
SETTLE_TIMEOUT_S: Final = 120.0
_FIRST_POLL_S: Final = 0.005  # anvil mines within a few ms of the send
_MAX_POLL_S: Final = 0.5
_MAX_RESUME_POLL_S: Final = 2.0  # at start, while L1 is down: the breaker's reset time is the pace anyway

#: What a relayer call answers: the action's intent (its L1 transaction), or None (nothing to do).
RelayStatistics = OutboxStatistics


class Relayer:
    """Proves and finalizes ``serves``' withdrawals on ``portal`` from ``signer``'s key."""

    def __init__(self, l1: L1Client, signer: LocalSigner, portal: Contract, db_path: pathlib.Path,
                 serves: Callable[[WithdrawalRecord], bool], logger: logging.Logger, *,
                 config: SenderConfig | None = None, settle_timeout_s: float = SETTLE_TIMEOUT_S,
                 checkpoint: Callable[[str], None] | None = None, tracer: trace.Tracer | None = None) -> None:
        if portal.address is None:
            raise ValueError("the portal contract needs its address")
        self.l1, self.portal, self.serves, self.log = l1, portal, serves, logger
        self.portal_address: Final = portal.address
        self.settle_timeout_s = settle_timeout_s
        self.tracer = tracer or _tracer
        self.outbox: Final = Outbox(l1, signer, db_path, self._done, config=config, logger=logger,
                                    checkpoint=checkpoint)

    @property
    def address(self) -> bytes:
        return self.outbox.address

    async def aclose(self) -> None:
        self.outbox.close()

    def statistics(self) -> RelayStatistics:
        """sent, confirmed, reverted, dropped (done by someone else), rebroadcast, outstanding."""
        return self.outbox.statistics()

    async def resume(self) -> None:
        """Settle what a previous run left open (the same signed bytes, never new ones), waiting
        out an L1 outage for as long as it lasts: nothing is sent before this returns."""
        delay = _FIRST_POLL_S
        while True:
            try:
                with quiet():
                    intents = await self.outbox.resume()
                break
            except OUTAGE as exc:
                if delay == _FIRST_POLL_S:  # once per outage, not once per poll
                    self.log.warning("relayer: L1 unreachable at start, waiting: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RESUME_POLL_S)
        if intents:
            self.log.info("relayer resumed", extra={"open": len(intents)})
        for intent in intents:
            await self._settle(intent)

    async def prove(self, proof: WithdrawalProof) -> Intent | None:
        """proveWithdrawal against ``proof``'s output, unless done; the action's intent."""
        record = proof.withdrawal
        if not self.serves(record):
            return None
        await self._revisit()
        key, tag = (record.withdrawal_hash, PROVE), str(proof.output_index)
        latest = self.outbox.latest(key)
        if latest is not None and latest.is_open:
            return await self._settle(latest)
        if latest is not None and latest.tag == tag and latest.state is IntentState.CONFIRMED:
            return latest  # proven against this very output
        if not self._may_try(latest):
            return latest
        if await self._finalized(record.withdrawal_hash):
            return latest
        (output_index, _, proven_at) = await self.portal.read(self.l1, "provenWithdrawal", record.withdrawal_hash,
                                                              self.address)
        if proven_at != 0 and output_index == proof.output_index:
            return latest  # our proof is on L1 already (a lost database, or an earlier run's)
        return await self._send(PROVE, record, prove_calldata(self.portal, proof), tag, again=latest is not None)

    async def finalize(self, record: WithdrawalRecord) -> Intent | None:
        """finalizeWithdrawal with the record's prover's proof (or this relayer's), unless done."""
        if not self.serves(record):
            return None
        await self._revisit()
        key = (record.withdrawal_hash, FINALIZE)
        latest = self.outbox.latest(key)
        if latest is not None and latest.is_open:
            return await self._settle(latest)
        if latest is not None and latest.state is IntentState.CONFIRMED:
            return latest
        if not self._may_try(latest) or await self._finalized(record.withdrawal_hash):
            return latest
        prover = record.prover or self.address
        data = finalize_calldata(self.portal, record.message, prover)
        return await self._send(FINALIZE, record, data, "0x" + prover.hex(), again=latest is not None)

    # --- internals -------------------------------------------------------------------------------

    def _may_try(self, latest: Intent | None) -> bool:
        if latest is None or self.outbox.attempts(latest.key) < MAX_ATTEMPTS:
            return True
        self.log.error("relay %s tried %d times: left to the user", latest.action, MAX_ATTEMPTS,
                       extra={"withdrawal_hash": "0x" + latest.withdrawal_hash.hex()})
        return False

    async def _send(self, action: str, record: WithdrawalRecord, data: bytes, tag: str, *, again: bool
                    ) -> Intent | None:
        parent = propagate.extract({"traceparent": record.traceparent}) if record.traceparent else None
        with self.tracer.start_as_current_span(f"relay.{action}", context=parent, record_exception=False,
                                           set_status_on_exception=False) as span:
            span.set_attribute("l2.withdrawal.hash", "0x" + record.withdrawal_hash.hex())
            try:
                intent = await self.outbox.submit((record.withdrawal_hash, action), self.portal_address, data,
                                                  tag=tag, again=again)
            except RpcError as exc:  # the simulation reverts: nothing was signed or stored
                span.set_status(Status(StatusCode.ERROR, f"simulation reverted: {exc.message}"))
                self.log.warning("relay %s not sent: its simulation reverts: %s", action, exc.message,
                                 extra={"withdrawal_hash": "0x" + record.withdrawal_hash.hex()})
                return self.outbox.latest((record.withdrawal_hash, action))
            span.set_attribute("l1.tx.hash", "0x" + intent.versions[-1].tx_hash.hex())
            span.set_attribute("l1.tx.nonce", intent.nonce)
            intent = await self._settle(intent)
            span.set_attribute("l1.tx.hash", "0x" + intent.tx_hash.hex())
            span.set_attribute("relay.outcome", str(intent.state))
            if intent.state is IntentState.REVERTED:
                span.set_status(Status(StatusCode.ERROR, "reverted on L1"))
            elif intent.l1_block:
                span.add_event("l1.receipt", {"l1.tx.hash": "0x" + intent.tx_hash.hex(), "l1.block": intent.l1_block})
            return intent

    async def _settle(self, intent: Intent) -> Intent:
        """Check ``intent`` until it is mined or dropped (re-sent, fee-bumped meanwhile), waiting
        out L1 outages, for up to ``settle_timeout_s``; then it is left open for a later call."""
        deadline = time.monotonic() + self.settle_timeout_s
        delay = _FIRST_POLL_S
        while intent.is_open:
            with contextlib.suppress(*OUTAGE), quiet():  # the polls that find nothing are no spans
                intent = await self.outbox.check(intent)
            if not intent.is_open or time.monotonic() >= deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_S)
        return intent

    async def _revisit(self) -> None:
        """One look at every intent a call left open (not mined within its wait: underfunded,
        underpriced, L1 down), since the bridge hands each action once: re-sent, bumped, closed."""
        for intent in self.outbox.open_intents():
            with contextlib.suppress(*OUTAGE), quiet():
                await self.outbox.check(intent)

    async def _finalized(self, withdrawal_hash: bytes) -> bool:
        (state,) = await self.portal.read(self.l1, "withdrawalState", withdrawal_hash)
        return int(state) != 0

    async def _done(self, intent: Intent) -> bool:
        """The portal says the intent's action is done, by anyone (the outbox then cancels it)."""
        if await self._finalized(intent.withdrawal_hash):
            return True
        if intent.action != PROVE:
            return False
        (output_index, _, proven_at) = await self.portal.read(self.l1, "provenWithdrawal", intent.withdrawal_hash,
                                                              self.address)
        return int(proven_at) != 0 and str(output_index) == intent.tag
