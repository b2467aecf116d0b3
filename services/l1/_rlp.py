"""RLP encoding (the Ethereum wire format of transactions, and of L2 batches): three functions
over already-encoded items, so an encoder builds bytes directly, with no intermediate tree."""

from __future__ import annotations

from collections.abc import Iterable


def rlp_int(value: int) -> bytes:
    """RLP of a non-negative integer (big-endian, no leading zeros; zero is the empty string)."""
    if value < 0:
        raise ValueError("RLP integers are unsigned")
    return rlp_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def rlp_bytes(data: bytes) -> bytes:
    """RLP of a byte string."""
    if len(data) == 1 and data[0] < 0x80:
        return data
    return rlp_frame(0x80, data)


def rlp_list(items: Iterable[bytes]) -> bytes:
    """RLP of a list of already-encoded items."""
    return rlp_frame(0xC0, b"".join(items))


def rlp_frame(offset: int, payload: bytes) -> bytes:
    """A string (offset 0x80) or list (0xC0) header followed by its payload."""
    n = len(payload)
    if n < 56:
        return bytes((offset + n,)) + payload
    len_bytes = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(len_bytes),)) + len_bytes + payload
