"""The rollups worker's CPU priority (its ``nice`` setting).

Derivation verifies what L1 holds; nothing the sequencer seals or makes SAFE waits for it (its lag
is only reported, and outputs are proposed within challenge windows of minutes to days). On a
machine the sequencer shares, a saturated CPU is better spent sealing: a niced worker takes what
the sequencer leaves and catches up when the load falls. With spare CPU it costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import pathlib

from services.runtime import MAX_NICE, lower_thread_priority

_TASKS = "/proc/self/task"
_AUTOGROUP = "/proc/self/autogroup"


def lower_priority(increment: int) -> None:
    """Add ``increment`` to the niceness of every thread of this process (capped at 19).

    Linux's nice is per thread: each thread now is lowered, and threads started later inherit
    their creator's. With autogroup scheduling (a desktop kernel's default, and this machine's),
    nice only weighs threads against others of their session: each worker `l2node up` starts leads
    a session of its own, so that session's autogroup is lowered too. Elsewhere ``os.nice``."""
    if increment <= 0:
        return
    if not os.path.isdir(_TASKS):
        os.nice(increment)
        return
    for name in os.listdir(_TASKS):
        lower_thread_priority(increment, int(name))
    if os.getsid(0) == os.getpid() and os.path.exists(_AUTOGROUP):  # never a session shared with others
        with contextlib.suppress(OSError):
            now = int(pathlib.Path(_AUTOGROUP).read_text().split()[-1])  # "/autogroup-N nice K"
            pathlib.Path(_AUTOGROUP).write_text(str(min(MAX_NICE, now + increment)))
