"""Attacks on the turn-taking of updates (services/channels/_updates.py U3, U6), on real channels
workers over one real anvil.

U6 has a proposer let the peer go first when the peer's answer says it has updates of its own
waiting. A peer that says so and never proposes anything must cost the proposer a bounded wait a
round trip, never a stall: here the attacker's node answers every proposal with ``waiting`` set,
forever, and the victim's payments to it, one after another and many at once, all go through,
each sequence signed once, while the victim's other channel is not slowed by it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from protocol import DEV_PRIVATE_KEYS
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.channels import seal
from tests.attacks.test_channel_htlcs import TERMS, Holder, Setup
from tests.channels._nodes import ETHER


class Insistent(Holder):
    """Co-signs every proposal (payments to its address: no preimage) and says in every answer
    that it has updates waiting; proposes none."""

    def __init__(self, key: bytes, adjudicator: bytes) -> None:
        super().__init__(key, adjudicator)
        self.answered = 0

    def ProposeBatch(self, request: pb.ProposeBatchRequest, context: Any) -> pb.ProposeBatchResponse:
        answer = super().ProposeBatch(request, context)
        for proposal, response in zip(request.proposals, answer.responses, strict=True):
            response.preimages.extend("" for _ in proposal.parts)
        answer.waiting = True
        self.answered += 1
        return seal(self.rules, answer)


@pytest.fixture(scope="module")
def insisted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    setup = Setup(tmp_path_factory.mktemp("turns"), ("victim", "carol"), 0, **TERMS)
    setup.holders.append(Insistent(DEV_PRIVATE_KEYS[4], setup.adjudicator))
    try:
        yield setup
    finally:
        setup.close()


def test_a_peer_that_always_says_it_has_updates_waiting_delays_only_its_own_channel_and_never_stalls_it(
        insisted: Setup) -> None:
    net, (holder,) = insisted.net, insisted.holders
    assert isinstance(holder, Insistent)
    v, c = net["victim"], net["carol"]
    vh = insisted.open_to("victim", holder, ETHER)
    vc = net.open("victim", "carol", ETHER)
    to_holder = pb.PayRequest(address="0x" + holder.address.hex(), amount="1000")

    sequences = [v.stub.Pay(to_holder, timeout=20).sequence for _ in range(10)]  # one after another
    assert sequences == sorted(set(sequences)) and holder.answered >= 10
    with ThreadPoolExecutor(max_workers=16) as pool:  # many at once: the round trips wait, then go
        at_once = list(pool.map(lambda _: v.stub.Pay(to_holder, timeout=30), range(48)))
    assert all(paid.channel_id == vh for paid in at_once)
    # Every payment is in the channel's latest co-signed state, the last one answered.
    channel = v.channel(vh)
    assert int(channel.remote_balance) == 58 * 1000
    assert channel.state.sequence == max(paid.sequence for paid in at_once) > sequences[-1]
    # The victim's other channel, with an honest peer, is not held up by it.
    assert all(v.pay(c, 1).channel_id == vc for _ in range(5))
    assert int(c.channel(vc).local_balance) == 5
