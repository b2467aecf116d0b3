"""L2 transactions: standard EIP-1559 (type 2) transactions, as any Ethereum wallet signs them.

Wire format (EIP-2718 envelope, EIP-1559 payload), exactly what eth-account, ethers.js and
go-ethereum produce::

    0x02 || rlp([chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas, gas_limit, to,
                 value, data, access_list, y_parity, r, s])

    signing hash = keccak256(0x02 || rlp([the first nine fields]))
    tx hash      = keccak256(the whole raw transaction)

This is where a transaction is validated: statelessly, by ``decode_transaction`` (shape, chain
id, fees against each other, gas limit against the block's and the intrinsic gas, withdrawal
calldata, signature), once, whichever way a transaction comes in (a client, L1's forced queue, a
batch being derived). What depends on state is the state transition's (``_execution``), and the
sequencer's pool adds only its own admission limits.

Decoding is strict: only canonical RLP (no leading zero bytes in integers or lengths, no
long form where the short one fits, exactly 12 fields, nothing after the list), so one
transaction has exactly one encoding and one hash. Every refusal is a ``TxRejected`` with a
stable reason (``_reasons.Reason``), a message for humans and, when one field is at fault, its name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from itertools import repeat
from typing import NamedTuple, cast

from ._native import configure_rules, decode_common
from ._reasons import Reason
from ._rules import (
    ADDRESS_SIZE,
    BLOCK_GAS_LIMIT,
    HASH_SIZE,
    MAX_NONCE,
    MAX_TX_SIZE,
    MESSAGE_PASSER,
    SECP256K1_HALF_N,
    SECP256K1_N,
    TX_BASE_GAS,
    TX_DATA_NON_ZERO_GAS,
    TX_DATA_ZERO_GAS,
    TX_TYPE_EIP1559,
    ZERO_ADDRESS,
    intrinsic_gas,
)
from ._secp256k1 import recover_senders
from ._withdrawal import MalformedWithdrawal, decode_withdrawal_call

AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]


class TxRejected(Exception):
    """A transaction refused by a rule. ``reason`` is stable; ``message`` is for humans."""

    reason: Reason
    message: str
    #: The transaction field at fault (the names of ``Transaction``'s fields), if one is.
    field: str | None

    def __init__(self, reason: Reason, message: str, field: str | None = None) -> None:
        super().__init__(reason, message, field)  # args kept: the exception pickles
        self.reason = reason
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class Transaction(NamedTuple):
    """A decoded, signature-checked EIP-1559 transaction. Amounts in wei, addresses 20 bytes.

    Immutable. A NamedTuple, not a frozen dataclass: one is built per incoming transaction,
    and a frozen dataclass of 15 fields costs ~1.4 us to build here, a tuple ~0.2 us.
    """

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas_limit: int
    #: Recipient; None would be a contract creation, which an L2 without an EVM rejects.
    to: bytes | None
    value: int
    data: bytes
    #: Kept as decoded: ((address, (storage_key, ...)), ...); charged for, otherwise unused.
    access_list: tuple[tuple[bytes, tuple[bytes, ...]], ...]
    y_parity: int
    r: int
    s: int
    #: Recovered from the signature.
    sender: bytes
    #: keccak256 of the raw typed transaction (0x02 || rlp(...)), as wallets and explorers show it.
    hash: bytes
    raw: bytes

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def intrinsic_gas(self) -> int:
        """The gas this transaction uses (no L2 EVM: always exactly its intrinsic gas)."""
        return intrinsic_gas(self.data, self.access_list)

    def effective_tip(self, base_fee: int) -> int:
        """What the block producer earns per gas at ``base_fee`` (negative: not includable)."""
        return min(self.max_priority_fee_per_gas, self.max_fee_per_gas - base_fee)


# --- decoding ------------------------------------------------------------------------------


def decode_transaction(raw: bytes, chain_id: int, *, max_size: int = MAX_TX_SIZE) -> Transaction:
    """Decode and statelessly validate one raw transaction; raises TxRejected."""
    (decoded,) = _decode_batch((raw,), chain_id, max_size)
    if isinstance(decoded, TxRejected):
        raise decoded
    return decoded


def decode_transactions(
    raws: Iterable[bytes], chain_id: int, *, max_size: int = MAX_TX_SIZE, executor: Executor | None = None
) -> list[Transaction | TxRejected]:
    """Decode a batch: one Transaction or TxRejected per item, in order (the hot path).

    With ``executor`` (a thread pool), a large batch is split across its threads: sender
    recovery, ~80% of the time, runs in C without the GIL (2 threads on this 2-core machine:
    ~1.4-1.9x, see bench/sequencer_core.py).
    """
    items = raws if isinstance(raws, Sequence) else list(raws)
    if executor is None or len(items) < 2 * _PARALLEL_CHUNK:
        return _decode_batch(items, chain_id, max_size)
    chunks = [items[i : i + _PARALLEL_CHUNK] for i in range(0, len(items), _PARALLEL_CHUNK)]
    out: list[Transaction | TxRejected] = []
    for part in executor.map(_decode_batch, chunks, repeat(chain_id), repeat(max_size)):
        out.extend(part)
    return out


#: Items per thread-pool task: large enough that scheduling (~20 us a task) stays negligible.
_PARALLEL_CHUNK = 256


def _decode_batch(raws: Sequence[bytes], chain_id: int, max_size: int) -> list[Transaction | TxRejected]:
    """The common shape in C without the GIL (``_native.decode_common``); the rest in Python."""
    out: list[Transaction | TxRejected | None] = decode_common(
        raws if isinstance(raws, list) else list(raws), chain_id, max_size, Transaction)
    if None in out:  # not accepted by the common path: Python decides, with the reason if refused
        slow = [i for i, item in enumerate(out) if item is None]
        for i, item in zip(slow, _decode_checked([raws[i] for i in slow], chain_id, max_size), strict=True):
            out[i] = item
    return cast(list[Transaction | TxRejected], out)


# The stateless rules decode_common checks (it only ever accepts; refusals are _check's).
configure_rules(SECP256K1_N.to_bytes(32, "big"), SECP256K1_HALF_N.to_bytes(32, "big"), MAX_NONCE, BLOCK_GAS_LIMIT,
                TX_BASE_GAS, TX_DATA_ZERO_GAS, TX_DATA_NON_ZERO_GAS, MESSAGE_PASSER)


def _decode_checked(raws: Sequence[bytes], chain_id: int, max_size: int) -> list[Transaction | TxRejected]:
    """Every check in Python, with the GIL; then the whole batch's hashing and recovery in one C call."""
    out: list[Transaction | TxRejected] = []
    append = out.append
    check = _check
    checked: list[tuple[int, _Fields]] = []
    jobs: list[tuple[bytes, int, int]] = []
    for raw in raws:
        try:
            fields = check(raw, chain_id, max_size)
        except TxRejected as rejected:
            append(rejected)
            continue
        checked.append((len(out), fields))
        jobs.append((raw, fields.body, fields.unsigned_end))
        append(_UNRECOVERED)
    if not jobs:
        return out
    for (position, fields), (raw, _, _), (sender, tx_hash) in zip(checked, jobs, recover_senders(jobs), strict=True):
        if sender is None:
            out[position] = TxRejected(Reason.INVALID_SIGNATURE, "no public key recovers from this signature")
        else:
            out[position] = _new(Transaction, (*fields[:_TX_FIELDS], sender, tx_hash, raw))
    return out


def _check(raw: bytes, chain_id: int, max_size: int) -> _Fields:
    """The fields of a transaction that passes every stateless rule but its signature's recovery."""
    size = len(raw)
    if size > max_size:
        raise TxRejected(Reason.OVERSIZED, f"transaction of {size} bytes exceeds the {max_size}-byte limit")
    if size == 0:
        raise TxRejected(Reason.MALFORMED_RLP, "empty transaction")
    tx_type = raw[0]
    if tx_type != TX_TYPE_EIP1559:
        raise _unsupported_type(tx_type)

    fields = _fields_strict(raw, size)
    tx_chain_id, nonce, tip_cap, fee_cap, gas_limit, to, _value, data, access_list, y_parity, r, s, _, _ = fields

    if tx_chain_id != chain_id:
        raise TxRejected(
            Reason.WRONG_CHAIN_ID, f"chain id {tx_chain_id}, this chain is {chain_id} (EIP-155)", "chain_id"
        )
    if nonce > MAX_NONCE:
        raise TxRejected(Reason.FIELD_OUT_OF_RANGE, "nonce must stay below 2**64 - 1 (EIP-2681)", "nonce")
    if len(to) != ADDRESS_SIZE:
        if not to:
            raise TxRejected(
                Reason.CONTRACT_CREATION_NOT_SUPPORTED, "contract creation (empty 'to'): this L2 has no EVM", "to"
            )
        raise TxRejected(Reason.INVALID_ADDRESS, f"'to' is {len(to)} bytes, an address is 20", "to")
    if tip_cap > fee_cap:
        raise TxRejected(
            Reason.TIP_ABOVE_FEE_CAP,
            f"max_priority_fee_per_gas {tip_cap} > max_fee_per_gas {fee_cap}",
            "max_priority_fee_per_gas",
        )
    if gas_limit > BLOCK_GAS_LIMIT:
        raise TxRejected(
            Reason.GAS_LIMIT_TOO_HIGH,
            f"gas limit {gas_limit} exceeds the block gas limit {BLOCK_GAS_LIMIT}",
            "gas_limit",
        )
    needed = intrinsic_gas(data, access_list) if data or access_list else TX_BASE_GAS
    if gas_limit < needed:
        raise TxRejected(Reason.INTRINSIC_GAS_TOO_LOW, f"gas limit {gas_limit} < intrinsic gas {needed}", "gas_limit")
    if to == MESSAGE_PASSER:
        try:
            decode_withdrawal_call(data, ZERO_ADDRESS)
        except MalformedWithdrawal as e:
            raise TxRejected(Reason.MALFORMED_WITHDRAWAL, str(e), "data") from None

    if y_parity > 1:
        raise TxRejected(Reason.INVALID_SIGNATURE, "y_parity must be 0 or 1", "y_parity")
    if not 0 < r < SECP256K1_N:
        raise TxRejected(Reason.INVALID_SIGNATURE, "r out of range (0 < r < secp256k1n)", "r")
    if not 0 < s < SECP256K1_N:
        raise TxRejected(Reason.INVALID_SIGNATURE, "s out of range (0 < s < secp256k1n)", "s")
    if s > SECP256K1_HALF_N:
        raise TxRejected(Reason.HIGH_S, "s above secp256k1n/2 (EIP-2): use the low-s form", "s")
    return fields


#: The slot of a checked transaction in _decode_batch's output until the batch's senders are recovered.
_UNRECOVERED = TxRejected(Reason.INVALID_SIGNATURE, "not recovered")


#: NamedTuple construction (Transaction, _Fields) without the generated __new__'s argument binding.
_new = tuple.__new__


def sealed_transaction(raw: bytes, sender: bytes, tx_hash: bytes) -> Transaction:
    """A transaction this node validated and sealed, rebuilt from its raw bytes and the sender its
    block recorded, without recovering the signature again (receipts)."""
    return _new(Transaction, (*_fields_strict(raw, len(raw))[:_TX_FIELDS], sender, tx_hash, raw))


def recipient(raw: bytes) -> bytes | None:
    """The ``to`` of a raw transaction, read without recovering its sender (for receipts); None
    for a contract creation, or for bytes that do not decode."""
    if raw[:1] != bytes((TX_TYPE_EIP1559,)):
        return None
    try:
        to = _fields_strict(raw, len(raw)).to
    except TxRejected:
        return None
    return to or None


def _unsupported_type(tx_type: int) -> TxRejected:
    if tx_type >= 0xC0:
        what = "a legacy (pre-EIP-2718) transaction"
    elif tx_type == 0x01:
        what = "an EIP-2930 (type 1) transaction"
    elif tx_type == 0x03:
        what = "an EIP-4844 (type 3, blob) transaction"
    elif tx_type == 0x04:
        what = "an EIP-7702 (type 4) transaction"
    elif tx_type < 0x80:
        what = f"an unknown transaction type 0x{tx_type:02x}"
    else:
        what = f"an invalid type byte 0x{tx_type:02x}"
    return TxRejected(Reason.TX_TYPE_NOT_SUPPORTED, f"{what}: only EIP-1559 (type 2) is accepted", "type")


class _Fields(NamedTuple):
    """A transaction's 12 fields as canonical RLP gives them (the first 12 of Transaction, in its
    order), then where they are in the raw bytes, which sender recovery hashes."""

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas_limit: int
    #: Empty for a contract creation.
    to: bytes
    value: int
    data: bytes
    access_list: AccessList
    y_parity: int
    r: int
    s: int
    #: The first byte of the list's payload.
    body: int
    #: The first byte after the access list: the nine signed fields end here.
    unsigned_end: int


#: The fields _Fields shares with Transaction (its first ones, in the same order).
_TX_FIELDS = len(Transaction._fields) - 3  # all but sender, hash, raw


def _fields_strict(raw: bytes, size: int) -> _Fields:
    """Any canonical encoding of the 12 fields; raises TxRejected naming the first fault."""
    body, end = _list(raw, 1, size, None)
    if end != size:
        raise TxRejected(Reason.MALFORMED_RLP, f"{size - end} trailing bytes after the transaction")
    p = body
    chain_id, p = _int(raw, p, end, "chain_id")
    nonce, p = _int(raw, p, end, "nonce")
    tip_cap, p = _int(raw, p, end, "max_priority_fee_per_gas")
    fee_cap, p = _int(raw, p, end, "max_fee_per_gas")
    gas_limit, p = _int(raw, p, end, "gas_limit")
    to, p = _str(raw, p, end, "to")
    value, p = _int(raw, p, end, "value")
    data, p = _str(raw, p, end, "data")
    access_list, p = _access_list(raw, p, end)
    unsigned_end = p
    y_parity, p = _int(raw, p, end, "y_parity")
    r, p = _int(raw, p, end, "r")
    s, p = _int(raw, p, end, "s")
    if p != end:
        raise TxRejected(Reason.MALFORMED_RLP, "a type-2 transaction has exactly 12 fields")
    return _new(_Fields, (chain_id, nonce, tip_cap, fee_cap, gas_limit, to, value, data, access_list, y_parity, r, s,
                          body, unsigned_end))


# Canonical RLP readers over ``raw[pos:end]``. Each returns (value, position after the item).


def _malformed(field: str | None, what: str) -> TxRejected:
    return TxRejected(Reason.MALFORMED_RLP, f"{field}: {what}" if field else what, field)


def _missing(field: str | None) -> TxRejected:
    return _malformed(field, "missing (a type-2 transaction has exactly 12 fields)")


def _int(raw: bytes, pos: int, end: int, field: str) -> tuple[int, int]:
    """A canonical unsigned integer of at most 256 bits."""
    if pos >= end:
        raise _missing(field)
    b = raw[pos]
    if b < 0x80:
        if b == 0:
            raise _malformed(field, "zero must be encoded as the empty string (0x80)")
        return b, pos + 1
    if b <= 0xA0:  # a string of 0..32 bytes
        start = pos + 1
        stop = start + b - 0x80
        if stop > end:
            raise _malformed(field, "truncated")
        if stop == start:
            return 0, stop
        first = raw[start]
        if first == 0:
            raise _malformed(field, "integer with leading zero bytes")
        if stop == start + 1 and first < 0x80:
            raise _malformed(field, "single byte below 0x80 must be encoded as itself")
        return int.from_bytes(raw[start:stop], "big"), stop
    if b < 0xC0:
        raise TxRejected(Reason.FIELD_OUT_OF_RANGE, f"{field} exceeds 256 bits", field)
    raise _malformed(field, "expected an integer, got a list")


def _str(raw: bytes, pos: int, end: int, field: str) -> tuple[bytes, int]:
    """A canonical byte string."""
    if pos >= end:
        raise _missing(field)
    b = raw[pos]
    if b < 0x80:
        return raw[pos : pos + 1], pos + 1
    if b < 0xB8:
        start = pos + 1
        stop = start + b - 0x80
        if stop > end:
            raise _malformed(field, "truncated")
        if stop == start + 1 and raw[start] < 0x80:
            raise _malformed(field, "single byte below 0x80 must be encoded as itself")
        return raw[start:stop], stop
    if b < 0xC0:
        start, stop = _long_length(raw, pos, b - 0xB7, end, field)
        return raw[start:stop], stop
    raise _malformed(field, "expected a byte string, got a list")


def _list(raw: bytes, pos: int, end: int, field: str | None) -> tuple[int, int]:
    """A canonical list header: (first byte of its payload, first byte after it)."""
    if pos >= end:
        raise _missing(field)
    b = raw[pos]
    if b < 0xC0:
        raise _malformed(field, "expected a list, got a byte string")
    if b < 0xF8:
        stop = pos + 1 + b - 0xC0
        if stop > end:
            raise _malformed(field, "truncated list")
        return pos + 1, stop
    return _long_length(raw, pos, b - 0xF7, end, field)


def _long_length(raw: bytes, pos: int, length_size: int, end: int, field: str | None) -> tuple[int, int]:
    """Payload bounds of a long-form item (a length of length_size bytes follows the prefix)."""
    start = pos + 1 + length_size
    if start > end:
        raise _malformed(field, "truncated length")
    if raw[pos + 1] == 0:
        raise _malformed(field, "length with leading zero bytes")
    length = int.from_bytes(raw[pos + 1 : start], "big")
    if length < 56:
        raise _malformed(field, "long form for a length below 56")
    stop = start + length
    if stop > end:
        raise _malformed(field, "truncated")
    return start, stop


def _access_list(raw: bytes, pos: int, end: int) -> tuple[AccessList, int]:
    field = "access_list"
    start, stop = _list(raw, pos, end, field)
    entries: list[tuple[bytes, tuple[bytes, ...]]] = []
    p = start
    while p < stop:
        entry_start, entry_stop = _list(raw, p, stop, field)
        address, q = _str(raw, entry_start, entry_stop, field)
        if len(address) != ADDRESS_SIZE:
            raise TxRejected(Reason.INVALID_ADDRESS, f"access list address of {len(address)} bytes", field)
        keys_start, keys_stop = _list(raw, q, entry_stop, field)
        if keys_stop != entry_stop:
            raise _malformed(field, "an access list entry is [address, [storage keys]]")
        keys: list[bytes] = []
        k = keys_start
        while k < keys_stop:
            key, k = _str(raw, k, keys_stop, field)
            if len(key) != HASH_SIZE:
                raise _malformed(field, f"storage key of {len(key)} bytes, must be 32")
            keys.append(key)
        entries.append((address, tuple(keys)))
        p = entry_stop
    return tuple(entries), stop
