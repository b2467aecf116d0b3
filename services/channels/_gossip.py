"""The channels this node knows of, for routing: its own directions announced to its peers, and
every announcement a peer passes on, verified and kept (``_routing``'s R1-R4) and passed on again.

- A node announces each OPEN channel's direction it sends in: its routing terms and, as the
  capacity, its balance in the latest co-signed state. It announces again when the channel opens,
  when that balance moved by more than a tenth, and when it closes: capacity 0, so peers route
  around it (then it forgets the channel).
- An announcement is taken only from one of this node's channel peers (a stranger cannot fill the
  graph), only if its channel is OPEN on L1 (looked up once per channel: no route over a channel
  that does not exist), and it is passed on to the other peers if it was new (R4: the newest per
  direction wins, so the flood ends).
- A peer whose breaker is open is marked unavailable in the graph (R8): payments route around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from protocol import ChannelRefused
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.runtime import PermissionDenied

from ._peer import require_sender, seal, sender_of
from ._records import ChannelRecord, ChannelStatus
from ._routing import Announcement, ChannelPolicy, Graph
from ._store import ChannelsStore
from ._wire import amount_of, hex0x, parse_hex

if TYPE_CHECKING:
    from ._channels import Channels

#: A balance that moved by more than this share of the last announced capacity is announced again.
_MOVED: Final = 0.1
#: At most this many announcements in one Announce call.
_BATCH: Final = 500


def announcement_pb(a: Announcement) -> pb.ChannelAnnouncement:
    p = a.policy
    return pb.ChannelAnnouncement(
        channel_id=hex0x(a.channel_id), a=hex0x(a.a), b=hex0x(a.b), nonce=a.nonce, from_a=a.from_a,
        capacity=str(a.capacity), fee_base=str(p.fee_base_wei), fee_ppm=p.fee_ppm, expiry_delta_s=p.expiry_delta_s,
        htlc_min=str(p.htlc_min), htlc_max=str(p.htlc_max), max_htlcs=p.max_htlcs, timestamp=a.timestamp,
        signature=a.signature)


def announcement_of(m: pb.ChannelAnnouncement) -> Announcement:
    """ChannelRefused (FIELD_OUT_OF_RANGE) or InvalidArgument if a field is malformed (R1)."""
    policy = ChannelPolicy(amount_of(m.fee_base, "fee_base"), m.fee_ppm, m.expiry_delta_s,
                           amount_of(m.htlc_min, "htlc_min"), amount_of(m.htlc_max, "htlc_max"), m.max_htlcs)
    return Announcement(parse_hex(m.channel_id, 32, "channel_id"), parse_hex(m.a, 20, "a"), parse_hex(m.b, 20, "b"),
                        m.nonce, m.from_a, amount_of(m.capacity, "capacity"), policy, m.timestamp, m.signature)


class Gossip:
    """The graph of known channels and its upkeep: this node's announcements and its peers'."""

    def __init__(self, channels: Channels, store: ChannelsStore, graph: Graph, policy: ChannelPolicy,
                 logger: logging.Logger, interval_s: float) -> None:
        self._channels = channels
        self._store = store
        self.graph = graph
        self._policy = policy
        self._log = logger
        self._interval_s = interval_s
        #: Per own channel: the capacity last announced (None: closed and removed).
        self._announced: dict[bytes, int] = {}
        #: Channels looked up on L1 and found OPEN.
        self._on_l1: set[bytes] = set()
        #: Peers (channel addresses) that were sent the whole graph once.
        self._synced: set[bytes] = set()
        #: Announcements learnt from a peer, to pass on to the others (and who sent them).
        self._outbox: list[tuple[list[Announcement], bytes]] = []
        self._last_stamp = 0
        self._wake = asyncio.Event()
        for body in store.announcement_bodies():
            with contextlib.suppress(ChannelRefused, ValueError):
                announcement = announcement_of(pb.ChannelAnnouncement.FromString(body))
                graph.add(announcement)
                record = store.channel(announcement.channel_id)
                if record is not None and record.we_are_a == announcement.from_a:
                    # Signed before a restart: the next one must be newer (R4), or peers ignore it.
                    self._last_stamp = max(self._last_stamp, announcement.timestamp)

    def wake(self) -> None:
        self._wake.set()

    def _stamp(self) -> int:
        """A timestamp above the last one used (R4: an equal one would be ignored)."""
        self._last_stamp = max(int(time.time()), self._last_stamp + 1)
        return self._last_stamp

    def _capacity(self, record: ChannelRecord) -> int | None:
        """What this node announces it can send in the channel (None: no co-signed state yet)."""
        latest = self._store.latest_cosigned(record.channel_id)
        if latest is None:
            return None
        capacity = latest.balance_a if record.we_are_a else latest.balance_b
        return 0 if capacity < self._policy.htlc_min else capacity

    def _own(self, record: ChannelRecord, capacity: int) -> Announcement:
        # Stamped only when sent: a stamp taken per look would run ahead of the clock.
        plain = Announcement(record.channel_id, record.a, record.b, record.nonce, record.we_are_a, capacity,
                             self._policy, self._stamp())
        return plain.signed(self._channels.rules_of().domain, self._channels.rules_of().key)

    async def run(self) -> None:
        """Announce what changed among this node's channels; keep peers' breakers in the graph."""
        while True:
            self._wake.clear()
            fresh: list[Announcement] = []
            for record in self._store.channels_in((ChannelStatus.OPEN, ChannelStatus.CLOSING, ChannelStatus.DISPUTED,
                                                   ChannelStatus.CLOSED)):
                if record.status != ChannelStatus.OPEN:
                    if record.channel_id in self._announced:  # the last word: nothing is sent in it any more
                        fresh.append(self._own(record, 0))
                    if self.graph.remove_channel(record.channel_id) or record.channel_id in self._announced:
                        self._announced.pop(record.channel_id, None)
                        self._store.forget_announcements(record.channel_id)
                    continue
                known = self._announced.get(record.channel_id)
                capacity = self._capacity(record)
                if capacity is None or (known is not None and abs(capacity - known) <= _MOVED * max(known, 1)):
                    continue
                mine = self._own(record, capacity)
                self.graph.add(mine)
                self._store.put_announcement(mine.channel_id, mine.from_a, announcement_pb(mine).SerializeToString())
                self._announced[record.channel_id] = mine.capacity
                fresh.append(mine)
            for record in self._store.channels_in((ChannelStatus.OPEN,)):
                # A new peer learns the whole graph once.
                if record.theirs not in self._synced and \
                        await self._announce_to(record, list(self.graph.announcements())):
                    self._synced.add(record.theirs)
            if fresh:
                await self._flood(fresh, except_peer=b"")
            outbox, self._outbox = self._outbox, []
            for learnt, sender in outbox:
                await self._flood(learnt, except_peer=sender)
            self._mark_breakers()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s)

    def _mark_breakers(self) -> None:
        for record in self._store.channels_in((ChannelStatus.OPEN,)):
            if self._channels.peer_available(record.peer):
                self.graph.mark_available(record.theirs)
            else:
                self.graph.mark_unavailable(record.theirs)

    async def _flood(self, announcements: Sequence[Announcement], except_peer: bytes) -> None:
        seen: set[str] = set()
        for record in self._store.channels_in((ChannelStatus.OPEN,)):
            if record.theirs == except_peer or record.peer in seen:
                continue
            seen.add(record.peer)
            await self._announce_to(record, announcements)

    async def _announce_to(self, record: ChannelRecord, announcements: Sequence[Announcement]) -> bool:
        """Best effort (a peer that missed one learns it with the next change); True if delivered."""
        rules = self._channels.rules_of()
        for start in range(0, len(announcements), _BATCH):
            batch = announcements[start:start + _BATCH]
            request = seal(rules, pb.AnnounceRequest(node=hex0x(self._channels.address),
                                                     announcements=[announcement_pb(a) for a in batch]))
            try:
                answer = await self._channels.peer(record.peer).announce(request)
                require_sender(answer, record.theirs, "the peer's answer to an announcement")
            except Exception as exc:
                self._log.info("announcing to %s: %s", record.peer, exc)
                return False
        return True

    async def on_announce(self, request: pb.AnnounceRequest) -> pb.AnnounceResponse:
        """A peer's announcements: kept if verified, new and of a channel OPEN on L1; passed on."""
        sender = sender_of(request)
        if sender is None or not any(r.theirs == sender and r.status in (ChannelStatus.OPEN, ChannelStatus.OPENING)
                                     for r in self._store.channels_with(sender)):
            raise PermissionDenied("announcements are taken from this node's channel peers only",
                                   reason="BAD_PEER_SIGNATURE")
        fresh: list[Announcement] = []
        for message in request.announcements[:_BATCH]:
            try:
                announcement = announcement_of(message)
                if not await self._open_on_l1(announcement.channel_id):
                    continue
                if self.graph.add(announcement):
                    fresh.append(announcement)
                    self._store.put_announcement(announcement.channel_id, announcement.from_a,
                                                 announcement_pb(announcement).SerializeToString())
            except (ChannelRefused, ValueError) as exc:
                self._log.info("announcement from 0x%s refused: %s", sender.hex(), exc)
        if fresh:  # passed on by the run loop, not while the sender waits
            self._outbox.append((fresh, sender))
            self._wake.set()
        return seal(self._channels.rules_of(), pb.AnnounceResponse(accepted=len(fresh)))

    async def _open_on_l1(self, channel_id: bytes) -> bool:
        if channel_id not in self._on_l1 and await self._channels.open_on_l1(channel_id):
            self._on_l1.add(channel_id)
        return channel_id in self._on_l1
