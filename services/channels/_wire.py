"""The proto's shapes of the worker's records, and the parsing of request fields (bad input is
INVALID_ARGUMENT with a reason)."""

from __future__ import annotations

import functools
from typing import Final

from protocol import Change, UpdateKind
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.runtime import FieldViolation, InvalidArgument

from ._records import ChannelRecord, EventRecord, HtlcTuple, InvoiceRecord, PaymentRecord, RouteHop, StateRecord

#: An invoice as text: "l2inv:" payee ":" amount ":" payment_hash.
INVOICE_PREFIX: Final = "l2inv:"


def hex0x(b: bytes) -> str:
    return "0x" + b.hex()


def parse_hex(value: str, size: int, field: str) -> bytes:
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size:
        kind = "ADDRESS" if size == 20 else "HASH"
        raise InvalidArgument(f"{field} must be 0x followed by {2 * size} hex digits, not {value!r}",
                              reason=f"MALFORMED_{kind}", field_violations=[FieldViolation(field, f"{size}-byte hex")])
    return raw


def amount_of(text: str, field: str, *, empty_ok: bool = True) -> int:
    """Wei from a decimal string ("" = 0 when ``empty_ok``)."""
    if text == "" and empty_ok:
        return 0
    if not text.isdigit() or int(text) >= 2**256:
        raise InvalidArgument(f"{field} must be wei as a decimal string, not {text!r}", reason="MALFORMED_AMOUNT",
                              field_violations=[FieldViolation(field, "decimal wei")])
    return int(text)


#: HTLCs kept encoded and decoded (an HTLC in flight is in every state until it resolves, and each
#: state of a busy channel is encoded by its proposer and decoded by its receiver): a few channels'
#: MAX_HTLCS, the least recently used dropped.
_HTLCS_KEPT: Final = 16384


@functools.lru_cache(maxsize=_HTLCS_KEPT)
def _htlc_entry(htlc: HtlcTuple) -> bytes:
    """One HTLC as a serialized State's ``htlcs`` entry (its tag and length with it)."""
    f, amount, h, expiry = htlc
    return pb.State(htlcs=[pb.Htlc(from_a=f, amount=str(amount), payment_hash=hex0x(h), expiry=expiry)]
                    ).SerializeToString()


def state_pb(s: StateRecord) -> pb.State:
    """A state on the wire. Its HTLCs are joined as encoded once each (serialized messages
    concatenated parse as one, a repeated field's entries appended in order): building ~200 pb.Htlc
    a state, with their hex and decimal text, was 9% of a forwarding hop's CPU."""
    head = pb.State(channel_id=hex0x(s.channel_id), sequence=s.sequence, balance_a=str(s.balance_a),
                    balance_b=str(s.balance_b))
    if not s.htlcs:
        return head
    return pb.State.FromString(head.SerializeToString() + b"".join(map(_htlc_entry, s.htlcs)))


_CHANGE_KINDS: Final = {UpdateKind.ADD_HTLC: pb.HTLC_CHANGE_KIND_ADD,
                         UpdateKind.SETTLE_HTLC: pb.HTLC_CHANGE_KIND_SETTLE,
                         UpdateKind.FAIL_HTLC: pb.HTLC_CHANGE_KIND_FAIL}
_KINDS_OF: Final = {v: k for k, v in _CHANGE_KINDS.items()}


def change_pb(c: Change) -> pb.HtlcChange:
    """A chain's change on the wire (a SETTLE's preimage travels in its proposal's ``preimage``)."""
    return pb.HtlcChange(kind=_CHANGE_KINDS[c.kind], from_a=c.from_a, payment_hash=hex0x(c.payment_hash),
                         amount=str(c.amount) if c.amount else "", expiry=c.expiry)


def change_of_pb(c: pb.HtlcChange, preimage: bytes) -> Change:
    kind = _KINDS_OF.get(c.kind)
    if kind is None:
        raise InvalidArgument(f"change.kind {c.kind} is not ADD, SETTLE or FAIL", reason="MALFORMED_CHANGE",
                              field_violations=[FieldViolation("change.kind", "ADD, SETTLE or FAIL")])
    return Change(kind, c.from_a, parse_hex(c.payment_hash, 32, "change.payment_hash"),
                  amount_of(c.amount, "change.amount"), c.expiry,
                  preimage if kind is UpdateKind.SETTLE_HTLC else b"")


@functools.lru_cache(maxsize=_HTLCS_KEPT)
def _htlc_of(from_a: bool, amount: str, payment_hash: str, expiry: int) -> HtlcTuple:
    """A received HTLC's fields parsed (INVALID_ARGUMENT if malformed: a refusal is not kept)."""
    return from_a, amount_of(amount, "htlc.amount"), parse_hex(payment_hash, 32, "htlc.payment_hash"), expiry


def state_of_pb(s: pb.State) -> StateRecord:
    return StateRecord(parse_hex(s.channel_id, 32, "state.channel_id"), s.sequence,
                       amount_of(s.balance_a, "state.balance_a"), amount_of(s.balance_b, "state.balance_b"),
                       tuple(_htlc_of(h.from_a, h.amount, h.payment_hash, h.expiry) for h in s.htlcs))


def channel_pb(c: ChannelRecord, latest: StateRecord | None) -> pb.Channel:
    local = remote = 0
    if latest is not None:
        local, remote = (latest.balance_a, latest.balance_b) if c.we_are_a else (latest.balance_b, latest.balance_a)
    return pb.Channel(
        channel_id=hex0x(c.channel_id), a=hex0x(c.a), b=hex0x(c.b), nonce=c.nonce, our_side="a" if c.we_are_a else "b",
        peer=c.peer, status=f"CHANNEL_STATUS_{c.status.name}", amount_a=str(c.amount_a), amount_b=str(c.amount_b),
        state=state_pb(latest) if latest is not None else None,
        signature_a=hex0x(latest.sig_a) if latest is not None else "",
        signature_b=hex0x(latest.sig_b) if latest is not None else "",
        local_balance=str(local), remote_balance=str(remote),
        open_l1_tx_hash=hex0x(c.open_tx) if c.open_tx else "", close_l1_tx_hash=hex0x(c.close_tx) if c.close_tx else "",
        closes_at=c.closes_at, reason=c.reason, updated_at=c.updated_at)


def invoice_pb(i: InvoiceRecord, payee: bytes) -> pb.Invoice:
    return pb.Invoice(payment_hash=hex0x(i.payment_hash), amount=str(i.amount), payee=hex0x(payee), memo=i.memo,
                      status=f"INVOICE_STATUS_{i.status.name}", encoded=encode_invoice(payee, i.amount, i.payment_hash),
                      created_at=i.created_at)


def encode_invoice(payee: bytes, amount: int, payment_hash: bytes) -> str:
    return f"{INVOICE_PREFIX}{hex0x(payee)}:{amount}:{hex0x(payment_hash)}"


def decode_invoice(text: str) -> tuple[bytes, int, bytes]:
    """(payee, amount, payment_hash) of an encoded invoice."""
    parts = text.removeprefix(INVOICE_PREFIX).split(":")
    if not text.startswith(INVOICE_PREFIX) or len(parts) != 3:
        raise InvalidArgument(f"an invoice is {INVOICE_PREFIX}PAYEE:AMOUNT:PAYMENT_HASH, not {text!r}",
                              reason="MALFORMED_INVOICE", field_violations=[FieldViolation("invoice", "l2inv:...")])
    return parse_hex(parts[0], 20, "invoice payee"), amount_of(parts[1], "invoice amount", empty_ok=False), \
        parse_hex(parts[2], 32, "invoice payment hash")


def event_pb(e: EventRecord, channel: pb.Channel | None) -> pb.SubscribeEventsResponse:
    return pb.SubscribeEventsResponse(sequence=e.sequence, kind=e.kind,
                                      channel_id=hex0x(e.channel_id) if e.channel_id else "", channel=channel,
                                      payment_hash=hex0x(e.payment_hash) if e.payment_hash else "",
                                      amount=str(e.amount), at=e.at)


def route_hop_pb(h: RouteHop) -> pb.RouteHop:
    return pb.RouteHop(channel_id=hex0x(h.channel_id), node=hex0x(h.node), amount=str(h.amount), expiry=h.expiry)


def route_hop_of_pb(h: pb.RouteHop) -> RouteHop:
    return RouteHop(parse_hex(h.channel_id, 32, "route.channel_id"), parse_hex(h.node, 20, "route.node"),
                    amount_of(h.amount, "route.amount"), h.expiry)


def payment_pb(p: PaymentRecord) -> pb.Payment:
    return pb.Payment(payment_hash=hex0x(p.payment_hash), payee=hex0x(p.payee), amount=str(p.amount), fee=str(p.fee),
                      status=f"PAYMENT_STATUS_{p.status.name}", preimage=hex0x(p.preimage) if p.preimage else "",
                      route=[route_hop_pb(h) for h in p.route], attempts=p.attempts, reason=p.reason,
                      message=p.message, created_at=p.created_at, updated_at=p.updated_at)
