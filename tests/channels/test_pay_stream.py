"""PayStream: many payments on one stream, many per round trip to the peer (U1: one state for all
the payments waiting on the channel). Every request is answered once, by its request_id; a bad one
fails alone (its own error, the others paid); both sides hold every payment; a retried request_id
pays once."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER
from tests.l1.anvil import Anvil


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    node = Anvil()
    node.start()
    network = Network(tmp_path_factory.mktemp("stream"), node, ("alice", "bob"))
    try:
        yield network
    finally:
        network.close()
        node.stop()


def test_a_stream_of_payments_is_paid_in_shared_round_trips_and_a_bad_one_fails_alone(net: Network) -> None:
    a, b = net["alice"], net["bob"]
    cid = net.open("alice", "bob", ETHER)
    to_bob = "0x" + b.address.hex()
    invoices = [b.stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(5_000 + i)), timeout=10).invoice
                for i in range(20)]
    requests = [pb.PayRequest(request_id=f"p{i}", address=to_bob, amount=str(100 + i)) for i in range(400)]
    requests += [pb.PayRequest(request_id=f"i{i}", invoice=inv.encoded) for i, inv in enumerate(invoices)]
    # Bad ones, each failing alone: no amount, an invoice bob never issued, more than alice holds.
    forged = f"l2inv:{to_bob}:777:0x{secrets.token_bytes(32).hex()}"
    requests += [pb.PayRequest(request_id="zero", address=to_bob, amount="0"),
                 pb.PayRequest(request_id="forged", invoice=forged),
                 pb.PayRequest(request_id="too-much", address=to_bob, amount=str(2 * ETHER))]
    answers = {r.request_id: r for r in a.stub.PayStream(iter(pb.PayStreamRequest(payment=r) for r in requests),
                                                            timeout=120)}

    assert sorted(answers) == sorted(r.request_id for r in requests)  # each answered once
    errors = {rid: (r.error.code, r.error.reason) for rid, r in answers.items() if r.HasField("error")}
    assert errors == {"zero": ("INVALID_ARGUMENT", "NON_POSITIVE_AMOUNT"),
                      "forged": ("FAILED_PRECONDITION", "UNKNOWN_INVOICE"),
                      "too-much": ("FAILED_PRECONDITION", "NO_ROUTE")}  # no channel carries it
    for i, invoice in enumerate(invoices):  # each invoice's preimage came back
        assert answers[f"i{i}"].payment.payment_hash == invoice.payment_hash and answers[f"i{i}"].payment.preimage
    paid = sum(100 + i for i in range(400)) + sum(5_000 + i for i in range(20))
    assert b.channel(cid).local_balance == str(paid) == a.channel(cid).remote_balance
    # Fewer states than payments: they shared round trips (and signatures).
    assert a.channel(cid).state.sequence < 420
    # A retried request_id pays once.
    retry = pb.PayStreamRequest(payment=pb.PayRequest(request_id="p7", address=to_bob, amount="107"))
    again = list(a.stub.PayStream(iter([retry]), timeout=30))
    assert again[0].HasField("payment") and b.channel(cid).local_balance == str(paid)
    assert b.channel(cid).state == a.channel(cid).state  # both hold the same latest state
