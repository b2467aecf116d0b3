"""The C common decode path (_native.decode_common) against the Python decoder, rule by rule.

decode_common may only *accept*: for every input it returns either None (the Python decoder
then decides) or exactly the Transaction the Python decoder builds. Each boundary below is tested
on both sides of the line, and the accepting side asserts that C really answered, so a common
path that accepted nothing could not pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account as EthAccount
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import DEV_PRIVATE_KEYS
from protocol._native import decode_common
from protocol._rules import BLOCK_GAS_LIMIT, MAX_NONCE, MAX_TX_SIZE, MESSAGE_PASSER, SECP256K1_HALF_N, SECP256K1_N
from protocol._tx import Transaction, _decode_checked, decode_transactions
from services.l1 import UnsignedTransaction, sign_transaction

CHAIN = 901
KEY = DEV_PRIVATE_KEYS[0]
SENDER = bytes.fromhex(EthAccount.from_key(KEY).address[2:])
TO = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
GWEI = 10**9


def fields(**overrides: Any) -> UnsignedTransaction:
    values: dict[str, Any] = {"chain_id": CHAIN, "nonce": 7, "max_priority_fee_per_gas": GWEI,
                              "max_fee_per_gas": 2 * GWEI, "gas_limit": 21_000, "to": TO, "value": 10**18}
    return UnsignedTransaction(**{**values, **overrides})


def signed(**overrides: Any) -> bytes:
    return sign_transaction(fields(**overrides), KEY)


def with_signature(y: int, r: int, s: int, **overrides: Any) -> bytes:
    return fields(**overrides).encode_signed(y, r, s)


def common(raw: Any, chain_id: int = CHAIN, max_size: int = MAX_TX_SIZE) -> Transaction | None:
    (item,) = decode_common([raw], chain_id, max_size, Transaction)
    return item  # type: ignore[no-any-return]


def agrees(raw: bytes, chain_id: int = CHAIN, max_size: int = MAX_TX_SIZE) -> Transaction | None:
    """decode_common's answer, after checking it is None or exactly the Python decoder's."""
    fast = common(raw, chain_id, max_size)
    if fast is not None:
        (checked,) = _decode_checked([raw], chain_id, max_size)
        assert type(fast) is Transaction and fast == checked
        assert [type(v) for v in fast] == [type(v) for v in checked]
    return fast


@pytest.mark.parametrize(
    ("taken", "left"),
    [
        ({"nonce": 0}, None),
        ({"nonce": MAX_NONCE}, {"nonce": MAX_NONCE + 1}),  # EIP-2681
        ({"max_priority_fee_per_gas": 2 * GWEI}, {"max_priority_fee_per_gas": 2 * GWEI + 1}),  # tip <= fee cap
        ({"max_priority_fee_per_gas": 0}, None),
        ({"gas_limit": BLOCK_GAS_LIMIT}, {"gas_limit": BLOCK_GAS_LIMIT + 1}),
        ({"data": b"\x00\x01" * 5, "gas_limit": 21_000 + 5 * 4 + 5 * 16},
         {"data": b"\x00\x01" * 5, "gas_limit": 21_000 + 5 * 4 + 5 * 16 - 1}),  # intrinsic gas
        # a one-byte string is the byte itself
        ({"data": b"\x7f", "gas_limit": 21_016}, {"data": b"\x7f", "gas_limit": 21_015}),
        ({"value": 2**256 - 1, "max_fee_per_gas": 2**255}, None),  # 32-byte integers
        ({"value": 0}, {"to": MESSAGE_PASSER}),  # withdrawals are Python's
        ({"data": b"\x01" * 40, "gas_limit": 30_000}, {"to": b""}),  # contract creation
        (None, {"access_list": ((TO, ()),), "gas_limit": 30_000}),  # access lists are Python's
        (None, {"chain_id": CHAIN + 1}),
    ],
)
def test_rule_boundaries(taken: dict[str, Any] | None, left: dict[str, Any] | None) -> None:
    """``taken``: the common path answers (the same as Python); ``left``: it leaves the item to Python."""
    if taken is not None:
        assert agrees(signed(**taken)) is not None
    if left is not None:
        assert common(signed(**left)) is None


def test_long_framing_and_size_limit() -> None:
    wide = {"nonce": MAX_NONCE, "value": 2**256 - 1, "max_priority_fee_per_gas": 2**255, "max_fee_per_gas": 2**255}
    raw = signed(data=b"\x01" * 55, gas_limit=100_000, **wide)  # short items only, 256+ bytes: a 0xf9 list
    assert raw[1] == 0xF9 and agrees(raw) is not None
    assert agrees(raw, max_size=len(raw)) is not None
    assert common(raw, max_size=len(raw) - 1) is None
    assert common(signed(data=b"\x01" * 56, gas_limit=100_000)) is None  # a long string: Python's


def test_signature_boundaries() -> None:
    assert agrees(with_signature(1, 5, 5)) is None  # r = 5 is no point's x: recovery fails, Python refuses
    for y, r, s in [(0, SECP256K1_N - 1, 1), (1, 1, SECP256K1_HALF_N), (0, 2**200, 2**100)]:
        agrees(with_signature(y, r, s))  # whatever recovers agrees; what does not is None
    for y, r, s in [(2, 1, 1), (0, 0, 1), (0, 1, 0), (0, SECP256K1_N, 1), (0, 1, SECP256K1_HALF_N + 1)]:
        assert common(with_signature(y, r, s)) is None


def test_low_s_signatures_of_both_parities() -> None:
    parities = set()
    for nonce in range(16):
        tx = agrees(signed(nonce=nonce))
        assert tx is not None and tx.sender == SENDER
        parities.add(tx.y_parity)
    assert parities == {0, 1}


def test_what_it_leaves_to_python() -> None:
    raw = signed()
    assert common(bytearray(raw)) is None  # not bytes
    assert common(raw, chain_id=-1) is None and common(raw, chain_id=2**300) is None
    assert common(raw + b"\x00") is None and common(raw[:-1]) is None
    assert decode_common([], CHAIN, MAX_TX_SIZE, Transaction) == []
    with pytest.raises(TypeError):
        decode_common((raw,), CHAIN, MAX_TX_SIZE, Transaction)  # a list, not a tuple
    with pytest.raises(TypeError):
        decode_common([raw], CHAIN, MAX_TX_SIZE, dict)


def test_a_batch_mixes_both_paths_in_order() -> None:
    raws = [signed(nonce=n) for n in range(5)]
    bad_withdrawal = signed(to=MESSAGE_PASSER, data=b"\x01", gas_limit=30_000)
    mixed = [raws[0], b"", raws[1], bad_withdrawal, raws[2], signed(chain_id=5)]
    out = decode_transactions(mixed, CHAIN)
    assert [type(o).__name__ for o in out] == ["Transaction", "TxRejected", "Transaction", "TxRejected",
                                             "Transaction", "TxRejected"]
    assert [o.nonce for o in out if isinstance(o, Transaction)] == [0, 1, 2]


@given(st.integers(0, MAX_NONCE + 10), st.integers(0, 2**256 - 1), st.integers(0, 2**64), st.integers(0, 2**64),
       st.integers(0, BLOCK_GAS_LIMIT + 10), st.binary(max_size=60))
@settings(max_examples=200, deadline=None)
def test_random_fields_agree(nonce: int, value: int, tip: int, fee_cap: int, gas: int, data: bytes) -> None:
    agrees(signed(nonce=nonce, value=value, max_priority_fee_per_gas=tip, max_fee_per_gas=fee_cap, gas_limit=gas,
                  data=data))
