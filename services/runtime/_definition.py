"""What a service hands the runtime (WorkerDefinition), what the runtime hands it (WorkerContext),
and what its registration returns (Service).

A worker's life, from the service's side: ``register(ctx)`` builds the service (opens what it
needs, adds its servicers to ``ctx.server``) and returns it as a :class:`Service`; the runtime
runs ``service.tasks()`` under a supervisor while it serves, and calls ``service.aclose()`` once,
after the server and those tasks stopped. Everything the service opened is reachable from the
object it returned, so nothing is shared through the context.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import grpc
from opentelemetry import trace

from services.runtime._config import WorkerConfig
from services.runtime._readiness import ReadinessCheck
from services.runtime._router import Router
from services.runtime._storage import Storage

if TYPE_CHECKING:
    from supervisor import ChildSpec


class ServiceRegistry:
    """The part of a worker's gRPC server a service may touch: adding handlers (to the server's
    router, ``_router``: the server is already serving while services register).

    The generated ``add_<Service>Servicer_to_server(servicer, ctx.server)`` functions accept it.
    It records service names so that health and reflection cover exactly what was registered.
    """

    def __init__(self, server: Router) -> None:
        self._server = server
        self.service_names: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        for handler in handlers:
            # method_handlers_generic_handler (and so generated code) knows its service name;
            # a hand-written GenericRpcHandler may not, and then stays out of health/reflection.
            name_of = getattr(handler, "service_name", None)
            if callable(name_of):
                self._add_name(name_of())
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service_name: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._add_name(service_name)
        self._server.add_registered_method_handlers(service_name, handlers)

    def _add_name(self, name: object) -> None:
        if isinstance(name, str) and name not in self.service_names:
            self.service_names.append(name)


@dataclass(frozen=True, slots=True, eq=False)
class WorkerContext:
    """Everything a service's ``register`` gets."""

    #: Add servicers here (``add_FooServicer_to_server(servicer, ctx.server)``).
    server: ServiceRegistry
    config: WorkerConfig
    storage: Storage
    #: ``l2node.<service>``; JSON lines on stderr with trace ids.
    logger: logging.Logger
    #: For spans of the service's own work (L1 JSON-RPC calls, sealing a batch).
    tracer: trace.Tracer
    _channel: Callable[[str], grpc.aio.Channel] = field(repr=False)
    #: Why the service cannot do its job (see :meth:`not_ready`).
    not_ready_reasons: list[str] = field(default_factory=list)
    #: Conditions checked while the worker runs (see :meth:`not_ready_while`).
    readiness_checks: list[ReadinessCheck] = field(default_factory=list)

    def not_ready(self, reason: str) -> None:
        """Called from ``register``: the service cannot do its job (a key file its role needs is
        missing, ...). The worker still starts and serves, but its services' health says NOT_SERVING
        and GetWorkerStatus (so `l2node status`) gives ``reason``; "" stays SERVING, since the process
        is alive and restarting it would not help."""
        self.not_ready_reasons.append(reason)

    def not_ready_while(self, check: ReadinessCheck) -> None:
        """Called from ``register``: a condition under which the service cannot do its job, checked
        while the worker runs (``_readiness``): ``check()`` gives the reason while it holds (a read
        replica too far behind its upstream), None once it does not. As for :meth:`not_ready`, the
        worker serves on and "" stays SERVING."""
        self.readiness_checks.append(check)

    def channel(self, address: str) -> grpc.aio.Channel:
        """A traced channel to ``address`` (``host:port`` or any gRPC target, e.g.
        ``dns:///sequencer:50051``). One per address, shared, closed by the runtime on stop:
        never close it yourself. Wrap calls in the target's call policy."""
        return self._channel(address)


class Service(Protocol):
    """A registered service: it owns its long-running tasks and everything it opened.

    ``register`` returns one; the runtime asks it for its tasks once, after registration, and
    closes it once, when the worker stops.
    """

    def tasks(self) -> Sequence[ChildSpec]:
        """Long-running loops, as ``ChildSpec(id=..., start=supervisor.task(fn))``; run under a
        one_for_one supervisor that is ready before health says SERVING. If it gives up, the
        worker exits non-zero and its own supervisor restarts the process. May be empty."""
        ...

    async def aclose(self) -> None:
        """Release what ``register`` opened (files, L1 clients, thread pools). Called once, after
        the server and the tasks stopped, before outbound channels and storage close; also when
        the worker fails to start after ``register`` returned."""
        ...


#: Builds the service: opens what it needs and adds its servicers to ``ctx.server``.
RegisterFn = Callable[[WorkerContext], Awaitable[Service]]


@dataclass(frozen=True, slots=True)
class WorkerDefinition:
    """One kind of worker; the runtime runs it (:func:`services.runtime.run`). What a node's
    config names as ``definition = "package.module:ATTR"``."""

    #: The kind of worker ("sequencer"); the config's ``service`` names the instance.
    name: str
    register: RegisterFn


def load_definition(ref: str) -> WorkerDefinition:
    """``"package.module:ATTR"`` -> the WorkerDefinition it names."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"worker definition {ref!r} must look like 'package.module:ATTR'")
    obj = getattr(importlib.import_module(module_name), attr)
    if not isinstance(obj, WorkerDefinition):
        raise TypeError(f"{ref} is a {type(obj).__name__}, not a WorkerDefinition")
    return obj
