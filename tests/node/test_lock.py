"""One writer per data dir: a second `l2node up` on it refuses, naming the holder; a SIGKILLed
node leaves no stale lock; a worker waits for a predecessor still holding its database, then
refuses. Real processes throughout (the tree, workers, the kernel's flock)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from l2node.node.run import EXIT_ALREADY_RUNNING
from services.runtime._bootstrap import STORAGE_LOCK_WAIT_S
from supervisor import LockHeld, PidLock
from tests.conftest import pid_alive
from tests.node.test_up import L2NODE, wait_for
from tests.ports import free_base_port
from tests.runtime.conftest import Worker

#: A light tree: no anvil (an L1 URL is given, and nothing uses it), one echo worker.
_CONFIG = """[node]
base_port = {port}
[workers.sequencer]
enabled = false
[workers.rollups]
enabled = false
[workers.bridge]
enabled = false
[workers.channels]
enabled = false
[workers.echo]
definition = "tests.workers.echo:WORKER"
"""


def _up(tmp: pathlib.Path, data_dir: pathlib.Path, name: str, port: int) -> subprocess.Popen[bytes]:
    config = tmp / f"{name}.toml"
    config.write_text(_CONFIG.format(port=port))
    with (tmp / f"{name}.log").open("wb") as log:
        return subprocess.Popen([*L2NODE, "up", "--data-dir", str(data_dir), "--config", str(config),
                                 "--l1-rpc", "http://127.0.0.1:9"], stdout=subprocess.DEVNULL, stderr=log)


def _running(data_dir: pathlib.Path, proc: subprocess.Popen[bytes], log: pathlib.Path) -> dict[str, int]:
    """Once this tree (not a killed predecessor's endpoints.json) is up: its children's pids by id."""
    def up() -> dict[str, int] | None:
        assert proc.poll() is None, log.read_text()
        doc = json.loads((data_dir / "run" / "endpoints.json").read_text())
        rows = doc["children"]
        ours = doc["pid"] == proc.pid and [r["id"] for r in rows] == ["zygote", "echo"]
        if ours and all(r["state"] == "running" for r in rows):
            return {r["id"]: r["pid"] for r in rows}
        return None
    pids: dict[str, int] = wait_for(up, 60, "tree up")
    return pids


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_a_second_up_on_the_same_data_dir_refuses_naming_the_first(
        tmp_path: pathlib.Path, procs: list[subprocess.Popen[bytes]]) -> None:
    data_dir = tmp_path / "data"
    port = free_base_port()
    first = _up(tmp_path, data_dir, "first", port)
    procs.append(first)
    children = _running(data_dir, first, tmp_path / "first.log")
    assert (data_dir / "run" / "lock").read_text().strip() == str(first.pid)

    # On other ports, so that only the lock can stop it: it must not even start its zygote.
    second = _up(tmp_path, data_dir, "second", free_base_port())
    procs.append(second)
    assert second.wait(15) == EXIT_ALREADY_RUNNING
    log = (tmp_path / "second.log").read_text()
    assert f"already running, pid {first.pid}" in log, log
    # The first tree is untouched: same processes, same endpoints.json.
    assert first.poll() is None and all(pid_alive(pid) for pid in children.values())
    assert json.loads((data_dir / "run" / "endpoints.json").read_text())["control"].endswith(f":{port}")

    # SIGKILL leaves no stale lock: the same command starts again at once, its workers waiting
    # for the killed tree's orphans to let go of their databases.
    first.kill()
    first.wait()
    third = _up(tmp_path, data_dir, "third", port)
    procs.append(third)
    now = _running(data_dir, third, tmp_path / "third.log")
    assert (data_dir / "run" / "lock").read_text().strip() == str(third.pid)
    assert (data_dir / "services" / "echo" / "echo.lock").read_text().strip() == str(now["echo"])


def test_a_worker_waits_for_the_holder_of_its_database_then_starts(tmp_path: pathlib.Path) -> None:
    db_lock = tmp_path / "data" / "echo.lock"
    held = PidLock.acquire(db_lock)
    worker = Worker(tmp_path, "echo")
    try:
        time.sleep(0.5)
        assert worker.proc.poll() is None, worker.stderr()
        held.release()
        worker.wait_serving()
        assert db_lock.read_text().strip() == str(worker.pid)
    finally:
        worker.kill()


def test_a_worker_refuses_a_database_another_process_keeps(tmp_path: pathlib.Path) -> None:
    with PidLock.acquire(tmp_path / "data" / "echo.lock"):
        worker = Worker(tmp_path, "echo")
        try:
            assert worker.wait(STORAGE_LOCK_WAIT_S + 15) != 0
            assert f"already running, pid {os.getpid()}" in worker.stderr()
            assert not (tmp_path / "data" / "echo.db").exists(), "refused before opening the database"
        finally:
            worker.kill()


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run" / "lock"
    holder = subprocess.Popen([sys.executable, "-c",
                               "import pathlib, sys, time; from supervisor import PidLock;"
                               f"PidLock.acquire(pathlib.Path({str(path)!r})); print('held', flush=True);"
                               "time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(LockHeld) as refused:
            PidLock.acquire(path)
        assert refused.value.holder == holder.pid
        assert str(refused.value) == f"already running, pid {holder.pid} (holds {path})"
    finally:
        holder.kill()
        holder.wait()
    with PidLock.acquire(path) as mine:  # the kernel released it with the process
        assert path.read_text().strip() == str(os.getpid())
        assert mine.path == path
    with PidLock.acquire(path):  # and released it with release()
        pass


def test_the_pid_is_written_over_whatever_the_file_held(tmp_path: pathlib.Path) -> None:
    # Written in place, not truncated first: a shorter predecessor's pid, or a longer text nobody
    # of ours wrote, leaves nothing behind the holder's pid.
    path = tmp_path / "lock"
    for before in ("7\n", "4194304\n", "not a pid, and longer than any record\n"):
        path.write_text(before)
        with PidLock.acquire(path):
            assert int(path.read_text()) == os.getpid()
            assert path.read_text().endswith("\n")
