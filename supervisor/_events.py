"""What happens in a tree, as records, and the bus that carries them to watchers."""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass


class EventType(enum.Enum):
    STARTED = "started"
    EXITED = "exited"
    RESTARTED = "restarted"
    #: The supervisor hit its restart intensity, stopped its children and failed.
    ESCALATED = "escalated"
    PROBE_FAILED = "probe_failed"
    START_FAILED = "start_failed"
    TERMINATED = "terminated"
    DELETED = "deleted"
    AUTO_SHUTDOWN = "auto_shutdown"


@dataclass(frozen=True, slots=True)
class Event:
    sequence: int
    type: EventType
    #: Path of the child from the root ("core/sequencer"); the supervisor's own path for
    #: ESCALATED and AUTO_SHUTDOWN.
    child_id: str
    pid: int | None
    reason: str
    normal: bool
    time: float


class EventBus:
    """Fan-out of events to any number of watchers.

    A watcher that falls ``maxsize`` events behind loses the oldest ones rather than slowing
    the supervisor down: restart decisions must never wait on a slow observer.
    """

    def __init__(self, maxsize: int = 1024) -> None:
        self._maxsize = maxsize
        self._queues: set[asyncio.Queue[Event]] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._seq = itertools.count(1)
        self.dropped = 0

    def publish(
        self, type: EventType, child_id: str, *, pid: int | None = None, reason: str = "", normal: bool = True
    ) -> Event:
        ev = Event(next(self._seq), type, child_id, pid, reason, normal, time.time())
        for listener in list(self._listeners):
            listener(ev)
        for q in self._queues:
            if q.full():
                q.get_nowait()
                self.dropped += 1
            q.put_nowait(ev)
        return ev

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn`` synchronously for every event (it must not block)."""
        self._listeners.append(fn)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        q: asyncio.Queue[Event] = asyncio.Queue(self._maxsize)
        self._queues.add(q)
        try:
            yield q
        finally:
            self._queues.discard(q)
