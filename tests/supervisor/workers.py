"""Bare worker processes for the supervisor's own tests: a gRPC health server, nothing else.

They are run by the zygote (``target="tests.supervisor.workers:health_worker"``) and behave as
their payload says, so that tests can make a child slow, stubborn or crashing on purpose.
The real worker runtime (services.runtime) is tested on its own in tests/runtime.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


async def _serve(payload: dict[str, Any]) -> int:
    if payload.get("start_delay_s"):
        time.sleep(payload["start_delay_s"])  # a slow init/1
    if payload.get("crash_on_start"):
        return 3
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(payload["address"])
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if payload.get("marker"):
        with open(payload["marker"], "a") as f:
            f.write(f"{os.getpid()}\n")
    if payload.get("policies"):  # each thread's scheduling policy, one line per process
        with open(payload["policies"], "a") as f:
            f.write(" ".join(str(os.sched_getscheduler(int(t))) for t in os.listdir("/proc/self/task")) + "\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if payload.get("ignore_sigterm"):
        loop.add_signal_handler(signal.SIGTERM, lambda: None)
    else:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    exit_after = payload.get("exit_after_s")
    exit_code = int(payload.get("exit_code", 0))
    try:
        await asyncio.wait_for(stop.wait(), exit_after)
        exit_code = 0
    except TimeoutError:
        pass
    await server.stop(0.2)
    return exit_code


def health_worker(payload: dict[str, Any]) -> int:
    return asyncio.run(_serve(payload))


#: Where warm_marker writes (set in the test's environment, which the zygote inherits).
WARM_MARKER_ENV = "TEST_WARM_MARKER"


def warm_marker() -> None:
    """A zygote ``warm`` hook: the pid of each pre-forked process that ran it."""
    with open(os.environ[WARM_MARKER_ENV], "a") as f:
        f.write(f"{os.getpid()}\n")


def warm_thread() -> None:
    """A zygote ``warm`` hook that starts a thread (which lives on into the child)."""
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()


def warm_failing() -> None:
    raise RuntimeError("a warm hook that fails")
