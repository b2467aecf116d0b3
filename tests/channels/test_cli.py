"""`l2node channels`, `invoice`, `pay` and `payment` as a user runs them: two real `l2node up`
trees on one anvil (tests/channels/_trees.py), each command a subprocess against its tree's
--data-dir. Open A-B, look at it from both sides, pay B's invoice and B's address, close it
cooperatively; open another and close it by force (A following its events), concluded after the
challenge period; and the refusals: one line with the service's reason on stderr, exit 1, the
reason in --json. What a routed payment prints is checked on the answers offline (the routing
itself: test_multihop.py)."""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from l2node.channels_cli import paid_text, payment_text
from l2node.cli import main, parser
from tests.channels._trees import PERIOD, Tree, Trees
from tests.node.test_up import wait_for

ETHER = 10**18
GWEI = 10**9


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trees]:
    with Trees(tmp_path_factory.mktemp("cli"), 2, channels_only=True) as started:
        yield started


def channel(tree: Tree, cid: str) -> dict[str, Any]:
    doc: dict[str, Any] = tree.cli_json("channels", cid)
    return doc


def refused(tree: Tree, *args: str) -> tuple[str, dict[str, str]]:
    """The command, with --json, fails: one line on stderr (the service's code, reason and message),
    exit 1, and the same as a JSON error document on stdout."""
    r = tree.cli(*args, "--json", check=False)
    line = r.stderr.strip()
    assert r.returncode == 1 and line.startswith("l2node: ") and "\n" not in line and "Traceback" not in line, \
        (r.stdout, r.stderr)
    error: dict[str, str] = json.loads(r.stdout)["error"]
    assert line == f"l2node: {error['code']} {error['reason']}: {error['message']}"
    return line, error


def test_open_look_pay_an_invoice_and_an_address_and_close_cooperatively(trees: Trees) -> None:
    a, b = trees
    opened = a.cli("channels", "open", b.channels, "--amount", "1ether", "--peer-amount", "0.5ether")
    assert opened.stdout.startswith("opened channel 0x") and f"with {b.address} at {b.channels}: OPEN" in opened.stdout
    cid = opened.stdout.split()[2]
    # A's list (newest first), and B's: the same channel, seen from its side.
    assert a.cli("channels").stdout.splitlines()[0].startswith(f"{cid}  OPEN      peer {b.address} at {b.channels}")
    listed = wait_for(lambda: [c for c in map(json.loads, b.cli("channels", "--json").stdout.splitlines())
                               if c["channel_id"] == cid and c["status"] == "CHANNEL_STATUS_OPEN"], 20,
                      "B sees the channel OPEN")[0]
    assert (listed["our_side"], listed["amount_a"], listed["amount_b"], listed["peer"]) == \
        ("b", str(ETHER), str(ETHER // 2), a.channels)
    shown = b.cli("channels", cid).stdout
    assert shown.startswith(f"channel {cid}  OPEN\n") and f"{b.address} (side b)" in shown
    # What payments route over: A's side of the channel, with the routing terms it announces.
    known = f"{cid}  {a.address} -> {b.address}  capacity 1 ETH ({ETHER} wei)  fee 1000 wei + 1000 ppm"
    wait_for(lambda: known in a.cli("channels", "--known").stdout, 20, "A's channel in its graph")
    assert f"peer        {a.address} at {a.channels}" in shown and "sequence 0, signed by both" in shown

    # B's invoice, paid by A: the preimage comes back, its sha256 the payment hash.
    invoice = b.cli("invoice", "--amount", "2gwei", "--memo", "coffee").stdout.splitlines()
    assert invoice[0].startswith(f"l2inv:{b.address}:{2 * GWEI}:0x") and "'coffee'" in invoice[1]
    payment_hash = invoice[0].rsplit(":", 1)[1]
    proof = a.cli_json("pay", invoice[0])
    assert (proof["channel_id"], proof["sequence"], proof["payment_hash"]) == (cid, "1", payment_hash)
    assert "0x" + hashlib.sha256(bytes.fromhex(proof["preimage"][2:])).hexdigest() == payment_hash
    # An amount to B's channel address.
    to_address = a.cli("pay", "--to", b.address, "--amount", "1000").stdout
    assert to_address.startswith(f"paid 0.000000000000001 ETH (1000 wei) to {b.address} over channel {cid} "
                                 f"(sequence 2, held by both); local balance now ")

    # Both sides hold the same co-signed state, both signatures on it.
    balance_a, balance_b = ETHER - 2 * GWEI - 1000, ETHER // 2 + 2 * GWEI + 1000
    ours, theirs = channel(a, cid), channel(b, cid)
    assert ours["state"] == theirs["state"]
    assert (ours["state"]["sequence"], ours["state"]["balance_a"], ours["state"]["balance_b"]) == \
        ("2", str(balance_a), str(balance_b))
    assert ours["signature_b"] == theirs["signature_b"] and ours["signature_a"] == theirs["signature_a"]
    assert (theirs["local_balance"], theirs["remote_balance"]) == (str(balance_b), str(balance_a))

    # Cooperative close by A: B sends nothing and is paid exactly its balance on L1.
    before_b = trees.balance(b.address)
    closed = a.cli("channels", "close", cid).stdout
    assert closed.startswith(f"closed channel {cid} cooperatively in L1 tx 0x") and ": CLOSED, paid out" in closed
    assert trees.balance(b.address) == before_b + balance_b
    wait_for(lambda: channel(b, cid)["status"] == "CHANNEL_STATUS_CLOSED", 20, "B sees the channel CLOSED")
    plain = a.cli("pay", "--to", b.address, "--amount", "1", check=False)  # without --json: stderr alone
    assert (plain.returncode, plain.stdout) == (1, "")
    assert plain.stderr.startswith("l2node: FAILED_PRECONDITION NO_ROUTE: ")  # its only channel with B is closed


def test_a_forced_close_is_concluded_after_the_challenge_period(trees: Trees) -> None:
    a, b = trees
    cid = a.cli_json("channels", "open", b.channels, "--amount", "0.1ether")["channel"]["channel_id"]
    assert a.cli_json("pay", "--to", b.address, "--amount", "1gwei")["sequence"] == "1"
    # Paying more than A holds is refused, saying why, and changes nothing (the close below has sequence 1).
    line, error = refused(a, "pay", "--to", b.address, "--amount", "1ether")
    assert (error["code"], error["reason"]) == ("FAILED_PRECONDITION", "NO_ROUTE") and str(ETHER) in line

    wait_for(lambda: channel(b, cid)["status"] == "CHANNEL_STATUS_OPEN", 20, "B sees the channel OPEN")
    events = a.follow("channels", cid, "--follow", "--json")  # A watches its channel as B forces it closed
    forced = b.cli("channels", "close", cid, "--force").stdout
    assert forced.startswith(f"forced close of channel {cid} in L1 tx 0x") and ": DISPUTED with sequence 1" in forced
    shown = b.cli("channels", cid).stdout
    assert shown.startswith(f"channel {cid}  DISPUTED\n") and "disputed    until " in shown
    events.wait_for_line(lambda line: '"CHANNEL_DISPUTED"' in line, 20, "A sees the dispute")
    trees.pass_time(PERIOD + 1)
    wait_for(lambda: all(channel(t, cid)["status"] == "CHANNEL_STATUS_CLOSED" for t in (a, b)), 30,
             "both see it concluded after the period")
    events.wait_for_line(lambda line: '"CHANNEL_CLOSED"' in line, 10, "A's CHANNEL_CLOSED event")
    assert events.stop() == 0
    seen = [json.loads(line) for line in events.lines]
    assert {e["channel_id"] for e in seen} == {cid}
    kinds = [e["kind"] for e in seen]
    assert kinds[0] in ("CHANNEL_OPENING", "CHANNEL_OPEN") and kinds.count("PAYMENT_SENT") == 1
    assert kinds.index("CHANNEL_DISPUTED") < kinds.index("CHANNEL_CLOSED") == len(kinds) - 1, kinds


def test_refusals_are_one_line_with_the_reason(trees: Trees) -> None:
    a = trees[0]
    unknown = "0x" + "11" * 32
    for args, code, reason in [
        (("channels", "open", "nonsense", "--amount", "1"), "INVALID_ARGUMENT", "MALFORMED_ENDPOINT"),
        (("channels", unknown), "NOT_FOUND", "CHANNEL_NOT_FOUND"),
        (("channels", "0x11"), "INVALID_ARGUMENT", "MALFORMED_HASH"),
        (("pay", "l2inv:nonsense"), "INVALID_ARGUMENT", "MALFORMED_INVOICE"),
        (("payment", unknown), "NOT_FOUND", "PAYMENT_NOT_FOUND"),
        (("pay", f"l2inv:{trees[1].address}:100:{unknown}", "--amount", "5"), "INVALID_ARGUMENT", "AMOUNT_MISMATCH"),
    ]:
        line, error = refused(a, *args)
        assert (error["code"], error["reason"]) == (code, reason), line


# --- offline: what the commands take, and what they refuse before asking anyone --------------------


def test_the_commands_arguments() -> None:
    args = parser().parse_args(["channels", "open", "h:1", "--amount", "1.5ether", "--peer-amount", "2gwei"])
    assert (args.what, args.arg, args.amount, args.peer_amount, args.force) == ("open", "h:1", 3 * ETHER // 2,
                                                                                  2 * GWEI, False)
    args = parser().parse_args(["channels", "close", "0xab", "--force", "--json"])
    assert (args.what, args.arg, args.force, args.json) == ("close", "0xab", True, True)
    assert (parser().parse_args(["channels"]).what, parser().parse_args(["channels", "0xab"]).what) == (None, "0xab")
    args = parser().parse_args(["invoice", "--amount", "7", "--memo", "tea"])
    assert (args.amount, args.memo) == (7, "tea")
    args = parser().parse_args(["pay", "--to", "0x" + "AB" * 20, "--amount", "1gwei"])
    assert (args.invoice, args.to, args.amount, args.max_fee, args.max_attempts) == ("", "0x" + "ab" * 20, GWEI,
                                                                                     None, None)
    args = parser().parse_args(["pay", "l2inv:x", "--max-fee", "2gwei", "--max-attempts", "5", "--max-hops", "3"])
    assert (args.invoice, args.max_fee, args.max_attempts, args.max_hops) == ("l2inv:x", 2 * GWEI, 5, 3)
    assert parser().parse_args(["channels", "--known"]).known


@pytest.mark.parametrize(("argv", "says"), [
    (["channels", "open", "h:1"], "--amount A (what this node locks) is missing"),
    (["channels", "open"], "PEER (host:port) is missing"),
    (["channels", "close"], "the channel id is missing"),
    (["channels", "open", "h:1", "--amount", "1", "--force"], "--force is for `channels close`"),
    (["channels", "close", "0xab", "--amount", "1"], "--amount is for `channels open`"),
    (["channels", "--peer-amount", "1"], "--peer-amount is for `channels open`"),
    (["channels", "open", "h:1", "--amount", "1", "--follow"], "--follow is for `channels [ID]`"),
    (["channels", "0xab", "--force"], "--force is for `channels close`"),
    (["channels", "0xab", "0xcd"], "give one channel id"),
    (["channels", "0xab", "--known"], "--known lists every channel this node knows of: give no ID"),
    (["channels", "close", "0xab", "--known"], "--known is for `channels [ID]`"),
    (["pay"], "give an INVOICE, or --to ADDRESS with --amount A"),
    (["pay", "l2inv:x", "--to", "0x" + "11" * 20], "give an INVOICE, or --to ADDRESS"),
    (["pay", "--to", "0x" + "11" * 20], "--amount A is missing"),
])
def test_incomplete_commands_say_what_is_missing(argv: list[str], says: str, tmp_path: pathlib.Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--data-dir", str(tmp_path)]) == 1
    assert says in capsys.readouterr().err


def test_a_routed_payment_says_its_route_and_fee() -> None:
    """What `pay` and `payment` print of a payment routed A -> B -> C (the answers built here as the
    worker gives them: tests/channels/test_multihop.py pays over real nodes)."""
    from protos.l2node.channels.v1 import channels_pb2 as pb

    b, c, ab, bc, h, preimage = "0x" + "bb" * 20, "0x" + "cc" * 20, "0x" + "a1" * 32, "0x" + "b2" * 32, \
        "0x" + "77" * 32, "0x" + "99" * 32
    payment = pb.Payment(payment_hash=h, payee=c, amount="100000", fee="1100", status=pb.PAYMENT_STATUS_SUCCEEDED,
                         preimage=preimage, attempts=2,
                         route=[pb.RouteHop(channel_id=ab, node=b, amount="101100", expiry=1_800_000_080),
                                pb.RouteHop(channel_id=bc, node=c, amount="100000", expiry=1_800_000_040)])
    reply = pb.PayResponse(channel_id=ab, sequence=7, payment_hash=h, preimage=preimage,
                           channel=pb.Channel(channel_id=ab, local_balance="899000"), payment=payment)
    assert paid_text(reply, f"invoice {h}").splitlines() == [
        f"paid invoice {h} over channel {ab} (sequence 7, held by both); local balance now "
        "0.000000000000899 ETH (899000 wei)",
        f"routed over 2 hops to {b} -> {c}: 0.0000000000001 ETH (100000 wei) and a fee of "
        "0.0000000000000011 ETH (1100 wei), 2 attempts",
        f"preimage {preimage} (sha256 = payment hash {h}: the proof of payment)"]
    assert payment_text(payment).splitlines() == [
        f"payment {h}  SUCCEEDED  0.0000000000001 ETH (100000 wei) to {c}, fee 0.0000000000000011 ETH (1100 wei), "
        "2 attempts",
        f"  hop 1  0.0000000000001011 ETH (101100 wei) to {b} over channel {ab}, expires 2027-01-15T08:01:20Z",
        f"  hop 2  0.0000000000001 ETH (100000 wei) to {c} over channel {bc}, expires 2027-01-15T08:00:40Z",
        f"  preimage {preimage}"]
    failed = pb.Payment(payment_hash=h, payee=c, amount="5000", fee="0", status=pb.PAYMENT_STATUS_FAILED,
                        attempts=1, reason="UNKNOWN_INVOICE", message="carol issued no such invoice")
    assert payment_text(failed).splitlines()[-1] == "  failed   UNKNOWN_INVOICE: carol issued no such invoice"


def test_without_a_tree_json_says_so_too(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["channels", "--json", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr()
    assert out.err.startswith(f"l2node: no running tree in {tmp_path}")
    assert json.loads(out.out)["error"]["message"].startswith(f"no running tree in {tmp_path}")


@pytest.mark.parametrize(("argv", "says"), [
    (["channels", "open", "h:1", "--amount", "1.5wei"], "argument --amount: '1.5wei' is not a whole number of wei"),
    (["invoice"], "the following arguments are required: --amount"),
    (["invoice", "--amount", "0"], "the amount must be more than 0"),
    (["pay", "--to", "0x12", "--amount", "1"], "argument --to: '0x12' is not a 20-byte 0x address"),
    (["pay", "l2inv:x", "--max-attempts", "0"], "argument --max-attempts: '0' is not a count"),
])
def test_usage_errors_say_what_is_wrong(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    assert says in capsys.readouterr().err
