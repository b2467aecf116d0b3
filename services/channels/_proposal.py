"""What an update carries beside its state: the fields of a PeerService.Propose request that say
what the state means (a payment's amount and invoice, an HTLC's way on, a settle's preimage, a
fail's reason), and the shape a proposer builds an update in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from protocol import Chain, Change, Htlc
from protos.l2node.channels.v1 import channels_pb2 as pb

from ._records import ChannelRecord, RouteHop, StateRecord
from ._store import Effect
from ._wire import amount_of, change_of_pb, change_pb, hex0x, parse_hex, route_hop_of_pb, route_hop_pb, state_pb

#: H4's refusals: about the channel the HTLC would go on in, not the one it came in.
NEXT_HOP_REASONS: Final = frozenset({"UNKNOWN_NEXT_CHANNEL", "FEE_INSUFFICIENT", "EXPIRY_DELTA_TOO_SMALL"})


class Refused(Exception):
    """A proposal this node will not counter-sign: answered (accepted = false) with ``reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Proposal:
    #: A TRANSFER's amount (0 for the others: their amount is in the state).
    amount: int = 0
    #: A direct invoice payment's hash (its preimage comes back with the counter-signature).
    payment_hash: bytes = b""
    final: bool = False
    #: ADD_HTLC: the route on from the receiver, next hop first; empty: the receiver is the payee.
    onward: tuple[RouteHop, ...] = ()
    #: SETTLE_HTLC: the preimage.
    preimage: bytes = b""
    #: FAIL_HTLC: why (a reason code), its words, and the channel where it failed.
    fail_reason: str = ""
    fail_message: str = ""
    fail_channel: bytes = b""
    #: A TRANSFER making several payments: (amount, invoice payment hash or b"") each, adding up.
    parts: tuple[tuple[int, bytes], ...] = ()
    #: A chain's change (U5, P7; a SETTLE's preimage is ``preimage``).
    change: Change | None = None

    @property
    def payments(self) -> tuple[tuple[int, bytes], ...]:
        """The payments a TRANSFER makes: its parts, or the one of ``amount``."""
        return self.parts or ((self.amount, self.payment_hash),)

    def request(self, state: StateRecord | None, side_a: bool) -> pb.ProposeRequest:
        """The (unsealed) proposal of ``state``, signed by this node on ``side_a``; None: a step of a
        chain (its change alone, U5)."""
        request = pb.ProposeRequest(
            amount=str(self.amount), payment_hash=hex0x(self.payment_hash) if self.payment_hash else "",
            final=self.final, onward=[route_hop_pb(h) for h in self.onward],
            preimage=hex0x(self.preimage) if self.preimage else "", fail_reason=self.fail_reason,
            fail_message=self.fail_message, fail_channel_id=hex0x(self.fail_channel) if self.fail_channel else "",
            parts=[pb.PaymentPart(amount=str(a), payment_hash=hex0x(h) if h else "") for a, h in self.parts],
            change=change_pb(self.change) if self.change is not None else None)
        if state is not None:
            request.state.CopyFrom(state_pb(state))
            request.signature = state.sig_a if side_a else state.sig_b
        return request

    @classmethod
    def of(cls, request: pb.ProposeRequest) -> Proposal:
        """A received proposal's fields (INVALID_ARGUMENT with a reason if malformed)."""
        preimage = parse_hex(request.preimage, 32, "preimage") if request.preimage else b""
        return cls(amount_of(request.amount, "amount"),
                   parse_hex(request.payment_hash, 32, "payment_hash") if request.payment_hash else b"",
                   request.final, tuple(route_hop_of_pb(h) for h in request.onward), preimage,
                   request.fail_reason[:64], request.fail_message[:512],
                   parse_hex(request.fail_channel_id, 32, "fail_channel_id") if request.fail_channel_id else b"",
                   tuple((amount_of(p.amount, "parts.amount", empty_ok=False),
                          parse_hex(p.payment_hash, 32, "parts.payment_hash") if p.payment_hash else b"")
                         for p in request.parts),
                   change_of_pb(request.change, preimage) if request.HasField("change") else None)


@dataclass(frozen=True, slots=True)
class Ask:
    """A release (U7) of an HTLC offered to this node, to ask of its offerer: a settle with its
    preimage, or a fail with why (and the channel it failed at)."""

    payment_hash: bytes
    settle: bool
    preimage: bytes = b""
    fail_reason: str = ""
    fail_message: str = ""
    fail_channel: bytes = b""

    def request(self) -> pb.HtlcRequest:
        request = pb.HtlcRequest(payment_hash=hex0x(self.payment_hash))
        if self.settle:
            request.kind, request.preimage = pb.HTLC_CHANGE_KIND_SETTLE, hex0x(self.preimage)
        else:
            request.kind, request.fail_reason, request.fail_message = pb.HTLC_CHANGE_KIND_FAIL, self.fail_reason, \
                self.fail_message
            request.fail_channel_id = hex0x(self.fail_channel) if self.fail_channel else ""
        return request


@dataclass(frozen=True, slots=True)
class Built:
    """An update a proposer built: the new state (unsigned), its proposal, and what this node
    stores with its own signature of it (in the same commit)."""

    state: StateRecord
    proposal: Proposal
    effects: Sequence[Effect] = ()


#: Builds the next update on (the channel, its latest co-signed state, the next free sequence).
Make = Callable[[ChannelRecord, StateRecord, int], Built]


@dataclass(frozen=True, slots=True)
class Step:
    """A change this node chains (U5): its proposal (the change in it) and what this node stores
    with its own signature of the chain's state (in the same commit)."""

    proposal: Proposal
    effects: Sequence[Effect] = ()

    @property
    def change(self) -> Change:
        assert self.proposal.change is not None
        return self.proposal.change


#: Builds the next change of a chain on (the channel, the chain so far).
MakeStep = Callable[[ChannelRecord, Chain], Step]


def add_step(htlc: Htlc, onward: tuple[RouteHop, ...], effects: Sequence[Effect]) -> MakeStep:
    """The chain step offering ``htlc`` carrying the route on from its receiver, ``effects`` stored
    with the chain's signed state (the payer's payment row, a hop's forward)."""
    step = Step(Proposal(onward=onward, change=Change.add(htlc)), effects)

    def add(record: ChannelRecord, chain: Chain) -> Step:
        return step

    return add
