"""The gRPC APIs: ChannelsService (this node's user) and PeerService (other nodes' channels
workers). Bad input is INVALID_ARGUMENT with a reason (MALFORMED_ADDRESS, MALFORMED_HASH,
MALFORMED_AMOUNT, MALFORMED_INVOICE, PAGE_SIZE_TOO_LARGE, BAD_PAGE_TOKEN; a PayStream message with
both `payment` and `payments`, PAYMENT_AND_PAYMENTS, or too many, TOO_MANY_PAYMENTS); an unknown channel is
NOT_FOUND (CHANNEL_NOT_FOUND); a payment the channel cannot make is FAILED_PRECONDITION
(CHANNEL_NOT_OPEN, INSUFFICIENT_BALANCE, NO_ROUTE, or the peer's refusal reason); a peer that does
not answer is UNAVAILABLE (PEER_UNAVAILABLE: the update stays pending and is re-sent as it is).
A peer message signed by anyone but the channel's other participant is PERMISSION_DENIED
(BAD_PEER_SIGNATURE); a proposal the rules refuse is answered (accepted = false) with its reason.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from google.protobuf.message import Message

from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc
from services.runtime import DomainError, FailedPrecondition, FieldViolation, Idempotency, InvalidArgument, NotFound

from ._channels import Channels
from ._payer import RoutedPayment
from ._payments import check_pay_limits
from ._records import ChannelRecord, PaymentRecord, PaymentStatus, StateRecord
from ._wire import amount_of, channel_pb, decode_invoice, event_pb, hex0x, invoice_pb, parse_hex, payment_pb

T = TypeVar("T")
M = TypeVar("M", bound=Message)
DEFAULT_PAGE: Final = 50
#: The most payments one PayStreamRequest carries (``payments``).
MAX_STREAM_PAYMENTS: Final = 1024
#: Payments of one PayStream in flight at once (more wait for a slot: the stream's back-pressure);
#: a few messages' worth of ``payments``.
_STREAM_IN_FLIGHT: Final = 4 * MAX_STREAM_PAYMENTS
MAX_PAGE: Final = 500
_REPLAY_BATCH: Final = 256


def _page(page_size: int, token: str) -> tuple[int | None, int]:
    size = page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise InvalidArgument(f"page_size {size} is above {MAX_PAGE}", reason="PAGE_SIZE_TOO_LARGE",
                              field_violations=[FieldViolation("page_size", f"at most {MAX_PAGE}")])
    if not token:
        return None, size
    before = int(token) if token.isdigit() else 0
    if before <= 0:
        raise InvalidArgument("page_token is not one this service gave", reason="BAD_PAGE_TOKEN",
                              field_violations=[FieldViolation("page_token", "from a previous response")])
    return before, size


#: A Pay request's fields, checked (``_target``).
_Target = tuple[bytes, int, bytes, tuple[int, int, int]]


def _target(request: pb.PayRequest) -> _Target:
    """A Pay request checked: (payee, amount, invoice payment hash or b"", its routing limits)."""
    amount = amount_of(request.amount, "amount")
    payment_hash = b""
    which = request.WhichOneof("target")
    if which == "invoice":
        payee, invoiced, payment_hash = decode_invoice(request.invoice)
        if amount and amount != invoiced:
            raise InvalidArgument(f"amount {amount} is not the invoice's {invoiced}", reason="AMOUNT_MISMATCH")
        amount = invoiced
    elif which == "address":
        payee = parse_hex(request.address, 20, "address")
    else:
        raise InvalidArgument("give invoice or address", reason="MISSING_TARGET")
    if amount <= 0:
        raise InvalidArgument("amount must be > 0", reason="NON_POSITIVE_AMOUNT",
                              field_violations=[FieldViolation("amount", "wei > 0")])
    limits = check_pay_limits(amount, amount_of(request.max_fee, "max_fee") if request.max_fee else None,
                              request.max_attempts, request.max_hops)
    return payee, amount, payment_hash, limits


#: What a Pay answers, as ``Idempotency`` keeps it for its request_id: a direct payment's response,
#: or a routed payment's row (its response made when answered: ``_routed``).
_Answer = pb.PayResponse | PaymentRecord


class _NotAnswered(Exception):
    """No answer is kept for the request_id (``ChannelsServicer._answered``)."""


async def _not_answered() -> _Answer:
    raise _NotAnswered


async def _kept(answer: _Answer) -> _Answer:
    return answer


def _succeeded(outcome: PaymentRecord | BaseException) -> PaymentRecord:
    """A routed payment's outcome as Pay answers it: SUCCEEDED, else why not."""
    if isinstance(outcome, BaseException):
        raise outcome
    if outcome.status != PaymentStatus.SUCCEEDED:
        raise FailedPrecondition(f"the payment failed after {outcome.attempts} attempts: {outcome.message}",
                                 reason=outcome.reason or "PAYMENT_FAILED")
    return outcome


def _pay_error(exc: BaseException) -> pb.PayError:
    """A failed payment's answer on a PayStream: what a unary Pay would have answered."""
    if isinstance(exc, DomainError):
        return pb.PayError(code=exc.code.name, reason=exc.reason, message=exc.message)
    # a bug: that payment's answer says so, the stream goes on
    return pb.PayError(code="INTERNAL", reason="INTERNAL", message=type(exc).__name__)


class _Window:
    """A PayStream's payments in flight: at most ``size``; acquiring more waits for releases."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._released = asyncio.Event()

    async def acquire(self, count: int) -> None:
        while self.free < count:
            self._released.clear()
            await self._released.wait()
        self.free -= count

    def release(self, count: int) -> None:
        self.free += count
        self._released.set()


class ChannelsServicer(channels_pb2_grpc.ChannelsServiceServicer):
    def __init__(self, channels: Channels) -> None:
        self._channels = channels
        self._store = channels.store
        self._once = Idempotency()
        #: The last channel view made, with the records it shows: the payments a chain settles answer
        #: with the same channel and state (O(HTLCs) to build), each copying it into its answer.
        self._view: tuple[ChannelRecord, StateRecord | None, pb.Channel] | None = None

    def _pb(self, record: ChannelRecord) -> pb.Channel:
        """``record``'s view with its latest co-signed state (shared: copy it, never change it)."""
        latest = self._store.latest_cosigned(record.channel_id)
        view = self._view
        if view is None or view[0] is not record or view[1] is not latest:
            view = self._view = (record, latest, channel_pb(record, latest))
        return view[2]

    async def _shown(self, answer: M) -> M:
        """``answer`` (read from the store), once what it shows is on disk."""
        await self._store.durable()
        return answer

    async def _acked(self, answer: Awaitable[T]) -> T:
        """``answer``, once every write before it is on disk (a refusal's too: it may tell of one)."""
        try:
            return await answer
        finally:
            await self._store.durable()

    async def OpenChannel(self, request: pb.OpenChannelRequest, context: Any) -> pb.OpenChannelResponse:
        if ":" not in request.peer:
            raise InvalidArgument(f"peer {request.peer!r} must be the peer's channels address host:port",
                                  reason="MALFORMED_ENDPOINT", field_violations=[FieldViolation("peer", "host:port")])
        amount = amount_of(request.amount, "amount")
        peer_amount = amount_of(request.peer_amount, "peer_amount")

        async def run() -> pb.OpenChannelResponse:
            record = await self._channels.open_channel(request.peer, amount, peer_amount)
            return pb.OpenChannelResponse(channel=self._pb(record))

        return await self._acked(self._once.once(request.request_id, run))

    async def ListChannels(self, request: pb.ListChannelsRequest, context: Any) -> pb.ListChannelsResponse:
        before, size = _page(request.page_size, request.page_token)
        found, more = self._store.channels(before, size)
        return await self._shown(pb.ListChannelsResponse(channels=[self._pb(c) for c in found],
                                                         next_page_token=str(more) if more is not None else ""))

    async def GetChannel(self, request: pb.GetChannelRequest, context: Any) -> pb.GetChannelResponse:
        record = self._channels.channel(parse_hex(request.channel_id, 32, "channel_id"))
        return await self._shown(pb.GetChannelResponse(channel=self._pb(record)))

    async def CreateInvoice(self, request: pb.CreateInvoiceRequest, context: Any) -> pb.CreateInvoiceResponse:
        amount = amount_of(request.amount, "amount", empty_ok=False)

        async def run() -> pb.CreateInvoiceResponse:
            invoice = self._channels.create_invoice(amount, request.memo)
            return pb.CreateInvoiceResponse(invoice=invoice_pb(invoice, self._channels.address))

        return await self._acked(self._once.once(request.request_id, run))

    async def Pay(self, request: pb.PayRequest, context: Any) -> pb.PayResponse:
        return await self._pay(request)

    async def PayStream(self, request_iterator: AsyncIterator[pb.PayStreamRequest], context: Any
                        ) -> AsyncIterator[pb.PayStreamResponse]:
        """Each payment paid as a unary Pay would be, concurrently (at most _STREAM_IN_FLIGHT of the
        stream at once: more wait, the stream's back-pressure): a message's ``payment`` in a task of
        its own, answered in a response of its own; a message's ``payments`` in one task, the
        direct ones enqueued on their channel at once (``_pay_many``), answered together in
        ``answers``. The stream ends once every payment was answered; at a malformed message, with
        INVALID_ARGUMENT once those before it are answered."""
        answers: asyncio.Queue[pb.PayStreamResponse | None] = asyncio.Queue()
        window = _Window(_STREAM_IN_FLIGHT)
        malformed: list[InvalidArgument] = []

        async def one(request: pb.PayRequest) -> None:
            try:
                answer = pb.PayStreamResponse(request_id=request.request_id, payment=await self._pay(request))
            except Exception as exc:
                answer = pb.PayStreamResponse(request_id=request.request_id, error=_pay_error(exc))
            finally:
                window.release(1)
            answers.put_nowait(answer)

        async def many(requests: Sequence[pb.PayRequest]) -> None:
            try:
                found = await self._acked(self._pay_many(requests))
            finally:
                window.release(len(requests))
            answers.put_nowait(found)

        async def read() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    async for request in request_iterator:
                        if not request.payments:
                            await window.acquire(1)
                            group.create_task(one(request.payment))
                            continue
                        if request.HasField("payment"):
                            malformed.append(InvalidArgument(
                                "a PayStreamRequest carries `payment` or `payments`, not both",
                                reason="PAYMENT_AND_PAYMENTS",
                                field_violations=[FieldViolation("payments", "empty when payment is set")]))
                            break
                        if len(request.payments) > MAX_STREAM_PAYMENTS:
                            malformed.append(InvalidArgument(
                                f"{len(request.payments)} payments in one message: at most {MAX_STREAM_PAYMENTS}",
                                reason="TOO_MANY_PAYMENTS",
                                field_violations=[FieldViolation("payments", f"at most {MAX_STREAM_PAYMENTS}")]))
                            break
                        await window.acquire(len(request.payments))
                        group.create_task(many(request.payments))
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (answer := await answers.get()) is not None:
                yield answer
            await reader
        finally:
            reader.cancel()
        if malformed:
            raise malformed[0]

    async def _pay_many(self, requests: Sequence[pb.PayRequest]) -> pb.PayStreamResponse:
        """One message's payments, each checked and paid as Pay would: the direct ones on a channel
        enqueued on it at once (Updates.pay_many: one waiter, no task per payment; U4 pays a
        retried request_id once), the routed ones together (Payments.pay_many: one call, no task
        per payment; a retried request_id gets its first answer). Their answers, in order, in one
        response; each channel they went over in its ``channels``, once (not in each answer)."""
        results: list[tuple[StateRecord, bytes] | _Answer | BaseException | None] = [None] * len(requests)
        hashes: list[bytes] = [b""] * len(requests)
        found: dict[tuple[bytes, int], ChannelRecord | None] = {}  # (payee, amount): looked up once a message
        direct: dict[bytes, tuple[ChannelRecord, list[int], list[tuple[int, bytes, str]]]] = {}
        routed: list[tuple[int, RoutedPayment]] = []
        for i, request in enumerate(requests):
            try:
                payee, amount, payment_hash, limits = _target(request)
                key = (payee, amount)
                record = found[key] if key in found else found.setdefault(key, self._channels.direct_channel(*key))
                if record is None and payment_hash:
                    if (kept := await self._answered(request.request_id)) is not None:
                        results[i] = kept  # a retried request_id: its first answer
                    else:
                        routed.append((i, RoutedPayment(payee, amount, payment_hash, *limits)))
                    continue
                record = record or self._channels.channel_to(payee, amount)  # NO_ROUTE
            except Exception as exc:
                results[i] = exc
                continue
            hashes[i] = payment_hash
            _, indexes, payments = direct.setdefault(record.channel_id, (record, [], []))
            indexes.append(i)
            payments.append((amount, payment_hash, request.request_id))

        async def pay_direct(record: ChannelRecord, indexes: list[int], payments: list[tuple[int, bytes, str]]
                             ) -> None:
            try:
                outcomes: Sequence[tuple[StateRecord, bytes] | BaseException] = \
                    await self._channels.updates.pay_many(record, payments)
            except Exception as exc:  # the channel's round trips failed as a whole: each payment says why
                outcomes = [exc] * len(payments)
            for i, outcome in zip(indexes, outcomes, strict=True):
                results[i] = outcome

        async def pay_routed() -> None:
            try:
                outcomes: Sequence[PaymentRecord | BaseException] = \
                    await self._channels.payments.pay_many([want for _, want in routed])
            except Exception as exc:
                outcomes = [exc] * len(routed)
            for (i, _), outcome in zip(routed, outcomes, strict=True):
                try:
                    paid = _succeeded(outcome)
                except Exception as exc:
                    results[i] = exc
                    continue
                results[i] = paid
                if requests[i].request_id:  # kept for a retry, as Pay keeps it
                    await self._once.once(requests[i].request_id, functools.partial(_kept, paid))

        paying = [*(pay_direct(*group) for group in direct.values()), *([pay_routed()] if routed else [])]
        if len(paying) == 1:
            await paying[0]  # no task for the message's one group
        elif paying:
            await asyncio.gather(*paying)
        response = pb.PayStreamResponse()
        views: dict[str, pb.Channel] = {}
        for cid in direct:
            try:
                views[hex0x(cid)] = self._pb(self._channels.channel(cid))
            except DomainError:  # gone meanwhile (cannot be: channels are never deleted); its answers stand
                continue
        add = response.answers.add
        for request, payment_hash, result in zip(requests, hashes, results, strict=True):
            answer = add(request_id=request.request_id)
            if isinstance(result, tuple):  # a direct payment: the fields a unary Pay answers, but its channel
                state, preimage = result
                paid = answer.payment
                paid.channel_id, paid.sequence = hex0x(state.channel_id), state.sequence
                if payment_hash:
                    paid.payment_hash = hex0x(payment_hash)
                if preimage:
                    paid.preimage = hex0x(preimage)
            elif isinstance(result, PaymentRecord):  # a routed one: its first hop's channel goes in `channels`
                over = hex0x(result.channel_id)
                first = self._store.channel(result.channel_id) if over not in views else None
                if first is not None:
                    views[over] = self._pb(first)
                latest = self._store.latest_cosigned(result.channel_id)
                paid = answer.payment  # every field but the channel (a state of every HTLC: not copied)
                paid.channel_id, paid.sequence = over, latest.sequence if latest is not None else 0
                paid.payment_hash, paid.preimage = hex0x(result.payment_hash), hex0x(result.preimage)
                paid.payment.CopyFrom(payment_pb(result))
            elif isinstance(result, pb.PayResponse):  # one kept for its request_id (a unary Pay's): as answered
                if result.HasField("channel"):
                    views.setdefault(result.channel.channel_id, result.channel)
                paid = answer.payment
                paid.channel_id, paid.sequence = result.channel_id, result.sequence
                paid.payment_hash, paid.preimage = result.payment_hash, result.preimage
                if result.HasField("payment"):
                    paid.payment.CopyFrom(result.payment)
            else:
                answer.error.CopyFrom(_pay_error(result if result is not None else AssertionError("not paid")))
        response.channels.extend(views.values())
        return response

    async def _answered(self, request_id: str) -> _Answer | None:
        """The answer kept for ``request_id`` (a retry gets its first answer), or None."""
        if not request_id:
            return None
        try:
            return await self._once.once(request_id, _not_answered)
        except _NotAnswered:
            return None

    async def _pay(self, request: pb.PayRequest) -> pb.PayResponse:
        target = _target(request)
        answer = await self._acked(self._once.once(request.request_id, functools.partial(self._pay_now, request,
                                                                                         target)))
        return answer if isinstance(answer, pb.PayResponse) else self._routed(answer)

    async def _pay_now(self, request: pb.PayRequest, target: _Target) -> _Answer:
        """Pay ``request`` (``target``: its fields checked, ``_target``)."""
        payee, amount, payment_hash, limits = target
        direct = self._channels.direct_channel(payee, amount)
        if direct is not None or not payment_hash:
            record = direct or self._channels.channel_to(payee, amount)
            state, preimage = await self._channels.pay(record, amount, payment_hash, request.request_id)
            return pb.PayResponse(channel_id=hex0x(state.channel_id), sequence=state.sequence,
                                  payment_hash=hex0x(payment_hash) if payment_hash else "",
                                  preimage=hex0x(preimage) if preimage else "",
                                  channel=self._pb(self._channels.channel(record.channel_id)))
        (outcome,) = await self._channels.payments.pay_many([RoutedPayment(payee, amount, payment_hash, *limits)])
        return _succeeded(outcome)

    def _routed(self, payment: PaymentRecord) -> pb.PayResponse:
        """A routed payment's answer: with its first hop's channel as it is now."""
        first = self._store.channel(payment.channel_id)
        latest = self._store.latest_cosigned(payment.channel_id)
        return pb.PayResponse(channel_id=hex0x(payment.channel_id),
                              sequence=latest.sequence if latest is not None else 0,
                              payment_hash=hex0x(payment.payment_hash), preimage=hex0x(payment.preimage),
                              channel=self._pb(first) if first is not None else None, payment=payment_pb(payment))

    async def GetPayment(self, request: pb.GetPaymentRequest, context: Any) -> pb.GetPaymentResponse:
        payment = self._store.payment(parse_hex(request.payment_hash, 32, "payment_hash"))
        if payment is None:
            raise NotFound(f"no payment {request.payment_hash} sent by this node", reason="PAYMENT_NOT_FOUND")
        return await self._shown(pb.GetPaymentResponse(payment=payment_pb(payment)))

    async def ListKnownChannels(self, request: pb.ListKnownChannelsRequest, context: Any
                                ) -> pb.ListKnownChannelsResponse:
        return pb.ListKnownChannelsResponse(channels=[
            pb.KnownChannel(channel_id=hex0x(a.channel_id), node=hex0x(a.sender), peer=hex0x(a.receiver),
                            capacity=str(a.capacity), fee_base=str(a.policy.fee_base_wei), fee_ppm=a.policy.fee_ppm,
                            expiry_delta_s=a.policy.expiry_delta_s, timestamp=a.timestamp)
            for a in self._channels.gossip.graph.announcements()])

    async def CloseChannel(self, request: pb.CloseChannelRequest, context: Any) -> pb.CloseChannelResponse:
        record = self._channels.channel(parse_hex(request.channel_id, 32, "channel_id"))

        async def run() -> pb.CloseChannelResponse:
            stale = request.stale_sequence if request.HasField("stale_sequence") else None
            closed, tx = await self._channels.close(record, request.force, stale)
            return pb.CloseChannelResponse(channel=self._pb(closed), l1_tx_hash="0x" + tx.hex())

        return await self._acked(self._once.once(request.request_id, run))

    async def SubscribeEvents(self, request: pb.SubscribeEventsRequest, context: Any
                              ) -> AsyncIterator[pb.SubscribeEventsResponse]:
        only = parse_hex(request.channel_id, 32, "channel_id") if request.channel_id else None
        following = request.from_sequence if request.HasField("from_sequence") else self._store.last_event() + 1
        while True:
            changed = self._store.changed()
            batch = self._store.events(following, _REPLAY_BATCH)
            await self._store.durable()  # only what is on disk is shown
            for event in batch:
                following = event.sequence + 1
                if only is not None and event.channel_id != only:
                    continue
                record = self._store.channel(event.channel_id) if event.channel_id else None
                yield event_pb(event, self._pb(record) if record is not None else None)
            if len(batch) < _REPLAY_BATCH:
                await changed.wait()


class PeerServicer(channels_pb2_grpc.PeerServiceServicer):
    """Other nodes' channels workers: every request's sender signature checked, every answer signed."""

    def __init__(self, channels: Channels) -> None:
        self._channels = channels

    async def _acked(self, answer: Callable[[], T]) -> T:
        """``answer()``, sent once every write before it is on disk: a counter-signature never
        leaves before its state (nor a refusal before what it tells of)."""
        try:
            return answer()
        finally:
            await self._channels.store.durable()

    async def Hello(self, request: pb.HelloRequest, context: Any) -> pb.HelloResponse:
        return await self._acked(lambda: self._channels.on_hello(request))

    async def Open(self, request: pb.OpenRequest, context: Any) -> pb.OpenResponse:
        return await self._acked(lambda: self._channels.on_open(request))

    async def Propose(self, request: pb.ProposeRequest, context: Any) -> pb.ProposeResponse:
        await self._channels.fresh_clock()
        return await self._acked(lambda: self._channels.updates.on_propose(request))

    async def ProposeBatch(self, request: pb.ProposeBatchRequest, context: Any) -> pb.ProposeBatchResponse:
        await self._channels.fresh_clock()
        return await self._acked(lambda: self._channels.updates.on_propose_batch(request))

    async def RequestChanges(self, request: pb.RequestChangesRequest, context: Any) -> pb.RequestChangesResponse:
        # Not after the durable wait: the answer tells of nothing written (the preimages learned
        # are this node's to keep or lose; the peer proposes what it asked for if it must, U7).
        return self._channels.updates.on_request_changes(request)

    async def Announce(self, request: pb.AnnounceRequest, context: Any) -> pb.AnnounceResponse:
        answer = await self._channels.gossip.on_announce(request)
        await self._channels.store.durable()
        return answer
