"""gRPC's start in a zygote's warm process, before it is given its orders (``ZYGOTE_WARM``).

A worker's first ``grpc.aio.server()`` starts gRPC in the process (its core, the asyncio poller
thread, the executor) and its event loop is made after its orders: ~5 ms of its way to SERVING
(forks of a process with the zygote's modules, wall: a new loop 0.9-1.0 ms, a first server 4.0-4.7
ms, a server made after a first one 0.5 ms; bench/RESULTS.md, session 17). The warm process does both
while it waits: it is a fork that never forks again (it becomes the worker, or exits), so gRPC
objects made in it hang nothing, unlike in the zygote. The loop made here is the one the worker
runs on (:func:`worker_loop`).
"""

from __future__ import annotations

import asyncio

import grpc

_loop: asyncio.AbstractEventLoop | None = None


def start_grpc() -> None:
    """Make the worker's event loop and start gRPC's asyncio mode on it, with a first server made
    and dropped (what the worker's own server would otherwise pay for)."""
    global _loop
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    grpc.aio.init_grpc_aio()  # held for the life of the process: dropping the server never stops gRPC

    async def first_server() -> None:
        grpc.aio.server()  # never started: nothing to stop, nothing left on the loop

    loop.run_until_complete(first_server())
    _loop = loop


def worker_loop() -> asyncio.AbstractEventLoop:
    """The loop :func:`start_grpc` made (once), else a new one."""
    global _loop
    loop, _loop = _loop, None
    return loop if loop is not None and not loop.is_closed() else asyncio.new_event_loop()
