"""Decoding and stateless validation of EIP-1559 transactions, against eth-account signatures."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from eth_account import Account as EthAccount
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import DEV_PRIVATE_KEYS, Reason, encode_withdrawal_call
from protocol._native import decode_common
from protocol._rules import BLOCK_GAS_LIMIT, MAX_TX_SIZE, MESSAGE_PASSER, SECP256K1_HALF_N, SECP256K1_N, UINT64_MAX
from protocol._tx import (
    Transaction,
    TxRejected,
    _decode_checked,
    decode_transaction,
    decode_transactions,
    recipient,
)
from services.l1 import UnsignedTransaction, rlp_bytes, rlp_int, rlp_list, sign_transaction

CHAIN = 901
KEY = DEV_PRIVATE_KEYS[0]
SENDER = EthAccount.from_key(KEY).address
TO = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
GWEI = 10**9


def eth_sign(key: bytes = KEY, **overrides: Any) -> bytes:
    """A raw transaction as eth-account signs it (the reference wallet library).

    An override of None removes the key (eth-account wants no EIP-1559 fees on older types).
    """
    tx = {k: v for k, v in {**_eth_defaults(), **overrides}.items() if v is not None}
    if tx.get("type") == 0:
        del tx["type"], tx["accessList"]
    if "to" in tx:
        tx["to"] = to_checksum_address(tx["to"])
    return bytes(EthAccount.sign_transaction(tx, key).raw_transaction)


def _eth_defaults() -> dict[str, Any]:
    return {
        "type": 2,
        "chainId": CHAIN,
        "nonce": 0,
        "maxPriorityFeePerGas": GWEI,
        "maxFeePerGas": 2 * GWEI,
        "gas": 21_000,
        "to": "0x" + TO.hex(),
        "value": 10**18,
        "data": b"",
        "accessList": [],
    }


def fields(**overrides: Any) -> UnsignedTransaction:
    base: dict[str, Any] = {
        "chain_id": CHAIN,
        "nonce": 0,
        "max_priority_fee_per_gas": GWEI,
        "max_fee_per_gas": 2 * GWEI,
        "gas_limit": 21_000,
        "to": TO,
        "value": 10**18,
    }
    base.update(overrides)
    return UnsignedTransaction(**base)


def rejected(raw: bytes, *, chain_id: int = CHAIN, max_size: int = MAX_TX_SIZE) -> TxRejected:
    with pytest.raises(TxRejected) as info:
        decode_transaction(raw, chain_id, max_size=max_size)
    return info.value


def signed_payload(items: list[bytes]) -> bytes:
    """0x02 || rlp(items): any list of already-encoded items, for malformed shapes."""
    return b"\x02" + rlp_list(items)


def valid_items(**overrides: Any) -> list[bytes]:
    """The 12 encoded items of a validly signed transaction (signature included)."""
    raw = sign_transaction(fields(**overrides), KEY)
    tx = decode_transaction(raw, CHAIN)
    access = rlp_list(rlp_list((rlp_bytes(a), rlp_list(map(rlp_bytes, k)))) for a, k in tx.access_list)
    return [
        rlp_int(tx.chain_id),
        rlp_int(tx.nonce),
        rlp_int(tx.max_priority_fee_per_gas),
        rlp_int(tx.max_fee_per_gas),
        rlp_int(tx.gas_limit),
        rlp_bytes(tx.to or b""),
        rlp_int(tx.value),
        rlp_bytes(tx.data),
        access,
        rlp_int(tx.y_parity),
        rlp_int(tx.r),
        rlp_int(tx.s),
    ]


# --- round trips ---------------------------------------------------------------------------

ROUND_TRIPS: list[dict[str, Any]] = [
    {},
    {"nonce": 1, "value": 0},
    {"nonce": 2**64 - 2, "value": 2**256 - 1, "maxFeePerGas": 2**256 - 1, "maxPriorityFeePerGas": 2**255},
    {"data": b"\x00\x01" * 40, "gas": 100_000},  # > 55 bytes of data: long-form string
    {"data": bytes(range(256)) * 20, "gas": 200_000},  # > 255 bytes of payload: 3-byte list header
    {
        "accessList": [
            {"address": "0x" + "ab" * 20, "storageKeys": ["0x" + "00" * 32, "0x" + "01" * 32]},
            {"address": "0x" + "cd" * 20, "storageKeys": []},
        ],
        "gas": 21_000 + 2 * 2400 + 2 * 1900,
    },
    {"maxPriorityFeePerGas": 0, "maxFeePerGas": 0},
    {"to": "0x" + MESSAGE_PASSER.hex(), "data": encode_withdrawal_call(TO, 200_000, b"hi"), "gas": 30_000},
    {"to": "0x" + MESSAGE_PASSER.hex(), "data": b""},
]


@pytest.mark.parametrize("overrides", ROUND_TRIPS)
def test_round_trip_eth_account(overrides: dict[str, Any]) -> None:
    raw = eth_sign(**overrides)
    signed_fields = {**_eth_defaults(), **overrides}
    signed_fields["to"] = to_checksum_address(signed_fields["to"])
    signed = EthAccount.sign_transaction(signed_fields, KEY)
    tx = decode_transaction(raw, CHAIN)
    assert isinstance(tx, Transaction)
    assert "0x" + tx.sender.hex() == SENDER.lower()
    assert tx.hash == bytes(signed.hash)
    assert tx.raw == raw and tx.size == len(raw)
    assert (tx.r, tx.s, tx.y_parity) == (signed.r, signed.s, signed.v)
    expected = {**_eth_defaults(), **overrides}
    assert tx.nonce == expected["nonce"]
    assert tx.value == expected["value"]
    assert tx.max_fee_per_gas == expected["maxFeePerGas"]
    assert tx.max_priority_fee_per_gas == expected["maxPriorityFeePerGas"]
    assert tx.gas_limit == expected["gas"]
    assert tx.data == expected["data"]
    assert "0x" + (tx.to or b"").hex() == expected["to"].lower()
    assert len(tx.access_list) == len(expected["accessList"])
    # our encoder produces the very same bytes
    unsigned = UnsignedTransaction(
        CHAIN,
        tx.nonce,
        tx.max_priority_fee_per_gas,
        tx.max_fee_per_gas,
        tx.gas_limit,
        tx.to,
        tx.value,
        tx.data,
        tx.access_list,
    )
    assert sign_transaction(unsigned, KEY) == raw
    # the Python decoder agrees with whichever path answered
    assert _decode_checked([raw], CHAIN, MAX_TX_SIZE) == [tx]


@given(
    nonce=st.integers(0, 2**64 - 2),
    tip=st.integers(0, 2**256 - 1),
    extra=st.integers(0, 2**64),
    value=st.integers(0, 2**256 - 1),
    data=st.binary(max_size=300),
    key=st.integers(1, SECP256K1_N - 1),
)
@settings(max_examples=40, deadline=None)
def test_sign_transaction_is_byte_identical_to_eth_account(
    nonce: int, tip: int, extra: int, value: int, data: bytes, key: int
) -> None:
    private_key = key.to_bytes(32, "big")
    fee_cap = min(tip + extra, 2**256 - 1)
    gas = 21_000 + 16 * len(data)
    ours = sign_transaction(
        fields(
            nonce=nonce, max_priority_fee_per_gas=tip, max_fee_per_gas=fee_cap, gas_limit=gas, value=value, data=data
        ),
        private_key,
    )
    theirs = eth_sign(
        private_key, nonce=nonce, maxPriorityFeePerGas=tip, maxFeePerGas=fee_cap, gas=gas, value=value, data=data
    )
    assert ours == theirs
    tx = decode_transaction(ours, CHAIN)
    assert "0x" + tx.sender.hex() == EthAccount.from_key(private_key).address.lower()


def test_batch_on_a_thread_pool_is_the_same() -> None:
    raws = [eth_sign(nonce=i % 7, value=i) for i in range(600)]
    raws[5] = b"\x02garbage"
    raws[400] = eth_sign(chainId=1)
    with ThreadPoolExecutor(2) as pool:
        parallel = decode_transactions(iter(raws), CHAIN, executor=pool)
    serial = decode_transactions(raws, CHAIN)
    assert len(parallel) == len(serial) == 600
    for a, b in zip(parallel, serial, strict=True):
        assert a == b if isinstance(a, Transaction) else (a.reason, a.message) == (b.reason, b.message)  # type: ignore[union-attr]


def test_batch_keeps_order_and_isolates_failures() -> None:
    good = [eth_sign(nonce=i) for i in range(3)]
    batch = [good[0], b"", good[1], b"\x02\xc0", eth_sign(chainId=1), good[2]]
    out = decode_transactions(batch, CHAIN)
    assert [type(x) for x in out] == [Transaction, TxRejected, Transaction, TxRejected, TxRejected, Transaction]
    assert [x.nonce for x in out if isinstance(x, Transaction)] == [0, 1, 2]
    reasons = [x.reason for x in out if isinstance(x, TxRejected)]
    assert reasons == [Reason.MALFORMED_RLP, Reason.MALFORMED_RLP, Reason.WRONG_CHAIN_ID]


# --- rejections ----------------------------------------------------------------------------


def test_oversized() -> None:
    raw = eth_sign(data=b"\x01" * 2000, gas=100_000)
    assert decode_transaction(raw, CHAIN, max_size=len(raw)).size == len(raw)
    err = rejected(raw, max_size=len(raw) - 1)
    assert err.reason == Reason.OVERSIZED and err.field is None
    assert rejected(b"\x02" + bytes(MAX_TX_SIZE)).reason == Reason.OVERSIZED


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"", None),
        (b"\x02", None),
        (b"\x02\xc0", "chain_id"),  # an empty list: every field missing
        (b"\x02\x80", None),  # a string, not a list
        (b"\x02\xf8", None),  # truncated length
        (b"\x02\xf8\x05\x01\x02\x03\x04\x05", None),  # long form for a short list
        (b"\x02\xf9\x00\x40" + b"\x01" * 64, None),  # length with a leading zero
    ],
)
def test_malformed_rlp_shapes(raw: bytes, field: str | None) -> None:
    err = rejected(raw)
    assert err.reason == Reason.MALFORMED_RLP
    assert err.field == field
    assert err.reason.status is grpc.StatusCode.INVALID_ARGUMENT


def test_malformed_rlp_fields() -> None:
    items = valid_items()
    raw = signed_payload(items)
    assert decode_transaction(raw, CHAIN)  # the baseline is valid

    def with_item(index: int, item: bytes) -> TxRejected:
        changed = list(items)
        changed[index] = item
        return rejected(signed_payload(changed))

    assert with_item(1, b"\x82\x00\x05").field == "nonce"  # leading zero byte
    assert with_item(1, b"\x00").field == "nonce"  # zero as 0x00 instead of 0x80
    assert with_item(1, b"\x81\x05").field == "nonce"  # a small byte wrapped in a string
    assert with_item(1, b"\xc0").field == "nonce"  # a list where an integer goes
    assert with_item(7, b"\xb8\x01\xff").field == "data"  # long form for one byte
    assert with_item(5, b"\xc0").field == "to"
    assert with_item(8, b"\x80").field == "access_list"
    assert with_item(8, rlp_list([rlp_list([rlp_bytes(TO)])])).field == "access_list"  # [address] only
    assert with_item(8, rlp_list([rlp_list([rlp_bytes(TO), rlp_list([rlp_bytes(b"\x01" * 31)])])])).reason == (
        Reason.MALFORMED_RLP
    )
    for err in (with_item(1, b"\x82\x00\x05"), with_item(8, b"\x80")):
        assert err.reason == Reason.MALFORMED_RLP
    # wrong number of fields, and trailing bytes
    assert rejected(signed_payload(items[:11])).reason == Reason.MALFORMED_RLP
    assert rejected(signed_payload([*items, rlp_int(1)])).reason == Reason.MALFORMED_RLP
    err = rejected(raw + b"\x00")
    assert err.reason == Reason.MALFORMED_RLP and "trailing" in err.message
    err = rejected(raw[:-1])
    assert err.reason == Reason.MALFORMED_RLP


@pytest.mark.parametrize(
    ("raw_factory", "what"),
    [
        (lambda: eth_sign(type=1, gasPrice=GWEI, maxFeePerGas=None, maxPriorityFeePerGas=None), "2930"),
        (lambda: eth_sign(type=0, gasPrice=GWEI, maxFeePerGas=None, maxPriorityFeePerGas=None), "legacy"),
        (lambda: b"\x03" + eth_sign()[1:], "4844"),
        (lambda: b"\x04" + eth_sign()[1:], "7702"),
        (lambda: b"\x7f" + eth_sign()[1:], "unknown"),
        (lambda: b"\x80" + eth_sign()[1:], "invalid"),
    ],
)
def test_other_transaction_types(raw_factory: Any, what: str) -> None:
    raw = raw_factory()
    err = rejected(raw)
    assert err.reason == Reason.TX_TYPE_NOT_SUPPORTED
    assert what in err.message and "EIP-1559" in err.message
    assert err.field == "type"


def test_wrong_chain_id() -> None:
    err = rejected(eth_sign(chainId=1))
    assert (err.reason, err.field) == (Reason.WRONG_CHAIN_ID, "chain_id")
    assert decode_transaction(eth_sign(chainId=1), 1).chain_id == 1


def test_field_out_of_range() -> None:
    too_big = fields(value=2**256).encode_signed(0, 1, 1)
    assert (rejected(too_big).reason, rejected(too_big).field) == (Reason.FIELD_OUT_OF_RANGE, "value")
    long_value = fields(value=2**600).encode_signed(0, 1, 1)  # long-form string
    assert rejected(long_value).reason == Reason.FIELD_OUT_OF_RANGE
    nonce = rejected(sign_transaction(fields(nonce=UINT64_MAX), KEY))
    assert (nonce.reason, nonce.field) == (Reason.FIELD_OUT_OF_RANGE, "nonce")
    assert decode_transaction(sign_transaction(fields(nonce=UINT64_MAX - 1), KEY), CHAIN).nonce == UINT64_MAX - 1


def test_addresses() -> None:
    err = rejected(sign_transaction(fields(to=b"\x11" * 19), KEY))
    assert (err.reason, err.field) == (Reason.INVALID_ADDRESS, "to")
    err = rejected(sign_transaction(fields(to=b"\x11" * 21), KEY))
    assert (err.reason, err.field) == (Reason.INVALID_ADDRESS, "to")
    bad_access = fields(access_list=((b"\x11" * 19, ()),), gas_limit=30_000)
    err = rejected(sign_transaction(bad_access, KEY))
    assert (err.reason, err.field) == (Reason.INVALID_ADDRESS, "access_list")


def test_contract_creation() -> None:
    raw = eth_sign(to=None, data=b"\x60\x00", gas=60_000)
    err = rejected(raw)
    assert (err.reason, err.field) == (Reason.CONTRACT_CREATION_NOT_SUPPORTED, "to")


def test_tip_above_fee_cap() -> None:
    err = rejected(eth_sign(maxPriorityFeePerGas=3 * GWEI, maxFeePerGas=2 * GWEI))
    assert (err.reason, err.field) == (Reason.TIP_ABOVE_FEE_CAP, "max_priority_fee_per_gas")
    assert decode_transaction(eth_sign(maxPriorityFeePerGas=2 * GWEI, maxFeePerGas=2 * GWEI), CHAIN)


def test_gas_limit_bounds() -> None:
    err = rejected(eth_sign(gas=20_999))
    assert (err.reason, err.field) == (Reason.INTRINSIC_GAS_TOO_LOW, "gas_limit")
    data = b"\x00\x01\x02"  # 4 + 16 + 16
    assert decode_transaction(eth_sign(data=data, gas=21_036), CHAIN)
    assert rejected(eth_sign(data=data, gas=21_035)).reason == Reason.INTRINSIC_GAS_TOO_LOW
    access = [{"address": "0x" + "ab" * 20, "storageKeys": ["0x" + "00" * 32]}]
    assert decode_transaction(eth_sign(accessList=access, gas=21_000 + 2400 + 1900), CHAIN)
    assert rejected(eth_sign(accessList=access, gas=21_000 + 2400 + 1899)).reason == Reason.INTRINSIC_GAS_TOO_LOW
    err = rejected(eth_sign(gas=BLOCK_GAS_LIMIT + 1))
    assert (err.reason, err.field) == (Reason.GAS_LIMIT_TOO_HIGH, "gas_limit")
    assert decode_transaction(eth_sign(gas=BLOCK_GAS_LIMIT), CHAIN)


def test_malformed_withdrawal() -> None:
    to_passer = "0x" + MESSAGE_PASSER.hex()
    good = encode_withdrawal_call(TO, 100_000, b"payload")
    assert decode_transaction(eth_sign(to=to_passer, data=good, gas=40_000), CHAIN)
    bad = [
        b"\x00" * 4 + good[4:],  # another selector
        good[:-1],  # short
        good + bytes(32),  # trailing word
        good[:4] + b"\x01" + good[5:],  # dirty address word
        good[:68] + (0x40).to_bytes(32, "big") + good[100:],  # another offset (0x60 expected)
        good[:100] + (40).to_bytes(32, "big") + good[132:],  # a length that disagrees with the size
        good[:-1] + b"\x01",  # dirty padding
        b"\x01",
    ]
    for data in bad:
        err = rejected(eth_sign(to=to_passer, data=data, gas=40_000))
        assert (err.reason, err.field) == (Reason.MALFORMED_WITHDRAWAL, "data"), data.hex()


def test_signature_values() -> None:
    tx = decode_transaction(eth_sign(), CHAIN)
    unsigned = fields()

    def reason(y: int, r: int, s: int) -> tuple[str, str | None]:
        err = rejected(unsigned.encode_signed(y, r, s))
        return err.reason, err.field

    assert reason(2, tx.r, tx.s) == (Reason.INVALID_SIGNATURE, "y_parity")
    assert reason(tx.y_parity, 0, tx.s) == (Reason.INVALID_SIGNATURE, "r")
    assert reason(tx.y_parity, SECP256K1_N, tx.s) == (Reason.INVALID_SIGNATURE, "r")
    assert reason(tx.y_parity, tx.r, 0) == (Reason.INVALID_SIGNATURE, "s")
    assert reason(tx.y_parity, tx.r, SECP256K1_N) == (Reason.INVALID_SIGNATURE, "s")
    # r = 5 is not the x of any curve point (5**3 + 7 is not a square mod p): nothing recovers
    assert reason(0, 5, 1) == (Reason.INVALID_SIGNATURE, None)
    # the high-s twin of a valid signature is a valid ECDSA signature, refused by EIP-2
    assert reason(1 - tx.y_parity, tx.r, SECP256K1_N - tx.s) == (Reason.HIGH_S, "s")
    assert tx.s <= SECP256K1_HALF_N
    # flipping y_parity recovers another key: another sender, not the signer
    other = decode_transaction(unsigned.encode_signed(1 - tx.y_parity, tx.r, tx.s), CHAIN)
    assert other.sender != tx.sender


def test_rejection_is_a_value() -> None:
    err = rejected(eth_sign(chainId=5))
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.reason, clone.message, clone.field) == (err.reason, err.message, err.field)
    assert str(err).startswith("WRONG_CHAIN_ID: ")


# --- property tests ------------------------------------------------------------------------

VALID = [
    eth_sign(),
    eth_sign(data=b"\x00\x01" * 40, gas=100_000),
    eth_sign(accessList=[{"address": "0x" + "ab" * 20, "storageKeys": ["0x" + "01" * 32]}], gas=30_000),
    eth_sign(to="0x" + MESSAGE_PASSER.hex(), data=encode_withdrawal_call(TO, 1, b"x" * 40), gas=30_000),
]
ORIGINAL = {raw: decode_transaction(raw, CHAIN) for raw in VALID}


def _decode_in_python(raw: bytes) -> Transaction | TxRejected:
    (answer,) = _decode_checked([raw], CHAIN, MAX_TX_SIZE)
    if isinstance(answer, TxRejected):
        assert answer.reason in set(Reason)
    return answer


def _decode_never_crashes(raw: bytes) -> Transaction | TxRejected:
    """The decoder's answer; the C common path's is None or the same transaction."""
    answer = _decode_in_python(raw)
    (common,) = decode_common([raw], CHAIN, MAX_TX_SIZE, Transaction)
    assert common is None or (isinstance(answer, Transaction) and common == answer)
    return answer


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_random_bytes_only_ever_reject(raw: bytes) -> None:
    _decode_never_crashes(raw)
    _decode_never_crashes(b"\x02" + raw)


@given(st.sampled_from(VALID), st.data())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutations_reject_or_change_the_sender(raw: bytes, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(raw) - 1))
    kind = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    if kind == "replace":
        byte = data.draw(st.integers(0, 255).filter(lambda b: b != raw[position]))
        mutated = raw[:position] + bytes((byte,)) + raw[position + 1 :]
    elif kind == "insert":
        mutated = raw[:position] + bytes((data.draw(st.integers(0, 255)),)) + raw[position:]
    else:
        mutated = raw[:position] + raw[position + 1 :]
    result = _decode_never_crashes(mutated)
    if isinstance(result, Transaction):
        # canonical RLP: a different encoding is a different transaction, and a signature
        # over other fields recovers another (unknown) key
        assert result.sender != ORIGINAL[raw].sender
        assert result.hash != ORIGINAL[raw].hash


@given(st.lists(st.sampled_from([*VALID, b"", b"\x02\xc0", b"\x01\x02"]), max_size=20))
@settings(max_examples=50, deadline=None)
def test_batch_matches_single(raws: list[bytes]) -> None:
    batch = decode_transactions(raws, CHAIN)
    assert len(batch) == len(raws)
    for raw, item in zip(raws, batch, strict=True):
        single = _decode_never_crashes(raw)
        if isinstance(single, TxRejected):
            assert isinstance(item, TxRejected) and item.reason == single.reason
        else:
            assert item == single


def test_recipient_reads_to_without_recovery() -> None:
    assert recipient(eth_sign()) == TO
    creation = UnsignedTransaction(CHAIN, 0, GWEI, 2 * GWEI, 60_000, None).encode_signed(0, 1, 1)
    assert recipient(creation) is None
    assert recipient(b"") is None and recipient(b"\x02\xc0") is None and recipient(b"\xf8\x00") is None
