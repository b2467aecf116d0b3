"""Attacks on chained updates (services/channels/_updates.py U5: the HTLC updates of a round trip
built one on another, only the last state signed), on real channels workers over one real anvil.

The attacker, mallory, holds its channel key and speaks for itself straight to the victim's
PeerService with chains built by hand: a bad change hidden among good ones, a signed state that is
not what the changes make, a signature that is not mallory's, a chain with no signed end, a
payment smuggled into a chain, a settle of an HTLC never held, more HTLCs than the victim accepts
spread over the changes of one chain, and a replayed chain. Each is refused by name at the change
that breaks a rule, with none of the chain's writes kept; an honest chain is taken whole,
counter-signed once, and a replay of it is answered the same without taking anything twice."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import signal
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from protocol import DEV_PRIVATE_KEYS, Chain, Change, Channel, Htlc, recover_signer, state_digest
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.channels import Rules, StateRecord, change_pb, seal, state_of_pb, state_pb
from tests.attacks.test_channel_htlcs import CHAIN_ID, TERMS, Holder, Setup, htlcs, l1_now
from tests.channels._nodes import ETHER, PERIOD, wait_for


@pytest.fixture(scope="module")
def chained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("chain-attacks"), ("victim", "mallory", "carol"), 0, **TERMS,
                  max_accepted_htlcs=3)
    try:
        yield setup
    finally:
        setup.close()


def test_chains_are_checked_step_by_step_refused_whole_and_taken_once(chained: Setup) -> None:
    net = chained.net
    v, m, c = net["victim"], net["mallory"], net["carol"]
    mv = net.open("mallory", "victim", ETHER, ETHER)  # mallory is the channel's a, the victim its b
    before = v.channel(mv)
    latest = state_of_pb(before.state)
    seen = v.channel(mv)
    channel = Channel(CHAIN_ID, chained.adjudicator, bytes.fromhex(seen.a[2:]), bytes.fromhex(seen.b[2:]), seen.nonce,
                      int(seen.amount_a), int(seen.amount_b))
    as_m = Rules(CHAIN_ID, chained.adjudicator, m.key, PERIOD)
    as_c = Rules(CHAIN_ID, chained.adjudicator, c.key, PERIOD)
    now = l1_now(net)
    invoices = [v.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="50000"), timeout=10).invoice for _ in range(4)]
    hashes = [bytes.fromhex(i.payment_hash[2:]) for i in invoices]

    def pays(n: int) -> Change:  # mallory pays the victim's invoice n: a valid ADD_HTLC
        return Change.add(Htlc(True, 50_000, hashes[n], now + 300))

    def made(*changes: Change) -> StateRecord:
        """The state ``changes`` make on the victim's latest (as mallory's node would build it)."""
        chain = Chain(as_m.state(latest), channel, m.address, now=0, expiry_delta=0, trusted=True)
        for change in changes:
            chain.apply(change)
        return as_m.record(chain.state(latest.sequence + 1), latest.sequence + 1)

    def send(changes: list[Change], state: StateRecord | None = None, signer: Rules | None = as_m,
             **last: Any) -> list[tuple[bool, str]]:
        """The chain of ``changes`` ending in ``state`` (the one they make unless given), signed by
        ``signer``; ``last``: more fields of the signed proposal."""
        state = state or made(*changes)
        proposals = [pb.ProposeRequest(change=change_pb(c)) for c in changes]
        proposals[-1].state.CopyFrom(state_pb(state))
        if signer is not None:
            proposals[-1].signature = signer.sign(state)
        for name, value in last.items():
            setattr(proposals[-1], name, value)
        answer = v.peer_stub.ProposeBatch(seal(as_m, pb.ProposeBatchRequest(channel_id=mv, proposals=proposals)),
                                          timeout=10)
        assert len(answer.responses) == len(changes)
        return [(r.accepted, r.reason) for r in answer.responses]

    # A bad change hidden between good ones (P3: an HTLC out of the victim's balance): that change
    # is refused with its reason, the ones before it are not taken either, the ones after not read.
    theft = Change.add(Htlc(False, 50_000, hashes[3], now + 300))
    assert send([pays(0), theft, pays(2)], made(pays(0))) == [
        (False, "CHAIN_REFUSED"), (False, "PROPOSER_NOT_PAYER"), (False, "PREVIOUS_REFUSED")]
    # The signed state is not what the changes make: 1 wei more moved to mallory beside the HTLCs.
    sneaky = made(pays(0), pays(1))
    sneaky = dataclasses.replace(sneaky, balance_a=sneaky.balance_a + 1, balance_b=sneaky.balance_b - 1)
    assert send([pays(0), pays(1)], sneaky) == [(False, "CHAIN_REFUSED"), (False, "CHAIN_MISMATCH")]
    # Signed by someone else (carol's key), or by no one: nothing ends the chain with mallory's word.
    assert send([pays(0), pays(1)], signer=as_c) == [(False, "CHAIN_REFUSED"), (False, "BAD_STATE_SIGNATURE")]
    unsigned = [pb.ProposeRequest(change=change_pb(pays(0))), pb.ProposeRequest(change=change_pb(pays(1)))]
    answer = v.peer_stub.ProposeBatch(seal(as_m, pb.ProposeBatchRequest(channel_id=mv, proposals=unsigned)), timeout=10)
    assert [(r.accepted, r.reason) for r in answer.responses] == [(False, "UNSIGNED_STATE")] * 2
    # A payment smuggled into a chain (its parts checked by no one): a payment is an update of its own.
    assert send([pays(0), pays(1)], amount="1000") == [(False, "CHAIN_REFUSED"), (False, "CHAIN_STEP_KIND")]
    # A settle of an HTLC the victim never held.
    assert send([Change.settle(False, secrets.token_bytes(32))], made()) == [(False, "UNKNOWN_HTLC")]
    # H2 counts every change: four HTLCs where the victim accepts three in flight from mallory.
    assert send([pays(0), pays(1), pays(2), pays(3)]) == [
        (False, "CHAIN_REFUSED"), (False, "CHAIN_REFUSED"), (False, "CHAIN_REFUSED"), (False, "TOO_MANY_HTLCS")]

    # Nothing of any refused chain stayed: the same co-signed state, no forward, no event.
    after = v.channel(mv)
    assert (after.state, after.signature_a, after.signature_b) == (before.state, before.signature_a,
                                                                   before.signature_b)
    database = v.tmp_path / v.name / f"{v.name}.db"

    def received() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            (forwards,) = db.execute("SELECT COUNT(*) FROM forwards WHERE in_channel = ?",
                                     (bytes.fromhex(mv[2:]),)).fetchone()
            (events,) = db.execute("SELECT COUNT(*) FROM events WHERE channel_id = ? AND kind = 'HTLC_RECEIVED'",
                                   (bytes.fromhex(mv[2:]),)).fetchone()
            assert forwards == events
            return int(events)

    assert received() == 0

    # An honest chain of three: taken whole, one counter-signature (the victim's, over the last
    # state), and the victim's co-signed state is that last state with all three HTLCs.
    honest = made(pays(0), pays(1), pays(2))
    proposals = [pb.ProposeRequest(change=change_pb(pays(n))) for n in range(3)]
    proposals[-1].state.CopyFrom(state_pb(honest))
    proposals[-1].signature = as_m.sign(honest)
    request = seal(as_m, pb.ProposeBatchRequest(channel_id=mv, proposals=proposals))
    answer = v.peer_stub.ProposeBatch(request, timeout=10)
    assert [(r.accepted, bool(r.signature)) for r in answer.responses] == [(True, False), (True, False), (True, True)]
    digest = state_digest(as_m.state(honest), as_m.domain)
    assert recover_signer(digest, answer.responses[-1].signature) == v.address
    held = state_of_pb(v.channel(mv).state)
    assert held.same_content(honest) and held.sequence == latest.sequence + 1 and len(held.htlcs) == 3
    assert received() == 3
    # The same chain again (a replay, or a re-send after a lost answer, U2): the same answer, taken once.
    again = v.peer_stub.ProposeBatch(request, timeout=10)
    assert [(r.accepted, r.signature) for r in again.responses] == [(r.accepted, r.signature)
                                                                     for r in answer.responses]
    assert received() == 3


class Forgetful(Holder):
    """A holder whose answer to the first chain of several changes is lost on the way (it co-signs,
    then answers UNAVAILABLE), and which answers nothing more until ``answer`` is set again."""

    def __init__(self, key: bytes, adjudicator: bytes) -> None:
        super().__init__(key, adjudicator)
        self.answer = threading.Event()
        self.answer.set()
        self.lost: pb.ProposeBatchRequest | None = None
        #: The first batch after the lost one's (the re-send).
        self.again: pb.ProposeBatchRequest | None = None

    def ProposeBatch(self, request: pb.ProposeBatchRequest, context: Any) -> pb.ProposeBatchResponse:
        if not self.answer.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, "not answering")
        if self.lost is not None and self.again is None:
            self.again = request
        answered = super().ProposeBatch(request, context)
        if self.lost is None and len(request.proposals) > 1:
            self.lost = request
            self.answer.clear()
            context.abort(grpc.StatusCode.UNAVAILABLE, "the answer was lost")
        return answered


@pytest.fixture(scope="module")
def forgetful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("chain-resend"), ("victim", "mallory"), 0, **TERMS)
    setup.holders.append(Forgetful(DEV_PRIVATE_KEYS[4], setup.adjudicator))
    try:
        yield setup
    finally:
        setup.close()


def test_a_chain_whose_answer_was_lost_is_sent_again_whole_after_kill_9(forgetful: Setup) -> None:
    """U2 for chains: the victim forwards mallory's HTLCs to the holder as one chain, the answer is
    lost, the victim is killed (-9) holding that chain signed and unanswered, and once back it
    sends the same changes and state again; the holder's co-signature lands, and every HTLC the
    victim took from mallory is forwarded exactly once."""
    net, (holder,) = forgetful.net, forgetful.holders
    assert isinstance(holder, Forgetful)
    v, m = net["victim"], net["mallory"]
    mv = net.open("mallory", "victim", ETHER)
    vh = forgetful.open_to("victim", holder, ETHER)
    net.wait_known("mallory", vh, 1)
    database = v.tmp_path / v.name / f"{v.name}.db"

    def pending_chain() -> bytes | None:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT steps FROM states WHERE channel_id = ? AND steps != x'' AND refused = 0 AND "
                             "(sig_a = x'' OR sig_b = x'')", (bytes.fromhex(vh[2:]),)).fetchone()
        return bytes(row[0]) if row else None

    calls = [m.stub.Pay.future(pb.PayRequest(invoice=holder.invoice(10_000)), timeout=60) for _ in range(8)]
    steps = wait_for(pending_chain, 30, "the victim holds a chain signed and unanswered")
    # Durable before it is sent (and the send waits for the fsync): on a loaded machine the row is
    # seen before the holder has the chain, so wait for that too before the kill.
    lost = wait_for(lambda: holder.lost, 30, "the holder co-signed the chain and lost its answer")
    v.stop(signal.SIGKILL)
    assert lost is not None and len(lost.proposals) == 1 + len(pb.ProposeBatchRequest.FromString(steps).proposals)
    holder.answer.set()
    v.start()
    # The same chain again (its changes and signed state as first sent), then everything held settles in.
    wait_for(lambda: pending_chain() is None, 30, "the chain's co-signature landed")
    assert holder.again is not None and list(holder.again.proposals)[:len(lost.proposals)] == list(lost.proposals)
    wait_for(lambda: len(htlcs(v, mv)) == len(htlcs(v, vh)) == 8, 30, "every HTLC forwarded once")
    assert sorted(h.payment_hash for h in htlcs(v, mv)) == sorted(h.payment_hash for h in htlcs(v, vh))
    assert state_of_pb(v.channel(vh).state).sequence > 0
    for call in calls:
        with contextlib.suppress(grpc.RpcError):  # held by the holder: in flight, never failed
            assert call.result().payment.status != pb.PAYMENT_STATUS_FAILED
