"""Attacks on the channel adjudicator (issue 14), each on a real anvil: a stale close, late and stale
challenges, HTLC claims and refunds on the wrong side of their expiry, states that create money,
signatures from outside the channel or replayed on another channel, chain or adjudicator, payouts
taken twice, opens and fundings by the wrong party, closes of channels never funded or already
closing, concludes of channels never closed, ids opened again, and challenges held to a close's
rules (rules A1-A17 in ChannelAdjudicator.sol).

Each attack is paired with the honest move it imitates, done for real, so that a contract that let
the attack through, or refused everything, fails the test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.contracts._adjudicator import (
    ALICE,
    BOB,
    CANCELLED,
    CLOSING,
    CONCLUDED,
    ETHER,
    FINAL,
    MALLORY,
    MAX_HTLCS,
    OPEN,
    OPEN_TIMEOUT,
    OPENING,
    PERIOD,
    Adjudicator,
    Htlc,
    State,
    adjudicator,
    high_s,
    payment_hash,
    preimage,
    sign,
)
from tests.l1.anvil import Anvil


@pytest.fixture
async def adj(chain: Anvil) -> AsyncIterator[Adjudicator]:
    async with adjudicator(chain) as deployed:
        yield deployed


def payments(channel_id: bytes) -> list[State]:
    """Alice pays Bob 1 ETH five times: states 1..5 of a 5 + 3 ETH channel (the first one is her best)."""
    return [State(channel_id, n, (5 - n) * ETHER, (3 + n) * ETHER) for n in range(1, 6)]


async def test_a_stale_close_is_answered_by_the_newest_state_and_the_closer_gains_nothing(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    states = payments(channel_id)
    await adj.send(ALICE, "closeUnilateral", *adj.signed(states[0]))  # Alice closes with her best, stale state
    await adj.send(MALLORY, "challenge", *adj.signed(states[-1]))  # Bob's tower answers with the newest
    adj.at((await adj.channel(channel_id))["ends_at"])
    alice, bob = await adj.l1.get_balance(ALICE.address), await adj.l1.get_balance(BOB.address)
    await adj.send(MALLORY, "conclude", channel_id, [])
    assert await adj.l1.get_balance(ALICE.address) - alice == states[-1].balance_a == 0
    assert await adj.l1.get_balance(BOB.address) - bob == states[-1].balance_b == 8 * ETHER


async def test_a_challenge_after_the_period_is_refused(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    states = payments(channel_id)
    await adj.send(ALICE, "closeUnilateral", *adj.signed(states[0]))
    ends_at = (await adj.channel(channel_id))["ends_at"]
    for late in (ends_at, ends_at + PERIOD):
        adj.at(late)
        error = await adj.refused(BOB, "challenge", *adj.signed(states[-1]))
        assert (error.name, error.args) == ("ChallengePeriodOver", (ends_at,))
    adj.at(ends_at - 1)
    await adj.send(BOB, "challenge", *adj.signed(states[-1]))  # one second earlier it passes


@pytest.mark.parametrize("newer", [False, True], ids=["equal", "lower"])
async def test_a_challenge_with_an_equal_or_lower_sequence_is_refused(adj: Adjudicator, newer: bool) -> None:
    channel_id = await adj.open()
    states = payments(channel_id)
    await adj.send(BOB, "closeUnilateral", *adj.signed(states[2]))
    stale = states[2] if not newer else states[1]
    error = await adj.refused(ALICE, "challenge", *adj.signed(stale))
    assert (error.name, error.args) == ("StaleState", (stale.sequence, 3))
    await adj.send(ALICE, "challenge", *adj.signed(states[3]))  # the next sequence passes


async def closing_with(adj: Adjudicator, htlc: Htlc) -> tuple[bytes, list[tuple[object, ...]]]:
    """A channel closed unilaterally with ``htlc`` (Alice -> Bob) pending, and concluded."""
    channel_id = await adj.open()
    state = State(channel_id, 4, 3 * ETHER, 4 * ETHER, (htlc,))
    await adj.send(BOB, "closeUnilateral", *adj.signed(state))
    adj.at((await adj.channel(channel_id))["ends_at"])
    await adj.send(MALLORY, "conclude", channel_id, state.htlc_list())
    return channel_id, state.htlc_list()


async def test_an_htlc_claim_one_second_after_its_expiry_fails_and_exactly_at_it_passes(adj: Adjudicator) -> None:
    expiry = await adj.now() + PERIOD + 100
    channel_id, htlcs = await closing_with(adj, Htlc(True, ETHER, payment_hash(preimage(9)), expiry))
    adj.at(expiry + 1)
    error = await adj.refused(BOB, "claimHtlc", channel_id, htlcs, 0, preimage(9))
    assert (error.name, error.args) == ("HtlcExpired", (expiry,))
    adj.at(expiry)
    bob = await adj.l1.get_balance(BOB.address)
    await adj.send(MALLORY, "claimHtlc", channel_id, htlcs, 0, preimage(9))
    assert await adj.l1.get_balance(BOB.address) == bob + ETHER
    assert await adj.read("revealedAt", channel_id, payment_hash(preimage(9))) == expiry


async def test_a_refund_only_after_the_expiry(adj: Adjudicator) -> None:
    expiry = await adj.now() + PERIOD + 100
    channel_id, htlcs = await closing_with(adj, Htlc(True, ETHER, payment_hash(preimage(9)), expiry))
    adj.at(expiry)
    error = await adj.refused(ALICE, "refundHtlc", channel_id, htlcs, 0)
    assert (error.name, error.args) == ("HtlcNotExpired", (expiry,))
    adj.at(expiry + 1)
    alice = await adj.l1.get_balance(ALICE.address)
    await adj.send(MALLORY, "refundHtlc", channel_id, htlcs, 0)
    assert await adj.l1.get_balance(ALICE.address) == alice + ETHER


async def test_a_preimage_revealed_on_chain_is_in_the_event_for_the_upstream_hop(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    secret = preimage(0xC0FFEE)
    htlc = Htlc(True, ETHER, payment_hash(secret), await adj.now() + 10 * PERIOD)
    state = State(channel_id, 4, 3 * ETHER, 4 * ETHER, (htlc,))
    await adj.send(BOB, "closeUnilateral", *adj.signed(state))
    receipt = await adj.send(BOB, "claimHtlc", channel_id, state.htlc_list(), 0, secret)  # during the period
    # The upstream hop filters the adjudicator's HtlcClaimed logs by its payment hash, and reads the preimage.
    logs = await adj.l1.get_logs(receipt.block_number, receipt.block_number, address=adj.address,
                                 topics=(adj.contract.topic("HtlcClaimed"), None, htlc.payment_hash))
    (log,) = logs
    event = adj.contract.decode_log(log)
    assert event is not None and event.args["preimage"] == secret and payment_hash(event.args["preimage"]) == (
        htlc.payment_hash)


@pytest.mark.parametrize(("balances", "htlc_amounts", "error"), [
    ((5 * ETHER, 3 * ETHER + 1), (), "FundsNotConserved"),  # one wei created
    ((5 * ETHER, 3 * ETHER - 1), (), "FundsNotConserved"),  # one wei lost
    ((2**255, 2**255), (), "FundsNotConserved"),  # wraps around 2**256
    ((4 * ETHER, 3 * ETHER), (ETHER, 1), "FundsNotConserved"),  # the HTLCs push it over
    ((4 * ETHER, 4 * ETHER), (0,), "ZeroHtlcAmount"),
    ((0, 0), (1,) * (MAX_HTLCS + 1), "TooManyHtlcs"),
])
async def test_a_state_whose_balances_do_not_add_up_is_refused(adj: Adjudicator, balances: tuple[int, int],
                                                               htlc_amounts: tuple[int, ...], error: str) -> None:
    channel_id = await adj.open()
    expiry = await adj.now() + 10 * PERIOD
    htlcs = tuple(Htlc(True, a, payment_hash(preimage(i)), expiry) for i, a in enumerate(htlc_amounts))
    state = State(channel_id, 2, *balances, htlcs)
    sigs = adj.signatures(state) if len(htlcs) <= MAX_HTLCS else (b"", b"")  # both signed: it adds up or not
    for function in ("closeUnilateral", "closeCooperative"):
        final = state if function == "closeUnilateral" else State(channel_id, FINAL, *balances)
        if function == "closeCooperative" and htlcs:
            continue
        refused = await adj.refused(ALICE, function, final.abi(), *(sigs if final is state else adj.signatures(final)))
        assert refused.name == error
    ok = State(channel_id, 2, 4 * ETHER, 4 * ETHER - 1, (Htlc(True, 1, payment_hash(preimage(0)), expiry),))
    await adj.send(ALICE, "closeUnilateral", *adj.signed(ok))  # what adds up passes


async def test_a_signature_from_outside_the_channel_or_a_malformed_one_is_refused(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    state = State(channel_id, 3, 2 * ETHER, 6 * ETHER)
    good_a, good_b = adj.signatures(state)
    mallory = sign(state, MALLORY, adj.chain_id, adj.address)
    for sig_a, sig_b, error in [
        (good_a, mallory, ("WrongSigner", (BOB.address, MALLORY.address))),
        (mallory, good_b, ("WrongSigner", (ALICE.address, MALLORY.address))),
        (good_b, good_a, ("WrongSigner", (ALICE.address, BOB.address))),  # swapped
        (good_a, good_a, ("WrongSigner", (BOB.address, ALICE.address))),  # Alice signs for both
        (good_a, high_s(good_b), ("SignatureHighS", ())),  # the malleable twin recovers Bob too
        (good_a, good_b[:64] + bytes([good_b[64] - 27]), ("SignatureV", (good_b[64] - 27,))),
        (good_a, good_b[:64], ("SignatureLength", (64,))),
        (good_a, b"", ("SignatureLength", (0,))),
    ]:
        refused = await adj.refused(ALICE, "closeUnilateral", state.abi(), sig_a, sig_b)
        assert (refused.name, refused.args) == error
    await adj.send(ALICE, "closeUnilateral", state.abi(), good_a, good_b)


async def test_a_signature_replayed_on_another_channel_is_refused(adj: Adjudicator) -> None:
    first, second = await adj.open(nonce=1), await adj.open(nonce=2)  # the same two parties, twice
    state = State(first, 3, 2 * ETHER, 6 * ETHER)
    sig_a, sig_b = adj.signatures(state)
    replayed = State(second, 3, 2 * ETHER, 6 * ETHER)
    refused = await adj.refused(BOB, "closeUnilateral", replayed.abi(), sig_a, sig_b)
    assert refused.name == "WrongSigner"
    await adj.send(BOB, "closeUnilateral", state.abi(), sig_a, sig_b)  # on its own channel it passes


async def test_a_signature_for_another_chain_id_is_refused(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    state = State(channel_id, 3, 2 * ETHER, 6 * ETHER)
    other_chain = (sign(state, ALICE, 1, adj.address), sign(state, BOB, 1, adj.address))
    assert (await adj.refused(BOB, "closeUnilateral", state.abi(), *other_chain)).name == "WrongSigner"
    await adj.send(BOB, "closeUnilateral", *adj.signed(state))


async def test_a_signature_for_another_adjudicator_is_refused(adj: Adjudicator, chain: Anvil) -> None:
    async with adjudicator(chain) as other:
        mine, theirs = await adj.open(), await other.open()  # the same parties and nonce: ids differ (A1)
        assert mine != theirs
        state = State(mine, 3, 2 * ETHER, 6 * ETHER)
        signed_here = adj.signed(state)
        refused = await other.refused(BOB, "closeUnilateral", *signed_here)
        assert (refused.name, refused.args) == ("WrongStatus", (mine, 0))  # no such channel there
        moved = State(theirs, 3, 2 * ETHER, 6 * ETHER)  # the other's channel, in this domain
        refused = await other.refused(BOB, "closeUnilateral", moved.abi(), *adj.signatures(moved))
        assert refused.name == "WrongSigner"
        await other.send(BOB, "closeUnilateral", *other.signed(moved))
        await adj.send(BOB, "closeUnilateral", *signed_here)


async def test_nothing_is_paid_twice(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    expiry = await adj.now() + 2 * PERIOD
    claimed = Htlc(True, ETHER, payment_hash(preimage(1)), expiry)
    refunded = Htlc(False, ETHER, payment_hash(preimage(2)), expiry)
    state = State(channel_id, 4, 3 * ETHER, 3 * ETHER, (claimed, refunded))
    htlcs = state.htlc_list()
    await adj.send(BOB, "closeUnilateral", *adj.signed(state))
    adj.at((await adj.channel(channel_id))["ends_at"])
    await adj.send(MALLORY, "conclude", channel_id, htlcs)
    assert (await adj.refused(MALLORY, "conclude", channel_id, htlcs)).name == "WrongStatus"  # double conclude
    await adj.send(BOB, "claimHtlc", channel_id, htlcs, 0, preimage(1))
    error = await adj.refused(BOB, "claimHtlc", channel_id, htlcs, 0, preimage(1))
    assert (error.name, error.args) == ("HtlcSettled", (0,))  # double claim
    adj.at(expiry + 1)
    assert (await adj.refused(ALICE, "refundHtlc", channel_id, htlcs, 0)).name == "PreimageRevealed"  # claim, refund
    await adj.send(BOB, "refundHtlc", channel_id, htlcs, 1)
    assert (await adj.refused(BOB, "refundHtlc", channel_id, htlcs, 1)).name == "HtlcSettled"  # double refund
    assert (await adj.refused(ALICE, "claimHtlc", channel_id, htlcs, 1, preimage(2))).name == "HtlcExpired"
    assert await adj.l1.get_balance(adj.address) == 0
    final = State(channel_id, FINAL, 4 * ETHER, 4 * ETHER)
    assert (await adj.refused(ALICE, "closeCooperative", *adj.signed(final))).name == "WrongStatus"


async def test_a_double_cooperative_close_is_refused(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    final = State(channel_id, FINAL, 4 * ETHER, 4 * ETHER)
    await adj.send(ALICE, "closeCooperative", *adj.signed(final))
    assert (await adj.refused(ALICE, "closeCooperative", *adj.signed(final))).name == "WrongStatus"
    assert (await adj.refused(ALICE, "closeUnilateral", *adj.signed(final))).name == "WrongStatus"


async def test_cancel_open_before_the_timeout_or_after_funding_is_refused(adj: Adjudicator) -> None:
    pending = await adj.open(nonce=1, fund=False)
    assert (await adj.refused(ALICE, "cancelOpen", pending)).name == "OpenTimeoutRunning"
    funded = await adj.open(nonce=2)
    adj.at((await adj.channel(funded))["opened_at"] + 10 * 86_400)
    error = await adj.refused(ALICE, "cancelOpen", funded)
    assert (error.name, error.args) == ("WrongStatus", (funded, OPEN))
    adj.at((await adj.channel(pending))["opened_at"] + 10 * 86_400)
    await adj.send(ALICE, "cancelOpen", pending)  # the unfunded one, after the timeout, passes
    assert await adj.l1.get_balance(adj.address) == 8 * ETHER  # the funded channel's 5 + 3 stay


async def test_funding_by_the_wrong_party_or_amount_is_refused(adj: Adjudicator) -> None:
    channel_id = await adj.open(fund=False)
    for signer, value, error in [(MALLORY, 3 * ETHER, "NotFunder"), (ALICE, 3 * ETHER, "NotFunder"),
                                 (BOB, 3 * ETHER - 1, "WrongAmount"), (BOB, 3 * ETHER + 1, "WrongAmount")]:
        assert (await adj.refused(signer, "fund", channel_id, value=value)).name == error
    await adj.send(BOB, "fund", channel_id, value=3 * ETHER)
    assert (await adj.refused(BOB, "fund", channel_id, value=3 * ETHER)).name == "WrongStatus"  # twice


async def test_an_htlc_of_a_close_that_a_cooperative_close_ended_is_not_claimable(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    htlc = Htlc(True, ETHER, payment_hash(preimage(1)), await adj.now() + 10 * PERIOD)
    disputed = State(channel_id, 4, 3 * ETHER, 4 * ETHER, (htlc,))
    await adj.send(BOB, "closeUnilateral", *adj.signed(disputed))
    # The HTLC was settled off chain (Bob got it) and both signed a final state ending the dispute.
    await adj.send(ALICE, "closeCooperative", *adj.signed(State(channel_id, FINAL, 3 * ETHER, 5 * ETHER)))
    assert await adj.l1.get_balance(adj.address) == 0
    for function, args in (("claimHtlc", (preimage(1),)), ("refundHtlc", ())):
        refused = await adj.refused(BOB, function, channel_id, disputed.htlc_list(), 0, *args)
        assert refused.name == "HtlcsMismatch"  # it would pay the HTLC a second time, from others' funds


async def test_a_channel_never_funded_or_cancelled_cannot_be_closed_to_pay_the_deposit_it_never_got(
        adj: Adjudicator) -> None:
    """A colluding pair opens with a large amount on b's side, never funds it, and closes with the
    funding state (sequence 0 needs no signature) or a final state both signed: b would be paid its
    amount out of the other channels' deposits. Cancelled, a's deposit would be paid twice."""
    honest = await adj.open(nonce=1)  # 5 + 3 ETH held for another channel
    never = await adj.open(nonce=2, amount_b=50 * ETHER, fund=False)
    funding = State(never, 0, 5 * ETHER, 50 * ETHER)
    final = State(never, FINAL, 0, 55 * ETHER)
    for function, args in (("closeUnilateral", (funding.abi(), b"", b"")), ("closeCooperative", adj.signed(final))):
        refused = await adj.refused(BOB, function, *args)
        assert (refused.name, refused.args) == ("WrongStatus", (never, OPENING))
    adj.at((await adj.channel(never))["opened_at"] + OPEN_TIMEOUT)
    await adj.send(ALICE, "cancelOpen", never)  # the honest way out: a takes back its 5 ETH
    for function, args in (("closeUnilateral", (funding.abi(), b"", b"")),
                           ("closeCooperative", adj.signed(State(never, FINAL, 5 * ETHER, 0)))):
        refused = await adj.refused(ALICE, function, *args)
        assert (refused.name, refused.args) == ("WrongStatus", (never, CANCELLED))
    assert (await adj.refused(ALICE, "cancelOpen", never)).args == (never, CANCELLED)  # nor twice
    assert await adj.l1.get_balance(adj.address) == 8 * ETHER  # the other channel's deposits, whole
    await adj.send(BOB, "closeUnilateral", State(honest, 0, 5 * ETHER, 3 * ETHER).abi(), b"", b"")  # funded: passes


async def test_a_second_unilateral_close_cannot_restart_the_period_or_replace_the_newer_state(
        adj: Adjudicator) -> None:
    """The stale closer, answered by a challenge, closes again (with its old state, or the funding
    state) to put its state back and start the period over: only a challenge moves a closing channel."""
    channel_id = await adj.open()
    states = payments(channel_id)
    await adj.send(ALICE, "closeUnilateral", *adj.signed(states[0]))
    await adj.send(BOB, "challenge", *adj.signed(states[-1]))
    closing = await adj.channel(channel_id)
    adj.at(closing["ends_at"] - 1)
    for again in ((states[0].abi(), *adj.signatures(states[0])), (State(channel_id, 0, 5 * ETHER, 3 * ETHER).abi(),
                                                                  b"", b"")):
        refused = await adj.refused(ALICE, "closeUnilateral", *again)
        assert (refused.name, refused.args) == ("WrongStatus", (channel_id, CLOSING))
    adj.at(closing["ends_at"])
    await adj.send(MALLORY, "conclude", channel_id, [])
    refused = await adj.refused(ALICE, "closeUnilateral", *adj.signed(states[0]))
    assert (refused.name, refused.args) == ("WrongStatus", (channel_id, CONCLUDED))
    assert (await adj.channel(channel_id))["sequence"] == states[-1].sequence


async def test_no_one_concludes_a_channel_that_was_never_closed(adj: Adjudicator) -> None:
    """conclude on an OPEN (or OPENING) channel would mark it CONCLUDED at balances 0/0 and lock
    both deposits for good."""
    opened, opening = await adj.open(nonce=1), await adj.open(nonce=2, fund=False)
    for channel_id, status in ((opened, OPEN), (opening, OPENING)):
        adj.at(await adj.now() + 10 * OPEN_TIMEOUT)  # however late
        refused = await adj.refused(MALLORY, "conclude", channel_id, [])
        assert (refused.name, refused.args) == ("WrongStatus", (channel_id, status))
    await adj.send(ALICE, "closeUnilateral", *adj.signed(State(opened, 1, 4 * ETHER, 4 * ETHER)))
    adj.at((await adj.channel(opened))["ends_at"])
    await adj.send(MALLORY, "conclude", opened, [])  # closed first, it concludes


async def test_an_id_that_was_cancelled_or_concluded_cannot_be_opened_again(adj: Adjudicator) -> None:
    """Reopened, an id would take the old channel's co-signed states, sequences above the new ones."""
    cancelled, concluded = await adj.open(nonce=1, fund=False), await adj.open(nonce=2)
    adj.at((await adj.channel(cancelled))["opened_at"] + OPEN_TIMEOUT)
    await adj.send(ALICE, "cancelOpen", cancelled)
    await adj.send(ALICE, "closeCooperative", *adj.signed(State(concluded, FINAL, 4 * ETHER, 4 * ETHER)))
    for nonce, channel_id in ((1, cancelled), (2, concluded)):
        refused = await adj.refused(ALICE, "open", ALICE.address, BOB.address, nonce, 5 * ETHER, 3 * ETHER,
                                    value=5 * ETHER)
        assert (refused.name, refused.args) == ("ChannelExists", (channel_id,))
    await adj.open(nonce=3)  # a fresh nonce opens


@pytest.mark.parametrize("status", ["open", "closing"])
async def test_a_challenge_is_held_to_every_rule_a_close_is(adj: Adjudicator, status: str) -> None:
    """challenge is open to anyone: a state one party signed, a signature from outside, a malleable
    twin, a state that creates money or a final one with HTLCs in it are refused there too, and no
    channel that is not closing can be challenged."""
    channel_id = await adj.open()
    if status == "open":
        refused = await adj.refused(MALLORY, "challenge", *adj.signed(State(channel_id, 2, 4 * ETHER, 4 * ETHER)))
        assert (refused.name, refused.args) == ("WrongStatus", (channel_id, OPEN))
        return
    await adj.send(ALICE, "closeUnilateral", *adj.signed(State(channel_id, 1, 5 * ETHER, 3 * ETHER)))
    newer = State(channel_id, 2, 4 * ETHER, 4 * ETHER)
    good_a, good_b = adj.signatures(newer)
    htlc = Htlc(True, ETHER, payment_hash(preimage(1)), await adj.now() + 10 * PERIOD)
    for state, sig_a, sig_b, error in [
        (newer, good_a, b"", "SignatureLength"),  # Alice's alone
        (newer, good_a, sign(newer, MALLORY, adj.chain_id, adj.address), "WrongSigner"),
        (newer, good_a, high_s(good_b), "SignatureHighS"),
        (State(channel_id, 2, 4 * ETHER, 4 * ETHER + 1), None, None, "FundsNotConserved"),
        (State(channel_id, FINAL, 3 * ETHER, 4 * ETHER, (htlc,)), None, None, "HtlcsPending"),
    ]:
        sigs = (sig_a, sig_b) if sig_a is not None else adj.signatures(state)
        refused = await adj.refused(MALLORY, "challenge", state.abi(), *sigs)
        assert refused.name == error, (state, refused)
    await adj.send(MALLORY, "challenge", newer.abi(), good_a, good_b)  # both signed, newer, adds up: passes


async def test_a_preimage_revealed_after_one_htlc_s_expiry_claims_only_the_later_htlc_of_its_hash(
        adj: Adjudicator) -> None:
    """Two HTLCs of one payment hash (the contract does not hold states to one a hash): the preimage
    revealed late, through the one that expires later, does not claim the one already expired, which
    goes back to its offerer; the later one is paid."""
    channel_id = await adj.open()
    now = await adj.now()
    secret = preimage(7)
    early, late = (Htlc(True, ETHER, payment_hash(secret), now + PERIOD + 100 * k) for k in (1, 2))
    state = State(channel_id, 4, 2 * ETHER, 4 * ETHER, (early, late))
    htlcs = state.htlc_list()
    await adj.send(BOB, "closeUnilateral", *adj.signed(state))
    adj.at((await adj.channel(channel_id))["ends_at"])
    await adj.send(MALLORY, "conclude", channel_id, htlcs)
    adj.at(early.expiry + 1)  # between the two expiries
    bob = await adj.l1.get_balance(BOB.address)
    await adj.send(MALLORY, "claimHtlc", channel_id, htlcs, 1, secret)  # the later one, in time: paid
    assert await adj.l1.get_balance(BOB.address) == bob + ETHER
    refused = await adj.refused(BOB, "claimHtlc", channel_id, htlcs, 0, secret)
    assert (refused.name, refused.args) == ("HtlcExpired", (early.expiry,))  # revealed after its expiry
    alice = await adj.l1.get_balance(ALICE.address)
    await adj.send(MALLORY, "refundHtlc", channel_id, htlcs, 0)
    assert await adj.l1.get_balance(ALICE.address) == alice + ETHER
    assert await adj.l1.get_balance(adj.address) == 0
