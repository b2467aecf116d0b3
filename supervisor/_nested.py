"""Supervisors as children of supervisors, to any depth, and the dynamic supervisor."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from supervisor._child import Exit, LaunchContext
from supervisor._errors import InvalidSpec
from supervisor._errors import Shutdown as ShutdownError
from supervisor._events import EventBus
from supervisor._spec import INFINITY, ChildKind, Shutdown, Strategy, SupervisorFlags, SupervisorSpec
from supervisor._supervisor import Supervisor


class DynamicSupervisor(Supervisor):
    """A one_for_one supervisor that starts empty and gets its children at run time.

    ``flags.max_children`` bounds how many it accepts (start_child fails with MaxChildren).
    """

    def __init__(
        self, flags: SupervisorFlags | None = None, *, path: str = "", bus: EventBus | None = None
    ) -> None:
        flags = flags or SupervisorFlags()
        if flags.strategy is not Strategy.ONE_FOR_ONE:
            raise InvalidSpec(f"a dynamic supervisor is one_for_one, not {flags.strategy.value}")
        super().__init__(SupervisorSpec(flags=flags), path=path, bus=bus)


class _SupervisorRunning:
    def __init__(self, sup: Supervisor) -> None:
        self.supervisor = sup

    @property
    def pid(self) -> int | None:
        return None

    @property
    def address(self) -> str:
        return ""

    async def wait_exit(self) -> Exit:
        try:
            await self.supervisor.wait_stopped()
        except ShutdownError as exc:
            # OTP exits with `shutdown` here, which a transient parent would not restart; we
            # call an escalation abnormal so that the parent's strategy always applies.
            return Exit(normal=False, reason=f"escalated: {exc}")
        return Exit(normal=True, reason="shutdown")

    async def stop(self, shutdown: Shutdown) -> Exit:
        if shutdown is INFINITY or not isinstance(shutdown, int):
            await self.supervisor.stop()
            return Exit.requested()
        try:
            await asyncio.wait_for(self.supervisor.stop(), shutdown / 1000)
        except TimeoutError:
            return Exit(normal=False, reason=f"supervisor did not stop within {shutdown} ms")
        return Exit.requested()


@dataclass(frozen=True, slots=True)
class SupervisorStarter:
    spec: SupervisorSpec
    #: Build a DynamicSupervisor (the spec must then have no children).
    dynamic: bool = False

    @property
    def kind(self) -> ChildKind:
        return ChildKind.SUPERVISOR

    @property
    def address(self) -> str:
        return ""

    async def launch(self, ctx: LaunchContext) -> _SupervisorRunning:
        sup: Supervisor
        if self.dynamic:
            if self.spec.children:
                raise InvalidSpec("a dynamic supervisor starts with no children")
            sup = DynamicSupervisor(self.spec.flags, path=ctx.path, bus=ctx.bus)
        else:
            sup = Supervisor(self.spec, path=ctx.path, bus=ctx.bus)
        await sup.start()
        return _SupervisorRunning(sup)


def supervisor(spec: SupervisorSpec) -> SupervisorStarter:
    """A child that is itself a supervisor over ``spec``."""
    return SupervisorStarter(spec)


def dynamic_supervisor(flags: SupervisorFlags | None = None) -> SupervisorStarter:
    """A child that is a DynamicSupervisor: children come later through start_child."""
    return SupervisorStarter(SupervisorSpec(flags=flags or SupervisorFlags()), dynamic=True)
