from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from supervisor import ChildSpec, ChildState, Supervisor, SupervisorFlags, SupervisorSpec
from supervisor._probe import Liveness
from supervisor._process import forked
from supervisor._zygote_client import Zygote
from tests.ports import free_port

WORKER = "tests.supervisor.workers:health_worker"




async def wait_until(pred: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {within}s")
        await asyncio.sleep(0.005)


def child(sup: Supervisor, cid: str) -> Any:
    return next(c for c in sup.which_children() if c.id == cid)


async def wait_running(sup: Supervisor, cid: str, other_than: int | None = None) -> int:
    def ok() -> bool:
        c = child(sup, cid)
        return c.state is ChildState.RUNNING and c.pid is not None and c.pid != other_than

    await wait_until(ok, what=f"{cid} running")
    pid: int = child(sup, cid).pid
    return pid


class Tree:
    """A zygote plus worker children under one supervisor, torn down after the test."""

    def __init__(self) -> None:
        self.zygote = Zygote(preload=["tests.supervisor.workers"])
        self.sup: Supervisor | None = None

    def worker(self, cid: str, *, payload: dict[str, Any] | None = None, liveness: Liveness | None = None,
               start_timeout_s: float = 10.0, address: str | None = None, **kw: Any) -> ChildSpec:
        address = address or f"127.0.0.1:{free_port()}"
        body = {"address": address, **(payload or {})}
        starter = forked(self.zygote, WORKER, address, payload=body, liveness=liveness,
                         start_timeout_s=start_timeout_s)
        return ChildSpec(id=cid, start=starter, **kw)

    async def start(self, flags: SupervisorFlags, *children: ChildSpec) -> Supervisor:
        self.sup = Supervisor(SupervisorSpec(flags, [ChildSpec(id="zygote", start=self.zygote.starter()),
                                                     *children]))
        await self.sup.start()
        return self.sup


@pytest.fixture
async def tree() -> AsyncIterator[Tree]:
    t = Tree()
    yield t
    if t.sup is not None:
        await t.sup.stop()
    t.zygote.close()
