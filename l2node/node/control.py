"""The control plane: l2node.supervisor.v1.SupervisorService over the root supervisor."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

import supervisor as sv
from protos.l2node.supervisor.v1 import supervisor_pb2 as pb
from protos.l2node.supervisor.v1 import supervisor_pb2_grpc as pb_grpc
from services.runtime import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    Idempotency,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    redact,
    redact_url,
)

#: Builds a child spec from its wire form; raises InvalidArgument for a bad one.
SpecFactory = Callable[[pb.ChildSpec], sv.ChildSpec]

_KIND = {k: getattr(pb, f"CHILD_KIND_{k.name}") for k in sv.ChildKind}
_STATE = {s: getattr(pb, f"CHILD_STATE_{s.name}") for s in sv.ChildState}
_RESTART = {r: getattr(pb, f"RESTART_TYPE_{r.name}") for r in sv.Restart}
_EVENT = {e: getattr(pb, f"EVENT_TYPE_{e.name}") for e in sv.EventType}
RESTART_FROM_PB = {v: k for k, v in _RESTART.items()}

#: How many request_ids of mutating calls we remember, so a retried call is applied once.
_IDEMPOTENCY_WINDOW = 1024


def child_pb(c: sv.ChildInfo) -> pb.Child:
    return pb.Child(
        id=c.path, kind=_KIND[c.kind], state=_STATE[c.state], pid=c.pid or 0, restarts=c.restarts,
        uptime_s=c.uptime_s, address=redact_url(c.address), restart=_RESTART[c.restart],
        significant=c.significant, last_exit_reason=redact(c.last_exit_reason), parent=c.parent,
    )


def event_pb(e: sv.Event) -> pb.Event:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(e.time * 1e9))
    return pb.Event(sequence=e.sequence, type=_EVENT[e.type], child_id=e.child_id, pid=e.pid or 0,
                    reason=redact(e.reason), time=ts, normal=e.normal)


@contextlib.contextmanager
def _as_domain_errors() -> Iterator[None]:
    """Supervisor errors, in the runtime's one error mapping (ErrorInfo reason = OTP's atom)."""
    try:
        yield
    except sv.NotFound as exc:
        raise NotFound(str(exc), reason="NOT_FOUND") from None
    except (sv.AlreadyPresent, sv.AlreadyStarted) as exc:
        raise AlreadyExists(str(exc), reason=exc.reason.upper()) from None
    except (sv.RunningError, sv.Restarting, sv.StartFailed) as exc:
        raise FailedPrecondition(str(exc), reason=exc.reason.upper()) from None
    except sv.MaxChildren as exc:
        raise ResourceExhausted(str(exc), reason="MAX_CHILDREN") from None
    except sv.InvalidSpec as exc:
        raise InvalidArgument(str(exc), reason="INVALID_SPEC",
                              field_violations=[FieldViolation("spec", str(exc))]) from None
    except sv.NotRunning as exc:
        raise Unavailable(str(exc), reason="NOT_RUNNING") from None


class SupervisorControl(pb_grpc.SupervisorServiceServicer):
    def __init__(self, root: sv.Supervisor, spec_factory: SpecFactory) -> None:
        self._root = root
        self._spec_factory = spec_factory
        self._requests = Idempotency(_IDEMPOTENCY_WINDOW)

    def _supervisor(self, path: str) -> sv.Supervisor:
        if not path:
            return self._root
        sup, cid = self._root.resolve(path)
        nested = sup.child_supervisor(cid)
        if nested is None:
            raise sv.NotFound(f"{path!r} is not a running supervisor")
        return nested

    async def WhichChildren(self, request: pb.WhichChildrenRequest, context: Any) -> pb.WhichChildrenResponse:
        with _as_domain_errors():
            sup = self._supervisor(request.supervisor)
            rows = sup.walk() if request.recursive else sup.which_children()
        return pb.WhichChildrenResponse(children=[child_pb(c) for c in rows])

    async def CountChildren(self, request: pb.CountChildrenRequest, context: Any) -> pb.CountChildrenResponse:
        with _as_domain_errors():
            counts = self._supervisor(request.supervisor).count_children()
        return pb.CountChildrenResponse(specs=counts.specs, active=counts.active,
                                        supervisors=counts.supervisors, workers=counts.workers)

    async def StartChild(self, request: pb.StartChildRequest, context: Any) -> pb.StartChildResponse:
        async def call() -> pb.StartChildResponse:
            with _as_domain_errors():
                sup = self._supervisor(request.supervisor)
                info = await sup.start_child(self._spec_factory(request.spec))
            return pb.StartChildResponse(child=child_pb(info))

        reply: pb.StartChildResponse = await self._requests.once(request.request_id, call)
        return reply

    async def RestartChild(self, request: pb.RestartChildRequest, context: Any) -> pb.RestartChildResponse:
        async def call() -> pb.RestartChildResponse:
            with _as_domain_errors():
                sup, cid = self._root.resolve(request.id)
                return pb.RestartChildResponse(child=child_pb(await sup.restart_child(cid)))

        reply: pb.RestartChildResponse = await self._requests.once(request.request_id, call)
        return reply

    async def TerminateChild(self, request: pb.TerminateChildRequest, context: Any) -> pb.TerminateChildResponse:
        async def call() -> pb.TerminateChildResponse:
            with _as_domain_errors():
                sup, cid = self._root.resolve(request.id)
                return pb.TerminateChildResponse(child=child_pb(await sup.terminate_child(cid)))

        reply: pb.TerminateChildResponse = await self._requests.once(request.request_id, call)
        return reply

    async def DeleteChild(self, request: pb.DeleteChildRequest, context: Any) -> pb.DeleteChildResponse:
        async def call() -> pb.DeleteChildResponse:
            with _as_domain_errors():
                sup, cid = self._root.resolve(request.id)
                await sup.delete_child(cid)
            return pb.DeleteChildResponse()

        reply: pb.DeleteChildResponse = await self._requests.once(request.request_id, call)
        return reply

    async def WatchEvents(self, request: pb.WatchEventsRequest, context: Any
                          ) -> AsyncIterator[pb.WatchEventsResponse]:
        prefix = request.prefix
        async with self._root.bus.subscribe() as queue:
            while True:
                event = await queue.get()
                if not prefix or event.child_id == prefix or event.child_id.startswith(prefix + "/"):
                    yield pb.WatchEventsResponse(event=event_pb(event))


def add_to_server(server: grpc.aio.Server, control: SupervisorControl) -> None:
    pb_grpc.add_SupervisorServiceServicer_to_server(control, server)
