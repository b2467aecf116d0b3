"""One trace per payment across every hop's node: alice pays carol's invoice through bob, three
worker processes exporting to an OTLP collector this test serves; the payer's span, bob's forward
and settle, carol's settle and every PeerService call between them share one trace id, and each
payment span carries the payment hash (so Jaeger finds the payment by it on every node)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator

import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER
from tests.conftest import Collector, otel_env
from tests.l1.anvil import Anvil

HASH_ATTR = "l2.payment.hash"


@pytest.fixture
async def traced(tmp_path: pathlib.Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
                 ) -> AsyncIterator[Network]:
    for key, value in otel_env(collector).items():  # the workers inherit it
        monkeypatch.setenv(key, value)
    node = Anvil()
    node.start()
    network = await asyncio.to_thread(Network, tmp_path, node, ("alice", "bob", "carol"))
    try:
        yield network
    finally:
        await asyncio.to_thread(network.close)
        node.stop()


async def test_a_two_hop_payment_is_one_trace_on_all_three_nodes(traced: Network, collector: Collector) -> None:
    net = traced
    a, c = net["alice"], net["carol"]
    await asyncio.to_thread(net.open, "alice", "bob", ETHER)
    bc = await asyncio.to_thread(net.open, "bob", "carol", ETHER)
    await asyncio.to_thread(net.wait_known, "alice", bc)
    invoice = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="12345"), timeout=10).invoice
    paid = await asyncio.to_thread(a.stub.Pay, pb.PayRequest(invoice=invoice.encoded), timeout=60)
    assert paid.payment.status == pb.PAYMENT_STATUS_SUCCEEDED

    payer = await collector.wait_for(lambda s: s["name"] == "channels.pay" and s["service"] == "alice"
                                     and s["attributes"].get(HASH_ATTR) == invoice.payment_hash, limit_s=30)
    trace_id = payer["trace_id"]

    def in_trace(service: str, name: str) -> object:
        return collector.wait_for(lambda s: s["trace_id"] == trace_id and s["service"] == service
                                  and s["name"] == name and s["attributes"].get(HASH_ATTR) == invoice.payment_hash,
                                  limit_s=30)

    await in_trace("bob", "channels.forward")  # bob sends the HTLC on to carol
    await in_trace("carol", "channels.settle")  # carol settles it with the preimage
    await in_trace("bob", "channels.settle")  # bob settles alice's with it
    # Every node's side of the PeerService calls is in the same trace: one trace, three processes.
    await collector.wait_for(lambda s: s["trace_id"] == trace_id and s["service"] == "carol"
                             and "Propose" in s["name"], limit_s=30)
    await collector.wait_for(lambda s: s["trace_id"] == trace_id and s["service"] == "alice"
                             and "Propose" in s["name"] and s["parent_id"] != payer["span_id"], limit_s=30)
    services = {s["service"] for s in collector.spans if s["trace_id"] == trace_id}
    assert {"alice", "bob", "carol"} <= services
