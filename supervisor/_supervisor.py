"""The supervisor: starts children in order, watches them, and decides every restart.

One asyncio lock serialises everything that changes the set of children (exits, API calls,
start and stop), the way OTP's supervisor is one gen_server handling one message at a time.
A child's exit is noticed by a watcher task per running child; the watcher only reports, the
supervisor decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from supervisor._child import EmitFn, Exit, LaunchContext, Running
from supervisor._errors import (
    AlreadyPresent,
    AlreadyStarted,
    MaxChildren,
    NotFound,
    NotRunning,
    Restarting,
    Shutdown,
    StartFailed,
)
from supervisor._errors import Running as RunningError
from supervisor._events import EventBus, EventType
from supervisor._intensity import RestartIntensity
from supervisor._spec import (
    AutoShutdown,
    ChildKind,
    ChildSpec,
    ChildState,
    Restart,
    Strategy,
    SupervisorSpec,
)


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One row of which_children."""

    #: Path from the root ("core/sequencer").
    path: str
    id: str
    kind: ChildKind
    state: ChildState
    pid: int | None
    restarts: int
    uptime_s: float
    address: str
    restart: Restart
    significant: bool
    last_exit_reason: str
    #: Path of the owning supervisor ("" for the root's children).
    parent: str


@dataclass(frozen=True, slots=True)
class ChildCounts:
    specs: int
    active: int
    supervisors: int
    workers: int


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    children: int
    active: int
    restarts_in_window: int
    total_restarts: int
    state: str


class _Child:
    """The supervisor's mutable record of one child spec."""

    __slots__ = ("last_exit", "restarts", "running", "spec", "started_at", "state", "watcher")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.state = ChildState.TERMINATED
        self.running: Running | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.restarts = 0
        self.started_at: float | None = None
        self.last_exit: Exit | None = None


class Supervisor:
    """An OTP supervisor over any mix of process, task and supervisor children."""

    def __init__(self, spec: SupervisorSpec, *, path: str = "", bus: EventBus | None = None) -> None:
        self.spec = spec
        self.flags = spec.flags
        #: Path of this supervisor from the root; "" for the root.
        self.path = path
        self.bus = bus if bus is not None else EventBus()
        self._children: list[_Child] = [_Child(s) for s in spec.children]
        self._intensity = RestartIntensity(self.flags.intensity, self.flags.period_s)
        self._lock = asyncio.Lock()
        self._state = "idle"  # idle -> running -> stopping -> stopped | failed
        self._done: asyncio.Future[None] | None = None
        self._total_restarts = 0
        self._retries: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every child in order, each ready before the next.

        If one fails, the children already started are stopped in reverse order and this
        raises :class:`StartFailed` naming the child and why.
        """
        if self._state != "idle":
            raise RuntimeError(f"supervisor {self.path or '<root>'} is {self._state}, not idle")
        self._done = asyncio.get_running_loop().create_future()
        async with self._lock:
            self._state = "running"
            started: list[_Child] = []
            for child in list(self._children):
                try:
                    await self._start_child(child)
                except StartFailed:
                    for c in reversed(started):
                        await self._stop_child(c)
                    self._finish("failed", None)
                    raise
                started.append(child)

    async def stop(self) -> None:
        """Stop every child in reverse start order; the supervisor ends normally."""
        if self._state in ("stopped", "failed", "idle"):
            self._state = "stopped" if self._state == "idle" else self._state
            return
        self._state = "stopping"
        async with self._lock:
            await self._stop_all()
            self._finish("stopped", None)

    async def wait_stopped(self) -> None:
        """Wait until the supervisor ends; raises :class:`Shutdown` if it gave up."""
        if self._done is None:
            raise NotRunning("supervisor was never started")
        await asyncio.shield(self._done)

    @property
    def running(self) -> bool:
        return self._state == "running"

    # -- the OTP API ---------------------------------------------------------------------------

    async def start_child(self, spec: ChildSpec) -> ChildInfo:
        """Add a child and start it. Errors: AlreadyStarted, AlreadyPresent, MaxChildren, StartFailed."""
        async with self._lock:
            self._require_running()
            existing = self._find(spec.id)
            if existing is not None:
                if existing.running is not None or existing.state is ChildState.RESTARTING:
                    raise AlreadyStarted(f"child {spec.id} is already started")
                raise AlreadyPresent(f"child {spec.id} is already present; restart_child or delete_child it")
            limit = self.flags.max_children
            if limit is not None and len(self._children) >= limit:
                raise MaxChildren(f"supervisor {self.path or '<root>'} has its max_children={limit}")
            child = _Child(spec)
            self._children.append(child)
            try:
                await self._start_child(child)
            except StartFailed:
                self._children.remove(child)  # as in OTP: a child that never started leaves no spec
                raise
            return self._info(child)

    async def restart_child(self, child_id: str) -> ChildInfo:
        """Start again a kept spec that is not running. Errors: NotFound, Running, Restarting."""
        async with self._lock:
            self._require_running()
            child = self._get(child_id)
            if child.state is ChildState.RESTARTING:
                raise Restarting(f"child {child_id} is restarting")
            if child.running is not None:
                raise RunningError(f"child {child_id} is running")
            await self._start_child(child)
            return self._info(child)

    async def terminate_child(self, child_id: str) -> ChildInfo:
        """Stop a child as its shutdown says; the spec stays unless the child is temporary."""
        async with self._lock:
            self._require_running()
            child = self._get(child_id)
            await self._stop_child(child)
            self.bus.publish(EventType.TERMINATED, self._path_of(child), reason="terminate_child")
            info = self._info(child)
            if child.spec.restart is Restart.TEMPORARY:
                self._children.remove(child)
            return info

    async def delete_child(self, child_id: str) -> None:
        """Remove the spec of a child that does not run. Errors: NotFound, Running, Restarting."""
        async with self._lock:
            self._require_running()
            child = self._get(child_id)
            if child.state is ChildState.RESTARTING:
                raise Restarting(f"child {child_id} is restarting")
            if child.running is not None:
                raise RunningError(f"child {child_id} is running; terminate_child it first")
            self._children.remove(child)
            self.bus.publish(EventType.DELETED, self._path_of(child))

    def which_children(self) -> list[ChildInfo]:
        return [self._info(c) for c in self._children]

    def count_children(self) -> ChildCounts:
        kinds = [c.spec.start.kind for c in self._children]
        return ChildCounts(
            specs=len(self._children),
            active=sum(1 for c in self._children if c.running is not None),
            supervisors=sum(1 for k in kinds if k is ChildKind.SUPERVISOR),
            workers=sum(1 for k in kinds if k is not ChildKind.SUPERVISOR),
        )

    def child_supervisor(self, child_id: str) -> Supervisor | None:
        """The running nested supervisor behind a child, if it is one."""
        child = self._find(child_id)
        running = child.running if child is not None else None
        nested = getattr(running, "supervisor", None)
        return nested if isinstance(nested, Supervisor) else None

    def walk(self) -> list[ChildInfo]:
        """Every child of the tree below this supervisor, depth first, in start order."""
        rows: list[ChildInfo] = []
        for child in self._children:
            rows.append(self._info(child))
            nested = self.child_supervisor(child.spec.id)
            if nested is not None:
                rows.extend(nested.walk())
        return rows

    def resolve(self, path: str) -> tuple[Supervisor, str]:
        """Split a child path into (its owning supervisor, its id). Raises NotFound."""
        parts = [p for p in path.split("/") if p]
        if not parts:
            raise NotFound("empty child path")
        sup: Supervisor = self
        for part in parts[:-1]:
            nested = sup.child_supervisor(part)
            if nested is None:
                raise NotFound(f"no running supervisor {part!r} in {path!r}")
            sup = nested
        if sup._find(parts[-1]) is None:
            raise NotFound(f"no child {path!r}")
        return sup, parts[-1]

    def statistics(self) -> SupervisorStatistics:
        return SupervisorStatistics(
            children=len(self._children),
            active=sum(1 for c in self._children if c.running is not None),
            restarts_in_window=self._intensity.recent(),
            total_restarts=self._total_restarts,
            state=self._state,
        )

    # -- starting and stopping one child ---------------------------------------------------------

    async def _start_child(self, child: _Child) -> None:
        path = self._path_of(child)
        child.state = ChildState.STARTING
        ctx = LaunchContext(path=path, emit=self._emitter(path), bus=self.bus)
        try:
            running = await child.spec.start.launch(ctx)
        except asyncio.CancelledError:
            child.state = ChildState.TERMINATED
            raise
        except Exception as exc:
            child.state = ChildState.TERMINATED
            why = exc.why if isinstance(exc, StartFailed) else f"{type(exc).__name__}: {exc}"
            self.bus.publish(EventType.START_FAILED, path, reason=why, normal=False)
            raise StartFailed(path, why) from exc
        child.running = running
        child.state = ChildState.RUNNING
        child.started_at = time.monotonic()
        child.watcher = asyncio.create_task(self._watch(child, running), name=f"watch:{path}")
        self.bus.publish(EventType.STARTED, path, pid=running.pid)

    async def _stop_child(self, child: _Child) -> None:
        running, watcher = child.running, child.watcher
        if running is None:
            child.state = ChildState.TERMINATED
            return
        # Detach first: the watcher will see an exit it no longer owns and ignore it.
        child.running = None
        child.watcher = None
        child.state = ChildState.STOPPING
        try:
            child.last_exit = await running.stop(child.spec.effective_shutdown)
        finally:
            child.state = ChildState.TERMINATED
            child.started_at = None
            if watcher is not None and not watcher.done():
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        self.bus.publish(
            EventType.EXITED, self._path_of(child), pid=running.pid,
            reason=child.last_exit.reason, normal=child.last_exit.normal,
        )

    async def _stop_all(self) -> None:
        for child in reversed(self._children):
            await self._stop_child(child)

    # -- exits and restarts: where restarts are decided ------------------------------------

    async def _watch(self, child: _Child, running: Running) -> None:
        exit_ = await running.wait_exit()
        async with self._lock:
            if child.running is not running or self._state != "running":
                return  # we stopped it ourselves, or the whole supervisor is going down
            await self._handle_exit(child, exit_)

    async def _handle_exit(self, child: _Child, exit_: Exit) -> None:
        path = self._path_of(child)
        pid = child.running.pid if child.running is not None else None
        child.running = None
        child.watcher = None
        child.last_exit = exit_
        child.started_at = None
        self.bus.publish(EventType.EXITED, path, pid=pid, reason=exit_.reason, normal=exit_.normal)
        restart = child.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and exit_.normal):
            child.state = ChildState.TERMINATED
            if restart is Restart.TEMPORARY:
                self._children.remove(child)
            if child.spec.significant and self._auto_shutdown_due():
                await self._auto_shutdown(path)
            return
        child.state = ChildState.RESTARTING
        await self._restart(child)

    def _auto_shutdown_due(self) -> bool:
        mode = self.flags.auto_shutdown
        if mode is AutoShutdown.ANY_SIGNIFICANT:
            return True
        if mode is AutoShutdown.ALL_SIGNIFICANT:
            return not any(c.spec.significant and c.running is not None for c in self._children)
        return False

    async def _auto_shutdown(self, because: str) -> None:
        await self._stop_all()
        self.bus.publish(
            EventType.AUTO_SHUTDOWN, self.path or "", reason=f"significant child {because} exited"
        )
        self._finish("stopped", None)

    async def _restart(self, child: _Child) -> None:
        """Restart per strategy; every attempt counts toward intensity, failed ones too."""
        if self._state != "running":
            return
        if self._intensity.add():
            await self._escalate(
                f"reached max restart intensity: more than {self.flags.intensity} restarts "
                f"in {self.flags.period_s:g}s (last: {self._path_of(child)})"
            )
            return
        self._total_restarts += 1
        group = self._restart_group(child)
        try:
            for c in reversed(group):
                if c is not child:
                    await self._stop_child(c)
            for c in group:
                if c.spec.restart is Restart.TEMPORARY and c is not child:
                    # A temporary child stopped by its siblings' restart is gone, as in OTP.
                    self._children.remove(c)
                    continue
                c.state = ChildState.RESTARTING
                await self._start_child(c)
                c.restarts += 1
                self.bus.publish(EventType.RESTARTED, self._path_of(c), pid=c.running.pid if c.running else None)
        except StartFailed:
            for c in group:
                if c.running is None and c in self._children:
                    c.state = ChildState.RESTARTING
            # Like OTP's try_again message: release the supervisor between attempts so that
            # API calls are answered (with Restarting) instead of queueing behind a crash loop.
            retry = asyncio.create_task(self._try_again(child), name=f"try_again:{self._path_of(child)}")
            self._retries.add(retry)
            retry.add_done_callback(self._retries.discard)

    async def _try_again(self, child: _Child) -> None:
        async with self._lock:
            if child in self._children and child.state is ChildState.RESTARTING:
                await self._restart(child)

    def _restart_group(self, child: _Child) -> list[_Child]:
        """Which children a restart of ``child`` touches, in start order."""
        strategy = self.flags.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return [child]
        # one_for_all: every child; rest_for_one: the child and those started after it.
        members = self._children if strategy is Strategy.ONE_FOR_ALL else self._children[self._children.index(child):]
        # Children terminated on purpose (terminate_child, transient normal exit) stay down.
        return [c for c in members if c is child or c.running is not None or c.state is ChildState.RESTARTING]

    async def _escalate(self, reason: str) -> None:
        await self._stop_all()
        for c in self._children:
            c.state = ChildState.TERMINATED
        self.bus.publish(EventType.ESCALATED, self.path or "", reason=reason, normal=False)
        self._finish("failed", Shutdown(reason))

    # -- small helpers -------------------------------------------------------------------------------

    def _finish(self, state: str, error: BaseException | None) -> None:
        self._state = state
        for retry in self._retries:
            if retry is not asyncio.current_task():
                retry.cancel()
        if self._done is not None and not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)
                self._done.exception()  # mark retrieved: nobody may be waiting on a root's failure

    def _require_running(self) -> None:
        if self._state != "running":
            raise NotRunning(f"supervisor {self.path or '<root>'} is {self._state}")

    def _find(self, child_id: str) -> _Child | None:
        return next((c for c in self._children if c.spec.id == child_id), None)

    def _get(self, child_id: str) -> _Child:
        child = self._find(child_id)
        if child is None:
            raise NotFound(f"no child {child_id!r} in supervisor {self.path or '<root>'}")
        return child

    def _path_of(self, child: _Child) -> str:
        return f"{self.path}/{child.spec.id}" if self.path else child.spec.id

    def _emitter(self, path: str) -> EmitFn:
        def emit(type: EventType, reason: str) -> None:
            self.bus.publish(type, path, reason=reason, normal=False)

        return emit

    def _info(self, child: _Child) -> ChildInfo:
        running = child.running
        return ChildInfo(
            path=self._path_of(child),
            id=child.spec.id,
            kind=child.spec.start.kind,
            state=child.state,
            pid=running.pid if running is not None else None,
            restarts=child.restarts,
            uptime_s=time.monotonic() - child.started_at if child.started_at is not None else 0.0,
            address=running.address if running is not None else child.spec.start.address,
            restart=child.spec.restart,
            significant=child.spec.significant,
            last_exit_reason=child.last_exit.reason if child.last_exit is not None else "",
            parent=self.path,
        )
