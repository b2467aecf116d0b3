"""Process titles: `ps` and /proc/PID/cmdline name what a process is (``l2node: sequencer``)
rather than ``python3 -m supervisor._zygote``."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

_PR_SET_NAME = 15


def set_process_title(title: str) -> None:
    """Rewrite this process's argv (what ps and /proc/PID/cmdline show) with ``setproctitle``,
    and its kernel name (``comm``, 15 bytes, what top shows) with PR_SET_NAME. Best effort: a
    platform without either keeps its title."""
    try:
        import setproctitle
    except ImportError:
        pass
    else:
        setproctitle.setproctitle(title)  # also sets comm on Linux, but only from the start
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        # The end of the title is the part that tells processes apart ("sequencer", not "l2node: ").
        name = title.rpartition(": ")[2] or title
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
