"""The pages one fork wrote are copied by the next before it needs them (supervisor._warm_pages),
in real forks of this process, read back from the kernel's /proc/self/pagemap."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from supervisor import _warm_pages

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pagemap and memfd are Linux's")

PAGES = 64


def _own(buffer: bytearray) -> int:
    """How many of ``buffer``'s whole pages this process has its own copy of."""
    page = os.sysconf("SC_PAGE_SIZE")
    start = ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))
    first = -(-start // page)
    with open("/proc/self/pagemap", "rb", buffering=0) as pagemap:
        pagemap.seek(first * 8)
        entries = pagemap.read((start + len(buffer)) // page * 8 - first * 8)
    flags = [int.from_bytes(entries[i:i + 8], "little") for i in range(0, len(entries), 8)]
    return sum(1 for f in flags if f >> 63 & 1 and f >> 56 & 1)


def _in_child(body: object) -> int:
    """Run ``body()`` (returning 0..255) in a fork; its result."""
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            code = body()  # type: ignore[operator]
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _write_and_record(log: int, written: bytearray) -> int:
    """In a fork: write each page of ``written`` (copy-on-write: this process's own now), record as "w"."""
    page = os.sysconf("SC_PAGE_SIZE")
    _warm_pages.become(log, "w")
    for i in range(0, len(written), page):
        written[i] = 2
    _warm_pages.record()
    return 0


def test_a_fork_copies_the_pages_an_earlier_fork_recorded_and_only_those() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    written, untouched = bytearray(b"\1" * PAGES * page), bytearray(b"\1" * PAGES * page)
    log = _warm_pages.create_log()
    assert log is not None

    def worker() -> int:
        _warm_pages.become(log, "w")
        for i in range(0, len(written), page):
            written[i] = 2  # copy-on-write: this process's own page now
        _warm_pages.record()
        _warm_pages.record()  # once per child id
        return _own(written)

    def warm() -> int:  # pages of `written` copied by populate, +100 if any of `untouched` was
        before = _own(written)
        _warm_pages.populate(log, 0, lambda: False)
        return min(99, _own(written) - before) + (100 if _own(untouched) else 0)

    assert _in_child(worker) >= PAGES - 1  # it wrote them (a page may be shared with the buffer's edges)
    records = list(_warm_pages._records(os.pread(log, 1 << 20, 0)))
    assert [cid for cid, _ in records] == ["w"]
    copied = _in_child(warm)
    assert copied >= PAGES - 1 and copied < 100  # written's pages copied in advance, untouched's not


def test_an_interrupted_warm_process_copies_nothing_and_outside_a_zygote_nothing_is_recorded() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    written = bytearray(b"\1" * PAGES * page)
    log = _warm_pages.create_log()
    assert log is not None
    _warm_pages.become(None, "")
    _warm_pages.record()  # no log: a process the zygote did not fork
    assert os.fstat(log).st_size == 0

    def interrupted() -> int:
        done = _warm_pages.populate(log, 0, lambda: True)
        return (done == 0) + 2 * (_own(written) == 0)

    assert _in_child(lambda: _write_and_record(log, written)) == 0
    assert _in_child(interrupted) == 3


def test_a_record_cut_short_is_left_out_and_the_whole_ones_still_copied() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    written = bytearray(b"\1" * PAGES * page)
    log = _warm_pages.create_log()
    assert log is not None

    assert _in_child(lambda: _write_and_record(log, written)) == 0
    # What a reader without the lock could meet while another child appends: a head naming 5 runs, 1 there.
    cut = _warm_pages._HEAD.pack(1, 5) + b"x" + _warm_pages._RUN.pack(0, 1)
    os.pwrite(log, cut, os.fstat(log).st_size)
    assert [cid for cid, _ in _warm_pages._records(os.pread(log, 1 << 20, 0))] == ["w"]

    def warm() -> int:
        before = _own(written)
        _warm_pages.populate(log, 0, lambda: False)  # raises nothing: a warm process that raised died
        return min(99, _own(written) - before)

    assert _in_child(warm) >= PAGES - 1
