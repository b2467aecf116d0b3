"""A peer that breaks the rules: the test speaks for A (it holds A's channel key) straight to B's
PeerService, and every bad message is refused by name while B's channel stays as it was."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from protocol import DEV_PRIVATE_KEYS
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.channels import Rules, StateRecord, seal, state_of_pb, state_pb
from tests.channels._nodes import ETHER, Pair, reason_of

MALLORY_KEY = DEV_PRIVATE_KEYS[5]


def test_bad_signatures_stale_sequences_and_unbalanced_states_are_refused_by_name(pair: Pair) -> None:
    a, b = pair.a, pair.b
    cid = pair.open(ETHER)
    for _ in range(3):
        a.pay(b, 1000)
    held = b.channel(cid)
    last = state_of_pb(held.state)
    assert (last.sequence, last.balance_a, last.balance_b) == (3, ETHER - 3000, 3000)
    adjudicator = pair.adjudicator.address
    assert adjudicator is not None
    as_a = Rules(31337, adjudicator, a.key)
    as_mallory = Rules(31337, adjudicator, MALLORY_KEY)

    def propose(state: StateRecord, amount: int, *, signer: Rules = as_a, sender: Rules = as_a) -> pb.ProposeResponse:
        request = pb.ProposeRequest(state=state_pb(state), signature=signer.sign(state), amount=str(amount))
        answer: pb.ProposeResponse = b.peer_stub.Propose(seal(sender, request), timeout=10)
        return answer

    def pays(amount: int, **changes: int) -> StateRecord:
        """The next state paying B ``amount``, with ``changes`` made to it."""
        state = StateRecord(last.channel_id, 4, last.balance_a - amount, last.balance_b + amount)
        return dataclasses.replace(state, **changes)

    # A message whose sender signature is not A's: refused before anything is read.
    with pytest.raises(grpc.RpcError) as refused:
        propose(pays(10), 10, sender=as_mallory)
    assert (refused.value.code(), reason_of(refused.value)) == (grpc.StatusCode.PERMISSION_DENIED,
                                                                 "BAD_PEER_SIGNATURE")
    # A's message carrying a state signed by someone outside the channel.
    answer = propose(pays(10), 10, signer=as_mallory)
    assert (answer.accepted, answer.reason) == (False, "BAD_STATE_SIGNATURE")
    # A decreasing sequence: a state at 2 (B signed up to 3), even paying B more.
    answer = propose(pays(10, sequence=2), 10)
    assert (answer.accepted, answer.reason, answer.signed_upto) == (False, "STALE_SEQUENCE", 3)
    # Balances that do not add up to the channel's funding (B credited, A not debited).
    answer = propose(pays(10, balance_a=last.balance_a), 10)
    assert (answer.accepted, answer.reason) == (False, "FUNDS_NOT_CONSERVED")
    # A state that moves another amount than the payment says, or takes from B.
    assert propose(pays(10), 9).reason == "AMOUNT_MISMATCH"
    assert propose(pays(-10), 10).reason == "PROPOSER_NOT_PAYER"
    # An invoice B never issued (a payment hash no one holds the preimage of).
    unknown = pb.ProposeRequest(state=state_pb(pays(10)), signature=as_a.sign(pays(10)), amount="10",
                                payment_hash="0x" + "ab" * 32)
    assert b.peer_stub.Propose(seal(as_a, unknown), timeout=10).reason == "UNKNOWN_INVOICE"
    # Every answer is signed by B.
    assert answer.sender_signature
    # B's channel is as it was; A's next real payment is the next sequence.
    assert b.channel(cid).state == held.state
    assert a.pay(b, 10).sequence == 4
    assert state_of_pb(b.channel(cid).state) == dataclasses.replace(pays(10), sig_a=b"", sig_b=b"")
    # B's event log: what happened to the channel, none of the refused messages.
    stream = b.stub.SubscribeEvents(pb.SubscribeEventsRequest(from_sequence=1, channel_id=cid), timeout=10)
    events = [next(stream) for _ in range(6)]
    stream.cancel()
    assert [e.kind for e in events] == ["CHANNEL_OPENING", "CHANNEL_OPEN", *["PAYMENT_RECEIVED"] * 4]
    assert [e.amount for e in events[2:]] == ["1000", "1000", "1000", "10"]
    assert events[-1].channel.state.sequence == 4 and events[-1].channel_id == cid
