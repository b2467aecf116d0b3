"""SERVING goes out before the task tree's plain tasks take their first step (_bootstrap._TaskTree):
a real grpc.aio server and a real Health.Watch client; the tasks under a real task tree."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import supervisor
from services.runtime._bootstrap import _TaskTree
from services.runtime._health import SERVING, HealthServicer
from tests.ports import free_port


async def test_wait_delivered_returns_once_every_watcher_has_written_the_current_status() -> None:
    health = HealthServicer(["svc"])
    await asyncio.wait_for(health.wait_delivered(), 1)  # no watcher: at once
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            seen: list[int] = []
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())

            async def read() -> None:
                async for reply in watch:
                    seen.append(reply.status)

            reader = asyncio.create_task(read())
            while health.watching == 0:  # noqa: ASYNC110 - the server's handler moves it
                await asyncio.sleep(0.001)
            await asyncio.wait_for(health.wait_delivered(), 5)  # NOT_SERVING sent
            health.set_all(SERVING)
            waiting = asyncio.create_task(health.wait_delivered())
            await asyncio.sleep(0)
            assert not waiting.done()  # the watcher has not written SERVING yet
            await asyncio.wait_for(waiting, 5)
            await asyncio.wait_for(_until(lambda: SERVING in seen), 5)
            reader.cancel()
    finally:
        await server.stop(0)


async def test_plain_tasks_wait_for_the_announcement_and_tasks_a_start_waits_for_do_not() -> None:
    steps: list[str] = []

    async def plain() -> None:
        steps.append("plain")
        await asyncio.Event().wait()

    async def with_status(task_status: supervisor.TaskStatus) -> None:
        steps.append("with_status")
        task_status.started()
        await asyncio.Event().wait()

    announced = asyncio.Event()
    tree = _TaskTree([supervisor.ChildSpec(id="plain", start=supervisor.task(plain)),
                      supervisor.ChildSpec(id="with_status", start=supervisor.task(with_status))], announced)
    await tree.start()
    try:
        for _ in range(20):
            await asyncio.sleep(0)
        assert steps == ["with_status"]
        announced.set()
        await asyncio.wait_for(_until(lambda: steps == ["with_status", "plain"]), 5)
    finally:
        await tree.stop()


async def _until(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110 - the server's and the tree's tasks move it
        await asyncio.sleep(0.001)
