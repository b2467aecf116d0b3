"""HTLCs enforced on L1 (services/channels/_enforce.py) when a peer withholds its answer:

- the intermediate hop goes offline holding the payer's HTLC (and the payee is unreachable): after
  the HTLC's expiry the payer fails it off chain if it can, else closes the channel on L1 and is
  refunded after the challenge period (E2, E4): its funds come back through L1;
- the payee holds an HTLC and its preimage but the hop that offered it is gone: near the expiry the
  payee closes on L1, reveals the preimage (E1) and is paid once concluded, and the hop, back
  online, learns the preimage from L1 (E3).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import grpc
import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER, L1_CONCLUDED, PERIOD, Node, reason_of, wait_for
from tests.l1.anvil import Anvil


@pytest.fixture
def net(tmp_path: pytest.TempPathFactory) -> Iterator[Network]:
    node = Anvil()
    node.start()
    network = Network(tmp_path, node, ("alice", "bob", "carol"), payment_timeout_s=3.0, peer_deadline_s=1.0)
    try:
        yield network
    finally:
        for n in network.nodes.values():
            freeze(n, False)
        network.close()
        node.stop()


def freeze(node: Node, frozen: bool) -> None:
    """SIGSTOP (offline: connections stay, nothing answers) or SIGCONT a node's worker."""
    assert node.proc is not None
    if node.proc.proc.poll() is None:
        node.proc.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)


def first_event(node: Node, kind: str) -> threading.Event:
    """Set when ``node`` records an event of ``kind`` (watched from now on)."""
    seen = threading.Event()
    stream = node.stub.SubscribeEvents(pb.SubscribeEventsRequest(), timeout=120)

    def watch() -> None:
        try:
            for event in stream:
                if event.kind == kind:
                    seen.set()
                    stream.cancel()
        except grpc.RpcError:
            pass

    threading.Thread(target=watch, daemon=True).start()
    return seen


def htlcs_of(node: Node, channel_id: str) -> int:
    return len(node.channel(channel_id).state.htlcs)


def test_a_hop_offline_holding_the_htlc_the_payer_is_refunded_through_l1(net: Network) -> None:
    a, b, c = net["alice"], net["bob"], net["carol"]
    ab = net.open("alice", "bob", ETHER)
    bc = net.open("bob", "carol", ETHER)
    net.wait_known("alice", bc)
    invoice = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="50000"), timeout=10).invoice
    # Carol is unreachable: bob's HTLC to her stays unanswered; then bob goes offline too.
    freeze(c, True)
    received = first_event(b, "HTLC_RECEIVED")
    with pytest.raises(grpc.RpcError) as in_flight:
        a.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    assert reason_of(in_flight.value) == "PAYMENT_IN_FLIGHT"
    assert received.wait(10)
    freeze(b, True)
    route = a.stub.GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10).payment.route
    assert htlcs_of(a, ab) == 1 and route[0].channel_id == ab
    before = net.balance(a.address)

    # Past the HTLC's expiry: alice cannot fail it off chain (bob is gone), so she closes on L1 ...
    net.pass_time(route[0].expiry - net.now() + 3)
    wait_for(lambda: a.status(ab) == pb.CHANNEL_STATUS_DISPUTED, 30, "alice closes the channel on L1")
    # ... and once the challenge period is over, concludes and takes the HTLC back (refund).
    net.pass_time(PERIOD + 1)
    wait_for(lambda: a.status(ab) == pb.CHANNEL_STATUS_CLOSED, 30, "alice concludes and is refunded")
    payment = a.stub.GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10).payment
    assert (payment.status, payment.reason) == (pb.PAYMENT_STATUS_FAILED, "REFUNDED_ON_L1")
    assert net.on_chain(ab)[4] == L1_CONCLUDED
    # Every wei of alice's side is back on L1 (less the gas of her close, conclude and refund).
    assert net.balance(a.address) - before > ETHER - 10**16

    # Back online, bob and carol clear the dead HTLC between them: nothing stays in flight.
    freeze(b, False)
    freeze(c, False)
    wait_for(lambda: htlcs_of(b, bc) == 0 and htlcs_of(c, bc) == 0, 40, "bob's HTLC to carol failed")
    assert b.channel(bc).local_balance == str(ETHER)


def test_the_payee_reveals_on_l1_when_the_hop_withholds_the_settle(net: Network) -> None:
    a, b, c = net["alice"], net["bob"], net["carol"]
    ab = net.open("alice", "bob", ETHER)
    bc = net.open("bob", "carol", ETHER)
    net.wait_known("alice", bc)
    invoice = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="70000"), timeout=10).invoice
    # Bob goes offline the moment carol holds the HTLC: her settle never reaches him (or it did,
    # and then alice's HTLC is what bob withholds).
    received = first_event(c, "HTLC_RECEIVED")
    payer = threading.Thread(target=lambda: _pay_quietly(a, invoice.encoded), daemon=True)
    payer.start()
    assert received.wait(20)
    freeze(b, True)
    payer.join(30)
    carol_before = net.balance(c.address)
    if htlcs_of(c, bc) == 1:  # the settle did not get through: carol goes to L1 before the expiry
        expiry = c.channel(bc).state.htlcs[0].expiry
        net.pass_time(expiry - net.now() - 8)  # within E1's margin (half the period), time left to reveal
        wait_for(lambda: c.status(bc) == pb.CHANNEL_STATUS_DISPUTED, 30, "carol closes on L1")
        wait_for(lambda: net.revealed_at(bc, invoice.payment_hash) > 0, 30, "carol reveals the preimage")
        net.pass_time(PERIOD + 1)
        wait_for(lambda: c.status(bc) == pb.CHANNEL_STATUS_CLOSED, 30, "carol concludes and claims")
        # Carol is paid her side and the HTLC (less gas).
        assert net.balance(c.address) - carol_before > 70_000 - 10**16
        # Bob, back, learns the preimage on L1 and settles alice's HTLC upstream (E3): alice is paid.
        freeze(b, False)
        wait_for(lambda: _status(a, invoice.payment_hash) == pb.PAYMENT_STATUS_SUCCEEDED, 40,
                 "alice's payment succeeds with the preimage carol revealed")
        wait_for(lambda: htlcs_of(a, ab) == 0, 30, "alice's HTLC settled")
    else:  # carol was settled off chain: bob holds alice's HTLC with the preimage, offline
        assert c.channel(bc).local_balance == "70000"
        freeze(b, False)
        wait_for(lambda: htlcs_of(a, ab) == 0, 40, "bob settles alice's HTLC once back")
        assert _status(a, invoice.payment_hash) == pb.PAYMENT_STATUS_SUCCEEDED


def _pay_quietly(node: Node, invoice: str) -> None:
    with contextlib.suppress(grpc.RpcError):
        node.stub.Pay(pb.PayRequest(invoice=invoice), timeout=30)


def _status(node: Node, payment_hash: str) -> int:
    return node.stub.GetPayment(pb.GetPaymentRequest(payment_hash=payment_hash), timeout=10).payment.status
