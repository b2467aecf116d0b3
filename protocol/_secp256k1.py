"""Sender recovery for a batch: secp256k1 public-key recovery, the Ethereum address, the tx hash.

The hot path of the sequencer. libsecp256k1's recovery costs ~40 us a transaction here, and it
already runs in C; what Python added was the GIL. A cffi call per transaction released the GIL
and then waited to take it back behind the event loop: about 60% of a decode thread's wall time
under load. ``recover_senders`` (``_native.c``) hashes and recovers a whole batch in one call
that releases the GIL once, so two decode threads recover on both cores while the event loop
keeps running.

The library is coincurve's own libsecp256k1: ``_native`` is handed its context and the
addresses of its parse / recover / serialize functions once, here at import, so the extension
needs no library of its own to build against. coincurve's context is created for signing and
verification; recovery only reads it, which libsecp256k1 allows from any number of threads.
"""

from __future__ import annotations

from typing import Any

from coincurve._libsecp256k1 import ffi, lib  # type: ignore[import-not-found]
from coincurve.context import GLOBAL_CONTEXT

from . import _native


def _address_of(function: str) -> int:
    return int(ffi.cast("uintptr_t", ffi.addressof(lib, function)))


_CTX: Any = GLOBAL_CONTEXT.ctx
_native.configure(
    int(ffi.cast("uintptr_t", _CTX)),
    _address_of("secp256k1_ecdsa_recoverable_signature_parse_compact"),
    _address_of("secp256k1_ecdsa_recover"),
    _address_of("secp256k1_ec_pubkey_serialize"),
    lib.SECP256K1_EC_UNCOMPRESSED,
)

#: ``recover_senders([(raw, body, unsigned_end), ...]) -> [(sender or None, tx_hash), ...]``.
#:
#: ``raw`` is a type-2 transaction the decoder has checked (canonical RLP, y_parity 0 or 1,
#: 0 < r, s < n); ``body`` is where its list's items start and ``unsigned_end`` where its nine
#: signed fields end. The signing hash is keccak(0x02 || list header || raw[body:unsigned_end]);
#: ``sender`` is None when no public key recovers from the signature.
recover_senders = _native.recover_senders
