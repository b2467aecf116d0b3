"""Task children: asyncio tasks inside the supervisor's own process (a worker's loops)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from supervisor._child import Exit, LaunchContext
from supervisor._errors import StartFailed
from supervisor._spec import BRUTAL_KILL, INFINITY, ChildKind, Shutdown


class TaskStatus:
    """Handed to a task function that declares a ``task_status`` parameter (as in trio).

    The child counts as started only when the function calls :meth:`started`; until then the
    supervisor waits, so a loop can finish its own setup before the next child starts.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def started(self) -> None:
        self._event.set()


TaskFn = Callable[..., Awaitable[object]]


class _TaskRunning:
    def __init__(self, task: asyncio.Task[object]) -> None:
        self._task = task
        self._stop_requested = False

    @property
    def pid(self) -> int | None:
        return None

    @property
    def address(self) -> str:
        return ""

    async def wait_exit(self) -> Exit:
        await asyncio.wait([self._task])
        return self._exit()

    async def stop(self, shutdown: Shutdown) -> Exit:
        self._stop_requested = True
        self._task.cancel()
        if shutdown is BRUTAL_KILL:
            # Cancellation is the hardest kill a task has; give it one loop turn to unwind.
            await asyncio.wait([self._task], timeout=0)
        elif shutdown is INFINITY:
            await asyncio.wait([self._task])
        else:
            assert isinstance(shutdown, int)
            await asyncio.wait([self._task], timeout=shutdown / 1000)
        if not self._task.done():
            return Exit(normal=False, reason=f"task ignored cancellation for {shutdown} ms; abandoned")
        return self._exit()

    def _exit(self) -> Exit:
        task = self._task
        if task.cancelled():
            if self._stop_requested:
                return Exit.requested()
            return Exit(normal=False, reason="cancelled")
        exc = task.exception()
        if exc is None:
            return Exit(normal=True, reason="returned")
        return Exit(normal=False, reason=f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class TaskStarter:
    fn: TaskFn

    @property
    def kind(self) -> ChildKind:
        return ChildKind.TASK

    @property
    def address(self) -> str:
        return ""

    async def launch(self, ctx: LaunchContext) -> _TaskRunning:
        wants_status = "task_status" in inspect.signature(self.fn).parameters
        status = TaskStatus()
        coro = self.fn(task_status=status) if wants_status else _after_a_turn(self.fn)
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        task.add_done_callback(_retrieve)
        running = _TaskRunning(task)
        if not wants_status:
            return running
        ready = asyncio.create_task(status._event.wait())
        try:
            await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ready
        if not status._event.is_set():
            raise StartFailed(ctx.path, f"task ended before it started: {running._exit().reason}")
        return running


async def _after_a_turn(fn: TaskFn) -> object:
    """``fn()`` from the loop's next turn. Such a task counts as started at once, so its starter
    goes on at once: what it does then (a worker announcing SERVING, whose Health.Watch replies are
    queued by it) would otherwise wait behind every new task's first step, ~5-10 ms of a worker's
    L1 clients and first reads on the way to being seen SERVING."""
    await asyncio.sleep(0)
    return await fn()


def _retrieve(task: asyncio.Future[object]) -> None:
    # The supervisor reads the exception through Exit; keep asyncio from logging it twice.
    if not task.cancelled():
        task.exception()


def task(fn: TaskFn) -> TaskStarter:
    """A child that runs ``await fn()`` (or ``fn(task_status=...)``) as an asyncio task."""
    return TaskStarter(fn)
