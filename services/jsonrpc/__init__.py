"""The JSON-RPC service: Ethereum's standard JSON-RPC (HTTP and WebSocket) in front of the tree, so
that wallets and tools (MetaMask, cast, viem, ethers, web3.py) talk to l2node unchanged.

It keeps no state of its own: reads and sends go to the sequencer over gRPC (the rollups worker
for the optimism_* namespace), every call through the target's call policy, and the head comes
from the sequencer's block stream, kept in memory. Its gRPC server carries only the runtime's
health, reflection and status; the JSON-RPC port is its own (``[jsonrpc] port``).

Read in this order: ``_settings``, ``_errors`` (JSON-RPC errors, geth's words for the sequencer's
refusal reasons: one table), ``_hex`` (the value encodings), ``_upstream`` (the sequencer and
rollups clients, the head follower), ``_shapes`` (blocks, transactions, receipts as Ethereum
shows them), ``_methods`` (every method), ``_server`` (HTTP, WebSocket, batches, subscriptions,
spans), ``_metrics``. ``WORKER`` is what the worker runtime runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata

from services.runtime import Service, WorkerContext, WorkerDefinition
from supervisor import ChildSpec, task

from ._errors import GETH_MESSAGES, RpcError
from ._methods import Methods
from ._server import Server
from ._settings import DEFAULT_PORT, JsonRpcSettings
from ._upstream import Head, Rollups, Sequencer

__all__ = ["DEFAULT_PORT", "GETH_MESSAGES", "WORKER", "JsonRpc", "JsonRpcSettings", "RpcError", "client_version",
           "definition"]


def client_version() -> str:
    """web3_clientVersion: name/version/runtime, as geth's "Geth/v1.14.0-stable/linux-amd64/go1.22"."""
    try:
        version = metadata.version("l2node")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return f"l2node/v{version}/python"


class JsonRpc:
    """The running service: the HTTP/WebSocket server and the head follower."""

    def __init__(self, server: Server, head: Head) -> None:
        self.server = server
        self.head = head

    def tasks(self) -> Sequence[ChildSpec]:
        return [ChildSpec(id="head", start=task(self.head.follow))]

    async def aclose(self) -> None:
        await self.server.stop()


async def _register(ctx: WorkerContext) -> Service:
    settings = JsonRpcSettings.from_mapping(ctx.config.settings)
    if not settings.sequencer:
        raise ValueError("the jsonrpc worker needs its sequencer's gRPC address (settings.sequencer)")
    sequencer = Sequencer(ctx.channel(settings.sequencer))
    rollups = Rollups(ctx.channel(settings.rollups)) if settings.rollups else None
    head = Head(sequencer, ctx.logger, settings.recent_blocks)
    server = Server(settings, Methods(settings, sequencer, rollups, head, client_version()), ctx.tracer, ctx.logger)
    await server.start()  # before SERVING: a port that cannot be had fails the start, visibly
    ctx.logger.info("JSON-RPC listening", extra={"url": f"http://{settings.host}:{settings.port}"})
    return JsonRpc(server, head)


def definition() -> WorkerDefinition:
    """The JSON-RPC worker."""
    return WorkerDefinition(name="jsonrpc", register=_register)


WORKER = definition()
