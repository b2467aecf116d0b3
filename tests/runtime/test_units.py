"""In-process pieces: config records, error details, storage, JSON log lines."""

from __future__ import annotations

import ast
import asyncio
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from services.runtime import (
    DEFAULT_MONITOR_BASE,
    DomainError,
    FieldViolation,
    InvalidArgument,
    MonitorPorts,
    Storage,
    WorkerConfig,
    monitor_port_for,
)
from services.runtime._logging import JsonFormatter

# -- config ---------------------------------------------------------------------------------------

_configs = st.builds(
    WorkerConfig,
    service=st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True),
    address=st.sampled_from(["127.0.0.1:50051", "[::1]:0", "sequencer:443"]),
    data_dir=st.just(Path("/var/lib/l2node")),
    index=st.integers(0, 99),
    monitor_port=st.sampled_from([0, 20100, 30000]),
    drain_s=st.floats(0, 10),
    grace_s=st.floats(0, 60),
    settings=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    log_level=st.sampled_from(["DEBUG", "INFO", "ERROR"]),
)


@given(_configs)
def test_config_round_trips_through_json(config: WorkerConfig) -> None:
    assert WorkerConfig.from_mapping(json.loads(json.dumps(config.to_mapping()))) == config


def test_config_defaults_and_derived_values() -> None:
    config = WorkerConfig.from_mapping({"service": "seq", "address": "0.0.0.0:7000", "data_dir": "/d"})
    assert (config.drain_s, config.grace_s, config.monitor_port, config.log_level) == (0.5, 2.0, 0, "INFO")
    assert (config.host, config.port) == ("0.0.0.0", 7000)
    assert config.database_path == Path("/d/seq.db")
    assert config.monitor_ports is None
    assert config.log_level_number == logging.INFO


@pytest.mark.parametrize(
    "bad",
    [
        {"adress": "x"},
        {"service": "has space"},
        {"service": "../etc"},
        {"address": "no-port"},
        {"address": "h:70000"},
        {"drain_s": -1},
        {"grace_s": float("inf")},
        {"index": True},
        {"monitor_port": 65500},
        {"log_level": "verbose"},
        {"settings": []},
    ],
)
def test_config_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WorkerConfig.from_mapping({"service": "s", "address": "h:1", "data_dir": "/d", **bad})


def test_monitor_port_rule() -> None:
    assert monitor_port_for(0) == DEFAULT_MONITOR_BASE
    assert monitor_port_for(3, base=30000) == 30003
    with pytest.raises(ValueError):
        monitor_port_for(100)
    ports = [MonitorPorts.from_monitor_port(monitor_port_for(i)) for i in range(100)]
    every = [p for mp in ports for p in (mp.termui, mp.webui, mp.console)]
    assert len(every) == len(set(every))  # no two workers' monitors collide


# -- errors ---------------------------------------------------------------------------------------


def test_domain_error_status_proto() -> None:
    err = InvalidArgument(
        "bad tx",
        reason="BAD_SIGNATURE",
        metadata={"tx": "0xab"},
        field_violations=[FieldViolation("sig", "v>1")],
    )
    status = err.to_status_proto()
    assert (status.code, status.message) == (grpc.StatusCode.INVALID_ARGUMENT.value[0], "bad tx")
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad)
    assert (info.reason, info.domain, dict(info.metadata)) == ("BAD_SIGNATURE", "l2node", {"tx": "0xab"})
    assert [(v.field, v.description) for v in bad.field_violations] == [("sig", "v>1")]
    grpc_status = err.to_grpc_status()
    assert grpc_status.code is grpc.StatusCode.INVALID_ARGUMENT
    assert grpc_status.trailing_metadata[0][0] == "grpc-status-details-bin"


def test_base_domain_error_is_failed_precondition() -> None:
    err = DomainError("nope")
    assert err.code is grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "FAILED_PRECONDITION"
    assert len(err.to_status_proto().details) == 1


# -- storage --------------------------------------------------------------------------------------


def test_storage_is_wal_full_and_checkpoints_on_close(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "sub" / "svc.db")
    conn = storage.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.execute("CREATE TABLE t (x INTEGER)")
    with storage.transaction() as tx:
        tx.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(256)])
    with pytest.raises(ZeroDivisionError), storage.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (-1)")
        1 / 0  # noqa: B018
    assert conn.execute("SELECT count(*), min(x) FROM t").fetchone() == (256, 0)
    assert (tmp_path / "sub" / "svc.db-wal").stat().st_size > 0
    storage.close()
    storage.close()  # idempotent
    wal = tmp_path / "sub" / "svc.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # folded back into the database file
    other = sqlite3.connect(tmp_path / "sub" / "svc.db")
    assert other.execute("SELECT count(*) FROM t").fetchone() == (256,)
    other.close()


async def test_commits_synced_in_groups_share_an_fsync_and_are_kept_once_durable_returns(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "svc.db")
    storage.sync_in_groups()
    conn = storage.connection
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: a commit writes, durable() syncs
    conn.execute("CREATE TABLE t (x INTEGER)")

    async def write(i: int) -> None:
        with storage.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (?)", (i,))
        await storage.durable()  # as a worker does before its answer leaves

    await asyncio.gather(*(write(i) for i in range(100)))
    assert storage.syncs == 1  # every commit made before the fsync started shares it (group commit)
    await storage.durable()
    assert storage.syncs == 1  # nothing committed since: nothing to sync
    await write(100)
    assert storage.syncs == 2
    storage.close()
    other = sqlite3.connect(tmp_path / "svc.db")
    assert other.execute("SELECT count(*) FROM t").fetchone() == (101,)
    other.close()


async def test_sync_now_starts_the_fsync_a_later_durable_waits_for_if_it_covers_its_commits(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "svc.db")
    storage.sync_in_groups()
    storage.connection.execute("CREATE TABLE t (x INTEGER)")

    def commit(x: int) -> None:
        with storage.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (?)", (x,))

    commit(1)
    storage.sync_now()  # as a worker does right after a commit whose message leaves a little later
    await storage.durable()  # covered by the fsync running: waits for that one
    assert storage.syncs == 1
    storage.sync_now()  # nothing committed since: nothing to sync
    await storage.durable()
    assert storage.syncs == 1
    commit(4)
    storage.sync_now()
    for _ in range(500):  # that fsync done before anyone asks ...
        if storage.syncs == 2:
            break
        await asyncio.sleep(0.01)
    await storage.durable()  # ... covers this call: no fsync more
    assert storage.syncs == 2
    commit(2)
    storage.sync_now()
    commit(3)  # committed after that fsync started: not covered by it, so a fourth one
    await storage.durable()
    for _ in range(500):  # the third may end after the fourth
        if storage.syncs == 4:
            break
        await asyncio.sleep(0.01)
    assert storage.syncs == 4
    storage.close()
    other = sqlite3.connect(tmp_path / "svc.db")
    assert other.execute("SELECT count(*) FROM t").fetchone() == (4,)
    other.close()


async def test_a_failed_fsync_fails_every_durable_after_it_even_once_fsyncs_succeed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux reports a lost write-back (EIO) to one fsync only; a later one succeeds without the lost
    pages. So the first failure is sticky: the durable() waiting on it and every one after it raise,
    and nothing acknowledged after it can claim to be on disk. (The disk's error is injected: a real
    one cannot be made here.)"""
    storage = Storage(tmp_path / "svc.db")
    storage.sync_in_groups()
    storage.connection.execute("CREATE TABLE t (x INTEGER)")
    real, failures = os.fsync, [OSError(5, "Input/output error")]

    def fsync(fd: int) -> None:
        if failures:
            raise failures.pop()
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    def commit(x: int) -> None:
        with storage.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (?)", (x,))

    commit(1)
    with pytest.raises(OSError, match="Input/output error"):
        await storage.durable()
    assert failures == []  # the next fsync would succeed...
    commit(2)
    with pytest.raises(OSError, match="Input/output error"):
        await storage.durable()  # ... but says nothing of the pages the first lost
    storage.sync_now()  # no fsync is started for nothing either...
    await asyncio.sleep(0.05)
    assert storage.syncs == 0
    with pytest.raises(OSError, match="Input/output error"):
        await storage.durable()  # ... and one that succeeded would not count: the same error
    storage.close()


async def test_durable_without_groups_returns_at_once_each_commit_being_durable(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "svc.db")
    assert storage.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with storage.transaction() as tx:
        tx.execute("CREATE TABLE t (x INTEGER)")
    await storage.durable()
    assert storage.syncs == 0
    storage.close()


def test_a_transaction_inside_another_is_a_savepoint_of_its_commit(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "svc.db")
    conn = storage.connection
    conn.execute("CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(tmp_path / "svc.db")
    with storage.transaction():
        with storage.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ZeroDivisionError), storage.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (2)")
            1 / 0  # noqa: B018
        with storage.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (3)")
        # Nothing is committed until the outer transaction is: another connection sees none of it.
        assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)
        assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]
    assert other.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (3,)]  # one commit, the failed one undone
    with pytest.raises(ZeroDivisionError), storage.transaction():
        with storage.transaction() as tx:
            tx.execute("INSERT INTO t VALUES (4)")
        1 / 0  # noqa: B018
    assert other.execute("SELECT count(*) FROM t").fetchone() == (2,)  # the outer rollback undoes the inner
    other.close()
    storage.close()


# -- logging --------------------------------------------------------------------------------------


def test_json_log_line_has_span_ids_and_extras() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    log = logging.getLogger("test.json")
    log.addHandler(handler)
    log.propagate = False
    tracer = TracerProvider().get_tracer("t")
    try:
        log.warning("outside %s", "span", extra={"batch": 7, "odd": object()})
        with tracer.start_as_current_span("op") as span:
            try:
                raise KeyError("k")
            except KeyError:
                log.exception("inside")
    finally:
        log.removeHandler(handler)
    outside, inside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert outside["message"] == "outside span" and outside["level"] == "WARNING"
    assert outside["service"] == "svc" and outside["batch"] == 7 and outside["ts"].endswith("Z")
    assert "trace_id" not in outside
    ctx = span.get_span_context()
    assert inside["trace_id"] == trace.format_trace_id(ctx.trace_id)
    assert inside["span_id"] == trace.format_span_id(ctx.span_id)
    assert "KeyError" in inside["exception"]


# -- gRPC started in a warm process -----------------------------------------------------------------

_WARM_GRPC = """
import asyncio, sys
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from services.runtime._warm import start_grpc, worker_loop
start_grpc()  # as the zygote's warm process does, before it is a worker
warm = worker_loop()

async def serve() -> int:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    await server.stop(0)
    return int(reply.status)

with asyncio.Runner(loop_factory=lambda: warm) as runner:
    print(runner.get_loop() is warm, runner.run(serve()), worker_loop() is not warm, flush=True)
"""


def test_a_worker_serves_on_the_loop_and_grpc_a_warm_process_started(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _WARM_GRPC], capture_output=True, text=True, check=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    # The warm loop ran the worker, which served (1: SERVING); the loop is handed out once.
    assert out == ["True", "1", "True"]


# -- metrics after a fork ---------------------------------------------------------------------------

_OWN_FILES = """
import os, sys
import services.runtime._metrics as m
m.counter("l2node_test_zygote_total", "declared before the fork, as a service module's are")
m.gauge("l2node_test_zygote_gauge", "one of each kind")
pid = os.fork()
if pid == 0:
    m.own_files()  # as the zygote's warm process does, before it is a worker
    print(sorted(os.listdir(sys.argv[1])), flush=True)
    m.bind("child")
    m.breaker_state("l1", "open")  # its first update: into the files it already has
    print(sorted(os.listdir(sys.argv[1])), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print(pid)
"""


def test_a_forked_process_owns_its_metrics_files_before_its_first_update(tmp_path: Path) -> None:
    samples = tmp_path / "metrics"
    samples.mkdir()
    out = subprocess.run([sys.executable, "-c", _OWN_FILES, str(samples)], capture_output=True, text=True,
                         env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(samples)}, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.splitlines()
    owned, after, child = ast.literal_eval(out[0]), ast.literal_eval(out[1]), out[2]
    assert f"counter_{child}.db" in owned and f"gauge_livesum_{child}.db" in owned
    assert after == owned  # the update created no file: they were there
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(samples))
    assert registry.get_sample_value("l2node_breaker_state", {"service": "child", "target": "l1"}) == 2.0
    assert registry.get_sample_value("l2node_test_zygote_total") == 0.0
