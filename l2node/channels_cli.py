"""`l2node channels`, `invoice`, `pay` and `payment`: payment channels from the CLI.

    channels                          this node's channels, newest first
    channels ID                       one channel, with its latest state both signed
    channels [ID] --follow            every event (one channel's), from the first, then as they happen
    channels --known                  the channels payments route over (this node's and announced)
    channels open PEER --amount A [--peer-amount B]
                                      a channel with the node whose channels worker is at PEER
                                      (host:port, as that node's endpoints.json lists it); done once
                                      it is OPEN on L1
    channels close ID [--force]       cooperative (both sign the final balances, paid out at once),
                                      or forced: the latest co-signed state on L1, concluded by this
                                      node after the adjudicator's challenge period
    invoice --amount A [--memo TEXT]  a new invoice of this node; prints its encoded form first
    pay INVOICE                       pay an invoice (its preimage comes back: the proof); a node
                                      that is no peer is paid over a route, for a fee
    pay --to ADDRESS --amount A       pay a peer's channel address
    payment HASH                      a payment this node sent: its status, route, fee, preimage

The tree is found through --data-dir as for every command, its channels worker through its
endpoints.json. Amounts are wei, or with a unit (1.5ether, 2gwei; l2node/cli_values.py); on the
wire they are decimal strings of wei. Mutating calls carry a request_id. --json prints the
service's answer as JSON, and a refusal as {"error": {"code", "reason", "message"}} (reason: the
service's ErrorInfo reason, e.g. INSUFFICIENT_BALANCE); every refusal is one line on stderr and
exit 1. cli.py registers these commands (``register``); this module holds them.
"""

from __future__ import annotations

import argparse
import functools
import json
import uuid
from collections.abc import Callable
from typing import Any, Final

from l2node import cli
from l2node.cli_values import parse_address, parse_amount, show_amount

#: How long each call may take: an open sends the L1 funding transactions and waits for them (the
#: peer's too); a close sends one and waits for it; a direct payment is one round trip to the peer,
#: a routed one waits for the preimage, and the worker answers PAYMENT_IN_FLIGHT after its own
#: payment_timeout_s (60 s by default): the command waits longer, to say that rather than time out.
OPEN_TIMEOUT_S: Final = 120.0
CLOSE_TIMEOUT_S: Final = 120.0
PAY_TIMEOUT_S: Final = 90.0
_PAGE: Final = 500

Command = Callable[[argparse.Namespace], int]


def _stub(args: argparse.Namespace) -> tuple[Any, Any]:
    from protos.l2node.channels.v1 import channels_pb2_grpc

    channel = cli._service_channel(args.data_dir, "channels")
    return channel, channels_pb2_grpc.ChannelsServiceStub(channel)  # type: ignore[no-untyped-call]  # generated


def _call(args: argparse.Namespace, method: str, request: Any, timeout: float = cli._RPC_TIMEOUT_S) -> Any:
    """One ChannelsService call; a refusal is cli.RpcRefused (code, reason, message)."""
    channel, stub = _stub(args)
    with channel:
        return cli._rpc(getattr(stub, method), request, timeout=timeout)


def _json_errors(fn: Command) -> Command:
    """Under --json a failure is also a JSON document on stdout, so a program reads its reason."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except cli.CliError as exc:
            if args.json:
                error = exc.to_json() if isinstance(exc, cli.RpcRefused) else \
                    {"code": "", "reason": "", "message": str(exc)}
                print(json.dumps({"error": error}), flush=True)
            raise

    return run


def _print_json(message: Any) -> None:
    print(json.dumps(cli._message_dict(message)), flush=True)


# -- what a channel looks like -------------------------------------------------------------------


def _status(c: Any) -> str:
    from protos.l2node.channels.v1 import channels_pb2 as pb

    return cli._enum_word(pb.ChannelStatus, c.status, "CHANNEL_STATUS_").upper()


def _peer_address(c: Any) -> str:
    return str(c.b if c.our_side == "a" else c.a)


def _wei(text: str) -> int:
    return int(text or 0)


def _sequence(state: Any) -> str:
    """A state's sequence; the final state of a cooperative close says so (protocol's C10)."""
    from protocol import FINAL_SEQUENCE

    return "final" if state.sequence == FINAL_SEQUENCE else str(state.sequence)


def channel_line(c: Any) -> str:
    """A channel in one line, for the list."""
    return (f"{c.channel_id}  {_status(c):<8}  peer {_peer_address(c)} at {c.peer or '?'}  "
            f"local {show_amount(_wei(c.local_balance))}  remote {show_amount(_wei(c.remote_balance))}  "
            f"sequence {_sequence(c.state)}")


def channel_text(c: Any) -> str:
    """A channel, its latest co-signed state and its L1 history, for people."""
    s = c.state
    lines = [f"channel {c.channel_id}  {_status(c)}",
             f"  us          {c.a if c.our_side == 'a' else c.b} (side {c.our_side})",
             f"  peer        {_peer_address(c)} at {c.peer or '?'}",
             f"  funded      a {show_amount(_wei(c.amount_a))}, b {show_amount(_wei(c.amount_b))}",
             f"  latest      sequence {_sequence(s)}, signed by both: a {show_amount(_wei(s.balance_a))}, "
             f"b {show_amount(_wei(s.balance_b))}",
             f"  ours        local {show_amount(_wei(c.local_balance))}, remote {show_amount(_wei(c.remote_balance))}"]
    for h in s.htlcs:
        lines.append(f"  htlc        {show_amount(_wei(h.amount))} from {'a' if h.from_a else 'b'}, "
                     f"hash {h.payment_hash}, expires {cli._utc(h.expiry)}")
    if c.open_l1_tx_hash:
        lines.append(f"  opened in   L1 tx {c.open_l1_tx_hash}")
    if c.close_l1_tx_hash:
        lines.append(f"  closed in   L1 tx {c.close_l1_tx_hash}")
    if c.closes_at:
        lines.append(f"  disputed    until {cli._utc(c.closes_at)} (the challenge period; then concluded on L1)")
    if c.reason:
        lines.append(f"  failed      {c.reason}")
    return "\n".join(lines)


# -- the commands ----------------------------------------------------------------------------------


#: The options of `channels` that only one of its forms takes: the flag, and that form.
_OPTION_OF: Final = {"amount": ("--amount", "open"), "peer_amount": ("--peer-amount", "open"),
                     "force": ("--force", "close"), "stale": ("--stale", "close"), "follow": ("--follow", "[ID]"),
                     "known": ("--known", "[ID]")}


@_json_errors
def cmd_channels(args: argparse.Namespace) -> int:
    """`channels`, `channels ID`, `channels open PEER`, `channels close ID`: one parser, the first
    word says which (a channel id is never "open" or "close")."""
    what, arg = args.what, args.arg
    form = what if what in ("open", "close") else "[ID]"
    for name, (flag, owner) in _OPTION_OF.items():
        if getattr(args, name) not in (None, False) and owner != form:
            raise cli.CliError(f"{flag} is for `channels {owner}`")
    if what == "open":
        return _open(args, _needs(arg, "channels open PEER --amount A: PEER (host:port) is missing"))
    if what == "close":
        return _close(args, _needs(arg, "channels close ID: the channel id is missing"))
    if arg is not None:
        raise cli.CliError(f"channels {what} {arg}: give one channel id (or open / close)")
    if args.follow:
        return _follow(args, what or "")
    if args.known:
        if what is not None:
            raise cli.CliError("--known lists every channel this node knows of: give no ID")
        return _known(args)
    if what is None:
        return _list(args)
    from protos.l2node.channels.v1 import channels_pb2 as pb

    channel = _call(args, "GetChannel", pb.GetChannelRequest(channel_id=what)).channel
    if args.json:
        _print_json(channel)
    else:
        print(channel_text(channel))
    return 0


def _needs(value: str | None, missing: str) -> str:
    if not value:
        raise cli.CliError(missing)
    return value


def _list(args: argparse.Namespace) -> int:
    from protos.l2node.channels.v1 import channels_pb2 as pb

    token, shown = "", 0
    while True:
        page = _call(args, "ListChannels", pb.ListChannelsRequest(page_size=_PAGE, page_token=token))
        for c in page.channels:
            if args.json:
                _print_json(c)
            else:
                print(channel_line(c), flush=True)
        shown += len(page.channels)
        if not (token := page.next_page_token):
            break
    if not shown and not args.json:
        print("no channels (open one with `l2node channels open PEER --amount A`)")
    return 0


def event_line(e: Any) -> str:
    """An event in one line: when, what, which channel, how much, which payment."""
    parts = [f"{e.sequence:>6}  {cli._utc(e.at)}  {e.kind:<16}"]
    if e.channel_id:
        parts.append(f"channel {e.channel_id} ({_status(e.channel)})" if e.HasField("channel")
                     else f"channel {e.channel_id}")
    if _wei(e.amount):
        parts.append(show_amount(_wei(e.amount)))
    if e.payment_hash:
        parts.append(f"payment {e.payment_hash}")
    return "  ".join(parts)


def _follow(args: argparse.Namespace, channel_id: str) -> int:
    """Every event (one channel's, with an id), from the first, then each as it happens; Ctrl-C ends."""
    import grpc

    from protos.l2node.channels.v1 import channels_pb2 as pb

    channel, stub = _stub(args)
    with channel:
        try:
            for e in stub.SubscribeEvents(pb.SubscribeEventsRequest(from_sequence=0, channel_id=channel_id)):
                print(json.dumps(cli._message_dict(e)) if args.json else event_line(e), flush=True)
        except grpc.RpcError as exc:
            raise cli.rpc_refused(exc) from None
        except KeyboardInterrupt:
            return 0
    return 0


def _known(args: argparse.Namespace) -> int:
    """The channels this node routes over: its own and those its peers announced, one direction a line."""
    from protos.l2node.channels.v1 import channels_pb2 as pb

    found = _call(args, "ListKnownChannels", pb.ListKnownChannelsRequest()).channels
    for k in found:
        if args.json:
            _print_json(k)
        else:
            print(f"{k.channel_id}  {k.node} -> {k.peer}  capacity {show_amount(_wei(k.capacity))}  "
                  f"fee {k.fee_base} wei + {k.fee_ppm} ppm  expiry delta {k.expiry_delta_s}s", flush=True)
    if not found and not args.json:
        print("no channels known (peers announce theirs once open)")
    return 0


def _open(args: argparse.Namespace, peer: str) -> int:
    from protos.l2node.channels.v1 import channels_pb2 as pb

    if args.amount is None:
        raise cli.CliError("channels open PEER: --amount A (what this node locks) is missing")
    request = pb.OpenChannelRequest(request_id=uuid.uuid4().hex, peer=peer, amount=str(args.amount),
                                    peer_amount=str(args.peer_amount or ""))
    reply = _call(args, "OpenChannel", request, OPEN_TIMEOUT_S)
    c = reply.channel
    if args.json:
        _print_json(reply)
    elif c.status == pb.CHANNEL_STATUS_FAILED:
        print(f"channel {c.channel_id} with {peer} FAILED: {c.reason}")
    else:
        print(f"opened channel {c.channel_id} with {_peer_address(c)} at {peer}: {_status(c)}, "
              f"we lock {show_amount(_wei(c.local_balance))}, the peer {show_amount(_wei(c.remote_balance))}"
              f"{f' (L1 tx {c.open_l1_tx_hash})' if c.open_l1_tx_hash else ''}")
    return 1 if c.status == pb.CHANNEL_STATUS_FAILED else 0


def _close(args: argparse.Namespace, channel_id: str) -> int:
    from protos.l2node.channels.v1 import channels_pb2 as pb

    request = pb.CloseChannelRequest(request_id=uuid.uuid4().hex, channel_id=channel_id, force=args.force)
    if args.stale is not None:
        if not args.force:
            raise cli.CliError("--stale is a forced close's: add --force")
        request.stale_sequence = args.stale
    reply = _call(args, "CloseChannel", request, CLOSE_TIMEOUT_S)
    c = reply.channel
    if args.json:
        _print_json(reply)
    elif args.stale is not None:
        print(f"fire drill: closed channel {c.channel_id} with the stale sequence {args.stale} (the latest is "
              f"{c.state.sequence}) in L1 tx {reply.l1_tx_hash}: {_status(c)} until {cli._utc(c.closes_at)}; this "
              f"node does not answer it: the peer or its watchtower must, with the newest state")
    elif args.force:
        print(f"forced close of channel {c.channel_id} in L1 tx {reply.l1_tx_hash}: {_status(c)} with sequence "
              f"{c.state.sequence} (local {show_amount(_wei(c.local_balance))}) until {cli._utc(c.closes_at)}; "
              f"a newer state from the peer replaces it until then, and this node concludes it after")
    else:
        print(f"closed channel {c.channel_id} cooperatively in L1 tx {reply.l1_tx_hash}: {_status(c)}, "
              f"paid out local {show_amount(_wei(c.local_balance))}, remote {show_amount(_wei(c.remote_balance))}")
    return 0


@_json_errors
def cmd_invoice(args: argparse.Namespace) -> int:
    from protos.l2node.channels.v1 import channels_pb2 as pb

    request = pb.CreateInvoiceRequest(request_id=uuid.uuid4().hex, amount=str(args.amount), memo=args.memo)
    invoice = _call(args, "CreateInvoice", request).invoice
    cli.span_attribute("l2.payment.hash", invoice.payment_hash)
    if args.json:
        _print_json(invoice)
        return 0
    print(invoice.encoded)
    memo = f" ({invoice.memo!r})" if invoice.memo else ""
    print(f"invoice {invoice.payment_hash}: {show_amount(_wei(invoice.amount))} to {invoice.payee}{memo}; "
          f"the payer runs `l2node pay {invoice.encoded}`")
    return 0


@_json_errors
def cmd_pay(args: argparse.Namespace) -> int:
    from protos.l2node.channels.v1 import channels_pb2 as pb

    if bool(args.invoice) == bool(args.to):
        raise cli.CliError("pay: give an INVOICE, or --to ADDRESS with --amount A")
    if args.to and args.amount is None:
        raise cli.CliError("pay --to ADDRESS: --amount A is missing")
    request = pb.PayRequest(request_id=uuid.uuid4().hex, amount=str(args.amount or ""),
                            max_fee=str(args.max_fee or ""), max_attempts=args.max_attempts or 0,
                            max_hops=args.max_hops or 0)
    if args.invoice:
        request.invoice = args.invoice
    else:
        request.address = args.to
    reply = _call(args, "Pay", request, PAY_TIMEOUT_S)
    if reply.payment_hash:
        cli.span_attribute("l2.payment.hash", reply.payment_hash)
    if args.json:
        _print_json(reply)
        return 0
    print(paid_text(reply, f"invoice {reply.payment_hash}" if args.invoice else f"{show_amount(args.amount)} "
                                                                                   f"to {args.to}"))
    return 0


def paid_text(reply: Any, what: str) -> str:
    """A payment made: over which channel (the first hop's), and a routed one's route and fee."""
    lines = [f"paid {what} over channel {reply.channel_id} (sequence {reply.sequence}, held by both); "
             f"local balance now {show_amount(_wei(reply.channel.local_balance))}"]
    p = reply.payment
    if len(p.route) > 1:
        hops = " -> ".join(h.node for h in p.route)
        tries = f", {p.attempts} attempts" if p.attempts > 1 else ""
        lines.append(f"routed over {len(p.route)} hops to {hops}: {show_amount(_wei(p.amount))} and a fee of "
                     f"{show_amount(_wei(p.fee))}{tries}")
    if reply.preimage:
        lines.append(f"preimage {reply.preimage} (sha256 = payment hash {reply.payment_hash}: the proof of payment)")
    return "\n".join(lines)


@_json_errors
def cmd_payment(args: argparse.Namespace) -> int:
    from protos.l2node.channels.v1 import channels_pb2 as pb

    cli.span_attribute("l2.payment.hash", args.hash)
    payment = _call(args, "GetPayment", pb.GetPaymentRequest(payment_hash=args.hash)).payment
    if args.json:
        _print_json(payment)
    else:
        print(payment_text(payment))
    return 0


def payment_text(p: Any) -> str:
    """A payment this node sent: where it stands, what it cost, the route it took (or last tried)."""
    from protos.l2node.channels.v1 import channels_pb2 as pb

    status = cli._enum_word(pb.PaymentStatus, p.status, "PAYMENT_STATUS_").upper()
    lines = [f"payment {p.payment_hash}  {status}  {show_amount(_wei(p.amount))} to {p.payee}, fee "
             f"{show_amount(_wei(p.fee))}, {p.attempts} attempt{'s' if p.attempts != 1 else ''}"]
    for i, h in enumerate(p.route):
        lines.append(f"  hop {i + 1}  {show_amount(_wei(h.amount))} to {h.node} over channel {h.channel_id}, "
                     f"expires {cli._utc(h.expiry)}")
    if p.preimage:
        lines.append(f"  preimage {p.preimage}")
    if p.reason:
        lines.append(f"  failed   {p.reason}: {p.message}")
    return "\n".join(lines)


# -- the commands' arguments -----------------------------------------------------------------------

_CHANNELS_HELP = """\
  l2node channels                                   this node's channels, newest first
  l2node channels ID                                one channel, with its latest co-signed state
  l2node channels [ID] --follow                     its events (opened, paid, disputed, closed...)
  l2node channels --known                           the channels payments may route over
  l2node channels open PEER --amount A [--peer-amount B]
                                                    open one with the node whose channels worker
                                                    is at PEER (host:port, from its endpoints.json)
  l2node channels close ID [--force]                cooperative close, or forced (on L1 with the
                                                    latest co-signed state; concluded after the
                                                    challenge period)
"""


def register(sub: Any, data_dir: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add channels, invoice, pay and payment to the `l2node` command's subparsers."""

    def as_json(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="the answer as JSON (a list: one object per line); "
                                                           "a refusal as {\"error\": {code, reason, message}}")

    amount_help = "wei, or with a unit: 1ether, 0.5ether, 5gwei"
    p = sub.add_parser("channels", help="payment channels: list, show, open, close",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=_CHANNELS_HELP)
    data_dir(p)
    p.add_argument("what", nargs="?", default=None, metavar="ID|open|close", help="a channel id, or open / close")
    p.add_argument("arg", nargs="?", default=None, metavar="PEER|ID", help="open: PEER (host:port); close: ID")
    p.add_argument("--amount", type=parse_amount, default=None, help=f"open: what this node locks ({amount_help})")
    p.add_argument("--peer-amount", type=parse_amount, default=None,
                   help="open: what the peer locks, if it agrees (default none)")
    p.add_argument("--force", action="store_true", help="close: on L1 alone, with the latest co-signed state")
    p.add_argument("--stale", type=int, default=None, metavar="SEQUENCE",
                   help="close --force: a devnet fire drill, with this older co-signed state (as a cheater "
                        "would); the peer or its watchtower answers with the newest")
    p.add_argument("--known", action="store_true",
                   help="the channels this node routes over (its own and its peers' announcements)")
    p.add_argument("--follow", action="store_true",
                   help="every event (the channel's, with an ID) from the first, then as they happen; Ctrl-C ends")
    as_json(p)
    p.set_defaults(fn=cmd_channels)

    p = sub.add_parser("invoice", help="a new invoice of this node's channels (prints its encoded form first)")
    data_dir(p)
    p.add_argument("--amount", required=True, type=parse_amount, help=amount_help)
    p.add_argument("--memo", default="", help="what it is for (shown to the payer)")
    as_json(p)
    p.set_defaults(fn=cmd_invoice)

    p = sub.add_parser("pay", help="pay an invoice, or an amount to a peer's channel address")
    data_dir(p)
    p.add_argument("invoice", nargs="?", default="", metavar="INVOICE", help="what `l2node invoice` printed")
    p.add_argument("--to", type=parse_address, default=None, help="... or a peer's channel address (0x)")
    p.add_argument("--amount", type=parse_amount, default=None, help=f"with --to ({amount_help})")
    p.add_argument("--max-fee", type=parse_amount, default=None,
                   help="a routed payment: the most paid in fees (default 1%% of the amount, at least 10000 wei)")
    p.add_argument("--max-attempts", type=_count, default=None, help="a routed payment: the most routes tried (3)")
    p.add_argument("--max-hops", type=_count, default=None, help="a routed payment: the most hops of a route (8)")
    as_json(p)
    p.set_defaults(fn=cmd_pay)

    p = sub.add_parser("payment", help="a payment this node sent, by its payment hash: status, route, fee")
    data_dir(p)
    p.add_argument("hash", metavar="HASH", help="its payment hash (0x...)")
    as_json(p)
    p.set_defaults(fn=cmd_payment)


def _count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (a whole number from 1)")
    return int(text)
