"""The payer's side of routed payments (H8), **one call's payments together**: a PayStream
message's routed payments (or a unary Pay's one) go as one state machine in the caller's task, not
a task, a span context and a waiter each.

Each payment goes as it always did: its route found (``find_route``), its ADD_HTLC offered to the
first hop with its payment row IN_FLIGHT (stored with the signed state), then its outcome awaited:
SUCCEEDED once the preimage comes back (the first hop's settle request or settle, ``_payments``),
FAILED once its HTLC failed, and then another route without the channel it failed at (at most
``max_attempts``, as before). What a call shares:

- the adds of its payments over one first channel are queued at once (``Updates.enqueue``), and
  the channel's drainer carries them in its next chains (U5);
- a route is found once for payments of one payee, amount and limits (nothing the route depends
  on moves within the synchronous step that finds them: the graph, L1's clock, the balances);
- the co-signatures and the payment rows' commits wake the call once per step of the event loop
  (``ChannelsStore.watch_payment``), however many of its payments they touch; the call looks only
  at the payments woken.

A payment's outcome stays its own: a refused add, a failed HTLC, no answer, or a timeout fails that
payment alone, with its reason. A payment hash twice in one call is paid once, both answered with
its outcome (H8). Each payment keeps its ``channels.pay`` span, with its payment hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

from opentelemetry import trace

from protocol import MAX_HTLCS, Htlc
from services.runtime import FailedPrecondition, Unavailable

from ._proposal import NEXT_HOP_REASONS, MakeStep, add_step
from ._records import ChannelRecord, ChannelStatus, PaymentRecord, PaymentStatus, RouteHop, StateRecord
from ._routing import find_route
from ._store import ChannelsStore

if TYPE_CHECKING:
    from ._channels import Channels

#: The attribute every payment span carries, so Jaeger finds a payment by its hash on every node.
PAYMENT_HASH_ATTR: Final = "l2.payment.hash"
#: How often a call looks again at each of its payments whatever woke it (a missed wake costs that).
_LOOK_AGAIN_S: Final = 1.0
#: The failures after which no other route is tried.
_FINAL_REASONS: Final = ("NO_ROUTE", "FEE_TOO_HIGH")


@dataclass(frozen=True, slots=True)
class RoutedPayment:
    """A payment of an invoice over a route: its payee, amount and payment hash, and its limits."""

    payee: bytes
    amount: int
    payment_hash: bytes
    max_fee: int
    max_attempts: int
    max_hops: int


@dataclass(eq=False, slots=True)
class _Paying:
    """One payment of a call, as it goes."""

    want: RoutedPayment
    span: trace.Span
    #: The attempts made in this call, and the number of the last one (the row's ``attempts``).
    tries: int = 0
    attempt: int = 0
    exclude: set[bytes] = field(default_factory=set)
    #: The current attempt's row, as offered (or found in flight).
    payment: PaymentRecord | None = None
    #: Its ADD_HTLC's outcome, until looked at.
    offer: asyncio.Future[tuple[StateRecord, bytes]] | None = None
    #: While its row is watched: the callback the store calls; and when the wait for it runs out.
    watch: Callable[[], None] | None = None
    deadline: float = 0.0
    result: PaymentRecord | BaseException | None = None


class _Call:
    """The payments a call woke (an add answered, a row written) and the event waking it."""

    def __init__(self) -> None:
        self.woken: list[_Paying] = []
        self.event = asyncio.Event()

    def wake(self, item: _Paying) -> None:
        self.woken.append(item)
        self.event.set()

    def written(self, item: _Paying) -> None:
        """The store committed a write of the payment's row (the watch is used up)."""
        item.watch = None
        self.wake(item)

    def offered(self, item: _Paying, future: asyncio.Future[tuple[StateRecord, bytes]]) -> None:
        if not future.cancelled():
            future.exception()  # read here: a call gone away leaves no outcome unread
        self.wake(item)


class Payer:
    """This node's routed payments, each call's together."""

    def __init__(self, channels: Channels, store: ChannelsStore, final_expiry_delta_s: int, timeout_s: float,
                 tracer: trace.Tracer) -> None:
        self._channels = channels
        self._store = store
        self._final_expiry_delta_s = final_expiry_delta_s
        self._timeout_s = timeout_s
        self._tracer = tracer

    async def pay_many(self, wants: Sequence[RoutedPayment]) -> list[PaymentRecord | BaseException]:
        """Pay each over a route: each one's payment, SUCCEEDED or FAILED, or why it has no outcome
        (Unavailable PAYMENT_IN_FLIGHT if it is still in flight at the timeout, PEER_UNAVAILABLE if
        its signed add is unanswered), in order. If the caller is cancelled, the adds not yet sent
        are dropped (never sent)."""
        items: list[_Paying] = []
        first: dict[bytes, _Paying] = {}  # H8: a payment hash twice in a call is paid once
        for want in wants:
            item = first.get(want.payment_hash)
            if item is None:
                item = first[want.payment_hash] = _Paying(want, self._tracer.start_span("channels.pay", attributes={
                    PAYMENT_HASH_ATTR: "0x" + want.payment_hash.hex(), "l2.payment.amount": str(want.amount)}))
            items.append(item)
        paying = list(first.values())
        try:
            await self._run(paying)
        finally:
            for item in paying:
                if item.offer is not None and not item.offer.done():
                    item.offer.cancel()  # not sent yet: dropped (the drainer skips a done future)
                if item.watch is not None:
                    self._store.unwatch_payment(item.want.payment_hash, item.watch)
                    item.watch = None
                if item.result is None:
                    self._resolve(item, Unavailable("the payment's call was stopped: GetPayment tells its outcome",
                                                    reason="PAYMENT_IN_FLIGHT", retry_delay_s=1.0))
        return [item.result for item in items if item.result is not None]

    async def _run(self, paying: list[_Paying]) -> None:
        loop = asyncio.get_running_loop()
        call = _Call()
        todo: list[_Paying] = []
        for item in paying:
            existing = self._store.payment(item.want.payment_hash)
            if existing is not None and existing.status == PaymentStatus.SUCCEEDED:
                self._resolve(item, existing)
            elif existing is not None and existing.status == PaymentStatus.IN_FLIGHT:
                item.tries = item.want.max_attempts  # H8: a retried Pay waits for the one in flight
                item.payment = existing
                self._wait(call, item, loop.time())
            else:
                item.attempt = existing.attempts if existing is not None else 0
                todo.append(item)
        look_at = loop.time() + _LOOK_AGAIN_S
        while True:
            if todo:
                todo, attempts = [], todo
                self._attempt_many(call, attempts)
            woken, call.woken, now = call.woken, [], loop.time()
            for item in woken:
                if item.result is None:
                    self._look(call, item, todo, now)
            if todo or call.woken:
                continue
            if all(item.result is not None for item in paying):
                return
            call.event.clear()
            try:
                async with asyncio.timeout_at(look_at):  # one timer a wait of the call, not one a payment
                    await call.event.wait()
            except TimeoutError:
                look_at = loop.time() + _LOOK_AGAIN_S
                call.woken.extend(item for item in paying if item.result is None and item.offer is None)

    def _attempt_many(self, call: _Call, attempts: list[_Paying]) -> None:
        """The next attempt of each: a route (the same one for payments alike), its payment row
        IN_FLIGHT with its add, the adds over one first channel queued at once. Those with no route
        or too dear a one fail at once (no other route is tried)."""
        channels, store = self._channels, self._store
        source, now, created = channels.address, channels.l1_now(), int(time.time())
        unusable: dict[int, set[bytes]] = {}
        # Each route found: (its fees, its hops), or None.
        routes: dict[tuple[bytes, int, int, int, frozenset[bytes]], tuple[int, tuple[RouteHop, ...]] | None] = {}
        offers: dict[bytes, tuple[ChannelRecord, list[_Paying], list[MakeStep]]] = {}
        for item in attempts:
            want = item.want
            item.tries += 1
            item.attempt += 1
            try:
                need = want.amount + want.max_fee
                if need not in unusable:  # the channels that cannot carry it (their balance, their slots)
                    unusable[need] = {r.channel_id for r in store.channels_in((ChannelStatus.OPEN,))
                                      if not self._can_send(r, need)}
                key = (want.payee, want.amount, want.max_hops, need, frozenset(item.exclude))
                if key not in routes:
                    route = find_route(channels.gossip.graph, source, want.payee, want.amount,
                                       final_expiry_delta_s=self._final_expiry_delta_s, now=now,
                                       max_hops=want.max_hops, exclude=item.exclude | unusable[need])
                    routes[key] = None if route is None else (route.total_fee, tuple(
                        RouteHop(h.channel_id, h.receiver, h.amount, h.expiry) for h in route.hops))
                found = routes[key]
                if found is None or found[0] > want.max_fee:  # no other route is tried
                    base = PaymentRecord(want.payment_hash, want.payee, want.amount, PaymentStatus.FAILED,
                                         attempts=item.attempt, created_at=created)
                    failed = replace(base, reason="NO_ROUTE", message=(
                        f"no route to 0x{want.payee.hex()} carries {want.amount} wei")) if found is None else \
                        replace(base, route=found[1], fee=found[0], reason="FEE_TOO_HIGH", message=(
                            f"the cheapest route costs {found[0]} wei in fees, above {want.max_fee}"))
                    self._failed(failed, b"")
                    self._resolve(item, failed)
                    continue
                fee, hops = found
                first = hops[0]
                record = channels.channel(first.channel_id)
                item.payment = payment = PaymentRecord(
                    want.payment_hash, want.payee, want.amount, PaymentStatus.IN_FLIGHT, fee=fee, route=hops,
                    channel_id=first.channel_id, attempts=item.attempt, created_at=created)
                step = add_step(Htlc(record.we_are_a, first.amount, want.payment_hash, first.expiry), hops[1:],
                                [store.payment_effect(payment)])
            except Exception as exc:  # this payment's alone
                self._resolve(item, exc)
                continue
            _, offered, makes = offers.setdefault(first.channel_id, (record, [], []))
            offered.append(item)
            makes.append(step)
        for record, offered, makes in offers.values():
            # The channel's drainer, if this starts it, carries this span's trace to the next hop.
            with trace.use_span(offered[0].span):
                futures = channels.updates.enqueue(record, makes)
            for item, future in zip(offered, futures, strict=True):
                item.offer = future
                future.add_done_callback(functools.partial(call.offered, item))

    def _look(self, call: _Call, item: _Paying, todo: list[_Paying], now: float) -> None:
        """A payment woken (or looked at again): its add answered, or its row written."""
        payment = item.payment
        if payment is None:
            return  # woken twice: its next attempt is about to go
        if item.offer is not None:
            if not item.offer.done():
                return  # its row was written with its signed add: the answer comes next
            offer, item.offer = item.offer, None
            error = offer.exception() if not offer.cancelled() else Unavailable(
                "the add was dropped before it was sent", reason="PEER_UNAVAILABLE", retry_delay_s=1.0)
            if error is None:
                self._wait(call, item, now)
            elif isinstance(error, FailedPrecondition):  # refused, or not built: this attempt failed
                hops = payment.route
                at = hops[1].channel_id if error.reason in NEXT_HOP_REASONS and len(hops) > 1 else payment.channel_id
                failed = replace(payment, status=PaymentStatus.FAILED, reason=error.reason or "REFUSED",
                                 message=f"{error} (channel 0x{at.hex()})")
                self._failed(failed, payment.channel_id)
                self._next(item, failed, todo)
            elif isinstance(error, Unavailable):
                stored = self._store.payment(payment.payment_hash)
                if stored is None or stored.attempts != item.attempt:  # never signed: nothing in flight
                    failed = replace(payment, status=PaymentStatus.FAILED, reason="PEER_UNAVAILABLE", message=(
                        f"the first hop cannot be reached (channel 0x{payment.channel_id.hex()})"))
                    self._failed(failed, payment.channel_id)
                    self._next(item, failed, todo)
                else:
                    self._resolve(item, error)  # the ADD is signed and may be accepted: in flight until answered
            else:
                self._resolve(item, error)
            return
        stored = self._store.payment(payment.payment_hash)
        if stored is None or stored.status != PaymentStatus.IN_FLIGHT or stored.attempts != payment.attempts:
            if item.watch is not None:
                self._store.unwatch_payment(payment.payment_hash, item.watch)
                item.watch = None
            self._next(item, stored or payment, todo)
        elif now >= item.deadline:
            self._resolve(item, Unavailable(f"payment 0x{payment.payment_hash.hex()} is still in flight: GetPayment "
                                            "tells its outcome", reason="PAYMENT_IN_FLIGHT", retry_delay_s=1.0))
        elif item.watch is None:
            item.watch = functools.partial(call.written, item)
            self._store.watch_payment(payment.payment_hash, item.watch)

    def _wait(self, call: _Call, item: _Paying, now: float) -> None:
        """The attempt in flight: its row watched, then read (no write is missed between)."""
        assert item.payment is not None
        item.deadline = now + self._timeout_s
        item.watch = functools.partial(call.written, item)
        self._store.watch_payment(item.payment.payment_hash, item.watch)
        call.wake(item)

    def _next(self, item: _Paying, payment: PaymentRecord, todo: list[_Paying]) -> None:
        """An attempt ended: the payment's outcome, or another route without the failed channel."""
        if payment.status == PaymentStatus.FAILED and payment.reason not in _FINAL_REASONS and \
                item.tries < item.want.max_attempts:
            item.exclude.update(_failed_at(payment))
            item.attempt = payment.attempts
            item.payment = None
            todo.append(item)
            return
        self._resolve(item, payment)

    def _failed(self, failed: PaymentRecord, channel_id: bytes) -> None:
        """An attempt that failed before its HTLC was in flight: its row FAILED (an event says so)."""
        store = self._store
        store.apply([store.payment_effect(failed)], "PAYMENT_FAILED", channel_id, failed.payment_hash, failed.amount)

    @staticmethod
    def _resolve(item: _Paying, result: PaymentRecord | BaseException) -> None:
        item.result = result
        span = item.span
        if isinstance(result, BaseException):
            span.record_exception(result)
            span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(result).__name__}: {result}"))
        else:
            span.set_attribute("l2.payment.status", result.status.name)
        span.end()

    def _can_send(self, record: ChannelRecord, amount: int) -> bool:
        latest = self._store.latest_cosigned(record.channel_id)
        if latest is None:
            return False
        ours = latest.balance_a if record.we_are_a else latest.balance_b
        return ours >= amount and len(latest.htlcs) < MAX_HTLCS


def _failed_at(payment: PaymentRecord) -> set[bytes]:
    """The channels a failed attempt points at: the one the failing hop named, else the route's."""
    named = payment.message.rsplit("(channel 0x", 1)
    if len(named) == 2 and len(named[1]) >= 64:
        with contextlib.suppress(ValueError):
            return {bytes.fromhex(named[1][:64])}
    return {h.channel_id for h in payment.route}
