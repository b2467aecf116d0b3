"""EIP-4844 blobs and KZG: commitments, versioned hashes, point-evaluation proofs (PyPI ``ckzg``).

ckzg holds the GIL while it computes (~60 ms a blob for a commitment or a blob proof, ~0.5 s for
cell proofs; measured here), so a worker's event loop, and with it its health answers, would stall
for seconds on a 6-blob batch under load (the supervisor then kills it as hung: seen in
bench/e2e_throughput.py before this was done). Workers therefore call ``in_kzg_process`` (or the
``*_off_loop`` helpers): the work runs in spawned helper processes of the worker (spawned, never
forked: a worker holds gRPC objects; KZG_PROCESSES of them, a batch's blobs done in parallel), each
loading the setup once. ``load_setup`` is for in-process use (tests, benches, proofs).

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

import asyncio
import functools
import hashlib
import multiprocessing
import os
import pathlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final, TypeVar

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
_T = TypeVar("_T")
#: Helper processes per worker: blobs are independent, and this machine class has 2 cores.
KZG_PROCESSES: Final = min(2, os.cpu_count() or 1)
_POOL: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor:
    global _POOL
    if _POOL is None:
        # It dies with this process, even SIGKILLed: no orphan (DESIGN.md, section 2).
        _POOL = ProcessPoolExecutor(max_workers=KZG_PROCESSES, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_die_with_parent_process, initargs=(os.getpid(),))
    return _POOL


def _die_with_parent_process(parent: int) -> None:
    """Exit when the process that started this one does. Not PR_SET_PDEATHSIG (supervisor's
    die_with_parent): that fires when the *thread* that spawned the child ends, and the pool grows
    from whichever thread submits first (a step is proven in a thread of asyncio.to_thread's, which
    an event loop's end retires), which killed helpers mid-proof. The parent's pid is watched instead."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="kzg-parent-watch", daemon=True).start()


async def in_kzg_process(fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in this process's KZG helper process (started on first use; see the module notes)."""
    return await asyncio.get_running_loop().run_in_executor(_pool(), fn, *args)


def warm_up() -> None:
    """Load the setup (in the KZG process: ``in_kzg_process(warm_up)`` before the first blob is due)."""
    load_setup()


def versioned_hashes(blobs: Sequence[bytes]) -> tuple[bytes, ...]:
    """The blobs' versioned hashes (empty if one is not a blob: a non-canonical field element)."""
    try:
        return tuple(versioned_hash(commitment(blob)) for blob in blobs)
    except ValueError:
        return ()


async def versioned_hashes_off_loop(blobs: Sequence[bytes]) -> tuple[bytes, ...]:
    """``versioned_hashes`` in the KZG processes, a blob each."""
    parts = await asyncio.gather(*(in_kzg_process(versioned_hashes, (blob,)) for blob in blobs))
    return () if any(not p for p in parts) else tuple(h for (h,) in parts)


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


def cell_proofs(blob: bytes) -> tuple[bytes, ...]:
    """The blob's 128 cell proofs (EIP-7594), as a version-1 sidecar carries them (~0.5 s a blob)."""
    _, proofs = ckzg.compute_cells_and_kzg_proofs(blob, load_setup())
    return tuple(bytes(p) for p in proofs)


def bit_reverse(index: int, bits: int = 12) -> int:
    return int(format(index, f"0{bits}b")[::-1], 2)


def evaluation_point(element: int) -> int:
    """z for field element ``element`` of a blob: w ** bitrev12(element)."""
    return pow(ROOT_OF_UNITY, bit_reverse(element), BLS_MODULUS)


def point_proofs(openings: Sequence[tuple[bytes, int]]) -> list[tuple[bytes, bytes]]:
    """``point_proof`` of each (blob, element), computed in the KZG helper processes (split between
    them) while the caller waits: for a thread that must not hold the GIL that long (a 4 KB blob leaf
    is ~130 proofs of ~40 ms). Not from an event loop's thread: it blocks."""
    if not openings:
        return []
    pool, parts = _pool(), min(KZG_PROCESSES, len(openings))
    futures = [pool.submit(_point_proofs, openings[i::parts]) for i in range(parts)]
    done = [f.result() for f in futures]
    return [done[i % parts][i // parts] for i in range(len(openings))]


def blob_commitments(blobs: Sequence[bytes]) -> list[bytes]:
    """``commitment`` of each blob, computed in the KZG helper processes while the caller waits, as
    ``point_proofs`` (~60 ms a blob with the GIL held). Not from an event loop's thread: it blocks."""
    pool = _pool()
    return [f.result() for f in [pool.submit(commitment, blob) for blob in blobs]]


def _point_proofs(openings: Sequence[tuple[bytes, int]]) -> list[tuple[bytes, bytes]]:
    return [point_proof(blob, element) for blob, element in openings]


def point_proof(blob: bytes, element: int) -> tuple[bytes, bytes]:
    """(proof, y) that the blob's polynomial has value y at ``evaluation_point(element)``; y is the
    element's own 32 bytes."""
    z = evaluation_point(element).to_bytes(32, "big")
    proof, y = ckzg.compute_kzg_proof(blob, z, load_setup())
    return bytes(proof), bytes(y)
