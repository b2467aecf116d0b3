"""Pages a forked worker writes as it starts, copied before it is asked to start.

A child forked from the zygote shares the zygote's memory copy-on-write: the first write to each
shared page (a reference count going up is a write) faults and copies it. A worker's start writes
~4,000 such pages (~16 MB; ~4 us each here: half its kill -> SERVING). So each child, once it is
serving, records which inherited pages it made its own (``record``: /proc/self/pagemap's
"exclusively mapped" bit), once per child id, in a log the zygote creates; and a warm process,
waiting for its orders, faults the union of those pages in (``populate``: MADV_POPULATE_WRITE),
off the critical path. It copies only what some worker's start wrote, not the whole zygote.

The log is a memfd shared by the zygote and every fork (no file to clean up); records are
appended under flock. Linux only: elsewhere, or on an older kernel, both calls do nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import fcntl
import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterator
from typing import Final

#: madvise(2) advice: fault the range in, writable (Linux 5.14+).
MADV_POPULATE_WRITE: Final = 23
_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: /proc/self/pagemap: page present; page exclusively mapped (this process's own copy).
_PRESENT: Final = 1 << 63
_EXCLUSIVE: Final = 1 << 56
_HEAD: Final = struct.Struct("<HI")  # len(child id), number of runs
_RUN: Final = struct.Struct("<QQ")  # first address, pages

#: The log this process records into, and as which child: set in a child of the zygote.
_log: tuple[int, str] | None = None


def create_log() -> int | None:
    """The zygote's log (a memfd every fork inherits; closed on exec), or None where there is none."""
    if not sys.platform.startswith("linux") or not hasattr(os, "memfd_create"):
        return None
    return os.memfd_create("warm-pages")


def become(fd: int | None, child_id: str) -> None:
    """In a forked child: record into ``fd`` as ``child_id`` (see :func:`record`)."""
    global _log
    _log = None if fd is None else (fd, child_id)


def record() -> None:
    """Once serving: append the inherited pages this process has written so far, unless a process
    of this child id already did (in this zygote's life). Cheap (~2 ms); best effort."""
    if _log is None:
        return
    fd, child_id = _log
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = os.pread(fd, os.fstat(fd).st_size, 0)
            if child_id in (cid for cid, _ in _records(data)):
                return
            runs = list(_written())
            name = child_id.encode()
            body = _HEAD.pack(len(name), len(runs)) + name + b"".join(_RUN.pack(a, n) for a, n in runs)
            os.pwrite(fd, body, len(data))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def populate(fd: int | None, done: int, interrupted: Callable[[], bool]) -> int:
    """In a warm process: fault in every page the log names (clipped to this process's writable
    private mappings), if the log grew past ``done`` bytes; returns the bytes now read. Stops as
    soon as ``interrupted()`` says so (orders came: starting the worker comes first)."""
    if fd is None:
        return done
    try:
        # No lock: a warm process may be slow to get a CPU on a busy machine, and a worker's record()
        # must not wait for it. A record being appended may be read cut short: _records leaves it out,
        # and the next call reads it whole (``done`` stays before it).
        size = os.fstat(fd).st_size
        if size == done:
            return done
        data = os.pread(fd, size, 0)
        madvise = _madvise()
    except (OSError, AttributeError):
        return done
    records = list(_records(data))
    size = sum(_HEAD.size + len(cid.encode()) + len(runs) * _RUN.size for cid, runs in records)  # whole ones
    wanted = sorted({start // _PAGE + i for _, runs in records for start, pages in runs for i in range(pages)})
    for lo, hi in _writable():  # another process's new mappings may lie anywhere: only ours count
        first, last = bisect.bisect_left(wanted, lo // _PAGE), bisect.bisect_left(wanted, hi // _PAGE)
        for page, pages in _runs(wanted[first:last]):
            if interrupted():
                return done
            madvise(page * _PAGE, pages * _PAGE, MADV_POPULATE_WRITE)  # an error (old kernel): nothing done
    return size


def _madvise() -> Callable[[int, int, int], int]:
    fn = ctypes.CDLL(None, use_errno=True).madvise
    fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    fn.restype = ctypes.c_int
    return fn


def _records(data: bytes) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    """The log's records; a record cut short (being appended as it was read) ends them."""
    at = 0
    while at + _HEAD.size <= len(data):
        length, count = _HEAD.unpack_from(data, at)
        at += _HEAD.size
        end = at + length + count * _RUN.size
        if end > len(data):
            return
        name = data[at:at + length].decode(errors="replace")
        at += length
        runs = [_RUN.unpack_from(data, at + i * _RUN.size) for i in range(count)]
        at = end
        yield name, runs


def _runs(pages: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted page numbers as runs: (first page, how many)."""
    first, count = -1, 0
    for page in pages:
        if page == first + count:
            count += 1
            continue
        if count:
            yield first, count
        first, count = page, 1
    if count:
        yield first, count


def _writable() -> list[tuple[int, int]]:
    """This process's private writable mappings (heap, arenas, libraries' data), not the stack."""
    out = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] in ("[stack]", "[vvar]", "[vsyscall]")):
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            out.append((lo, hi))
    return out


def _written() -> Iterator[tuple[int, int]]:
    """Runs (first address, pages) of this process's own pages in its private writable mappings."""
    with open("/proc/self/pagemap", "rb", buffering=0) as pagemap:
        for lo, hi in _writable():
            pagemap.seek(lo // _PAGE * 8)
            entries = array("Q", pagemap.read((hi - lo) // _PAGE * 8))
            run_start, run = 0, 0
            for i, entry in enumerate(entries):
                if entry & _PRESENT and entry & _EXCLUSIVE:
                    if run == 0:
                        run_start = lo + i * _PAGE
                    run += 1
                elif run:
                    yield run_start, run
                    run = 0
            if run:
                yield run_start, run
