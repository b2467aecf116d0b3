"""Probes: how the supervisor learns that a process child is ready, and that it is still alive.

A probe is given by whoever builds the child spec; the supervisor knows only the ``Probe``
protocol. Its own workers talk gRPC, so a forked child's probe is grpc.health.v1: it counts as
started when its health service says SERVING (OTP's start_link returning after init/1).
Liveness is more than "the pid exists": a child that stops answering its probe is hung, and a
hung child is killed and restarted.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import select
import socket
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from supervisor._spec import DEFAULT_PROBE_FAILURES, DEFAULT_PROBE_INTERVAL_S, DEFAULT_PROBE_TIMEOUT_S


class ProbeFailed(Exception):
    """One probe attempt failed; the message says how."""


class Probe(Protocol):
    async def preflight(self) -> None:
        """Before spawning: raise ProbeFailed if something already listens at the address.

        Otherwise readiness could be answered by whoever holds the port (a half-dead
        predecessor, a stray process) while our child fails to bind and dies.
        """
        ...

    async def check(self, timeout_s: float) -> None:
        """Return if the child is ready and well; raise ProbeFailed (or time out) if not."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Liveness:
    """How a running child is watched for hangs."""

    #: Seconds between probes once the child runs.
    interval_s: float = DEFAULT_PROBE_INTERVAL_S
    #: Each probe's deadline.
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S
    #: Consecutive misses that make the child hung: it is SIGKILLed and restarted.
    failures: int = DEFAULT_PROBE_FAILURES


#: While a child starts, we poll this often: a restart is as fast as its readiness is noticed.
_READY_POLL_S = 0.002

# Reconnect quickly once connected: the default 1 s backoff would stall liveness probes.
_FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 5),
    ("grpc.min_reconnect_backoff_ms", 5),
    ("grpc.max_reconnect_backoff_ms", 10),
    ("grpc.enable_retries", 0),
]


#: How long a start waits for its port to be released before it fails. A predecessor killed a
#: moment ago can hold it that long while the kernel tears it down; failing at once would burn
#: the restart intensity in a few milliseconds of retries.
PORT_RELEASE_S = 2.0


def _answer_at_once(host: str, port: int) -> bool | None:
    """Whether ``host``:``port`` (an IP literal) accepts a connection, when that is known without
    waiting: on this machine's own addresses the kernel completes (or refuses) a connect before
    connect() returns. None when it is not known at once (a remote host, a name to resolve).
    No loop turn: a restart's preflight and readiness polls ask it on their way (an asyncio connect
    costs a turn of the supervisor's loop, ~1 ms under load, and ~0.15 ms of CPU), and a port seen
    accepting here needs no second connection to say so."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        if sock.connect_ex((host, port)) not in (0, errno.EINPROGRESS):
            return False  # refused (or unreachable) at once
        if not select.select([], [sock], [], 0)[1]:
            return None  # still connecting: not a port of this machine
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return True if error == 0 else False if error == errno.ECONNREFUSED else None


async def _accepts(host: str, port: int, timeout_s: float) -> bool:
    """Whether host:port accepts a connection: at once when that is known (_answer_at_once), else
    by an asyncio connect."""
    answer = _answer_at_once(host, port)
    if answer is not None:
        return answer
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def port_still_taken(host: str, port: int) -> bool:
    """Whether something still listens at host:port after up to PORT_RELEASE_S of waiting: what a
    probe's preflight asks of its child's port."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PORT_RELEASE_S
    while await _accepts(host, port, 1.0):
        if loop.time() >= deadline:
            return True
        await asyncio.sleep(0.01)
    return False


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _target(address: str) -> str:
    """The channel target for ``address``: an IP literal as grpc's ipv4:/ipv6: address, which skips
    the DNS resolver (a hop through its thread for every new channel); a name as it is."""
    host, port = _split(address)
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return address
    return f"ipv4:{host}:{port}" if version == 4 else f"ipv6:[{host}]:{port}"


class GrpcHealthProbe:
    """grpc.health.v1 Check against ``address``; SERVING is ready."""

    def __init__(self, address: str, service: str = "") -> None:
        self.address = address
        self.service = service
        self._channel: grpc.aio.Channel | None = None

    async def preflight(self) -> None:
        if await port_still_taken(*_split(self.address)):
            raise ProbeFailed(f"{self.address} is already in use by another process")

    async def check(self, timeout_s: float) -> None:
        if self._channel is None:
            # Until the port accepts, probe with a bare TCP connect: a gRPC channel that failed
            # to connect backs off ~100 ms whatever its options, which would dominate restarts.
            if not await _accepts(*_split(self.address), timeout_s):
                raise ProbeFailed("connect: refused or no answer")
            self._open()
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=self.service), timeout=timeout_s, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            raise ProbeFailed(f"health check: {exc.code().name}") from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise ProbeFailed(f"health: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")

    def _open(self) -> grpc.aio.Channel:
        """The channel, connecting from now on: the core starts its connect here, alongside our
        loop, not when the first call's task gets its turn."""
        self._channel = grpc.aio.insecure_channel(_target(self.address), options=_FAST_RECONNECT)
        self._channel.get_state(try_to_connect=True)
        return self._channel

    async def watch_ready(self) -> None:
        """Return the moment the child says SERVING: poll the port, then Health.Watch it.

        Polling Check would add up to a poll interval plus a round trip to every restart; a
        Watch stream is told of the change as it happens.
        """
        host, port = _split(self.address)
        while True:
            if not await _accepts(host, port, 1.0):
                await asyncio.sleep(_READY_POLL_S)
                continue
            channel = self._channel or self._open()
            call = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=self.service), wait_for_ready=True)
            try:
                async for reply in call:
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
            except grpc.aio.AioRpcError:
                pass  # the child went away mid-watch; our caller notices if it died
            finally:
                call.cancel()
            await self.close()
            await asyncio.sleep(_READY_POLL_S)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


async def wait_ready(probe: Probe, timeout_s: float) -> None:
    """Probe until the child is ready or ``timeout_s`` has passed (then TimeoutError)."""
    watch = getattr(probe, "watch_ready", None)
    if watch is not None:
        try:
            await asyncio.wait_for(watch(), timeout_s)
        except TimeoutError:
            raise TimeoutError(f"not SERVING after {timeout_s:g}s") from None
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = "no answer"
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError(f"not ready after {timeout_s:g}s: {last}")
        try:
            await asyncio.wait_for(probe.check(min(remaining, 1.0)), remaining)
            return
        except (ProbeFailed, TimeoutError) as exc:
            last = str(exc) or type(exc).__name__
        await asyncio.sleep(_READY_POLL_S)
