"""Chained updates (services/channels/_updates.py U5) between real workers on one anvil: the HTLC
updates waiting on a channel go as one chain whose last state alone is signed and stored, and
every payment of a busy pair of channels still settles, both sides agreeing."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER, wait_for
from tests.channels.test_multihop import balances


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with Network.on_own_anvil(tmp_path_factory.mktemp("chains"), ("alice", "bob", "carol")) as network:
        yield network


def test_concurrent_payments_go_in_chains_one_stored_state_each_and_every_one_settles(net: Network) -> None:
    """U5: HTLC updates waiting on a channel go as one chain, only its last state signed and
    stored; 24 payments in flight at once make 96 updates over two channels in far fewer states."""
    a, b, c = net["alice"], net["bob"], net["carol"]
    ab = net.open("alice", "bob", ETHER)
    bc = net.open("bob", "carol", ETHER)
    net.wait_known("alice", bc)
    invoices = [c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="10000"), timeout=10).invoice
                for _ in range(24)]
    calls = [a.stub.Pay.future(pb.PayRequest(invoice=i.encoded), timeout=60) for i in invoices]
    paid = [call.result() for call in calls]
    assert {p.payment.status for p in paid} == {pb.PAYMENT_STATUS_SUCCEEDED}
    channels = {h.channel_id for p in paid for h in p.payment.route}
    fee = 1_000 + 10  # bob's: 1,000 wei base + 1,000 ppm of 10,000
    assert channels == {ab, bc}
    for x, y, cid in ((a, b, ab), (b, c, bc)):  # both sides of each channel hold the same co-signed state
        wait_for(lambda x=x, y=y, cid=cid: not x.channel(cid).state.htlcs and
                 x.channel(cid).state == y.channel(cid).state, 20, f"{cid} settled on both sides")
    assert balances(c.channel(bc)) == (24 * 10_000, ETHER - 24 * 10_000, 0)
    assert balances(a.channel(ab)) == (ETHER - 24 * (10_000 + fee), 24 * (10_000 + fee), 0)
    # Each channel made an add and a settle per payment (48 updates); bob stored one state a chain.
    with contextlib.closing(sqlite3.connect(f"file:{b.tmp_path / b.name / (b.name + '.db')}?mode=ro", uri=True)) as db:
        for cid in (ab, bc):
            (stored,) = db.execute("SELECT COUNT(*) FROM states WHERE channel_id = ? AND sig_a != x'' "
                                   "AND sig_b != x''", (bytes.fromhex(cid[2:]),)).fetchone()
            assert 2 <= stored < 1 + 48, (cid, stored)  # the funding state, then fewer than one per update
