"""**The one way a channel's state changes**: updates proposed, counter-signed and stored, both
sides of it, one at a time or many per round trip.

An update, as the proposer P and the receiver R run it (channels.proto: PeerService.ProposeBatch):

1. P builds state n+1 on the latest state both signed (n), signs it and stores it (durable)
   BEFORE its signature leaves the process; the UNIQUE (channel, sequence) row means P can never
   sign another state at n+1 (a refused one stays, its sequence taken).
2. R checks the message's sender, the state's signature, protocol's rules (``check_proposal``:
   C1-C10 and P0-P6) and what the update means to it (a payment's amount and invoice; an HTLC's
   terms, ``_payments``), never at a sequence it signed before; counter-signs, stores the
   co-signed state (durable), answers.
3. P checks the counter-signature and stores it with what the update means to P: both hold n+1.

U1 Many direct payments on one channel go in one round trip and one state: the payments waiting
   for the channel make one TRANSFER (P1: one change, their sum) whose proposal lists each
   payment (``parts``: its amount and invoice); one signature and one commit per side for all of
   them, and the answer carries each invoice's preimage. R checks every part (the amounts add up,
   each invoice open and paid whole); if it refuses, the payments are tried again by halves (each
   half a state, halved again while refused), so one bad invoice fails alone, in some 2 log2(n)
   round trips, not n. A payment is acknowledged only after both commits, as before. Payments
   that arrive together (PayStream's ``payments``) are queued at once, one waiter for all of them
   (``pay_many``). Updates of other kinds (HTLCs) waiting on a channel go in one round trip as one
   chain (U5).
U2 A crash anywhere leaves P with its own signed states and maybe R's: P re-sends the very same
   states in order (at restart, before any new update: ``flush``, and every second until R
   answers: the resume task), and R answers a state it already holds with the same signature.
   Only an explicit refusal releases P's sequence, never a timeout (R may have accepted).
U3 Both sides may propose at once (payments one way, settles the other). When R holds
   unanswered updates of its own and P's proposal builds on the latest state both hold, the side
   that did not propose that latest state has the turn (the funding state counts as A's; a node
   knows which states it proposed): if that is P, R abandons its own unanswered updates (P, having
   built on the latest state, cannot have accepted them) and takes P's, re-proposing its own
   after; otherwise R refuses (PEER_PENDING: P may yet accept R's). Turns alternate, so neither
   side starves. A proposal at or below R's highest signed sequence is refused
   (SEQUENCE_CONFLICT) with that sequence (R never signs two states at one sequence, even one it
   gave up). So the side with the turn proposes one sequence higher (the latest's + 2) when the
   peer's last message said it has updates waiting (``waiting``, U6): when both propose at once,
   its proposal is above the other's, and the other, giving up its own, takes it; the side without
   the turn, refused (PEER_PENDING), waits for that update to land (U6's wait). (Sequences only
   have to increase, C2; an idle peer's channel keeps them consecutive.)
   A SEQUENCE_CONFLICT (the sides disagreed on the latest state) goes again at once above it, a
   second one after a random pause growing with the tries.
U4 A retried payment pays once: an invoice's by its payment hash, an address payment by the
   client's request_id, kept with the state that made it. One invoice or request_id goes in one
   payment of a round trip at most (a second waits for the next, and is answered with the first's
   state).
U5 A chain: the HTLC changes waiting on a channel (adds, settles, fails) go in one round trip as
   one update (protocol's P7): each change judged on the ones before it by protocol's ``Chain``
   (the rules that would judge it alone, O(1) each), and one state, the one they make, signed.
   The changes travel as proposals of their own before the signed one (``change`` only: no state,
   no signature), the signed one carrying its own change and the state. R judges each change and
   what it means to it (``_payments``), checks the state is what they make, signs it, and stores
   it with every change's meaning in one commit (a savepoint: a refused change undoes the chain's
   writes). A refused change refuses the chain: the changes before it answer CHAIN_REFUSED, those
   after PREVIOUS_REFUSED (both built again), the change itself its reason (it alone fails). P
   keeps the changes with its signed state (``steps``) and re-sends them with it (U2). A state
   costs O(HTLCs in flight) to build, hash, sign, send, check and store; a chain of k changes pays
   that once, where k states would pay it k times. Lightning batches update_add/fulfill/fail
   messages under one commitment_signed the same way.
U6 Turns are taken, not raced for: R answers with ``waiting`` when it has updates of its own
   waiting on the channel (or about to: a payee's settles of the HTLCs it just accepted), and P
   then lets R go first: before its next round trip on the channel,
   P waits until an update of R's lands (the latest co-signed state moves), at most twice the
   channel's recent round trip (YIELD_ROUND_TRIPS; R's update takes one, and a loaded machine
   makes every one slower). Both
   sides busy (adds one way, settles the other, as every hop of a routed payment has) then
   alternate, each round trip carrying all that waited meanwhile, where proposing at once had one
   of every two round trips refused (U3) and its whole chain built, signed, stored and sent for
   nothing. A peer that says ``waiting`` and proposes nothing delays only its own channel, by two
   round trips a round trip.
U7 One proposer per channel for an HTLC's changes: an HTLC's offerer proposes its settle and fail
   too. Its receiver R, when it settles (it learned the preimage) or fails it, does not propose
   that change but *asks* the offerer P for it (PeerService.RequestChanges: a settle request
   carries the preimage, as Lightning's update_fulfill_htlc reveals it before the commitment; a
   fail request its reason): P checks each request (the HTLC is its own and in flight, else
   UNKNOWN_HTLC; the preimage hashes to it, else BAD_PREIMAGE; a settle or a fail, else
   BAD_REQUEST_KIND) and carries the ones it took in its next chain with its own changes
   (protocol's P8 lets the offerer make them; R counter-signs only a release it wants:
   ``Payments.wants``, its own record of settling or failing that HTLC). Payments one way then
   have one proposer per channel (the payer's side), whose every round trip carries both
   directions' work: no race (U3) and no turn to wait for (U6; R does not say ``waiting`` for
   them), and a route's channels work at once instead of as one wave. R never depends on P: a
   request P refuses or cannot be sent (P away, an older node: UNIMPLEMENTED) is proposed by R
   at once, and one P took but did not propose within REQUEST_BOUND_S (_payments) is proposed
   by R then (U3 settles a race; the HTLC expires minutes later). Requests are unsigned changes,
   not states: nothing durable is made of one, and a crash of either side loses only the request
   (R's forward, durable, asks again or proposes; the preimage it revealed is P's proof of
   payment, and R's claim holds on L1 with it until the expiry).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import itertools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final, TypeVar

import grpc

from protocol import FINAL_SEQUENCE, Chain, Change, ChannelRefused, Update, UpdateKind, check_proposal, describe_update
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.runtime import DomainError, FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable

from . import _metrics as metrics
from ._peer import require_sender, seal
from ._proposal import Ask, Built, Make, MakeStep, Proposal, Refused, Step
from ._records import ChannelRecord, ChannelStatus, InvoiceStatus, StateRecord
from ._rules import Rules
from ._store import ChannelsStore, Meaning, SequenceTaken
from ._wire import hex0x, parse_hex, state_of_pb

if TYPE_CHECKING:
    from ._channels import Channels

T = TypeVar("T")

#: A proposal refused for a racing one is tried again this many times, above the peer's sequence
#: (propose_now, on its own) ...
RACE_RETRIES: Final = 12
#: ... and a queued one for this long: the turns alternate (U3), so a busy channel's waiting
#: updates go through every other round trip, whatever their number.
RACE_BUDGET_S: Final = 30.0
#: The refusals after which a proposal is built again on what both hold (U1, U3; STALE_SEQUENCE:
#: one this node gave up for the peer's, U3, reaching the peer after the peer's landed).
AGAIN: Final = ("SEQUENCE_CONFLICT", "STALE_SEQUENCE", "PEER_PENDING", "PREVIOUS_REFUSED", "CHAIN_REFUSED")
#: How long a proposer lets the peer go first when it said it has updates waiting (U6), in the
#: channel's recent round trips (a moving average), and the bounds of that wait in seconds; past
#: it, the proposer goes anyway (and U3 settles a race).
YIELD_ROUND_TRIPS: Final = 2.0
YIELD_BOUNDS_S: Final = (0.005, 1.0)
#: How long the proposer lets the requests it took (U7) wait for a change of its own to ride with:
#: this many of the channel's recent round trips, within these bounds in seconds. A change of this
#: node's coming meanwhile (the payer's next payment, the hop's next forward) goes in the same
#: chain, whose round trip carries both; a chain of the requests alone would hold the channel for a
#: round trip of its own, the next change waiting behind it. Two: a hop's next forward, one payment
#: in flight, comes some two round trips of its outgoing channel after the payee's request (the
#: answer upstream, the payer's next payment, its HTLC offered to the hop); at one, its settles
#: went alone, a round trip more a payment on that channel.
REQUEST_LINGER_ROUND_TRIPS: Final = 2.0
REQUEST_LINGER_S: Final = (0.001, 0.02)
#: The most payments in one round trip (U1), and the most steps in one chain (U5).
MAX_BATCH: Final = 256
#: The groups a refused state's payments are tried again in (U1).
_GROUPS: Final = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one proposal: accepted (the co-signed state, a preimage) or refused."""

    state: StateRecord
    accepted: bool
    #: The preimage of each payment part's invoice (b"" for a part without one).
    preimages: tuple[bytes, ...] = ()
    reason: str = ""
    message: str = ""

    @property
    def preimage(self) -> bytes:
        return self.preimages[0] if self.preimages else b""


def _try_again(item: _Transfer | _Update) -> bool:
    """A waiting update refused for a race (AGAIN): True to propose it again, within
    RACE_BUDGET_S of its first try; past it, it fails (SEQUENCE_CONFLICT, UNAVAILABLE)."""
    if asyncio.get_running_loop().time() - item.since < RACE_BUDGET_S:
        item.tries += 1
        return True
    item.settle(Unavailable("the peer kept proposing at the same sequences: try again", reason="SEQUENCE_CONFLICT",
                            retry_delay_s=0.1))
    return False


def _settle(future: asyncio.Future[tuple[StateRecord, bytes]], result: tuple[StateRecord, bytes] | BaseException
            ) -> None:
    if future.done():
        return  # its caller gave up (cancelled): the update stands, no one waits for it
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


@dataclass(eq=False)
class _Transfer:
    """A direct payment waiting for its channel's next round trip."""

    amount: int
    payment_hash: bytes
    request_key: str
    future: asyncio.Future[tuple[StateRecord, bytes]]
    tries: int = 0
    #: When it was first queued (the event loop's clock): RACE_BUDGET_S runs from here.
    since: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    #: Sent only with the payments of its group (0: with any): a refused state of several payments is
    #: tried again in halves, each a group, until the refused ones are alone (U1).
    group: int = 0

    def settle(self, result: tuple[StateRecord, bytes] | BaseException) -> None:
        _settle(self.future, result)


@dataclass(eq=False)
class _Update:
    """An update (an HTLC's) waiting for its channel's next round trip."""

    make: MakeStep
    future: asyncio.Future[tuple[StateRecord, bytes]]
    tries: int = 0
    #: When it was first queued (the event loop's clock): RACE_BUDGET_S runs from here.
    since: float = field(default_factory=lambda: asyncio.get_running_loop().time())

    def settle(self, result: tuple[StateRecord, bytes] | BaseException) -> None:
        _settle(self.future, result)


@dataclass(eq=False)
class _Request:
    """A release (U7) waiting to be asked of the HTLC's offerer: True once it took it."""

    request: pb.HtlcRequest
    future: asyncio.Future[bool]


class _RequestGone(Exception):
    """A release the peer asked for whose HTLC is no longer in flight (settled or failed already)."""


@dataclass
class _Queue:
    waiting: collections.deque[_Transfer] = field(default_factory=collections.deque)


class Updates:
    """Both sides of the update path for one node's channels."""

    def __init__(self, channels: Channels, store: ChannelsStore, logger: logging.Logger) -> None:
        self._channels = channels
        self._store = store
        self._log = logger
        self._queues: dict[bytes, _Queue] = {}
        self._proposals: dict[bytes, collections.deque[_Update]] = {}
        #: U6: the channels whose peer said it has updates waiting: the latest sequence then, and
        #: until when this node lets the peer go first.
        self._yields: dict[bytes, tuple[int, float]] = {}
        #: U3: the channels whose peer's last message said it has updates waiting.
        self._peer_busy: set[bytes] = set()
        #: Each channel's recent round trip, in seconds (a moving average of _send's).
        self._round_trips: dict[bytes, float] = {}
        #: U7, the receiver's side: the releases waiting to be asked of the peer, by channel (its
        #: asker task sends them, those waiting in one message); the peers that take no request.
        self._requests: dict[bytes, collections.deque[_Request]] = {}
        self._no_requests: set[str] = set()
        #: U7, the proposer's side: the releases the peer asked for and this node took, by channel:
        #: (kind, payment hash), until proposed (or gone); and the tasks proposing them.
        self._taken: dict[bytes, set[tuple[UpdateKind, bytes]]] = {}
        #: Each channel's drainer task while changes or requests wait (``_drain_soon``, ``_ask_soon``).
        self._drainers: dict[bytes, asyncio.Task[None]] = {}
        self._askers: dict[bytes, asyncio.Task[None]] = {}

    # --- the proposer -----------------------------------------------------------------------------

    async def pay(self, record: ChannelRecord, amount: int, payment_hash: bytes = b"", request_key: str = ""
                  ) -> tuple[StateRecord, bytes]:
        """Pay ``amount`` to the channel's peer (its invoice ``payment_hash``, or b""): the co-signed
        new state and the invoice's preimage (b""). Waits for the channel's next round trip (U1);
        pays once on a retry (U4)."""
        (outcome,) = await self.pay_many(record, ((amount, payment_hash, request_key),))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def pay_many(self, record: ChannelRecord, payments: Sequence[tuple[int, bytes, str]]
                       ) -> list[tuple[StateRecord, bytes] | BaseException]:
        """Several payments to the channel's peer, each (amount, invoice payment hash or b"", the
        client's request_id or ""), queued on the channel at once: each one's outcome, in order, as
        ``pay`` would return or raise it. One waiter for all of them (the round trips carry them
        with whatever else waits on the channel, U1); each pays once on a retry (U4). If the caller
        is cancelled, those of its payments not yet sent are dropped (never sent)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        items: list[_Transfer] = []
        outcomes: list[tuple[StateRecord, bytes] | BaseException | None] = []
        for amount, payment_hash, request_key in payments:
            if amount <= 0:
                outcomes.append(InvalidArgument("amount must be > 0", reason="NON_POSITIVE_AMOUNT"))
                continue
            outcomes.append(None)
            items.append(_Transfer(amount, payment_hash, request_key, loop.create_future(), since=now))
        cid = record.channel_id
        queue = self._queues.setdefault(cid, _Queue())
        queue.waiting.extend(items)
        done = 0  # items[:done] are settled (the queue is FIFO: most settle in order)
        try:
            while done < len(items):
                if items[done].future.done():
                    done += 1
                    continue
                # Whoever holds the channel's lock sends everything waiting: the lock is the turn (FIFO).
                async with self._channels.lock(cid):
                    if not items[done].future.done():
                        await self._drain(cid, queue)
        except BaseException:
            for item in items:  # not sent yet: dropped (_take skips a done future); sent: answered to no one
                if not item.future.cancel() and not item.future.cancelled():
                    item.future.exception()  # settled already: read, so asyncio does not log it as lost
            raise
        found = iter(items)
        for i, outcome in enumerate(outcomes):
            if outcome is None:
                future = next(found).future
                error = future.exception()
                outcomes[i] = error if error is not None else future.result()
        return [o for o in outcomes if o is not None]

    async def _drain(self, cid: bytes, queue: _Queue) -> None:
        """One round trip of the payments waiting on the channel (the caller holds its lock)."""
        waiting = queue.waiting
        try:
            flushed = await self.flush(self._channels.channel(cid))
        except Exception as exc:  # the pending states are not answered: nothing new can follow them
            while waiting:
                waiting.popleft().settle(exc)
            return
        if flushed and waiting:  # U4: a retried payment delivered by the flush is answered with it
            by_hash = {i.payment_hash: i for i in waiting if i.payment_hash}
            by_key = {i.request_key: i for i in waiting if i.request_key}
            for outcome in flushed:
                parts = self._store.parts_of(cid, outcome.state.sequence)
                for n, (_, payment_hash, request_key) in enumerate(parts):
                    item = by_hash.pop(payment_hash, None) if payment_hash else None
                    if item is None and request_key:
                        item = by_key.pop(request_key, None)
                    if item is not None:
                        item.settle((outcome.state, outcome.preimages[n] if n < len(outcome.preimages) else b""))
            kept = [i for i in waiting if not i.future.done()]
            waiting.clear()
            waiting.extend(kept)
        record = self._channels.channel(cid)
        if record.status != ChannelStatus.OPEN:
            refusal = FailedPrecondition(f"channel 0x{cid.hex()} is {record.status.name}, not OPEN",
                                         reason="CHANNEL_NOT_OPEN")
            while waiting:
                waiting.popleft().settle(refusal)
            return
        record = await self._let_peer_go(record)
        taken, state = self._take(record, waiting)
        if state is None:
            return
        rules = self._channels.rules_of()
        signed = state.signed(record.we_are_a, rules.sign(state))
        proposal = Proposal(amount=sum(i.amount for i in taken), parts=tuple((i.amount, i.payment_hash) for i in taken))
        request = proposal.request(signed, record.we_are_a)
        with self._store.batch():  # durable before the signature leaves
            self._store.put_state(signed, b"", request.SerializeToString(deterministic=True))
            self._store.put_parts(signed, [(i.amount, i.payment_hash, i.request_key) for i in taken])
        try:
            (outcome,) = await self._send(record, [(signed, request)], [proposal])
        except asyncio.CancelledError:  # the sender's caller went away: the state stays pending (U2) ...
            cancelled = Unavailable("the round trip was cancelled: the state stays pending, re-sent as it is",
                                    reason="PEER_UNAVAILABLE", retry_delay_s=0.1)
            for item in taken:  # ... and the others' payments in it are answered (never left waiting)
                item.settle(cancelled)
            raise
        except Exception as exc:  # no answer: the state stays pending, re-sent as it is (U2)
            for item in taken:
                item.settle(exc)
            return
        if outcome.accepted:
            for item, preimage in zip(taken, outcome.preimages, strict=False):
                item.settle((outcome.state, preimage))
            return
        again: list[_Transfer] = []
        if outcome.reason in AGAIN:
            again = [item for item in taken if _try_again(item)]
        elif len(taken) > 1:  # which payments were refused is found by halves, each a state (U1)
            half = len(taken) // 2
            for part in (taken[:half], taken[half:]):
                group = next(_GROUPS)
                for item in part:
                    item.group = group
            again = taken
        else:
            taken[0].settle(FailedPrecondition(f"the peer refused the payment: {outcome.message}",
                                               reason=outcome.reason))
        waiting.extendleft(reversed(again))
        if again and outcome.reason in AGAIN:
            await self._after_race(record, outcome.reason, max(i.tries for i in again))

    def _take(self, record: ChannelRecord, waiting: collections.deque[_Transfer]
              ) -> tuple[list[_Transfer], StateRecord | None]:
        """The next round trip's payments and the one TRANSFER that makes them all (U1): those at
        the head of the queue (one group; one of each invoice and request_id), those paid before
        answered with the state that paid them (U4: one read for all), those the balance cannot
        carry refused."""
        heads: list[_Transfer] = []
        hashes: set[bytes] = set()
        keys: set[str] = set()
        while waiting and len(heads) < MAX_BATCH:
            item = waiting[0]
            if item.future.done():  # its caller went away before it was sent
                waiting.popleft()
                continue
            if heads and item.group != heads[0].group:
                break
            if item.payment_hash in hashes or item.request_key in keys:
                break  # the same invoice or request_id twice in one trip: the second waits for the first (U4)
            heads.append(waiting.popleft())
            if item.payment_hash:
                hashes.add(item.payment_hash)
            if item.request_key:
                keys.add(item.request_key)
        paid = self._store.paid_many(tuple(hashes))  # U4: an invoice paid before (a retry, a restart)
        again = self._store.by_request_keys(tuple(keys))  # U4: the same request_id paid before
        latest = self._channels.latest(record)
        ours = latest.balance_a if record.we_are_a else latest.balance_b
        taken: list[_Transfer] = []
        total = 0
        for item in heads:
            if item.payment_hash in paid:
                item.settle(paid[item.payment_hash])
            elif item.request_key in again:
                item.settle((again[item.request_key], b""))
            elif total + item.amount > ours:
                item.settle(FailedPrecondition(f"this node holds {ours - total} wei in the channel, not {item.amount}",
                                               reason="INSUFFICIENT_BALANCE"))
            else:
                total += item.amount
                taken.append(item)
        if not taken:
            return [], None
        delta = -total if record.we_are_a else total
        return taken, StateRecord(record.channel_id, self._next_sequence(record),
                                  latest.balance_a + delta, latest.balance_b - delta, latest.htlcs)

    async def propose(self, record: ChannelRecord, make: MakeStep) -> tuple[StateRecord, bytes]:
        """One change this node proposes (an HTLC's): waits for the channel's next round trip,
        which carries every change waiting on the channel as one chain (U5): ``make`` builds it on
        the chain so far. Raises on a refusal (FailedPrecondition with its reason) and on no answer
        (Unavailable: the state stays pending, re-sent as it is)."""
        (outcome,) = await self.propose_many(record, [make])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def propose_many(self, record: ChannelRecord, makes: Sequence[MakeStep]
                           ) -> list[tuple[StateRecord, bytes] | BaseException]:
        """Several changes this node proposes, queued at once: each one's outcome, in order, as
        ``propose`` would return or raise it; one waiter for all of them (a forwarding hop's HTLCs
        from one incoming chain go on in one outgoing chain, not a task each). If the caller is
        cancelled, those not yet sent are dropped (never sent)."""
        if not makes:
            return []
        futures = self.enqueue(record, makes)
        try:
            if len(futures) == 1:
                with contextlib.suppress(Exception):
                    await futures[0]
            else:
                await asyncio.wait(futures)
        except BaseException:
            for future in futures:  # not sent yet: dropped (the drainer skips a done future)
                if not future.cancel() and not future.cancelled():
                    future.exception()  # settled already: read, so asyncio does not log it as lost
            raise
        return [future.exception() or future.result() for future in futures]

    def enqueue(self, record: ChannelRecord, makes: Sequence[MakeStep]
                ) -> list[asyncio.Future[tuple[StateRecord, bytes]]]:
        """``propose_many``'s changes queued, without waiting: each one's future, set to its outcome
        as ``propose`` would return or raise it (the payer's call watches many payments' at once). A
        future cancelled before its change is sent drops the change (never sent)."""
        loop = asyncio.get_running_loop()
        items = [_Update(make, loop.create_future()) for make in makes]
        self._proposals.setdefault(record.channel_id, collections.deque()).extend(items)
        self._drain_soon(record.channel_id)
        return [item.future for item in items]

    def _drain_soon(self, cid: bytes) -> None:
        """The channel's one drainer task runs its round trips until no change waits (U5): each
        proposer awaits only its own change's future, not the channel's lock in turn (a lock
        handed from waiter to waiter woke every proposer of a chain once more, to find its change
        done: an event-loop step per HTLC, where the chain is one round trip)."""
        if cid not in self._drainers:
            self._drainers[cid] = asyncio.get_running_loop().create_task(self._drain_all(cid))

    async def _drain_all(self, cid: bytes) -> None:
        queue = self._proposals.setdefault(cid, collections.deque())
        try:
            while any(not item.future.done() for item in queue):
                async with self._channels.lock(cid):
                    await self._drain_updates(cid, queue)
        except BaseException as exc:  # never left waiting: each change still queued learns why
            failed = exc if isinstance(exc, Exception) else Unavailable(
                "the channel's round trips stopped", reason="PEER_UNAVAILABLE", retry_delay_s=0.1)
            while queue:
                queue.popleft().settle(failed)
            raise
        finally:  # no await since the loop's last look at the queue: a change queued after it starts a drainer
            self._drainers.pop(cid, None)

    async def _drain_updates(self, cid: bytes, waiting: collections.deque[_Update]) -> None:
        """One round trip of the updates waiting on the channel (the caller holds its lock)."""
        try:
            await self.flush(self._channels.channel(cid))
            record = self._channels.channel(cid)
            if record.status != ChannelStatus.OPEN:
                raise FailedPrecondition(f"channel 0x{cid.hex()} is {record.status.name}, not OPEN",
                                         reason="CHANNEL_NOT_OPEN")
        except Exception as exc:
            while waiting:
                waiting.popleft().settle(exc)
            return
        record = await self._let_peer_go(record)
        channels, rules = self._channels, self._channels.rules_of()
        taken = self._taken.get(cid, set())
        chain = Chain(rules.state(channels.latest(record)), rules.channel(record), channels.address,
                      now=channels.l1_now(), expiry_delta=rules.expiry_delta_s,
                      wanted=lambda change: (change.kind, change.payment_hash) in taken)  # P8: the ones asked for
        built: list[tuple[_Update, Step]] = []
        while waiting and len(built) < MAX_BATCH:  # U5: one chain of the changes waiting, each judged (P7)
            item = waiting.popleft()
            if item.future.done():
                continue
            try:
                step = item.make(record, chain)
                chain.apply(step.change)
            except ChannelRefused as exc:  # this one cannot be made (no funds, an HTLC gone): it alone fails
                item.settle(FailedPrecondition(exc.message, reason=str(exc.reason)))
                continue
            except Exception as exc:
                item.settle(exc)
                continue
            built.append((item, step))
        if not built:
            return
        sent = [item for item, _ in built]
        try:  # Only the state the chain makes is signed (U5); its steps go before it, kept with it (U2).
            sequence = self._next_sequence(record)
            state = rules.record(chain.state(sequence), sequence)
            signed = state.signed(record.we_are_a, rules.sign(state))
            steps = [step.proposal.request(None, record.we_are_a) for _, step in built[:-1]]
            request = built[-1][1].proposal.request(signed, record.we_are_a)
            self._store.put_state(signed, b"", request.SerializeToString(deterministic=True),
                                  [e for _, step in built for e in step.effects],
                                  pb.ProposeBatchRequest(proposals=steps).SerializeToString(deterministic=True)
                                  if steps else b"")  # durable before the signature leaves
        except Exception as exc:  # not stored, so nothing left: each waiter learns why (none is left waiting)
            for item in sent:
                item.settle(exc)
            return
        try:
            outcomes = await self._send(record, [*((None, r) for r in steps), (signed, request)],
                                        [step.proposal for _, step in built])
        except Exception as exc:  # no answer: the state stays pending, re-sent as it is (U2)
            for item in sent:
                item.settle(exc)
            return
        again: list[_Update] = []
        for item, outcome in zip(sent, outcomes, strict=True):
            if outcome.accepted:
                item.settle((outcome.state, outcome.preimage))
            elif outcome.reason in AGAIN:
                if _try_again(item):
                    again.append(item)
            else:
                item.settle(FailedPrecondition(f"the peer refused the update: {outcome.message}",
                                               reason=outcome.reason))
        if again:
            waiting.extendleft(reversed(again))
            await self._after_race(record, outcomes[-1].reason, max(i.tries for i in again))

    async def _after_race(self, record: ChannelRecord, reason: str, tries: int) -> None:
        """U3, the proposer's side of a round trip refused (``reason``) and tried again: after
        PEER_PENDING the next one lets the peer's update land first (U6); the first
        SEQUENCE_CONFLICT goes again at once; a conflict again waits for the peer's update to land,
        at most a random pause growing with the tries. Other refusals (a change of the chain
        refused for itself) go again at once."""
        if reason == "PEER_PENDING":
            self._yield_to_peer(record)
        elif reason == "SEQUENCE_CONFLICT" and tries > 1:
            await self._peer_lands(record, self._channels.latest(record).sequence,
                                   asyncio.get_running_loop().time() + random.uniform(0.001, 0.01) * min(tries, 5))

    def _yield_to_peer(self, record: ChannelRecord) -> None:
        """U6: this node's next round trip on the channel waits for the peer's update to land
        first, at most YIELD_ROUND_TRIPS of the channel's recent round trips."""
        cid, low, high = record.channel_id, *YIELD_BOUNDS_S
        wait = min(high, max(low, YIELD_ROUND_TRIPS * self._round_trips.get(cid, low)))
        self._yields[cid] = (self._channels.latest(record).sequence, asyncio.get_running_loop().time() + wait)

    async def _let_peer_go(self, record: ChannelRecord) -> ChannelRecord:
        """U6: if the peer said it has updates waiting, wait until one of them lands (or YIELD_S);
        the channel as it is then."""
        turn = self._yields.pop(record.channel_id, None)
        if turn is None:
            return record
        landed = await self._peer_lands(record, *turn)
        metrics.TURN_WAITS.labels("landed" if landed else "timed_out").inc()
        return self._channels.channel(record.channel_id)

    async def _peer_lands(self, record: ChannelRecord, before: int, deadline: float) -> bool:
        """Until the latest co-signed state moves past sequence ``before`` (the peer's update
        landed: True), or the loop's clock reaches ``deadline`` (False)."""
        loop = asyncio.get_running_loop()
        while (left := deadline - loop.time()) > 0:
            changed = self._store.changed()
            if self._channels.latest(record).sequence != before:
                return True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await changed.wait()
        return self._channels.latest(record).sequence != before

    def _next_sequence(self, record: ChannelRecord) -> int:
        """The next sequence above all this node ever signed in the channel (C2; never one twice),
        and above the one after the latest when this node has the turn (U3): of two proposals made
        at once, the one with the turn is then the higher, and the peer, giving up its own for it,
        can take it."""
        highest = self._store.highest_sequence(record.channel_id) + 1
        if record.channel_id not in self._peer_busy:
            return highest
        latest = self._channels.latest(record)
        return highest if self._proposed(record, latest) else max(highest, latest.sequence + 2)

    def _proposed(self, record: ChannelRecord, latest: StateRecord) -> bool:
        """Whether this node proposed ``latest`` (the funding state counts as A's): then the peer
        has the turn (U3)."""
        return bool(self._store.request_of(record.channel_id, latest.sequence)) if latest.sequence \
            else record.we_are_a

    async def propose_now(self, record: ChannelRecord, make: Make) -> tuple[StateRecord, bytes]:
        """One update this node proposes at once (a final state), on its own: ``make`` builds it on the
        latest co-signed state at the next free sequence; signed, stored (durable), sent, its
        counter-signature stored. Tried again above the peer's sequence when both sides raced
        (U3). The caller holds the channel's lock and flushed its pending states. Raises on a
        refusal (FailedPrecondition with its reason) and on no answer (Unavailable: the state
        stays pending, re-sent as it is)."""
        rules = self._channels.rules_of()
        for attempt in range(RACE_RETRIES):
            record = self._channels.channel(record.channel_id)
            if record.status != ChannelStatus.OPEN:
                raise FailedPrecondition(f"channel 0x{record.channel_id.hex()} is {record.status.name}, not OPEN",
                                         reason="CHANNEL_NOT_OPEN")
            built: Built = make(record, self._channels.latest(record),
                                self._next_sequence(record))
            signed = built.state.signed(record.we_are_a, rules.sign(built.state))
            request = built.proposal.request(signed, record.we_are_a)
            self._store.put_state(signed, built.proposal.payment_hash, request.SerializeToString(deterministic=True),
                                  built.effects)  # durable before the signature leaves
            (outcome,) = await self._send(record, [(signed, request)], [built.proposal])
            if outcome.accepted:
                return outcome.state, outcome.preimage
            if outcome.reason not in AGAIN:
                raise FailedPrecondition(f"the peer refused the update: {outcome.message}", reason=outcome.reason)
            await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))  # U3
        raise Unavailable("the peer kept proposing at the same sequences: try again", reason="SEQUENCE_CONFLICT",
                          retry_delay_s=0.1)

    async def flush(self, record: ChannelRecord) -> list[Outcome]:
        """U2: re-send this node's pending states (signed, never answered) as they are, in order,
        each after the steps of its chain (U5); the accepted ones' outcomes (with what they paid)."""
        cid = record.channel_id
        pending = self._store.pendings(cid)
        if not pending:
            return []
        sent: list[tuple[StateRecord | None, pb.ProposeRequest]] = []
        for state in pending:
            steps = self._store.steps_of(cid, state.sequence)
            if steps:
                sent.extend((None, step) for step in pb.ProposeBatchRequest.FromString(steps).proposals)
            sent.append((state, pb.ProposeRequest.FromString(self._store.request_of(cid, state.sequence))))
        return [o for o in await self._send(record, sent) if o.accepted]

    async def _send(self, record: ChannelRecord, sent: Sequence[tuple[StateRecord | None, pb.ProposeRequest]],
                    built: Sequence[Proposal] = ()) -> list[Outcome]:
        """Send this node's proposals in one round trip: signed states, a chain's after its steps
        (their state None, U5); store each answer with what the update means to this node (its
        payment, forward, close), in one commit. One outcome per proposal: a step's is its chain's.
        ``built``: each request's Proposal as this node built it (else parsed from the request: a
        re-sent state's, U2)."""
        channels, rules = self._channels, self._channels.rules_of()
        batch = seal(rules, pb.ProposeBatchRequest(channel_id=hex0x(record.channel_id),
                                                   proposals=[request for _, request in sent],
                                                   waiting=self._waiting(record.channel_id)))
        base = channels.latest(record)  # what the first was built on (the latest may move while we wait)
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await channels.ask(channels.peer(record.peer).propose_batch(batch))
        cid = record.channel_id
        took = loop.time() - started
        self._round_trips[cid] = 0.8 * self._round_trips.get(cid, took) + 0.2 * took
        require_sender(answer, record.theirs, "the peer's answer")
        outcomes: list[Outcome] = []
        forged: PermissionDenied | None = None
        chain: list[tuple[pb.ProposeRequest, pb.ProposeResponse]] = []
        with self._store.batch():
            prev = base
            for i, (state, request) in enumerate(sent):
                response = answer.responses[i] if i < len(answer.responses) else \
                    pb.ProposeResponse(accepted=False, reason="PREVIOUS_REFUSED", message="not answered")
                chain.append((request, response))
                if state is None:
                    continue  # a step: judged with the signed state that ends its chain (U5)
                proposals = list(built[i + 1 - len(chain):i + 1]) if built else [Proposal.of(r) for r, _ in chain]
                updates = self._replayed(record, prev, proposals) if request.HasField("change") else \
                    [describe_update(rules.state(prev), rules.state(state))]
                if forged is None and response.accepted:
                    forged = self._forged(record, state, response, proposals[-1])
                if forged is not None or not response.accepted:
                    self._store.refuse(state.channel_id, state.sequence)
                    for update, proposal, (_, step_response) in zip(updates, proposals, chain, strict=True):
                        reason = "BAD_STATE_SIGNATURE" if forged is not None else \
                            step_response.reason if not step_response.accepted else "CHAIN_REFUSED"
                        if update.kind is UpdateKind.ADD_HTLC and reason not in AGAIN:  # its waiter learns: never went
                            channels.payments.refused(record, update, proposal, reason, step_response.message)
                        outcomes.append(Outcome(state, False, reason=reason, message=step_response.message))
                    prev = state  # the next one was built on this one (and is refused with it)
                else:
                    preimages = _preimages(response)
                    cosigned = state.signed(not record.we_are_a, response.signature)
                    self._record_sent(record, updates, cosigned, proposals, preimages)
                    outcomes.extend([Outcome(cosigned, True, preimages)] * len(updates))  # frozen: one for the chain
                    prev = cosigned
                chain = []
        if forged is not None:
            raise forged
        if outcomes:
            metrics.ROUND_TRIPS.labels("accepted" if outcomes[-1].accepted else outcomes[-1].reason).inc()
        self._heard(cid, answer.waiting)
        if answer.waiting:  # U6: its turn next
            self._yield_to_peer(record)
        return outcomes

    def _replayed(self, record: ChannelRecord, prev: StateRecord, proposals: Sequence[Proposal]) -> list[Update]:
        """What each change of this node's chain on ``prev`` did (it was judged when built: P7)."""
        rules = self._channels.rules_of()
        chain = Chain(rules.state(prev), rules.channel(record), self._channels.address, now=0, expiry_delta=0,
                      trusted=True)
        return [chain.apply(p.change) for p in proposals if p.change is not None]

    def _forged(self, record: ChannelRecord, state: StateRecord, response: pb.ProposeResponse, proposal: Proposal
                ) -> PermissionDenied | None:
        """Why an accepting answer is not a valid one (a counter-signature or preimage that is not
        the peer's), or None."""
        if self._channels.rules_of().signer_of(state, response.signature) != record.theirs:
            return PermissionDenied("the peer's counter-signature is not its own", reason="BAD_STATE_SIGNATURE")
        if not proposal.parts and not proposal.payment_hash:
            return None
        preimages = _preimages(response)
        hashes = [h for _, h in proposal.payments]
        if len(preimages) < len(hashes) or any(h and hashlib.sha256(p).digest() != h
                                                 for h, p in zip(hashes, preimages, strict=False)):
            return PermissionDenied("the peer's preimages do not hash to the invoices' payment hashes",
                                    reason="BAD_PREIMAGE")
        return None

    def _record_sent(self, record: ChannelRecord, updates: Sequence[Update], cosigned: StateRecord,
                     proposals: Sequence[Proposal], preimages: tuple[bytes, ...]) -> None:
        """What this node's ``updates`` (a state of its own, or a chain's changes) mean to it,
        stored with ``cosigned``, the state they made."""
        store, payments = self._store, self._channels.payments
        if updates[0].kind is UpdateKind.TRANSFER:
            store.record_sent(cosigned, proposals[0].payments, preimages)
        elif updates[0].kind is UpdateKind.FINAL:
            store.put_state(cosigned)
            store.update_channel(replace(self._channels.channel(record.channel_id), status=ChannelStatus.CLOSING),
                                 "CHANNEL_CLOSING")
        else:
            meanings = []
            for update, proposal in zip(updates, proposals, strict=True):
                assert update.htlc is not None
                effects, event = payments.proposed(record, update, proposal)
                meanings.append(Meaning(event, update.htlc.payment_hash, update.amount, effects))
            store.record_chain(cosigned, meanings)
            payments.wake()

    # --- U7: releases asked of the HTLC's offerer ---------------------------------------------------

    async def request(self, record: ChannelRecord, asks: Sequence[Ask]) -> list[bool]:
        """U7: ask the peer, the offerer of this node's incoming HTLCs, to settle (with the
        preimage) or fail (with why) each in its next chain: True for each it took; False for each
        it refused, or if it takes none or cannot be reached (this node then proposes it). The
        requests waiting on the channel go in one message; one waiter for all of ``asks``."""
        if not asks or record.peer in self._no_requests:
            return [False] * len(asks)
        cid = record.channel_id
        loop = asyncio.get_running_loop()
        items = [_Request(ask.request(), loop.create_future()) for ask in asks]
        self._requests.setdefault(cid, collections.deque()).extend(items)
        if cid not in self._askers:  # one task sends every request waiting, a message at a time
            self._askers[cid] = loop.create_task(self._ask_all(cid))
        futures = [item.future for item in items]
        if len(futures) == 1:
            with contextlib.suppress(Exception):
                await futures[0]
        else:
            await asyncio.wait(futures)
        # Unanswered (PEER_UNAVAILABLE) or a forged answer (PERMISSION_DENIED): not taken.
        return [not future.cancelled() and future.exception() is None and future.result() for future in futures]

    async def _ask_all(self, cid: bytes) -> None:
        """The channel's requests, a message at a time, until none waits (as ``_drain_all``)."""
        queue = self._requests.setdefault(cid, collections.deque())
        try:
            while queue:
                await self._send_requests(self._channels.channel(cid), queue)
        except BaseException as exc:  # never left waiting: each request still queued is unanswered
            unanswered = Unavailable(f"the requests were not sent: {type(exc).__name__}", reason="PEER_UNAVAILABLE",
                                     retry_delay_s=1.0)
            while queue:
                future = queue.popleft().future
                if not future.done():
                    future.set_exception(unanswered)
                    future.exception()  # read: a waiter gone away is not logged as lost
            raise
        finally:  # no await since the last look at the queue
            self._askers.pop(cid, None)

    async def _send_requests(self, record: ChannelRecord, queue: collections.deque[_Request]) -> None:
        """One message of the requests waiting (sent by the channel's asker task): each one's
        future set, taken or not, or to the error that left it unanswered."""
        items = [queue.popleft() for _ in range(min(len(queue), MAX_BATCH))]
        if not items:
            return
        try:  # whatever raises, each waiter's future is set (its asker task is not awaited by it)
            try:
                batch = seal(self._channels.rules_of(), pb.RequestChangesRequest(
                    channel_id=hex0x(record.channel_id), requests=[item.request for item in items]))
                answer = await self._channels.peer(record.peer).request_changes(batch)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._no_requests.add(record.peer)  # an older node: this node proposes its releases
                metrics.REQUESTS.labels("unsupported").inc(len(items))
                answer = pb.RequestChangesResponse()
            else:
                require_sender(answer, record.theirs, "the peer's answer to the requests")
        except BaseException as exc:  # unanswered (cancelled too): each waiter proposes its own (U7)
            unanswered = exc if isinstance(exc, PermissionDenied) else Unavailable(
                f"the peer did not answer the requests: {type(exc).__name__}", reason="PEER_UNAVAILABLE",
                retry_delay_s=1.0)
            metrics.REQUESTS.labels("unanswered").inc(len(items))
            for item in items:
                if not item.future.done():
                    item.future.set_exception(unanswered)
                    item.future.exception()  # read: a waiter gone away is not logged as lost
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        taken_n = 0
        for i, item in enumerate(items):
            taken = i < len(answer.answers) and answer.answers[i].accepted
            taken_n += taken
            if not taken and i < len(answer.answers):
                self._log.info("the peer refused a request (%s): %s", answer.answers[i].reason,
                               answer.answers[i].message)
            if not item.future.done():
                item.future.set_result(taken)
        if answer.answers:  # counted once a message, not a label lookup a request
            metrics.REQUESTS.labels("taken").inc(taken_n)
            metrics.REQUESTS.labels("refused").inc(len(items) - taken_n)

    def on_request_changes(self, request: pb.RequestChangesRequest) -> pb.RequestChangesResponse:
        """U7, the offerer's side: each request checked and, if taken, queued for this node's next
        chain on the channel (the channel's drainer proposes them after REQUEST_LINGER_S, with
        whatever else waits there)."""
        record = self._channels.channel(parse_hex(request.channel_id, 32, "channel_id"))
        require_sender(request, record.theirs, "the requests")
        if len(request.requests) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} requests in a message", reason="BATCH_TOO_LARGE")
        cid = record.channel_id
        ours = {h[2] for h in self._channels.latest(record).htlcs if h[0] == record.we_are_a}
        pending: set[bytes] | None = None  # the HTLCs of states not yet answered, read only if needed
        taken = self._taken.setdefault(cid, set())
        answers: list[pb.RequestAnswer] = []
        items: list[_Update] = []
        learned: dict[bytes, bytes] = {}  # payment hash: preimage, of the settles asked for
        for wanted in request.requests:
            try:
                key, make = self._requested(record, wanted)
            except DomainError as exc:
                answers.append(pb.RequestAnswer(accepted=False, reason=exc.reason, message=exc.message))
                continue
            if key[1] not in ours:
                if pending is None:
                    pending = {h[2] for state in self._store.pendings(cid) for h in state.htlcs
                               if h[0] == record.we_are_a}
                if key[1] not in pending:
                    answers.append(pb.RequestAnswer(accepted=False, reason="UNKNOWN_HTLC", message=(
                        f"no HTLC of this node with payment hash 0x{key[1].hex()} is in flight in channel "
                        f"0x{cid.hex()} (settled, failed, or never offered)")))
                    continue
            answers.append(pb.RequestAnswer(accepted=True))
            if key[0] is UpdateKind.SETTLE_HTLC:
                learned[key[1]] = bytes.fromhex(wanted.preimage.removeprefix("0x"))
            if key in taken:
                continue  # asked again (the peer's resolver looked again): queued once
            taken.add(key)
            item = _Update(make, asyncio.get_running_loop().create_future())
            item.future.add_done_callback(functools.partial(self._proposed_request, taken, key))
            items.append(item)
        if learned:  # the preimages, settled upstream now: the settle lands in the next chain (U7)
            payments = self._channels.payments
            meanings = [Meaning("PREIMAGE_RECEIVED", payment_hash, 0, effects)
                        for payment_hash, preimage in learned.items()
                        if (effects := payments.preimage_learned(record, payment_hash, preimage))]
            if meanings:
                self._store.apply_meanings(cid, meanings)
                # What learned it sends it on next (a hop upstream, the payer its user's answer),
                # each once it is durable: its fsync starts now, not when that message asks.
                self._store.sync_soon()
            payments.wake()
        if items:
            self._proposals.setdefault(cid, collections.deque()).extend(items)
            low, high = REQUEST_LINGER_S  # U7: the requests linger (``_drain_soon`` then): see REQUEST_LINGER_S
            linger = REQUEST_LINGER_ROUND_TRIPS * self._round_trips.get(cid, low)
            asyncio.get_running_loop().call_later(min(high, max(low, linger)), self._drain_soon, cid)
        return seal(self._channels.rules_of(), pb.RequestChangesResponse(answers=answers))

    def _requested(self, record: ChannelRecord, request: pb.HtlcRequest
                   ) -> tuple[tuple[UpdateKind, bytes], MakeStep]:
        """A request's key (kind, payment hash) and the step that makes it; DomainError (with the
        reason) if it is malformed or is not what it claims."""
        if record.status != ChannelStatus.OPEN:
            raise FailedPrecondition(f"the channel is {record.status.name}", reason="CHANNEL_NOT_OPEN")
        payment_hash = parse_hex(request.payment_hash, 32, "payment_hash")
        ours = record.we_are_a
        if request.kind == pb.HTLC_CHANGE_KIND_SETTLE:
            preimage = parse_hex(request.preimage, 32, "preimage") if request.preimage else b""
            if hashlib.sha256(preimage).digest() != payment_hash:
                raise InvalidArgument(f"the preimage does not hash to 0x{payment_hash.hex()}", reason="BAD_PREIMAGE")
            step = Step(Proposal(preimage=preimage, change=Change.settle(ours, preimage)))
            kind = UpdateKind.SETTLE_HTLC
        elif request.kind == pb.HTLC_CHANGE_KIND_FAIL:
            fail_channel = parse_hex(request.fail_channel_id, 32, "fail_channel_id") if request.fail_channel_id \
                else b""
            step = Step(Proposal(fail_reason=request.fail_reason[:64] or "HTLC_FAILED",
                                 fail_message=request.fail_message[:512], fail_channel=fail_channel,
                                 change=Change.fail(ours, payment_hash)))
            kind = UpdateKind.FAIL_HTLC
        else:
            raise InvalidArgument("a request settles or fails an HTLC", reason="BAD_REQUEST_KIND")

        def make(record: ChannelRecord, chain: Chain) -> Step:
            if chain.holds(ours, payment_hash) is None:
                raise _RequestGone()
            return step

        return (kind, payment_hash), make

    @staticmethod
    def _proposed_request(taken: set[tuple[UpdateKind, bytes]], key: tuple[UpdateKind, bytes],
                          future: asyncio.Future[tuple[StateRecord, bytes]]) -> None:
        """A request proposed (or not: gone, refused, no answer; the peer then proposes it itself)."""
        taken.discard(key)
        if not future.cancelled():
            future.exception()  # read: no one else waits for it

    # --- the receiver -----------------------------------------------------------------------------

    def on_propose(self, request: pb.ProposeRequest) -> pb.ProposeResponse:
        """One proposal (a chain of one change, or a state of its own), its sender checked;
        answered after it is stored."""
        state = state_of_pb(request.state)
        record = self._channels.channel(state.channel_id)
        require_sender(request, record.theirs, "the proposal")
        answers = self._answer_chain(record, [request], state) if request.HasField("change") else \
            [self._answer(record, state, request)]
        return seal(self._channels.rules_of(), answers[-1])

    def on_propose_batch(self, request: pb.ProposeBatchRequest) -> pb.ProposeBatchResponse:
        """U1, U5: proposals in order, each signed one ending the chain of steps before it; one
        commit for all of them before the answer. Synchronous (no await): checked and stored in one
        step of the event loop."""
        record = self._channels.channel(parse_hex(request.channel_id, 32, "channel_id"))
        require_sender(request, record.theirs, "the proposals")
        self._heard(record.channel_id, request.waiting)
        if len(request.proposals) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} proposals in a batch", reason="BATCH_TOO_LARGE")
        responses: list[pb.ProposeResponse] = []
        chain: list[pb.ProposeRequest] = []
        with self._store.batch():
            for proposal in request.proposals:
                chain.append(proposal)
                if not proposal.signature:
                    continue  # a step of the chain the next signed proposal ends (U5)
                state = state_of_pb(proposal.state)
                if state.channel_id != record.channel_id:
                    raise InvalidArgument("every proposal of a batch is of its channel", reason="CHANNEL_MISMATCH")
                if responses and not responses[-1].accepted:
                    responses.extend(self._refusal(record, "PREVIOUS_REFUSED", "an earlier proposal of the batch "
                                                   "was refused") for _ in chain)
                elif proposal.HasField("change"):
                    responses.extend(self._answer_chain(record, chain, state))
                elif len(chain) > 1:
                    responses.extend(self._refusal(record, "CHAIN_MISMATCH", "a chain's steps end with a state "
                                                   "that has a change of its own") for _ in chain)
                else:
                    responses.append(self._answer(record, state, proposal))
                chain = []
            responses.extend(self._refusal(record, "UNSIGNED_STATE", "no signed state ends this chain") for _ in chain)
        return seal(self._channels.rules_of(), pb.ProposeBatchResponse(responses=responses,
                                                                        waiting=self._waiting(record.channel_id)))

    def _heard(self, cid: bytes, waiting: bool) -> None:
        """The peer's last message on the channel said it has updates waiting, or not (U3)."""
        if waiting:
            self._peer_busy.add(cid)
        else:
            self._peer_busy.discard(cid)

    def _waiting(self, cid: bytes) -> bool:
        """Whether this node has updates of its own waiting on the channel (U6), or about to: the
        settles and fails of HTLCs just accepted, before the resolver queues them (a payee
        answering a chain of adds settles them next; said now, the peer lets them land first
        instead of racing them with its next chain, which one of the two sides then refused). Those
        count only with a peer that takes no requests: one that does is asked for them (U7)."""
        queue = self._queues.get(cid)
        return any(not item.future.done() for item in self._proposals.get(cid, ())) or \
            (queue is not None and any(not item.future.done() for item in queue.waiting)) or \
            (self._store.resolving(cid) and self._channels.channel(cid).peer in self._no_requests)

    def _refusal(self, record: ChannelRecord, reason: str, message: str, sequence: int = 0) -> pb.ProposeResponse:
        return pb.ProposeResponse(channel_id=hex0x(record.channel_id), sequence=sequence, accepted=False,
                                  reason=reason, message=message,
                                  signed_upto=max(0, self._store.highest_sequence(record.channel_id)))

    def _answer(self, record: ChannelRecord, state: StateRecord, request: pb.ProposeRequest) -> pb.ProposeResponse:
        try:
            cosigned, preimages = self._accept(self._channels.channel(record.channel_id), state, request)
        except Refused as refused:
            return self._refusal(record, refused.reason, str(refused), state.sequence)
        mine = cosigned.sig_a if record.we_are_a else cosigned.sig_b
        return pb.ProposeResponse(channel_id=hex0x(state.channel_id), sequence=state.sequence, accepted=True,
                                  signature=mine, preimage=hex0x(preimages[0]) if preimages and preimages[0] else "",
                                  preimages=[hex0x(p) if p else "" for p in preimages], signed_upto=state.sequence)

    def _answer_chain(self, record: ChannelRecord, chain: list[pb.ProposeRequest], state: StateRecord
                      ) -> list[pb.ProposeResponse]:
        """U5: a chain's answers (``state`` its signed end): every change taken and the state
        counter-signed, or every one refused (CHAIN_REFUSED before the refused one, PREVIOUS_REFUSED
        after) with none of its writes."""
        try:
            with self._store.batch():  # a savepoint: a refused change undoes the writes of those before it
                cosigned = self._accept_chain(self._channels.channel(record.channel_id), chain, state)
        except _StepRefused as refused:
            at, sequence = refused.index, state.sequence
            return [self._refusal(record, refused.reason, str(refused), sequence) if i == at else
                    self._refusal(record, "CHAIN_REFUSED", f"change {at} of its chain was refused: {refused.reason}",
                                  sequence) if i < at else
                    self._refusal(record, "PREVIOUS_REFUSED", "an earlier change of its chain was refused", sequence)
                    for i in range(len(chain))]
        mine = cosigned.sig_a if record.we_are_a else cosigned.sig_b
        return [pb.ProposeResponse(channel_id=hex0x(state.channel_id), sequence=state.sequence, accepted=True,
                                   signed_upto=state.sequence) for _ in chain[:-1]] + \
            [pb.ProposeResponse(channel_id=hex0x(state.channel_id), sequence=state.sequence, accepted=True,
                                signature=mine, signed_upto=state.sequence)]

    def _accept(self, record: ChannelRecord, state: StateRecord, request: pb.ProposeRequest
                ) -> tuple[StateRecord, tuple[bytes, ...]]:
        """A state of its own (a payment, a final state, an HTLC update built whole): P0-P6."""
        channels, rules, store = self._channels, self._channels.rules_of(), self._store
        proposal = Proposal.of(request)
        held = self._held(record, state, request.signature)
        if held is not None:  # a re-sent proposal this node already accepted: the same answer again (U2)
            return held, self._preimages(proposal)
        latest = channels.latest(record)
        unanswered = self._turn_first(record, latest, state)
        try:
            update = check_proposal(rules.state(latest), rules.state(state), rules.channel(record), record.theirs,
                                    preimages_known=(proposal.preimage,) if proposal.preimage else (),
                                    now=channels.l1_now(), expiry_delta=rules.expiry_delta_s)
            refusal: Refused | None = None
        except ChannelRefused as exc:
            refusal = Refused(str(exc.reason), exc.message)
        self._take_turn(record, latest, state, unanswered,
                        builds_on_latest=refusal is None or _builds_on(rules, latest, state))
        if refusal is not None:
            raise refusal
        if proposal.final != (state.sequence == FINAL_SEQUENCE):
            raise Refused("BAD_FINAL_STATE", f"sequence {FINAL_SEQUENCE} is the final state's, and only its")
        cosigned = state.signed(not record.we_are_a, request.signature).signed(record.we_are_a, rules.sign(state))
        preimages: tuple[bytes, ...] = ()
        try:
            if update.kind is UpdateKind.FINAL:
                with store.batch():
                    store.put_state(cosigned)
                    store.update_channel(replace(record, status=ChannelStatus.CLOSING), "CHANNEL_CLOSING")
            elif update.kind is UpdateKind.TRANSFER:
                preimages = self._transfer_received(update.amount, proposal)
                store.record_received(cosigned, proposal.payments)
            else:
                assert update.htlc is not None
                theirs = sum(1 for h in latest.htlcs if h[0] != record.we_are_a)
                effects, event = channels.payments.received(record, update, proposal, theirs)
                store.record_chain(cosigned, [Meaning(event, update.htlc.payment_hash, update.amount, effects)])
                channels.payments.wake()
        except SequenceTaken:
            raise Refused("SEQUENCE_CONFLICT", f"this node holds another state at sequence {state.sequence}") from None
        return cosigned, preimages

    def _accept_chain(self, record: ChannelRecord, chain: list[pb.ProposeRequest], state: StateRecord
                      ) -> StateRecord:
        """U5: each change judged on the ones before it (P7) and what it means to this node
        (``_payments``), ``state`` checked to be what they make, counter-signed and stored with
        every change's meaning. _StepRefused names the change refused."""
        channels, rules, store = self._channels, self._channels.rules_of(), self._store
        end = len(chain) - 1
        try:
            held = self._held(record, state, chain[-1].signature)
        except Refused as exc:
            raise _StepRefused(end, exc) from None
        if held is not None:
            return held  # re-sent (U2): the same answer again
        latest = channels.latest(record)
        proposals = [Proposal.of(request) for request in chain]  # malformed: INVALID_ARGUMENT, before any turn
        try:
            unanswered = self._turn_first(record, latest, state)
        except Refused as exc:
            raise _StepRefused(end, exc) from None
        theirs_a = not record.we_are_a
        made = Chain(rules.state(latest), rules.channel(record), record.theirs, now=channels.l1_now(),
                     expiry_delta=rules.expiry_delta_s,
                     wanted=functools.partial(channels.payments.wants, record))  # P8: a release it asked for
        meanings: list[Meaning] = []
        refused: _StepRefused | None = None
        for i, proposal in enumerate(proposals):
            try:
                change = proposal.change
                if change is None or proposal.final or proposal.parts or proposal.amount:
                    raise Refused("CHAIN_STEP_KIND", "a chain is made of HTLC changes: a payment or a final state "
                                                     "is an update of its own")
                theirs = made.held(theirs_a)
                update = _judged(functools.partial(made.apply, change))
                assert update.htlc is not None
                effects, event = channels.payments.received(record, update, proposal, theirs)
            except Refused as exc:
                refused = _StepRefused(i, exc)
                break
            meanings.append(Meaning(event, update.htlc.payment_hash, update.amount, effects))
        if refused is None:
            try:
                _judged(lambda: made.check(rules.state(state)))  # C0 of the state judged too
            except Refused as exc:
                refused = _StepRefused(end, exc)
        try:
            self._take_turn(record, latest, state, unanswered, builds_on_latest=refused is None)
        except Refused as exc:
            raise _StepRefused(end, exc) from None
        if refused is not None:
            raise refused
        cosigned = state.signed(theirs_a, chain[-1].signature).signed(record.we_are_a, rules.sign(state))
        try:
            store.record_chain(cosigned, meanings)
        except SequenceTaken:
            raise _StepRefused(end, Refused(
                "SEQUENCE_CONFLICT", f"this node holds another state at sequence {state.sequence}")) from None
        channels.payments.wake()
        return cosigned

    def _held(self, record: ChannelRecord, state: StateRecord, signature: bytes) -> StateRecord | None:
        """The first checks of any proposal: ``state`` signed by the peer; the co-signed state itself
        if this node holds it already (U2: a re-send, answered the same); an OPEN channel."""
        if self._channels.rules_of().signer_of(state, signature) != record.theirs:
            raise Refused("BAD_STATE_SIGNATURE", "the state is not signed by the channel's other participant")
        # Only a sequence this node stored can be a re-send: a new one is not read (and its O(HTLCs)
        # JSON decoded) for nothing, as every proposal's was.
        held = self._store.state(state.channel_id, state.sequence) \
            if state.sequence <= self._store.highest_sequence(state.channel_id) else None
        if held is not None and held.same_content(state) and held.cosigned:
            return held
        if record.status not in (ChannelStatus.OPEN,):
            raise Refused("CHANNEL_NOT_OPEN", f"the channel is {record.status.name}")
        return None

    def _turn_first(self, record: ChannelRecord, latest: StateRecord, state: StateRecord) -> list[StateRecord]:
        """U3's refusals that hold whatever the proposal says, before it is judged (a chain refused
        for a race, up to half of a busy hop's, is not judged change by change for nothing): this
        node's own update in flight on a ``latest`` it did not propose
        (PEER_PENDING: the peer may have accepted it and built on it), or, with none in flight, C2
        against every sequence this node signed. This node's unanswered states, for ``_take_turn``."""
        unanswered = self._store.pendings(record.channel_id)
        if unanswered and not self._proposed(record, latest):
            raise _peer_pending()
        if not unanswered:
            self._above_signed(record, latest, state)
        return unanswered

    def _take_turn(self, record: ChannelRecord, latest: StateRecord, state: StateRecord,
                   unanswered: list[StateRecord], *, builds_on_latest: bool) -> None:
        """The rest of U3 once the proposal is judged, whatever the judgement (a proposal built on a
        state this node does not hold yet may look wrong only for that; ``_turn_first`` ran):
        with this node's ``unanswered`` updates in flight on a latest state it proposed, the peer
        has the turn if the proposal is that latest changed (``builds_on_latest``: then it cannot
        hold them, and abandoning them is safe), else it waits (PEER_PENDING); then C2."""
        if not unanswered:
            return  # C2 checked by _turn_first
        if not builds_on_latest:
            raise _peer_pending()
        for own in unanswered:  # U3: the peer has the turn; ours are proposed again after
            self._store.refuse(own.channel_id, own.sequence)
        self._above_signed(record, latest, state)

    def _above_signed(self, record: ChannelRecord, latest: StateRecord, state: StateRecord) -> None:
        """C2: ``state`` above every sequence this node signed in the channel."""
        highest = self._store.highest_sequence(record.channel_id)
        if state.sequence <= highest:
            reason = "SEQUENCE_CONFLICT" if state.sequence > latest.sequence else "STALE_SEQUENCE"
            raise Refused(reason, f"sequence {state.sequence} is not above {highest}, the highest this node signed")

    def _transfer_received(self, amount: int, proposal: Proposal) -> tuple[bytes, ...]:
        """Direct payments to this node (U1): the parts add up to what the state moves, each
        invoice open and paid whole, none twice; their preimages."""
        parts = proposal.payments
        total = sum(a for a, _ in parts)
        if amount != total or proposal.amount != total or any(a <= 0 for a, _ in parts):
            raise Refused("AMOUNT_MISMATCH",
                          f"the state moves {amount} wei to this node, not the payments' {total} ({proposal.amount})")
        hashes = [h for _, h in parts if h]
        if len(set(hashes)) != len(hashes):
            raise Refused("DUPLICATE_PAYMENT", "one invoice paid twice in one update")
        preimages = []
        for part_amount, payment_hash in parts:
            if not payment_hash:
                preimages.append(b"")
                continue
            invoice = self._store.invoice(payment_hash)
            if invoice is None or invoice.status != InvoiceStatus.OPEN:
                raise Refused("UNKNOWN_INVOICE", f"no open invoice of payment hash 0x{payment_hash.hex()}")
            if invoice.amount != part_amount:
                raise Refused("AMOUNT_MISMATCH", f"the invoice is for {invoice.amount} wei, not {part_amount}")
            preimages.append(invoice.preimage)
        return tuple(preimages)

    def _preimages(self, proposal: Proposal) -> tuple[bytes, ...]:
        """A re-sent proposal's preimages, answered again (its invoices are paid by now)."""
        found = []
        for _, payment_hash in proposal.payments:
            invoice = self._store.invoice(payment_hash) if payment_hash else None
            found.append(invoice.preimage if invoice is not None else b"")
        return tuple(found)


def _peer_pending() -> Refused:
    return Refused("PEER_PENDING", "this node's own update is in flight: propose again once it is answered")


def _builds_on(rules: Rules, latest: StateRecord, state: StateRecord) -> bool:
    """``state`` reads as one change of ``latest`` (P1), whatever the rules make of that change."""
    try:
        describe_update(rules.state(latest), rules.state(state))
    except ChannelRefused:
        return False
    return True


def _judged(judge: Callable[[], T]) -> T:
    """``judge()``, a protocol refusal (ChannelRefused) as this node's answer (Refused)."""
    try:
        return judge()
    except ChannelRefused as exc:
        raise Refused(str(exc.reason), exc.message) from None


class _StepRefused(Exception):
    """Step ``index`` of a chain refused (U5): the chain is, with the step's reason."""

    def __init__(self, index: int, refused: Refused) -> None:
        super().__init__(str(refused))
        self.index = index
        self.reason = refused.reason


def _preimages(response: pb.ProposeResponse) -> tuple[bytes, ...]:
    """The preimages of an accepting answer (one per payment part; the old single field)."""
    texts = list(response.preimages) or ([response.preimage] if response.preimage else [])
    return tuple(bytes.fromhex(t.removeprefix("0x")) if t else b"" for t in texts)
