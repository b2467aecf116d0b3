"""The protocol between a supervisor and what it supervises.

A :class:`Starter` knows how to bring one child up; each successful ``launch`` gives a
:class:`Running`, which the supervisor watches and stops. Process children, task children and
nested supervisors all implement this pair, so restart decisions never depend on the kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from supervisor._events import EventBus, EventType
from supervisor._spec import ChildKind, Shutdown


@dataclass(frozen=True, slots=True)
class Exit:
    """Why a child stopped running."""

    #: Normal exits do not restart transient children (exit code 0, return, requested stop).
    normal: bool
    reason: str
    exit_code: int | None = None
    signal: int | None = None

    @classmethod
    def requested(cls) -> Exit:
        return cls(normal=True, reason="shutdown")


#: Called by a running child to report something the supervisor should publish (probe misses).
EmitFn = Callable[[EventType, str], None]


@dataclass(frozen=True, slots=True)
class LaunchContext:
    #: Path of the child from the root, e.g. "core/sequencer".
    path: str
    emit: EmitFn
    #: The tree's event bus, for children that are supervisors themselves.
    bus: EventBus


class Running(Protocol):
    """One started instance of a child."""

    @property
    def pid(self) -> int | None: ...

    @property
    def address(self) -> str: ...

    async def wait_exit(self) -> Exit:
        """Return once the child has exited, for whatever reason. Safe to call many times."""
        ...

    async def stop(self, shutdown: Shutdown) -> Exit:
        """Stop the child as its shutdown setting says and return how it ended."""
        ...


class Starter(Protocol):
    """Starts one kind of child; returns only when the child is ready (OTP: init/1 returned)."""

    @property
    def kind(self) -> ChildKind: ...

    @property
    def address(self) -> str: ...

    async def launch(self, ctx: LaunchContext) -> Running:
        """Start the child and wait until it is ready; raise on failure (the child is gone then)."""
        ...
