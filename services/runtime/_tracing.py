"""OpenTelemetry for one worker: its TracerProvider, and client-side spans with traceparent.

Everything here runs after the fork: the BatchSpanProcessor starts a thread and the OTLP
exporter opens a gRPC channel, neither of which survives a fork.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
from opentelemetry import context as otel_context
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
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

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
    provider = TracerProvider(resource=_resource(service), shutdown_on_exit=False, id_generator=_KeyedIds())
    processor = None
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    return Tracing(provider, provider.get_tracer(_INSTRUMENTATION), processor)


# -- what is traced: work, not polling --------------------------------------------------------


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Run a poll unrecorded: every span started inside is a non-recording one, here and, through
    a traceparent whose sampled flag is off, in the services it calls (the default sampler follows
    its parent). Polling that finds nothing must create no spans: a root trace per poll buries the
    work (the issue measured ~22 a second on an idle node, ~100 per ``tx send --wait``)."""
    token = otel_context.attach(trace.set_span_in_context(unrecorded_span()))
    try:
        yield
    finally:
        otel_context.detach(token)


def unrecorded_span() -> trace.Span:
    """A span that records nothing but has ids of its own, unsampled: log lines written under it
    carry its trace id, and the calls made under it pass the unsampled flag on (see ``quiet``)."""
    ids = _random_ids
    return NonRecordingSpan(SpanContext(ids.generate_trace_id(), ids.generate_span_id(), is_remote=False,
                                        trace_flags=TraceFlags(TraceFlags.DEFAULT)))


def child_span(tracer: trace.Tracer, name: str, **kwargs: Any) -> trace.Span:
    """A span only as part of recorded work: under no span, or a non-recording one (``quiet``),
    ``INVALID_SPAN``, which records nothing and injects no traceparent. For calls that polling
    loops make by the thousand (L1 JSON-RPC): the work that needs them opens a span first."""
    if not trace.get_current_span().is_recording():
        return trace.INVALID_SPAN
    return tracer.start_span(name, **kwargs)


def keyed_context(key: bytes) -> SpanContext:
    """The span context that ``start_keyed_span(…, key)`` gives its span: any process that knows
    ``key`` (24 bytes or more, e.g. a keccak hash of what the span is about) can link to that span
    without being told its ids. How derivation, reading a batch from L1, links to the post that sent
    it: the poster cannot put a traceparent on L1, and a verifier need not know the sequencer."""
    if len(key) < 24:
        raise ValueError("a span key needs at least 24 bytes")
    return SpanContext(int.from_bytes(key[:16]), int.from_bytes(key[16:24]), is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))


def start_keyed_span(tracer: trace.Tracer, name: str, key: bytes, *,
                     links: Sequence[trace.Link] = (), **kwargs: Any) -> trace.Span:
    """A root span whose trace and span ids are ``keyed_context(key)``'s (with the provider
    ``init_tracing`` installs; another provider gives random ids)."""
    ctx = keyed_context(key)
    token = _chosen_ids.set((ctx.trace_id, ctx.span_id))
    try:
        return tracer.start_span(name, context=otel_context.Context(), links=links, **kwargs)
    finally:
        _chosen_ids.reset(token)


_random_ids: Final = RandomIdGenerator()
#: (trace id, span id) for the next root span started in this context (``start_keyed_span``).
_chosen_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("chosen_ids", default=None)


class _KeyedIds(RandomIdGenerator):
    """Random ids, except for the span ``start_keyed_span`` is starting."""

    def generate_span_id(self) -> int:
        chosen = _chosen_ids.get()
        return chosen[1] if chosen is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        chosen = _chosen_ids.get()
        return chosen[0] if chosen is not None else super().generate_trace_id()


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
        return _client_span(self._tracer, details.method)

    @staticmethod
    def _inject(details: Any, span: trace.Span) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        for key, value in _traceparent(span).items():
            metadata[key] = value
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


def _client_span(tracer: trace.Tracer, method: str | bytes) -> trace.Span:
    method = method.decode() if isinstance(method, bytes) else method
    service, _, name = method.lstrip("/").partition("/")
    return tracer.start_span(
        method.lstrip("/"),
        kind=SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
    )


def _traceparent(span: trace.Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return {key.lower(): value for key, value in carrier.items()}  # gRPC metadata keys are lowercase


class _CallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, details: Any, metadata: list[tuple[str, str | bytes]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class BlockingClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """:class:`ClientInterceptor` for blocking channels (the ``l2node`` command): the same CLIENT
    span and traceparent, for ``grpc.intercept_channel``."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def intercept_unary_unary(self, continuation: Continuation, details: Any, request: Any) -> Any:
        span = _client_span(self._tracer, details.method)
        try:
            outcome = continuation(self._inject(details, span), request)
        except BaseException as exc:
            _end(span, _code_of(exc), str(exc))
            raise
        _end(span, outcome.code(), outcome.details())  # a blocking call's outcome is complete
        return outcome

    def intercept_unary_stream(self, continuation: Continuation, details: Any, request: Any) -> Any:
        span = _client_span(self._tracer, details.method)
        try:
            return _BlockingStream(continuation(self._inject(details, span), request), span)
        except BaseException as exc:
            _end(span, _code_of(exc), str(exc))
            raise

    @staticmethod
    def _inject(details: Any, span: trace.Span) -> Any:
        return _CallDetails(details, [*(details.metadata or ()), *_traceparent(span).items()])


class _BlockingStream:
    """A response stream that ends its span with the stream; otherwise the call itself."""

    def __init__(self, call: Any, span: trace.Span) -> None:
        self._call, self._span = call, span

    def __iter__(self) -> _BlockingStream:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._call)
        except StopIteration:
            _end(self._span, grpc.StatusCode.OK, None)
            raise
        except grpc.RpcError as exc:
            _end(self._span, exc.code(), exc.details())
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


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
