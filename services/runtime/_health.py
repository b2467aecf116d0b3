"""grpc.health.v1.Health whose Watch streams end when the worker stops.

grpc_health's aio servicer never ends a Watch: the stream waits on a condition forever, so
``server.stop(grace)`` waits the whole grace for every open watcher (the supervisor, a
sidecar, a load balancer). Here a watcher first gets NOT_SERVING, then, once the drain is
over, :meth:`HealthServicer.end_watches` finishes each stream with OK.

It serves from before the worker's services are registered (see _bootstrap): until they are
(:meth:`HealthServicer.known`), every name says NOT_SERVING; afterwards an unknown name is
NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SERVING: Any = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Any = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: Any = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthServicer(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Statuses for "" (the whole worker) and each registered service."""

    def __init__(self, services: Iterable[str]) -> None:
        # NOT_SERVING until the runtime says otherwise: readiness is health.
        self._status: dict[str, Any] = {name: NOT_SERVING for name in ("", *services)}
        self._unknown: Any = NOT_SERVING  # the worker is starting: its services are not all known
        self._changed = asyncio.Event()
        self._shutting_down = False
        self._watches_ended = False
        #: Watch calls in their handler now.
        self.watching = 0

    def known(self, services: Iterable[str]) -> None:
        """The services are registered: these names are known (NOT_SERVING), no other is."""
        for name in services:
            self._status.setdefault(name, NOT_SERVING)
        self._unknown = SERVICE_UNKNOWN
        self._notify()

    def set_all(self, status: Any) -> None:
        """Set every known service; ignored once shutdown began (NOT_SERVING is final)."""
        if self._shutting_down:
            return
        for name in self._status:
            self._status[name] = status
        self._notify()

    def set(self, name: str, status: Any) -> None:
        """Set one service; ignored once shutdown began."""
        if not self._shutting_down and name in self._status:
            self._status[name] = status
            self._notify()

    def enter_graceful_shutdown(self) -> None:
        self.set_all(NOT_SERVING)
        self._shutting_down = True

    def end_watches(self) -> None:
        """Finish every open and future Watch after it has sent the current status."""
        self._watches_ended = True
        self._notify()

    def _notify(self) -> None:
        # A fresh event per change: a watcher that captured the old one before reading the
        # status is woken even if the change lands while it is writing.
        self._changed.set()
        self._changed = asyncio.Event()

    async def Check(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        status = self._status.get(request.service, self._unknown)
        if status == SERVICE_UNKNOWN:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def List(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return health_pb2.HealthListResponse(
            statuses={name: health_pb2.HealthCheckResponse(status=s) for name, s in self._status.items()}
        )

    async def Watch(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        self.watching += 1
        try:
            last = None
            while True:
                changed = self._changed
                status = self._status.get(request.service, self._unknown)
                if status != last:
                    yield health_pb2.HealthCheckResponse(status=status)
                    last = status
                if self._watches_ended:
                    return
                await changed.wait()
        finally:
            self.watching -= 1
