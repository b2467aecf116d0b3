"""Faults in the middle of multi-hop payments, on real workers over one anvil (issue 14: "kill -9
of a channel worker in the middle of a multi-hop payment, on each of the three nodes"; "a peer that
stops answering opens its breaker, and payments route around it").

Four nodes: alice pays dave through bob (A-B-D) or, dearer, through carol (A-C-D). One of alice,
bob and dave is killed (SIGKILL) while an HTLC of a payment is in flight, then restarted on its data
dir: the payment succeeds or fails cleanly, every HTLC is resolved in both channels, each channel's
funds add up, and alice is charged at most once (a retried Pay is answered with the outcome). Then
bob stops answering: a payment stuck on him waits for him, and the next goes around him."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import grpc
import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER, Node, reason_of, wait_for
from tests.l1.anvil import Anvil

AMOUNT = 100_000
FEE = 1_000 + 100  # bob's: 1,000 wei base + 1,000 ppm of 100,000
CAROLS_FEE = 5_000 + 100  # carol's base fee is 5,000 wei: the route through bob is the cheaper one
#: The payee's HTLC has 300 s left when a route is built (not the default 40 s): a margin for the
#: nodes' L1 clocks (each reads it off the latest block it saw) on a loaded machine.
TERMS: Final = {"final_expiry_delta_s": 300}


@dataclass(frozen=True)
class Diamond:
    net: Network
    ab: str
    bd: str
    ac: str
    cd: str


@pytest.fixture(scope="module")
def diamond(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Diamond]:
    node = Anvil()
    node.start()
    net = Network(tmp_path_factory.mktemp("faults"), node, ("alice", "bob", "carol", "dave"), **TERMS)
    try:
        carol = net["carol"]
        carol.stop()
        carol.settings["fee_base_wei"] = 5_000
        carol.start()
        ab, bd = net.open("alice", "bob", ETHER), net.open("bob", "dave", ETHER)
        ac, cd = net.open("alice", "carol", ETHER), net.open("carol", "dave", ETHER)
        for channel_id in (bd, cd):
            net.wait_known("alice", channel_id)
        yield Diamond(net, ab, bd, ac, cd)
    finally:
        net.close()
        node.stop()


def held(node: Node, channel_id: str) -> tuple[int, int, int]:
    """(this node's balance, the peer's, HTLCs in flight) in its latest co-signed state."""
    channel = node.channel(channel_id)
    return int(channel.local_balance), int(channel.remote_balance), len(channel.state.htlcs)


def invoice(payee: Node) -> pb.Invoice:
    return payee.stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(AMOUNT)), timeout=10).invoice


def pay(payer: Node, invoice: pb.Invoice) -> pb.PayResponse:
    """``payer`` pays ``invoice``; a failure tells what the payment record says (each attempt's end)."""
    try:
        paid: pb.PayResponse = payer.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    except grpc.RpcError as exc:
        record = payer.stub.GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10)
        raise AssertionError(f"{exc.details()}: {record.payment}") from None
    return paid


def ended(payer: Node, payment_hash: str) -> pb.Payment:
    """The payment once it is no longer in flight."""
    def outcome() -> pb.Payment | None:
        got = payer.stub.GetPayment(pb.GetPaymentRequest(payment_hash=payment_hash), timeout=10).payment
        return got if got.status != pb.PAYMENT_STATUS_IN_FLIGHT else None
    return wait_for(outcome, 45, "the payment settles or fails")


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
    ("dave", "dave", "HTLC_RECEIVED", "bd"),
    # The payee, frozen (SIGSTOP) before B offers it the HTLC and killed once B took A's: B's
    # signed ADD is left unanswered, to re-send to the restarted payee.
    ("dave", "bob", "HTLC_RECEIVED", "ab"),
    # The hop, right after it took A's HTLC (before sending it on).
    ("bob", "bob", "HTLC_RECEIVED", "ab"),
    # The payer, right after B took its HTLC.
    ("alice", "alice", "HTLC_OFFERED", "ab"),
    # The hop, right after the payee asked it to settle (U7: the preimage is the hop's, its settle
    # chain not yet sent): the payee proposes the settle itself once the request is not carried.
    ("bob", "bob", "PREIMAGE_RECEIVED", "bd"),
    # The payer, right after the hop asked it to settle (the payment succeeded: the preimage is
    # its proof; the hop proposes the settle itself).
    ("alice", "alice", "PREIMAGE_RECEIVED", "ab"),
], ids=["payee", "payee-unanswered", "hop", "payer", "hop-asked", "payer-asked"])
def test_kill_9_in_the_middle_of_a_two_hop_payment_loses_nothing(diamond: Diamond, victim: str, watched: str,
                                                                  kind: str, where: str) -> None:
    net, ab, bd = diamond.net, diamond.ab, diamond.bd
    a, b, d = net["alice"], net["bob"], net["dave"]
    before = {"ab": held(a, ab), "bd": held(b, bd)}
    assert before["ab"][2] == before["bd"][2] == 0
    bill = invoice(d)
    frozen = net[victim].proc
    if watched != victim and frozen is not None:
        os.kill(frozen.proc.pid, signal.SIGSTOP)
    paying = a.stub.Pay.future(pb.PayRequest(invoice=bill.encoded), timeout=60)
    kill_at(net[watched], kind, {"ab": ab, "bd": bd}[where], bill.payment_hash, net[victim])
    net[victim].start()

    # The payment ends, one way or the other (its HTLC was co-signed with bob: no other route).
    payment = ended(a, bill.payment_hash)
    paid = payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert [h.channel_id for h in payment.route] == [ab, bd]
    # Every HTLC resolved on both sides of both channels, the two sides agreeing.
    wait_for(lambda: held(a, ab)[2] == held(b, ab)[2] == held(b, bd)[2] == held(d, bd)[2] == 0, 30,
             "every HTLC resolved")
    wait_for(lambda: a.channel(ab).state == b.channel(ab).state and b.channel(bd).state == d.channel(bd).state, 30,
             "both sides of each channel hold the same state")
    moved_ab, moved_bd = (AMOUNT + FEE, AMOUNT) if paid else (0, 0)
    assert held(a, ab) == (before["ab"][0] - moved_ab, before["ab"][1] + moved_ab, 0)
    assert held(b, bd) == (before["bd"][0] - moved_bd, before["bd"][1] + moved_bd, 0)
    assert sum(held(a, ab)[:2]) == ETHER and sum(held(d, bd)[:2]) == ETHER
    assert payment.preimage if paid else payment.reason
    # The payer's Pay answers with that outcome (the killed payer's call died with it), and so
    # does paying the same invoice again, which charges nothing more.
    calls = [paying, a.stub.Pay.future(pb.PayRequest(invoice=bill.encoded), timeout=60)]
    for call in calls[1:] if victim == "alice" else calls:
        if paid:
            assert call.result().preimage == payment.preimage
        else:
            with pytest.raises(grpc.RpcError):
                call.result()
    assert held(a, ab)[:2] == (before["ab"][0] - moved_ab, before["ab"][1] + moved_ab)


def test_a_payment_routes_around_a_hop_that_stopped_answering(diamond: Diamond) -> None:
    net, ab, bd, ac, cd = diamond.net, diamond.ab, diamond.bd, diamond.ac, diamond.cd
    a, b, d = net["alice"], net["bob"], net["dave"]
    first = pay(a, invoice(d))
    assert [h.channel_id for h in first.payment.route] == [ab, bd]
    # Pay answers once alice has the preimage (U7): its settle lands in alice's next chain.
    wait_for(lambda: held(a, ab)[2] == held(d, bd)[2] == 0, 20, "the first payment's settles landed")
    before = {"ab": held(a, ab), "ac": held(a, ac), "bd": held(d, bd), "cd": held(d, cd)}

    b.stop(signal.SIGKILL)
    # The next payment is offered to bob, who never answers: A cannot know whether he took the
    # HTLC, so that payment stays in flight (never tried on another route: it could be paid twice).
    stuck = invoice(d)
    with pytest.raises(grpc.RpcError) as unanswered:
        a.stub.Pay(pb.PayRequest(invoice=stuck.encoded), timeout=60)
    assert (unanswered.value.code(), reason_of(unanswered.value)) == (grpc.StatusCode.UNAVAILABLE,
                                                                      "PEER_UNAVAILABLE")
    # The one after goes around bob, through carol (after at most one attempt that fails at bob).
    around = pay(a, invoice(d))
    assert around.payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert [h.channel_id for h in around.payment.route] == [ac, cd]
    assert around.payment.fee == str(CAROLS_FEE) and around.payment.attempts <= 2

    # Bob back: the payment that waited on him is delivered and settles; nothing is left in flight.
    b.start()
    assert ended(a, stuck.payment_hash).status == pb.PAYMENT_STATUS_SUCCEEDED
    wait_for(lambda: not a.channel(ab).state.htlcs and not b.channel(bd).state.htlcs, 30, "no HTLC left")
    assert held(a, ab)[0] == before["ab"][0] - (AMOUNT + FEE) and held(a, ac)[0] == before["ac"][0] - \
        (AMOUNT + CAROLS_FEE)
    assert held(d, bd)[0] == before["bd"][0] + AMOUNT and held(d, cd)[0] == before["cd"][0] + AMOUNT
