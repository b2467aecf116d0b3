"""Sender recovery (secp256k1 ECDSA public-key recovery, then the Ethereum address).

The hot path of the sequencer: libsecp256k1's recovery itself costs ~40 us here, and
coincurve's ``PublicKey.from_signature_and_message`` adds ~3 us of Python around it (three
cdata allocations, a PublicKey object, a serialization). ``Recoverer`` calls the same C
functions through coincurve's own cffi binding with buffers allocated once, and goes from
the 64-byte uncompressed point straight to keccak. One Recoverer per thread: its buffers
are reused by every call.
"""

from __future__ import annotations

from typing import Any

from coincurve._libsecp256k1 import ffi, lib  # type: ignore[import-not-found]
from coincurve.context import GLOBAL_CONTEXT
from sha3 import keccak_256  # type: ignore[import-untyped]

_CTX: Any = GLOBAL_CONTEXT.ctx
_UNCOMPRESSED: int = lib.SECP256K1_EC_UNCOMPRESSED
_parse_compact = lib.secp256k1_ecdsa_recoverable_signature_parse_compact
_recover = lib.secp256k1_ecdsa_recover
_serialize = lib.secp256k1_ec_pubkey_serialize


class Recoverer:
    """Recovers Ethereum addresses from (r || s, recovery id, 32-byte message hash)."""

    __slots__ = ("_length", "_point", "_point_bytes", "_public_key", "_signature")

    def __init__(self) -> None:
        self._signature: Any = ffi.new("secp256k1_ecdsa_recoverable_signature *")
        self._public_key: Any = ffi.new("secp256k1_pubkey *")
        self._point: Any = ffi.new("unsigned char[65]")
        self._point_bytes: Any = ffi.buffer(self._point, 65)
        self._length: Any = ffi.new("size_t *")

    def address(self, rs: bytes, recovery_id: int, message_hash: bytes) -> bytes | None:
        """The signer's 20-byte address, or None when no public key recovers.

        ``rs`` is r || s (32 bytes each, big-endian), ``recovery_id`` 0 or 1.
        """
        if not _parse_compact(_CTX, self._signature, rs, recovery_id):
            return None
        if not _recover(_CTX, self._public_key, self._signature, message_hash):
            return None
        self._length[0] = 65
        _serialize(_CTX, self._point, self._length, self._public_key, _UNCOMPRESSED)
        # address = last 20 bytes of keccak256(x || y) (the point without its 0x04 prefix)
        address: bytes = keccak_256(self._point_bytes[1:]).digest()[12:]
        return address
