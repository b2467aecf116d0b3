"""JSON-RPC 2.0 over HTTP and WebSocket on one port: POST a request or a batch (``_http``'s lean
HTTP/1.1 protocol); GET with a WebSocket upgrade for the same, plus eth_subscribe("newHeads")
(aiohttp, which ``_http`` hands such a connection to, as it does a chunked POST).

Every call is a server span named after its method (``rpc.system`` = jsonrpc, ``rpc.method``; a
send's carries ``l2.tx.hash``), continuing the caller's W3C ``traceparent`` header if it sent one,
and is counted per method (``_metrics``). The eth_sendRawTransaction calls of one batch are one
SendRawTransactions call to the sequencer, under one span (``rpc.jsonrpc.batch_size``). Whatever a
client sends, it gets an answer: malformed JSON -32700, not a request -32600, an unknown method
-32601, bad params -32602, a neighbour down -32603 with what happened, never a dropped connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

import grpc
from aiohttp import WSMsgType, web
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from services.runtime import BreakerOpen, DeadlineExceeded, unrecorded_span

from . import _metrics as m
from ._errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    invalid_params,
)
from ._hex import params_of, parse_data
from ._http import IDLE_S, Headers, HttpProtocol
from ._methods import Methods
from ._settings import JsonRpcSettings
from ._shapes import block_json

SEND: Final = "eth_sendRawTransaction"
#: What a client is told when the sequencer cannot be reached (retry later), not a crash.
_UNAVAILABLE: Final = (grpc.aio.AioRpcError, BreakerOpen, DeadlineExceeded, TimeoutError)
_ATTRS: Final = {"rpc.system": "jsonrpc", "rpc.jsonrpc.version": "2.0"}

Json = dict[str, Any]


def _sampled(parent: otel_context.Context | None) -> bool:
    """Whether the caller's traceparent (if any) asked for its trace to be recorded."""
    return parent is not None and trace.get_current_span(parent).get_span_context().trace_flags.sampled


def _recording(parent: otel_context.Context | None) -> otel_context.Context | None:
    """``parent`` with its sampled flag set: a span under it is recorded (and continues its trace)."""
    if parent is None:
        return None
    caller = trace.get_current_span(parent).get_span_context()
    if not caller.is_valid or caller.trace_flags.sampled:
        return parent
    sampled = trace.SpanContext(caller.trace_id, caller.span_id, is_remote=True,
                                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED), trace_state=caller.trace_state)
    return trace.set_span_in_context(trace.NonRecordingSpan(sampled), parent)


def _response(request_id: Any, result: Any = None, error: RpcError | None = None) -> Json:
    if error is not None:
        return {"jsonrpc": "2.0", "id": request_id, "error": error.payload()}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def _valid(item: Any) -> RpcError | None:
    if not isinstance(item, dict) or not isinstance(item.get("method"), str):
        return RpcError(INVALID_REQUEST, "invalid request")
    request_id = item.get("id")
    if isinstance(request_id, bool) or not (request_id is None or isinstance(request_id, str | int | float)):
        return RpcError(INVALID_REQUEST, "invalid request: id must be a string, a number or null")
    return None


def _failure(exc: BaseException) -> RpcError:
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, grpc.aio.AioRpcError):
        return RpcError(INTERNAL_ERROR, f"sequencer: {exc.code().name}: {exc.details()}")
    if isinstance(exc, BreakerOpen):
        return RpcError(INTERNAL_ERROR, f"sequencer unavailable (circuit open): {exc}")
    if isinstance(exc, DeadlineExceeded | TimeoutError):
        return RpcError(INTERNAL_ERROR, "sequencer did not answer in time")
    return RpcError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}")


class Server:
    """The HTTP/WebSocket front of :class:`Methods`."""

    def __init__(self, settings: JsonRpcSettings, methods: Methods, tracer: trace.Tracer, logger: logging.Logger
                 ) -> None:
        self._settings = settings
        self._methods = methods
        self._tracer = tracer
        self._log = logger
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._connections: set[HttpProtocol] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        for method in (*methods.table, *_Subscriptions.METHODS, SEND, m.OTHER):  # every series from the start, at 0
            m.series(method)
        #: A span's attributes per method this server has, built once (a client's made-up names are not kept).
        self._read_trace_ratio = settings.read_trace_ratio
        self._attributes = {method: {**_ATTRS, "rpc.method": method} for method in (*methods.table,
                                                                                    *_Subscriptions.METHODS)}

    async def start(self) -> None:
        """Bind and serve (before the worker says SERVING: a port in use fails the start)."""
        app = web.Application(client_max_size=self._settings.max_body_bytes)
        app.router.add_post("/", self._http)
        app.router.add_get("/", self._websocket)
        self._runner = runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        aiohttp_protocol = runner.server
        assert aiohttp_protocol is not None
        max_body = self._settings.max_body_bytes
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: HttpProtocol(self._post, aiohttp_protocol, max_body, self._connections),
            self._settings.host, self._settings.port)
        self._sweeper = asyncio.ensure_future(self._sweep())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self._connections):
            connection.close()
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _sweep(self) -> None:
        """Closes the HTTP connections idle for IDLE_S (one timer for all, not one a request)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(60.0, IDLE_S))
            cutoff = loop.time() - IDLE_S
            for connection in [c for c in self._connections if c.idle and c.last_active < cutoff]:
                connection.close()

    # -- transports ----------------------------------------------------------------------------

    async def _post(self, body: bytes, headers: Headers) -> bytes | None:
        return await self.answer(body, propagate.extract(headers))

    async def _http(self, request: web.Request) -> web.Response:
        """A POST aiohttp was handed (a chunked body)."""
        parent = propagate.extract(request.headers)
        body = await request.read()
        answer = await self.answer(body, parent)
        if answer is None:  # notifications only: nothing to say
            return web.Response(status=200)
        return web.Response(body=answer, content_type="application/json")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=self._settings.max_body_bytes, heartbeat=30.0)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="JSON-RPC: POST a request, or GET with a WebSocket upgrade\n")
        await ws.prepare(request)
        self._sockets.add(ws)
        session = _Subscriptions(ws, self._methods)
        parent = propagate.extract(request.headers)
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                answer = await self.answer(msg.data, parent, session=session)
                if answer is not None:
                    await ws.send_bytes(answer) if msg.type == WSMsgType.BINARY else await ws.send_str(
                        answer.decode())
        finally:
            session.close()
            self._sockets.discard(ws)
        return ws

    # -- requests ------------------------------------------------------------------------------

    async def answer(self, body: bytes | str, parent: otel_context.Context | None, *,
                     session: _Subscriptions | None = None) -> bytes | None:
        """The encoded answer to a request body; None when it held notifications only."""
        try:
            return await self._answer(body, parent, session)
        except Exception:  # a bug of ours: the client still gets a JSON-RPC answer, the log the trace
            self._log.exception("JSON-RPC request failed")
            return _encode(_response(None, error=RpcError(INTERNAL_ERROR, "internal error")))

    async def _answer(self, body: bytes | str, parent: otel_context.Context | None,
                      session: _Subscriptions | None) -> bytes | None:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _encode(_response(None, error=RpcError(PARSE_ERROR, "parse error")))
        if isinstance(doc, list):
            if not doc:
                return _encode(_response(None, error=RpcError(INVALID_REQUEST, "empty batch")))
            if len(doc) > self._settings.max_batch:
                return _encode(_response(None, error=RpcError(
                    INVALID_REQUEST, f"batch too large: {len(doc)} requests, at most {self._settings.max_batch}")))
            replies = await self._batch(doc, parent, session)
            return _encode(replies) if replies else None
        if _valid(doc) is None and doc["method"] != SEND:  # the common case: one request, straight to its method
            reply = await self._one(doc, parent, session)
            return _encode(reply) if "id" in doc else None
        replies = await self._batch([doc], parent, session)
        return _encode(replies[0]) if replies else None

    async def _batch(self, items: list[Any], parent: otel_context.Context | None,
                     session: _Subscriptions | None) -> list[Json]:
        """Answers in request order (notifications get none); the sends go out together."""
        answers: list[Json | None] = [None] * len(items)
        wanted = [True] * len(items)  # a notification (no id) gets no answer; an invalid request does
        sends: list[tuple[int, Json]] = []
        others: list[Coroutine[Any, Any, None]] = []
        for i, item in enumerate(items):
            bad = _valid(item)
            if bad is not None:
                answers[i] = _response(None, error=bad)
                continue
            wanted[i] = "id" in item
            if item["method"] == SEND:
                sends.append((i, item))
            else:
                others.append(self._one_at(i, item, answers, parent, session))
        if sends:
            others.append(self._sends(sends, answers, parent))
        if len(others) == 1:
            await others[0]  # one request: no task to schedule
        elif others:
            await asyncio.gather(*others)
        return [a for a, w in zip(answers, wanted, strict=True) if a is not None and w]

    async def _one_at(self, index: int, item: Json, answers: list[Json | None], parent: otel_context.Context | None,
                      session: _Subscriptions | None) -> None:
        answers[index] = await self._one(item, parent, session)

    async def _one(self, item: Json, parent: otel_context.Context | None, session: _Subscriptions | None) -> Json:
        method: str = item["method"]
        handler = self._methods.table.get(method)
        if session is not None and method in _Subscriptions.METHODS:
            handler = getattr(session, method)
        label = method if handler is not None else m.OTHER
        # start_span and attach by hand: what start_as_current_span does, without its three context
        # managers (~3 us a call). Only a BaseException (a cancel) leaves the try, which it would not
        # record either; the finally detaches and ends the span whatever happens.
        attributes = self._attributes.get(method) or {**_ATTRS, "rpc.method": method}
        # A read is recorded when its caller's trace is, or at read_trace_ratio: wallets poll, and a
        # recorded span is a third of a read's CPU. Unrecorded, it still has ids (its log lines
        # carry them) and tells the services it calls not to record either; a failure is recorded.
        recorded = self._read_trace_ratio >= 1.0 or _sampled(parent) or random.random() < self._read_trace_ratio
        span = (self._tracer.start_span(method, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes)
                if recorded else unrecorded_span())
        started = time.perf_counter()
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            if handler is None:
                if method in _Subscriptions.METHODS:
                    raise RpcError(METHOD_NOT_FOUND, "notifications not supported")
                raise RpcError(METHOD_NOT_FOUND, f"the method {method} does not exist/is not available")
            return _response(item.get("id"), await handler(item.get("params")))
        except Exception as exc:
            if not span.is_recording():  # recorded after all, from when the call began
                otel_context.detach(token)
                began = time.time_ns() - int((time.perf_counter() - started) * 1e9)
                span = self._tracer.start_span(method, context=_recording(parent), kind=trace.SpanKind.SERVER,
                                               attributes=attributes, start_time=began)
                token = otel_context.attach(trace.set_span_in_context(span))
            error = _failure(exc)
            if not isinstance(exc, (RpcError, *_UNAVAILABLE)):
                self._log.exception("JSON-RPC method failed", extra={"method": method})
            span.set_status(trace.Status(trace.StatusCode.ERROR, error.message))
            span.set_attribute("rpc.jsonrpc.error_code", error.code)
            m.ERRORS.labels(label, str(error.code)).inc()
            return _response(item.get("id"), error=error)
        finally:
            try:
                calls, seconds = m.series(label)
                calls.inc()
                seconds.observe(time.perf_counter() - started)
            finally:
                otel_context.detach(token)
                span.end()

    async def _sends(self, sends: list[tuple[int, Json]], answers: list[Json | None],
                     parent: otel_context.Context | None) -> None:
        """The batch's eth_sendRawTransaction calls as one SendRawTransactions call."""
        attributes: dict[str, str | int] = {**_ATTRS, "rpc.method": SEND, "rpc.jsonrpc.batch_size": len(sends)}
        with self._tracer.start_as_current_span(SEND, context=parent, kind=trace.SpanKind.SERVER,
                                                attributes=attributes) as span:
            started = time.perf_counter()
            raws: list[bytes] = []
            slots: list[tuple[int, Json]] = []
            for index, item in sends:
                try:
                    (raw,) = params_of(item.get("params"), 1, 1)
                    raws.append(parse_data(raw, "raw transaction"))
                    slots.append((index, item))
                except RpcError as exc:
                    answers[index] = _response(item.get("id"), error=exc)
            outcomes: list[str | RpcError] = []
            if raws:
                try:
                    outcomes = await self._methods.send_raw(raws)
                except Exception as exc:
                    if not isinstance(exc, _UNAVAILABLE):
                        self._log.exception("JSON-RPC send failed")
                    outcomes = [_failure(exc)] * len(raws)
            for (index, item), outcome in zip(slots, outcomes, strict=True):
                if isinstance(outcome, RpcError):
                    answers[index] = _response(item.get("id"), error=outcome)
                else:
                    answers[index] = _response(item.get("id"), outcome)
            failed = [a["error"] for i, _ in sends if (a := answers[i]) is not None and "error" in a]
            if len(sends) == 1 and outcomes and isinstance(outcomes[0], str):
                span.set_attribute("l2.tx.hash", outcomes[0])
            if failed:
                span.set_attribute("rpc.jsonrpc.errors", len(failed))
                if len(failed) == len(sends):
                    span.set_status(trace.Status(trace.StatusCode.ERROR, failed[0]["message"]))
            for error in failed:
                m.ERRORS.labels(SEND, str(error["code"])).inc()
            calls, seconds = m.series(SEND)
            calls.inc(len(sends))
            seconds.observe(time.perf_counter() - started)


class _Subscriptions:
    """One WebSocket's eth_subscribe subscriptions (newHeads only: there are no logs, and the pool
    is the sequencer's own)."""

    METHODS: Final = frozenset({"eth_subscribe", "eth_unsubscribe"})

    def __init__(self, ws: web.WebSocketResponse, methods: Methods) -> None:
        self._ws = ws
        self._methods = methods
        self._stops: dict[str, Callable[[], None]] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1024)
        self._writer: asyncio.Task[None] | None = None

    async def eth_subscribe(self, params: Any) -> str:
        kind, _options = params_of(params, 1, 2)
        if kind != "newHeads":
            raise invalid_params(f"subscription {kind!r}: only newHeads is served (no logs: no EVM)")
        sub_id = "0x" + secrets.token_hex(16)

        def on_block(block: pb.Block) -> None:
            header = block_json(block)
            del header["transactions"], header["uncles"]
            note = {"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": sub_id,
                                                                               "result": header}}
            if self._queue.full():  # a client that does not read: it loses heads, the server no memory
                return
            self._queue.put_nowait(json.dumps(note))

        self._stops[sub_id] = self._methods.head.listen(on_block)
        m.SUBSCRIPTIONS.inc()
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        return sub_id

    async def eth_unsubscribe(self, params: Any) -> bool:
        (sub_id,) = params_of(params, 1, 1)
        stop = self._stops.pop(sub_id, None) if isinstance(sub_id, str) else None
        if stop is None:
            return False
        stop()
        m.SUBSCRIPTIONS.dec()
        return True

    async def _write(self) -> None:
        while True:
            note = await self._queue.get()
            if self._ws.closed:
                return
            await self._ws.send_str(note)

    def close(self) -> None:
        for stop in self._stops.values():
            stop()
            m.SUBSCRIPTIONS.dec()
        self._stops.clear()
        if self._writer is not None:
            self._writer.cancel()


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))  # json.dumps makes one a call for non-default options


def _encode(doc: Any) -> bytes:
    return _ENCODER.encode(doc).encode()
