"""Spans reach a real OTLP collector: one trace across workers, correct statuses, logs correlated."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.runtime import BlockingClientInterceptor, child_span, keyed_context, quiet
from services.runtime._tracing import ClientInterceptor
from tests.runtime.conftest import ECHO_SERVICE, Collector, Worker, channel, echo_method, otel_env

SERVER = trace_pb2.Span.SPAN_KIND_SERVER
CLIENT = trace_pb2.Span.SPAN_KIND_CLIENT
ERROR = trace_pb2.Status.STATUS_CODE_ERROR
UNSET = trace_pb2.Status.STATUS_CODE_UNSET

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


async def test_call_through_two_workers_is_one_trace(
    spawn: Callable[..., Worker], collector: Collector
) -> None:
    a = spawn("echo-a", env=otel_env(collector))
    b = spawn("echo-b", env=otel_env(collector))
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    async with channel(a.address) as ch:
        raw = await echo_method(ch, "Call")(
            json.dumps({"address": b.address, "payload": {"x": 1}}).encode(),
            metadata=[("traceparent", traceparent)],
        )
    reply = json.loads(raw)
    assert reply["trace_id"] == reply["reply"]["trace_id"] == TRACE_ID
    assert reply["reply"]["service"] == "echo-b"

    def named(name: str, service: str) -> Callable[[dict[str, object]], bool]:
        return lambda s: s["name"] == f"{ECHO_SERVICE}/{name}" and s["service"] == service

    a_server = await collector.wait_for(named("Call", "echo-a"))
    a_client = await collector.wait_for(named("Echo", "echo-a"))
    b_server = await collector.wait_for(named("Echo", "echo-b"))
    assert {a_server["trace_id"], a_client["trace_id"], b_server["trace_id"]} == {TRACE_ID}
    assert (a_server["kind"], a_client["kind"], b_server["kind"]) == (SERVER, CLIENT, SERVER)
    assert a_server["parent_id"] == PARENT_ID  # extracted from the caller's traceparent
    assert a_client["parent_id"] == a_server["span_id"]
    assert b_server["parent_id"] == a_client["span_id"]  # injected by ctx.channel's interceptor
    assert b_server["attributes"]["rpc.method"] == "Echo"
    assert b_server["attributes"]["rpc.grpc.status_code"] == 0
    assert a_client["status"] == UNSET

    # Log lines carry the ids of the span they were written in.
    (echo_line,) = [e for e in b.logs() if e["message"] == "echo"]
    assert (echo_line["trace_id"], echo_line["span_id"]) == (TRACE_ID, b_server["span_id"])
    assert echo_line["service"] == "echo-b"
    assert echo_line["echo_keys"] == ["x"]
    # Health probes (wait_serving polled Check) make no spans.
    assert not [s for s in collector.spans if s["name"] == "grpc.health.v1.Health/Check"]


async def test_failed_calls_end_server_spans_with_error(
    spawn: Callable[..., Worker], collector: Collector
) -> None:
    worker = spawn("echo-err", env=otel_env(collector))
    expected = {
        "abort_with_status": grpc.StatusCode.DATA_LOSS,
        "exception": grpc.StatusCode.INTERNAL,
        "abort": grpc.StatusCode.PERMISSION_DENIED,
        "invalid_argument": grpc.StatusCode.INVALID_ARGUMENT,
    }
    async with channel(worker.address) as ch:
        for kind, code in expected.items():
            trace_id = f"{len(kind):032x}"
            try:
                await echo_method(ch, "Fail")(
                    json.dumps({"kind": kind}).encode(),
                    metadata=[("traceparent", f"00-{trace_id}-{PARENT_ID}-01")],
                )
            except grpc.aio.AioRpcError as err:
                assert err.code() is code
            span = await collector.wait_for(lambda s, t=trace_id: s["trace_id"] == t)
            assert span["status"] == ERROR, (kind, span)
            assert span["status_message"].startswith(code.name), (kind, span)
            assert span["attributes"]["rpc.grpc.status_code"] == code.value[0], (kind, span)
        await echo_method(ch, "Echo")(b"{}")
    ok = await collector.wait_for(lambda s: s["name"] == f"{ECHO_SERVICE}/Echo")
    assert ok["status"] == UNSET


async def test_watch_and_write_streams_work_with_tracing(
    spawn: Callable[..., Worker], collector: Collector
) -> None:
    worker = spawn("echo-watch", env=otel_env(collector), drain_s=0.2, grace_s=20.0)
    async with channel(worker.address) as ch:
        written = ch.unary_stream(f"/{ECHO_SERVICE}/StreamWrite")(b'{"n": 2}')
        assert [json.loads(m)["i"] async for m in written] == [0, 1]
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        worker.signal(signal.SIGTERM)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await watch.read() is grpc.aio.EOF
        assert await worker.wait_async() == 0
    # Spans still queued at SIGTERM are flushed before exit.
    span = await collector.wait_for(lambda s: s["name"] == "grpc.health.v1.Health/Watch")
    assert (span["kind"], span["status"], span["service"]) == (SERVER, UNSET, "echo-watch")
    await collector.wait_for(lambda s: s["name"] == f"{ECHO_SERVICE}/StreamWrite")


async def test_a_stream_the_client_cancels_ends_its_span_cleanly(
    spawn: Callable[..., Worker], collector: Collector
) -> None:
    """The span of a streamed call is current only while the handler runs, not across its yields:
    grpc.aio may close the generator from another context (the client went away), where detaching a
    token attached in the first one fails ("Failed to detach context") and the span stays current."""
    worker = spawn("echo-cancel", env=otel_env(collector))
    async with channel(worker.address) as ch:
        for _ in range(3):
            call = ch.unary_stream(f"/{ECHO_SERVICE}/Stream")(b'{"n": 1000, "interval_s": 0.01}')
            assert json.loads(await call.read())["i"] == 0
            call.cancel()
        await echo_method(ch, "Echo")(b"{}")
    span = await collector.wait_for(lambda s: s["name"] == f"{ECHO_SERVICE}/Stream")
    assert span["attributes"]["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    worker.signal(signal.SIGTERM)
    assert await worker.wait_async() == 0
    assert "Failed to detach context" not in worker.stderr()


def _local_tracer() -> tuple[trace.Tracer, InMemorySpanExporter]:
    """A tracer of this test process's own (not the global one), keeping its spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


async def test_a_quiet_call_is_recorded_nowhere_and_its_log_lines_name_no_trace(
    spawn: Callable[..., Worker], collector: Collector
) -> None:
    worker = spawn("echo-quiet", env=otel_env(collector))
    tracer, exporter = _local_tracer()
    async with grpc.aio.insecure_channel(worker.address, interceptors=[ClientInterceptor(tracer)]) as ch:
        with quiet():
            await echo_method(ch, "Echo")(b'{"polled": 1}')
        with tracer.start_as_current_span("work"):
            await echo_method(ch, "Echo")(b'{"worked": 1}')
    server = await collector.wait_for(lambda s: s["name"] == f"{ECHO_SERVICE}/Echo")
    await asyncio.sleep(0.3)  # a span of the quiet call would have been exported by now too
    assert [s["span_id"] for s in collector.spans if s["name"] == f"{ECHO_SERVICE}/Echo"] == [server["span_id"]]
    client = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.CLIENT]
    assert len(client) == 1 and server["parent_id"] == trace.format_span_id(client[0].context.span_id)
    lines = {tuple(e.get("echo_keys", ())): e for e in worker.logs() if e["message"] == "echo"}
    assert "trace_id" not in lines[("polled",)]
    assert lines[("worked",)]["trace_id"] == server["trace_id"]


async def test_the_blocking_client_interceptor_propagates_and_records_status(
    spawn: Callable[..., Worker], collector: Collector
) -> None:
    worker = spawn("echo-blocking", env=otel_env(collector))
    tracer, exporter = _local_tracer()

    def calls() -> None:
        interceptor = BlockingClientInterceptor(tracer)
        with grpc.intercept_channel(grpc.insecure_channel(worker.address), interceptor) as ch, \
                tracer.start_as_current_span("command"):
            ch.unary_unary(f"/{ECHO_SERVICE}/Echo")(b"{}")
            try:
                ch.unary_unary(f"/{ECHO_SERVICE}/Fail")(json.dumps({"kind": "invalid_argument"}).encode())
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert [json.loads(m)["i"] for m in ch.unary_stream(f"/{ECHO_SERVICE}/Stream")(b'{"n": 2}')] == [0, 1]

    await asyncio.to_thread(calls)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    echo = await collector.wait_for(lambda s: s["name"] == f"{ECHO_SERVICE}/Echo")
    stream = await collector.wait_for(lambda s: s["name"] == f"{ECHO_SERVICE}/Stream")
    for server in (echo, stream):
        client = spans[server["name"]]
        assert server["parent_id"] == trace.format_span_id(client.context.span_id)
        assert client.parent is not None and client.parent.span_id == spans["command"].context.span_id
        assert client.attributes is not None and client.attributes["rpc.grpc.status_code"] == 0
    failed = spans[f"{ECHO_SERVICE}/Fail"]
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert failed.status.description is not None and failed.status.description.startswith("INVALID_ARGUMENT")


def test_child_spans_only_under_recorded_work_and_keyed_contexts_are_deterministic() -> None:
    tracer, _ = _local_tracer()
    assert child_span(tracer, "poll") is trace.INVALID_SPAN  # no span at all: a loop's poll
    with quiet():
        assert child_span(tracer, "poll") is trace.INVALID_SPAN
    with tracer.start_as_current_span("work") as work:
        call = child_span(tracer, "call")
        assert call.is_recording() and call.parent is not None
        assert call.parent.span_id == work.get_span_context().span_id
        call.end()
    key = bytes(range(32))
    ctx = keyed_context(key)
    assert ctx == keyed_context(key) and ctx.trace_flags.sampled and ctx.is_valid
    assert trace.format_trace_id(ctx.trace_id) == key[:16].hex()
    assert trace.format_span_id(ctx.span_id) == key[16:24].hex()
    with pytest.raises(ValueError):
        keyed_context(key[:23])
