"""Process children: OS processes forked by the zygote, probed for readiness and liveness.

Two kinds share everything but what they run: a *forked* child calls a Python function in a
fresh fork of the preloaded zygote (our gRPC workers, probed with grpc.health.v1); an *external*
child execs a program, probed however its spec says (the supervisor knows nothing of what the
program speaks). Both are stopped per their shutdown setting: SIGKILL for brutal_kill,
SIGTERM then SIGKILL after a timeout, or SIGTERM and wait for infinity.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from supervisor._child import Exit, LaunchContext
from supervisor._errors import StartFailed
from supervisor._events import EventType
from supervisor._pidwatch import PidWatch
from supervisor._probe import GrpcHealthProbe, Liveness, Probe, ProbeFailed, wait_ready
from supervisor._spec import BRUTAL_KILL, DEFAULT_START_TIMEOUT_S, INFINITY, ChildKind, Shutdown
from supervisor._zygote_client import Zygote


class ProcessRunning:
    """A live process child: its exit, its liveness loop, and how to stop it."""

    def __init__(
        self, watch: PidWatch, address: str, probe: Probe, liveness: Liveness | None, ctx: LaunchContext
    ) -> None:
        self._watch = watch
        self._address = address
        self._probe = probe
        self._ctx = ctx
        self._hang_reason: str | None = None
        self._liveness: asyncio.Task[None] | None = None
        if liveness is not None:
            self._liveness = asyncio.create_task(self._watch_liveness(liveness), name=f"liveness:{ctx.path}")

    @property
    def pid(self) -> int:
        return self._watch.pid

    @property
    def address(self) -> str:
        return self._address

    async def wait_exit(self) -> Exit:
        exit_ = await self._watch.wait()
        await self._cleanup()
        if self._hang_reason is not None:
            return Exit(normal=False, reason=self._hang_reason, signal=exit_.signal)
        return exit_

    async def stop(self, shutdown: Shutdown) -> Exit:
        await self._cleanup()
        if self._watch.exited:
            return await self._watch.wait()
        if shutdown is BRUTAL_KILL:
            self._watch.signal(signal.SIGKILL)
            return await self._watch.wait()
        self._watch.signal(signal.SIGTERM)
        if shutdown is INFINITY:
            return await self._watch.wait()
        assert isinstance(shutdown, int)
        try:
            return await asyncio.wait_for(self._watch.wait(), shutdown / 1000)
        except TimeoutError:
            self._watch.signal(signal.SIGKILL)
            exit_ = await self._watch.wait()
            return Exit(normal=False, reason=f"did not stop within {shutdown} ms; {exit_.reason}",
                        signal=exit_.signal)

    async def _watch_liveness(self, liveness: Liveness) -> None:
        misses = 0
        while not self._watch.exited:
            await asyncio.sleep(liveness.interval_s)
            try:
                await asyncio.wait_for(self._probe.check(liveness.timeout_s), liveness.timeout_s)
                misses = 0
            except (ProbeFailed, TimeoutError) as exc:
                if self._watch.exited:
                    return
                misses += 1
                why = str(exc) or f"no answer within {liveness.timeout_s:g}s"
                self._ctx.emit(EventType.PROBE_FAILED, f"miss {misses}/{liveness.failures}: {why}")
                if misses >= liveness.failures:
                    # A hang is a crash we had to cause: SIGKILL, since a hung process may
                    # well ignore SIGTERM (or be stopped, as SIGSTOP does).
                    self._hang_reason = f"hung: {misses} probes missed in a row ({why})"
                    self._watch.signal(signal.SIGKILL)
                    return

    async def _cleanup(self) -> None:
        task, self._liveness = self._liveness, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._probe.close()


async def _launch(
    ctx: LaunchContext, spawn: Callable[[], Any], address: str, probe: Probe,
    liveness: Liveness | None, start_timeout_s: float,
) -> ProcessRunning:
    """Spawn, then wait for readiness unless the process dies first."""
    try:
        await probe.preflight()
        pid = await spawn()
    except Exception as exc:
        await probe.close()
        raise StartFailed(ctx.path, f"spawn failed: {exc}") from exc
    watch = PidWatch(pid)
    ready = asyncio.create_task(wait_ready(probe, start_timeout_s))
    died = asyncio.create_task(watch.wait())
    try:
        await asyncio.wait([ready, died], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        watch.signal(signal.SIGKILL)
        raise
    finally:
        for t in (ready, died):
            t.cancel()
    if died.done() and not died.cancelled():
        await probe.close()
        raise StartFailed(ctx.path, f"{died.result().reason} before it was ready")
    if ready.cancelled() or ready.exception() is not None:
        why = "cancelled" if ready.cancelled() else str(ready.exception())
        watch.signal(signal.SIGKILL)
        await watch.wait()
        await probe.close()
        raise StartFailed(ctx.path, why)
    return ProcessRunning(watch, address, probe, liveness, ctx)


async def _launch_forked(
    ctx: LaunchContext, zygote: Zygote, spec: dict[str, Any], address: str, probe: Probe,
    liveness: Liveness | None, start_timeout_s: float,
) -> ProcessRunning:
    """``_launch`` of a child the zygote forks per ``spec``; then the zygote's next warm process may
    take more than the CPU that child's start left free."""
    try:
        return await _launch(ctx, lambda: zygote.spawn(spec), address, probe, liveness, start_timeout_s)
    finally:
        zygote.settled()


@dataclass(frozen=True, slots=True)
class ForkedStarter:
    """A Python function run in a fresh fork of the zygote, ready when its gRPC health says so."""

    zygote: Zygote
    #: "module:function", called with ``payload`` in the forked child.
    target: str
    #: host:port of the child's gRPC server (its health service is the probe).
    address: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    kind_: ChildKind = ChildKind.WORKER
    liveness: Liveness | None = field(default_factory=Liveness)
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> ChildKind:
        return self.kind_

    async def launch(self, ctx: LaunchContext) -> ProcessRunning:
        spec = {"id": ctx.path, "kind": "python", "target": self.target, "payload": dict(self.payload),
                "env": dict(self.env)}
        return await _launch_forked(ctx, self.zygote, spec, self.address, GrpcHealthProbe(self.address),
                                    self.liveness, self.start_timeout_s)


@dataclass(frozen=True, slots=True)
class ExternalStarter:
    """A non-Python program, exec'd from a zygote fork, probed by the spec's own probe."""

    zygote: Zygote
    argv: tuple[str, ...]
    #: Where the program answers (a URL, host:port: whatever ``probe`` understands).
    address: str
    #: Makes the probe for ``address``, afresh at each launch (a probe holds its connection).
    probe: Callable[[str], Probe]
    #: Where the program's stdout and stderr go (appended); None: inherit ours.
    output: str | None = None
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    liveness: Liveness | None = field(default_factory=Liveness)
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S

    @property
    def kind(self) -> ChildKind:
        return ChildKind.EXTERNAL

    async def launch(self, ctx: LaunchContext) -> ProcessRunning:
        spec = {"id": ctx.path, "kind": "exec", "argv": list(self.argv), "env": dict(self.env),
                "cwd": self.cwd, "output": self.output}
        return await _launch_forked(ctx, self.zygote, spec, self.address, self.probe(self.address),
                                    self.liveness, self.start_timeout_s)


def forked(zygote: Zygote, target: str, address: str, **kw: Any) -> ForkedStarter:
    """A worker child: ``target(payload)`` in a fork of ``zygote``, serving gRPC on ``address``."""
    return ForkedStarter(zygote, target, address, **kw)


def external(zygote: Zygote, argv: list[str] | tuple[str, ...], address: str, probe: Callable[[str], Probe],
             **kw: Any) -> ExternalStarter:
    """An external program child, ready when ``probe(address)`` says so."""
    return ExternalStarter(zygote, tuple(argv), address, probe, **kw)
