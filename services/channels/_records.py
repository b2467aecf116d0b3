"""What the channels worker records: a channel's life and the states both sides signed."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final

#: An HTLC as stored: (from_a, amount, payment_hash, expiry); protocol's Htlc on the wire.
HtlcTuple = tuple[bool, int, bytes, int]
NO_SIGNATURE: Final = b""


class ChannelStatus(enum.IntEnum):
    """The proto's CHANNEL_STATUS_* (same numbers)."""

    OPENING = 1
    OPEN = 2
    CLOSING = 3
    DISPUTED = 4
    CLOSED = 5
    FAILED = 6


class InvoiceStatus(enum.IntEnum):
    OPEN = 1
    PAID = 2


@dataclass(frozen=True, slots=True)
class StateRecord:
    """One state of a channel and the signatures this node holds of it (b"" = not (yet) signed).
    A row exists from the moment this node signed it or received it signed, never two per sequence."""

    channel_id: bytes
    sequence: int
    balance_a: int
    balance_b: int
    htlcs: tuple[HtlcTuple, ...] = ()
    sig_a: bytes = NO_SIGNATURE
    sig_b: bytes = NO_SIGNATURE

    @property
    def cosigned(self) -> bool:
        return bool(self.sig_a) and bool(self.sig_b)

    def signed(self, side_a: bool, signature: bytes) -> StateRecord:
        return replace(self, sig_a=signature) if side_a else replace(self, sig_b=signature)

    def same_content(self, other: StateRecord) -> bool:
        return (self.channel_id, self.sequence, self.balance_a, self.balance_b, self.htlcs) == \
            (other.channel_id, other.sequence, other.balance_a, other.balance_b, other.htlcs)


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    channel_id: bytes
    a: bytes
    b: bytes
    nonce: int
    #: True: this node is ``a`` (the opener).
    we_are_a: bool
    #: The peer's channels address (host:port).
    peer: str
    status: ChannelStatus
    amount_a: int
    amount_b: int
    open_tx: bytes = b""
    close_tx: bytes = b""
    closes_at: int = 0
    reason: str = ""
    updated_at: int = 0

    @property
    def ours(self) -> bytes:
        return self.a if self.we_are_a else self.b

    @property
    def theirs(self) -> bytes:
        return self.b if self.we_are_a else self.a

    @property
    def total(self) -> int:
        return self.amount_a + self.amount_b


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    payment_hash: bytes
    preimage: bytes
    amount: int
    memo: str
    status: InvoiceStatus
    created_at: int


@dataclass(frozen=True, slots=True)
class EventRecord:
    sequence: int
    kind: str
    channel_id: bytes
    payment_hash: bytes
    amount: int
    at: int


class ForwardStatus(enum.IntEnum):
    """Where an HTLC offered to this node stands (services/channels/_payments.py, H-rules)."""

    #: Co-signed in the incoming channel; not yet sent on (or, for the payee, not yet settled).
    RECEIVED = 1
    #: Offered on downstream (co-signed there): waiting for its settle or fail.
    FORWARDED = 2
    #: The preimage is known (the payee's invoice, or downstream's settle): settle upstream.
    SETTLING = 3
    #: Downstream failed it, or it could not be sent on: fail it upstream.
    FAILING = 4
    #: Settled or failed in the incoming channel: nothing left to do.
    DONE = 5


class PaymentStatus(enum.IntEnum):
    """The proto's PAYMENT_STATUS_* (same numbers)."""

    IN_FLIGHT = 1
    SUCCEEDED = 2
    FAILED = 3


@dataclass(frozen=True, slots=True)
class RouteHop:
    """One HTLC of a route as the payer computed it and every hop reads it (in clear)."""

    channel_id: bytes
    #: The node this hop pays (the HTLC's receiver).
    node: bytes
    amount: int
    expiry: int


@dataclass(frozen=True, slots=True)
class ForwardRecord:
    """An HTLC a peer offered this node, and what this node does with it: send it on along
    ``onward`` (its first hop over ``out_channel``), or settle it as the payee (``onward`` empty)."""

    in_channel: bytes
    payment_hash: bytes
    amount: int
    expiry: int
    onward: tuple[RouteHop, ...]
    status: ForwardStatus
    out_channel: bytes = b""
    preimage: bytes = b""
    reason: str = ""
    message: str = ""
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """A payment this node sends: one row per payment hash, whatever the routes tried."""

    payment_hash: bytes
    payee: bytes
    amount: int
    status: PaymentStatus
    fee: int = 0
    route: tuple[RouteHop, ...] = ()
    #: The first hop's channel of the current attempt.
    channel_id: bytes = b""
    attempts: int = 0
    preimage: bytes = b""
    reason: str = ""
    message: str = ""
    created_at: int = 0
    updated_at: int = 0
