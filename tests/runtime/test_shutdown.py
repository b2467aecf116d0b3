"""Graceful stop: NOT_SERVING, drain, in-flight calls finish, Watch streams end, exit 0."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.runtime.conftest import Worker, channel, echo_method

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Long enough that a stop which waited for the whole grace would be unmistakable.
GRACE_S = 20.0


async def test_sigterm_drains_in_flight_calls_and_ends_watch_streams(spawn: Callable[..., Worker]) -> None:
    worker = spawn(drain_s=0.5, grace_s=GRACE_S, settings={"tasks": "tick"})
    async with channel(worker.address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        watch = health.Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING
        slow = asyncio.ensure_future(echo_method(ch, "Slow")(json.dumps({"sleep_s": 1.5}).encode()))
        await asyncio.sleep(0.2)  # the call is in flight

        started = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert (await watch.read()).status == NOT_SERVING
        # During the drain the server still answers, and says it is going away.
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == NOT_SERVING
        # The watch stream ends by itself once the drain is over, with OK.
        assert await watch.read() is grpc.aio.EOF
        assert await watch.code() is grpc.StatusCode.OK

        assert json.loads(await slow) == {"slept": 1.5}  # the in-flight call completed
        assert await worker.wait_async() == 0
    elapsed = time.monotonic() - started
    assert elapsed < GRACE_S / 2, f"stop took {elapsed:.1f}s: something held it for the grace period"

    messages = [e["message"] for e in worker.logs()]
    # the server stops, then the tasks, then the service closes
    assert messages[-5:] == ["stop requested", "draining", "ticker stopped", "service closed", "stopped"]


async def test_open_watch_alone_does_not_hold_shutdown(spawn: Callable[..., Worker]) -> None:
    worker = spawn(drain_s=0.1, grace_s=GRACE_S)
    async with channel(worker.address) as ch:
        watches = [
            health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=s)) for s in ("", "x")
        ]
        assert [(await w.read()).status for w in watches] == [
            SERVING,
            health_pb2.HealthCheckResponse.SERVICE_UNKNOWN,
        ]
        started = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert await worker.wait_async() == 0
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_exits_zero_and_checkpoints_storage(spawn: Callable[..., Worker], sig: int) -> None:
    worker = spawn(drain_s=0.0)
    worker.signal(sig)
    assert worker.wait() == 0
    db = Path(worker.config["data_dir"]) / "echo.db"
    # close() checkpointed with TRUNCATE: nothing left in the WAL.
    wal = db.with_name("echo.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_task_tree_giving_up_exits_non_zero(spawn: Callable[..., Worker]) -> None:
    # The crashing task exhausts the task tree's restart intensity; the worker must exit
    # non-zero so that its own supervisor restarts the whole process.
    worker = spawn(ready=False, drain_s=0.0, settings={"tasks": "crash"})
    assert worker.wait() == 1
    assert any(e["message"].startswith("task tree gave up") for e in worker.logs())
    assert worker.logs()[-2]["message"] == "service closed"  # then "stopped"
    # Each crash of the task is a WARNING saying why; the tree giving up is an ERROR.
    crashes = [e for e in worker.logs() if e["message"] == "exited" and e.get("child") == "crasher"]
    assert crashes and all(e["level"] == "WARNING" and "task crashed" in e["reason"] for e in crashes)
    assert [e["level"] for e in worker.logs() if e["message"] == "escalated"] == ["ERROR"]


def test_a_failed_fsync_stops_the_worker_non_zero_to_start_again_from_the_disk(
        spawn: Callable[..., Worker]) -> None:
    # After a lost write-back the kernel may serve the lost pages from its cache as if written:
    # the worker must not go on from what it reads, but restart (its supervisor's) from the disk.
    worker = spawn(ready=False, drain_s=0.0, settings={"tasks": "lose_fsync"})
    assert worker.wait() == 1
    (lost,) = [e for e in worker.logs() if e["level"] == "CRITICAL"]
    assert lost["message"].startswith("an fsync failed") and "Input/output error" in lost["error"]
    assert worker.logs()[-1]["message"] == "stopped"


def test_bad_config_is_rejected_before_anything_starts(spawn: Callable[..., Worker]) -> None:
    worker = spawn(ready=False, drain_s=-1)
    assert worker.wait() == 2  # argparse's usage error
    assert "drain_s" in worker.stderr()
