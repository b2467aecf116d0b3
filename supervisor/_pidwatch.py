"""Learn, without polling and without threads, when a child process exits and why.

A pidfd becomes readable when its process exits; ``waitid(P_PIDFD)`` then gives the exit code or
the signal, and reaps it a little later (REAP_AFTER_S). This works for the workers that the zygote
double-forks because the supervisor is their subreaper (see ``_orphans``), hence their parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from supervisor._child import Exit


def describe(si_code: int, status: int) -> Exit:
    if si_code == os.CLD_EXITED:
        return Exit(normal=status == 0, reason=f"exited with code {status}", exit_code=status)
    name = signal.Signals(status).name if status in signal.Signals._value2member_map_ else str(status)
    core = " (core dumped)" if si_code == os.CLD_DUMPED else ""
    return Exit(normal=False, reason=f"killed by {name}{core}", signal=status)


#: How soon a spurious readiness is looked at again.
_RECHECK_S = 0.005


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


#: How long after its exit was collected a child is reaped. A reap as soon as the pidfd is readable
#: spun in the kernel invalidating /proc/PID's dentries (release_task; it seems to race the process's
#: last thread, which tells its parent before it drops its own /proc entries): 4-7 ms of the
#: supervisor's CPU per restart at load 5-8 here (p90 11.7 ms in session 17), in its event loop, before
#: the replacement's spawn (bench/RESULTS.md, session 18). So the status is read without reaping
#: (WNOWAIT: the pid stays a zombie, never reused meanwhile) and the reap comes later: ~0.05 ms.
REAP_AFTER_S = 0.5

#: Every pid a PidWatch is responsible for reaping; anything else we must reap ourselves.
_watched: set[int] = set()
#: The pidfds of watched children whose exit was collected and who are not reaped yet.
_unreaped: dict[int, int] = {}


def _reap(pid: int) -> None:
    """Reap a watched child whose exit was collected (see REAP_AFTER_S), unless that was done."""
    fd = _unreaped.pop(pid, None)
    if fd is None:
        return
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
    os.close(fd)
    _watched.discard(pid)


def reap_strays() -> list[int]:
    """Reap zombie children that nobody watches; return their pids.

    As a subreaper the supervisor inherits every orphan below it: a warm process of a zygote
    that died, say. Only exited children we do not watch are reaped, so that no PidWatch ever
    loses an exit status to this; and the watched ones whose exits were collected (REAP_AFTER_S).
    """
    for pid in list(_unreaped):
        _reap(pid)
    me, reaped = str(os.getpid()), []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit() or int(entry) in _watched:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and fields[1] == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry), os.WNOHANG)
                reaped.append(int(entry))
    return reaped


class PidWatch:
    """The exit of one child process, as an awaitable."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        _watched.add(pid)
        loop = asyncio.get_running_loop()
        self._exit: asyncio.Future[Exit] = loop.create_future()
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._fd = None
            _watched.discard(pid)
            self._exit.set_result(Exit(normal=False, reason="vanished before it was watched"))
            return
        loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        assert self._fd is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._fd)
        try:
            info = os.waitid(os.P_PIDFD, self._fd, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # reaped later
        except ChildProcessError:
            info = None
        if info is None and _running(self.pid):
            # Readiness without an exit to collect, while the process runs on: seen here under
            # load (rarely). Never report a live child dead: look again shortly.
            loop.call_later(_RECHECK_S, self._rearm)
            return
        if info is not None:
            result = describe(info.si_code, info.si_status)
            _unreaped[self.pid] = self._fd
            loop.call_later(REAP_AFTER_S, _reap, self.pid)
        else:
            # Gone, but not ours to reap (no subreaper on this platform): status unknown.
            result = Exit(normal=False, reason="exited (status unknown)")
            os.close(self._fd)
            _watched.discard(self.pid)
        self._fd = None
        if not self._exit.done():
            self._exit.set_result(result)

    def _rearm(self) -> None:
        if self._fd is not None and not self._exit.done():
            asyncio.get_running_loop().add_reader(self._fd, self._on_readable)

    @property
    def exited(self) -> bool:
        return self._exit.done()

    async def wait(self) -> Exit:
        return await asyncio.shield(self._exit)

    def signal(self, sig: int) -> None:
        if not self._exit.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
