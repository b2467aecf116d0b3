"""JSON-RPC value encoding (0x-hex quantities and data) and keccak-256.

Inside l2node, addresses are 20 raw bytes and hashes 32 raw bytes; hex exists only on the wire.
"""

from __future__ import annotations

from typing import Any

import sha3  # type: ignore[import-untyped, unused-ignore]


def keccak(data: bytes) -> bytes:
    """keccak-256, as Ethereum uses it (not NIST SHA3-256: the padding differs); the one wrapper,
    L2's too (protocol re-exports it as keccak256). safe-pysha3 directly: ~7x faster here than
    pycryptodome (what eth-hash picks), and keccak sits on every hot path (tx hashes, signing
    hashes, addresses, Merkle nodes)."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def quantity(value: int) -> str:
    """An integer as a JSON-RPC QUANTITY: 0x-hex without leading zeros."""
    if value < 0:
        raise ValueError(f"negative quantity {value}")
    return hex(value)


def data_hex(value: bytes) -> str:
    """Bytes as JSON-RPC DATA: 0x-hex, two digits per byte."""
    return "0x" + value.hex()


def to_int(value: Any) -> int:
    """A QUANTITY from a response."""
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise ValueError(f"not a hex quantity: {value!r}")
    return int(value, 16)


def to_bytes(value: Any) -> bytes:
    """DATA from a response (or from a user: 0x-prefix optional)."""
    if not isinstance(value, str):
        raise ValueError(f"not hex data: {value!r}")
    text = value[2:] if value.startswith(("0x", "0X")) else value
    return bytes.fromhex(text)


def address(value: str | bytes) -> bytes:
    """A 20-byte address from 0x-hex (any case) or bytes."""
    raw = to_bytes(value) if isinstance(value, str) else bytes(value)
    if len(raw) != 20:
        raise ValueError(f"an address is 20 bytes, got {len(raw)}")
    return raw


def checksum(addr: bytes) -> str:
    """EIP-55 mixed-case hex, for logs, files and humans."""
    plain = addr.hex()
    digest = keccak(plain.encode()).hex()
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(plain, digest[:40], strict=True))
