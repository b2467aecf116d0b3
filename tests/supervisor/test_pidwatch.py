"""PidWatch on real processes: an exit's status is collected at once, its zombie reaped later."""

from __future__ import annotations

import os
import signal

import pytest

from supervisor import _pidwatch
from supervisor._pidwatch import PidWatch, reap_strays
from tests.conftest import pid_alive
from tests.supervisor.conftest import wait_until


def _spawn_sleeper() -> int:
    # posix_spawn, not Popen: a Popen object would reap its child itself.
    return os.posix_spawn("/bin/sleep", ["sleep", "60"], dict(os.environ))


def _state(pid: int) -> str | None:
    """The process's state letter (Z: a zombie), None once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


async def test_a_killed_child_is_reported_at_once_and_reaped_after() -> None:
    pid = _spawn_sleeper()
    watch = PidWatch(pid)
    watch.signal(signal.SIGKILL)
    exit_ = await watch.wait()
    assert (exit_.normal, exit_.signal, exit_.reason) == (False, signal.SIGKILL, "killed by SIGKILL")
    await wait_until(lambda: _state(pid) is None, what="the child reaped")
    assert pid not in _pidwatch._unreaped and pid not in _pidwatch._watched


async def test_an_exit_collected_and_not_yet_reaped_is_reaped_by_reap_strays(monkeypatch: pytest.MonkeyPatch
                                                                              ) -> None:
    monkeypatch.setattr(_pidwatch, "REAP_AFTER_S", 3600.0)
    pid = _spawn_sleeper()
    watch = PidWatch(pid)
    os.kill(pid, signal.SIGTERM)
    exit_ = await watch.wait()
    assert exit_.signal == signal.SIGTERM
    # The status was read without reaping: the pid stays the dead child's, a zombie, until reaped.
    assert _state(pid) == "Z" and not pid_alive(pid)
    watch.signal(signal.SIGKILL)  # an exited child is never signalled again
    reap_strays()
    assert _state(pid) is None
    assert pid not in _pidwatch._unreaped and pid not in _pidwatch._watched
