"""Warm processes wait at idle priority: copying pages ahead (``_warm_pages``) must not take CPU from
the worker that is starting at that moment.

A warm process is forked right after a spawn, while the spawned worker starts on the same cores, and
then copies ~22 MB of pages (tens of ms of CPU). Under SCHED_IDLE it runs only on a core nobody else
wants. Before its orders are written, the zygote gives it its normal priority back, so that it does
not wake up starved; raising a priority needs CAP_SYS_NICE or a high enough RLIMIT_NICE (sched(7)),
so without either, warm processes keep their normal priority.
"""

from __future__ import annotations

import contextlib
import os
import resource

#: CAP_SYS_NICE's bit in /proc/self/status's CapEff.
_CAP_SYS_NICE = 23


def can_restore() -> bool:
    """Whether this process may give a process of its own (at its nice) the normal priority back."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    limit = resource.getrlimit(resource.RLIMIT_NICE)[0]
    if limit == resource.RLIM_INFINITY or limit >= 20 - os.getpriority(os.PRIO_PROCESS, 0):
        return True
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    return False


def lower() -> None:
    """This process to SCHED_IDLE (always allowed)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def restore(pid: int) -> None:
    """``pid`` back to the normal policy (its nice value was kept meanwhile)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
