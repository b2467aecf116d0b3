"""Payment-channel states (protocol._channel): the channel id, the EIP-712 digest and HTLC hash
against independent implementations (eth-account's encode_typed_data, eth-abi), pinned vectors,
signatures (refused by name when malleable, malformed or foreign) and every update rule C0-C9."""

from __future__ import annotations

import hashlib
import itertools
import pickle
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account as EthAccount
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    DEV_PRIVATE_KEYS,
    MAX_HTLCS,
    Channel,
    ChannelRefused,
    ChannelState,
    Domain,
    Htlc,
    Reason,
    channel_id,
    check_signature,
    check_state,
    check_update,
    htlcs_hash,
    keccak256,
    payment_hash,
    recover_signer,
    sign_state,
    state_digest,
)
from protocol._rules import SECP256K1_N
from services.l1 import LocalSigner

KEY_A, KEY_B, KEY_C = DEV_PRIVATE_KEYS[:3]
A, B, C = (LocalSigner(k).address for k in (KEY_A, KEY_B, KEY_C))
ADJUDICATOR = bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3")
CHAIN = 31337
NOW = 1_800_000_000
DELTA = 3_600

CHANNEL = Channel(CHAIN, ADJUDICATOR, A, B, nonce=7, amount_a=10**18, amount_b=5 * 10**17)


def preimage_hash(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(32, "big")).digest()


def eip712(state: ChannelState, domain: Domain) -> dict[str, Any]:
    """The typed data as a wallet is handed it (eth_signTypedData_v4)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Htlc": [
                {"name": "fromA", "type": "bool"},
                {"name": "amount", "type": "uint256"},
                {"name": "paymentHash", "type": "bytes32"},
                {"name": "expiry", "type": "uint64"},
            ],
            "State": [
                {"name": "channelId", "type": "bytes32"},
                {"name": "sequence", "type": "uint64"},
                {"name": "balanceA", "type": "uint256"},
                {"name": "balanceB", "type": "uint256"},
                {"name": "htlcs", "type": "Htlc[]"},
            ],
        },
        "primaryType": "State",
        "domain": {
            "name": "l2node channels",
            "version": "1",
            "chainId": domain.chain_id,
            "verifyingContract": "0x" + domain.adjudicator.hex(),
        },
        "message": {
            "channelId": state.channel_id,
            "sequence": state.sequence,
            "balanceA": state.balance_a,
            "balanceB": state.balance_b,
            "htlcs": [
                {"fromA": h.from_a, "amount": h.amount, "paymentHash": h.payment_hash, "expiry": h.expiry}
                for h in state.htlcs
            ],
        },
    }


def wallet_digest(state: ChannelState, domain: Domain) -> bytes:
    signed = EthAccount.sign_message(encode_typed_data(full_message=eip712(state, domain)), KEY_A)
    return bytes(signed.message_hash)


UINT64 = st.integers(0, 2**64 - 1)
UINT256 = st.integers(0, 2**256 - 1)
HASHES = st.binary(min_size=32, max_size=32)
HTLCS = st.lists(st.builds(Htlc, st.booleans(), st.integers(1, 2**256 - 1), HASHES, UINT64), max_size=5).map(tuple)
STATES = st.builds(ChannelState, HASHES, UINT64, UINT256, UINT256, HTLCS)
DOMAINS = st.builds(Domain, UINT256, st.binary(min_size=20, max_size=20))


@settings(max_examples=60, deadline=None)
@given(STATES, DOMAINS)
def test_the_digest_is_the_one_a_wallet_signs_with_eth_sign_typed_data(state: ChannelState, domain: Domain) -> None:
    assert state_digest(state, domain) == wallet_digest(state, domain)


@settings(max_examples=60, deadline=None)
@given(HTLCS)
def test_htlcs_hash_is_keccak_of_abi_encode_of_the_array(htlcs: tuple[Htlc, ...]) -> None:
    encoded = abi_encode(["(bool,uint256,bytes32,uint64)[]"],
                         [[(h.from_a, h.amount, h.payment_hash, h.expiry) for h in htlcs]])
    assert htlcs_hash(htlcs) == keccak256(encoded)


@settings(max_examples=30, deadline=None)
@given(UINT256, st.binary(min_size=20, max_size=20), UINT64)
def test_channel_id_is_keccak_of_abi_encode(chain_id: int, adjudicator: bytes, nonce: int) -> None:
    encoded = abi_encode(["uint256", "address", "address", "address", "uint64"],
                         [chain_id, adjudicator, A, B, nonce])
    assert channel_id(chain_id, adjudicator, A, B, nonce) == keccak256(encoded)


def test_pinned_vectors() -> None:
    """Fixed values (computed with eth-abi and eth-account), so that a change to the encoding shows
    here even if both sides of the cross-checks above moved. The adjudicator's Solidity tests can
    check the same numbers: anvil's first dev keys as A and B, chain 31337, adjudicator 0x5fbd..0aa3."""
    assert CHANNEL.id.hex() == "e84a67a9c28b632fb2221da169506386fc0f39ca9b85b664b81166760dbf63a8"
    funding = CHANNEL.funding_state()
    assert state_digest(funding, CHANNEL.domain).hex() == (
        "9b2348383dbf12ec9814768dc6a4a490f1c0ff8ba3a97fe8d19be3fa9f455495")
    with_htlc = ChannelState(CHANNEL.id, 3, 10**18 - 1000, 5 * 10**17, (Htlc(True, 1000, preimage_hash(1), NOW),))
    digest = state_digest(with_htlc, CHANNEL.domain)
    assert digest.hex() == "5344ad483641c9b66ec21881e44e7b83bc925e76a8131a8ef3c738cb19b14826"
    assert htlcs_hash(()).hex() == "569e75fc77c1a856f6daaf9e69d8a9566ca34aa47f9133711ce065a571af0cfd"
    assert htlcs_hash(with_htlc.htlcs).hex() == "346c3347e111c8a1a68bb6be8cc2ac245f184ff7996b0263140281ea5665ec32"
    assert sign_state(digest, KEY_A).hex() == (
        "c874ccccf3b32c64bddf4fa795f1556347dd8b3312680cf262e0f322698eff62"
        "0d6dabd8ac123ed2c457a737bf68a8f968ace5c97bf8f3ac0885e20c28008e96" "1c")


def test_a_signature_is_a_wallet_s_and_recovers_to_its_signer() -> None:
    state = ChannelState(CHANNEL.id, 1, 10**18 - 5, 5 * 10**17 + 5)
    digest = state_digest(state, CHANNEL.domain)
    signature = sign_state(digest, KEY_B)
    wallet = EthAccount.sign_message(encode_typed_data(full_message=eip712(state, CHANNEL.domain)), KEY_B)
    assert signature == bytes(wallet.signature) and len(signature) == 65 and signature[64] in (27, 28)
    assert recover_signer(digest, signature) == B
    check_signature(CHANNEL, digest, signature, B)


@settings(max_examples=30, deadline=None)
@given(STATES, DOMAINS, st.integers(1, SECP256K1_N - 1))
def test_any_key_signs_as_a_wallet_does_and_is_recovered(state: ChannelState, domain: Domain, secret: int) -> None:
    key = secret.to_bytes(32, "big")
    signature = sign_state(state_digest(state, domain), key)
    wallet = EthAccount.sign_message(encode_typed_data(full_message=eip712(state, domain)), key)
    assert signature == bytes(wallet.signature)
    assert recover_signer(state_digest(state, domain), signature) == bytes.fromhex(wallet_address(key)[2:])


def wallet_address(key: bytes) -> str:
    return str(EthAccount.from_key(key).address)


def _refused(reason: Reason, call: Any, *args: Any, **kwargs: Any) -> ChannelRefused:
    with pytest.raises(ChannelRefused) as caught:
        call(*args, **kwargs)
    assert caught.value.reason is reason, caught.value
    return caught.value


def test_malformed_and_malleable_signatures_are_refused_by_name() -> None:
    digest = state_digest(CHANNEL.funding_state(), CHANNEL.domain)
    good = sign_state(digest, KEY_A)
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    # The malleable twin (r, n - s, the other v) recovers to the same key: refused all the same (C8).
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - v,))
    _refused(Reason.HIGH_S, recover_signer, digest, twin)
    _refused(Reason.INVALID_SIGNATURE, recover_signer, digest, good[:64] + bytes((v - 27,)))  # v 0/1
    _refused(Reason.INVALID_SIGNATURE, recover_signer, digest, good[:64])
    _refused(Reason.INVALID_SIGNATURE, recover_signer, digest, good + b"\x00")
    _refused(Reason.INVALID_SIGNATURE, recover_signer, digest, bytes(32) + good[32:])
    _refused(Reason.INVALID_SIGNATURE, recover_signer, digest, SECP256K1_N.to_bytes(32, "big") + good[32:])
    _refused(Reason.INVALID_SIGNATURE, recover_signer, digest, r + bytes(32) + good[64:])
    # An r that is no point's x coordinate: nothing recovers.
    _refused(Reason.INVALID_SIGNATURE, recover_signer, digest, (5).to_bytes(32, "big") + good[32:])


def test_a_foreign_or_replayed_signature_recovers_to_a_stranger() -> None:
    state = ChannelState(CHANNEL.id, 4, 10**18, 5 * 10**17)
    digest = state_digest(state, CHANNEL.domain)
    _refused(Reason.NOT_A_PARTICIPANT, check_signature, CHANNEL, digest, sign_state(digest, KEY_C), A)
    _refused(Reason.NOT_A_PARTICIPANT, check_signature, CHANNEL, digest, sign_state(digest, KEY_C), C)
    _refused(Reason.SIGNER_MISMATCH, check_signature, CHANNEL, digest, sign_state(digest, KEY_B), A)
    # A's own signature, over the same balances elsewhere: another channel (nonce), chain, adjudicator.
    others = [
        Channel(CHAIN, ADJUDICATOR, A, B, 8, CHANNEL.amount_a, CHANNEL.amount_b),
        Channel(CHAIN + 1, ADJUDICATOR, A, B, 7, CHANNEL.amount_a, CHANNEL.amount_b),
        Channel(CHAIN, bytes(19) + b"\x01", A, B, 7, CHANNEL.amount_a, CHANNEL.amount_b),
    ]
    for other in others:
        elsewhere = ChannelState(other.id, 4, 10**18, 5 * 10**17)
        replayed = sign_state(state_digest(elsewhere, other.domain), KEY_A)
        check_signature(other, state_digest(elsewhere, other.domain), replayed, A)
        _refused(Reason.NOT_A_PARTICIPANT, check_signature, CHANNEL, digest, replayed, A)
    # Same channel id, another domain (a state carried to another adjudicator's domain).
    on_other_chain = sign_state(state_digest(state, Domain(CHAIN + 1, ADJUDICATOR)), KEY_A)
    _refused(Reason.NOT_A_PARTICIPANT, check_signature, CHANNEL, digest, on_other_chain, A)


def state(sequence: int, balance_a: int, balance_b: int, *htlcs: Htlc) -> ChannelState:
    return ChannelState(CHANNEL.id, sequence, balance_a, balance_b, htlcs)


def htlc(n: int, amount: int = 1000, *, from_a: bool = True, expiry: int = NOW + DELTA) -> Htlc:
    return Htlc(from_a, amount, preimage_hash(n), expiry)


TOTAL = CHANNEL.total
FUNDED = CHANNEL.funding_state()


def update(prev: ChannelState, new: ChannelState) -> None:
    check_update(prev, new, CHANNEL, now=NOW, expiry_delta=DELTA)


def test_valid_updates_pass() -> None:
    check_state(FUNDED, CHANNEL)
    paid = state(1, CHANNEL.amount_a - 7, CHANNEL.amount_b + 7)
    update(FUNDED, paid)
    offered = state(2, paid.balance_a - 1000, paid.balance_b, htlc(1))
    update(paid, offered)
    both_ways = state(5, offered.balance_a - 1000, offered.balance_b - 1000, htlc(1), htlc(1, from_a=False),
                      htlc(2))
    update(offered, both_ways)  # the same hash in both directions: two payments (C6 is per direction)
    everything_to_b = state(6, 0, TOTAL)
    update(both_ways, everything_to_b)  # balances may be zero
    # An HTLC carried over is not re-checked against the clock (C7 is for added ones).
    late = check_update(offered, state(3, offered.balance_a, offered.balance_b, htlc(1)), CHANNEL,
                        now=NOW + DELTA + 1, expiry_delta=DELTA)
    assert late is None


def test_c1_another_channel_s_state() -> None:
    other = ChannelState(keccak256(b"other"), 1, CHANNEL.amount_a, CHANNEL.amount_b)
    _refused(Reason.CHANNEL_MISMATCH, update, FUNDED, other)


@pytest.mark.parametrize("sequence", [0, 4, 5])
def test_c2_the_sequence_strictly_increases(sequence: int) -> None:
    prev = state(5, CHANNEL.amount_a, CHANNEL.amount_b)
    _refused(Reason.STALE_SEQUENCE, update, prev, state(sequence, CHANNEL.amount_a - 1, CHANNEL.amount_b + 1))


@pytest.mark.parametrize(
    ("balance_a", "balance_b", "held"),
    [(10**18, 5 * 10**17, 1), (10**18, 5 * 10**17 - 1, 0), (10**18 - 1000, 5 * 10**17, 999),
     (2**256 - 1, 2**256 - 1, 0)],
)
def test_c3_nothing_is_created_or_lost(balance_a: int, balance_b: int, held: int) -> None:
    htlcs = (htlc(1, held),) if held else ()
    _refused(Reason.FUNDS_NOT_CONSERVED, update, FUNDED, state(1, balance_a, balance_b, *htlcs))


def test_c4_an_htlc_of_zero() -> None:
    _refused(Reason.HTLC_AMOUNT_ZERO, update, FUNDED, state(1, CHANNEL.amount_a, CHANNEL.amount_b, htlc(1, 0)))


def test_c5_at_most_483_htlcs() -> None:
    full = state(1, CHANNEL.amount_a - MAX_HTLCS, CHANNEL.amount_b, *(htlc(n, 1) for n in range(MAX_HTLCS)))
    update(FUNDED, full)
    over = state(2, full.balance_a - 1, full.balance_b, *full.htlcs, htlc(MAX_HTLCS, 1))
    _refused(Reason.TOO_MANY_HTLCS, update, full, over)


def test_c6_one_htlc_per_payment_hash_and_direction() -> None:
    twice = state(1, CHANNEL.amount_a - 3000, CHANNEL.amount_b, htlc(1), htlc(1, 2000))
    _refused(Reason.DUPLICATE_HTLC, update, FUNDED, twice)


@pytest.mark.parametrize(("expiry", "passes"), [(NOW + DELTA, True), (NOW + DELTA - 1, False), (NOW, False)])
def test_c7_an_added_htlc_leaves_the_safety_delta(expiry: int, passes: bool) -> None:
    new = state(1, CHANNEL.amount_a - 1000, CHANNEL.amount_b, htlc(1, expiry=expiry))
    if passes:
        update(FUNDED, new)
    else:
        _refused(Reason.HTLC_EXPIRY_TOO_SOON, update, FUNDED, new)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Htlc(True, -1, preimage_hash(1), NOW),
        lambda: Htlc(True, 2**256, preimage_hash(1), NOW),
        lambda: Htlc(True, 1, preimage_hash(1)[:31], NOW),
        lambda: Htlc(True, 1, preimage_hash(1), 2**64),
        lambda: Htlc(1, 1, preimage_hash(1), NOW),  # type: ignore[arg-type]
        lambda: Htlc(True, True, preimage_hash(1), NOW),
        lambda: ChannelState(CHANNEL.id, -1, 0, 0),
        lambda: ChannelState(CHANNEL.id, 2**64, 0, 0),
        lambda: ChannelState(CHANNEL.id[:31], 0, 0, 0),
        lambda: ChannelState(CHANNEL.id, 0, 2**256, 0),
        lambda: ChannelState(CHANNEL.id, 0, 0, 0, [htlc(1)]),  # type: ignore[arg-type]
        lambda: Channel(CHAIN, ADJUDICATOR, A, A, 0, 1, 1),
        lambda: Channel(CHAIN, ADJUDICATOR[:19], A, B, 0, 1, 1),
        lambda: Channel(CHAIN, ADJUDICATOR, A, B, 2**64, 1, 1),
        lambda: Channel(CHAIN, ADJUDICATOR, A, B, 0, 2**255, 2**255),
    ],
)
def test_c0_a_field_out_of_range_is_refused_when_built(build: Any) -> None:
    _refused(Reason.FIELD_OUT_OF_RANGE, build)


def test_a_refusal_pickles_and_maps_to_a_grpc_status() -> None:
    refusal = _refused(Reason.STALE_SEQUENCE, update, FUNDED, FUNDED)
    again = pickle.loads(pickle.dumps(refusal))
    assert (again.reason, again.message) == (refusal.reason, refusal.message)
    assert isinstance(refusal, ValueError) and str(refusal).startswith("STALE_SEQUENCE: ")


@pytest.mark.parametrize("key", [bytes(32), SECP256K1_N.to_bytes(32, "big"), KEY_A[:31], KEY_A + b"\x00"])
def test_an_invalid_key_signs_nothing(key: bytes) -> None:
    with pytest.raises(ValueError, match="private key"):
        sign_state(keccak256(b"state"), key)


def test_each_kind_of_update_builds_a_next_state_that_check_update_accepts() -> None:
    preimage = (1).to_bytes(32, "big")
    assert payment_hash(preimage) == preimage_hash(1)
    paid = FUNDED.transfer(True, 7)
    assert (paid.sequence, paid.balance_a, paid.balance_b) == (1, CHANNEL.amount_a - 7, CHANNEL.amount_b + 7)
    back = paid.transfer(False, 10)
    assert (back.balance_a, back.balance_b) == (paid.balance_a + 10, paid.balance_b - 10)
    offered = back.add_htlc(htlc(1, 500)).add_htlc(htlc(1, 300, from_a=False))
    assert (offered.sequence, offered.balance_a, offered.balance_b) == (4, back.balance_a - 500, back.balance_b - 300)
    settled = offered.settle_htlc(True, preimage)  # A's HTLC: its 500 to B
    assert settled.htlcs == (htlc(1, 300, from_a=False),) and settled.balance_b == offered.balance_b + 500
    failed = settled.fail_htlc(False, preimage_hash(1))  # B's HTLC: its 300 back to B
    assert failed.htlcs == () and (failed.balance_a, failed.balance_b) == (settled.balance_a, settled.balance_b + 300)
    chain = [FUNDED, paid, back, back.add_htlc(htlc(1, 500)), offered, settled, failed]
    for prev, new in itertools.pairwise(chain):
        update(prev, new)


def test_an_update_beyond_the_state_is_refused_by_name() -> None:
    _refused(Reason.INSUFFICIENT_FUNDS, FUNDED.transfer, True, CHANNEL.amount_a + 1)
    _refused(Reason.INSUFFICIENT_FUNDS, FUNDED.add_htlc, htlc(1, CHANNEL.amount_b + 1, from_a=False))
    _refused(Reason.FIELD_OUT_OF_RANGE, FUNDED.transfer, True, 0)
    offered = FUNDED.add_htlc(htlc(1))
    _refused(Reason.UNKNOWN_HTLC, offered.settle_htlc, True, (2).to_bytes(32, "big"))  # the wrong preimage
    _refused(Reason.UNKNOWN_HTLC, offered.settle_htlc, False, (1).to_bytes(32, "big"))  # the other direction
    _refused(Reason.UNKNOWN_HTLC, offered.fail_htlc, True, preimage_hash(2))
    _refused(Reason.FIELD_OUT_OF_RANGE, payment_hash, bytes(31))
