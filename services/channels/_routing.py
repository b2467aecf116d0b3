"""Multi-hop routing: the channels this node knows of, and the cheapest route over them.

Each participant of a channel announces the direction it sends in (as BOLT 7's
``channel_update``): the fee it charges to forward over the channel, its expiry delta (BOLT's
``cltv_expiry_delta``, in seconds here: HTLC expiries are L1 unix seconds), the HTLC sizes it
forwards, and its capacity in that direction (its balance in the co-signed state). Nodes are
their channel keys' addresses. A route is found from the target back to the source, as lnd
does, since each hop's amount and expiry are the next hop's plus that hop's fee and delta.

Rules (the worker and the tests cite them by number; a refused announcement is a
``ChannelRefused`` with protocol's reason):

- **R1** Every field is in range (FIELD_OUT_OF_RANGE): ids 32 bytes, addresses 20, the two
  participants differ; nonce, timestamp, fee_ppm and expiry_delta_s uint64, amounts uint256;
  ``1 <= htlc_min <= htlc_max``; ``expiry_delta_s >= 1`` (so expiries strictly decrease along a
  route); ``1 <= max_htlcs <= MAX_HTLCS`` (483, BOLT 2).
- **R2** The channel id is the channel's: ``channel_id(chainId, adjudicator, a, b, nonce)`` of the
  graph's domain (CHANNEL_MISMATCH). It binds the participants (no one announces a channel
  between other nodes under a real id) and the chain and adjudicator.
- **R3** An announcement is signed by the participant whose direction it states (A if
  ``from_a``) over ``announcement_digest``: keccak256(0x19 0x00 || adjudicator ||
  ANNOUNCEMENT_TYPEHASH || chainId || channelId || a || b || nonce || fromA || capacity ||
  feeBase || feePpm || expiryDelta || htlcMin || htlcMax || maxHtlcs || timestamp), each value
  an ABI word, addresses left-padded (EIP-191 version 0x00, the adjudicator its validator: no
  state digest, which starts 0x19 0x01, and no transaction can be one). The signature obeys C8;
  it recovers to the other participant: SIGNER_MISMATCH (it may not set its peer's fees); to
  neither: NOT_A_PARTICIPANT (a channel the signer is not in, or another network's).
- **R4** Per channel and direction, the newest timestamp wins: an older or equal one is ignored.
  A removed (closed) channel stays removed: its later announcements are ignored (an id never
  reopens).
- **R5** Forwarding ``x`` over a direction costs ``fee_base_wei + ceil(x * fee_ppm / 1e6)``.
- **R6** Amounts, from the end: the last hop carries ``amount``; each earlier hop carries the
  next hop's amount plus the next hop's fee (R5, the next hop's policy: its sender forwards and
  charges). The first hop's own fee is not charged: it is the source's channel.
- **R7** Expiries, from the end: the last hop's HTLC expires at ``now + final_expiry_delta_s``;
  each earlier one later by the next hop's ``expiry_delta_s`` (BOLT: a forwarding node that
  learns the preimage downstream at the last moment still has its delta to claim upstream).
  Every expiry fits uint64.
- **R8** A hop is usable when ``htlc_min <= its amount <= min(htlc_max, capacity)``, its channel is
  not excluded, and its receiver (and its sender, except the source) is neither unavailable (its
  breaker is open) nor excluded. The HTLC slots in flight (``max_htlcs``) are not in the graph:
  the worker excludes its own full channels, and a remote one fails its hop (TOO_MANY_HTLCS).
- **R9** A route is a simple path from the source to the target of 1 to ``max_hops`` hops.
- **R10** ``find_route`` returns the cheapest usable route: the least total fee (the least
  amount sent), then the fewest hops, then the earliest first-hop expiry. The search keeps, per
  node, the labels not beaten in both amount and hops, so it is exact under capacity, htlc_max
  and max_hops. Like lnd it checks htlc_min against the amount of the cheapest way on, so it
  can miss a route whose htlc_min only a costlier way on would meet: never when every
  ``htlc_min <= amount`` (every hop carries at least ``amount``).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from protocol import (
    MAX_HTLCS,
    UINT64_MAX,
    UINT256_MAX,
    ChannelRefused,
    Domain,
    Htlc,
    Reason,
    keccak256,
    recover_signer,
    sign_state,
)
from protocol import channel_id as channel_id_of

#: R3: the type tag of an announcement's digest.
ANNOUNCEMENT_TYPE: Final = (
    "l2node.ChannelAnnouncement(bytes32 channelId,address a,address b,uint64 nonce,bool fromA,"
    "uint256 capacity,uint256 feeBase,uint64 feePpm,uint64 expiryDelta,uint256 htlcMin,uint256 htlcMax,"
    "uint16 maxHtlcs,uint64 timestamp)"
)
ANNOUNCEMENT_TYPEHASH: Final = keccak256(ANNOUNCEMENT_TYPE.encode())
#: R5: fee_ppm is in parts per million.
PPM: Final = 1_000_000
#: BOLT 7's limit on a route's length (20 hops of onion).
MAX_HOPS: Final = 20

_WORD = 32
_ZERO_PAD = bytes(12)


def _uint(value: int, limit: int, name: str, *, least: int = 0) -> None:
    if type(value) is not int or not least <= value <= limit:  # a bool is refused as an int
        raise ChannelRefused(
            Reason.FIELD_OUT_OF_RANGE, f"{name} must be an integer in [{least}, {limit}], not {value!r}")


def _fixed(value: bytes, size: int, name: str) -> None:
    if type(value) is not bytes or len(value) != size:
        raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, f"{name} must be {size} bytes, not {value!r}")


def _word(value: int) -> bytes:
    return value.to_bytes(_WORD, "big")


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """What one direction of a channel charges and carries: its sending node's terms (R1)."""

    fee_base_wei: int
    #: Parts per million of the forwarded amount, on top of the base fee (R5).
    fee_ppm: int
    #: BOLT's cltv_expiry_delta, in seconds: how much later the incoming HTLC must expire (R7).
    expiry_delta_s: int
    htlc_min: int
    htlc_max: int
    #: The HTLCs its sender accepts in flight on the channel (BOLT 2's max_accepted_htlcs).
    max_htlcs: int = MAX_HTLCS

    def __post_init__(self) -> None:
        _uint(self.fee_base_wei, UINT256_MAX, "fee_base_wei")
        _uint(self.fee_ppm, UINT64_MAX, "fee_ppm")
        _uint(self.expiry_delta_s, UINT64_MAX, "expiry_delta_s", least=1)
        _uint(self.htlc_min, UINT256_MAX, "htlc_min", least=1)
        _uint(self.htlc_max, UINT256_MAX, "htlc_max", least=self.htlc_min)
        _uint(self.max_htlcs, MAX_HTLCS, "max_htlcs", least=1)

    def fee(self, amount: int) -> int:
        """R5: base + ceil(amount * ppm / 1e6) for forwarding ``amount`` over this direction."""
        return self.fee_base_wei + -(-amount * self.fee_ppm // PPM)


@dataclass(frozen=True, slots=True)
class Announcement:
    """One direction of one channel, as its sending participant states it (R1-R3).

    ``a``, ``b`` and ``nonce`` are the channel's as opened on L1 (R2 recomputes its id from
    them); ``from_a`` names the direction (A to B) and so the signer; ``capacity`` is what the
    sender can send over the channel (its balance in the last co-signed state, as it knows it).
    """

    channel_id: bytes
    a: bytes
    b: bytes
    nonce: int
    from_a: bool
    capacity: int
    policy: ChannelPolicy
    #: Unix seconds of the announcement: per direction, the newest wins (R4).
    timestamp: int
    #: 65 bytes r || s || v by the sender's channel key (R3); empty until ``signed``.
    signature: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        _fixed(self.channel_id, 32, "channel_id")
        _fixed(self.a, 20, "a")
        _fixed(self.b, 20, "b")
        if self.a == self.b:
            raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, "a channel's two participants must differ")
        _uint(self.nonce, UINT64_MAX, "nonce")
        if type(self.from_a) is not bool:
            raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, f"from_a must be a bool, not {self.from_a!r}")
        _uint(self.capacity, UINT256_MAX, "capacity")
        if type(self.policy) is not ChannelPolicy:
            raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, "policy must be a ChannelPolicy")
        _uint(self.timestamp, UINT64_MAX, "timestamp")
        if type(self.signature) is not bytes:
            raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, "signature must be bytes")

    @property
    def sender(self) -> bytes:
        """The node that sends over this direction, forwards, charges its fee and signs it."""
        return self.a if self.from_a else self.b

    @property
    def receiver(self) -> bytes:
        return self.b if self.from_a else self.a

    def digest(self, domain: Domain) -> bytes:
        """R3: what the sender signs, bound to ``domain``'s chain and adjudicator."""
        p = self.policy
        return keccak256(
            b"\x19\x00" + domain.adjudicator + ANNOUNCEMENT_TYPEHASH + _word(domain.chain_id) + self.channel_id
            + _ZERO_PAD + self.a + _ZERO_PAD + self.b + _word(self.nonce) + _word(int(self.from_a))
            + _word(self.capacity) + _word(p.fee_base_wei) + _word(p.fee_ppm) + _word(p.expiry_delta_s)
            + _word(p.htlc_min) + _word(p.htlc_max) + _word(p.max_htlcs) + _word(self.timestamp)
        )

    def signed(self, domain: Domain, key: bytes) -> Announcement:
        """This announcement signed by ``key`` (the sender's 32-byte channel key)."""
        return replace(self, signature=sign_state(self.digest(domain), key))

    def verify(self, domain: Domain) -> None:
        """R2 and R3: the id is the channel's under ``domain`` and the sender signed it."""
        expected = channel_id_of(domain.chain_id, domain.adjudicator, self.a, self.b, self.nonce)
        if expected != self.channel_id:
            raise ChannelRefused(
                Reason.CHANNEL_MISMATCH,
                f"channel 0x{self.channel_id.hex()} is not the channel of these participants and nonce "
                f"on this chain and adjudicator (0x{expected.hex()})",
            )
        signer = recover_signer(self.digest(domain), self.signature)  # C8
        if signer == self.sender:
            return
        if signer == self.receiver:
            raise ChannelRefused(
                Reason.SIGNER_MISMATCH, f"signed by 0x{signer.hex()}, the receiving side, not the sender")
        raise ChannelRefused(
            Reason.NOT_A_PARTICIPANT,
            f"signed by 0x{signer.hex()}, not a participant of the channel (or over another network's digest)",
        )


@dataclass(frozen=True, slots=True)
class Hop:
    """One HTLC of a route: offered by ``sender`` to ``receiver`` over ``channel_id``."""

    channel_id: bytes
    sender: bytes
    receiver: bytes
    #: The direction in the channel (Htlc.from_a): A offers it.
    from_a: bool
    #: The HTLC's amount: what this hop carries (R6).
    amount: int
    #: The HTLC's absolute expiry, L1 unix seconds (R7).
    expiry: int
    #: The direction's terms the amount and expiry were computed with (the sender's).
    policy: ChannelPolicy

    def htlc(self, payment_hash: bytes) -> Htlc:
        """The HTLC this hop's sender offers for the payment ``payment_hash``."""
        return Htlc(self.from_a, self.amount, payment_hash, self.expiry)


@dataclass(frozen=True, slots=True)
class Route:
    """A payment's hops from the source to the target, R6 and R7 holding between each pair
    (checked when built: a route in existence conserves its amounts)."""

    hops: tuple[Hop, ...]
    #: What the target receives (the last hop's amount).
    amount: int = field(init=False)
    #: Sum of the fees the forwarding nodes take: what the source sends above ``amount``.
    total_fee: int = field(init=False)

    def __post_init__(self) -> None:
        hops = self.hops
        if type(hops) is not tuple or not hops or not all(type(h) is Hop for h in hops):
            raise ValueError("a route is a non-empty tuple of Hop")
        for up, down in itertools.pairwise(hops):
            if up.receiver != down.sender:
                raise ValueError(f"hop to 0x{up.receiver.hex()} is followed by one from 0x{down.sender.hex()}")
            if up.amount != down.amount + down.policy.fee(down.amount):
                raise ValueError(f"R6: {up.amount} is not {down.amount} plus its fee")
            if up.expiry != down.expiry + down.policy.expiry_delta_s:
                raise ValueError(f"R7: expiry {up.expiry} is not {down.expiry} plus its delta")
        nodes = [hops[0].sender, *(h.receiver for h in hops)]
        if len(set(nodes)) != len(nodes):
            raise ValueError("R9: a route visits each node once")
        object.__setattr__(self, "amount", hops[-1].amount)
        object.__setattr__(self, "total_fee", hops[0].amount - hops[-1].amount)

    @property
    def source(self) -> bytes:
        return self.hops[0].sender

    @property
    def target(self) -> bytes:
        return self.hops[-1].receiver

    @property
    def total_amount(self) -> int:
        """What the source sends: the first hop's amount (``amount + total_fee``)."""
        return self.hops[0].amount

    @property
    def first_expiry(self) -> int:
        """The first HTLC's expiry: how long the source's funds may be locked."""
        return self.hops[0].expiry

    @property
    def final_expiry(self) -> int:
        return self.hops[-1].expiry

    def upstream_of(self, hop_index: int) -> tuple[Hop, ...]:
        """The hops before ``hop_index``, nearest first: the order in which they are failed back
        when that hop fails (each node fails its incoming HTLC once its outgoing one failed)."""
        if type(hop_index) is not int or not 0 <= hop_index < len(self.hops):
            raise IndexError(f"hop {hop_index!r} of a {len(self.hops)}-hop route")
        return self.hops[hop_index - 1::-1] if hop_index else ()


class Graph:
    """The channels this node knows of: verified announcements per channel and direction (R2-R4),
    and the nodes whose breaker is open (R8). Not thread-safe: the worker's loop owns it."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain
        self._directions: dict[tuple[bytes, bool], Announcement] = {}
        #: Per node, the directions into it (the search walks them from the target back).
        self._into: dict[bytes, set[tuple[bytes, bool]]] = {}
        self._removed: set[bytes] = set()
        self._unavailable: set[bytes] = set()

    def add(self, announcement: Announcement) -> bool:
        """Verify (R1-R3, raising ChannelRefused) and keep ``announcement`` if it is the newest
        of its direction (R4). True if the graph changed."""
        if type(announcement) is not Announcement:
            raise TypeError("an Announcement is expected")
        announcement.verify(self.domain)
        if announcement.channel_id in self._removed:
            return False
        key = (announcement.channel_id, announcement.from_a)
        known = self._directions.get(key)
        if known is not None and known.timestamp >= announcement.timestamp:
            return False
        self._directions[key] = announcement
        self._into.setdefault(announcement.receiver, set()).add(key)
        return True

    def remove_channel(self, channel_id: bytes) -> bool:
        """Forget a channel (closed on L1), both directions, for good (R4). True if it was known."""
        self._removed.add(channel_id)
        known = False
        for from_a in (True, False):
            announcement = self._directions.pop((channel_id, from_a), None)
            if announcement is not None:
                known = True
                self._into[announcement.receiver].discard((channel_id, from_a))
        return known

    def mark_unavailable(self, node: bytes) -> None:
        """``node``'s breaker is open: no route goes through or to it until ``mark_available``."""
        self._unavailable.add(node)

    def mark_available(self, node: bytes) -> None:
        self._unavailable.discard(node)

    def is_available(self, node: bytes) -> bool:
        return node not in self._unavailable

    def direction(self, channel_id: bytes, from_a: bool) -> Announcement | None:
        """The newest announcement of one direction of a channel, if known."""
        return self._directions.get((channel_id, from_a))

    def announcements(self) -> Iterator[Announcement]:
        """Every known direction, in a stable order (by channel id, A's first)."""
        for key in sorted(self._directions, key=lambda k: (k[0], not k[1])):
            yield self._directions[key]

    def into(self, node: bytes) -> list[Announcement]:
        """The known directions whose receiver is ``node``, in a stable order."""
        keys = self._into.get(node, ())
        return [self._directions[k] for k in sorted(keys, key=lambda k: (k[0], not k[1]))]


@dataclass(frozen=True, slots=True)
class _Label:
    """A way from ``node`` to the target: the HTLC arriving at ``node`` has ``amount`` and
    ``expiry`` (for the source: what it sends and the first expiry), ``hops`` hops on."""

    node: bytes
    amount: int
    expiry: int
    hops: int
    #: The direction from ``node`` on (None at the target) and the label it leads to.
    via: Announcement | None = None
    next: _Label | None = None


def find_route(
    graph: Graph,
    source: bytes,
    target: bytes,
    amount: int,
    *,
    final_expiry_delta_s: int,
    now: int,
    max_hops: int = MAX_HOPS,
    exclude: Collection[bytes] = (),
) -> Route | None:
    """The cheapest route (R10) paying ``amount`` from ``source`` to ``target``, or None.

    ``now`` is L1 unix seconds; the last HTLC expires at ``now + final_expiry_delta_s`` (R7).
    ``exclude`` holds channel ids (32 bytes) and node addresses (20 bytes) this payment must
    not use (a retry after a hop failed), beside the graph's unavailable nodes (R8).
    """
    _uint(amount, UINT256_MAX, "amount", least=1)
    _uint(now, UINT64_MAX, "now")
    _uint(final_expiry_delta_s, UINT64_MAX, "final_expiry_delta_s")
    _uint(max_hops, MAX_HOPS, "max_hops", least=1)
    _fixed(source, 20, "source")
    _fixed(target, 20, "target")
    if source == target:
        raise ValueError("a route's source and target differ")
    if any(type(x) is not bytes or len(x) not in (20, 32) for x in exclude):
        raise ValueError("exclude holds channel ids (32 bytes) and node addresses (20 bytes)")
    excluded = frozenset(exclude)
    final_expiry = now + final_expiry_delta_s
    if final_expiry > UINT64_MAX:
        return None

    def avoided(node: bytes) -> bool:
        return node in excluded or not graph.is_available(node)

    if avoided(target):
        return None
    # Dijkstra from the target back over (amount, hops, expiry), lexicographically: extending a
    # label never lowers it and preserves the order, so the first source label popped is the
    # cheapest (R10). A node's label is skipped when one popped before it (no dearer) had no
    # more hops: it does all this one can (R9's simple paths follow: a way through a node twice
    # has more hops than its first pass).
    fewest_hops: dict[bytes, int] = {}
    order = itertools.count()  # equal labels pop in the order pushed: deterministic
    heap: list[tuple[int, int, int, int, _Label]] = []
    start = _Label(target, amount, final_expiry, 0)
    heapq.heappush(heap, (amount, 0, final_expiry, next(order), start))
    while heap:
        *_, label = heapq.heappop(heap)
        if label.node == source:
            return _route(label)
        if label.hops >= fewest_hops.get(label.node, max_hops + 1):
            continue
        fewest_hops[label.node] = label.hops
        if label.hops == max_hops:
            continue
        for direction in graph.into(label.node):
            upstream = direction.sender
            if direction.channel_id in excluded or (upstream != source and avoided(upstream)):
                continue
            policy = direction.policy
            if not policy.htlc_min <= label.amount <= min(policy.htlc_max, direction.capacity):
                continue
            hops = label.hops + 1
            if upstream == source:  # its own channel: no fee, no delta; the label is the route's cost
                candidate = _Label(source, label.amount, label.expiry, hops, direction, label)
            else:  # the upstream node forwards over this direction: its fee and delta (R6, R7)
                expiry = label.expiry + policy.expiry_delta_s
                if expiry > UINT64_MAX:
                    continue
                candidate = _Label(upstream, label.amount + policy.fee(label.amount), expiry, hops, direction, label)
            heapq.heappush(heap, (candidate.amount, hops, candidate.expiry, next(order), candidate))
    return None


def _route(source: _Label) -> Route:
    """The hops of the path from the source label to the target's."""
    hops: list[Hop] = []
    label = source
    while label.via is not None and label.next is not None:
        direction, downstream = label.via, label.next
        hops.append(Hop(direction.channel_id, direction.sender, direction.receiver, direction.from_a,
                        downstream.amount, downstream.expiry, direction.policy))
        label = downstream
    return Route(tuple(hops))
