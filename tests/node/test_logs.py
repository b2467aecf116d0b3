"""Logs and processes of a real tree: every process logs to DATA_DIR/logs/<id>.log and
`l2node logs` shows them; a crash is a WARNING; `ps` names each process; anvil's log stays small."""

from __future__ import annotations

import json
import os
import pathlib
import pty
import select
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from l2node.node import logs as node_logs
from tests.node.test_up import L2NODE, Node, children, cli, wait_for
from tests.ports import free_base_port


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = Node(tmp_path_factory.mktemp("logs"))
    try:
        yield n
    finally:
        n.close()


def _entries(path: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_process_of_the_tree_is_named_in_ps(node: Node) -> None:
    def cmdline(pid: int) -> str:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()

    rows = children(node.data_dir)
    for cid in ("zygote", "sequencer", "rollups", "echo"):
        assert cmdline(rows[cid]["pid"]) == f"l2node: {cid}"
    assert cmdline(node.proc.pid) == "l2node: supervisor"
    assert "anvil" in cmdline(rows["l1"]["pid"])  # a program we exec keeps its own name
    comm = pathlib.Path(f"/proc/{rows['sequencer']['pid']}/comm").read_text().strip()
    assert comm == "sequencer"  # what top shows


def test_each_process_logs_json_to_its_own_file(node: Node) -> None:
    logs = node.data_dir / "logs"
    wait_for(lambda: {"supervisor.log", "sequencer.log", "rollups.log", "echo.log"} <= {p.name for p in
                                                                                          logs.iterdir()},
             30, "log files")
    sequencer = _entries(logs / "sequencer.log")
    assert sequencer and all(e["service"] == "sequencer" for e in sequencer)
    assert any(e["message"] == "tree up" for e in _entries(logs / "supervisor.log"))


def test_logs_shows_one_child_or_all_merged_in_time_order(node: Node) -> None:
    one = cli(node.data_dir, "logs", "sequencer", "--lines", "5").stdout.splitlines()
    assert 0 < len(one) <= 5
    assert {json.loads(line)["service"] for line in one} == {"sequencer"}  # piped: the JSON as it is
    every = [json.loads(line) for line in cli(node.data_dir, "logs", "--lines", "200").stdout.splitlines()]
    assert {"supervisor", "sequencer", "rollups"} <= {e["service"] for e in every}
    assert [e["ts"] for e in every] == sorted(e["ts"] for e in every)
    bad = cli(node.data_dir, "logs", "nope", check=False)
    assert bad.returncode == 1 and "no log for 'nope'" in bad.stderr and "sequencer" in bad.stderr


def test_logs_follow_streams_new_lines_and_a_crash_is_a_warning(node: Node) -> None:
    follower = subprocess.Popen([*L2NODE, "logs", "supervisor", "--follow", "--lines", "0",
                                 "--data-dir", str(node.data_dir)], stdout=subprocess.PIPE, text=True)
    seen: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: seen.extend(json.loads(line) for line in follower.stdout or ()),
                              daemon=True)
    reader.start()
    try:
        time.sleep(1.0)  # the follower is at the end of the file
        victim = children(node.data_dir)["echo2"]["pid"]
        os.kill(victim, signal.SIGKILL)

        def crash_seen() -> bool:
            return any(e["message"] == "exited" and e["child_pid"] == victim for e in list(seen))

        wait_for(crash_seen, 20, "the crash streamed by `logs --follow`")
        crash = next(e for e in list(seen) if e["message"] == "exited" and e["child_pid"] == victim)
        assert crash["level"] == "WARNING" and "SIGKILL" in crash["reason"] and crash["normal"] is False
        wait_for(lambda: any(e["message"] == "started" and e["child"] == "echo2" for e in list(seen)), 20,
                 "the restart streamed")
        started = next(e for e in list(seen) if e["message"] == "started" and e["child"] == "echo2")
        assert started["level"] == "INFO"
    finally:
        follower.terminate()
        follower.wait(10)


def test_the_local_anvil_does_not_log_every_request(node: Node) -> None:
    log = node.data_dir / "l1" / "anvil.log"
    time.sleep(3.0)  # blocks are mined every second and the services poll: before, ~30 lines a second
    assert len(log.read_text().splitlines()) < 20


def test_on_a_terminal_the_tree_logs_readable_lines(tmp_path: pathlib.Path) -> None:
    """`make up` runs in a terminal: the supervisor and the workers it forks (which share its
    stderr) print lines a person reads, not JSON; the files stay JSON."""
    config = tmp_path / "l2node.toml"
    config.write_text(f"[node]\nbase_port = {free_base_port()}\n[workers.sequencer]\nenabled = false\n"
                      "[workers.rollups]\nenabled = false\n[workers.bridge]\nenabled = false\n"
                      "[workers.channels]\nenabled = false\n"
                      '[workers.echo]\ndefinition = "tests.workers.echo:WORKER"\n')
    controller, terminal = pty.openpty()
    data_dir = tmp_path / "data"
    proc = subprocess.Popen([*L2NODE, "up", "--data-dir", str(data_dir), "--config", str(config)],
                            stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal, start_new_session=True)
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 60
        while b"tree up" not in shown and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.5)[0]:
                shown += os.read(controller, 65536)
    finally:
        proc.terminate()
        proc.wait(30)
        os.close(controller)
    lines = [line for line in shown.decode(errors="replace").splitlines() if line.strip()]
    assert any("tree up" in line for line in lines), lines
    assert not any(line.lstrip().startswith("{") for line in lines), lines
    assert any(" INFO    supervisor[" in line for line in lines) and any(" echo[" in line for line in lines)
    file_lines = (data_dir / "logs" / "echo.log").read_text().splitlines()
    assert file_lines and all(json.loads(line)["service"] == "echo" for line in file_lines)


def test_follow_reads_on_across_a_rotation(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "sequencer.log"
    path.write_text('{"ts": "1", "message": "before"}\n')
    emitted: list[str] = []
    done = threading.Event()
    follower = threading.Thread(target=node_logs.follow, args=([path], emitted.append),
                                kwargs={"should_stop": done.is_set}, daemon=True)
    follower.start()
    try:
        time.sleep(0.3)
        with open(path, "a") as f:
            f.write('{"ts": "2", "message": "appended"}\n{"ts": "3", "mess')  # a line still being written
        wait_for(lambda: len(emitted) == 1, 5, "the appended line")
        with open(path, "a") as f:
            f.write('age": "completed"}\n')
        wait_for(lambda: len(emitted) == 2, 5, "the completed line")
        path.rename(tmp_path / "sequencer.log.1")  # what RotatingFileHandler does at its size cap
        path.write_text('{"ts": "4", "message": "after rotation"}\n')
        wait_for(lambda: len(emitted) == 3, 5, "the new file's line")
    finally:
        done.set()
        follower.join(5)
    assert [json.loads(line)["message"] for line in emitted] == ["appended", "completed", "after rotation"]
