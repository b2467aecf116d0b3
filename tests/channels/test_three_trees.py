"""Three real `l2node up` trees on one anvil (separate data dirs, ports and channel keys), as three
operators run them: A pays C's invoices through B, and B's channels worker is killed (kill -9) in
the middle of a payment, holding A's HTLC: B's own supervisor restarts it, the restarted worker
finishes what it held, the payment ends (paid, or failed cleanly), no HTLC is left anywhere and
no wei is lost."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import threading
from collections.abc import Iterator

import grpc
import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc as pb_grpc
from tests.channels._nodes import ETHER, wait_for
from tests.channels._trees import Tree, Trees


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trees]:
    with Trees(pathlib.Path(tmp_path_factory.mktemp("three")), 3, channels_only=True) as running:
        yield running


def stub(tree: Tree) -> pb_grpc.ChannelsServiceStub:
    return pb_grpc.ChannelsServiceStub(grpc.insecure_channel(tree.channels))


def channel(tree: Tree, channel_id: str) -> pb.Channel:
    return stub(tree).GetChannel(pb.GetChannelRequest(channel_id=channel_id), timeout=10).channel


def test_a_payment_through_a_tree_whose_channels_worker_is_killed_mid_payment(trees: Trees) -> None:
    a, b, c = trees
    ab = stub(a).OpenChannel(pb.OpenChannelRequest(peer=b.channels, amount=str(ETHER)), timeout=60).channel
    bc = stub(b).OpenChannel(pb.OpenChannelRequest(peer=c.channels, amount=str(ETHER)), timeout=60).channel
    wait_for(lambda: any(k.channel_id == bc.channel_id for k in stub(a).ListKnownChannels(
        pb.ListKnownChannelsRequest(), timeout=10).channels), 30, "A learns B-C")
    first = stub(c).CreateInvoice(pb.CreateInvoiceRequest(amount="30000"), timeout=10).invoice
    paid = stub(a).Pay(pb.PayRequest(invoice=first.encoded), timeout=60)
    assert [h.channel_id for h in paid.payment.route] == [ab.channel_id, bc.channel_id]

    # B's worker dies the moment it holds A's next HTLC; its supervisor brings it back.
    invoice = stub(c).CreateInvoice(pb.CreateInvoiceRequest(amount="40000"), timeout=10).invoice
    events = stub(b).SubscribeEvents(pb.SubscribeEventsRequest(), timeout=120)
    pid_before = b.pid_and_address("channels")[0]

    def kill_on_receipt() -> None:
        for event in events:
            if event.kind == "HTLC_RECEIVED":
                os.kill(pid_before, signal.SIGKILL)
                return

    killer = threading.Thread(target=kill_on_receipt, daemon=True)
    killer.start()
    with contextlib.suppress(grpc.RpcError):  # in flight or failed: what counts is how it ends
        stub(a).Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    killer.join(30)
    events.cancel()
    wait_for(lambda: b.pid_and_address("channels")[0] != pid_before, 30, "B's supervisor restarts its worker")
    wait_for(lambda: stub(a).GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10)
             .payment.status != pb.PAYMENT_STATUS_IN_FLIGHT, 60, "the payment ends")
    outcome = stub(a).GetPayment(pb.GetPaymentRequest(payment_hash=invoice.payment_hash), timeout=10).payment
    # Nothing left in flight, both sides of each channel agree, and every wei is where it should be.
    for cid, (x, y) in ((ab.channel_id, (a, b)), (bc.channel_id, (b, c))):
        wait_for(lambda cid=cid, x=x, y=y: not channel(x, cid).state.htlcs and not channel(y, cid).state.htlcs
                 and channel(x, cid).state == channel(y, cid).state, 60, f"{cid} settled on both sides")
        total = int(channel(x, cid).local_balance) + int(channel(x, cid).remote_balance)
        assert total == ETHER
    carol_holds = int(channel(c, bc.channel_id).local_balance)
    expected = 30_000 + (40_000 if outcome.status == pb.PAYMENT_STATUS_SUCCEEDED else 0)
    assert carol_holds == expected, outcome
    fees = int(paid.payment.fee) + (int(outcome.fee) if outcome.status == pb.PAYMENT_STATUS_SUCCEEDED else 0)
    assert int(channel(a, ab.channel_id).local_balance) == ETHER - expected - fees
