"""l2node.worker.v1.WorkerService: what a worker says about itself (for ``l2node status``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from protos.l2node.worker.v1 import worker_pb2
from services.runtime._policy import policies

SERVICE_NAME = worker_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name

_BREAKER_STATES = {
    "closed": worker_pb2.BREAKER_STATE_CLOSED,
    "open": worker_pb2.BREAKER_STATE_OPEN,
    "half_open": worker_pb2.BREAKER_STATE_HALF_OPEN,
}

#: (id, state, restarts) of each background task; empty when the worker has none.
TaskRows = Callable[[], Sequence[tuple[str, str, int]]]


class WorkerStatusServicer:
    def __init__(self, service: str, tasks: TaskRows, not_ready: Callable[[], Sequence[str]] = list) -> None:
        self._service = service
        self._tasks = tasks
        self._not_ready = not_ready  # asked at each call: readiness may change while the worker runs
        self._started = time.monotonic()

    async def GetWorkerStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        breakers = []
        for policy in policies():
            s = policy.statistics()
            breakers.append(
                worker_pb2.Breaker(
                    target=s.target,
                    state=_BREAKER_STATES.get(s.state, worker_pb2.BREAKER_STATE_UNSPECIFIED),
                    failures=s.failures,
                    calls=s.calls,
                    retries=s.retries,
                    rejected=s.rejected,
                )
            )
        return worker_pb2.GetWorkerStatusResponse(
            service=self._service,
            pid=os.getpid(),
            uptime_s=time.monotonic() - self._started,
            breakers=breakers,
            tasks=[worker_pb2.Task(id=i, state=state, restarts=r) for i, state, r in self._tasks()],
            not_ready=self._not_ready(),
        )

    def handler(self) -> grpc.GenericRpcHandler:
        # Built here rather than with the generated add_WorkerServiceServicer_to_server, which is
        # untyped; the wire format is the same.
        method = grpc.unary_unary_rpc_method_handler(
            self.GetWorkerStatus,
            request_deserializer=worker_pb2.GetWorkerStatusRequest.FromString,
            response_serializer=worker_pb2.GetWorkerStatusResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, {"GetWorkerStatus": method})
