"""Entry points: ``python -m services.runtime`` and ``zygote_entry`` in a forked child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime import MonitorPorts
from tests.ports import free_port
from tests.runtime.conftest import ECHO, ROOT, listening

# Plays the zygote: imports the runtime (no gRPC object), forks, and the child becomes a worker.
# Anything after zygote_entry would run only if it returned into "zygote code".
ZYGOTE = textwrap.dedent(
    """
    import importlib, json, os, sys
    import services.runtime
    for name in (*services.runtime.ZYGOTE_PRELOAD, *services.runtime.MONITOR_PRELOAD):
        module, _, warmup = name.partition(":")
        loaded = importlib.import_module(module)
        if warmup:
            getattr(loaded, warmup)()
    payload = json.loads(sys.argv[1])
    pid = os.fork()
    if pid == 0:
        services.runtime.zygote_entry(payload)
        open(sys.argv[2], "w").write("returned into the zygote")
        os._exit(99)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
    """
)


def _run_zygote(tmp_path: Path, payload: dict[str, object]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, json.dumps(payload), str(tmp_path / "returned")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_serving(address: str, timeout: float = 20.0) -> None:
    options = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.max_reconnect_backoff_ms", 50)]
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address, options=options) as ch:
        while True:
            try:
                reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)


def test_zygote_entry_serves_and_never_returns(tmp_path: Path) -> None:
    port, monitor_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    config = {
        "service": "forked",
        "address": address,
        "data_dir": str(tmp_path / "data"),
        "drain_s": 0.0,
        "monitor_port": monitor_port,  # aiomonitor preloaded in the parent, started in the child
    }
    zygote = _run_zygote(tmp_path, {"definition": ECHO, "config": config})
    assert zygote.stdout is not None
    child = int(zygote.stdout.readline())
    _wait_serving(address)
    monitor = MonitorPorts.from_monitor_port(monitor_port)
    assert listening(child) == {
        ("127.0.0.1", port),
        ("127.0.0.1", monitor.termui),
        ("127.0.0.1", monitor.webui),
    }
    os.kill(child, signal.SIGTERM)
    assert int(zygote.stdout.readline()) == 0
    zygote.wait(10)
    assert not (tmp_path / "returned").exists()
    assert (tmp_path / "data" / "forked.db").exists()
    assert zygote.stderr is not None
    logs = [json.loads(line) for line in zygote.stderr.read().splitlines()]
    assert {e["service"] for e in logs} == {"forked"}


def test_zygote_entry_with_a_bad_payload_exits_one_without_returning(tmp_path: Path) -> None:
    zygote = _run_zygote(tmp_path, {"definition": "tests.workers.echo:NOPE", "config": {}})
    out, err = zygote.communicate(timeout=20)
    assert out.splitlines()[1] == "1"
    assert "AttributeError" in err
    assert not (tmp_path / "returned").exists()


def _python_m(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.runtime", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=20,
    )


def test_python_m_rejects_bad_arguments(tmp_path: Path) -> None:
    good = json.dumps({"service": "x", "address": "127.0.0.1:1", "data_dir": str(tmp_path)})
    assert _python_m("no_colon", "--config-json", good).returncode == 2
    assert _python_m("tests.workers.echo:SERVICE", "--config-json", good).returncode == 2  # not a definition
    unknown = _python_m(ECHO, "--config-json", json.dumps({**json.loads(good), "adress": "x"}))
    assert unknown.returncode == 2
    assert "adress" in unknown.stderr


def test_python_m_reads_a_config_file(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    path = tmp_path / "worker.json"
    path.write_text(
        json.dumps({"service": "filed", "address": address, "data_dir": str(tmp_path), "drain_s": 0})
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.runtime", ECHO, "--config-file", str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_serving(address)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
