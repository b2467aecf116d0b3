"""Multi-hop payments over real workers on one anvil: A pays C's invoice through B (HTLCs added hop
by hop, settled back with the preimage, B's fee taken), and a payment the payee refuses unwinds
every hop (each HTLC failed back, the balances as they were)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

import grpc
import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER, reason_of, wait_for


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with Network.on_own_anvil(tmp_path_factory.mktemp("multihop"), ("alice", "bob", "carol")) as network:
        yield network


def balances(node_channel: pb.Channel) -> tuple[int, int, int]:
    """(local, remote, HTLCs in flight) of a channel as one node sees it."""
    return int(node_channel.local_balance), int(node_channel.remote_balance), len(node_channel.state.htlcs)


def test_a_pays_c_through_b_and_a_refused_payment_unwinds_every_hop(net: Network) -> None:
    a, b, c = net["alice"], net["bob"], net["carol"]
    ab = net.open("alice", "bob", 2 * ETHER)
    bc = net.open("bob", "carol", ETHER)
    net.wait_known("alice", bc)

    invoice = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="100000", memo="two hops"), timeout=10).invoice
    paid = a.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    fee = 1_000 + 100  # bob's: 1,000 wei base + 1,000 ppm of 100,000
    assert paid.payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert hashlib.sha256(bytes.fromhex(paid.preimage[2:])).hexdigest() == invoice.payment_hash[2:]
    assert [(h.channel_id, h.amount) for h in paid.payment.route] == [(ab, str(100_000 + fee)), (bc, "100000")]
    assert paid.payment.fee == str(fee) and paid.payment.route[0].expiry > paid.payment.route[1].expiry
    # Every HTLC settled: the value moved, the fee stayed with bob, nothing in flight.
    wait_for(lambda: balances(c.channel(bc)) == (100_000, ETHER - 100_000, 0), 20, "carol is paid")
    wait_for(lambda: balances(b.channel(ab)) == (100_000 + fee, 2 * ETHER - 100_000 - fee, 0), 20, "bob is paid")
    assert balances(a.channel(ab)) == (2 * ETHER - 100_000 - fee, 100_000 + fee, 0)
    assert balances(b.channel(bc)) == (ETHER - 100_000, 100_000, 0)
    got = a.stub.GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10).payment
    assert (got.status, got.preimage, got.attempts) == (pb.PAYMENT_STATUS_SUCCEEDED, paid.preimage, 1)
    assert c.stub.SubscribeEvents  # the payee's invoice is paid
    # Paying the same invoice again is answered with the first outcome: paid once.
    again = a.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    assert again.preimage == paid.preimage
    assert balances(a.channel(ab)) == (2 * ETHER - 100_000 - fee, 100_000 + fee, 0)

    # An invoice carol never issued: carol refuses the HTLC, bob fails his back, alice is refunded.
    forged = f"l2inv:0x{c.address.hex()}:5000:0x{secrets.token_bytes(32).hex()}"
    with pytest.raises(grpc.RpcError) as failed:
        a.stub.Pay(pb.PayRequest(invoice=forged, max_attempts=1), timeout=60)
    assert (failed.value.code(), reason_of(failed.value)) == (grpc.StatusCode.FAILED_PRECONDITION, "UNKNOWN_INVOICE")
    wait_for(lambda: balances(b.channel(ab))[2] == 0, 20, "bob's incoming HTLC failed back")
    assert balances(a.channel(ab)) == (2 * ETHER - 100_000 - fee, 100_000 + fee, 0)
    assert balances(b.channel(bc)) == (ETHER - 100_000, 100_000, 0)
    forged_hash = forged.rsplit(":", 1)[1]
    failed_payment = a.stub.GetPayment(pb.GetPaymentRequest(payment_hash=forged_hash), timeout=10).payment
    assert failed_payment.status == pb.PAYMENT_STATUS_FAILED and failed_payment.reason == "UNKNOWN_INVOICE"


def test_a_stream_message_of_routed_payments_is_paid_together_and_a_bad_one_fails_alone(net: Network) -> None:
    """A PayStream message's routed payments go as one call of the payer (_payer): each is paid and
    answered with its own preimage; one the payee refuses fails alone with its reason; an invoice
    twice in the message is paid once; a retried request_id gets its first answer, paying nothing."""
    a, c = net["alice"], net["carol"]
    net.open("alice", "bob", ETHER)
    net.wait_known("alice", net.open("bob", "carol", ETHER))
    invoices = [c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(20_000 + i)), timeout=10).invoice
                for i in range(12)]
    forged = f"l2inv:0x{c.address.hex()}:5000:0x{secrets.token_bytes(32).hex()}"
    payments = [pb.PayRequest(request_id=f"r{i}", invoice=inv.encoded) for i, inv in enumerate(invoices)]
    payments.insert(5, pb.PayRequest(request_id="forged", invoice=forged, max_attempts=1))
    payments.append(pb.PayRequest(request_id="r3-again", invoice=invoices[3].encoded))

    def stream(message: list[pb.PayRequest]) -> dict[str, pb.PayStreamAnswer]:
        (response,) = a.stub.PayStream(iter([pb.PayStreamRequest(payments=message)]), timeout=120)
        assert [answer.request_id for answer in response.answers] == [p.request_id for p in message]
        return {answer.request_id: answer for answer in response.answers}

    answers = stream(payments)
    assert (answers["forged"].error.code, answers["forged"].error.reason) == ("FAILED_PRECONDITION",
                                                                             "UNKNOWN_INVOICE")
    for i, invoice in enumerate(invoices):  # each paid over two hops, its own preimage the proof
        paid = answers[f"r{i}"].payment
        assert paid.payment.status == pb.PAYMENT_STATUS_SUCCEEDED and len(paid.payment.route) == 2
        assert paid.payment_hash == invoice.payment_hash == paid.payment.payment_hash
        assert hashlib.sha256(bytes.fromhex(paid.preimage[2:])).hexdigest() == invoice.payment_hash[2:]
        got = a.stub.GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10).payment
        assert (got.status, got.preimage, got.attempts) == (pb.PAYMENT_STATUS_SUCCEEDED, paid.preimage, 1)
    assert answers["r3-again"].payment.preimage == answers["r3"].payment.preimage  # paid once
    # A retried request_id (with another invoice now) gets its first answer: nothing paid again.
    other = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="30000"), timeout=10).invoice
    again = stream([pb.PayRequest(request_id="r0", invoice=other.encoded)])
    assert again["r0"].payment.preimage == answers["r0"].payment.preimage
    with pytest.raises(grpc.RpcError) as unknown:
        a.stub.GetPayment(pb.GetPaymentRequest(payment_hash=other.payment_hash), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    # The forged one failed alone: its HTLC failed back, none left in flight on alice's channels.
    wait_for(lambda: not any(ch.state.htlcs for ch in a.stub.ListChannels(pb.ListChannelsRequest(), timeout=10)
                             .channels), 30, "every HTLC of alice settled or failed")



def test_a_channel_closed_on_the_route_is_routed_around(net: Network) -> None:
    """Bob closes the bob-carol channel alice routes over: its last announcement (capacity 0) or,
    if alice pays before it arrives, bob's refusal naming that channel (not alice's own) sends the
    payment over another of bob's channels with carol."""
    a, b, c = net["alice"], net["bob"], net["carol"]
    net.open("alice", "bob", ETHER)
    for channel_id in (net.open("bob", "carol", ETHER), net.open("bob", "carol", ETHER)):
        net.wait_known("alice", channel_id)

    def pay(amount: int) -> pb.PayResponse:
        invoice = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(amount)), timeout=10).invoice
        return a.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)

    used = pay(10_000).payment.route[1].channel_id
    # Pay answers once alice has the preimage (U7); the settles then land in the channels' next
    # chains, and a channel closes cooperatively once no HTLC is in flight in it.
    wait_for(lambda: not b.channel(used).state.htlcs, 20, "the settle landed in bob-carol")
    closed = b.stub.CloseChannel(pb.CloseChannelRequest(channel_id=used), timeout=60)
    assert closed.channel.status != pb.CHANNEL_STATUS_OPEN
    for amount in (20_000, 30_000):  # at once, and once alice heard of the close
        paid = pay(amount)
        assert paid.payment.status == pb.PAYMENT_STATUS_SUCCEEDED
        assert paid.payment.route[1].channel_id != used
