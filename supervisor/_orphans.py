"""No orphans: every process the supervisor starts dies with it, even when it is SIGKILLed.

Three mechanisms, because each alone has a hole:

* the supervisor is a *child subreaper*, so workers double-forked by the zygote are re-parented
  to it (not to init): it can reap them and read their exit status;
* each child asks the kernel for a signal when its parent dies (PR_SET_PDEATHSIG), set only
  after the re-parenting, since the signal fires on the death of whichever process is the
  parent at the time;
* Python workers also watch a pipe whose only write end lives in the supervisor: EOF means
  the supervisor is gone, whatever the kernel offers (PDEATHSIG is Linux-only).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36

#: After the parent-watch pipe reports the supervisor gone, a worker gets this long to stop
#: gracefully on its own SIGTERM handler before it exits hard.
ORPHAN_GRACE_S = 1.5


@functools.cache
def _libc() -> ctypes.CDLL:
    # The process's own symbols, libc's among them: ctypes.util.find_library("c") runs ldconfig in
    # a subprocess (~1-2 ms, a fork of the caller), and a worker called it on its way to SERVING.
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    return bool(_libc().prctl(option, arg, 0, 0, 0) == 0)


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux >= 3.4). Returns False where unsupported."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(expected_parent: int, sig: int = signal.SIGKILL) -> None:
    """Ask for ``sig`` when the parent dies; exit now if it already has."""
    _prctl(_PR_SET_PDEATHSIG, sig)
    # The parent may have died before prctl took effect; then the signal never comes.
    if os.getppid() != expected_parent:
        os._exit(1)


def wait_adopted(supervisor_pid: int, timeout_s: float = 2.0) -> bool:
    """In a double-forked child: wait until the subreaper supervisor is our parent."""
    deadline = time.monotonic() + timeout_s
    while os.getppid() != supervisor_pid:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0002)
    return True


class ParentWatchPipe:
    """The supervisor's side: a pipe whose write end never leaves this process."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()
        # The read end is handed to the zygote and inherited by every worker it forks.
        os.set_inheritable(self.read_fd, True)

    def close(self) -> None:
        for fd in (self.read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def watch_parent_pipe(read_fd: int, supervisor_pid: int) -> None:
    """In a worker: a daemon thread that ties our life to the supervisor's.

    It waits to be adopted by the supervisor, asks for SIGTERM on its death (the thread that
    sets PDEATHSIG must outlive the process, and this one does), then SIGTERMs us when the
    supervisor's pipe closes, whichever comes first.
    """

    def watch() -> None:
        if wait_adopted(supervisor_pid):
            die_with_parent(supervisor_pid, signal.SIGTERM)
        while True:
            try:
                if os.read(read_fd, 1) == b"":
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_S)
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
