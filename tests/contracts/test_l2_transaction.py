"""L2Transaction on a real anvil: the Solidity decoder agrees with protocol/_tx.

One table of raw transactions (valid ones signed by eth-account; every rejection reason, made
by hand; a deterministic sweep of single-byte mutations of valid transactions) runs against
both decode_transaction and the harness's decodeMany. On every row they must agree on the
verdict and the reason code; on valid rows on every field, the sender, the hash, the intrinsic
gas and the decoded withdrawal call. Hypothesis then throws random bytes, random mutations and
well-formed transactions with values around every rule's boundaries at both.

Reason codes match everywhere by construction (the Solidity runs the same checks in the same
order), so there is no list of exceptions: any reason mismatch fails.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account as EthAccount
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    L2_TRANSACTION_CODES,
    Reason,
    Transaction,
    TxRejected,
    WithdrawalMessage,
    decode_transaction,
    decode_withdrawal_call,
    encode_withdrawal_call,
)
from protocol._rules import (
    BLOCK_GAS_LIMIT,
    DEFAULT_CHAIN_ID,
    INITIATE_WITHDRAWAL_SELECTOR,
    MAX_NONCE,
    MAX_TX_SIZE,
    MESSAGE_PASSER,
    SECP256K1_N,
    UINT256_MAX,
    ZERO_ADDRESS,
)
from services.l1 import (
    Artifact,
    Contract,
    L1Client,
    LocalSigner,
    TxSender,
    UnsignedTransaction,
    rlp_bytes,
    rlp_int,
    rlp_list,
    sign_transaction,
)
from tests.l1.anvil import DEV_KEYS

ARTIFACT = Artifact.load("L2TransactionHarness")
DEPLOYER = LocalSigner(DEV_KEYS[0])
CHAIN = DEFAULT_CHAIN_ID
KEYS = tuple(bytes.fromhex(k.removeprefix("0x")) for k in DEV_KEYS)
#: The Python Reason of each Solidity reason code (protocol.L2_TRANSACTION_CODES).
REASON_OF_CODE = {code: reason for reason, code in L2_TRANSACTION_CODES.items()}
#: Only the stateless reasons can come out of decoding (the rest are apply_transaction's).
DECODE_REASONS = tuple(L2_TRANSACTION_CODES)
SOURCE = Path(__file__).resolve().parents[2] / "contracts" / "L2Transaction.sol"
TO = bytes.fromhex("70997970c51812dc3a010c7d01b50e0d17dc79c8")
GWEI = 10**9
#: Rows per eth_call, and bytes of raw transactions per eth_call: well inside anvil's call gas cap.
CHUNK_ROWS = 150
CHUNK_BYTES = 40_000
#: The brief's budget for decoding and recovering a plain transfer (the figure is printed).
TRANSFER_GAS_BOUND = 50_000


# --- building transactions ----------------------------------------------------------------------


def eth_sign(key: bytes = KEYS[0], **overrides: Any) -> bytes:
    """A raw type-2 transaction as eth-account (a standard wallet library) signs it."""
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": CHAIN,
        "nonce": 0,
        "maxPriorityFeePerGas": GWEI,
        "maxFeePerGas": 2 * GWEI,
        "gas": 21_000,
        "to": TO,
        "value": 10**18,
        "data": b"",
        "accessList": [],
        **overrides,
    }
    tx["to"] = to_checksum_address(tx["to"])
    return bytes(EthAccount.sign_transaction(tx, key).raw_transaction)


def eth_sign_other_type(tx_type: int) -> bytes:
    """A legacy (0) or EIP-2930 (1) transaction, as eth-account signs it."""
    tx: dict[str, Any] = {"nonce": 0, "gasPrice": GWEI, "gas": 21_000, "to": to_checksum_address(TO),
                          "value": 1, "data": b"", "chainId": CHAIN}
    if tx_type == 1:
        tx |= {"type": 1, "accessList": [{"address": to_checksum_address(TO), "storageKeys": []}]}
    return bytes(EthAccount.sign_transaction(tx, KEYS[0]).raw_transaction)


def unsigned(**overrides: Any) -> UnsignedTransaction:
    fields: dict[str, Any] = {"chain_id": CHAIN, "nonce": 0, "max_priority_fee_per_gas": GWEI,
                              "max_fee_per_gas": 2 * GWEI, "gas_limit": 21_000, "to": TO, "value": 10**18}
    return UnsignedTransaction(**(fields | overrides))


def signed(**overrides: Any) -> bytes:
    """Signed by the project's signer (byte-identical to eth-account's), for fields a wallet
    refuses to sign (tip above fee cap, 19-byte `to`, contract creation)."""
    return sign_transaction(unsigned(**overrides), KEYS[0])


def items_of(raw: bytes) -> list[bytes]:
    """The 12 RLP-encoded items of a valid raw transaction, to rebuild malformed variants."""
    tx = decode_transaction(raw, CHAIN)
    access = rlp_list(rlp_list((rlp_bytes(a), rlp_list(map(rlp_bytes, keys)))) for a, keys in tx.access_list)
    return [rlp_int(tx.chain_id), rlp_int(tx.nonce), rlp_int(tx.max_priority_fee_per_gas),
            rlp_int(tx.max_fee_per_gas), rlp_int(tx.gas_limit), rlp_bytes(tx.to or b""), rlp_int(tx.value),
            rlp_bytes(tx.data), access, rlp_int(tx.y_parity), rlp_int(tx.r), rlp_int(tx.s)]


def frame(items: Sequence[bytes]) -> bytes:
    return b"\x02" + rlp_list(items)


def replaced(raw: bytes, index: int, item: bytes) -> bytes:
    items = items_of(raw)
    items[index] = item
    return frame(items)


def with_signature(raw: bytes, y_parity: int, r: int, s: int) -> bytes:
    items = items_of(raw)
    return frame([*items[:9], rlp_int(y_parity), rlp_int(r), rlp_int(s)])


def withdrawal_call(target: bytes = TO, gas_limit: int = 200_000, data: bytes = b"hello") -> bytes:
    return encode_withdrawal_call(target, gas_limit, data)


def word(n: int) -> bytes:
    return n.to_bytes(32, "big")


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vector:
    """A raw transaction; `expect` is the reason Python must reject it for (None: Python must
    accept it; "any": the sweep's and other odd rows, where only the two sides must agree)."""

    name: str
    raw: bytes
    expect: Reason | str | None = "any"
    chain_id: int = CHAIN


TRANSFER = eth_sign()
RICH = eth_sign(  # calldata with zero and non-zero bytes, and an access list
    nonce=7,
    data=bytes(range(40)) + bytes(30),
    gas=100_000,
    accessList=[
        {"address": to_checksum_address("0x" + "ab" * 20), "storageKeys": ["0x" + "00" * 32, "0x" + "01" * 32]},
        {"address": to_checksum_address("0x" + "cd" * 20), "storageKeys": []},
    ],
)
WITHDRAWAL = eth_sign(to=MESSAGE_PASSER, data=withdrawal_call(), gas=30_000, value=5)
WITHDRAW_TO_SELF = eth_sign(to=MESSAGE_PASSER, data=b"", value=1)


def valid_vectors() -> list[Vector]:
    v: list[Vector] = [
        Vector("transfer", TRANSFER, None),
        Vector("transfer, second key", eth_sign(KEYS[1], nonce=3), None),
        Vector("transfer, third key, zero fees", eth_sign(KEYS[2], maxPriorityFeePerGas=0, maxFeePerGas=0), None),
        Vector("zero value", eth_sign(value=0), None),
        Vector("value 1", eth_sign(value=1), None),
        Vector("value 0x7f (single-byte integer)", eth_sign(value=0x7F), None),
        Vector("value 0x80 (one-byte string)", eth_sign(value=0x80), None),
        Vector("huge values", eth_sign(KEYS[3], value=UINT256_MAX, maxFeePerGas=UINT256_MAX,
                                       maxPriorityFeePerGas=2**255), None),
        Vector("nonce 0", eth_sign(nonce=0), None),
        Vector("nonce 2**32", eth_sign(nonce=2**32), None),
        Vector("nonce MAX_NONCE", eth_sign(nonce=MAX_NONCE), None),
        Vector("gas limit = block gas limit", eth_sign(gas=BLOCK_GAS_LIMIT), None),
        Vector("calldata, one zero byte", eth_sign(data=b"\x00", gas=21_004), None),
        Vector("calldata, one non-zero byte", eth_sign(data=b"\x01", gas=21_016), None),
        Vector("calldata 0x80 (one-byte string)", eth_sign(data=b"\x80", gas=21_016), None),
        Vector("calldata, 55 bytes (short string)", eth_sign(data=b"\x07" * 55, gas=30_000), None),
        Vector("calldata, 56 bytes (long string)", eth_sign(data=b"\x07" * 56, gas=30_000), None),
        Vector("calldata, mixed, 5000 bytes (3-byte list header)",
               eth_sign(data=bytes(i % 3 for i in range(5000)), gas=21_000 + 5000 * 16), None),
        Vector("calldata, exactly the intrinsic gas", eth_sign(data=b"\x00\x01\x00\xff" * 9, gas=21_000 + 18 * 20),
               None),
        Vector("access list and calldata", RICH, None),
        Vector("access list, exactly the intrinsic gas", eth_sign(
            accessList=[{"address": to_checksum_address(TO), "storageKeys": ["0x" + "11" * 32] * 3}],
            gas=21_000 + 2_400 + 3 * 1_900), None),
        Vector("access list, many entries", eth_sign(
            accessList=[{"address": to_checksum_address(bytes([i]) * 20), "storageKeys": ["0x" + f"{i:064x}"] * i}
                        for i in range(1, 8)],
            gas=100_000), None),
        Vector("withdrawal call", WITHDRAWAL, None),
        Vector("withdrawal call, empty data", eth_sign(to=MESSAGE_PASSER, data=withdrawal_call(data=b""),
                                                       gas=30_000), None),
        Vector("withdrawal call, 32 bytes of data", eth_sign(
            to=MESSAGE_PASSER, data=withdrawal_call(data=b"\x01" * 32), gas=30_000), None),
        Vector("withdrawal call, 33 bytes of data", eth_sign(
            to=MESSAGE_PASSER, data=withdrawal_call(b"\xff" * 20, UINT256_MAX, b"\x01" * 33), gas=30_000), None),
        Vector("withdrawal to self (empty calldata)", WITHDRAW_TO_SELF, None),
        Vector("withdrawal to self, second key", eth_sign(KEYS[1], to=MESSAGE_PASSER, value=0), None),
        Vector("to the fee vault", eth_sign(to=bytes.fromhex("4200000000000000000000000000000000000011")), None),
        Vector("to the zero address", eth_sign(to=ZERO_ADDRESS), None),
    ]
    # Exactly MAX_TX_SIZE: the data length that lands there (a shorter r or s changes it by a byte).
    n = MAX_TX_SIZE - 125
    largest = b""
    while len(largest) != MAX_TX_SIZE:
        n += MAX_TX_SIZE - len(largest) if largest else 0
        largest = eth_sign(data=b"\x01" * n, gas=21_000 + 16 * n)
    v.append(Vector("exactly MAX_TX_SIZE", largest, None))
    return v


def rejected_vectors() -> list[Vector]:
    transfer_items = items_of(TRANSFER)
    tx = decode_transaction(TRANSFER, CHAIN)
    y, r, s = tx.y_parity, tx.r, tx.s
    v: list[Vector] = []

    def add(name: str, raw: bytes, reason: Reason, chain_id: int = CHAIN) -> None:
        v.append(Vector(name, raw, reason, chain_id))

    # size and envelope
    add("empty input", b"", Reason.MALFORMED_RLP)
    add("type byte only", b"\x02", Reason.MALFORMED_RLP)
    n = MAX_TX_SIZE - 124  # the largest valid one's calldata, and a byte more
    add("oversized (a byte more calldata than the largest)", eth_sign(data=b"\x01" * n, gas=21_000 + 16 * n),
        Reason.OVERSIZED)
    add("oversized garbage", b"\x02" + bytes(MAX_TX_SIZE), Reason.OVERSIZED)
    add("legacy transaction", eth_sign_other_type(0), Reason.TX_TYPE_NOT_SUPPORTED)
    add("EIP-2930 (type 1)", eth_sign_other_type(1), Reason.TX_TYPE_NOT_SUPPORTED)
    add("type 3", b"\x03" + TRANSFER[1:], Reason.TX_TYPE_NOT_SUPPORTED)
    add("type 4", b"\x04" + TRANSFER[1:], Reason.TX_TYPE_NOT_SUPPORTED)
    add("type 0x7e (deposit)", b"\x7e" + TRANSFER[1:], Reason.TX_TYPE_NOT_SUPPORTED)
    add("no type byte (bare list)", TRANSFER[1:], Reason.TX_TYPE_NOT_SUPPORTED)
    add("garbage", b"\x9a\x17garbage\xff\x00", Reason.TX_TYPE_NOT_SUPPORTED)
    noise = random.Random(1)
    for i in range(4):
        v.append(Vector(f"type 2, random bytes #{i}", b"\x02" + noise.randbytes(10 + 60 * i)))
    add("type 2, random garbage", b"\x02garbage", Reason.MALFORMED_RLP)

    # outer list
    add("trailing byte", TRANSFER + b"\x00", Reason.MALFORMED_RLP)
    add("trailing bytes", TRANSFER + b"\x01\x02\x03", Reason.MALFORMED_RLP)
    add("a string, not a list", b"\x02" + rlp_bytes(b"".join(transfer_items)), Reason.MALFORMED_RLP)
    add("empty list", b"\x02\xc0", Reason.MALFORMED_RLP)
    add("list length with a leading zero", b"\x02\xf9\x00" + TRANSFER[2:], Reason.MALFORMED_RLP)
    add("list length over the end", TRANSFER[:2] + bytes([TRANSFER[2] + 1]) + TRANSFER[3:], Reason.MALFORMED_RLP)
    add("list length short of the end", TRANSFER[:2] + bytes([TRANSFER[2] - 1]) + TRANSFER[3:],
        Reason.MALFORMED_RLP)
    add("list length of 8 bytes", b"\x02\xff" + b"\xff" * 8 + TRANSFER[3:], Reason.MALFORMED_RLP)
    short = [rlp_int(CHAIN), b"\x80", b"\x80", b"\x80", rlp_int(21_000), rlp_bytes(TO), b"\x80", b"\x80", b"\xc0",
             b"\x80", b"\x01", b"\x01"]
    payload = b"".join(short)
    assert len(payload) < 56
    add("list under 56 bytes, long form", b"\x02\xf8" + bytes([len(payload)]) + payload, Reason.MALFORMED_RLP)
    v.append(Vector("list under 56 bytes, short form (r = s = 1)", frame(short)))  # whatever recovery says
    add("11 fields", frame(transfer_items[:11]), Reason.MALFORMED_RLP)
    add("13 fields", frame([*transfer_items, b"\x01"]), Reason.MALFORMED_RLP)
    add("13 fields, empty extra", frame([*transfer_items, b"\x80"]), Reason.MALFORMED_RLP)
    add("9 fields (unsigned)", frame(transfer_items[:9]), Reason.MALFORMED_RLP)
    for k in (0, 1, 2, 3, 4, 10, 30, 60, len(TRANSFER) // 2, len(TRANSFER) - 33, len(TRANSFER) - 2,
              len(TRANSFER) - 1):
        add(f"truncated to {k} bytes", TRANSFER[:k], Reason.MALFORMED_RLP)
    for k in (4, 50, 100, len(RICH) - 70, len(RICH) - 1):
        add(f"rich, truncated to {k} bytes", RICH[:k], Reason.MALFORMED_RLP)
    for k in (200, len(WITHDRAWAL) - 1):
        add(f"withdrawal, truncated to {k} bytes", WITHDRAWAL[:k], Reason.MALFORMED_RLP)

    # integers
    add("nonce with a leading zero", replaced(eth_sign(nonce=300), 1, b"\x83\x00\x01\x2c"), Reason.MALFORMED_RLP)
    add("chain id with a leading zero", replaced(TRANSFER, 0, b"\x83\x00" + rlp_int(CHAIN)[1:]),
        Reason.MALFORMED_RLP)
    add("zero as 0x00", replaced(eth_sign(nonce=0), 1, b"\x00"), Reason.MALFORMED_RLP)
    add("zero as 0x8100", replaced(eth_sign(nonce=0), 1, b"\x81\x00"), Reason.MALFORMED_RLP)
    add("small integer as a one-byte string", replaced(eth_sign(nonce=5), 1, b"\x81\x05"), Reason.MALFORMED_RLP)
    add("integer as a list", replaced(TRANSFER, 1, b"\xc0"), Reason.MALFORMED_RLP)
    add("integer in long form", replaced(TRANSFER, 6, b"\xb8\x08" + (10**18).to_bytes(8, "big")),
        Reason.FIELD_OUT_OF_RANGE)  # Python refuses any prefix above 0xa0 for an integer by its prefix
    add("value of 33 bytes", replaced(TRANSFER, 6, b"\xa1\x01" + bytes(32)), Reason.FIELD_OUT_OF_RANGE)
    add("value claiming 33 bytes, 1 present", replaced(TRANSFER, 6, b"\xa1\x01"), Reason.FIELD_OUT_OF_RANGE)
    add("value prefix 0xa1, last byte of the list", frame([*transfer_items[:6], b"\xa1"]),
        Reason.FIELD_OUT_OF_RANGE)
    add("value prefix 0xbf, last byte of the list", frame([*transfer_items[:6], b"\xbf"]),
        Reason.FIELD_OUT_OF_RANGE)
    add("r of 33 bytes", frame([*transfer_items[:10], b"\xa1\x01" + bytes(32), transfer_items[11]]),
        Reason.FIELD_OUT_OF_RANGE)
    add("s of 33 bytes", frame([*transfer_items[:11], b"\xa1\x01" + word(s)]), Reason.FIELD_OUT_OF_RANGE)
    add("gas limit with a leading zero", replaced(TRANSFER, 4, b"\x84\x00\x00\x52\x08"), Reason.MALFORMED_RLP)
    add("y parity 0x00", frame([*transfer_items[:9], b"\x00", *transfer_items[10:]]), Reason.MALFORMED_RLP)

    # strings
    add("'to' in long form", replaced(TRANSFER, 5, b"\xb8\x14" + TO), Reason.MALFORMED_RLP)
    add("calldata in long form for 3 bytes", replaced(eth_sign(data=b"abc", gas=30_000), 7, b"\xb8\x03abc"),
        Reason.MALFORMED_RLP)
    add("calldata long length with a leading zero", replaced(
        eth_sign(data=b"\x01" * 60, gas=30_000), 7, b"\xb9\x00\x3c" + b"\x01" * 60), Reason.MALFORMED_RLP)
    add("calldata byte 0x01 as a one-byte string", replaced(eth_sign(data=b"\x01", gas=30_000), 7, b"\x81\x01"),
        Reason.MALFORMED_RLP)
    add("calldata as a list", replaced(TRANSFER, 7, b"\xc1\x01"), Reason.MALFORMED_RLP)
    add("calldata length over the end", replaced(TRANSFER, 7, b"\xb8\xff"), Reason.MALFORMED_RLP)
    add("calldata length of 8 bytes, huge", replaced(TRANSFER, 7, b"\xbf" + b"\xff" * 8), Reason.MALFORMED_RLP)

    # access lists
    al = items_of(RICH)

    def with_access_list(entries: bytes) -> bytes:
        return frame([*al[:8], entries, *al[9:]])

    addr, key = rlp_bytes(b"\xab" * 20), rlp_bytes(b"\x11" * 32)
    add("access list as a string", with_access_list(b"\x80"), Reason.MALFORMED_RLP)
    add("access list entry as a string", with_access_list(rlp_list([addr])), Reason.MALFORMED_RLP)
    add("access list address of 19 bytes", with_access_list(rlp_list([rlp_list([rlp_bytes(b"\xab" * 19),
                                                                                rlp_list([])])])),
        Reason.INVALID_ADDRESS)
    add("access list address of 21 bytes", with_access_list(rlp_list([rlp_list([rlp_bytes(b"\xab" * 21),
                                                                                rlp_list([])])])),
        Reason.INVALID_ADDRESS)
    add("access list address as a list", with_access_list(rlp_list([rlp_list([rlp_list([]), rlp_list([])])])),
        Reason.MALFORMED_RLP)
    add("access list entry without keys", with_access_list(rlp_list([rlp_list([addr])])), Reason.MALFORMED_RLP)
    add("access list entry with 3 items", with_access_list(rlp_list([rlp_list([addr, rlp_list([]), b"\x80"])])),
        Reason.MALFORMED_RLP)
    add("access list keys as a string", with_access_list(rlp_list([rlp_list([addr, key])])), Reason.MALFORMED_RLP)
    add("access list key of 31 bytes", with_access_list(rlp_list([rlp_list([addr, rlp_list([
        rlp_bytes(b"\x11" * 31)])])])), Reason.MALFORMED_RLP)
    add("access list key of 33 bytes", with_access_list(rlp_list([rlp_list([addr, rlp_list([
        key, rlp_bytes(b"\x11" * 33)])])])), Reason.MALFORMED_RLP)
    add("access list key as a list", with_access_list(rlp_list([rlp_list([addr, rlp_list([rlp_list([])])])])),
        Reason.MALFORMED_RLP)
    add("access list entry length over the list", with_access_list(b"\xc3\xc5\x80\xc0"), Reason.MALFORMED_RLP)
    add("bad access list address before a malformed key", with_access_list(rlp_list([
        rlp_list([rlp_bytes(b"\x01"), rlp_list([b"\x80"])])])), Reason.INVALID_ADDRESS)

    # field checks, in Python's order
    add("wrong chain id", eth_sign(chainId=1), Reason.WRONG_CHAIN_ID)
    add("chain id 902", eth_sign(chainId=902), Reason.WRONG_CHAIN_ID)
    add("right transaction, other chain", TRANSFER, Reason.WRONG_CHAIN_ID, chain_id=1)
    add("chain id 0 and nonce too high", signed(chain_id=0, nonce=2**64 - 1), Reason.WRONG_CHAIN_ID)
    add("nonce 2**64 - 1", eth_sign(nonce=2**64 - 1), Reason.FIELD_OUT_OF_RANGE)
    add("nonce 2**256 - 1", signed(nonce=UINT256_MAX), Reason.FIELD_OUT_OF_RANGE)
    add("contract creation", signed(to=None, gas_limit=60_000, data=b"\x60\x00"),
        Reason.CONTRACT_CREATION_NOT_SUPPORTED)
    add("'to' of 19 bytes", signed(to=TO[:19]), Reason.INVALID_ADDRESS)
    add("'to' of 21 bytes", signed(to=TO + b"\x00"), Reason.INVALID_ADDRESS)
    add("'to' of 1 byte", signed(to=b"\x42"), Reason.INVALID_ADDRESS)
    add("'to' of 32 bytes", signed(to=bytes(12) + TO), Reason.INVALID_ADDRESS)
    add("tip above fee cap", signed(max_priority_fee_per_gas=2 * GWEI + 1), Reason.TIP_ABOVE_FEE_CAP)
    add("tip above a zero fee cap", signed(max_priority_fee_per_gas=1, max_fee_per_gas=0), Reason.TIP_ABOVE_FEE_CAP)
    add("gas limit above the block's", eth_sign(gas=BLOCK_GAS_LIMIT + 1), Reason.GAS_LIMIT_TOO_HIGH)
    add("gas limit 2**256 - 1", eth_sign(gas=UINT256_MAX), Reason.GAS_LIMIT_TOO_HIGH)
    add("gas limit below 21000", eth_sign(gas=20_999), Reason.INTRINSIC_GAS_TOO_LOW)
    add("gas limit 0", eth_sign(gas=0), Reason.INTRINSIC_GAS_TOO_LOW)
    add("calldata gas missing", eth_sign(data=b"\x00\x01", gas=21_019), Reason.INTRINSIC_GAS_TOO_LOW)
    add("access list gas missing", eth_sign(accessList=[{"address": to_checksum_address(TO), "storageKeys": [
        "0x" + "11" * 32]}], gas=21_000 + 2_400 + 1_899), Reason.INTRINSIC_GAS_TOO_LOW)

    # withdrawal calldata
    good = withdrawal_call()

    def withdrawal(data: bytes, name: str) -> None:
        add(f"withdrawal: {name}", eth_sign(to=MESSAGE_PASSER, data=data, gas=40_000), Reason.MALFORMED_WITHDRAWAL)

    withdrawal(good[:131], "131 bytes")
    withdrawal(b"\x01", "1 byte")
    withdrawal(INITIATE_WITHDRAWAL_SELECTOR, "selector only")
    withdrawal(b"\xc2\xb3\xe5\xad" + good[4:], "wrong selector")
    withdrawal(good[:4] + b"\x01" + good[5:], "dirty target word")
    withdrawal(good[:15] + b"\x01" + good[16:], "dirty target word, last high byte")
    withdrawal(good[:68] + word(0x40) + good[100:], "offset 0x40")
    withdrawal(good[:68] + word(0x60 + 2**255) + good[100:], "offset with a high bit")
    v.append(Vector("withdrawal: length 6, a zero padding byte becomes data", eth_sign(
        to=MESSAGE_PASSER, data=good[:100] + word(6) + good[132:], gas=40_000), None))
    withdrawal(good[:100] + word(4) + good[132:], "length one too few")
    withdrawal(good[:100] + word(33) + good[132:], "length past the padding")
    withdrawal(good[:100] + word(UINT256_MAX) + good[132:], "length 2**256 - 1")
    withdrawal(good[:100] + word(UINT256_MAX - 30) + good[132:], "length that wraps when padded")
    withdrawal(good[:-1] + b"\x01", "dirty padding, last byte")
    withdrawal(good[:137] + b"\x01" + good[138:], "dirty padding, first byte")
    withdrawal(good + bytes(32), "a trailing zero word")
    withdrawal(good + b"\x00", "a trailing byte")
    withdrawal(good[:-32], "padding missing")
    withdrawal(withdrawal_call(data=b"\x01" * 32)[:-32] + bytes(0), "32 bytes of data, word missing")
    add("withdrawal: call with too little gas", eth_sign(to=MESSAGE_PASSER, data=b"\x01", gas=21_000),
        Reason.INTRINSIC_GAS_TOO_LOW)  # the gas check comes first

    # signatures
    add("high s (n - s, other parity)", with_signature(TRANSFER, 1 - y, r, SECP256K1_N - s), Reason.HIGH_S)
    add("high s, same parity", with_signature(TRANSFER, y, r, SECP256K1_N - s), Reason.HIGH_S)
    add("y parity 2", with_signature(TRANSFER, 2, r, s), Reason.INVALID_SIGNATURE)
    add("y parity 27", with_signature(TRANSFER, 27, r, s), Reason.INVALID_SIGNATURE)
    v.append(Vector("flipped y parity", with_signature(TRANSFER, 1 - y, r, s)))  # someone else, or no one
    add("r = 0", with_signature(TRANSFER, y, 0, s), Reason.INVALID_SIGNATURE)
    add("s = 0", with_signature(TRANSFER, y, r, 0), Reason.INVALID_SIGNATURE)
    add("r = n", with_signature(TRANSFER, y, SECP256K1_N, s), Reason.INVALID_SIGNATURE)
    add("s = n", with_signature(TRANSFER, y, r, SECP256K1_N), Reason.INVALID_SIGNATURE)
    add("r = 2**256 - 1", with_signature(TRANSFER, y, UINT256_MAX, s), Reason.INVALID_SIGNATURE)
    add("s = n // 2 + 1", with_signature(TRANSFER, y, r, SECP256K1_N // 2 + 1), Reason.HIGH_S)
    add("r not on the curve (x = 5)", with_signature(TRANSFER, y, 5, s), Reason.INVALID_SIGNATURE)
    add("y parity 2 before r = 0", with_signature(TRANSFER, 2, 0, 0), Reason.INVALID_SIGNATURE)
    add("a malformed withdrawal before a bad signature", unsigned(
        to=MESSAGE_PASSER, data=b"\x01", gas_limit=40_000).encode_signed(2, 0, 0), Reason.MALFORMED_WITHDRAWAL)
    for i, (name, other) in enumerate({"transfer": TRANSFER, "rich": RICH}.items()):
        tampered = bytearray(other)
        tampered[-40 - i] ^= 0x01  # inside r: another point, or none
        v.append(Vector(f"{name}, r tampered", bytes(tampered)))
    return v


def mutations(raw: bytes, label: str, rng: random.Random, positions: Sequence[int]) -> list[Vector]:
    out = []
    for p in positions:
        flip = bytearray(raw)
        flip[p] ^= rng.randrange(1, 256)
        out.append(Vector(f"{label}: flip at {p}", bytes(flip)))
        out.append(Vector(f"{label}: insert at {p}", raw[:p] + bytes([rng.randrange(256)]) + raw[p:]))
        out.append(Vector(f"{label}: delete at {p}", raw[:p] + raw[p + 1 :]))
    return out


def sweep_vectors() -> list[Vector]:
    rng = random.Random(0x1559)
    out = mutations(TRANSFER, "transfer", rng, range(len(TRANSFER)))
    for label, raw in {"rich": RICH, "withdrawal": WITHDRAWAL, "withdraw to self": WITHDRAW_TO_SELF}.items():
        out += mutations(raw, label, rng, sorted(rng.sample(range(len(raw)), min(60, len(raw)))))
    return out


VALID = valid_vectors()
REJECTED = rejected_vectors()
SWEEP = sweep_vectors()
VECTORS = VALID + REJECTED + SWEEP


# --- comparing the two decoders -----------------------------------------------------------------


def python_decode(raw: bytes, chain_id: int) -> Transaction | TxRejected:
    try:
        return decode_transaction(raw, chain_id)
    except TxRejected as rejected:
        return rejected


def expected_fields(tx: Transaction) -> tuple[Any, ...]:
    """The harness's Tx tuple that Python's Transaction implies."""
    if tx.to == MESSAGE_PASSER:
        call = decode_withdrawal_call(tx.data, tx.sender)
        withdrawal = (call.target, call.gas_limit, call.data)
    else:
        withdrawal = (ZERO_ADDRESS, 0, b"")
    return (tx.chain_id, tx.nonce, tx.max_priority_fee_per_gas, tx.max_fee_per_gas, tx.gas_limit, tx.to, tx.value,
            tx.data, tx.sender, tx.hash, tx.intrinsic_gas, *withdrawal)


TX_FIELDS = ("chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gasLimit", "to", "value", "data",
             "sender", "txHash", "intrinsicGas", "withdrawalTarget", "withdrawalGasLimit", "withdrawalData")


def disagreement(vector: Vector, result: tuple[Any, ...]) -> str | None:
    """Why Solidity's `result` is not what Python says of `vector` (or what the table claims)."""
    ok, code, decoded = result
    python = python_decode(vector.raw, vector.chain_id)
    solidity = None if ok else REASON_OF_CODE.get(code, f"code {code}")
    if isinstance(python, TxRejected):
        if vector.expect not in ("any", python.reason):
            return f"{vector.name}: python says {python.reason}, the table expects {vector.expect}"
        if solidity != python.reason:
            return f"{vector.name}: python rejects it ({python.reason}: {python.message}), solidity says {solidity}"
        return None
    if vector.expect not in ("any", None):
        return f"{vector.name}: python accepts it, the table expects {vector.expect}"
    if solidity is not None:
        return f"{vector.name}: python accepts it, solidity rejects it ({solidity})"
    wrong = [f"{n}: solidity {a!r}, python {b!r}"[:300] for n, a, b in zip(TX_FIELDS, decoded,
                                                                           expected_fields(python), strict=True)
             if a != b]
    return f"{vector.name}: fields differ: " + "; ".join(wrong) if wrong else None


def chunks(vectors: Sequence[Vector]) -> list[list[Vector]]:
    """Consecutive groups of one chain id, bounded in rows and bytes (one eth_call each)."""
    out: list[list[Vector]] = []
    size = 0
    for v in vectors:
        full = bool(out) and (len(out[-1]) >= CHUNK_ROWS or size + len(v.raw) > CHUNK_BYTES)
        if not out or full or out[-1][0].chain_id != v.chain_id:
            out.append([])
            size = 0
        out[-1].append(v)
        size += len(v.raw)
    return out


async def solidity_disagreements(l1: L1Client, harness: Contract, vectors: Sequence[Vector]) -> list[str]:
    problems: list[str] = []
    for group in chunks(vectors):
        (results,) = await harness.read(l1, "decodeMany", [v.raw for v in group], group[0].chain_id)
        assert len(results) == len(group)
        problems += [d for v, r in zip(group, results, strict=True) if (d := disagreement(v, r)) is not None]
    return problems


@pytest.fixture
async def harness(l1: L1Client) -> Contract:
    deployer = await TxSender.create(l1, DEPLOYER)
    receipt = await deployer.wait_receipt(await deployer.send(None, Contract(ARTIFACT).encode_deploy()), 5)
    assert receipt.success and receipt.contract_address is not None
    return Contract(ARTIFACT, receipt.contract_address)


# --- tests --------------------------------------------------------------------------------------


def test_the_solidity_constants_are_the_python_codes() -> None:
    constants = dict(re.findall(r"uint8 internal constant ([A-Z_0-9]+) = (\d+);", SOURCE.read_text()))
    assert {name: int(code) for name, code in constants.items()} == {
        reason.value: code for reason, code in L2_TRANSACTION_CODES.items()}


def test_the_table_covers_what_it_claims() -> None:
    assert len({v.name for v in VECTORS}) == len(VECTORS)
    assert len(VECTORS[VECTORS.index(VALID[-1])].raw) == MAX_TX_SIZE
    verdicts = [python_decode(v.raw, v.chain_id) for v in VECTORS]
    assert all(isinstance(p, Transaction) for p in verdicts[: len(VALID)])
    # every stateless rejection reason is exercised, and the sweep reaches several of them
    reasons = {p.reason for p in verdicts if isinstance(p, TxRejected)}
    assert reasons == set(DECODE_REASONS)
    sweep = verdicts[len(VALID) + len(REJECTED) :]
    sweep_reasons = {p.reason for p in sweep if isinstance(p, TxRejected)}
    assert {Reason.MALFORMED_RLP, Reason.INVALID_SIGNATURE, Reason.WRONG_CHAIN_ID} <= sweep_reasons
    # mutated but still valid rows (another sender, another value...) are compared field by field
    assert sum(isinstance(p, Transaction) for p in sweep) > 20
    assert len(SWEEP) > 500
    print(f"\n{len(VECTORS)} vectors: {len(VALID)} valid, {len(REJECTED)} hand-made invalid or odd ones, "
          f"{len(SWEEP)} single-byte mutations")


async def test_solidity_agrees_with_python_on_every_row(l1: L1Client, harness: Contract) -> None:
    problems = await solidity_disagreements(l1, harness, VECTORS)
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems[:50])


async def test_decoded_transfer_field_by_field(l1: L1Client, harness: Contract) -> None:
    """One row spelled out, so a mistake in expected_fields cannot hide one in the contract."""
    (results,) = await harness.read(l1, "decodeMany", [TRANSFER, WITHDRAW_TO_SELF], CHAIN)
    (ok, code, t), (w_ok, _, w) = results
    sender = bytes.fromhex(EthAccount.from_key(KEYS[0]).address[2:])
    assert ok and code == 0 and w_ok
    assert t == (CHAIN, 0, GWEI, 2 * GWEI, 21_000, TO, 10**18, b"", sender, EthAccount.sign_transaction(
        {"type": 2, "chainId": CHAIN, "nonce": 0, "maxPriorityFeePerGas": GWEI, "maxFeePerGas": 2 * GWEI,
         "gas": 21_000, "to": to_checksum_address(TO), "value": 10**18, "data": b"", "accessList": []},
        KEYS[0]).hash, 21_000, ZERO_ADDRESS, 0, b"")
    assert (w[5], w[8], w[11:]) == (MESSAGE_PASSER, sender, (sender, 100_000, b""))


async def test_withdrawal_hash_matches(l1: L1Client, harness: Contract) -> None:
    sender = bytes.fromhex(EthAccount.from_key(KEYS[1]).address[2:])
    messages = [
        WithdrawalMessage(0, sender, TO, 0, 100_000, b""),
        WithdrawalMessage(1, sender, TO, 10**18, 200_000, b"\x01"),
        WithdrawalMessage(7, MESSAGE_PASSER, ZERO_ADDRESS, 1, 0, b"\xff" * 32),
        WithdrawalMessage(2**64, b"\xff" * 20, b"\xee" * 20, UINT256_MAX, UINT256_MAX, bytes(range(33))),
        WithdrawalMessage(UINT256_MAX, sender, TO, 5, 1, bytes(range(256)) * 3),
    ]
    for m in messages:
        (digest,) = await harness.read(l1, "withdrawalHash", m.nonce, m.sender, m.target, m.value, m.gas_limit,
                                       m.data)
        assert digest == m.hash()


async def test_gas_of_decoding_a_transfer(l1: L1Client, harness: Contract) -> None:
    """Printed (pytest -s shows it), and held to the budget: the figure is deterministic."""
    figures = {}
    for name, raw in {"transfer": TRANSFER, "withdrawal call": WITHDRAWAL, "access list + calldata": RICH}.items():
        ok, used = await harness.read(l1, "decodeGas", raw, CHAIN)
        assert ok
        figures[name] = used
    print("\nL2Transaction.decode (parse, checks, ecrecover, hashes, copies): "
          + ", ".join(f"{name} ({n} bytes): {figures[name]} gas" for name, n in
                      (("transfer", len(TRANSFER)), ("withdrawal call", len(WITHDRAWAL)),
                       ("access list + calldata", len(RICH)))))
    assert 3_000 < figures["transfer"] < TRANSFER_GAS_BOUND


# --- random inputs ------------------------------------------------------------------------------

BASES = (TRANSFER, RICH, WITHDRAWAL, WITHDRAW_TO_SELF)


def mutate(raw: bytes, ops: Sequence[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, byte) edits: 0 overwrite, 1 insert, 2 delete, 3 truncate."""
    out = bytearray(raw)
    for kind, position, value in ops:
        if not out:
            break
        p = position % len(out)
        if kind == 0:
            out[p] = value
        elif kind == 1:
            out.insert(p, value)
        elif kind == 2:
            del out[p]
        else:
            del out[p:]
    return bytes(out)


random_bytes = st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"\x02" + b),
                         st.binary(max_size=120).map(lambda b: b"\x02\xf8" + bytes([len(b)]) + b))
random_edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**16), st.integers(0, 255)), min_size=1,
                        max_size=4)
mutated = st.builds(mutate, st.sampled_from(BASES), random_edits)


def mostly(usual: Any, *odd: Any) -> st.SearchStrategy[Any]:
    """`usual` (a value or a strategy) 7 times in 8, else one of `odd` (values or strategies): each
    field is usually fine, so that a transaction often gets as far as the later checks."""
    usual_strategy = usual if isinstance(usual, st.SearchStrategy) else st.just(usual)
    odd_strategy = st.one_of(*(o if isinstance(o, st.SearchStrategy) else st.just(o) for o in odd))
    return st.integers(0, 7).flatmap(lambda k: usual_strategy if k else odd_strategy)


any_uint = st.integers(0, UINT256_MAX)
_withdrawal_calls = st.builds(encode_withdrawal_call, st.binary(min_size=20, max_size=20),
                              st.integers(0, 10**6) | any_uint, st.binary(max_size=70))
_addresses = mostly(st.binary(min_size=20, max_size=20), st.binary(min_size=19, max_size=21))
_keys = mostly(st.binary(min_size=32, max_size=32), st.binary(min_size=31, max_size=33))
_access_lists = st.lists(st.tuples(_addresses, st.lists(_keys, max_size=3).map(tuple)), max_size=3).map(tuple)
random_fields = st.builds(
    UnsignedTransaction,
    chain_id=mostly(CHAIN, 1, 0, UINT256_MAX),
    nonce=mostly(st.integers(0, MAX_NONCE), MAX_NONCE + 1, any_uint),
    max_priority_fee_per_gas=mostly(st.integers(0, GWEI), 2 * GWEI + 1, any_uint),
    max_fee_per_gas=mostly(2 * GWEI, 0, GWEI, any_uint),
    gas_limit=mostly(1_000_000, 0, 20_999, 21_000, 30_000, BLOCK_GAS_LIMIT, BLOCK_GAS_LIMIT + 1, any_uint),
    to=mostly(st.sampled_from((TO, MESSAGE_PASSER)), None, TO[:19], TO + b"\x00"),
    value=st.sampled_from((0, 1, 10**18)) | any_uint,
    data=st.one_of(st.binary(max_size=80), _withdrawal_calls, st.builds(mutate, _withdrawal_calls, random_edits)),
    access_list=st.just(()) | _access_lists,
)
_edge_r = (0, 1, 5, SECP256K1_N - 1, SECP256K1_N, UINT256_MAX)
_edge_s = (0, 1, SECP256K1_N // 2, SECP256K1_N // 2 + 1, SECP256K1_N - 1, SECP256K1_N)
_signatures = mostly(
    st.sampled_from(KEYS),  # a real signature by a dev key
    st.tuples(mostly(st.sampled_from((0, 1)), 2, 27), st.sampled_from(_edge_r) | st.integers(1, SECP256K1_N - 1),
              st.sampled_from(_edge_s) | st.integers(1, SECP256K1_N - 1)),
    st.sampled_from(KEYS).map(lambda key: (key,)),  # a real signature's high-s twin
)


def encode_random(fields: UnsignedTransaction, signature: bytes | tuple[bytes] | tuple[int, int, int]) -> bytes:
    """Signed by a key; or by a key, then s -> n - s (the other valid signature, refused as high-s);
    or with the given (y_parity, r, s)."""
    if isinstance(signature, bytes):
        return sign_transaction(fields, signature)
    if len(signature) == 1:
        raw = sign_transaction(fields, signature[0])
        try:
            tx = decode_transaction(raw, fields.chain_id)
        except TxRejected:
            return raw  # refused before the signature is looked at: no twin to make
        return fields.encode_signed(1 - tx.y_parity, tx.r, SECP256K1_N - tx.s)
    return fields.encode_signed(*signature)


#: Well-formed RLP with values at and around every rule's boundaries: the order of the checks.
random_transactions = st.builds(encode_random, random_fields, _signatures)
#: The fixtures only serve eth_calls (no state changes), so sharing them across examples is sound.
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


async def check_batch(l1: L1Client, harness: Contract, raws: Sequence[bytes]) -> None:
    vectors = [Vector(f"random #{i}: {raw.hex()[:400]}", raw) for i, raw in enumerate(raws)]
    problems = await solidity_disagreements(l1, harness, vectors)
    assert not problems, "\n".join(problems)


@FUZZ
@given(raws=st.lists(random_bytes, min_size=1, max_size=30))
async def test_random_bytes(l1: L1Client, harness: Contract, raws: list[bytes]) -> None:
    await check_batch(l1, harness, raws)


@FUZZ
@given(raws=st.lists(mutated, min_size=1, max_size=30))
async def test_random_mutations(l1: L1Client, harness: Contract, raws: list[bytes]) -> None:
    await check_batch(l1, harness, raws)


@FUZZ
@given(raws=st.lists(random_transactions, min_size=1, max_size=30))
async def test_random_field_values(l1: L1Client, harness: Contract, raws: list[bytes]) -> None:
    await check_batch(l1, harness, raws)
