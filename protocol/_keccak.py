"""keccak-256, the Ethereum hash (not NIST SHA3-256: the padding differs).

safe-pysha3 is used directly: it is ~7x faster than pycryptodome (what eth-hash picks) here,
and keccak sits on every hot path (tx hashes, signing hashes, addresses, Merkle nodes).
"""

from __future__ import annotations

from sha3 import keccak_256 as _keccak_256  # type: ignore[import-untyped]

ZERO_HASH = bytes(32)


def keccak256(data: bytes) -> bytes:
    """keccak-256 digest (32 bytes) of ``data``."""
    digest: bytes = _keccak_256(data).digest()
    return digest
