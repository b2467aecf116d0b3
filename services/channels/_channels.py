"""The running channels worker: a channel's life (open, close, the L1 watcher) and the doors to
its parts: the one update path (``_updates``: every state change, both sides), multi-hop payments
(``_payments``), the gossip graph (``_gossip``) and the enforcement of HTLCs on L1 (``_enforce``).

Opening: the opener and the peer both sign the funding state (sequence 0) before either puts
ETH on L1; the opener opens, the peer funds its side, the channel is OPEN when both did. Closing:
cooperative (both sign the final state, C10; closeCooperative pays at once) or forced
(closeUnilateral with the latest co-signed state; the L1 watcher challenges a stale close by the
peer and concludes after the period)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, Final

import grpc
from opentelemetry import trace

from protocol import FINAL_SEQUENCE, Domain
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
from supervisor import ChildSpec, task

from ._adjudicator import L1_CANCELLED, L1_CLOSING, L1_CONCLUDED, L1_OPEN, L1_OPENING, Adjudicator
from ._enforce import Enforcer
from ._gossip import Gossip
from ._payments import Payments, PaymentTerms
from ._peer import PeerClient, require_sender, seal
from ._proposal import Built, MakeStep, Proposal
from ._records import ChannelRecord, ChannelStatus, InvoiceRecord, InvoiceStatus, StateRecord
from ._routing import ChannelPolicy, Graph
from ._rules import Rules
from ._settings import ChannelsSettings
from ._store import ChannelsStore
from ._updates import Updates
from ._wire import amount_of, hex0x, parse_hex, state_of_pb, state_pb

ChannelFn = Callable[[str], grpc.aio.Channel]
#: What a call to a peer or L1 may fail with that is no answer (the update stays pending).
_TRANSIENT: Final = (grpc.aio.AioRpcError, BreakerOpen, DeadlineExceeded, *OUTAGE)
#: How often channels are looked at for a pending state left unanswered (a peer that stopped answering).
_RESEND_S: Final = 1.0


@functools.lru_cache(maxsize=4)
def _address_of(key: bytes) -> bytes:
    """The address of a channel key: its public key derived once, not on every payment (~60 us)."""
    return LocalSigner(key).address


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
        #: L1's clock minus this machine's (HTLC expiries are L1 seconds), refreshed by the L1 watcher.
        self._l1_offset = 0.0
        self._clock_read_at = 0.0
        period = challenge_period_s
        policy = ChannelPolicy(settings.fee_base_wei, settings.fee_ppm, settings.expiry_delta_s or max(2 * period, 1),
                               settings.htlc_min_wei, 2**256 - 1, settings.max_accepted_htlcs)
        self.updates = Updates(self, store, logger)
        self.payments = Payments(self, store, PaymentTerms(
            policy, settings.final_expiry_delta_s or max(2 * period, 1), settings.max_accepted_htlcs,
            settings.max_htlc_expiry_s or max(40 * period, 600), settings.payment_timeout_s), logger, tracer)
        self.gossip = Gossip(self, store, Graph(rules.domain if rules else _NO_DOMAIN), policy, logger,
                             settings.gossip_interval_s)
        self._enforcer = Enforcer(self, store, adjudicator, settings.onchain_margin_s or max(period // 2, 5),
                                  logger) if adjudicator is not None else None

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
        channels = cls(settings, store, logger, tracer, channel, endpoint, rules, adjudicator, l1, period)
        await channels.refresh_clock()
        logger.info("channels ready", extra={"address": checksum(LocalSigner(key).address),
                                             "adjudicator": checksum(adjudicator.address),
                                             "challenge_period_s": period})
        return channels

    @property
    def address(self) -> bytes:
        return _address_of(self._rules().key)

    def l1_now(self) -> int:
        """L1's time now, as this node knows it (HTLC expiries are L1 unix seconds)."""
        return int(time.time() + self._l1_offset)

    async def refresh_clock(self) -> None:
        self._l1_offset = await self._l1().now() - time.time()
        self._clock_read_at = time.monotonic()

    async def fresh_clock(self, max_age_s: float = 1.0) -> None:
        """The L1 clock read within ``max_age_s`` (a proposal's HTLC expiries are judged by it: a
        node back from a pause must not judge them by the time it had before)."""
        if self.adjudicator is not None and time.monotonic() - self._clock_read_at > max_age_s:
            try:
                await self.refresh_clock()
            except (*_TRANSIENT, Unavailable) as exc:  # L1 down: payments go on, judged by the last clock
                self._log.warning("L1 clock not refreshed: %s", exc)

    def peer_available(self, endpoint: str) -> bool:
        """False while the peer's breaker is open (R8: routes go around it)."""
        client = self._peers.get(endpoint)
        return client is None or client.available

    async def open_on_l1(self, channel_id: bytes) -> bool:
        return (await self._l1().on_chain(channel_id)).status == L1_OPEN

    def rules_of(self) -> Rules:
        return self._rules()

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
        return [ChildSpec(id="resume", start=task(self._resume)),
                ChildSpec(id="l1", start=task(self._watch_l1)),
                ChildSpec(id="htlcs", start=task(self.payments.run)),
                ChildSpec(id="gossip", start=task(self.gossip.run))]

    async def aclose(self) -> None:
        if self._l1_client is not None:
            await self._l1_client.aclose()

    def peer(self, address: str) -> PeerClient:
        client = self._peers.get(address)
        if client is None:
            client = self._peers[address] = PeerClient(address, self._channel, self.settings.peer_deadline_s,
                                                       self.store.durable)
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
        hello = await self.ask(peer.hello(seal(rules, pb.HelloRequest(
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
            answer = await self.ask(peer.open(request))
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

    # --- updates: the one way a state changes (_updates.py) ---------------------------------------

    async def pay(self, record: ChannelRecord, amount: int, payment_hash: bytes = b"", request_key: str = ""
                  ) -> tuple[StateRecord, bytes]:
        return await self.updates.pay(record, amount, payment_hash, request_key)

    async def propose(self, record: ChannelRecord, make: MakeStep) -> tuple[StateRecord, bytes]:
        """One change this node proposes (an HTLC's), in the channel's next round trip (U5)."""
        return await self.updates.propose(record, make)

    async def flush(self, record: ChannelRecord) -> None:
        """Re-send this node's pending states of the channel, if any (the caller holds its lock)."""
        await self.updates.flush(record)

    def latest(self, record: ChannelRecord) -> StateRecord:
        latest = self.store.latest_cosigned(record.channel_id)
        assert latest is not None  # the funding state is co-signed before a channel is stored OPENING
        return latest

    async def ask(self, call: Any) -> Any:
        """A peer call's answer; its failure as this worker's error (refused, or no answer)."""
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


    # --- invoices ---------------------------------------------------------------------------------

    def create_invoice(self, amount: int, memo: str) -> InvoiceRecord:
        if amount <= 0:
            raise InvalidArgument("amount must be > 0", reason="NON_POSITIVE_AMOUNT")
        preimage = secrets.token_bytes(32)
        invoice = InvoiceRecord(hashlib.sha256(preimage).digest(), preimage, amount, memo, InvoiceStatus.OPEN,
                                int(time.time()))
        self.store.add_invoice(invoice)
        return invoice

    def direct_channel(self, payee: bytes, amount: int) -> ChannelRecord | None:
        """An OPEN channel with ``payee`` that can carry ``amount`` from this node, if any."""
        try:
            return self.channel_to(payee, amount)
        except FailedPrecondition:
            return None

    def channel_to(self, payee: bytes, amount: int) -> ChannelRecord:
        """An OPEN channel with ``payee`` that can carry ``amount`` from this node."""
        for record in self.store.channels_with(payee):
            if record.status != ChannelStatus.OPEN or record.theirs != payee:
                continue
            latest = self.latest(record)
            if (latest.balance_a if record.we_are_a else latest.balance_b) >= amount:
                return record
        raise FailedPrecondition(f"no open channel with 0x{payee.hex()} carries {amount} wei from this node",
                                 reason="NO_ROUTE")

    # --- closing ----------------------------------------------------------------------------------

    async def close(self, record: ChannelRecord, force: bool, stale_sequence: int | None = None
                    ) -> tuple[ChannelRecord, bytes]:
        adjudicator = self._l1()
        if record.status in (ChannelStatus.CLOSED, ChannelStatus.FAILED):
            raise FailedPrecondition(f"channel 0x{record.channel_id.hex()} is {record.status.name}",
                                     reason="CHANNEL_NOT_OPEN")
        async with self.lock(record.channel_id):
            if stale_sequence is not None and not force:
                raise InvalidArgument("stale_sequence is a forced close's", reason="STALE_SEQUENCE_NEEDS_FORCE")
            if force:
                latest = self.latest(record)
                if stale_sequence is not None:  # a fire drill: the close a cheater would send
                    older = self.store.state(record.channel_id, stale_sequence)
                    if older is None or not older.cosigned or older.sequence >= latest.sequence:
                        raise FailedPrecondition(f"no co-signed state older than the latest at sequence "
                                                 f"{stale_sequence}", reason="NO_SUCH_STATE")
                    latest = older
                tx = await adjudicator.close_unilateral(latest)
                on_chain = await adjudicator.on_chain(record.channel_id)
                reason = _DRILL if stale_sequence is not None else record.reason
                record = self.store.update_channel(replace(record, status=ChannelStatus.DISPUTED, close_tx=tx,
                                                           closes_at=on_chain.ends_at, reason=reason),
                                                   "CHANNEL_DISPUTED")
                self._wake.set()
                return record, tx
            if record.status == ChannelStatus.OPEN:
                await self.flush(record)
                latest = self.latest(record)
                if latest.htlcs:
                    raise FailedPrecondition(f"{len(latest.htlcs)} HTLCs are in flight: close once they resolve, "
                                             "or force the close", reason="HTLCS_PENDING")

                def make_final(record: ChannelRecord, latest: StateRecord, sequence: int) -> Built:
                    state = StateRecord(record.channel_id, FINAL_SEQUENCE, latest.balance_a, latest.balance_b)
                    return Built(state, Proposal(final=True))

                await self.updates.propose_now(record, make_final)
            else:
                with contextlib.suppress(Unavailable):
                    await self.flush(record)  # a final state not yet answered
            final = self.latest(record)
            tx = await adjudicator.close_cooperative(final)
            record = self.store.update_channel(replace(self.channel(record.channel_id), status=ChannelStatus.CLOSED,
                                                       close_tx=tx), "CHANNEL_CLOSED")
            return record, tx

    # --- the loops --------------------------------------------------------------------------------

    async def _resume(self) -> None:
        """Every channel's pending state (signed, unanswered) re-sent until answered: those a crash
        left, and those of a peer that stopped answering for a while (its HTLC's payment or forward
        waits on that answer, and the peer refuses its own proposals meanwhile: PEER_PENDING)."""
        while True:
            left = 0
            for record in self.store.channels_in((ChannelStatus.OPEN, ChannelStatus.CLOSING)):
                if self.store.pending(record.channel_id) is None or self.lock(record.channel_id).locked():
                    continue  # (a locked channel's holder re-sends it first)
                try:
                    async with self.lock(record.channel_id):
                        await self.flush(record)
                except (Unavailable, *_TRANSIENT) as exc:
                    left += 1
                    self._log.warning("channel 0x%s: pending state not delivered yet: %s", record.channel_id.hex(),
                                      exc)
                except Exception:
                    self._log.exception("channel 0x%s: pending state refused", record.channel_id.hex())
            await asyncio.sleep(self.settings.poll_interval_s if left else _RESEND_S)

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
        adjudicator, enforcer = self._l1(), self._enforcer
        assert enforcer is not None  # with an adjudicator
        busy = False
        await self.refresh_clock()
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
            elif on_chain.status == L1_OPEN and record.status == ChannelStatus.OPEN:
                busy |= await self._enforce(enforcer.open_channel(record), record)
            elif on_chain.status == L1_CLOSING:
                busy = True
                # Under the channel's lock and read afresh: our own close (a drill's stale one) is
                # recorded under that lock once mined, and must not be taken for the peer's.
                async with self.lock(record.channel_id):
                    record = self.channel(record.channel_id)
                    latest = self.latest(record)
                    stale = latest.sequence > on_chain.closing_sequence and record.reason != _DRILL
                    if stale:
                        await adjudicator.challenge(latest)
                if stale:
                    # The peer closed with an older state: answered with the newest both signed.
                    self._log.warning("channel 0x%s: closed with stale sequence %d, challenged with %d",
                                      record.channel_id.hex(), on_chain.closing_sequence, latest.sequence)
                    continue
                if record.status != ChannelStatus.DISPUTED:
                    record = self.store.update_channel(replace(record, status=ChannelStatus.DISPUTED,
                                                               closes_at=on_chain.ends_at), "CHANNEL_DISPUTED")
                await self._enforce(enforcer.closing_channel(record, on_chain), record)
                # The closer concludes as the period ends; the other side only if it has not a
                # little later: both at once would pay a reverted transaction's gas.
                closer = bool(record.close_tx)
                if await adjudicator.now() >= on_chain.ends_at and (closer or self.l1_now() >= on_chain.ends_at
                                                                     + _CONCLUDE_GRACE_S):
                    closing = self.store.state(record.channel_id, on_chain.closing_sequence) or latest
                    tx = await adjudicator.conclude(closing)
                    self.store.update_channel(replace(record, close_tx=tx))  # CLOSED once its HTLCs are (E4)
            elif on_chain.status == L1_CONCLUDED:
                if await self._enforce(enforcer.concluded_channel(record, on_chain), record, True):
                    busy = True
                else:
                    self.store.update_channel(replace(self.channel(record.channel_id), status=ChannelStatus.CLOSED),
                                              "CHANNEL_CLOSED")
            elif on_chain.status == L1_CANCELLED:
                self.store.update_channel(replace(record, status=ChannelStatus.CLOSED), "CHANNEL_CLOSED")
        return busy

    async def _enforce(self, step: Coroutine[Any, Any, bool], record: ChannelRecord, failed: bool = False) -> bool:
        """One channel's enforcement step (_enforce.py), its failure logged, not the round's end;
        ``failed``: what to answer if it failed (True: look again soon)."""
        try:
            return await step
        except (FailedPrecondition, Unavailable, *_TRANSIENT) as exc:
            self._log.warning("channel 0x%s: enforcing its HTLCs on L1: %s", record.channel_id.hex(), exc)
            return failed

    def wake(self) -> None:
        self._wake.set()


#: L1 seconds the side that did not close waits past the period before it concludes in the closer's stead.
_CONCLUDE_GRACE_S: Final = 10

#: A channel this node closed with a stale state on purpose (a fire drill): it does not answer its
#: own close, so the peer's node or its watchtower must.
_DRILL: Final = "a fire drill: closed with a stale state on purpose; the peer or its tower answers"

#: The graph's domain of a worker without L1 (it routes nothing).
_NO_DOMAIN: Final = Domain(1, bytes(20))



