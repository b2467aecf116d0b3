"""What a worker listens on: its gRPC port without SO_REUSEPORT, aiomonitor on loopback only."""

from __future__ import annotations

import socket
from collections.abc import Callable

import grpc
import pytest

from services.runtime import MonitorPorts
from tests.ports import free_port_with
from tests.runtime.conftest import Worker, listening


async def test_live_port_cannot_be_shared(spawn: Callable[..., Worker]) -> None:
    worker = spawn()
    # A replacement with SO_REUSEPORT on could only share the port if the live worker had set it too.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    with pytest.raises(RuntimeError):
        server.add_insecure_port(worker.address)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        with pytest.raises(OSError):
            sock.bind(("127.0.0.1", worker.port))
    # A second worker on the same address fails to start instead of silently sharing it.
    twin = spawn(ready=False, address=worker.address, data_dir=worker.config["data_dir"] + "-twin")
    assert twin.wait() == 1
    assert worker.proc.poll() is None
    # It binds before its service registers (so that watchers connect while it starts): nothing opened.
    assert "Address already in use" in twin.stderr()
    assert f"cannot listen on {worker.address}: is another program bound to it?" in twin.stderr()
    assert "service closed" not in twin.stderr()


def test_monitor_is_off_by_default(echo: Worker) -> None:
    assert listening(echo.pid) == {("127.0.0.1", echo.port)}


def test_monitor_listens_on_loopback_only(spawn: Callable[..., Worker]) -> None:
    offsets = MonitorPorts.from_monitor_port(0)
    port = free_port_with((offsets.termui, offsets.webui, offsets.console))  # all three free: never skipped
    ports = MonitorPorts.from_monitor_port(port)
    worker = spawn(monitor_port=port)
    assert listening(worker.pid) == {
        ("127.0.0.1", worker.port),
        ("127.0.0.1", ports.termui),
        ("127.0.0.1", ports.webui),  # the console opens only on request, and is off by default
    }
    assert any(e["message"] == "aiomonitor started" for e in worker.logs())  # and stderr stays JSON


def test_monitor_port_in_use_does_not_stop_the_worker(spawn: Callable[..., Worker]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = spawn(monitor_port=port)
        assert listening(worker.pid) == {("127.0.0.1", worker.port)}
    assert any(e["message"].startswith("aiomonitor did not start") for e in worker.logs())
