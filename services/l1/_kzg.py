"""EIP-4844 blobs and KZG: commitments, versioned hashes, point-evaluation proofs (PyPI ``ckzg``).

The Ethereum KZG trusted setup ships here (``kzg_trusted_setup.txt``, public data: the one the
consensus specs and geth use; the ckzg wheel carries none, its sdist and eth-account do). Loading it
takes ~2.5 s, so it is loaded once per process, on first use: a worker that never touches blobs
never pays it (``load_setup`` lets a caller pay it off the event loop, up front).

A blob is 4096 field elements of 32 big-endian bytes, each below the BLS12-381 scalar modulus;
element ``i`` is the polynomial's value at ``z_i = w ** bitrev12(i)``, w the primitive 4096th root
of unity the specs fix (7 ** ((r - 1) / 4096) mod r). The point-evaluation precompile (0x0A) checks
one (z, y) against a versioned hash; StepVerifier computes z_i itself with the same formula, so a
prover cannot open another point.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
from typing import Any, Final

import ckzg

FIELD_ELEMENTS_PER_BLOB: Final = 4096
BYTES_PER_FIELD_ELEMENT: Final = 32
BYTES_PER_BLOB: Final = FIELD_ELEMENTS_PER_BLOB * BYTES_PER_FIELD_ELEMENT
#: The BLS12-381 scalar field's modulus: every field element is below it.
BLS_MODULUS: Final = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
#: w = 7 ** ((r - 1) / 4096): the primitive 4096th root of unity of the specs' evaluation domain.
ROOT_OF_UNITY: Final = pow(7, (BLS_MODULUS - 1) // FIELD_ELEMENTS_PER_BLOB, BLS_MODULUS)
VERSIONED_HASH_VERSION_KZG: Final = 0x01
#: Blob gas per blob (EIP-4844's GAS_PER_BLOB).
GAS_PER_BLOB: Final = 2**17

_SETUP_FILE: Final = pathlib.Path(__file__).with_name("kzg_trusted_setup.txt")


@functools.cache
def load_setup() -> Any:
    """The trusted setup, loaded once per process (~2.5 s the first time)."""
    return ckzg.load_trusted_setup(str(_SETUP_FILE), 0)


def commitment(blob: bytes) -> bytes:
    """The blob's 48-byte KZG commitment (ValueError for a blob with a non-canonical element)."""
    try:
        return bytes(ckzg.blob_to_kzg_commitment(blob, load_setup()))
    except RuntimeError as exc:
        raise ValueError(f"not a blob: {exc}") from None


def versioned_hash(kzg_commitment: bytes) -> bytes:
    """EIP-4844's kzg_to_versioned_hash: 0x01 || sha256(commitment)[1:]."""
    return bytes((VERSIONED_HASH_VERSION_KZG,)) + hashlib.sha256(kzg_commitment).digest()[1:]


def blob_proof(blob: bytes, kzg_commitment: bytes) -> bytes:
    """The blob proof a type-3 transaction's network form carries (one per blob)."""
    return bytes(ckzg.compute_blob_kzg_proof(blob, kzg_commitment, load_setup()))


def bit_reverse(index: int, bits: int = 12) -> int:
    return int(format(index, f"0{bits}b")[::-1], 2)


def evaluation_point(element: int) -> int:
    """z for field element ``element`` of a blob: w ** bitrev12(element)."""
    return pow(ROOT_OF_UNITY, bit_reverse(element), BLS_MODULUS)


def point_proof(blob: bytes, element: int) -> tuple[bytes, bytes]:
    """(proof, y) that the blob's polynomial has value y at ``evaluation_point(element)``; y is the
    element's own 32 bytes."""
    z = evaluation_point(element).to_bytes(32, "big")
    proof, y = ckzg.compute_kzg_proof(blob, z, load_setup())
    return bytes(proof), bytes(y)
