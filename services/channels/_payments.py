"""Multi-hop payments: **where an HTLC is offered, forwarded, settled and failed**.

A payment from A to C's invoice (payment hash h) over A -> B -> C:

1. A finds the cheapest route (``_routing.find_route`` over the gossip graph), and stores the
   payment IN_FLIGHT in the same commit as its signed ADD_HTLC to B, which carries the route on
   from B in clear (``onward``: [B -> C]; no onion: every hop sees the route). The payer's side
   is ``_payer``: a PayStream message's routed payments go together, each with its own outcome.
2. B accepts the ADD (H1-H4) and stores a forward RECEIVED in the same commit as the co-signed
   state; its resolver offers C the next HTLC (``onward[0]``'s amount and expiry) carrying the rest.
3. C, the payee (``onward`` empty), accepts it against its own open invoice (H5), and settles:
   it asks B, the HTLC's offerer, for SETTLE_HTLC with the preimage (_updates U7: B proposes it
   in its next chain on B-C; C proposes it itself if B does not).
4. B, taking C's request (the preimage hashes to h), stores the preimage with its forward
   (SETTLING) at once, and settles upstream: it asks A the same way.
5. A, taking B's request, marks the payment SUCCEEDED with the preimage (the proof of payment),
   and carries the settle in its next chain on A-B.

A hop that cannot send the HTLC on fails its incoming one (FAIL_HTLC, with the reason and the
failing channel); each node fails its incoming HTLC once its outgoing one failed, so a failure
unwinds every hop before it, and the payer tries another route without the failed channel.

Rules (each refusal is a reason code the payer sees):

- **H1** An HTLC offered to this node carries at least ``htlc_min_wei`` (HTLC_TOO_SMALL): a
  slot costs the attacker something.
- **H2** The peer has at most ``max_accepted_htlcs`` HTLCs in flight towards this node in the
  channel (TOO_MANY_HTLCS): with C5's 483 for both directions together, the peer cannot take the
  slots this node needs to pay the other way (BOLT 2's max_accepted_htlcs).
- **H3** Its expiry is at most ``max_htlc_expiry_s`` away (EXPIRY_TOO_FAR): an HTLC locks funds
  and a slot until it resolves, so a griefer cannot lock them for months.
- **H4** To forward: ``onward[0]`` is an OPEN channel of this node with ``onward[0].node``
  (UNKNOWN_NEXT_CHANNEL); the incoming amount is at least the outgoing one plus this node's fee
  for it (FEE_INSUFFICIENT, R5); the incoming expiry is at least the outgoing one plus this
  node's ``expiry_delta_s`` (EXPIRY_DELTA_TOO_SMALL, R7): time to claim upstream on L1 after
  learning the preimage downstream at the last moment.
- **H5** To be paid: an open invoice of this node with that payment hash (UNKNOWN_INVOICE), an
  amount between the invoice's and twice it (AMOUNT_MISMATCH, as BOLT 4), and at least
  ``final_expiry_delta_s / 2`` left (EXPIRY_TOO_SOON: time to settle, on L1 if need be).
- **H6** When sending on, one incoming channel may hold at most half of the outgoing channel's
  slots this node may use (SLOT_SHARE_EXCEEDED; its forwards being sent on count from the check,
  so a burst in one chain cannot pass it all at once), so a peer filling a channel with tiny HTLCs
  leaves room for every other channel's payments; and the outgoing balance must cover the HTLC
  (NO_CAPACITY).
- **H7** A forward's status moves in the same commit as the co-signed state that moves it (or,
  to SETTLING, as its preimage is learned from a settle request, U7: the preimage is enough to
  settle upstream, on L1 if need be), and the resolver re-runs every forward not DONE at start:
  kill -9 between any two steps leaves a state the next run finishes (settles or fails), never
  a lost or doubled HTLC.
- **H8** A routed payment is one row per payment hash: a retried Pay (same hash) waits for the
  one in flight or returns its outcome, so it never pays twice (one hash twice in a PayStream
  message: paid once, both answered with its outcome); a new route is tried only after the
  previous attempt's HTLC failed (it left the co-signed state).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from opentelemetry import trace
from opentelemetry.trace import SpanContext

from protocol import MAX_HTLCS, Chain, Change, Htlc, Update, UpdateKind
from services.runtime import FailedPrecondition, InvalidArgument, Unavailable

from . import _metrics as metrics
from ._payer import PAYMENT_HASH_ATTR, Payer, RoutedPayment
from ._proposal import NEXT_HOP_REASONS, Ask, MakeStep, Proposal, Refused, Step, add_step
from ._records import (
    ChannelRecord,
    ChannelStatus,
    ForwardRecord,
    ForwardStatus,
    InvoiceStatus,
    PaymentRecord,
    PaymentStatus,
    RouteHop,
)
from ._routing import ChannelPolicy
from ._store import ChannelsStore, Effect

if TYPE_CHECKING:
    from ._channels import Channels

#: How often the resolver looks again at forwards it could not advance (a peer unreachable).
_RETRY_S: Final = 1.0
#: U7: how long a release the peer took as a request may wait for the peer's chain before this
#: node proposes it itself (the HTLC expires minutes later: R never depends on the peer).
REQUEST_BOUND_S: Final = 2.0


@dataclass(frozen=True, slots=True)
class PaymentTerms:
    """This node's routing terms (settings, with the challenge period's defaults filled in)."""

    policy: ChannelPolicy
    final_expiry_delta_s: int
    max_accepted_htlcs: int
    max_htlc_expiry_s: int
    payment_timeout_s: float


class Payments:
    """The payer, forwarder and payee sides of HTLC payments, over the channels' one update path."""

    def __init__(self, channels: Channels, store: ChannelsStore, terms: PaymentTerms, logger: logging.Logger,
                 tracer: trace.Tracer) -> None:
        self._channels = channels
        self._store = store
        self.terms = terms
        self._log = logger
        self._tracer = tracer
        self._payer = Payer(channels, store, terms.final_expiry_delta_s, terms.payment_timeout_s, tracer)
        self._wake = asyncio.Event()
        self._busy: set[tuple[bytes, bytes]] = set()
        #: The span each forward continues (the incoming proposal's), so a payment is one trace.
        self._parents: dict[tuple[bytes, bytes], SpanContext] = {}
        #: H6's forwards being sent on and not yet stored FORWARDED (queued for the outgoing
        #: channel's next chain), by (outgoing, incoming) channel: counted with the stored ones.
        self._sending: dict[tuple[bytes, bytes], set[bytes]] = {}
        #: U7: the releases (settles, fails) of HTLCs offered to this node that their offerer took as
        #: requests, by (channel, payment hash): when (the event loop's clock). Past REQUEST_BOUND_S
        #: this node proposes the release itself.
        self._asked: dict[tuple[bytes, bytes], float] = {}

    def wake(self) -> None:
        self._wake.set()

    # --- the receiver's side of an HTLC update (inside the channel's accept: no await) ---------

    def received(self, record: ChannelRecord, update: Update, proposal: Proposal, theirs: int
                 ) -> tuple[Sequence[Effect], str]:
        """What an HTLC update the peer proposed means to this node (``theirs``: the peer's HTLCs in
        flight before it, in a chain's working state, U5), written with its co-signed state:
        Refused (answered as a refusal) if this node will not take it."""
        htlc = update.htlc
        assert htlc is not None
        if update.kind is UpdateKind.ADD_HTLC:
            received = self._check_add(record, htlc, proposal.onward, theirs)
            self._remember_parent(record.channel_id, htlc.payment_hash)
            return [self._store.forward_effect(received, new=True)], "HTLC_RECEIVED"
        return self._released(record, update, proposal)

    def _released(self, record: ChannelRecord, update: Update, proposal: Proposal) -> tuple[Sequence[Effect], str]:
        """What a settle or fail means to this node, whoever proposed it (the receiver, or the
        offerer at the receiver's request, U7): it depends only on who offered the HTLC."""
        htlc = update.htlc
        assert htlc is not None
        if htlc.from_a != record.we_are_a:  # the peer's HTLC to this node: its forward is done
            self._asked.pop((record.channel_id, htlc.payment_hash), None)
            forward = self._store.forward(record.channel_id, htlc.payment_hash)
            if forward is None:
                return [], "HTLC_SETTLED" if update.kind is UpdateKind.SETTLE_HTLC else "HTLC_FAILED"
            if update.kind is UpdateKind.SETTLE_HTLC:
                done = replace(forward, status=ForwardStatus.DONE)
                return [self._store.forward_effect(done)], "HTLC_SETTLED" if forward.onward else "PAYMENT_RECEIVED"
            if forward.status != ForwardStatus.FAILING:  # P5: its offerer failed it after its expiry
                forward = replace(forward, reason="EXPIRED", message="failed after its expiry")
            return [self._store.forward_effect(replace(forward, status=ForwardStatus.DONE))], "HTLC_FAILED"
        # This node's HTLC: the forward that sent it settles or fails upstream, the payment ends.
        if update.kind is UpdateKind.FAIL_HTLC:
            out = self._store.forward_out(record.channel_id, htlc.payment_hash)
            if out is not None:  # the forward that sent it fails upstream in this trace
                self._remember_parent(out.in_channel, htlc.payment_hash)
            return self._failed_downstream(record, htlc, proposal.fail_reason or "HTLC_FAILED", proposal.fail_message,
                                           proposal.fail_channel or record.channel_id), "HTLC_FAILED"
        assert update.preimage is not None
        return self.preimage_learned(record, htlc.payment_hash, update.preimage), "HTLC_SETTLED"

    def preimage_learned(self, record: ChannelRecord, payment_hash: bytes, preimage: bytes) -> list[Effect]:
        """The preimage of this node's HTLC ``payment_hash`` in ``record`` (checked to hash to it),
        from its settle or, earlier, its receiver's settle request (U7): the forward that sent it
        settles upstream, the payment that sent it succeeded (the preimage is the proof of payment:
        its receiver is paid whether the settle lands now or is claimed on L1). Once only."""
        forward = self._store.forward_out(record.channel_id, payment_hash)
        payment = self._store.payment_on(record.channel_id, payment_hash)
        effects: list[Effect] = []
        if forward is not None and forward.status == ForwardStatus.FORWARDED:
            self._remember_parent(forward.in_channel, payment_hash)  # it settles upstream in this trace
            settling = replace(forward, status=ForwardStatus.SETTLING, preimage=preimage)
            effects.append(self._store.forward_effect(settling))
        if payment is not None and payment.status == PaymentStatus.IN_FLIGHT:
            effects.append(self._store.payment_effect(
                replace(payment, status=PaymentStatus.SUCCEEDED, preimage=preimage)))
        return effects

    def _failed_downstream(self, record: ChannelRecord, htlc: Htlc, reason: str, message: str, at: bytes
                           ) -> list[Effect]:
        """An HTLC this node offered in ``record`` failed: the forward that sent it fails upstream,
        the payment that sent it failed (with the channel it failed at, routed around next)."""
        effects: list[Effect] = []
        forward = self._store.forward_out(record.channel_id, htlc.payment_hash)
        if forward is not None:
            effects.append(self._store.forward_effect(replace(forward, status=ForwardStatus.FAILING, reason=reason,
                                                                message=message)))
        payment = self._store.payment_on(record.channel_id, htlc.payment_hash)
        if payment is not None and payment.status == PaymentStatus.IN_FLIGHT:
            effects.append(self._store.payment_effect(replace(
                payment, status=PaymentStatus.FAILED, reason=reason, message=f"{message} (channel 0x{at.hex()})")))
        return effects

    def wants(self, record: ChannelRecord, change: Change) -> bool:
        """P8/U7: whether this node settles (with that preimage) or fails the HTLC the peer offered
        it in ``record`` with ``change``'s payment hash: its offerer may then propose that release."""
        forward = self._store.forward(record.channel_id, change.payment_hash)
        if forward is None:
            return False
        if change.kind is UpdateKind.SETTLE_HTLC:
            return forward.status == ForwardStatus.SETTLING and forward.preimage == change.preimage
        return forward.status == ForwardStatus.FAILING

    def _remember_parent(self, in_channel: bytes, payment_hash: bytes) -> None:
        """The incoming proposal's span: the next step of the forward that came in over
        ``in_channel`` continues its trace (``_advance`` takes it). A forward's only: one kept for a
        payer's own HTLC would never be taken (one a payment, for as long as the worker ran)."""
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            self._parents[(in_channel, payment_hash)] = context

    def _check_add(self, record: ChannelRecord, htlc: Htlc, onward: tuple[RouteHop, ...], held: int
                   ) -> ForwardRecord:
        terms, now = self.terms, self._channels.l1_now()
        if htlc.amount < terms.policy.htlc_min:
            raise Refused("HTLC_TOO_SMALL", f"an HTLC carries at least {terms.policy.htlc_min} wei here")
        if held >= terms.max_accepted_htlcs:
            raise Refused("TOO_MANY_HTLCS",
                          f"the peer has {held} HTLCs in flight to this node: at most {terms.max_accepted_htlcs}")
        if htlc.expiry > now + terms.max_htlc_expiry_s:
            raise Refused("EXPIRY_TOO_FAR", f"expiry {htlc.expiry} is more than {terms.max_htlc_expiry_s} s away")
        forward = ForwardRecord(record.channel_id, htlc.payment_hash, htlc.amount, htlc.expiry, onward,
                                ForwardStatus.RECEIVED)
        if not onward:
            invoice = self._store.invoice(htlc.payment_hash)
            if invoice is None or invoice.status != InvoiceStatus.OPEN:
                raise Refused("UNKNOWN_INVOICE", "no open invoice of that payment hash")
            if not invoice.amount <= htlc.amount <= 2 * invoice.amount:
                raise Refused("AMOUNT_MISMATCH", f"the invoice is for {invoice.amount} wei, not {htlc.amount}")
            if htlc.expiry < now + terms.final_expiry_delta_s // 2:
                raise Refused("EXPIRY_TOO_SOON", f"expiry {htlc.expiry} leaves too little time to settle")
            return replace(forward, status=ForwardStatus.SETTLING, preimage=invoice.preimage)
        nxt = onward[0]
        out = self._store.channel(nxt.channel_id)
        if out is None or out.status != ChannelStatus.OPEN or out.theirs != nxt.node:
            raise Refused("UNKNOWN_NEXT_CHANNEL",
                                 f"no open channel 0x{nxt.channel_id.hex()} of this node with 0x{nxt.node.hex()}")
        fee = terms.policy.fee(nxt.amount)
        if htlc.amount < nxt.amount + fee:
            raise Refused("FEE_INSUFFICIENT", f"forwarding {nxt.amount} wei costs {fee} wei here")
        if htlc.expiry < nxt.expiry + terms.policy.expiry_delta_s:
            raise Refused("EXPIRY_DELTA_TOO_SMALL",
                                 f"the next expiry must be at least {terms.policy.expiry_delta_s} s before this one")
        return forward

    # --- the proposer's side: what an HTLC update this node proposed means, once co-signed ------

    def proposed(self, record: ChannelRecord, update: Update, proposal: Proposal) -> tuple[Sequence[Effect], str]:
        htlc = update.htlc
        assert htlc is not None
        if update.kind is UpdateKind.ADD_HTLC:
            return [], "HTLC_OFFERED"  # the forward or payment row went with the signed state
        return self._released(record, update, proposal)

    def refused(self, record: ChannelRecord, update: Update, proposal: Proposal, reason: str, message: str) -> None:
        """The peer refused this node's ADD_HTLC: the forward that sent it fails upstream, the
        payment that sent it failed (a race's refusal too: the next attempt writes its own row),
        at the channel the refusal is about (the next hop's for H4's, so the payer routes around
        that one, not around this one)."""
        htlc = update.htlc
        assert htlc is not None
        at = proposal.onward[0].channel_id if reason in NEXT_HOP_REASONS and proposal.onward else record.channel_id
        effects = self._failed_downstream(record, htlc, reason, message, at)
        if effects:
            self._store.apply(effects, "HTLC_REFUSED", record.channel_id, htlc.payment_hash, htlc.amount)
            self._wake.set()

    # --- the payer (_payer: a call's routed payments together) --------------------------------------

    async def pay_many(self, wants: Sequence[RoutedPayment]) -> list[PaymentRecord | BaseException]:
        """Pay each over a route (H8): each one's payment, SUCCEEDED or FAILED, or why it has no
        outcome (Unavailable PAYMENT_IN_FLIGHT if it is still in flight at the timeout)."""
        return await self._payer.pay_many(wants)

    async def fail_expired(self, record: ChannelRecord, payment_hash: bytes) -> None:
        """P5/E2: fail an HTLC this node offered in ``record`` once expired (the peer withheld it)."""
        channels = self._channels

        def release(record: ChannelRecord, chain: Chain) -> Step:
            return Step(Proposal(fail_reason="EXPIRED", fail_message="failed by its offerer after its expiry",
                                 change=Change.fail(record.we_are_a, payment_hash)))

        await channels.propose(record, release)

    # --- the resolver: every forward not DONE, advanced (H7) ------------------------------------

    async def run(self) -> None:
        """Send on, settle and fail every forward that needs it: those just written (the store's
        touched ones), and every one not DONE at start and every _RETRY_S (a crash left it, or a
        peer was away). Only the touched ones in between: reading every forward in flight on every
        change made the resolver O(forwards) per change. The forwards of one step on one channel
        (sent on over it; settled or failed in it) are advanced together (``_advance``)."""
        loop = asyncio.get_running_loop()
        scan_at = loop.time()
        async with asyncio.TaskGroup() as group:
            while True:
                self._wake.clear()
                if loop.time() >= scan_at:
                    self._store.take_touched()
                    todo = self._store.forwards_to_do()
                    scan_at = loop.time() + _RETRY_S
                else:
                    todo = self._store.take_touched()
                batches: dict[tuple[ForwardStatus, bytes], list[ForwardRecord]] = {}
                for forward in todo:
                    key = (forward.in_channel, forward.payment_hash)
                    if key in self._busy or forward.status in (ForwardStatus.FORWARDED, ForwardStatus.DONE):
                        continue
                    self._busy.add(key)
                    over = forward.onward[0].channel_id if forward.status == ForwardStatus.RECEIVED and \
                        forward.onward else forward.in_channel
                    batches.setdefault((forward.status, over), []).append(forward)
                for batch in batches.values():
                    group.create_task(self._advance(batch))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(scan_at):
                        await self._wake.wait()

    async def _advance(self, forwards: list[ForwardRecord]) -> None:
        """Forwards of one status on one channel (RECEIVED, sent on over it; SETTLING or FAILING,
        released in it), advanced together: their HTLCs go in the channel's next chain, or its next
        request message (U7), with one waiter for all of them, not a task each. Each forward has its
        span, continuing its payment's trace (the round trip carries the first one's)."""
        name = {ForwardStatus.RECEIVED: "channels.forward", ForwardStatus.SETTLING: "channels.settle",
                ForwardStatus.FAILING: "channels.fail"}.get(forwards[0].status, "channels.htlc")
        spans = []
        for forward in forwards:
            parent = self._parents.pop((forward.in_channel, forward.payment_hash), None)
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent is not None else None
            spans.append(self._tracer.start_span(name, context=context, attributes={
                PAYMENT_HASH_ATTR: "0x" + forward.payment_hash.hex()}))
        errors: Sequence[BaseException | None]
        try:
            with trace.use_span(spans[0], record_exception=False, set_status_on_exception=False):
                if forwards[0].status == ForwardStatus.RECEIVED:
                    errors = await self._send_on(forwards)
                elif forwards[0].status == ForwardStatus.SETTLING:
                    errors = await self._resolve(forwards, settle=True)
                elif forwards[0].status == ForwardStatus.FAILING:
                    errors = await self._resolve(forwards, settle=False)
                else:
                    errors = [None] * len(forwards)
        except Exception as exc:
            errors = [exc] * len(forwards)
        finally:
            for forward in forwards:
                self._busy.discard((forward.in_channel, forward.payment_hash))
        for forward, span, error in zip(forwards, spans, errors, strict=True):
            key = (forward.in_channel, forward.payment_hash)
            if isinstance(error, (Unavailable, FailedPrecondition)):  # tried again at the next scan (_RETRY_S)
                self._log.warning("HTLC 0x%s: %s (tried again)", forward.payment_hash.hex(), error)
            elif error is not None:
                self._log.error("HTLC 0x%s: could not be advanced", forward.payment_hash.hex(), exc_info=error)
            elif key not in self._asked:  # asked of the peer (U7): its chain moves it, or the scan looks again
                self._store.touch(*key)  # it may have been written while it was busy: looked at again now
            if error is not None:
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
        self._wake.set()

    async def _send_on(self, forwards: Sequence[ForwardRecord]) -> list[BaseException | None]:
        """H4/H6: offer the next hop its HTLC for each forward (all over one channel, in its next
        chain), or fail the incoming one with why not; each one's error."""
        errors: list[BaseException | None] = [None] * len(forwards)
        offers: list[tuple[int, ForwardRecord, ChannelRecord, MakeStep]] = []
        failing: list[tuple[int, Callable[[], Awaitable[None]]]] = []
        sent_on: list[tuple[set[bytes], bytes]] = []
        try:
            for i, forward in enumerate(forwards):
                if not forward.onward:
                    errors[i] = ValueError("a forward to send on has no route on")
                    continue
                nxt, rest = forward.onward[0], forward.onward[1:]
                out = self._store.channel(nxt.channel_id)
                failure = self._cannot_send_on(forward, out)
                if failure is not None or out is None:
                    reason, message = failure or ("UNKNOWN_NEXT_CHANNEL", "the next channel is gone")
                    failing.append((i, functools.partial(self._fail, forward, reason, message, nxt.channel_id)))
                    continue
                sent = replace(forward, status=ForwardStatus.FORWARDED, out_channel=out.channel_id)
                htlc = Htlc(out.we_are_a, nxt.amount, forward.payment_hash, nxt.expiry)
                # H6 counts it from here (no await since the check): a burst of forwards from one
                # channel, all checked before the first is stored, took every slot the next hop gives.
                sending = self._sending.setdefault((out.channel_id, forward.in_channel), set())
                sending.add(forward.payment_hash)
                sent_on.append((sending, forward.payment_hash))
                offers.append((i, forward, out, add_step(htlc, rest, [
                    self._store.forward_effect(sent), functools.partial(_stored, sending, forward.payment_hash)])))
            outcomes = await self._channels.updates.propose_many(offers[0][2], [make for *_, make in offers]) \
                if offers else []
        finally:
            for sending, payment_hash in sent_on:
                sending.discard(payment_hash)
        for (i, forward, out, _), outcome in zip(offers, outcomes, strict=True):
            if isinstance(outcome, FailedPrecondition):
                # Not offered (the next node refused it: ``refused`` moved it to FAILING already; or it
                # could not be built): failed upstream.
                held = self._store.forward(forward.in_channel, forward.payment_hash)
                if held is not None and held.status in (ForwardStatus.RECEIVED, ForwardStatus.FORWARDED):
                    failing.append((i, functools.partial(self._fail, held, outcome.reason or "REFUSED", str(outcome),
                                                         out.channel_id)))
                elif held is not None and held.status == ForwardStatus.FAILING:
                    failing.append((i, functools.partial(self._resolve_one, held, settle=False, at=out.channel_id)))
            elif isinstance(outcome, BaseException):
                errors[i] = outcome
        if failing:  # each on its own (a refusal's path, not the chain's)
            results = await asyncio.gather(*(fail() for _, fail in failing), return_exceptions=True)
            for (i, _), result in zip(failing, results, strict=True):
                errors[i] = result if isinstance(result, BaseException) else None
        return errors

    def _cannot_send_on(self, forward: ForwardRecord, out: ChannelRecord | None) -> tuple[str, str] | None:
        nxt = forward.onward[0]
        if out is None or out.status != ChannelStatus.OPEN:
            return "UNKNOWN_NEXT_CHANNEL", f"channel 0x{nxt.channel_id.hex()} is not open"
        latest = self._store.latest_cosigned(out.channel_id)
        assert latest is not None
        ours = latest.balance_a if out.we_are_a else latest.balance_b
        if ours < nxt.amount:
            return "NO_CAPACITY", f"this node holds {ours} wei in the next channel, not {nxt.amount}"
        share = max(1, min(self.terms.max_accepted_htlcs, MAX_HTLCS - len(latest.htlcs)) // 2)
        sending = len(self._sending.get((out.channel_id, forward.in_channel), ()))
        if self._store.forwarded_over(out.channel_id, forward.in_channel) + sending >= \
                self.terms.max_accepted_htlcs // 2 or share <= 0:
            return "SLOT_SHARE_EXCEEDED", "the incoming channel holds its share of the next channel's HTLC slots"
        if not self._channels.peer_available(out.peer):
            return "PEER_UNAVAILABLE", f"the next node at {out.peer} is not answering"
        if nxt.expiry <= self._channels.l1_now() + self._channels.rules_of().expiry_delta_s:
            return "EXPIRY_TOO_SOON", "too little time is left to send the HTLC on"
        return None

    async def _fail(self, forward: ForwardRecord, reason: str, message: str, at: bytes) -> None:
        failing = replace(forward, status=ForwardStatus.FAILING, reason=reason, message=message)
        self._store.apply([self._store.forward_effect(failing)])
        await self._resolve_one(failing, settle=False, at=at)

    async def _resolve_one(self, forward: ForwardRecord, *, settle: bool, at: bytes = b"") -> None:
        (error,) = await self._resolve([forward], settle=settle, at=at)
        if error is not None:
            raise error

    async def _resolve(self, forwards: Sequence[ForwardRecord], *, settle: bool, at: bytes = b""
                       ) -> list[BaseException | None]:
        """Settle (with the preimage) or fail the incoming HTLC of each forward (all in one channel);
        each one's error. U7: asked of the HTLC's offerer, the channel's proposer, first (the
        requests in one message); proposed here if it does not take one, or took it and did not
        propose it within REQUEST_BOUND_S."""
        channels = self._channels
        record = channels.channel(forwards[0].in_channel)
        errors: list[BaseException | None] = [None] * len(forwards)
        if record.status != ChannelStatus.OPEN:  # closed on L1: the HTLC is enforced there (E1-E4)
            for forward in forwards:
                self._store.apply([self._store.forward_effect(replace(
                    forward, status=ForwardStatus.DONE, message=f"{forward.message}; its channel closed on L1"))])
            return errors
        loop = asyncio.get_running_loop()
        asking: list[int] = []
        releasing: list[int] = []
        for i, forward in enumerate(forwards):
            key = (forward.in_channel, forward.payment_hash)
            asked = self._asked.get(key)
            if asked is None:
                asking.append(i)
            elif loop.time() - asked >= REQUEST_BOUND_S:
                self._log.warning("HTLC 0x%s: the peer took the request %.1f s ago and did not propose it: proposed "
                                  "here (U7)", forward.payment_hash.hex(), loop.time() - asked)
                self._asked.pop(key, None)
                metrics.REQUESTS.labels("bound").inc()
                releasing.append(i)
            # else asked: the peer's next chain carries it (or the bound runs out)
        if asking:
            taken = await channels.updates.request(record, [Ask(
                f.payment_hash, settle, f.preimage, f.reason, f.message, at or f.out_channel)
                for f in (forwards[i] for i in asking)])
            for i, took in zip(asking, taken, strict=True):
                if took:
                    self._asked.setdefault((forwards[i].in_channel, forwards[i].payment_hash), loop.time())
                else:  # refused, unanswered, or a forged answer: proposed here, as it always could be
                    releasing.append(i)
        if releasing:  # each on its own (the fallback's path, not the chain's)
            results = await asyncio.gather(*(self._release(record, forwards[i], settle, at or forwards[i].out_channel)
                                             for i in releasing), return_exceptions=True)
            for i, result in zip(releasing, results, strict=True):
                errors[i] = result if isinstance(result, BaseException) else None
        return errors

    async def _release(self, record: ChannelRecord, forward: ForwardRecord, settle: bool, fail_channel: bytes
                       ) -> None:
        """Propose the settle or fail of ``forward``'s incoming HTLC in ``record`` here (U3 settles a race)."""
        theirs_a = not record.we_are_a

        def release(record: ChannelRecord, chain: Chain) -> Step:
            if chain.holds(theirs_a, forward.payment_hash) is None:
                raise _Gone()
            if settle:
                return Step(Proposal(preimage=forward.preimage, change=Change.settle(theirs_a, forward.preimage)))
            return Step(Proposal(fail_reason=forward.reason, fail_message=forward.message, fail_channel=fail_channel,
                                 change=Change.fail(theirs_a, forward.payment_hash)))

        try:
            await self._channels.propose(record, release)
        except _Gone:  # settled or failed already (a resumed step): done
            self._store.apply([self._store.forward_effect(replace(forward, status=ForwardStatus.DONE))])


def _stored(sending: set[bytes], payment_hash: bytes, db: object) -> None:
    """In the transaction that stores a forward FORWARDED: H6 counts it there now."""
    sending.discard(payment_hash)


class _Gone(Exception):
    """The HTLC is no longer in the channel's latest co-signed state."""


def check_pay_limits(amount: int, max_fee: int | None, max_attempts: int, max_hops: int) -> tuple[int, int, int]:
    """A Pay request's limits with their defaults (1% fee at least 10,000 wei, 3 attempts, 8 hops)."""
    fee = max_fee if max_fee is not None else max(amount // 100, 10_000)
    attempts = max_attempts or 3
    hops = max_hops or 8
    if attempts > 20:
        raise InvalidArgument(f"max_attempts {attempts} is above 20", reason="FIELD_OUT_OF_RANGE")
    if hops > 20:
        raise InvalidArgument(f"max_hops {hops} is above 20", reason="FIELD_OUT_OF_RANGE")
    return fee, attempts, hops

