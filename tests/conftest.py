"""Fixtures every test package may use: one anvil for the whole session (reverted per test), and
an OTLP trace collector that keeps what workers export."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.l1.anvil import Anvil, shared_anvil


def json_rpc(url: str, method: str, *params: Any) -> Any:
    """One Ethereum JSON-RPC call over HTTP: its result (AssertionError with the error if there is one)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        doc = json.loads(response.read())
    assert "error" not in doc, doc
    return doc["result"]


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@contextlib.asynccontextmanager
async def running(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """``coroutine`` (a loop that runs until cancelled) as a task for the body's duration."""
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with shared_anvil() as node:
        yield node


@pytest.fixture
def chain(anvil: Anvil) -> Iterator[Anvil]:
    """The shared anvil, reverted to its state before the test afterwards."""
    with anvil.snapshot():
        yield anvil


class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """Keeps every exported span as a flat dict: name, ids, parent, service, status, attributes,
    links, events (name, attributes) and start time."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.address = ""

    async def Export(self, request: Any, context: Any) -> Any:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_id": span.parent_span_id.hex(),
                            "kind": span.kind,
                            "service": resource.get("service.name"),
                            "status": span.status.code,
                            "status_message": span.status.message,
                            "attributes": {a.key: _any_value(a.value) for a in span.attributes},
                            "links": [(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                            "events": [(e.name, {a.key: _any_value(a.value) for a in e.attributes})
                                       for e in span.events],
                            "start_ns": span.start_time_unix_nano,
                        }
                    )
        return trace_service_pb2.ExportTraceServiceResponse()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], limit_s: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for span in self.spans:
                if predicate(span):
                    return span
            await asyncio.sleep(0.02)
        raise AssertionError(f"no matching span in {len(self.spans)}: {[s['name'] for s in self.spans]}")


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    server = grpc.aio.server()
    sink = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sink.address = f"http://127.0.0.1:{port}"
    try:
        yield sink
    finally:
        await server.stop(0)


def otel_env(collector: Collector) -> dict[str, str]:
    # Export every 50 ms instead of every 5 s, so tests see spans while workers still run.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.address, "OTEL_BSP_SCHEDULE_DELAY": "50"}
