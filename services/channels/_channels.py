"""The running channels worker: the channel state machine of direct payments, both sides of it.

An update, as the proposer P and the receiver R run it (channels.proto: PeerService.Propose):

1. P builds state n+1 on the latest state both signed (n), signs it and stores it (durable)
   BEFORE its signature leaves the process; the UNIQUE (channel, sequence) row means P can never
   sign another state at n+1 (a refused one stays, its sequence taken).
2. R checks the message's sender, the state's signature, protocol's rules (check_update, C1..)
   and the payment itself (its own balance grows by exactly the amount; an invoice's amount), never
   at a sequence it signed before; counter-signs, stores the co-signed state (durable), answers.
3. P checks the counter-signature and stores it: both sides hold state n+1.

A crash anywhere leaves P with its own signed state and maybe R's: P re-sends the very same state
(at restart, and before any new update), and R answers a state it already holds with the same
signature. Only an explicit refusal releases P's sequence, never a timeout (R may have accepted).
Both sides' proposals race at one sequence: the receiver refuses (SEQUENCE_CONFLICT) and tells
its highest signed sequence; the proposer tries again above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Final

import grpc
from opentelemetry import trace

from protocol import FINAL_SEQUENCE
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.l1 import OUTAGE, Deployment, L1Client, LocalSigner, TxSender, checksum, read_key
from services.runtime import (
    BreakerOpen,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    quiet,
)
from supervisor import ChildSpec, Restart, task

from ._adjudicator import L1_CANCELLED, L1_CLOSING, L1_CONCLUDED, L1_OPEN, L1_OPENING, Adjudicator
from ._peer import PeerClient, require_sender, seal
from ._records import ChannelRecord, ChannelStatus, InvoiceRecord, InvoiceStatus, StateRecord
from ._rules import ChannelRefused, Rules
from ._settings import ChannelsSettings
from ._store import ChannelsStore, SequenceTaken
from ._wire import amount_of, hex0x, parse_hex, state_of_pb, state_pb

ChannelFn = Callable[[str], grpc.aio.Channel]
#: What a call to a peer or L1 may fail with that is no answer (the update stays pending).
_TRANSIENT: Final = (grpc.aio.AioRpcError, BreakerOpen, DeadlineExceeded, *OUTAGE)
#: A proposal refused for a racing one is tried again this many times, above the peer's sequence.
_RACE_RETRIES: Final = 8


class Channels:
    def __init__(self, settings: ChannelsSettings, store: ChannelsStore, logger: logging.Logger, tracer: trace.Tracer,
                 channel: ChannelFn, endpoint: str, rules: Rules | None = None, adjudicator: Adjudicator | None = None,
                 l1: L1Client | None = None, challenge_period_s: int = 0) -> None:
        self.settings = settings
        self.store = store
        self.rules = rules
        self.adjudicator = adjudicator
        self.endpoint = endpoint
        self.challenge_period_s = challenge_period_s
        self._log = logger
        self._tracer = tracer
        self._channel = channel
        self._l1_client = l1
        self._peers: dict[str, PeerClient] = {}
        self._locks: dict[bytes, asyncio.Lock] = {}
        self._wake = asyncio.Event()

    @classmethod
    async def open(cls, settings: ChannelsSettings, store: ChannelsStore, logger: logging.Logger,
                   tracer: trace.Tracer, channel: ChannelFn, endpoint: str) -> Channels:
        rpc, contracts = settings.l1.get("rpc", ""), settings.l1.get("contracts", "")
        if not rpc or not settings.key_file or settings.missing():
            logger.warning("no L1, adjudicator or channel key: the channels worker opens nothing",
                           extra={"missing": settings.missing()})
            return cls(settings, store, logger, tracer, channel, endpoint)
        key = read_key(settings.key_file)
        contract = Deployment.load(contracts).contract("ChannelAdjudicator")
        l1 = L1Client(rpc)
        try:
            sender = await TxSender.create(l1, LocalSigner(key))
            adjudicator = Adjudicator(l1, contract, sender, settings.l1_timeout_s)
            period = await adjudicator.challenge_period()
            rules = Rules(await l1.chain_id(), adjudicator.address, key, period)
        except BaseException:
            await l1.aclose()
            raise
        logger.info("channels ready", extra={"address": checksum(LocalSigner(key).address),
                                             "adjudicator": checksum(adjudicator.address),
                                             "challenge_period_s": period})
        return cls(settings, store, logger, tracer, channel, endpoint, rules, adjudicator, l1, period)

    @property
    def address(self) -> bytes:
        return LocalSigner(self._rules().key).address

    def _rules(self) -> Rules:
        if self.rules is None:
            raise Unavailable("this channels worker has no L1, adjudicator or channel key", reason="NOT_CONFIGURED")
        return self.rules

    def _l1(self) -> Adjudicator:
        if self.adjudicator is None:
            raise Unavailable("this channels worker has no L1, adjudicator or channel key", reason="NOT_CONFIGURED")
        return self.adjudicator

    def tasks(self) -> Sequence[ChildSpec]:
        if self.adjudicator is None:
            return []
        # The resume task ends once every pending state is answered: transient, not restarted then.
        return [ChildSpec(id="resume", start=task(self._resume), restart=Restart.TRANSIENT),
                ChildSpec(id="l1", start=task(self._watch_l1))]

    async def aclose(self) -> None:
        if self._l1_client is not None:
            await self._l1_client.aclose()

    def peer(self, address: str) -> PeerClient:
        client = self._peers.get(address)
        if client is None:
            client = self._peers[address] = PeerClient(address, self._channel, self.settings.peer_deadline_s)
        return client

    def lock(self, channel_id: bytes) -> asyncio.Lock:
        return self._locks.setdefault(channel_id, asyncio.Lock())

    def channel(self, channel_id: bytes) -> ChannelRecord:
        found = self.store.channel(channel_id)
        if found is None:
            raise NotFound(f"no channel 0x{channel_id.hex()}", reason="CHANNEL_NOT_FOUND")
        return found

    # --- opening ----------------------------------------------------------------------------------

    async def open_channel(self, peer_endpoint: str, amount: int, peer_amount: int) -> ChannelRecord:
        """The opener's side: hello, both sign the funding state, open on L1, wait for the peer's
        funding (if any). The channel, OPEN (or FAILED with its reason)."""
        rules, adjudicator = self._rules(), self._l1()
        if amount + peer_amount <= 0:
            raise InvalidArgument("a channel needs funds: amount + peer_amount > 0", reason="NO_FUNDS")
        peer = self.peer(peer_endpoint)
        hello = await self._ask(peer.hello(seal(rules, pb.HelloRequest(
            address=hex0x(self.address), chain_id=rules.chain_id, adjudicator=hex0x(rules.adjudicator)))))
        them = parse_hex(hello.address, 20, "address")
        require_sender(hello, them, "the peer's hello")
        if hello.chain_id != rules.chain_id or parse_hex(hello.adjudicator, 20, "adjudicator") != rules.adjudicator:
            raise FailedPrecondition(f"the peer at {peer_endpoint} uses chain {hello.chain_id} and adjudicator "
                                     f"{hello.adjudicator}, not this node's", reason="PEER_ON_ANOTHER_ADJUDICATOR")
        if them == self.address:
            raise InvalidArgument("the peer is this node's own channel key", reason="SELF_CHANNEL")
        nonce = secrets.randbits(63)
        cid = rules.channel_id(self.address, them, nonce)
        record = ChannelRecord(cid, self.address, them, nonce, True, peer_endpoint, ChannelStatus.OPENING, amount,
                               peer_amount, updated_at=int(time.time()))
        funding = StateRecord(cid, 0, amount, peer_amount)
        funding = replace(funding, sig_a=rules.sign(funding))
        self.store.add_channel(record, funding, "CHANNEL_OPENING")  # durable before the signature leaves
        request = seal(rules, pb.OpenRequest(a=hex0x(self.address), b=hex0x(them), nonce=nonce, amount_a=str(amount),
                                             amount_b=str(peer_amount), endpoint=self.endpoint,
                                             state=state_pb(funding), signature=funding.sig_a))
        try:
            answer = await self._ask(peer.open(request))
            require_sender(answer, them, "the peer's answer to open")
            if rules.signer_of(funding, answer.signature) != them:
                raise PermissionDenied("the peer's signature of the funding state is not its own",
                                       reason="BAD_STATE_SIGNATURE")
        except Exception as exc:
            self.store.update_channel(replace(record, status=ChannelStatus.FAILED, reason=str(exc)), "CHANNEL_FAILED")
            raise
        self.store.put_state(replace(funding, sig_b=answer.signature))
        try:
            tx = await adjudicator.open(self.address, them, nonce, amount, peer_amount)
        except Exception as exc:
            self.store.update_channel(replace(record, status=ChannelStatus.FAILED, reason=str(exc)), "CHANNEL_FAILED")
            raise
        record = self.store.update_channel(replace(record, open_tx=tx))
        return await self._await_open(record)

    async def _await_open(self, record: ChannelRecord) -> ChannelRecord:
        adjudicator = self._l1()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.l1_timeout_s
        while True:
            on_chain = await adjudicator.on_chain(record.channel_id)
            if on_chain.status == L1_OPEN:
                return self.store.update_channel(replace(record, status=ChannelStatus.OPEN), "CHANNEL_OPEN")
            if loop.time() > deadline:
                raise Unavailable("the peer has not funded its side on L1 yet: the channel opens when it does",
                                  reason="PEER_FUNDING_PENDING", retry_delay_s=self.settings.poll_interval_s)
            self._wake.set()
            await asyncio.sleep(self.settings.poll_interval_s)

    def on_hello(self, request: pb.HelloRequest) -> pb.HelloResponse:
        rules = self._rules()
        require_sender(request, parse_hex(request.address, 20, "address"), "hello")
        return seal(rules, pb.HelloResponse(address=hex0x(self.address), chain_id=rules.chain_id,
                                            adjudicator=hex0x(rules.adjudicator)))

    def on_open(self, request: pb.OpenRequest) -> pb.OpenResponse:
        """The peer's side of the handshake: checks and co-signs the funding state; funds on L1
        (the L1 task) once the opener's open is there."""
        rules = self._rules()
        a, b = parse_hex(request.a, 20, "a"), parse_hex(request.b, 20, "b")
        require_sender(request, a, "open")
        if b != self.address:
            raise InvalidArgument(f"the channel's b is 0x{b.hex()}, not this node", reason="NOT_A_PARTICIPANT")
        amount_a, amount_b = amount_of(request.amount_a, "amount_a"), amount_of(request.amount_b, "amount_b")
        cid = rules.channel_id(a, b, request.nonce)
        funding = state_of_pb(request.state)
        if funding != StateRecord(cid, 0, amount_a, amount_b):
            raise InvalidArgument("the funding state is not sequence 0 of this channel with balances = amounts",
                                  reason="BAD_FUNDING_STATE")
        if rules.signer_of(funding, request.signature) != a:
            raise PermissionDenied("the funding state is not signed by a", reason="BAD_STATE_SIGNATURE")
        existing = self.store.channel(cid)
        if existing is None:
            if ":" not in request.endpoint:
                raise InvalidArgument("endpoint must be the opener's host:port", reason="MALFORMED_ENDPOINT")
            signed = StateRecord(cid, 0, amount_a, amount_b, sig_a=request.signature)
            signed = replace(signed, sig_b=rules.sign(signed))
            record = ChannelRecord(cid, a, b, request.nonce, False, request.endpoint, ChannelStatus.OPENING,
                                   amount_a, amount_b, updated_at=int(time.time()))
            self.store.add_channel(record, signed, "CHANNEL_OPENING")  # durable before the signature leaves
            self._wake.set()
        else:
            signed = self.store.state(cid, 0) or funding
        return seal(rules, pb.OpenResponse(channel_id=hex0x(cid), signature=signed.sig_b))

    # --- payments ---------------------------------------------------------------------------------

    async def pay(self, record: ChannelRecord, amount: int, payment_hash: bytes = b"") -> tuple[StateRecord, bytes]:
        """Pay ``amount`` to the channel's peer (its invoice ``payment_hash``, or b""): the co-signed
        new state and the invoice's preimage (b"")."""
        if amount <= 0:
            raise InvalidArgument("amount must be > 0", reason="NON_POSITIVE_AMOUNT")
        async with self.lock(record.channel_id):
            flushed = await self._flush(record)
            if flushed is not None and payment_hash and flushed[2] == payment_hash:
                return flushed[0], flushed[1]  # a retried invoice payment, delivered now
            done = self.store.paid(payment_hash) if payment_hash else None
            if done is not None:
                return done  # a retried invoice payment, delivered before (at a restart): paid once
            for _ in range(_RACE_RETRIES):
                record = self.channel(record.channel_id)
                if record.status != ChannelStatus.OPEN:
                    raise FailedPrecondition(f"channel 0x{record.channel_id.hex()} is {record.status.name}, not OPEN",
                                             reason="CHANNEL_NOT_OPEN")
                latest = self._latest(record)
                ours = latest.balance_a if record.we_are_a else latest.balance_b
                if amount > ours:
                    raise FailedPrecondition(f"this node holds {ours} wei in the channel, not {amount}",
                                             reason="INSUFFICIENT_BALANCE")
                delta = -amount if record.we_are_a else amount
                state = StateRecord(record.channel_id, self.store.highest_sequence(record.channel_id) + 1,
                                    latest.balance_a + delta, latest.balance_b - delta, latest.htlcs)
                answer = await self._propose(record, state, amount, payment_hash, final=False)
                if answer is not None:
                    return answer
        raise Unavailable("the peer kept proposing at the same sequences: try again", reason="SEQUENCE_CONFLICT",
                          retry_delay_s=0.1)

    def _latest(self, record: ChannelRecord) -> StateRecord:
        latest = self.store.latest_cosigned(record.channel_id)
        assert latest is not None  # the funding state is co-signed before a channel is stored OPENING
        return latest

    async def _propose(self, record: ChannelRecord, state: StateRecord, amount: int, payment_hash: bytes,
                       final: bool) -> tuple[StateRecord, bytes] | None:
        """Sign, store, send, store the counter-signature: the co-signed state and a preimage; None
        when the peer refused it for a racing proposal (try again above). Raises on other refusals
        and on no answer (the state stays pending: re-sent as it is)."""
        rules = self._rules()
        state = self.store.put_state(state.signed(record.we_are_a, rules.sign(state)), payment_hash)  # durable first
        return await self._send(record, state, amount, payment_hash, final)

    async def _send(self, record: ChannelRecord, state: StateRecord, amount: int, payment_hash: bytes,
                    final: bool) -> tuple[StateRecord, bytes] | None:
        rules = self._rules()
        mine = state.sig_a if record.we_are_a else state.sig_b
        request = seal(rules, pb.ProposeRequest(state=state_pb(state), signature=mine, amount=str(amount),
                                                payment_hash=hex0x(payment_hash) if payment_hash else "",
                                                final=final))
        answer = await self._ask(self.peer(record.peer).propose(request))
        require_sender(answer, record.theirs, "the peer's answer")
        if not answer.accepted:
            self.store.refuse(state.channel_id, state.sequence)
            if answer.reason == "SEQUENCE_CONFLICT":
                return None
            raise FailedPrecondition(f"the peer refused the update: {answer.message}", reason=answer.reason)
        if rules.signer_of(state, answer.signature) != record.theirs:
            raise PermissionDenied("the peer's counter-signature is not its own", reason="BAD_STATE_SIGNATURE")
        preimage = bytes.fromhex(answer.preimage.removeprefix("0x")) if answer.preimage else b""
        if payment_hash and hashlib.sha256(preimage).digest() != payment_hash:
            raise PermissionDenied("the peer's preimage does not hash to the invoice's payment hash",
                                   reason="BAD_PREIMAGE")
        cosigned = state.signed(not record.we_are_a, answer.signature)
        kind = "CHANNEL_CLOSING" if final else "PAYMENT_SENT"
        self.store.record_payment(cosigned, kind, payment_hash, amount, preimage)
        return cosigned, preimage

    async def _flush(self, record: ChannelRecord) -> tuple[StateRecord, bytes, bytes] | None:
        """Re-send this node's pending state (signed, never answered) as it is, first: the co-signed
        state, the preimage and the payment hash of the invoice it paid; None: nothing pending."""
        pending = self.store.pending(record.channel_id)
        if pending is None:
            return None
        latest = self._latest(record)
        ours_then = latest.balance_a if record.we_are_a else latest.balance_b
        ours_now = pending.balance_a if record.we_are_a else pending.balance_b
        payment_hash = self.store.payment_of(record.channel_id, pending.sequence)
        answer = await self._send(record, pending, ours_then - ours_now, payment_hash,
                                  pending.sequence == FINAL_SEQUENCE)
        return None if answer is None else (*answer, payment_hash)

    async def _ask(self, call: Any) -> Any:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
                              grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise FailedPrecondition(f"the peer refused: {exc.details()}", reason="PEER_REFUSED") from None
            raise Unavailable(f"the peer cannot be reached: {exc.code().name}", reason="PEER_UNAVAILABLE",
                              retry_delay_s=1.0) from None
        except (BreakerOpen, DeadlineExceeded) as exc:
            raise Unavailable(f"the peer cannot be reached: {type(exc).__name__}", reason="PEER_UNAVAILABLE",
                              retry_delay_s=1.0) from None

    def on_propose(self, request: pb.ProposeRequest) -> pb.ProposeResponse:
        """The receiver's side: everything checked, counter-signed and stored before answering.
        Synchronous (no await): checked and stored in one step of the event loop."""
        rules = self._rules()
        state = state_of_pb(request.state)
        record = self.channel(state.channel_id)
        require_sender(request, record.theirs, "the proposal")
        try:
            answer = self._accept(record, state, request)
        except _Refused as refused:
            return seal(rules, pb.ProposeResponse(
                channel_id=hex0x(state.channel_id), sequence=state.sequence, accepted=False, reason=refused.reason,
                message=str(refused), signed_upto=max(0, self.store.highest_sequence(state.channel_id))))
        cosigned, preimage = answer
        mine = cosigned.sig_a if record.we_are_a else cosigned.sig_b
        return seal(rules, pb.ProposeResponse(channel_id=hex0x(state.channel_id), sequence=state.sequence,
                                              accepted=True, signature=mine,
                                              preimage=hex0x(preimage) if preimage else "",
                                              signed_upto=state.sequence))

    def _accept(self, record: ChannelRecord, state: StateRecord, request: pb.ProposeRequest
                ) -> tuple[StateRecord, bytes]:
        rules = self._rules()
        theirs_a = not record.we_are_a
        if rules.signer_of(state, request.signature) != record.theirs:
            raise _Refused("the state is not signed by the channel's other participant", "BAD_STATE_SIGNATURE")
        proposed = state.signed(theirs_a, request.signature)
        held = self.store.state(state.channel_id, state.sequence)
        payment_hash = parse_hex(request.payment_hash, 32, "payment_hash") if request.payment_hash else b""
        if held is not None and held.same_content(state) and held.cosigned:
            # A re-sent proposal this node already accepted: the same answer again.
            return held, self._preimage(payment_hash)
        if record.status not in (ChannelStatus.OPEN,):
            raise _Refused(f"the channel is {record.status.name}", "CHANNEL_NOT_OPEN")
        latest = self._latest(record)
        if state.sequence <= self.store.highest_sequence(state.channel_id):
            reason = "SEQUENCE_CONFLICT" if state.sequence > latest.sequence else "STALE_SEQUENCE"
            raise _Refused(f"sequence {state.sequence} is not above {self.store.highest_sequence(state.channel_id)}, "
                           "the highest this node signed", reason)
        try:
            rules.check(latest, state, record)
        except ChannelRefused as exc:
            raise _Refused(exc.message, str(exc.reason)) from None
        amount = amount_of(request.amount, "amount")
        ours_then = latest.balance_b if theirs_a else latest.balance_a
        ours_now = state.balance_b if theirs_a else state.balance_a
        if state.htlcs != latest.htlcs:
            raise _Refused("a direct payment changes no HTLC", "UNEXPECTED_HTLCS")
        if request.final != (state.sequence == FINAL_SEQUENCE):
            raise _Refused(f"sequence {FINAL_SEQUENCE} is the final state's, and only its", "BAD_FINAL_STATE")
        if request.final:
            if amount != 0 or state.balance_a != latest.balance_a:
                raise _Refused("a final state keeps the last balances", "BAD_FINAL_STATE")
            if state.htlcs:
                raise _Refused("a channel with HTLCs in flight cannot close cooperatively", "HTLCS_IN_FLIGHT")
        elif amount <= 0 or ours_now - ours_then != amount:
            raise _Refused(f"the state moves {ours_now - ours_then} wei to this node, not the payment's {amount}",
                           "AMOUNT_MISMATCH")
        preimage = b""
        if payment_hash:
            invoice = self.store.invoice(payment_hash)
            if invoice is None or invoice.status != InvoiceStatus.OPEN:
                raise _Refused("no open invoice of that payment hash", "UNKNOWN_INVOICE")
            if invoice.amount != amount:
                raise _Refused(f"the invoice is for {invoice.amount} wei, not {amount}", "AMOUNT_MISMATCH")
            preimage = invoice.preimage
        cosigned = proposed.signed(not theirs_a, rules.sign(state))
        try:
            if request.final:
                self.store.put_state(cosigned)
                self.store.update_channel(replace(record, status=ChannelStatus.CLOSING), "CHANNEL_CLOSING")
            else:
                self.store.record_payment(cosigned, "PAYMENT_RECEIVED", payment_hash, amount)  # durable first
        except SequenceTaken:
            raise _Refused(f"this node holds another state at sequence {state.sequence}", "SEQUENCE_CONFLICT") from None
        return cosigned, preimage

    def _preimage(self, payment_hash: bytes) -> bytes:
        invoice = self.store.invoice(payment_hash) if payment_hash else None
        return invoice.preimage if invoice is not None else b""

    def on_announce(self, request: pb.AnnounceRequest) -> pb.AnnounceResponse:
        """A peer's capacity and fees over a channel with this node: checked (its sender is the
        channel's other participant); routing over them is the next slice's."""
        record = self.channel(parse_hex(request.channel_id, 32, "channel_id"))
        require_sender(request, record.theirs, "the announcement")
        if parse_hex(request.node, 20, "node") != record.theirs:
            raise PermissionDenied("an announcement speaks for its sender only", reason="BAD_PEER_SIGNATURE")
        return seal(self._rules(), pb.AnnounceResponse(known=True))

    # --- invoices ---------------------------------------------------------------------------------

    def create_invoice(self, amount: int, memo: str) -> InvoiceRecord:
        if amount <= 0:
            raise InvalidArgument("amount must be > 0", reason="NON_POSITIVE_AMOUNT")
        preimage = secrets.token_bytes(32)
        invoice = InvoiceRecord(hashlib.sha256(preimage).digest(), preimage, amount, memo, InvoiceStatus.OPEN,
                                int(time.time()))
        self.store.add_invoice(invoice)
        return invoice

    def channel_to(self, payee: bytes, amount: int) -> ChannelRecord:
        """An OPEN channel with ``payee`` that can carry ``amount`` from this node."""
        for record in self.store.channels_with(payee):
            if record.status != ChannelStatus.OPEN or record.theirs != payee:
                continue
            latest = self._latest(record)
            if (latest.balance_a if record.we_are_a else latest.balance_b) >= amount:
                return record
        raise FailedPrecondition(f"no open channel with 0x{payee.hex()} carries {amount} wei from this node",
                                 reason="NO_ROUTE")

    # --- closing ----------------------------------------------------------------------------------

    async def close(self, record: ChannelRecord, force: bool) -> tuple[ChannelRecord, bytes]:
        adjudicator = self._l1()
        if record.status in (ChannelStatus.CLOSED, ChannelStatus.FAILED):
            raise FailedPrecondition(f"channel 0x{record.channel_id.hex()} is {record.status.name}",
                                     reason="CHANNEL_NOT_OPEN")
        async with self.lock(record.channel_id):
            if force:
                latest = self._latest(record)
                tx = await adjudicator.close_unilateral(latest)
                on_chain = await adjudicator.on_chain(record.channel_id)
                record = self.store.update_channel(replace(record, status=ChannelStatus.DISPUTED, close_tx=tx,
                                                           closes_at=on_chain.ends_at), "CHANNEL_DISPUTED")
                self._wake.set()
                return record, tx
            if record.status == ChannelStatus.OPEN:
                await self._flush(record)
                record = self.store.update_channel(replace(record, status=ChannelStatus.CLOSING), "CHANNEL_CLOSING")
                latest = self._latest(record)
                state = StateRecord(record.channel_id, FINAL_SEQUENCE, latest.balance_a, latest.balance_b)
                if await self._propose(record, state, 0, b"", final=True) is None:
                    raise Unavailable("the peer is proposing: try again", reason="SEQUENCE_CONFLICT",
                                      retry_delay_s=0.1)
            else:
                with contextlib.suppress(Unavailable):
                    await self._flush(record)  # a final state not yet answered
            final = self._latest(record)
            tx = await adjudicator.close_cooperative(final)
            record = self.store.update_channel(replace(self.channel(record.channel_id), status=ChannelStatus.CLOSED,
                                                       close_tx=tx), "CHANNEL_CLOSED")
            return record, tx

    # --- the loops --------------------------------------------------------------------------------

    async def _resume(self) -> None:
        """At start: every channel's pending state (signed, unanswered) re-sent until answered."""
        while True:
            left = 0
            for record in self.store.channels_in((ChannelStatus.OPEN, ChannelStatus.CLOSING)):
                if self.store.pending(record.channel_id) is None:
                    continue
                try:
                    async with self.lock(record.channel_id):
                        await self._flush(record)
                except (Unavailable, *_TRANSIENT) as exc:
                    left += 1
                    self._log.warning("channel 0x%s: pending state not delivered yet: %s", record.channel_id.hex(),
                                      exc)
                except Exception:
                    self._log.exception("channel 0x%s: pending state refused", record.channel_id.hex())
            if not left:
                return
            await asyncio.sleep(self.settings.poll_interval_s)

    async def _watch_l1(self) -> None:
        """Channels opening (the peer's funding, this node's), closing by either side, and forced
        closes to conclude after the challenge period; an idle worker looks seldom."""
        while True:
            busy = False
            try:
                with quiet():
                    busy = await self._l1_round()
            except (*_TRANSIENT, Unavailable) as exc:
                self._log.warning("L1 watcher: %s: %s", type(exc).__name__, exc)
            except FailedPrecondition as exc:
                self._log.warning("L1 watcher: %s", exc)
            self._wake.clear()
            delay = self.settings.poll_interval_s if busy else 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _l1_round(self) -> bool:
        adjudicator = self._l1()
        busy = False
        for record in self.store.channels_in((ChannelStatus.OPENING, ChannelStatus.OPEN, ChannelStatus.CLOSING,
                                               ChannelStatus.DISPUTED)):
            on_chain = await adjudicator.on_chain(record.channel_id)
            if record.status == ChannelStatus.OPENING:
                busy = True
                if on_chain.status == L1_OPEN:
                    self.store.update_channel(replace(record, status=ChannelStatus.OPEN), "CHANNEL_OPEN")
                elif not record.we_are_a and record.amount_b and on_chain.status == L1_OPENING \
                        and not record.open_tx:
                    tx = await adjudicator.fund(record.channel_id, record.amount_b)
                    self.store.update_channel(replace(record, open_tx=tx))
            elif on_chain.status == L1_CLOSING:
                busy = True
                latest = self._latest(record)
                if latest.sequence > on_chain.closing_sequence:
                    # The peer closed with an older state: answered with the newest both signed.
                    await adjudicator.challenge(latest)
                    self._log.warning("channel 0x%s: closed with stale sequence %d, challenged with %d",
                                      record.channel_id.hex(), on_chain.closing_sequence, latest.sequence)
                    continue
                if record.status != ChannelStatus.DISPUTED:
                    record = self.store.update_channel(replace(record, status=ChannelStatus.DISPUTED,
                                                               closes_at=on_chain.ends_at), "CHANNEL_DISPUTED")
                if await adjudicator.now() > on_chain.ends_at:
                    closing = self.store.state(record.channel_id, on_chain.closing_sequence) or latest
                    tx = await adjudicator.conclude(closing)
                    self.store.update_channel(replace(record, status=ChannelStatus.CLOSED, close_tx=tx),
                                              "CHANNEL_CLOSED")
            elif on_chain.status in (L1_CONCLUDED, L1_CANCELLED):
                self.store.update_channel(replace(record, status=ChannelStatus.CLOSED), "CHANNEL_CLOSED")
        return busy

    def wake(self) -> None:
        self._wake.set()


class _Refused(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


