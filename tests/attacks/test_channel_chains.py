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
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from protocol import Chain, Change, Channel, Htlc, recover_signer, state_digest
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.channels import Rules, StateRecord, change_pb, seal, state_of_pb, state_pb
from tests.attacks.test_channel_htlcs import CHAIN_ID, TERMS, Setup, l1_now
from tests.channels._nodes import ETHER, PERIOD


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
