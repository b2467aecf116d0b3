"""kill -9 between storing a state and its signature reaching the peer: A signs and stores a
payment of B's invoice while B is down (the signature never arrives), then A is killed. Restarted,
A re-sends that very state (never another one at its sequence) with the invoice, B accepts it, a
retried payment of the invoice is answered with its preimage (paid once), and the channel goes on."""

from __future__ import annotations

import hashlib
import itertools
import signal
import sqlite3
import threading

import grpc
import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._nodes import ETHER, Node, Pair, reason_of, wait_for


def states(node: Node, channel_id: str) -> dict[int, tuple[str, str, bytes, bytes]]:
    """Every state of the channel the node's store holds: sequence -> (balance A, balance B, sig A, sig B).
    (The tests of this module share a pair of nodes, and each opens a channel of its own.)"""
    with sqlite3.connect(f"file:{node.tmp_path / node.name / node.name}.db?mode=ro", uri=True) as db:
        rows = db.execute("SELECT sequence, balance_a, balance_b, sig_a, sig_b FROM states WHERE channel_id = ?",
                          (bytes.fromhex(channel_id.removeprefix("0x")),)).fetchall()
    return {s + 2**63: (ba, bb, bytes(sa), bytes(sb)) for s, ba, bb, sa, sb in rows}


def test_a_state_signed_and_stored_but_never_delivered_is_resent_as_it_is_after_kill_9(pair: Pair) -> None:
    a, b = pair.a, pair.b
    cid = pair.open(ETHER)
    a.pay(b, 100)
    b.pay(a, 40)
    invoice = b.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="777"), timeout=10).invoice
    b.stop(signal.SIGKILL)
    with pytest.raises(grpc.RpcError) as unanswered:
        a.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=20)
    assert (unanswered.value.code(), reason_of(unanswered.value)) == (grpc.StatusCode.UNAVAILABLE,
                                                                      "PEER_UNAVAILABLE")
    a.stop(signal.SIGKILL)
    pending = states(a, cid)[3]
    assert pending[:2] == (str(ETHER - 100 + 40 - 777), str(100 - 40 + 777)) and pending[2] and not pending[3]

    b.start()
    a.start()
    # A's resume re-sends sequence 3 as it was signed; B counter-signs it: both hold it.
    wait_for(lambda: a.channel(cid).state.sequence == 3, 30, "A holds sequence 3 co-signed")
    assert b.channel(cid).state == a.channel(cid).state
    assert states(a, cid)[3][2] == pending[2]  # the very signature stored before the crash
    # The payer retrying the invoice is told it is paid (the preimage), not charged twice.
    retried = a.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=20)
    assert retried.sequence == 3 and hashlib.sha256(bytes.fromhex(retried.preimage[2:])).hexdigest() == \
        invoice.payment_hash[2:]
    assert a.pay(b, 1).sequence == 4 and b.pay(a, 2).sequence == 5
    ours, theirs = states(a, cid), states(b, cid)
    assert sorted(ours) == sorted(theirs) == [0, 1, 2, 3, 4, 5]
    assert a.channel(cid).state.balance_b == str(100 - 40 + 777 + 1 - 2)
    assert ours == theirs  # one state per sequence, the same on both sides, signed by both
    assert all(sig_a and sig_b for _, _, sig_a, sig_b in ours.values())


def test_an_address_payment_retried_after_peer_unavailable_pays_once(pair: Pair) -> None:
    a, b = pair.a, pair.b
    pair.open(ETHER)
    channels = {c.channel_id: int(c.local_balance) for c in b.stub.ListChannels(pb.ListChannelsRequest(),
                                                                                timeout=10).channels}
    b.stop(signal.SIGKILL)
    request = pb.PayRequest(request_id="coffee-42", address="0x" + b.address.hex(), amount="500")
    with pytest.raises(grpc.RpcError) as unanswered:
        a.stub.Pay(request, timeout=20)
    assert reason_of(unanswered.value) == "PEER_UNAVAILABLE"  # signed and stored: it may yet arrive
    b.start()
    # The client retries with the same request_id: the pending state is delivered, not a second one.
    first = a.stub.Pay(request, timeout=20)
    again = a.stub.Pay(request, timeout=20)
    assert (first.channel_id, first.sequence) == (again.channel_id, again.sequence)
    after = {c.channel_id: int(c.local_balance) for c in b.stub.ListChannels(pb.ListChannelsRequest(),
                                                                             timeout=10).channels}
    assert sum(after.values()) == sum(channels.values()) + 500  # bob holds the payment once
    assert after[first.channel_id] == channels[first.channel_id] + 500


def test_kill_9_while_commits_are_grouped_loses_no_answered_payment_and_signs_one_state_a_sequence(
        pair: Pair) -> None:
    """The workers fsync their commits in groups (Storage.sync_in_groups), each answer and each
    signature waiting for its own: kill -9 both sides with payments in flight, and every payment
    answered is in a state both hold, co-signed, one state per sequence on both sides."""
    a, b = pair.a, pair.b
    pair.open(ETHER)  # (the module's earlier tests left channels of theirs: a payment takes any of them)
    answered: list[tuple[int, str, int]] = []  # (amount, channel, sequence) of each payment Pay answered
    enough = threading.Event()

    def payer(worker: int) -> None:
        for i in itertools.count():
            amount = 1 + worker * 100_000 + i
            try:
                paid = a.stub.Pay(pb.PayRequest(address="0x" + b.address.hex(), amount=str(amount)), timeout=20)
            except grpc.RpcError:
                return  # killed under it: unanswered, so it may or may not have been paid
            answered.append((amount, paid.channel_id, paid.sequence))
            if len(answered) >= 200:
                enough.set()

    threads = [threading.Thread(target=payer, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    assert enough.wait(60), "200 payments answered"
    b.stop(signal.SIGKILL)  # mid-flight: B's counter-signatures and A's proposals in groups
    a.stop(signal.SIGKILL)
    for thread in threads:
        thread.join(30)
    b.start()
    a.start()
    latest: dict[str, int] = {}
    for cid in {c for _, c, _ in answered}:
        # A's resume re-sends what it signed and was not answered; then both hold the same latest
        # state. Equal latest states alone are not enough: when B was killed before it stored A's
        # last proposal, both restart at the state before it, and B co-signs the re-sent one while A
        # has yet to store the answer.
        def settled(cid: str = cid) -> bool:
            highest = max(states(a, cid).items())
            ours = a.channel(cid).state
            return bool(highest[1][2] and highest[1][3]) and ours.sequence == highest[0] and \
                ours == b.channel(cid).state
        wait_for(settled, 30, f"A's last proposal on {cid} answered, and A and B hold the same latest state")
        ours, theirs = states(a, cid), states(b, cid)
        cosigned = {s: v for s, v in ours.items() if v[2] and v[3]}
        assert cosigned == {s: v for s, v in theirs.items() if v[2] and v[3]}  # one state a sequence, both sides
        paid_here = [(amount, sequence) for amount, c, sequence in answered if c == cid]
        for amount, sequence in paid_here:
            assert sequence in cosigned, (amount, cid, sequence)  # every answered payment's state, on both sides
        latest[cid] = max(cosigned)
        # B holds every payment answered on the channel (it began with nothing on B's side here).
        assert int(cosigned[latest[cid]][1]) - int(cosigned[0][1]) >= sum(amount for amount, _ in paid_here)
    held = {c.channel_id: c.state.sequence for c in a.stub.ListChannels(pb.ListChannelsRequest(), timeout=10).channels}
    assert all(held[cid] == sequence for cid, sequence in latest.items())
    again = a.pay(b, 1)
    assert again.sequence == held[again.channel_id] + 1  # and the channels go on
