"""The node's readiness, for whatever sends it traffic (a Kubernetes readinessProbe): the control
plane's health under the service name ``READY`` is SERVING only while the tree is up, every child
runs and no worker says it is not ready (GetWorkerStatus ``not_ready``: a key file or the
contracts file its roles need is missing).

Service "" stays what it was: the control plane is alive (a liveness probe), so a node that waits
for its missing Secret is not restarted for it; `l2node status` says what is missing.

    readinessProbe: {grpc: {port: 50050, service: l2node.ready}}
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2

import supervisor as sv
from protos.l2node.worker.v1 import worker_pb2, worker_pb2_grpc
from services.runtime import SERVING, HealthServicer

#: The control plane's health service name that answers readiness.
READY: Final = "l2node.ready"
_NOT_SERVING: Final = health_pb2.HealthCheckResponse.NOT_SERVING
_ASK_S: Final = 1.0


async def _worker_ready(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await worker_pb2_grpc.WorkerServiceStub(channel).GetWorkerStatus(
                worker_pb2.GetWorkerStatusRequest(), timeout=_ASK_S)
        except grpc.aio.AioRpcError:
            return False
    return not reply.not_ready


async def tree_ready(root: sv.Supervisor) -> bool:
    """Every child running, and every worker ready by its own account."""
    if not root.running:
        return False
    rows = root.walk()
    if any(c.state is not sv.ChildState.RUNNING for c in rows):
        return False
    workers = [c.address for c in rows if c.kind is sv.ChildKind.WORKER]
    return all(await asyncio.gather(*map(_worker_ready, workers)))


class NodeHealth(HealthServicer):
    """The control plane's health: ``services`` as usual, plus ``READY`` computed when asked."""

    def __init__(self, services: Iterable[str], root: sv.Supervisor) -> None:
        super().__init__(services)
        self._root = root

    async def Check(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request.service != READY:
            return await super().Check(request, context)
        # Shutting down ("" NOT_SERVING) is never ready, whatever the children say.
        alive = (await super().Check(health_pb2.HealthCheckRequest(service=""), context)).status == SERVING
        ready = alive and await tree_ready(self._root)
        return health_pb2.HealthCheckResponse(status=SERVING if ready else _NOT_SERVING)
