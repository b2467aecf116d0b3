"""Attacks on multi-hop HTLC payments (issue 14; services/channels/_payments.py H1-H6 and protocol's
P3-P5, C6, C7), each on real channels workers over one real anvil.

The attacker, mallory, runs a real node and also holds its channel key, so the test speaks for it
straight to the victim's PeerService with proposals built by hand (as tests/channels/test_refusals
does). Its second identity is a ``Holder``: a PeerService of the attacker's own that co-signs every
state it is offered, so takes every HTLC routed to it, and never settles or fails one: HTLCs that
really stay in flight. Every bad proposal is refused by name, the victim's channel stays as it was,
and the victim's honest payments still go through."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from protocol import DEV_PRIVATE_KEYS, Htlc
from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc as pb_grpc
from services.channels import Rules, StateRecord, seal, sender_of, state_of_pb, state_pb
from services.l1 import LocalSigner
from tests.channels._network import Network
from tests.channels._nodes import ETHER, PERIOD, Node, reason_of, wait_for
from tests.l1.anvil import Anvil
from tests.ports import free_port

CHAIN_ID = 31337
#: The victim's terms (every node's): an HTLC of at least 1,000 wei, a 40 s delta per hop, at most
#: 600 s away; a payee wants 200 s left (H5: at least half of it when the HTLC arrives).
TERMS: dict[str, Any] = {"htlc_min_wei": 1_000, "expiry_delta_s": 40, "max_htlc_expiry_s": 600,
                         "final_expiry_delta_s": 200, "fee_base_wei": 1_000, "fee_ppm": 1_000,
                         "payment_timeout_s": 3.0}


class Holder(pb_grpc.PeerServiceServicer):
    """The attacker's second node: co-signs every state a peer proposes (every HTLC offered to it
    stays in flight: it never settles nor fails one) and answers hello and open like a node."""

    def __init__(self, key: bytes, adjudicator: bytes) -> None:
        self.rules = Rules(CHAIN_ID, adjudicator, key, PERIOD)
        self.address = LocalSigner(key).address
        self.port = free_port()
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_PeerServiceServicer_to_server(self, self.server)
        self.server.add_insecure_port(self.endpoint)
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def invoice(self, amount: int) -> str:
        """An invoice of this node for a payment hash whose preimage no one knows."""
        return f"l2inv:0x{self.address.hex()}:{amount}:0x{secrets.token_bytes(32).hex()}"

    def Hello(self, request: pb.HelloRequest, context: Any) -> pb.HelloResponse:
        return seal(self.rules, pb.HelloResponse(address="0x" + self.address.hex(), chain_id=CHAIN_ID,
                                                 adjudicator="0x" + self.rules.adjudicator.hex()))

    def Open(self, request: pb.OpenRequest, context: Any) -> pb.OpenResponse:
        funding = state_of_pb(request.state)
        return seal(self.rules, pb.OpenResponse(channel_id=request.state.channel_id,
                                                signature=self.rules.sign(funding)))

    def Propose(self, request: pb.ProposeRequest, context: Any) -> pb.ProposeResponse:
        state = state_of_pb(request.state)
        return seal(self.rules, pb.ProposeResponse(channel_id=request.state.channel_id, sequence=state.sequence,
                                                   accepted=True, signature=self.rules.sign(state),
                                                   signed_upto=state.sequence,
                                                   preimages=["" for _ in request.parts]))  # no invoice

    def ProposeBatch(self, request: pb.ProposeBatchRequest, context: Any) -> pb.ProposeBatchResponse:
        """Every proposal taken: a signed one co-signed, a chain's unsigned change (U5) just accepted."""
        return seal(self.rules, pb.ProposeBatchResponse(responses=[
            self.Propose(proposal, context) if proposal.signature else
            pb.ProposeResponse(channel_id=request.channel_id, accepted=True) for proposal in request.proposals]))

    def Announce(self, request: pb.AnnounceRequest, context: Any) -> pb.AnnounceResponse:
        return seal(self.rules, pb.AnnounceResponse())

    def stop(self) -> None:
        self.server.stop(None)


class Setup:
    """A network of real nodes and the attacker's holders, on one anvil."""

    def __init__(self, tmp: Any, names: tuple[str, ...], holders: int, **settings: Any) -> None:
        self.anvil = Anvil()
        self.anvil.start()
        self.net = Network(tmp, self.anvil, names, **settings)
        adjudicator = self.net.adjudicator.address
        assert adjudicator is not None
        self.adjudicator = adjudicator
        first = 2 + len(names)
        self.holders = [Holder(DEV_PRIVATE_KEYS[first + i], adjudicator) for i in range(holders)]

    def open_to(self, opener: str, holder: Holder, amount: int) -> str:
        """``opener`` opens a channel with the attacker's ``holder``; its id once OPEN."""
        opened = self.net[opener].stub.OpenChannel(pb.OpenChannelRequest(peer=holder.endpoint, amount=str(amount)),
                                                   timeout=60).channel
        assert opened.status == pb.CHANNEL_STATUS_OPEN, opened
        return opened.channel_id

    def close(self) -> None:
        for holder in self.holders:
            holder.stop()
        self.net.close()
        self.anvil.stop()


def htlcs(node: Node, channel_id: str) -> list[pb.Htlc]:
    return list(node.channel(channel_id).state.htlcs)


def l1_now(net: Network) -> int:
    net.l1.rpc("anvil_mine", "0x1")
    return int(net.l1.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


def hop(channel_id: str, node: Node, amount: int, expiry: int) -> pb.RouteHop:
    return pb.RouteHop(channel_id=channel_id, node="0x" + node.address.hex(), amount=str(amount), expiry=expiry)


def in_flight(call: Any) -> str:
    """The reason a held payment's Pay ended with (PAYMENT_IN_FLIGHT: it stays in flight)."""
    with pytest.raises(grpc.RpcError) as failed:
        call.result()
    return reason_of(failed.value)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("htlc-attacks"), ("victim", "mallory", "carol"), 2, **TERMS)
    try:
        yield setup
    finally:
        setup.close()


def test_hand_built_htlc_updates_that_break_a_rule_are_refused_by_name_and_change_nothing(crafted: Setup) -> None:
    net, (far, near) = crafted.net, crafted.holders
    v, m, c = net["victim"], net["mallory"], net["carol"]
    mv = net.open("mallory", "victim", ETHER, ETHER)  # mallory is the channel's a, the victim its b
    vc = net.open("victim", "carol", ETHER)
    v_far = crafted.open_to("victim", far, ETHER)
    m_near = crafted.open_to("mallory", near, ETHER)
    net.wait_known("mallory", v_far, 1)
    net.wait_known("mallory", vc, 1)
    net.wait_known("victim", m_near, 1)

    # One HTLC each way in the attacked channel, really in flight: mallory pays the far holder
    # through the victim, the victim pays the near holder through mallory; the holders keep them.
    held_out = m.stub.Pay.future(pb.PayRequest(invoice=far.invoice(100_000)), timeout=60)
    wait_for(lambda: len(htlcs(v, mv)) == 1 and len(htlcs(v, v_far)) == 1, 20, "mallory's HTLC held")
    held_in = v.stub.Pay.future(pb.PayRequest(invoice=near.invoice(100_000)), timeout=60)
    wait_for(lambda: len(htlcs(v, mv)) == 2 and len(htlcs(m, m_near)) == 1, 20, "the victim's HTLC held")
    before = v.channel(mv)
    latest = state_of_pb(before.state)
    (theirs,) = [h for h in latest.htlcs if h[0]]  # mallory's (from a) and the victim's
    (ours,) = [h for h in latest.htlcs if not h[0]]
    as_m = Rules(CHAIN_ID, crafted.adjudicator, m.key, PERIOD)
    now = l1_now(net)
    fee = 1_000 + 100  # the victim's for forwarding 100,000 wei

    def propose(state: StateRecord, **fields: Any) -> pb.ProposeResponse:
        state = dataclasses.replace(state, sequence=latest.sequence + 1)
        request = pb.ProposeRequest(state=state_pb(state), signature=as_m.sign(state), **fields)
        answer: pb.ProposeResponse = v.peer_stub.Propose(seal(as_m, request), timeout=10)
        assert sender_of(answer) == v.address and not answer.accepted and answer.signed_upto == latest.sequence
        return answer

    def add(htlc: Htlc, *onward: pb.RouteHop) -> str:
        return propose(as_m.record(as_m.state(latest).add_htlc(htlc), 0), onward=list(onward)).reason

    def release(htlc: tuple[bool, int, bytes, int], to_a: bool, **fields: Any) -> str:
        """``htlc`` taken out of the state, its amount to a (``to_a``) or b: a settle or a fail."""
        paid = dict(balance_a=latest.balance_a + htlc[1]) if to_a else dict(balance_b=latest.balance_b + htlc[1])
        state = dataclasses.replace(latest, htlcs=tuple(h for h in latest.htlcs if h != htlc), **paid)
        return propose(state, **fields).reason

    def fresh() -> bytes:
        return secrets.token_bytes(32)

    # P4: settling the victim's HTLC with a preimage that does not hash to it (or none at all).
    assert release(ours, True, preimage="0x" + fresh().hex()) == "PREIMAGE_MISSING"
    assert release(ours, True) == "PREIMAGE_MISSING"
    # P4: mallory "settling" the HTLC it offered itself; P5: failing it before its expiry (taking
    # back what the victim may still settle with the preimage).
    assert release(theirs, False, preimage="0x" + fresh().hex()) == "PROPOSER_NOT_RECEIVER"
    assert release(theirs, True, fail_reason="NO_ROUTE") == "HTLC_NOT_EXPIRED"
    # P3: an HTLC offered out of the victim's balance.
    assert add(Htlc(False, 100_000, fresh(), now + 300)) == "PROPOSER_NOT_PAYER"
    # C7 and H3: expiring too soon to be claimed on L1, or locking the victim's slot too long.
    assert add(Htlc(True, 100_000, fresh(), now + 2)) == "HTLC_EXPIRY_TOO_SOON"
    assert add(Htlc(True, 100_000, fresh(), now + 600 + 60)) == "EXPIRY_TOO_FAR"
    # H1: below the victim's smallest HTLC; C6: mallory's own payment hash a second time.
    assert add(Htlc(True, 999, fresh(), now + 300)) == "HTLC_TOO_SMALL"
    assert add(Htlc(True, 5_000, theirs[2], now + 300)) == "DUPLICATE_HTLC"
    # H4: forwards that underpay the victim's fee, leave it less than its delta to claim upstream,
    # or name a channel it does not have (or its channel with carol as another node's).
    onward = hop(vc, c, 100_000, now + 250)
    assert add(Htlc(True, 100_000 + fee - 1, fresh(), now + 290), onward) == "FEE_INSUFFICIENT"
    assert add(Htlc(True, 100_000 + fee, fresh(), now + 250 + 39), onward) == "EXPIRY_DELTA_TOO_SMALL"
    assert add(Htlc(True, 100_000 + fee, fresh(), now + 290),
               hop("0x" + fresh().hex(), c, 100_000, now + 250)) == "UNKNOWN_NEXT_CHANNEL"
    assert add(Htlc(True, 100_000 + fee, fresh(), now + 290), hop(vc, m, 100_000, now + 250)) == \
        "UNKNOWN_NEXT_CHANNEL"
    # H5: paying the victim itself for an invoice it never issued, the wrong amount (under it, or
    # over twice it), or with too little time left to settle.
    invoice = v.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="50000"), timeout=10).invoice
    billed = bytes.fromhex(invoice.payment_hash[2:])
    assert add(Htlc(True, 50_000, fresh(), now + 300)) == "UNKNOWN_INVOICE"
    assert add(Htlc(True, 49_999, billed, now + 300)) == "AMOUNT_MISMATCH"
    assert add(Htlc(True, 100_001, billed, now + 300)) == "AMOUNT_MISMATCH"
    assert add(Htlc(True, 50_000, billed, now + 50)) == "EXPIRY_TOO_SOON"

    # Nothing changed on the victim's side: the same co-signed state, the invoice still open, and
    # no event in the channel since the held HTLCs.
    after = v.channel(mv)
    assert (after.state, after.signature_a, after.signature_b) == (before.state, before.signature_a,
                                                                   before.signature_b)
    # The victim still pays mallory in the attacked channel (at the next sequence: the refused
    # proposals took none), forwards mallory's honest payment to carol, and is paid its invoice.
    direct = v.pay(m, 1_234)
    assert direct.sequence == latest.sequence + 1 and direct.channel_id == mv
    assert state_of_pb(m.channel(mv).state) == state_of_pb(v.channel(mv).state)
    carol_invoice = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="70000"), timeout=10).invoice
    paid = m.stub.Pay(pb.PayRequest(invoice=carol_invoice.encoded), timeout=60)
    assert paid.payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert [h.channel_id for h in paid.payment.route] == [mv, vc]
    paid_victim = m.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    assert paid_victim.preimage and paid_victim.channel_id == mv
    # The held HTLCs are still the holders' to resolve: in flight, not lost or doubled.
    assert in_flight(held_out) == in_flight(held_in) == "PAYMENT_IN_FLIGHT"
    assert {(h.from_a, h.payment_hash) for h in htlcs(v, mv)} == {(theirs[0], "0x" + theirs[2].hex()),
                                                                  (ours[0], "0x" + ours[2].hex())}


@pytest.fixture(scope="module")
def flooded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("htlc-slots"), ("victim", "mallory", "carol"), 1, **TERMS,
                  max_accepted_htlcs=6)
    try:
        yield setup
    finally:
        setup.close()


def test_a_peer_filling_a_channel_with_tiny_htlcs_takes_only_its_share_of_the_slots(flooded: Setup) -> None:
    net, (far,) = flooded.net, flooded.holders
    v, m, c = net["victim"], net["mallory"], net["carol"]
    mv = net.open("mallory", "victim", ETHER, ETHER)
    vc = net.open("victim", "carol", ETHER, ETHER)
    first = flooded.open_to("victim", far, ETHER)
    net.wait_known("mallory", first, 1)
    net.wait_known("carol", mv, 2)
    tiny = 1_000  # htlc_min: each HTLC costs mallory as little as the victim allows

    def flood(count: int, channel_id: str) -> list[Any]:
        """Mallory pays ``count`` of the holder's invoices through the victim: each one held over
        ``channel_id``, the HTLCs after the other."""
        calls = []
        held, out = len(htlcs(v, mv)), len(htlcs(v, channel_id))
        for n in range(1, count + 1):
            calls.append(m.stub.Pay.future(pb.PayRequest(invoice=far.invoice(tiny)), timeout=60))
            wait_for(lambda n=n: (len(htlcs(v, channel_id)), len(htlcs(v, mv))) == (out + n, held + n),
                     20, "the victim holds one more of mallory's HTLCs")
        return calls

    def refused(invoice: str, payer: Node = m) -> str:
        with pytest.raises(grpc.RpcError) as failed:
            payer.stub.Pay(pb.PayRequest(invoice=invoice, max_attempts=1), timeout=60)
        assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        return reason_of(failed.value)

    # H6: the victim forwards at most half of its 6 slots from one incoming channel over one
    # outgoing channel; the fourth is failed back to mallory at once.
    held = flood(3, first)
    assert refused(far.invoice(tiny)) == "SLOT_SHARE_EXCEEDED"
    wait_for(lambda: len(htlcs(v, mv)) == 3, 20, "the fourth HTLC failed back")
    # ... so carol's payment over the same outgoing channel still finds a slot there.
    carols = c.stub.Pay.future(pb.PayRequest(invoice=far.invoice(tiny)), timeout=60)
    wait_for(lambda: len(htlcs(v, first)) == 4, 20, "the victim forwards carol's HTLC")

    # H2: with a second channel to the holder, mallory fills all 6 slots the victim gives it in
    # their channel; the seventh HTLC is refused.
    second = flooded.open_to("victim", far, ETHER)
    net.wait_known("mallory", second, 1)
    held += flood(3, second)
    assert [h.from_a for h in htlcs(v, mv)] == [True] * 6
    assert refused(far.invoice(tiny)) == "TOO_MANY_HTLCS"
    assert refused(far.invoice(tiny)) == "TOO_MANY_HTLCS"
    assert len(htlcs(v, mv)) == 6 and len(htlcs(v, first)) == 4 and len(htlcs(v, second)) == 3

    # Honest payments still go through: carol pays mallory through the victim (the attacked
    # channel in the other direction: the victim's own slots there are free), and the victim pays
    # carol directly.
    invoice = m.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="50000"), timeout=10).invoice
    paid = c.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
    assert paid.payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    assert [h.channel_id for h in paid.payment.route] == [vc, mv]
    assert v.pay(c, 777).channel_id == vc
    # Carol's Pay answered on the preimage (U7): its settle in the attacked channel lands in the
    # victim's next chain there; mallory's six stay in flight, the holder's to resolve.
    wait_for(lambda: len(htlcs(v, mv)) == 6, 20, "carol's HTLC settled")
    assert [h.from_a for h in htlcs(v, mv)] == [True] * 6
    assert {in_flight(call) for call in [*held, carols]} == {"PAYMENT_IN_FLIGHT"}


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("htlc-burst"), ("victim", "mallory"), 1, **TERMS, max_accepted_htlcs=6)
    try:
        yield setup
    finally:
        setup.close()


def test_a_burst_of_tiny_htlcs_from_one_peer_still_takes_only_its_share_of_the_slots(burst: Setup) -> None:
    """H6 against a burst: mallory's HTLCs arrive in one chain, so the victim checks every forward
    before it has stored the first one FORWARDED. Those being sent on count too: 3 of the 6 go on
    (half of the victim's 6 slots), 3 are failed back at once, whatever the timing."""
    net, (far,) = burst.net, burst.holders
    v, m = net["victim"], net["mallory"]
    mv = net.open("mallory", "victim", ETHER, ETHER)
    out = burst.open_to("victim", far, ETHER)
    net.wait_known("mallory", out, 1)
    calls = [m.stub.Pay.future(pb.PayRequest(invoice=far.invoice(1_000), max_attempts=1), timeout=60)
             for _ in range(6)]
    reasons = sorted(in_flight(call) for call in calls)
    assert reasons == ["PAYMENT_IN_FLIGHT"] * 3 + ["SLOT_SHARE_EXCEEDED"] * 3
    assert len(htlcs(v, out)) == 3
    wait_for(lambda: len(htlcs(v, mv)) == 3, 20, "the refused three failed back to mallory")


class Ignorer(Holder):
    """The attacker's proposer that takes every settle or fail request (U7) and never proposes
    it: the HTLC's receiver must not depend on it."""

    def __init__(self, key: bytes, adjudicator: bytes) -> None:
        super().__init__(key, adjudicator)
        self.requests: list[pb.HtlcRequest] = []

    def RequestChanges(self, request: pb.RequestChangesRequest, context: Any) -> pb.RequestChangesResponse:
        self.requests.extend(request.requests)
        return seal(self.rules, pb.RequestChangesResponse(answers=[pb.RequestAnswer(accepted=True)
                                                                   for _ in request.requests]))


@pytest.fixture(scope="module")
def asked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("htlc-requests"), ("victim", "mallory", "carol"), 1, **TERMS)
    try:
        setup.holders.append(Ignorer(DEV_PRIVATE_KEYS[2 + 3 + 1], setup.adjudicator))
        yield setup
    finally:
        setup.close()


def test_forged_and_replayed_settle_requests_are_refused_by_name_and_change_nothing(asked: Setup) -> None:
    """U7: mallory, the receiver of the victim's HTLCs, asks the victim (their offerer) to settle
    or fail them. A request is checked: the preimage hashes to the HTLC's payment hash, the HTLC
    is the victim's and in flight (a replay of a settled one is refused), the kind is a settle or
    a fail, and the message is signed by the channel's other participant."""
    net, far = asked.net, asked.holders[0]
    v, m, c = net["victim"], net["mallory"], net["carol"]
    mv = net.open("mallory", "victim", ETHER, ETHER)
    mc = net.open("mallory", "carol", ETHER)
    m_far = asked.open_to("mallory", far, ETHER)
    net.wait_known("victim", m_far, 1)
    net.wait_known("victim", mc, 1)
    as_m = Rules(CHAIN_ID, asked.adjudicator, m.key, PERIOD)

    def request(*requests: pb.HtlcRequest, rules: Rules = as_m, channel_id: str = mv) -> list[tuple[bool, str]]:
        answer = v.peer_stub.RequestChanges(seal(rules, pb.RequestChangesRequest(
            channel_id=channel_id, requests=list(requests))), timeout=10)
        assert sender_of(answer) == v.address
        return [(a.accepted, a.reason) for a in answer.answers]

    def settle(payment_hash: bytes, preimage: bytes) -> pb.HtlcRequest:
        return pb.HtlcRequest(kind=pb.HTLC_CHANGE_KIND_SETTLE, payment_hash="0x" + payment_hash.hex(),
                              preimage="0x" + preimage.hex())

    # An honest one first: the victim pays carol's invoice through mallory; mallory's node asks
    # the victim to settle the victim's HTLC, and the victim's chain carries it.
    bill = c.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="40000"), timeout=10).invoice
    paid = v.stub.Pay(pb.PayRequest(invoice=bill.encoded), timeout=60)
    assert paid.payment.status == pb.PAYMENT_STATUS_SUCCEEDED and paid.payment.route[0].channel_id == mv
    wait_for(lambda: not htlcs(v, mv) and not htlcs(m, mv), 20, "the settle landed")
    preimage, settled = bytes.fromhex(paid.preimage[2:]), bytes.fromhex(bill.payment_hash[2:])
    # One of the victim's HTLCs held in flight (the holder keeps it), to aim the requests at.
    held = v.stub.Pay.future(pb.PayRequest(invoice=far.invoice(100_000)), timeout=60)
    wait_for(lambda: len(htlcs(v, mv)) == 1, 20, "the victim's HTLC held")
    (live,) = [bytes.fromhex(h.payment_hash[2:]) for h in htlcs(v, mv)]
    before = v.channel(mv)

    # Replayed: the settled HTLC is no longer in flight. Forged: a preimage that is not the HTLC's;
    # one of an HTLC never offered; a kind that is neither; a malformed preimage.
    fresh = secrets.token_bytes(32)
    assert request(settle(settled, preimage)) == [(False, "UNKNOWN_HTLC")]
    assert request(settle(live, fresh)) == [(False, "BAD_PREIMAGE")]
    assert request(settle(hashlib.sha256(fresh).digest(), fresh)) == [(False, "UNKNOWN_HTLC")]
    assert request(pb.HtlcRequest(payment_hash="0x" + live.hex())) == [(False, "BAD_REQUEST_KIND")]
    assert request(pb.HtlcRequest(kind=pb.HTLC_CHANGE_KIND_SETTLE, payment_hash="0x" + live.hex(),
                                  preimage="0x1234"))[0][0] is False
    # Signed by someone else than the channel's other participant, or for a channel of the victim
    # mallory is not in: refused whole.
    for rules, channel_id in ((Rules(CHAIN_ID, asked.adjudicator, DEV_PRIVATE_KEYS[9], PERIOD), mv),
                              (as_m, "0x" + secrets.token_bytes(32).hex())):
        with pytest.raises(grpc.RpcError) as refused:
            request(settle(live, fresh), rules=rules, channel_id=channel_id)
        assert refused.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
    after = v.channel(mv)
    assert (after.state, after.signature_a, after.signature_b) == (before.state, before.signature_a,
                                                                   before.signature_b)
    assert in_flight(held) == "PAYMENT_IN_FLIGHT"


def test_a_proposer_that_ignores_requests_does_not_keep_the_receiver_from_its_money(asked: Setup) -> None:
    """U7's fallback: the ignorer offers the victim an HTLC for its invoice, takes the victim's
    settle request and never proposes it; the victim proposes the settle itself and is paid."""
    net, ignorer = asked.net, asked.holders[1]
    v = net["victim"]
    assert isinstance(ignorer, Ignorer)
    vi = asked.open_to("victim", ignorer, ETHER)
    v.stub.Pay(pb.PayRequest(address="0x" + ignorer.address.hex(), amount="500000"), timeout=20)  # its funds
    bill = v.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="70000"), timeout=10).invoice
    billed = bytes.fromhex(bill.payment_hash[2:])
    latest = state_of_pb(v.channel(vi).state)  # the victim is the channel's a, the ignorer its b
    added = dataclasses.replace(ignorer.rules.record(ignorer.rules.state(latest).add_htlc(
        Htlc(False, 70_000, billed, l1_now(net) + 300)), 0), sequence=latest.sequence + 1)
    answer = v.peer_stub.Propose(seal(ignorer.rules, pb.ProposeRequest(
        state=state_pb(added), signature=ignorer.rules.sign(added))), timeout=10)
    assert answer.accepted, answer.reason

    wait_for(lambda: not htlcs(v, vi), 30, "the victim settled the HTLC itself")
    asked_for = [r for r in ignorer.requests if r.payment_hash == bill.payment_hash]
    assert asked_for and asked_for[0].kind == pb.HTLC_CHANGE_KIND_SETTLE
    assert hashlib.sha256(bytes.fromhex(asked_for[0].preimage[2:])).digest() == billed
    channel = v.channel(vi)
    assert int(channel.remote_balance) == 500_000 - 70_000 and int(channel.local_balance) == ETHER - 430_000
