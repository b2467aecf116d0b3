"""Attacks on counter-chains (services/channels/_updates.py U7: an answer carries the receiver's own
HTLC changes as a chain on the state it just counter-signed; the proposer's answers to that chain
ride its next request), on real channels workers over one real anvil.

The attacker is the victim's channel peer, a node of its own (``Countering``: it co-signs every
state the victim proposes). As the one answering, it puts chains of its own in its answers: signed
by someone else, at the sequence the victim just counter-signed (a second state at one sequence),
an honest one, and that one again (a replay). As the one asked, it answers the victim's
counter-chain with a stale sequence, an old state's counter-signature, a forged one, a request
sealed by someone else, and not at all. Each is refused or ignored by name, the victim never signs
two states at one sequence, and an honest chain is taken once."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from protocol import DEV_PRIVATE_KEYS, Chain, Change, Channel, recover_signer, state_digest
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.channels import Rules, StateRecord, change_pb, seal, state_of_pb, state_pb
from tests.attacks.test_channel_htlcs import CHAIN_ID, TERMS, Holder, Setup
from tests.channels._nodes import ETHER, Node, reason_of, wait_for

#: Builds a counter-chain on the state the victim's proposal just made.
Counter = Callable[[StateRecord], list[pb.ProposeRequest]]


class Countering(Holder):
    """Co-signs every state the victim proposes (as Holder), after ``delay_s``; puts the chain
    ``counter`` builds (once) in its next answer to a proposal, says ``waiting`` when told; keeps
    every request it gets (their ``answers``: the victim's answers to its chains)."""

    def __init__(self, key: bytes, adjudicator: bytes) -> None:
        super().__init__(key, adjudicator)
        self.requests: list[pb.ProposeBatchRequest] = []
        self.counter: Counter | None = None
        self.delay_s = 0.0
        self.waiting = False
        self.answered = threading.Event()
        self.preimages: dict[bytes, bytes] = {}

    def invoice(self, amount: int) -> str:
        """An invoice of this node whose preimage it knows (kept by payment hash)."""
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        self.preimages[payment_hash] = preimage
        return f"l2inv:0x{self.address.hex()}:{amount}:0x{payment_hash.hex()}"

    def ProposeBatch(self, request: pb.ProposeBatchRequest, context: Any) -> pb.ProposeBatchResponse:
        time.sleep(self.delay_s)
        answer = super().ProposeBatch(request, context)
        for proposal, response in zip(request.proposals, answer.responses, strict=True):
            response.preimages.extend("" for _ in proposal.parts)  # payments to its address: no invoice
        self.requests.append(request)
        if request.proposals and request.proposals[-1].HasField("change") and self.counter is not None:
            counter, self.counter = self.counter, None
            answer.proposals.extend(counter(state_of_pb(request.proposals[-1].state)))
        answer.waiting = self.waiting
        self.answered.set()
        return seal(self.rules, answer)

    def answers_after(self, seen: int) -> list[pb.ProposeResponse]:
        """The victim's answers in the first request after the ``seen`` first that carries any."""
        def found() -> list[pb.ProposeResponse] | None:
            return next((list(r.answers) for r in self.requests[seen:] if r.answers), None)
        return wait_for(found, 10, "the victim's answers to a chain of the holder's")


@pytest.fixture(scope="module")
def countered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("counter-chains"), ("victim", "carol"), 0, **TERMS)
    setup.holders.append(Countering(DEV_PRIVATE_KEYS[4], setup.adjudicator))
    try:
        yield setup
    finally:
        setup.close()


def _channel(setup: Setup, v: Node, channel_id: str) -> Channel:
    seen = v.channel(channel_id)
    return Channel(CHAIN_ID, setup.adjudicator, bytes.fromhex(seen.a[2:]), bytes.fromhex(seen.b[2:]), seen.nonce,
                   int(seen.amount_a), int(seen.amount_b))


def _chain(channel: Channel, signer: Rules, proposer: bytes, on: StateRecord, changes: list[Change],
           sequence: int, **last: Any) -> list[pb.ProposeRequest]:
    """``changes`` as a chain on ``on``, its state at ``sequence`` signed by ``signer``."""
    chain = Chain(signer.state(on), channel, proposer, now=0, expiry_delta=0, trusted=True)
    for change in changes:
        chain.apply(change)
    # (a chain's state is one above ``on``: another sequence is written over it, as an attacker would)
    state = dataclasses.replace(signer.record(chain.state(on.sequence + 1), on.sequence + 1), sequence=sequence)
    proposals = [pb.ProposeRequest(change=change_pb(c), preimage="0x" + c.preimage.hex() if c.preimage else "")
                 for c in changes]
    proposals[-1].state.CopyFrom(state_pb(state))
    proposals[-1].signature = signer.sign(state)
    for name, value in last.items():
        setattr(proposals[-1], name, value)
    return proposals


def _pay(pool: ThreadPoolExecutor, payer: Node, invoice: str) -> Future[pb.PayResponse]:
    return pool.submit(payer.stub.Pay, pb.PayRequest(invoice=invoice), timeout=20)


def _route(setup: Setup, holder: Countering) -> tuple[Node, Node, str]:
    """The victim, carol, and a channel from the victim to the holder that carol's payments to the
    holder take (carol -> victim -> holder: the victim offers the holder their HTLCs)."""
    net = setup.net
    v, c = net["victim"], net["carol"]
    vh = setup.open_to("victim", holder, ETHER)  # the victim is the channel's a
    cv = net.open("carol", "victim", ETHER)
    net.wait_known("carol", vh, 1)
    net.wait_known("victim", cv, 1)
    return v, c, vh


def test_a_peers_counter_chains_are_judged_like_proposals_and_answered_in_the_next_request(
        countered: Setup) -> None:
    (holder,) = countered.holders
    assert isinstance(holder, Countering)
    v, c, vh = _route(countered, holder)
    channel = _channel(countered, v, vh)
    as_carol = Rules(CHAIN_ID, countered.adjudicator, DEV_PRIVATE_KEYS[5], 0)

    def settles(signer: Rules, at: Callable[[StateRecord], int]) -> Counter:
        """A chain settling every HTLC of the victim's state, at sequence ``at(state)``."""
        def counter(state: StateRecord) -> list[pb.ProposeRequest]:
            changes = [Change.settle(True, holder.preimages[h[2]]) for h in state.htlcs]
            return _chain(channel, signer, holder.address, state, changes, at(state))
        return counter

    def offered(counter: Counter) -> tuple[Future[pb.PayResponse], list[pb.ProposeResponse], StateRecord]:
        """The victim offers an HTLC for an invoice of the holder's, answered with ``counter``'s
        chain: the payment, the victim's answers to the chain, its latest co-signed state."""
        seen = len(holder.requests)
        holder.counter = counter
        paid = _pay(pool, c, holder.invoice(5_000))
        answers = holder.answers_after(seen)
        return paid, answers, state_of_pb(v.channel(vh).state)

    with ThreadPoolExecutor(max_workers=4) as pool:
        # Signed by someone outside the channel: refused by name, nothing taken; the victim's own
        # update (its HTLC) stands.
        paid, answers, latest = offered(settles(as_carol, lambda s: s.sequence + 1))
        assert [(a.accepted, a.reason) for a in answers] == [(False, "BAD_STATE_SIGNATURE")]
        assert len(latest.htlcs) == 1 and reason_of(_raised(paid)) == "PAYMENT_IN_FLIGHT"
        # At the sequence the victim just counter-signed (a second state at one sequence): refused.
        paid, answers, latest = offered(settles(holder.rules, lambda s: s.sequence))
        assert [(a.accepted, a.reason) for a in answers] == [(False, "CHAIN_REFUSED"), (False, "STALE_SEQUENCE")]
        assert len(latest.htlcs) == 2 and reason_of(_raised(paid)) == "PAYMENT_IN_FLIGHT"

        # An honest chain, settling all three HTLCs: taken, counter-signed by the victim (its
        # answer rides the victim's next request), and the payments succeed with their preimages.
        honest: list[list[pb.ProposeRequest]] = []

        def kept(state: StateRecord) -> list[pb.ProposeRequest]:
            honest.append(settles(holder.rules, lambda s: s.sequence + 1)(state))
            return honest[-1]

        paid, answers, latest = offered(kept)
        assert [a.accepted for a in answers] == [True, True, True]
        digest = state_digest(holder.rules.state(state_of_pb(honest[0][-1].state)), holder.rules.domain)
        assert recover_signer(digest, answers[-1].signature) == v.address
        assert latest.htlcs == () and latest.sequence == answers[-1].sequence
        assert paid.result().payment.status == pb.PAYMENT_STATUS_SUCCEEDED
        balance = int(v.channel(vh).remote_balance)
        assert balance == 3 * 5_000

        # The same chain again, in the answer to a later proposal (a replay): answered the same,
        # taken once (the balance is the same; the later HTLC stays in flight).
        paid, again, latest = offered(lambda _: honest[0])
        assert [(a.accepted, a.signature) for a in again] == [(a.accepted, a.signature) for a in answers]
        assert int(v.channel(vh).remote_balance) == balance and len(latest.htlcs) == 1
    holder.counter = None


def test_answers_to_a_counter_chain_are_checked_and_a_withheld_one_is_re_sent(countered: Setup) -> None:
    (holder,) = countered.holders
    assert isinstance(holder, Countering)
    v, c, vh = _route(countered, holder)
    as_carol = Rules(CHAIN_ID, countered.adjudicator, DEV_PRIVATE_KEYS[5], 0)
    cid = vh
    channel = _channel(countered, v, vh)

    def counter_chain() -> tuple[list[pb.ProposeRequest], pb.ProposeBatchResponse]:
        """The victim's counter-chain: the holder answers the victim's first HTLC slowly, saying it
        has updates waiting (the victim's second HTLC waits for them, U6), and proposes a payment
        to the victim meanwhile, whose answer carries the victim's second HTLC as a chain."""
        holder.delay_s, holder.waiting = 0.3, True
        holder.answered.clear()
        first = _pay(pool, c, holder.invoice(5_000))
        time.sleep(0.1)
        second = _pay(pool, c, holder.invoice(6_000))
        assert holder.answered.wait(10)
        holder.delay_s, holder.waiting = 0.0, False
        time.sleep(0.05)
        on = state_of_pb(v.channel(vh).state)  # the victim's first HTLC in it: the holder settles it
        settles = [Change.settle(True, holder.preimages[h[2]]) for h in on.htlcs]
        answer = v.peer_stub.ProposeBatch(seal(holder.rules, pb.ProposeBatchRequest(
            channel_id=cid, proposals=_chain(channel, holder.rules, holder.address, on, settles, on.sequence + 1))),
            timeout=10)
        assert [r.accepted for r in answer.responses] == [True] * len(settles)
        pending.extend((first, second))
        return list(answer.proposals), answer

    def send(answers: list[pb.ProposeResponse], signer: Rules | None = None) -> pb.ProposeBatchResponse:
        request = seal(signer or holder.rules, pb.ProposeBatchRequest(channel_id=cid, answers=answers))
        response: pb.ProposeBatchResponse = v.peer_stub.ProposeBatch(request, timeout=10)
        return response

    pending: list[Future[pb.PayResponse]] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        chain, _ = counter_chain()
        assert chain, "the victim's answer carries its second HTLC as a counter-chain"
        state = state_of_pb(chain[-1].state)
        assert holder.rules.signer_of(state, chain[-1].signature) == v.address
        # The first HTLC settled by the holder's proposal, the second offered on top of it.
        assert [h[1] for h in state.htlcs] == [6_000]
        assert state.sequence == state_of_pb(v.channel(vh).state).sequence + 1

        def answer(signer: Rules, sequence: int, signed: StateRecord = state) -> list[pb.ProposeResponse]:
            return [pb.ProposeResponse(channel_id=cid, sequence=sequence, accepted=True, signed_upto=sequence,
                                       signature=signer.sign(signed) if i == len(chain) - 1 else b"")
                    for i in range(len(chain))]

        # A request sealed by someone else: refused whole (its answers not read).
        with pytest.raises(grpc.RpcError) as wrong:
            send(answer(holder.rules, state.sequence), signer=as_carol)
        assert wrong.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # A stale sequence, and an older state's counter-signature at it: ignored, the chain still pending.
        send(answer(holder.rules, state.sequence - 1))
        older = state_of_pb(v.channel(vh).state)
        send(answer(holder.rules, older.sequence, older))
        assert state_of_pb(v.channel(vh).state).sequence == older.sequence
        # A counter-signature that is not the holder's: refused, and the victim's chain with it (its
        # sequence stays taken: never signed again with another state).
        with pytest.raises(grpc.RpcError) as forged:
            send(answer(as_carol, state.sequence))
        assert forged.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert reason_of(forged.value) == "BAD_STATE_SIGNATURE"
        assert state_of_pb(v.channel(vh).state).sequence == older.sequence
        first, second = pending
        assert first.result().payment.status == pb.PAYMENT_STATUS_SUCCEEDED  # settled by the holder's chain
        assert reason_of(_raised(second)) != ""  # its HTLC went only in the refused chain: it failed
        assert all(h[2] != state.htlcs[-1][2] for h in state_of_pb(v.channel(vh).state).htlcs)

        # Withheld: no answer comes; the victim re-sends its chain's state as it is (U2), as a
        # proposal of its own, and the holder's co-signature of that lands it.
        pending.clear()
        chain, _ = counter_chain()
        assert chain
        state = state_of_pb(chain[-1].state)
        seen = len(holder.requests)

        def re_sent() -> bool:
            return any(p.signature and state_of_pb(p.state).same_content(state)
                       and state_of_pb(p.state).sequence == state.sequence
                       for r in holder.requests[seen:] for p in r.proposals)
        assert wait_for(re_sent, 10, "the victim's state re-sent")
        assert wait_for(lambda: state_of_pb(v.channel(vh).state).sequence >= state.sequence, 10, "the state co-signed")
        held = state_of_pb(v.channel(vh).state)
        assert held.sequence > state.sequence or held.same_content(state)


def _raised(paid: Future[pb.PayResponse]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as failed:
        paid.result()
    return failed.value
