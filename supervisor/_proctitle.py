"""Process titles: `ps` and /proc/PID/cmdline name what a process is (``l2node: sequencer``)
rather than ``python3 -m supervisor._zygote``.

Standard library only (this package's rule): the title is written over the process's original
argv strings, whose address range the kernel publishes in /proc/self/stat (arg_start, arg_end),
as setproctitle and PostgreSQL do; Python copied argv at startup and never reads it again. The
kernel name (``comm``, 15 bytes, what top shows) is set with PR_SET_NAME. Best effort: where
either is unavailable the process keeps its title.
"""

from __future__ import annotations

import contextlib
import ctypes

_PR_SET_NAME = 15
#: Fields 48 and 49 of /proc/PID/stat (proc(5)), counted from 1.
_ARG_START, _ARG_END = 48, 49


def set_process_title(title: str) -> None:
    """Show ``title`` in ps and /proc/PID/cmdline, and its last part (after ": ") as ``comm``."""
    with contextlib.suppress(OSError, AttributeError, TypeError, ValueError):
        # dlopen(NULL): the symbols already loaded (libc among them), with no ldconfig subprocess
        # (find_library's) on a worker's start path.
        libc = ctypes.CDLL(None, use_errno=True)
        name = title.rpartition(": ")[2] or title  # the part that tells processes apart
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    with contextlib.suppress(OSError, ValueError, IndexError):
        _rewrite_argv(title.encode())


def _rewrite_argv(title: bytes) -> None:
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(b")") + 2:].split()
    start, end = int(fields[_ARG_START - 3]), int(fields[_ARG_END - 3])
    size = end - start
    if size <= 1:
        return
    data = title[:size - 1].ljust(size, b"\0")  # NUL-padded to the end: nothing of the old argv remains
    ctypes.memmove(start, data, size)
