"""The supervisor's side of the zygote: start it as a child, and ask it to fork workers.

The supervisor holds live gRPC objects (its control plane, its probes), so it never forks a
worker itself; it asks the zygote, which has imported everything heavy and created nothing.
The zygote is an ordinary supervised child: if it dies it is restarted like any other, and the
workers it forked live on, because they are the supervisor's children, not the zygote's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from supervisor._child import Exit, LaunchContext
from supervisor._orphans import ParentWatchPipe, become_subreaper
from supervisor._pidwatch import reap_strays
from supervisor._probe import Liveness, ProbeFailed
from supervisor._spec import DEFAULT_START_TIMEOUT_S, ChildKind, Shutdown

#: Imported by every zygote: what each worker would otherwise import after every restart.
BASE_PRELOAD: tuple[str, ...] = (
    "grpc", "grpc.aio", "grpc_health.v1.health", "grpc_reflection.v1alpha.reflection",
    "grpc_status.rpc_status", "google.protobuf", "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
)


class ZygoteError(Exception):
    pass


class _Channel:
    """Request/reply over the control socket, one request at a time.

    Every request carries an id that its reply echoes. A request cancelled after it was sent
    (a probe's deadline) leaves its reply in the stream; without the id, the next request would
    read it as its own, and a spawn would be told another process's pid.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        async with self._lock:
            self._writer.write(json.dumps({**message, "id": request_id}).encode() + b"\n")
            await self._writer.drain()
            while True:
                line = await self._reader.readline()
                if not line:
                    raise ZygoteError("zygote closed its control socket")
                reply: dict[str, Any] = json.loads(line)
                if reply.get("id") == request_id:
                    break  # older replies belong to requests whose callers gave up
        if not reply.get("ok"):
            raise ZygoteError(str(reply.get("error")))
        return reply

    def notify(self, message: dict[str, Any]) -> None:
        """Send a message that has no reply (nothing to wait for, so no lock to take)."""
        self._writer.write(json.dumps(message).encode() + b"\n")

    def close(self) -> None:
        self._writer.close()


class _PingProbe:
    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    async def preflight(self) -> None:
        return None

    async def check(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._channel.request({"op": "ping"}), timeout_s)
        except (ZygoteError, OSError) as exc:  # OSError: a zygote that died with our ping unread
            raise ProbeFailed(f"zygote ping: {exc}") from None

    async def close(self) -> None:
        return None


class Zygote:
    """A handle on the current zygote process, shared by every starter that forks through it.

    ``preload`` names the modules to import once in the zygote (the service modules, say);
    a "module:function" entry is called after the imports, to do first-use work once. ``warm``
    names "module:function"s each pre-forked process calls while it waits to become a child: the
    first work after a fork (which the zygote cannot do for its children), off their start.
    """

    def __init__(self, preload: Sequence[str] = (), pool: int = 1, title: str = "", warm: Sequence[str] = ()
                 ) -> None:
        self.preload = tuple(dict.fromkeys((*BASE_PRELOAD, *preload)))
        self.warm = tuple(warm)
        #: Process titles: "TITLE: zygote" for the zygote, "TITLE: ID" for each forked child ("": unchanged).
        self.title = title
        #: Pre-forked processes the zygote keeps waiting for a spawn (0: fork on request).
        self.pool = pool
        self._pipe: ParentWatchPipe | None = None
        self._channel: _Channel | None = None
        self._ready: asyncio.Event | None = None
        self.spawned = 0

    def starter(self, liveness: Liveness | None = None, start_timeout_s: float = DEFAULT_START_TIMEOUT_S
                ) -> ZygoteStarter:
        """The child spec ``start`` that runs this zygote; give it a place before any worker."""
        return ZygoteStarter(self, liveness if liveness is not None else Liveness(), start_timeout_s)

    async def spawn(self, spec: dict[str, Any], timeout_s: float = DEFAULT_START_TIMEOUT_S) -> int:
        """Fork a child per ``spec`` (see supervisor._zygote); waits for a zygote to be up."""
        ready = self._event()
        try:
            if not ready.is_set():  # wait_for's task costs a restart loop turns (~1 ms under load)
                await asyncio.wait_for(ready.wait(), timeout_s)
        except TimeoutError:
            raise ZygoteError(f"no zygote running after {timeout_s:g}s") from None
        assert self._channel is not None
        reply = await self._channel.request({"op": "spawn", "spec": spec})
        self.spawned += 1
        return int(reply["pid"])

    def settled(self) -> None:
        """Say that the child of the last spawn is up (or failed): the zygote forks the next warm
        process now, off that child's start (supervisor._zygote)."""
        if self._channel is not None:
            self._channel.notify({"op": "settled"})

    def close(self) -> None:
        """Release the parent-watch pipe: every worker still alive will now exit."""
        reap_strays()
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    def _event(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    def _watch_fd(self) -> int:
        if self._pipe is None:
            self._pipe = ParentWatchPipe()
        return self._pipe.read_fd

    def _attach(self, channel: _Channel) -> None:
        self._channel = channel
        self._event().set()

    def _detach(self, channel: _Channel) -> None:
        if self._channel is channel:
            self._channel = None
            self._event().clear()
        channel.close()


class _ZygoteRunning:
    """The zygote's ProcessRunning, which also takes the zygote off duty when it ends."""

    def __init__(self, inner: Any, zygote: Zygote, channel: _Channel) -> None:
        self._inner = inner
        self._zygote = zygote
        self._channel = channel

    @property
    def pid(self) -> int | None:
        pid: int = self._inner.pid
        return pid

    @property
    def address(self) -> str:
        return ""

    async def wait_exit(self) -> Exit:
        exit_: Exit = await self._inner.wait_exit()
        self._zygote._detach(self._channel)
        return exit_

    async def stop(self, shutdown: Shutdown) -> Exit:
        self._zygote._detach(self._channel)  # closing the socket ends its loop; SIGTERM follows
        exit_: Exit = await self._inner.stop(shutdown)
        return exit_


@dataclass(frozen=True, slots=True)
class ZygoteStarter:
    zygote: Zygote
    liveness: Liveness = field(default_factory=Liveness)
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S

    @property
    def kind(self) -> ChildKind:
        return ChildKind.ZYGOTE

    @property
    def address(self) -> str:
        return ""

    async def launch(self, ctx: LaunchContext) -> _ZygoteRunning:
        from supervisor._process import _launch  # the process machinery, shared with workers

        become_subreaper()
        ours, theirs = socket.socketpair()
        theirs.set_inheritable(True)
        argv = [
            sys.executable, "-m", "supervisor._zygote", "--control-fd", str(theirs.fileno()),
            "--watch-fd", str(self.zygote._watch_fd()), "--supervisor-pid", str(os.getpid()),
            "--preload", ",".join(self.zygote.preload), "--pool", str(self.zygote.pool),
            "--title", self.zygote.title, "--warm", ",".join(self.zygote.warm),
        ]
        reap_strays()  # the warm pool of a zygote that died before us is gone by now
        env = {**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "0"}
        try:
            # posix_spawn runs no Python in the child: safe in a process that holds gRPC objects.
            pid = os.posix_spawn(sys.executable, argv, env)  # noqa: ASYNC221  (vfork+exec: no wait)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        channel = _Channel(reader, writer)

        async def spawned() -> int:
            return pid

        try:
            inner = await _launch(ctx, spawned, "", _PingProbe(channel), self.liveness, self.start_timeout_s)
        except BaseException:
            channel.close()
            raise
        self.zygote._attach(channel)
        return _ZygoteRunning(inner, self.zygote, channel)
