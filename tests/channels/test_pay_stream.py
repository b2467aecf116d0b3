"""PayStream: many payments on one stream, many per round trip to the peer (U1: one state for all
the payments waiting on the channel), one per message (`payment`) or several (`payments`, answered
in `answers`). Every payment is answered once, by its request_id; a bad one fails alone (its own
error, the others paid); both sides hold every payment, durably; a retried request_id pays once;
a malformed message ends the stream with INVALID_ARGUMENT and its reason, the payments before it
answered; a stream cancelled in the middle of its round trip loses no payment and pays none twice."""

from __future__ import annotations

import hashlib
import secrets
import signal
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER, Node, reason_of, wait_for
from tests.l1.anvil import Anvil


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    # A payee per test (bob, carol, dave): alice pays each over a channel of its own, so the
    # balances a test checks are its own payments whatever order the tests run in.
    node = Anvil()
    node.start()
    network = Network(tmp_path_factory.mktemp("stream"), node, ("alice", "bob", "carol", "dave"))
    try:
        yield network
    finally:
        network.close()
        node.stop()


@pytest.fixture(scope="module")
def to_dave(net: Network) -> str:
    """The channel alice -> dave (the retry and malformed-message tests share it: they check deltas)."""
    return net.open("alice", "dave", ETHER)


def answers_of(node: Node, messages: Iterable[pb.PayStreamRequest], timeout: float = 120) -> list[Any]:
    """Every answer of a PayStream of ``messages``, in the order they came (a message's `payment`
    answered by a PayStreamResponse, its `payments` by PayStreamAnswers: the same fields)."""
    return [answer for response in node.stub.PayStream(iter(messages), timeout=timeout)
            for answer in (response.answers or [response])]


def pending(node: Node, channel_id: str) -> bool:
    """The node holds a state of the channel it signed and sent, not answered yet (its store, read)."""
    with sqlite3.connect(f"file:{node.tmp_path / node.name / node.name}.db?mode=ro", uri=True) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM states WHERE channel_id = ? AND refused = 0 AND "
                              "(sig_a = x'' OR sig_b = x'')", (bytes.fromhex(channel_id[2:]),)).fetchone()
    return bool(count)


def by_request_id(answers: list[Any]) -> dict[str, Any]:
    found = {a.request_id: a for a in answers}
    assert len(found) == len(answers), "a request_id answered twice"
    return found


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
    answers = by_request_id(answers_of(a, (pb.PayStreamRequest(payment=r) for r in requests)))

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
    again = answers_of(a, [retry], timeout=30)
    assert again[0].HasField("payment") and b.channel(cid).local_balance == str(paid)
    assert b.channel(cid).state == a.channel(cid).state  # both hold the same latest state


def test_payments_batched_in_messages_are_each_paid_once_durably_on_both_sides_and_a_bad_one_fails_alone(
        net: Network) -> None:
    a, c = net["alice"], net["carol"]
    cid = net.open("alice", "carol", ETHER)
    to_carol = "0x" + c.address.hex()
    invoices = [c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(7_000 + i)), timeout=10).invoice
                for i in range(30)]
    good = [pb.PayRequest(request_id=f"b{i}", address=to_carol, amount=str(10 + i)) for i in range(600)]
    good += [pb.PayRequest(request_id=f"inv{i}", invoice=inv.encoded) for i, inv in enumerate(invoices)]
    # The same invoice twice in one message (two request_ids): paid once, both answered with its preimage.
    good.append(pb.PayRequest(request_id="inv3-again", invoice=invoices[3].encoded))
    bad = [pb.PayRequest(request_id="zero", address=to_carol, amount="0"),
           pb.PayRequest(request_id="forged", invoice=f"l2inv:{to_carol}:555:0x{secrets.token_bytes(32).hex()}"),
           pb.PayRequest(request_id="too-much", address=to_carol, amount=str(2 * ETHER)),
           pb.PayRequest(request_id="bad-address", address="0x1234", amount="5"),
           pb.PayRequest(request_id="no-target", amount="5")]
    payments = good[:300] + bad[:2] + good[300:] + bad[2:]  # the bad ones amid the good ones
    messages = [pb.PayStreamRequest(payments=payments[i:i + 256]) for i in range(0, len(payments), 256)]
    responses = list(a.stub.PayStream(iter(messages), timeout=120))
    # A response a message, its answers in the message's order.
    assert [[r.request_id for r in response.answers] for response in responses] == \
        [[p.request_id for p in m.payments] for m in messages]
    answers = by_request_id([answer for response in responses for answer in response.answers])

    assert sorted(answers) == sorted(p.request_id for p in payments)  # each answered once
    errors = {rid: (r.error.code, r.error.reason) for rid, r in answers.items() if r.HasField("error")}
    assert errors == {"zero": ("INVALID_ARGUMENT", "NON_POSITIVE_AMOUNT"),
                      "forged": ("FAILED_PRECONDITION", "UNKNOWN_INVOICE"),  # in a shared state: refused alone
                      "too-much": ("FAILED_PRECONDITION", "NO_ROUTE"),
                      "bad-address": ("INVALID_ARGUMENT", "MALFORMED_ADDRESS"),
                      "no-target": ("INVALID_ARGUMENT", "MISSING_TARGET")}
    for i, invoice in enumerate(invoices):  # each invoice's preimage came back: the proof of payment
        answer = answers[f"inv{i}"].payment
        assert answer.payment_hash == invoice.payment_hash
        assert hashlib.sha256(bytes.fromhex(answer.preimage[2:])).hexdigest() == invoice.payment_hash[2:]
    assert answers["inv3-again"].payment.preimage == answers["inv3"].payment.preimage
    for response in responses:  # each answer names the channel and its state; the channel is in the response, once
        (view,) = response.channels
        assert view.channel_id == cid and view.signature_a and view.signature_b
        for answer in response.answers:
            if answer.HasField("payment"):
                assert answer.payment.channel_id == cid and not answer.payment.HasField("channel")
                assert 0 < answer.payment.sequence <= view.state.sequence
    paid = sum(10 + i for i in range(600)) + sum(7_000 + i for i in range(30))

    def check_both_sides() -> None:
        at_a, at_c = a.channel(cid), c.channel(cid)
        assert at_c.local_balance == str(paid) == at_a.remote_balance
        assert at_a.local_balance == str(ETHER - paid)
        assert at_a.state == at_c.state and at_a.signature_a == at_c.signature_a and \
            at_a.signature_b == at_c.signature_b and at_a.signature_a and at_a.signature_b
        assert at_a.state.sequence < 100  # 630 payments shared their states (and signatures)

    check_both_sides()
    # Durable on both sides once answered: both killed and restarted, both hold the same.
    c.stop(signal.SIGKILL)
    a.stop(signal.SIGKILL)
    c.start()
    a.start()
    check_both_sides()


def test_a_retried_batch_pays_once(net: Network, to_dave: str) -> None:
    a, d = net["alice"], net["dave"]
    to_dave_address = "0x" + d.address.hex()
    invoice = d.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="9000"), timeout=10).invoice
    before = int(d.channel(to_dave).local_balance)
    batch = [pb.PayRequest(request_id=f"r{i}", address=to_dave_address, amount=str(1 + i)) for i in range(200)]
    batch.append(pb.PayRequest(request_id="r-invoice", invoice=invoice.encoded))
    first = by_request_id(answers_of(a, [pb.PayStreamRequest(payments=batch)]))
    assert all(answer.HasField("payment") for answer in first.values())
    paid = sum(1 + i for i in range(200)) + 9000
    assert int(d.channel(to_dave).local_balance) == before + paid

    # The same batch again, and again with each request_id twice in one message: paid once, each
    # retry answered with the state that paid it (and the invoice's preimage).
    again = by_request_id(answers_of(a, [pb.PayStreamRequest(payments=batch)]))
    twice = answers_of(a, [pb.PayStreamRequest(payments=batch[:100] + batch[:100])])
    assert len(twice) == 200
    for answer in [*again.values(), *twice]:
        assert answer.HasField("payment"), answer
        assert answer.payment.sequence == first[answer.request_id].payment.sequence
    # A new request_id twice in one message: paid once, both answered with the state that paid it.
    fresh = pb.PayRequest(request_id="fresh", address=to_dave_address, amount="50")
    both = answers_of(a, [pb.PayStreamRequest(payments=[fresh, fresh])])
    assert [r.request_id for r in both] == ["fresh", "fresh"] and both[0].payment.sequence == \
        both[1].payment.sequence
    paid += 50
    assert again["r-invoice"].payment.preimage == first["r-invoice"].payment.preimage
    # A retry of one of them as a unary Pay pays once too.
    assert a.stub.Pay(batch[5], timeout=20).sequence == first["r5"].payment.sequence
    assert int(d.channel(to_dave).local_balance) == before + paid
    assert a.channel(to_dave).state == d.channel(to_dave).state


def test_a_malformed_message_ends_the_stream_with_its_reason_once_those_before_it_are_answered(
        net: Network, to_dave: str) -> None:
    a, d = net["alice"], net["dave"]
    to_dave_address = "0x" + d.address.hex()
    before = int(d.channel(to_dave).local_balance)

    def pay(request_id: str) -> pb.PayRequest:
        return pb.PayRequest(request_id=f"{request_id}-{secrets.token_hex(4)}", address=to_dave_address, amount="3")

    malformed = {
        "PAYMENT_AND_PAYMENTS": pb.PayStreamRequest(payment=pay("one"), payments=[pay("two")]),
        "TOO_MANY_PAYMENTS": pb.PayStreamRequest(payments=[pay(f"m{i}") for i in range(1025)]),
    }
    for reason, message in malformed.items():
        ahead = [pb.PayStreamRequest(payment=pay("alone")), pb.PayStreamRequest(payments=[pay("x"), pay("y")])]
        answered: list[Any] = []
        with pytest.raises(grpc.RpcError) as ended:
            for response in a.stub.PayStream(iter([*ahead, message]), timeout=30):
                answered += response.answers or [response]
        assert (ended.value.code(), reason_of(ended.value)) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
        # The three payments sent before it were paid and answered; none of the malformed message's.
        assert sorted(r.request_id for r in answered) == sorted(
            [ahead[0].payment.request_id, *(p.request_id for p in ahead[1].payments)])
        assert all(r.HasField("payment") for r in answered)
    assert int(d.channel(to_dave).local_balance) == before + 2 * 3 * 3


def test_a_stream_cancelled_during_its_round_trip_loses_no_payment_and_pays_none_twice(
        net: Network, to_dave: str) -> None:
    a, d = net["alice"], net["dave"]
    to_dave_address = "0x" + d.address.hex()
    before = int(d.channel(to_dave).local_balance)
    batch = [pb.PayRequest(request_id=f"cancelled-{i}", address=to_dave_address, amount=str(1_000 + i))
             for i in range(50)]
    open_until = threading.Event()

    def messages() -> Iterator[pb.PayStreamRequest]:
        yield pb.PayStreamRequest(payments=batch)
        open_until.wait(30)  # the stream stays open: its client cancels it

    assert d.proc is not None
    dave = d.proc.proc
    dave.send_signal(signal.SIGSTOP)  # dave holds the round trip: alice's signed state waits for his answer
    try:
        call = a.stub.PayStream(messages(), timeout=30)
        wait_for(lambda: pending(a, to_dave), 10, "alice's state of the batch, signed and sent")
        call.cancel()
    finally:
        open_until.set()
        dave.send_signal(signal.SIGCONT)
    # The state stays pending and is re-sent (U2); retried, each payment is answered once paid, once.
    paid = sum(1_000 + i for i in range(50))

    def retried() -> dict[str, Any] | None:
        answers = by_request_id(answers_of(a, [pb.PayStreamRequest(payments=batch)], timeout=30))
        return answers if all(r.HasField("payment") for r in answers.values()) else None

    wait_for(retried, 30, "every payment of the cancelled stream paid")
    assert int(d.channel(to_dave).local_balance) == before + paid
    assert a.channel(to_dave).state == d.channel(to_dave).state
