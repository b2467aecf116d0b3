"""ChannelAdjudicator on a real anvil: opening and funding, the cooperative and the unilateral close,
the challenge period's edges, HTLCs settled on chain, and payouts no recipient can block (rules A1-A17
in the contract's NatSpec). The attacks on it are tests/attacks/test_channel_adjudicator.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from eth_abi import encode

import protocol
from services.l1 import keccak
from tests.contracts._adjudicator import (
    ALICE,
    BOB,
    CANCELLED,
    CLOSING,
    CONCLUDED,
    ETHER,
    FINAL,
    KEYS,
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
    payment_hash,
    preimage,
    sign,
    typed_data,
)
from tests.l1.anvil import Anvil


@pytest.fixture
async def adj(chain: Anvil) -> AsyncIterator[Adjudicator]:
    async with adjudicator(chain) as deployed:
        yield deployed


async def test_the_digest_is_a_wallets_eip712_typed_data_and_the_ids_are_as_specified(adj: Adjudicator) -> None:
    channel_id = keccak(encode(["uint256", "address", "address", "address", "uint64"],
                               [adj.chain_id, adj.address, ALICE.address, BOB.address, 7]))  # A1
    assert await adj.read("channelIdOf", ALICE.address, BOB.address, 7) == channel_id
    htlcs = (Htlc(True, 10, payment_hash(preimage(1)), 2**40), Htlc(False, 2**200, b"\xab" * 32, 2**64 - 1))
    for state in (State(channel_id, 9, 1, 2), State(channel_id, FINAL, 3, 4, htlcs)):  # empty array and two
        message = typed_data(state, adj.chain_id, adj.address)
        assert await adj.read("domainSeparator") == message.header
        assert await adj.read("stateDigest", state.abi()) == keccak(b"\x19" + message.version + message.header
                                                                     + message.body)
        assert await adj.read("htlcsHash", state.htlc_list()) == state.htlcs_hash()


async def test_open_then_fund_makes_a_channel_open(adj: Adjudicator) -> None:
    receipt = await adj.send(ALICE, "open", ALICE.address, BOB.address, 1, 5 * ETHER, 3 * ETHER, value=5 * ETHER)
    ((name, args),) = adj.events(receipt)
    channel_id = args["channelId"]
    assert name == "ChannelOpened" and (args["a"], args["b"], args["nonce"]) == (ALICE.address, BOB.address, 1)
    assert (await adj.channel(channel_id))["status"] == OPENING
    assert adj.events(await adj.send(BOB, "fund", channel_id, value=3 * ETHER)) == [
        ("ChannelFunded", {"channelId": channel_id})]
    ch = await adj.channel(channel_id)
    assert (ch["status"], ch["a"], ch["b"], ch["amount_a"], ch["amount_b"]) == (
        OPEN, ALICE.address, BOB.address, 5 * ETHER, 3 * ETHER)
    assert await adj.l1.get_balance(adj.address) == 8 * ETHER
    # A2: the id is burned: the same (a, b, nonce) never opens again.
    refused = await adj.refused(ALICE, "open", ALICE.address, BOB.address, 1, 1, 0, value=1)
    assert refused.name == "ChannelExists"


async def test_a_single_funded_channel_is_open_at_once(adj: Adjudicator) -> None:
    receipt = await adj.send(ALICE, "open", ALICE.address, BOB.address, 1, ETHER, 0, value=ETHER)
    assert [name for name, _ in adj.events(receipt)] == ["ChannelOpened", "ChannelFunded"]
    assert (await adj.channel(adj.events(receipt)[0][1]["channelId"]))["status"] == OPEN


@pytest.mark.parametrize(("a", "b", "amounts", "value", "error"), [
    (BOB.address, ALICE.address, (1, 1), 1, "NotOpener"),  # Alice opens a channel naming Bob as its a
    (ALICE.address, ALICE.address, (1, 1), 1, "InvalidParticipants"),
    (ALICE.address, bytes(20), (1, 1), 1, "InvalidParticipants"),
    (ALICE.address, BOB.address, (0, 0), 0, "ZeroFunding"),
    (ALICE.address, BOB.address, (1, 2**96), 1, "AmountTooLarge"),
    (ALICE.address, BOB.address, (2**96, 1), 0, "AmountTooLarge"),  # a's side too (checked before the value)
    (ALICE.address, BOB.address, (2, 1), 1, "WrongAmount"),
    (ALICE.address, BOB.address, (1, 1), 2, "WrongAmount"),  # overpaid: the extra wei would belong to no one
])
async def test_nonsense_opens_are_refused(adj: Adjudicator, a: bytes, b: bytes, amounts: tuple[int, int],
                                          value: int, error: str) -> None:
    assert (await adj.refused(ALICE, "open", a, b, 1, *amounts, value=value)).name == error


async def test_cancel_open_returns_the_openers_deposit_exactly_at_the_timeout(adj: Adjudicator) -> None:
    channel_id = await adj.open(fund=False)
    opened_at = (await adj.channel(channel_id))["opened_at"]
    before = await adj.l1.get_balance(ALICE.address)
    adj.at(opened_at + OPEN_TIMEOUT - 1)
    assert (await adj.refused(MALLORY, "cancelOpen", channel_id)).name == "OpenTimeoutRunning"
    adj.at(opened_at + OPEN_TIMEOUT)
    receipt = await adj.send(MALLORY, "cancelOpen", channel_id)  # A4: anyone; it pays only Alice
    assert adj.events(receipt) == [("ChannelCancelled", {"channelId": channel_id})]
    assert await adj.l1.get_balance(ALICE.address) == before + 5 * ETHER
    assert (await adj.channel(channel_id))["status"] == CANCELLED
    assert (await adj.refused(BOB, "fund", channel_id, value=3 * ETHER)).name == "WrongStatus"


async def test_a_cooperative_close_pays_a_final_state_at_once(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    balances = [await adj.l1.get_balance(p.address) for p in (ALICE, BOB)]
    final = State(channel_id, FINAL, 2 * ETHER, 6 * ETHER)
    receipt = await adj.send(MALLORY, "closeCooperative", *adj.signed(final))  # A9: from anyone
    assert adj.events(receipt) == [("ChannelConcluded", {"channelId": channel_id, "sequence": FINAL,
                                                         "balanceA": 2 * ETHER, "balanceB": 6 * ETHER})]
    assert [await adj.l1.get_balance(p.address) for p in (ALICE, BOB)] == [balances[0] + 2 * ETHER,
                                                                          balances[1] + 6 * ETHER]
    assert await adj.l1.get_balance(adj.address) == 0
    assert (await adj.channel(channel_id))["status"] == CONCLUDED


async def test_a_cooperative_close_takes_only_a_final_state_without_htlcs(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    # A9: any other co-signed state may be stale; paying it at once would skip the challenge.
    refused = await adj.refused(ALICE, "closeCooperative", *adj.signed(State(channel_id, 5, 2 * ETHER, 6 * ETHER)))
    assert refused.name == "NotFinalState"
    htlc = Htlc(True, ETHER, payment_hash(preimage(1)), await adj.now() + 10 * PERIOD)
    final = State(channel_id, FINAL, ETHER, 6 * ETHER, (htlc,))
    assert (await adj.refused(ALICE, "closeCooperative", *adj.signed(final))).name == "HtlcsPending"


async def test_a_cooperative_close_ends_a_dispute(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    await adj.send(ALICE, "closeUnilateral", *adj.signed(State(channel_id, 4, 4 * ETHER, 4 * ETHER)))
    final = State(channel_id, FINAL, 3 * ETHER, 5 * ETHER)
    await adj.send(BOB, "closeCooperative", *adj.signed(final))
    ch = await adj.channel(channel_id)
    assert (ch["status"], ch["sequence"], ch["balance_a"], ch["balance_b"]) == (CONCLUDED, FINAL, 3 * ETHER, 5 * ETHER)


async def test_unilateral_close_challenge_and_conclude_at_the_periods_edges(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    receipt = await adj.send(ALICE, "closeUnilateral", *adj.signed(State(channel_id, 3, 4 * ETHER, 4 * ETHER)))
    ends_at = (await adj.now()) + PERIOD
    assert adj.events(receipt) == [("ChannelClosing", {"channelId": channel_id, "sequence": 3, "endsAt": ends_at})]
    adj.at(ends_at - 1)  # the last second of the period: a challenge (by a tower: anyone) still passes
    newer = State(channel_id, 5, 3 * ETHER, 5 * ETHER)
    receipt = await adj.send(MALLORY, "challenge", *adj.signed(newer))
    assert adj.events(receipt) == [("ChannelChallenged", {"channelId": channel_id, "sequence": 5})]
    ch = await adj.channel(channel_id)
    assert (ch["status"], ch["sequence"], ch["ends_at"]) == (CLOSING, 5, ends_at)  # A11: the end does not move
    assert (await adj.refused(MALLORY, "conclude", channel_id, [])).name == "ChallengePeriodRunning"
    adj.at(ends_at)  # A12: the period is [close, endsAt)
    newest = State(channel_id, 6, 2 * ETHER, 6 * ETHER)
    assert (await adj.refused(BOB, "challenge", *adj.signed(newest))).name == "ChallengePeriodOver"
    balances = [await adj.l1.get_balance(p.address) for p in (ALICE, BOB)]
    adj.at(ends_at)
    receipt = await adj.send(MALLORY, "conclude", channel_id, [])
    assert adj.events(receipt) == [("ChannelConcluded", {"channelId": channel_id, "sequence": 5,
                                                         "balanceA": 3 * ETHER, "balanceB": 5 * ETHER})]
    assert [await adj.l1.get_balance(p.address) for p in (ALICE, BOB)] == [balances[0] + 3 * ETHER,
                                                                          balances[1] + 5 * ETHER]


async def test_the_funding_state_closes_unsigned_and_any_signed_state_replaces_it(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    # A8: sequence 0 is the funding state, and only it.
    forged = State(channel_id, 0, 8 * ETHER, 0)
    assert (await adj.refused(ALICE, "closeUnilateral", forged.abi(), b"", b"")).name == "NotFundingState"
    await adj.send(ALICE, "closeUnilateral", State(channel_id, 0, 5 * ETHER, 3 * ETHER).abi(), b"", b"")
    await adj.send(BOB, "challenge", *adj.signed(State(channel_id, 1, 4 * ETHER, 4 * ETHER)))
    ch = await adj.channel(channel_id)
    assert (ch["sequence"], ch["balance_a"], ch["balance_b"]) == (1, 4 * ETHER, 4 * ETHER)


async def test_only_a_participant_starts_a_unilateral_close(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    refused = await adj.refused(MALLORY, "closeUnilateral", *adj.signed(State(channel_id, 3, 4 * ETHER, 4 * ETHER)))
    assert refused.name == "NotParticipant"  # A10: a tower holding states answers a close, never starts one


async def test_htlcs_are_claimed_by_preimage_or_refunded_to_their_offerer(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    now = await adj.now()
    to_bob = Htlc(True, ETHER, payment_hash(preimage(1)), now + PERIOD // 2)  # expires inside the period
    to_alice = Htlc(False, 2 * ETHER, payment_hash(preimage(2)), now + PERIOD // 2)
    state = State(channel_id, 7, 2 * ETHER, 3 * ETHER, (to_bob, to_alice))
    await adj.send(BOB, "closeUnilateral", *adj.signed(state))
    assert (await adj.channel(channel_id))["htlcs_hash"] == state.htlcs_hash()
    htlcs = state.htlc_list()
    # A14: during the period a claim reveals the preimage and pays nothing yet.
    receipt = await adj.send(BOB, "claimHtlc", channel_id, htlcs, 0, preimage(1))
    assert adj.events(receipt) == [("HtlcClaimed", {"channelId": channel_id, "index": 0,
                                                    "paymentHash": to_bob.payment_hash, "preimage": preimage(1),
                                                    "paid": 0})]
    revealed_at = await adj.now()
    assert await adj.read("revealedAt", channel_id, to_bob.payment_hash) == revealed_at
    assert (await adj.refused(BOB, "claimHtlc", channel_id, htlcs, 0, preimage(1))).name == "PreimageAlreadyRevealed"
    assert (await adj.refused(BOB, "claimHtlc", channel_id, htlcs, 1, preimage(1))).name == "WrongPreimage"
    assert (await adj.refused(BOB, "refundHtlc", channel_id, htlcs, 1)).name == "WrongStatus"  # not final yet
    adj.at((await adj.channel(channel_id))["ends_at"])
    await adj.send(MALLORY, "conclude", channel_id, htlcs)
    assert await adj.l1.get_balance(adj.address) == 3 * ETHER  # the HTLCs' amounts stay for claim and refund
    # After conclude, past the expiry: the claim revealed in time is paid, the other is refunded.
    balances = [await adj.l1.get_balance(p.address) for p in (ALICE, BOB)]
    receipt = await adj.send(MALLORY, "claimHtlc", channel_id, htlcs, 0, preimage(1))
    assert adj.events(receipt)[0][1]["paid"] == ETHER
    receipt = await adj.send(MALLORY, "refundHtlc", channel_id, htlcs, 1)
    assert adj.events(receipt) == [("HtlcRefunded", {"channelId": channel_id, "index": 1,
                                                     "paymentHash": to_alice.payment_hash, "amount": 2 * ETHER})]
    assert [await adj.l1.get_balance(p.address) for p in (ALICE, BOB)] == [balances[0], balances[1] + 3 * ETHER]
    assert await adj.l1.get_balance(adj.address) == 0
    assert [await adj.read("htlcSettled", channel_id, i) for i in (0, 1, 2)] == [True, True, False]


async def test_a_claim_of_an_htlc_a_newer_state_dropped_is_never_paid(adj: Adjudicator) -> None:
    channel_id = await adj.open()
    htlc = Htlc(True, ETHER, payment_hash(preimage(1)), await adj.now() + 2 * PERIOD)
    stale = State(channel_id, 3, 4 * ETHER, 3 * ETHER, (htlc,))
    await adj.send(BOB, "closeUnilateral", *adj.signed(stale))
    await adj.send(BOB, "claimHtlc", channel_id, stale.htlc_list(), 0, preimage(1))
    failed = State(channel_id, 4, 5 * ETHER, 3 * ETHER)  # the HTLC failed off chain: back to Alice
    await adj.send(ALICE, "challenge", *adj.signed(failed))
    adj.at((await adj.channel(channel_id))["ends_at"])
    refused = await adj.refused(BOB, "conclude", channel_id, stale.htlc_list())
    assert refused.name == "HtlcsMismatch"
    await adj.send(BOB, "conclude", channel_id, [])
    assert (await adj.refused(BOB, "claimHtlc", channel_id, stale.htlc_list(), 0, preimage(1))).name == "HtlcsMismatch"
    assert await adj.l1.get_balance(adj.address) == 0


@pytest.mark.parametrize("code", ["0x5f5ffd", "0x5b5f56"], ids=["reverts", "burns-all-gas"])
async def test_a_recipient_that_refuses_its_payout_is_credited_and_blocks_nobody(adj: Adjudicator, chain: Anvil,
                                                                                 code: str) -> None:
    channel_id = await adj.open()
    chain.rpc("anvil_setCode", "0x" + BOB.address.hex(), code)  # Bob's account turns into a hostile contract
    before = await adj.l1.get_balance(ALICE.address)
    receipt = await adj.send(MALLORY, "closeCooperative", *adj.signed(State(channel_id, FINAL, 2 * ETHER, 6 * ETHER)))
    assert receipt.gas_used < 200_000  # A17: the push got PAY_GAS, not the transaction's gas
    assert await adj.l1.get_balance(ALICE.address) == before + 2 * ETHER
    assert await adj.read("credit", BOB.address) == 6 * ETHER
    chain.rpc("anvil_setCode", "0x" + BOB.address.hex(), "0x")
    bob = await adj.l1.get_balance(BOB.address)
    withdrawn = await adj.send(BOB, "withdraw")
    assert await adj.l1.get_balance(BOB.address) == bob + 6 * ETHER - withdrawn.gas_used * withdrawn.effective_gas_price


async def test_after_a_fork_the_domain_follows_the_chain_id(adj: Adjudicator, chain: Anvil) -> None:
    channel_id = await adj.open()
    state = State(channel_id, 3, 2 * ETHER, 6 * ETHER)
    signed_before = adj.signed(state)
    fork_id = adj.chain_id + 1
    chain.rpc("anvil_setChainId", fork_id)
    try:
        # A5: signatures from before the fork are void on the fork; ones for the fork's id pass.
        assert (await adj.refused(ALICE, "closeUnilateral", *signed_before)).name == "WrongSigner"
        fork_sigs = (sign(state, ALICE, fork_id, adj.address), sign(state, BOB, fork_id, adj.address))
        await adj.l1.call(adj.address, adj.contract.encode_call("closeUnilateral", state.abi(), *fork_sigs),
                          sender=ALICE.address, block="pending")
    finally:
        chain.rpc("anvil_setChainId", adj.chain_id)


async def test_the_protocols_channel_state_hashes_and_signs_as_the_contract_checks(adj: Adjudicator) -> None:
    """protocol/_channel.py (what the workers sign with) against the contract, on chain."""
    channel = protocol.Channel(adj.chain_id, adj.address, ALICE.address, BOB.address, 4, 5 * ETHER, 3 * ETHER)
    assert await adj.open(nonce=4) == channel.id == protocol.channel_id(adj.chain_id, adj.address, ALICE.address,
                                                                        BOB.address, 4)
    assert await adj.read("domainSeparator") == channel.domain.separator
    expiry = await adj.now() + 10 * PERIOD
    htlcs = (protocol.Htlc(True, ETHER, protocol.payment_hash(preimage(1)), expiry),
             protocol.Htlc(False, 2, protocol.payment_hash(preimage(2)), expiry))
    state = protocol.ChannelState(channel.id, 6, 4 * ETHER, 3 * ETHER - 2, htlcs)
    protocol.check_state(state, channel)
    mirror = State(state.channel_id, state.sequence, state.balance_a, state.balance_b,
                   tuple(Htlc(h.from_a, h.amount, h.payment_hash, h.expiry) for h in htlcs))
    digest = protocol.state_digest(state, channel.domain)
    assert await adj.read("stateDigest", mirror.abi()) == digest
    assert await adj.read("htlcsHash", mirror.htlc_list()) == protocol.htlcs_hash(htlcs) == mirror.htlcs_hash()
    sigs = [protocol.sign_state(digest, KEYS[p.address]) for p in (ALICE, BOB)]
    assert sigs == list(adj.signatures(mirror))  # RFC 6979: the same bytes as eth-account's
    await adj.send(BOB, "closeUnilateral", mirror.abi(), *sigs)
    assert (await adj.channel(channel.id))["htlcs_hash"] == protocol.htlcs_hash(htlcs)


async def test_a_state_with_max_htlcs_closes_and_each_htlc_resolves(adj: Adjudicator) -> None:
    """C5's cap fits L1: a close with 483 HTLCs (signed by protocol/_channel.py, as a worker would)."""
    channel_id = await adj.open(amount_a=MAX_HTLCS, amount_b=0)
    expiry = await adj.now() + 2 * PERIOD
    htlcs = tuple(Htlc(True, 1, payment_hash(preimage(i)), expiry) for i in range(MAX_HTLCS))
    state = State(channel_id, 1, 0, 0, htlcs)
    mine = protocol.ChannelState(channel_id, 1, 0, 0, tuple(protocol.Htlc(*h.abi()) for h in htlcs))
    digest = protocol.state_digest(mine, protocol.Domain(adj.chain_id, adj.address))
    sigs = [protocol.sign_state(digest, KEYS[p.address]) for p in (ALICE, BOB)]
    receipt = await adj.send(BOB, "closeUnilateral", state.abi(), *sigs)
    assert receipt.gas_used < 3_000_000
    adj.at((await adj.channel(channel_id))["ends_at"])
    await adj.send(BOB, "conclude", channel_id, state.htlc_list())
    await adj.send(BOB, "claimHtlc", channel_id, state.htlc_list(), MAX_HTLCS - 1, preimage(MAX_HTLCS - 1))
    assert [await adj.read("htlcSettled", channel_id, i) for i in (0, 255, 256, MAX_HTLCS - 1)] == [
        False, False, False, True]
