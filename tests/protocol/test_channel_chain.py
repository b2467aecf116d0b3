"""P7 (protocol/_channel_chain.py): a chain of HTLC changes is judged change by change exactly as
the one-change updates would be (check_proposal on the state ChannelState's builders make), and
makes the same state; the signed state must be the one the changes make."""

from __future__ import annotations

import hashlib
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_HTLCS,
    Chain,
    Change,
    Channel,
    ChannelRefused,
    ChannelState,
    Htlc,
    Reason,
    Update,
    UpdateKind,
    check_proposal,
)

A: Final = bytes.fromhex("aa" * 20)
B: Final = bytes.fromhex("bb" * 20)
CHANNEL: Final = Channel(31337, bytes.fromhex("cc" * 20), A, B, 1, 10_000, 10_000)
NOW: Final = 1_000_000
DELTA: Final = 100
PREIMAGES: Final = [bytes([i]) * 32 for i in range(4)]
HASHES: Final = [hashlib.sha256(p).digest() for p in PREIMAGES]


def start() -> ChannelState:
    """Two HTLCs in flight, one each way, one of them expired."""
    held = (Htlc(True, 1_000, HASHES[0], NOW + 500), Htlc(False, 2_000, HASHES[1], NOW - 1))
    return ChannelState(CHANNEL.id, 7, 9_000, 8_000, held)


def one_change(prev: ChannelState, change: Change, proposer: bytes) -> ChannelState | Reason:
    """What the one-change update would make of ``change`` (its state, or the reason it is refused)."""
    try:
        if change.kind is UpdateKind.ADD_HTLC:
            new = prev.add_htlc(Htlc(change.from_a, change.amount, change.payment_hash, change.expiry))
        elif change.kind is UpdateKind.SETTLE_HTLC:
            new = prev.settle_htlc(change.from_a, change.preimage)
        else:
            new = prev.fail_htlc(change.from_a, change.payment_hash)
        check_proposal(prev, new, CHANNEL, proposer, preimages_known=(change.preimage,) if change.preimage else (),
                       now=NOW, expiry_delta=DELTA)
    except ChannelRefused as exc:
        return exc.reason
    return new


def chained(chain: Chain, change: Change, sequence: int) -> ChannelState | Reason:
    try:
        chain.apply(change)
    except ChannelRefused as exc:
        return exc.reason
    return chain.state(sequence)


changes = st.one_of(
    st.builds(lambda f, a, h, e: Change(UpdateKind.ADD_HTLC, f, HASHES[h], a, e), st.booleans(),
              st.sampled_from([0, 1, 500, 9_000, 9_001]), st.integers(0, 3),
              st.sampled_from([NOW, NOW + DELTA - 1, NOW + DELTA, NOW + 10_000])),
    st.builds(lambda f, p: Change.settle(f, PREIMAGES[p]), st.booleans(), st.integers(0, 3)),
    st.builds(lambda f, h: Change.fail(f, HASHES[h]), st.booleans(), st.integers(0, 3)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(changes, min_size=1, max_size=8), st.sampled_from([A, B]))
def test_each_change_is_judged_as_its_own_update_and_the_chain_makes_the_same_state(
        chain_of: list[Change], proposer: bytes) -> None:
    state = start()
    chain = Chain(state, CHANNEL, proposer, now=NOW, expiry_delta=DELTA)
    for change in chain_of:
        alone = one_change(state, change, proposer)
        made = chained(chain, change, state.sequence + 1)
        # Accepted alike (the same state), or refused alike; the reason too, except where several
        # rules break at once and the two check them in another order.
        assert isinstance(alone, ChannelState) == isinstance(made, ChannelState), (change, alone, made)
        if isinstance(alone, ChannelState):
            assert made == alone
            state = alone
        elif change.kind is not UpdateKind.ADD_HTLC:
            assert made == alone, change
        else:
            break  # a refused change ends the chain: the receiver refuses it whole


def test_a_chain_of_changes_is_one_state_its_updates_in_order() -> None:
    chain = Chain(start(), CHANNEL, B, now=NOW, expiry_delta=DELTA)
    updates = [chain.apply(Change.settle(True, PREIMAGES[0])),  # B settles A's HTLC
               chain.apply(Change.fail(False, HASHES[1])),  # B fails its own, expired
               chain.apply(Change.add(Htlc(False, 3_000, HASHES[2], NOW + DELTA)))]
    assert [u.kind for u in updates] == [UpdateKind.SETTLE_HTLC, UpdateKind.FAIL_HTLC, UpdateKind.ADD_HTLC]
    assert updates[0] == Update(UpdateKind.SETTLE_HTLC, 1_000, True, start().htlcs[0], PREIMAGES[0])
    state = chain.state(8)
    assert (state.balance_a, state.balance_b) == (9_000, 8_000 + 1_000 + 2_000 - 3_000)
    assert state.htlcs == (Htlc(False, 3_000, HASHES[2], NOW + DELTA),)
    assert chain.held(False) == 1 and chain.held(True) == 0 and chain.holds(False, HASHES[2]) is not None
    chain.check(state)
    with pytest.raises(ChannelRefused) as wrong:
        chain.check(ChannelState(state.channel_id, 8, state.balance_a + 1, state.balance_b - 1, state.htlcs))
    assert wrong.value.reason is Reason.CHAIN_MISMATCH


def test_a_settle_whose_preimage_is_not_its_htlc_s_is_refused() -> None:
    """On the wire a settle names its HTLC and carries a preimage: one of another HTLC settles nothing."""
    chain = Chain(start(), CHANNEL, B, now=NOW, expiry_delta=DELTA)
    with pytest.raises(ChannelRefused) as refused:
        chain.apply(Change(UpdateKind.SETTLE_HTLC, True, HASHES[0], preimage=PREIMAGES[1]))
    assert refused.value.reason is Reason.PREIMAGE_MISSING


def test_the_signed_state_is_above_the_last_and_below_the_final_sequence() -> None:
    chain = Chain(start(), CHANNEL, A, now=NOW, expiry_delta=DELTA)
    for sequence in (7, 2**64 - 1):
        with pytest.raises(ChannelRefused) as refused:
            chain.state(sequence)
        assert refused.value.reason is Reason.STALE_SEQUENCE


def test_the_htlc_slots_hold_across_the_changes_of_a_chain() -> None:
    chain = Chain(ChannelState(CHANNEL.id, 0, 10_000, 10_000), CHANNEL, A, now=NOW, expiry_delta=DELTA)
    for i in range(MAX_HTLCS):
        chain.apply(Change.add(Htlc(True, 1, i.to_bytes(32, "big"), NOW + DELTA)))
    with pytest.raises(ChannelRefused) as full:
        chain.apply(Change.add(Htlc(True, 1, MAX_HTLCS.to_bytes(32, "big"), NOW + DELTA)))
    assert full.value.reason is Reason.TOO_MANY_HTLCS and chain.held(True) == MAX_HTLCS


def test_a_stranger_cannot_chain_and_a_trusted_replay_judges_nothing_again() -> None:
    with pytest.raises(ChannelRefused) as stranger:
        Chain(start(), CHANNEL, bytes(20), now=NOW, expiry_delta=DELTA)
    assert stranger.value.reason is Reason.NOT_A_PARTICIPANT
    # A's own HTLC failed after its expiry, replayed long after: the clock is not judged again.
    replay = Chain(start(), CHANNEL, A, now=0, expiry_delta=0, trusted=True)
    assert replay.apply(Change.fail(True, HASHES[0])).kind is UpdateKind.FAIL_HTLC
    with pytest.raises(ChannelRefused) as gone:
        replay.apply(Change.fail(True, HASHES[0]))
    assert gone.value.reason is Reason.UNKNOWN_HTLC


def test_p8_the_offerer_settles_or_fails_its_own_htlc_only_where_the_receiver_asked() -> None:
    """P8: A settling its own HTLC (A's is HASHES[0], unexpired) or failing it before its expiry is
    P4's and P5's refusal, unless the judge was told the receiver wants that very release; the
    preimage must still hash to the HTLC, and the other rules stand."""
    settle, fail = Change.settle(True, PREIMAGES[0]), Change.fail(True, HASHES[0])
    for change, reason in ((settle, Reason.PROPOSER_NOT_RECEIVER), (fail, Reason.HTLC_NOT_EXPIRED)):
        for wanted in (None, lambda asked: False):
            with pytest.raises(ChannelRefused) as refused:
                Chain(start(), CHANNEL, A, now=NOW, expiry_delta=DELTA, wanted=wanted).apply(change)
            assert refused.value.reason is reason
    asked: list[Change] = []

    def wanted(change: Change) -> bool:
        asked.append(change)
        return change in (settle, fail)

    settled = Chain(start(), CHANNEL, A, now=NOW, expiry_delta=DELTA, wanted=wanted)
    update = settled.apply(settle)
    assert update == Update(UpdateKind.SETTLE_HTLC, 1_000, True, start().htlcs[0], PREIMAGES[0])
    assert (settled.state(8).balance_a, settled.state(8).balance_b) == (9_000, 8_000 + 1_000)  # B is paid
    failed = Chain(start(), CHANNEL, A, now=NOW, expiry_delta=DELTA, wanted=wanted)
    failed.apply(fail)
    assert (failed.state(8).balance_a, failed.state(8).balance_b) == (9_000 + 1_000, 8_000)  # back to A
    assert asked == [settle, fail]
    # A wanted settle still needs the HTLC's own preimage.
    with pytest.raises(ChannelRefused) as wrong:
        Chain(start(), CHANNEL, A, now=NOW, expiry_delta=DELTA, wanted=lambda c: True).apply(
            Change(UpdateKind.SETTLE_HTLC, True, HASHES[0], preimage=PREIMAGES[1]))
    assert wrong.value.reason is Reason.PREIMAGE_MISSING
