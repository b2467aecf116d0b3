"""Attacks on chained updates (services/channels/_updates.py U5: the HTLC updates of a round trip
built one on another, only the last state signed), on real channels workers over one real anvil.

The attacker, mallory, holds its channel key and speaks for itself straight to the victim's
PeerService with chains built by hand: a bad step hidden among good ones, a last state that is
not the steps' continuation, a signature that is not mallory's, a chain with no signed end, a
payment smuggled in as a step, more HTLCs than the victim accepts spread over the steps of one
chain, and a replayed chain. Each is refused by name at the step that breaks a rule, with none of
the chain's writes kept; an honest chain is taken whole, counter-signed once, and a replay of it
is answered the same without taking anything twice."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Callable, Iterator

import pytest

from protocol import ChannelState, Htlc, recover_signer, state_digest
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.channels import Rules, StateRecord, seal, state_of_pb, state_pb
from tests.attacks.test_channel_htlcs import CHAIN_ID, TERMS, Setup, l1_now
from tests.channels._nodes import ETHER, PERIOD

Step = Callable[[ChannelState], ChannelState]


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
    as_m = Rules(CHAIN_ID, chained.adjudicator, m.key, PERIOD)
    as_c = Rules(CHAIN_ID, chained.adjudicator, c.key, PERIOD)
    now = l1_now(net)
    invoices = [v.stub.CreateInvoice(pb.CreateInvoiceRequest(amount="50000"), timeout=10).invoice for _ in range(4)]
    hashes = [bytes.fromhex(i.payment_hash[2:]) for i in invoices]

    def pays(n: int) -> Step:  # mallory pays the victim's invoice n: a valid ADD_HTLC
        return lambda s: s.add_htlc(Htlc(True, 50_000, hashes[n], now + 300))

    def states(*steps: Step) -> list[StateRecord]:
        built, state = [], as_m.state(latest)
        for step in steps:
            state = step(state)
            built.append(as_m.record(state, state.sequence))
        return built

    def send(chain: list[StateRecord], signer: Rules | None = as_m, last: pb.ProposeRequest | None = None
             ) -> list[tuple[bool, str]]:
        proposals = [pb.ProposeRequest(state=state_pb(s)) for s in chain]
        if signer is not None:
            proposals[-1].signature = signer.sign(chain[-1])
        if last is not None:
            proposals[-1].MergeFrom(last)
        answer = v.peer_stub.ProposeBatch(seal(as_m, pb.ProposeBatchRequest(channel_id=mv, proposals=proposals)),
                                          timeout=10)
        assert len(answer.responses) == len(chain)
        return [(r.accepted, r.reason) for r in answer.responses]

    # A bad step hidden between good ones (P3: an HTLC out of the victim's balance): that step is
    # refused with its reason, the ones before it are not taken either, the ones after not looked at.
    theft: Step = lambda s: s.add_htlc(Htlc(False, 50_000, hashes[3], now + 300))  # noqa: E731
    assert send(states(pays(0), theft, pays(2))) == [
        (False, "CHAIN_REFUSED"), (False, "PROPOSER_NOT_PAYER"), (False, "PREVIOUS_REFUSED")]
    # The last state is not one change on the step before it: 1 wei moved beside the HTLC (C3 holds).
    sneaky = states(pays(0), pays(1))
    sneaky[-1] = dataclasses.replace(sneaky[-1], balance_a=sneaky[-1].balance_a + 1,
                                     balance_b=sneaky[-1].balance_b - 1)
    assert send(sneaky) == [(False, "CHAIN_REFUSED"), (False, "UPDATE_NOT_ONE_CHANGE")]
    # Signed by someone else (carol's key), or by no one: nothing ends the chain with mallory's word.
    assert send(states(pays(0), pays(1)), signer=as_c) == [(False, "CHAIN_REFUSED"), (False, "BAD_STATE_SIGNATURE")]
    assert send(states(pays(0), pays(1)), signer=None) == [(False, "UNSIGNED_STATE"), (False, "UNSIGNED_STATE")]
    # A payment smuggled in as a step (its parts checked by no one): a payment is an update of its own.
    paid: Step = lambda s: s.transfer(True, 1_000)  # noqa: E731
    assert send(states(pays(0), paid), last=pb.ProposeRequest(amount="1000")) == [
        (False, "CHAIN_REFUSED"), (False, "CHAIN_STEP_KIND")]
    # H2 counts every step: four HTLCs where the victim accepts three in flight from mallory.
    assert send(states(pays(0), pays(1), pays(2), pays(3))) == [
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
    honest = states(pays(0), pays(1), pays(2))
    request = seal(as_m, pb.ProposeBatchRequest(channel_id=mv, proposals=[
        pb.ProposeRequest(state=state_pb(s)) for s in honest[:-1]] + [
        pb.ProposeRequest(state=state_pb(honest[-1]), signature=as_m.sign(honest[-1]))]))
    answer = v.peer_stub.ProposeBatch(request, timeout=10)
    assert [(r.accepted, bool(r.signature)) for r in answer.responses] == [(True, False), (True, False), (True, True)]
    digest = state_digest(as_m.state(honest[-1]), as_m.domain)
    assert recover_signer(digest, answer.responses[-1].signature) == v.address
    held = state_of_pb(v.channel(mv).state)
    assert held.same_content(honest[-1]) and held.sequence == latest.sequence + 3 and len(held.htlcs) == 3
    assert received() == 3
    # The same chain again (a replay, or a re-send after a lost answer, U2): the same answer, taken once.
    again = v.peer_stub.ProposeBatch(request, timeout=10)
    assert [(r.accepted, r.signature) for r in again.responses] == [(r.accepted, r.signature)
                                                                     for r in answer.responses]
    assert received() == 3
