"""A thread's CPU priority. Linux's nice is per thread, so a worker can run its parallel, GIL-free
work (sender recovery on decode or derive threads) below its serial work (the event loop, which
holds the GIL: when it waits for a CPU behind a thread of its own, every Python thread waits)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

#: Niceness stops here (Linux's lowest priority).
MAX_NICE = 19


def lower_thread_priority(increment: int, tid: int | None = None) -> None:
    """Add ``increment`` to the niceness of thread ``tid`` (default: the calling thread), capped at
    :data:`MAX_NICE`; a thread that ended meanwhile is skipped. Linux only: elsewhere
    ``setpriority(PRIO_PROCESS, ...)`` takes a process id, not a thread's, and this does nothing."""
    if increment <= 0 or sys.platform != "linux":
        return
    tid = threading.get_native_id() if tid is None else tid
    with contextlib.suppress(ProcessLookupError):
        os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, tid) + increment))
