"""The C extension (protocol/_native.c) against independent references.

keccak-256 against safe-pysha3; senders against eth-account (its own pure recovery path) for
keys, payload sizes and signature shapes the decoder meets; Merkle nodes and account leaves
against the packed encodings they hash; and bad calls get Python errors, never a crash. (The
common decode path has its own file: test_decode_common.py.)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eth_account import Account as EthAccount
from hypothesis import given, settings
from hypothesis import strategies as st
from sha3 import keccak_256  # type: ignore[import-untyped]

from protocol import _native, recover_senders
from protocol._tx import _check

CHAIN = 901


@given(st.binary(max_size=1200))
@settings(max_examples=400, deadline=None)
def test_keccak_matches_pysha3(data: bytes) -> None:
    assert _native.keccak256(data) == keccak_256(data).digest()


@pytest.mark.parametrize("length", [0, 1, 135, 136, 137, 271, 272, 273, 100_000])
def test_keccak_at_block_boundaries(length: int) -> None:
    data = os.urandom(length)
    assert _native.keccak256(data) == keccak_256(data).digest()
    assert _native.keccak256(bytearray(data)) == keccak_256(data).digest()  # any buffer


def _signed(data_size: int, nonce: int) -> tuple[bytes, str]:
    account = EthAccount.create()
    raw = EthAccount.sign_transaction(
        {"type": 2, "chainId": CHAIN, "nonce": nonce, "maxPriorityFeePerGas": 1, "maxFeePerGas": 10**9,
         "gas": 30_000 + 16 * data_size, "to": "0x" + "11" * 20, "value": nonce, "data": os.urandom(data_size)},
        account.key,
    ).raw_transaction
    return bytes(raw), account.address


def _job(raw: bytes) -> tuple[bytes, int, int]:
    fields = _check(raw, CHAIN, 1 << 20)
    return raw, fields[12], fields[13]


# payloads under 56 bytes never occur (a transfer is ~80); 56..255 and >= 256 frame differently
@pytest.mark.parametrize("data_size", [0, 1, 100, 200, 1_000, 70_000])
def test_senders_and_hashes_match_eth_account(data_size: int) -> None:
    signed = [_signed(data_size, nonce) for nonce in range(4)]
    results = recover_senders([_job(raw) for raw, _ in signed])
    for (raw, address), (sender, tx_hash) in zip(signed, results, strict=True):
        assert sender is not None and "0x" + sender.hex() == address.lower()
        assert tx_hash == keccak_256(raw).digest()
        assert EthAccount.recover_transaction(raw).lower() == address.lower()


def test_an_unrecoverable_signature_is_none_with_its_hash() -> None:
    raw, _ = _signed(0, 0)
    job = _job(raw)
    # rewrite r as 5: not the x coordinate of any curve point (5**3 + 7 is no square mod p)
    r_at = job[2] + 1  # y_parity is one byte
    assert raw[r_at] == 0xA0
    forged = raw[:r_at] + b"\x05" + raw[r_at + 33 :]
    forged = forged[:1] + _reframe(forged[1:])
    ((sender, tx_hash),) = recover_senders([_job(forged)])
    assert sender is None and tx_hash == keccak_256(forged).digest()


def _reframe(rlp_list: bytes) -> bytes:
    """The same items under a list header that fits their new length."""
    header = rlp_list[0]
    payload = rlp_list[1 + header - 0xF7 :] if header > 0xF7 else rlp_list[1:]
    length = len(payload)
    if length < 56:
        return bytes((0xC0 + length,)) + payload
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(size),)) + size + payload


def test_threads_share_the_context() -> None:
    signed = [_signed(10, n) for n in range(64)]
    jobs = [_job(raw) for raw, _ in signed]
    expected = recover_senders(jobs)
    with ThreadPoolExecutor(4) as pool:
        for result in pool.map(recover_senders, [jobs] * 16):
            assert result == expected


@pytest.mark.parametrize(
    ("jobs", "error"),
    [
        ((b"\x02", 0, 0), TypeError),  # not a list
        ([b"\x02"], TypeError),  # an item is not a tuple
        ([(b"\x02", 0)], TypeError),  # two items
        ([("\x02", 0, 0)], TypeError),  # str, not bytes
        ([(b"\x02\xc0", 1, 3)], ValueError),  # unsigned_end past the end
        ([(b"\x02\xc0", 2, 1)], ValueError),  # body after unsigned_end
        ([(b"\x02\xc0", -1, 1)], ValueError),
    ],
)
def test_bad_calls_raise(jobs: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        recover_senders(jobs)


def test_garbage_after_the_signed_fields_recovers_nothing() -> None:
    # the decoder never passes these; the C side must still stay inside the buffer
    assert recover_senders([(b"\x02\xc1\xb9", 1, 2), (b"\x02", 1, 1), (b"", 0, 0)]) == [
        (None, keccak_256(b"\x02\xc1\xb9").digest()), (None, keccak_256(b"\x02").digest()),
        (None, keccak_256(b"").digest())]


# --- Merkle hashing (hash_level, account_leaves) ---------------------------------------------


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=4, max_size=300), st.data())
@settings(max_examples=100, deadline=None)
def test_hash_level_matches_pysha3(children: list[bytes], data: st.DataObject) -> None:
    children += [bytes(32)] * (-len(children) % 4)
    parents = data.draw(st.lists(st.integers(0, len(children) // 4 - 1), unique=True))
    above = [b"untouched"] * (len(children) // 4)
    _native.hash_level(children, above, parents, 4)
    for p, node in enumerate(above):
        if p in parents:
            assert node == keccak_256(b"".join(children[4 * p : 4 * p + 4])).digest()
        else:
            assert node == b"untouched"


def test_account_leaves_match_the_packed_encoding() -> None:
    addresses = [os.urandom(20) for _ in range(200)]
    accounts = [(n * 7, n * 10**20) for n in range(200)]
    next_of = [*addresses[1:], bytes(20)]
    slots = [*range(0, 200, 3), 199]
    leaves = _native.account_leaves(addresses, accounts, next_of, slots)
    for i, leaf in zip(slots, leaves, strict=True):
        nonce, balance = accounts[i]
        packed = addresses[i] + nonce.to_bytes(8, "big") + balance.to_bytes(32, "big") + next_of[i]
        assert leaf == keccak_256(packed).digest()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: _native.hash_level([b"x" * 32] * 3, [b""], [0], 4), IndexError),  # a node short of children
        (lambda: _native.hash_level([b"x" * 32] * 4, [b""], [1], 4), IndexError),  # no such parent
        (lambda: _native.hash_level([b"x" * 31] * 4, [b""], [0], 4), TypeError),  # a child is not 32 bytes
        (lambda: _native.hash_level([b"x" * 32] * 4, [b""], [0], 0), ValueError),
        (lambda: _native.account_leaves([bytes(20)], [(2**64, 0)], [bytes(20)], [0]), OverflowError),  # nonce
        (lambda: _native.account_leaves([bytes(20)], [(0, 2**256)], [bytes(20)], [0]), OverflowError),  # balance
        (lambda: _native.account_leaves([bytes(20)], [(0, -1)], [bytes(20)], [0]), OverflowError),
        (lambda: _native.account_leaves([bytes(19)], [(0, 0)], [bytes(20)], [0]), TypeError),
        (lambda: _native.account_leaves([bytes(20)], [("0", 0)], [bytes(20)], [0]), TypeError),
        (lambda: _native.account_leaves([bytes(20)], [(0, 0)], [bytes(20)], [1]), IndexError),
    ],
)
def test_bad_merkle_inputs_raise(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()
