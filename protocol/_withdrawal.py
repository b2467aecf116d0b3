"""L2->L1 messages (withdrawals): the calldata a transaction sends to MESSAGE_PASSER, and the
message it records.

Calldata (Optimism's ``L2ToL1MessagePasser.initiateWithdrawal``)::

    0xc2b3e5ac || abi.encode(address target, uint256 gasLimit, bytes data)

    = selector(4) | target as a 32-byte word (12 zero bytes, then 20) | gasLimit (32)
      | offset of data, exactly 0x60 (32) | len(data) (32) | data, zero-padded to 32 bytes

Only that one canonical encoding is accepted (no other offset, no dirty address or padding
bytes, no trailing bytes), so calldata and message are one-to-one. Empty calldata is a plain
withdrawal of the value to the sender itself with WITHDRAWAL_DEFAULT_GAS_LIMIT (Optimism's
receive()). Everything else is refused statelessly, at decode time (MALFORMED_WITHDRAWAL):
a transaction that reaches execution always records exactly one message.

The message, and its hash (Optimism's ``Hashing.hashWithdrawal``)::

    keccak256(abi.encode(uint256 nonce, address sender, address target, uint256 value,
                         uint256 gasLimit, bytes data))

``nonce`` is global: the number of messages recorded before this one on the chain (0, 1, 2,
...), so every message hash is unique even for identical calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._keccak import keccak256
from ._rules import INITIATE_WITHDRAWAL_SELECTOR, UINT256_MAX, WITHDRAWAL_DEFAULT_GAS_LIMIT

_WORD = 32
#: selector + target + gasLimit + offset + length: the smallest well-formed call.
_CALL_HEAD = 4 + 4 * _WORD
_DATA_OFFSET = 3 * _WORD  # data is the third argument: its tail starts after three head words


class MalformedWithdrawal(ValueError):
    """Calldata to MESSAGE_PASSER that is not a canonical initiateWithdrawal call."""


@dataclass(frozen=True, slots=True)
class WithdrawalCall:
    """The decoded arguments of a call to MESSAGE_PASSER."""

    target: bytes
    gas_limit: int
    data: bytes


@dataclass(frozen=True, slots=True)
class WithdrawalMessage:
    """An L2->L1 message, as recorded by the message passer and proven on L1 by the bridge."""

    nonce: int
    sender: bytes
    target: bytes
    value: int
    gas_limit: int
    data: bytes

    def encode(self) -> bytes:
        """abi.encode(nonce, sender, target, value, gasLimit, data): the hash preimage."""
        return (
            self.nonce.to_bytes(_WORD, "big")
            + _address_word(self.sender)
            + _address_word(self.target)
            + self.value.to_bytes(_WORD, "big")
            + self.gas_limit.to_bytes(_WORD, "big")
            + (6 * _WORD).to_bytes(_WORD, "big")  # offset of data: after the six head words
            + _bytes_tail(self.data)
        )

    def hash(self) -> bytes:
        """The canonical message hash (a leaf of the message-passer tree)."""
        return keccak256(self.encode())


def encode_withdrawal_call(target: bytes, gas_limit: int, data: bytes = b"") -> bytes:
    """Calldata for a transaction to MESSAGE_PASSER (what tools and tests send)."""
    if len(target) != 20 or not 0 <= gas_limit <= UINT256_MAX:
        raise ValueError("target must be 20 bytes and gas_limit a uint256")
    return (
        INITIATE_WITHDRAWAL_SELECTOR
        + _address_word(target)
        + gas_limit.to_bytes(_WORD, "big")
        + _DATA_OFFSET.to_bytes(_WORD, "big")
        + _bytes_tail(data)
    )


def decode_withdrawal_call(calldata: bytes, sender: bytes) -> WithdrawalCall:
    """Decode calldata sent to MESSAGE_PASSER; raises MalformedWithdrawal unless canonical."""
    if not calldata:
        return WithdrawalCall(sender, WITHDRAWAL_DEFAULT_GAS_LIMIT, b"")
    if len(calldata) < _CALL_HEAD:
        raise MalformedWithdrawal(f"calldata of {len(calldata)} bytes: initiateWithdrawal needs at least {_CALL_HEAD}")
    if calldata[:4] != INITIATE_WITHDRAWAL_SELECTOR:
        raise MalformedWithdrawal("unknown selector: only initiateWithdrawal(address,uint256,bytes) (0xc2b3e5ac)")
    if any(calldata[4:16]):
        raise MalformedWithdrawal("target: not an address (its 12 high bytes must be zero)")
    if int.from_bytes(calldata[68:100], "big") != _DATA_OFFSET:
        raise MalformedWithdrawal("data: non-canonical offset (must be 0x60)")
    length = int.from_bytes(calldata[100:132], "big")
    padded = -(-length // _WORD) * _WORD
    if len(calldata) != _CALL_HEAD + padded:
        raise MalformedWithdrawal(f"data: length {length} does not match the calldata size")
    end = _CALL_HEAD + length
    if any(calldata[end:]):
        raise MalformedWithdrawal("data: non-zero padding")
    return WithdrawalCall(calldata[16:36], int.from_bytes(calldata[36:68], "big"), calldata[_CALL_HEAD:end])


def _address_word(address: bytes) -> bytes:
    return bytes(12) + address


def _bytes_tail(data: bytes) -> bytes:
    """ABI tail of a ``bytes`` value: its length word, then the data zero-padded to 32 bytes."""
    return len(data).to_bytes(_WORD, "big") + data + bytes(-len(data) % _WORD)
