"""Sender recovery (secp256k1 ECDSA public-key recovery, then the Ethereum address).

The hot path of the sequencer: libsecp256k1's recovery itself costs ~40 us here, and
coincurve's ``PublicKey.from_signature_and_message`` adds ~3 us of Python around it (three
cdata allocations, a PublicKey object, a serialization). ``Recoverer`` calls the same C
function through coincurve's own cffi binding with buffers allocated once, and goes from the
recovered point straight to keccak.

One C call per transaction, not three: every cffi call releases and re-takes the GIL, and
under load each re-take can wait behind the event loop. The signature is not parsed by
``secp256k1_ecdsa_recoverable_signature_parse_compact`` but written into the struct in
libsecp256k1's own layout (r and s as little-endian scalars, then the recovery id), and the
public key is read from its struct (x and y, little-endian) instead of through
``secp256k1_ec_pubkey_serialize``. Both layouts are checked against those two functions at
import; if this build of the library disagrees, the three-call path is used instead. The
caller guarantees 0 < r, s < n (the parse's overflow check); libsecp256k1 refuses zeros itself.

One Recoverer per thread: its buffers are reused by every call.
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
    """Recovers Ethereum addresses from (r, s, recovery id, 32-byte message hash)."""

    __slots__ = ("_length", "_point", "_point_bytes", "_public_key", "_public_key_bytes", "_signature",
                 "_signature_bytes")

    def __init__(self) -> None:
        self._signature: Any = ffi.new("secp256k1_ecdsa_recoverable_signature *")
        self._signature_bytes: Any = ffi.buffer(self._signature)
        self._public_key: Any = ffi.new("secp256k1_pubkey *")
        self._public_key_bytes: Any = ffi.buffer(self._public_key)
        self._point: Any = ffi.new("unsigned char[65]")
        self._point_bytes: Any = ffi.buffer(self._point, 65)
        self._length: Any = ffi.new("size_t *")

    def address(self, r: int, s: int, recovery_id: int, message_hash: bytes) -> bytes | None:
        """The signer's 20-byte address, or None when no public key recovers.

        ``r`` and ``s`` in 0 < r, s < n (the caller checks), ``recovery_id`` 0 or 1.
        """
        self._signature_bytes[:] = r.to_bytes(32, "little") + s.to_bytes(32, "little") + _RECOVERY_ID[recovery_id]
        if not _recover(_CTX, self._public_key, self._signature, message_hash):
            return None
        # address = last 20 bytes of keccak256(x || y), big-endian coordinates
        point = self._public_key_bytes[:]
        address: bytes = keccak_256(point[31::-1] + point[:31:-1]).digest()[12:]
        return address

    def address_by_the_book(self, r: int, s: int, recovery_id: int, message_hash: bytes) -> bytes | None:
        """:meth:`address` through libsecp256k1's parse and serialize functions (three C calls)."""
        rs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if not _parse_compact(_CTX, self._signature, rs, recovery_id):
            return None
        if not _recover(_CTX, self._public_key, self._signature, message_hash):
            return None
        self._length[0] = 65
        _serialize(_CTX, self._point, self._length, self._public_key, _UNCOMPRESSED)
        address: bytes = keccak_256(self._point_bytes[1:]).digest()[12:]
        return address


_RECOVERY_ID = (b"\x00", b"\x01", b"\x02", b"\x03")


def _layout_agrees() -> bool:
    """Whether this libsecp256k1 stores signatures and keys as :meth:`Recoverer.address` assumes."""
    # A fixed signature (r, s, recovery id) over a fixed hash; any valid one will do.
    message_hash = bytes(range(32))
    r = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798  # G.x: a valid x coordinate
    s = 0x1D2C3B4A5968778695A4B3C2D1E0F00112233445566778899AABBCCDDEEFF001
    probe = Recoverer()
    rs = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if not _parse_compact(_CTX, probe._signature, rs, 1):
        return False
    if probe._signature_bytes[:] != r.to_bytes(32, "little") + s.to_bytes(32, "little") + b"\x01":
        return False
    expected = probe.address_by_the_book(r, s, 1, message_hash)
    return expected is not None and probe.address(r, s, 1, message_hash) == expected


if not _layout_agrees():  # pragma: no cover - another build of libsecp256k1
    Recoverer.address = Recoverer.address_by_the_book  # type: ignore[method-assign]
