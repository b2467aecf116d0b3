"""Real worker processes for the runtime tests, and an in-test OTLP collector."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import Collector, otel_env  # noqa: F401  (re-exported to the runtime tests)
from tests.ports import free_port
from tests.serving import wait_serving

ROOT = Path(__file__).resolve().parents[2]
ECHO = "tests.workers.echo:WORKER"
ECHO_SERVICE = "l2node.testing.v1.EchoService"


class Worker:
    """One ``python -m services.runtime`` process; stderr goes to a file, read as JSON lines."""

    def __init__(self, tmp: Path, service: str, *, env: dict[str, str] | None = None, **config: Any) -> None:
        self.service = service
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.config = {"service": service, "address": self.address, "data_dir": str(tmp / "data"), **config}
        self.stderr_path = tmp / f"{service}.stderr"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.runtime", ECHO, "--config-json", json.dumps(self.config)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_serving(self, timeout: float = 20.0) -> None:
        """Until health says SERVING (readiness is health), with this worker's stderr if it does not."""
        # A short reconnect backoff: the first attempts are refused while the worker starts.
        options = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.max_reconnect_backoff_ms", 50)]
        with grpc.insecure_channel(self.address, options=options) as channel:
            try:
                wait_serving(channel, timeout, self.proc)
            except AssertionError as exc:
                raise AssertionError(f"{self.service}: {exc}:\n{self.stderr()}") from None

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    async def wait_async(self, limit_s: float = 20.0) -> int:
        return await asyncio.to_thread(self.proc.wait, limit_s)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """stderr as JSON objects; any line that is not one fails the test."""
        lines = [line for line in self.stderr().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """``spawn(service, **config)`` starts an echo worker and waits for SERVING; all are killed
    at the end of the test."""
    workers: list[Worker] = []

    def start(service: str = "echo", *, ready: bool = True, **config: Any) -> Worker:
        worker = Worker(tmp_path, service, **config)
        workers.append(worker)
        if ready:
            worker.wait_serving()
        return worker

    yield start
    for worker in workers:
        worker.kill()


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """One echo worker shared by a module's tests that do not stop it."""
    worker = Worker(tmp_path_factory.mktemp("echo"), "echo", settings={"tasks": "tick"})
    try:
        worker.wait_serving()
        yield worker
    finally:
        worker.kill()


@contextlib.asynccontextmanager
async def channel(address: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(address) as ch:
        yield ch


def echo_method(ch: grpc.aio.Channel, name: str) -> Any:
    return ch.unary_unary(f"/{ECHO_SERVICE}/{name}")


# -- an OTLP/gRPC trace collector ----------------------------------------------------------------


def listening(pid: int) -> set[tuple[str, int]]:
    """(ip, port) of every TCP socket ``pid`` listens on, from /proc (IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A = LISTEN
                continue
            ip_hex, port_hex = local.split(":")
            found.add((_ip(ip_hex, width), int(port_hex, 16)))
    return found


def _ip(hex_ip: str, width: int) -> str:
    raw = bytes.fromhex(hex_ip)
    # /proc prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if width == 8 else socket.AF_INET6
    ip = socket.inet_ntop(family, words)
    return ip.removeprefix("::ffff:")  # gRPC binds IPv4 through a dual-stack socket
