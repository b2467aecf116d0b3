"""Faults in the middle of multi-hop payments, on real workers over one anvil (issue 14: "kill -9
of a channel worker in the middle of a multi-hop payment, on each of the three nodes"; "a peer that
stops answering opens its breaker, and payments route around it").

A pays C's invoice through B and one of the three is killed (SIGKILL) while an HTLC is in flight,
then restarted on its data dir: the payment succeeds or fails cleanly, every HTLC is resolved in
both channels, each channel's funds add up, and A is charged at most once (a retried Pay is
answered with the outcome)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Final

import grpc
import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER, Node, reason_of, wait_for
from tests.l1.anvil import Anvil

AMOUNT = 100_000
#: The payee's HTLC has 300 s left when a route is built (not the default 40): each node reads L1's
#: clock off the latest block it saw, and anvil mines only on a transaction, so two nodes' clocks may
#: differ by as long as no block came (a loaded machine): a payment must not fail on that here.
TERMS: Final = {"final_expiry_delta_s": 300}
FEE = 1_000 + 100  # bob's: 1,000 wei base + 1,000 ppm of 100,000


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, str, str]]:
    node = Anvil()
    node.start()
    net = Network(tmp_path_factory.mktemp("faults"), node, ("alice", "bob", "carol"), **TERMS)
    try:
        ab = net.open("alice", "bob", 2 * ETHER)
        bc = net.open("bob", "carol", ETHER)
        net.wait_known("alice", bc)
        yield net, ab, bc
    finally:
        net.close()
        node.stop()


def held(node: Node, channel_id: str) -> tuple[int, int, int]:
    """(this node's balance, the peer's, HTLCs in flight) in its latest co-signed state."""
    channel = node.channel(channel_id)
    return int(channel.local_balance), int(channel.remote_balance), len(channel.state.htlcs)


def kill_at(watched: Node, kind: str, channel_id: str, payment_hash: str, victim: Node) -> None:
    """SIGKILL ``victim`` as soon as ``watched``'s event log records ``kind`` for the payment in
    the channel (the state that carries the HTLC is co-signed and durable there, nothing after it
    may be)."""
    stream = watched.stub.SubscribeEvents(pb.SubscribeEventsRequest(from_sequence=1, channel_id=channel_id),
                                          timeout=30)
    try:
        for event in stream:
            if event.kind == kind and event.payment_hash == payment_hash:
                victim.stop(signal.SIGKILL)
                return
    finally:
        stream.cancel()


@pytest.mark.parametrize(("victim", "watched", "kind", "where"), [
    # The payee, right after it took B's HTLC (before settling it).
    ("carol", "carol", "HTLC_RECEIVED", "bc"),
    # The payee, frozen (SIGSTOP) before B offers it the HTLC and killed once B took A's: B's
    # signed ADD is left unanswered, to re-send to the restarted payee.
    ("carol", "bob", "HTLC_RECEIVED", "ab"),
    # The hop, right after it took A's HTLC (before sending it on).
    ("bob", "bob", "HTLC_RECEIVED", "ab"),
    # The payer, right after B took its HTLC.
    ("alice", "alice", "HTLC_OFFERED", "ab"),
], ids=["payee", "payee-unanswered", "hop", "payer"])
def test_kill_9_in_the_middle_of_a_two_hop_payment_loses_nothing(line: tuple[Network, str, str], victim: str,
                                                                  watched: str, kind: str, where: str) -> None:
    net, ab, bc = line
    a, b, c = net["alice"], net["bob"], net["carol"]
    channels = {"ab": ab, "bc": bc}
    before = {"ab": held(a, ab), "bc": held(b, bc)}
    assert before["ab"][2] == before["bc"][2] == 0
    invoice = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(AMOUNT)), timeout=10).invoice
    frozen = net[victim].proc
    if watched != victim and frozen is not None:
        os.kill(frozen.proc.pid, signal.SIGSTOP)
    paying = a.stub.Pay.future(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    kill_at(net[watched], kind, channels[where], invoice.payment_hash, net[victim])
    net[victim].start()

    # The payment ends, one way or the other; a retried Pay is answered with that outcome.
    def outcome() -> pb.Payment | None:
        got = a.stub.GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10).payment
        return got if got.status != pb.PAYMENT_STATUS_IN_FLIGHT else None

    payment = wait_for(outcome, 45, "the payment settles or fails")
    paid = payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    # Every HTLC resolved on both sides of both channels, the two sides agreeing.
    wait_for(lambda: held(a, ab)[2] == held(b, ab)[2] == held(b, bc)[2] == held(c, bc)[2] == 0, 30,
             "every HTLC resolved")
    wait_for(lambda: a.channel(ab).state == b.channel(ab).state and b.channel(bc).state == c.channel(bc).state, 30,
             "both sides of each channel hold the same state")
    moved_ab, moved_bc = (AMOUNT + FEE, AMOUNT) if paid else (0, 0)
    assert held(a, ab) == (before["ab"][0] - moved_ab, before["ab"][1] + moved_ab, 0)
    assert held(b, bc) == (before["bc"][0] - moved_bc, before["bc"][1] + moved_bc, 0)
    assert sum(held(a, ab)[:2]) == 2 * ETHER and sum(held(c, bc)[:2]) == ETHER
    if paid:  # the payee's invoice is paid (and only then)
        assert payment.preimage
    else:
        assert payment.reason
    # The payer's Pay answers with that outcome (the killed payer's call died with it), and so
    # does paying the same invoice again, which charges nothing more.
    calls = [paying, a.stub.Pay.future(pb.PayRequest(invoice=invoice.encoded), timeout=60)]
    for call in calls[1:] if victim == "alice" else calls:
        if paid:
            assert call.result().preimage == payment.preimage
        else:
            with pytest.raises(grpc.RpcError):
                call.result()
    assert held(a, ab)[:2] == (before["ab"][0] - moved_ab, before["ab"][1] + moved_ab)


def pay(payer: Node, invoice: pb.Invoice) -> pb.PayResponse:
    """``payer`` pays ``invoice``; a failure tells what the payment record says (each attempt's end)."""
    try:
        paid: pb.PayResponse = payer.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    except grpc.RpcError as exc:
        record = payer.stub.GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10)
        raise AssertionError(f"{exc.details()}: {record.payment}") from None
    return paid


@pytest.fixture(scope="module")
def diamond(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    node = Anvil()
    node.start()
    net = Network(tmp_path_factory.mktemp("diamond"), node, ("alice", "bob", "carol", "dave"), **TERMS)
    try:
        yield net
    finally:
        net.close()
        node.stop()


def test_a_payment_routes_around_a_hop_that_stopped_answering(diamond: Network) -> None:
    net = diamond
    a, b, c, d = net["alice"], net["bob"], net["carol"], net["dave"]
    # Carol charges more than bob: the cheapest route is through bob while he answers.
    c.stop()
    c.settings["fee_base_wei"] = 5_000
    c.start()
    ab, bd = net.open("alice", "bob", ETHER), net.open("bob", "dave", ETHER)
    ac, cd = net.open("alice", "carol", ETHER), net.open("carol", "dave", ETHER)
    for channel_id in (bd, cd):
        net.wait_known("alice", channel_id)

    def invoice() -> pb.Invoice:
        return d.stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(AMOUNT)), timeout=10).invoice

    first = pay(a, invoice())
    assert [h.channel_id for h in first.payment.route] == [ab, bd]

    b.stop(signal.SIGKILL)
    # The next payment is offered to bob, who never answers: A cannot know whether he took the
    # HTLC, so that payment stays in flight (never tried on another route: it could be paid twice).
    stuck = invoice()
    with pytest.raises(grpc.RpcError) as unanswered:
        a.stub.Pay(pb.PayRequest(invoice=stuck.encoded), timeout=60)
    assert (unanswered.value.code(), reason_of(unanswered.value)) == (grpc.StatusCode.UNAVAILABLE,
                                                                      "PEER_UNAVAILABLE")
    # The one after goes around bob, through carol (after at most one attempt that fails at bob).
    around = pay(a, invoice())
    assert around.payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert [h.channel_id for h in around.payment.route] == [ac, cd]
    assert around.payment.fee == str(5_000 + 100) and around.payment.attempts <= 2

    # Bob back: the payment that waited on him is delivered and settles; nothing is left in flight.
    b.start()

    def settled() -> pb.Payment | None:
        got = a.stub.GetPayment(pb.GetPaymentRequest(payment_hash=stuck.payment_hash), timeout=10).payment
        return got if got.status != pb.PAYMENT_STATUS_IN_FLIGHT else None

    assert wait_for(settled, 45, "the stuck payment ends").status == pb.PAYMENT_STATUS_SUCCEEDED
    wait_for(lambda: not a.channel(ab).state.htlcs and not b.channel(bd).state.htlcs, 30, "no HTLC left")
    assert int(a.channel(ab).local_balance) == ETHER - 2 * (AMOUNT + FEE)
    assert int(d.channel(bd).local_balance) == 2 * AMOUNT and int(d.channel(cd).local_balance) == AMOUNT
