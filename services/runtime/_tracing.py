"""OpenTelemetry for one worker: its TracerProvider, and client-side spans with traceparent.

Everything here runs after the fork: the BatchSpanProcessor starts a thread and the OTLP
exporter opens a gRPC channel, neither of which survives a fork.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import grpc
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import (
    SERVICE_NAME,
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
    OTELResourceDetector,
    Resource,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import SpanKind, Status, StatusCode

#: At shutdown, how long the last spans may take to reach the collector. The exporter retries
#: for up to OTEL_EXPORTER_OTLP_TIMEOUT (10 s) against a dead collector, longer than the
#: supervisor waits before SIGKILL; losing the tail of a trace is the better failure.
SPAN_FLUSH_TIMEOUT_S: Final = 1.0

_INSTRUMENTATION: Final = "l2node.runtime"

Continuation = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Tracing:
    provider: TracerProvider
    tracer: trace.Tracer
    #: None when no OTLP endpoint is configured; spans still carry ids for the logs.
    processor: BatchSpanProcessor | None

    def shutdown(self) -> None:
        """Export what is queued, within SPAN_FLUSH_TIMEOUT_S, and stop the exporter."""
        if self.processor is None:
            return
        # BatchSpanProcessor.shutdown takes no timeout (it waits up to 30 s) and force_flush
        # ignores its own, so bound it from outside; the exporter's shutdown then cuts the
        # export short (it closes the channel and wakes the retry sleep).
        flush = threading.Thread(target=self.processor.shutdown, name="otel-flush", daemon=True)
        flush.start()
        flush.join(SPAN_FLUSH_TIMEOUT_S)
        if flush.is_alive():
            logging.getLogger("l2node.runtime").warning("spans not flushed within %ss", SPAN_FLUSH_TIMEOUT_S)
            self.processor.span_exporter.shutdown()


def _resource(service: str) -> Resource:
    """What Resource.create gives, without its detector thread pool (~2 ms on every restart)."""
    sdk = Resource({
        TELEMETRY_SDK_LANGUAGE: "python", TELEMETRY_SDK_NAME: "opentelemetry", TELEMETRY_SDK_VERSION: sdk_version,
        "service.instance.id": str(uuid.uuid4()),
    })
    return sdk.merge(OTELResourceDetector().detect()).merge(Resource({SERVICE_NAME: service}))


def init_tracing(service: str) -> Tracing:
    """A provider with ``service.name``, exporting over OTLP/gRPC when the standard
    ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` is set (http:// endpoints are plaintext).

    Installed as the global provider too, so services can ``trace.get_tracer(__name__)``.
    Propagation is the global propagator: W3C tracecontext + baggage unless OTEL_PROPAGATORS
    says otherwise.
    """
    # The explicit service.name wins over OTEL_SERVICE_NAME, which a tree would share.
    # shutdown_on_exit=False: its atexit hook would flush without a bound; Tracing.shutdown does it.
    provider = TracerProvider(resource=_resource(service), shutdown_on_exit=False)
    processor = None
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return Tracing(provider, provider.get_tracer(_INSTRUMENTATION), processor)


# -- client side ------------------------------------------------------------------------------


class ClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """A CLIENT span per call, its context injected as W3C traceparent into the metadata.

    Written here rather than taken from opentelemetry-instrumentation-grpc, whose streaming
    variants end the span only if the caller iterates the whole response stream.
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    async def intercept_unary_unary(self, continuation: Continuation, details: Any, request: Any) -> Any:
        return await self._unary(continuation, details, request)

    async def intercept_stream_unary(self, continuation: Continuation, details: Any, requests: Any) -> Any:
        return await self._unary(continuation, details, requests)

    async def intercept_unary_stream(self, continuation: Continuation, details: Any, request: Any) -> Any:
        return await self._stream(continuation, details, request)

    async def intercept_stream_stream(self, continuation: Continuation, details: Any, requests: Any) -> Any:
        return await self._stream(continuation, details, requests)

    async def _unary(self, continuation: Continuation, details: Any, request: Any) -> Any:
        span = self._start(details)
        try:
            call = await continuation(self._inject(details, span), request)
            # Waits for the response; the caller awaits it right after anyway.
            _end(span, await call.code(), await call.details())
            return call
        except BaseException as exc:
            _end(span, _code_of(exc), str(exc))
            raise

    async def _stream(self, continuation: Continuation, details: Any, request: Any) -> Any:
        span = self._start(details)
        try:
            call = await continuation(self._inject(details, span), request)
        except BaseException as exc:
            _end(span, _code_of(exc), str(exc))
            raise
        # grpc.aio accepts an async iterator from a stream interceptor and keeps code(),
        # details() and cancel() of the underlying call for the caller.
        return _traced_responses(span, call)

    def _start(self, details: Any) -> trace.Span:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        service, _, name = method.lstrip("/").partition("/")
        return self._tracer.start_span(
            method.lstrip("/"),
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )

    @staticmethod
    def _inject(details: Any, span: trace.Span) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        for key, value in carrier.items():
            metadata[key.lower()] = value  # gRPC metadata keys are lowercase
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


async def _traced_responses(span: trace.Span, call: Any) -> AsyncIterator[Any]:
    try:
        async for response in call:
            yield response
    except BaseException as exc:
        _end(span, _code_of(exc), str(exc))
        raise
    else:
        _end(span, await call.code(), await call.details())
    finally:
        if span.is_recording():  # abandoned mid-stream (aclose)
            _end(span, grpc.StatusCode.CANCELLED, "response stream abandoned")


def _code_of(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, grpc.aio.AioRpcError):
        code: grpc.StatusCode = exc.code()
        return code
    return grpc.StatusCode.CANCELLED if not isinstance(exc, Exception) else grpc.StatusCode.UNKNOWN


def _end(span: trace.Span, code: grpc.StatusCode, details: str | None) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {details}" if details else code.name))
    span.end()
