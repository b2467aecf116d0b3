"""The worker's one generic gRPC handler: each call goes to the handlers added so far.

A worker's server starts (its port open, health NOT_SERVING) before its service registers, so that
whoever waits for it (its supervisor, clients) has connected and opened its Health.Watch while it
starts, and hears SERVING the moment it is set: connecting only then cost a restart ~10 ms (see
_bootstrap). grpc takes generic handlers after the server started but not registered method
handlers (fixed at start), so every handler but health's goes through this router; generated code
adds each service both ways, and the generic way serves it alike. Until the worker has started, a
call to a method nobody added yet is answered UNAVAILABLE, as the closed port answered before (a
client retries it); afterwards UNIMPLEMENTED, as gRPC answers an unknown method.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import grpc


async def _starting(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAVAILABLE, "the worker is starting")


#: Streaming both ways, so that it answers any kind of call without waiting for a request.
_STARTING = grpc.stream_stream_rpc_method_handler(_starting)


class Router(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self) -> None:
        self._handlers: list[grpc.GenericRpcHandler] = []
        self._starting = True

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._handlers.extend(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Mapping[str, grpc.RpcMethodHandler]
                                       ) -> None:
        """Nothing to do: the same handlers come through :meth:`add_generic_rpc_handlers`."""

    def started(self) -> None:
        """Every handler is in: unknown methods are UNIMPLEMENTED from now on."""
        self._starting = False

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        for handler in self._handlers:
            found = handler.service(handler_call_details)
            if found is not None:
                return found
        return _STARTING if self._starting else None
