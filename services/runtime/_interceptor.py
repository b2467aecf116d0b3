"""The one server interceptor: a span per call and domain errors turned into gRPC statuses.

Why not opentelemetry-instrumentation-grpc's aio server interceptor: it breaks handlers that
stream with ``context.write()`` (grpc.health.v1.Health/Watch among them), and it ends spans of
``abort_with_status`` calls and uncaught exceptions with status UNSET. Wrapping the handler
here keeps its shape: a coroutine stays a coroutine (so ``context.write`` keeps working) and an
async generator stays an async generator, which is how grpc.aio tells the two apart.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.runtime._errors import DomainError, InvalidArgument, internal_status

#: Probed every few hundred milliseconds by the supervisor and Kubernetes; a span each would
#: bury real traffic. Watch streams are rare and still traced.
UNTRACED_METHODS: Final = frozenset({"/grpc.health.v1.Health/Check"})

_log = logging.getLogger("l2node.runtime.rpc")

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Any]


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        # Generic handlers hand out the same RpcMethodHandler per method; wrap each once.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(details.method, handler)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        call = _Call(self._tracer, method, traced=method not in UNTRACED_METHODS)
        if handler.request_deserializer is not None:
            handler = handler._replace(request_deserializer=_tolerant(handler.request_deserializer))
        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
        return handler._replace(**{kind: call.wrap(getattr(handler, kind), handler.request_streaming)})


_KINDS: Final = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


@dataclass(frozen=True, slots=True)
class _Malformed:
    """Stands in for a request that did not deserialize. grpc.aio would answer UNKNOWN for the
    deserializer's exception; the handler wrapper turns this into INVALID_ARGUMENT instead."""

    error: str


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception as exc:
            return _Malformed(f"{type(exc).__name__}: {exc}")

    return parse


def _check(request: Any) -> Any:
    if isinstance(request, _Malformed):
        raise InvalidArgument(f"request does not parse: {request.error}", reason="MALFORMED_REQUEST")
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    # Covers the request iterator; a handler that reads with context.read() gets _Malformed.
    async for request in requests:
        yield _check(request)


class _Call:
    """Wraps one method's behaviour: a span per call, errors mapped to statuses."""

    def __init__(self, tracer: trace.Tracer, method: str, *, traced: bool) -> None:
        self.tracer = tracer
        self.method = method
        self.traced = traced
        service, _, name = method.lstrip("/").partition("/")
        self.attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
        self.span_name = method.lstrip("/")

    def wrap(self, behaviour: Behaviour, request_streaming: bool) -> Behaviour:
        check = _checked_stream if request_streaming else _check

        if inspect.isasyncgenfunction(behaviour):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                # The span is current only while the handler runs (around each step), never across
                # a yield: grpc.aio may close this generator from another context (the client went
                # away), where a token attached in the first could not be detached.
                span = self._open_span(context)
                current = trace.set_span_in_context(span)
                try:
                    async with contextlib.aclosing(behaviour(check(request), context)) as responses:
                        while True:
                            token = otel_context.attach(current)
                            try:
                                response = await anext(responses)
                            except StopAsyncIteration:
                                break
                            finally:
                                otel_context.detach(token)
                            yield response
                except Exception as exc:
                    await self._fail(span, context, exc)
                except BaseException:  # CancelledError, or GeneratorExit at a yield
                    _cancelled(span)
                    raise
                else:
                    _finish_ok(span, context)
                finally:
                    span.end()

            return stream

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self._span(context) as span:
                try:
                    result = behaviour(check(request), context)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception as exc:
                    await self._fail(span, context, exc)
                except BaseException:
                    _cancelled(span)
                    raise
                _finish_ok(span, context)
                return result

        return unary

    def _open_span(self, context: grpc.aio.ServicerContext) -> trace.Span:
        """The call's span, started but not current; its caller ends it."""
        if not self.traced:
            return trace.INVALID_SPAN
        return self.tracer.start_span(self.span_name, context=propagate.extract(_text_metadata(context)),
                                      kind=SpanKind.SERVER, attributes=self.attributes,
                                      record_exception=False, set_status_on_exception=False)

    @contextlib.contextmanager
    def _span(self, context: grpc.aio.ServicerContext) -> Iterator[trace.Span]:
        span = self._open_span(context)
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            yield span

    async def _fail(self, span: trace.Span, context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
        """Record why the call failed and end it the way grpc.aio understands (AbortError)."""
        if isinstance(exc, grpc.aio.AbortError):
            # The handler aborted by itself; the code is already on the context.
            _set_status(span, context.code(), context.details())
            raise exc
        if isinstance(exc, DomainError):
            _set_status(span, exc.code, exc.message)
            span.set_attribute("error.type", exc.reason)
            await context.abort_with_status(exc.to_grpc_status())
        else:
            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__qualname__)
            _log.error("uncaught exception in %s", self.method, exc_info=exc, extra={"rpc": self.method})
            preset = context.code()
            if preset is not None and preset is not grpc.StatusCode.OK:
                # A handler that set a code and then raised (the generated UNIMPLEMENTED stubs
                # do) meant that code; keep it rather than hide it behind INTERNAL.
                _set_status(span, preset, context.details())
                await context.abort(preset, context.details() or "")
            _set_status(span, grpc.StatusCode.INTERNAL, "internal error")
            trace_id = _trace_id(span)
            await context.abort_with_status(
                internal_status("internal error", {"trace_id": trace_id} if trace_id else None)
            )
        raise AssertionError("grpc.aio's abort returned")  # it always raises AbortError


def _cancelled(span: trace.Span) -> None:
    # CancelledError: the client went away or the server is stopping. Not a handler failure,
    # so no ERROR status; the exception must keep propagating.
    span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.CANCELLED.value[0])


def _finish_ok(span: trace.Span, context: grpc.aio.ServicerContext) -> None:
    # A handler may also end a call with set_code() and a normal return.
    code = context.code()
    _set_status(span, code if code is not None else grpc.StatusCode.OK, context.details())


def _set_status(span: trace.Span, code: grpc.StatusCode | None, details: object) -> None:
    code = code if code is not None else grpc.StatusCode.UNKNOWN
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code is not grpc.StatusCode.OK:
        text = details.decode(errors="replace") if isinstance(details, bytes) else (details or "")
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {text}" if text else code.name))


def _text_metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}


def _trace_id(span: trace.Span) -> str:
    ctx = span.get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else ""
