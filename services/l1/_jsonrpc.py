"""JSON-RPC 2.0 over HTTP: one aiohttp session, every call through the endpoint's CallPolicy.

Each JSON-RPC call is one OpenTelemetry CLIENT span named after its method, covering every
attempt the policy makes; a batch request is one HTTP exchange and one span per call in it.
Only as part of work: a call made under no recording span (a follower's or a loop's poll) makes
no span, so an idle node creates no root traces; the work that needs L1 opens its span first.
"""

from __future__ import annotations

import asyncio
import binascii
import itertools
import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.l1._errors import LIMIT_EXCEEDED, HttpStatusError, ProtocolError, RpcError
from services.runtime import Attempt, CallPolicy, child_span, counter, redact_url, service_label

#: One JSON-RPC call: method and positional params.
Call = tuple[str, Sequence[Any]]

_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json"}
_tracer = trace.get_tracer("l2node.l1")  # a proxy: follows the provider init_tracing installs later
_CALLS = counter("l2node_l1_requests_total", "L1 JSON-RPC calls by method and outcome: ok, rpc_error (the node "
                 "answered an error), failed (transport, deadline, breaker open), cancelled",
                 ("service", "method", "outcome"))


class JsonRpc:
    """The transport. It does not own the session (the client does)."""

    def __init__(
        self, url: str, session: aiohttp.ClientSession, policy: CallPolicy, tracer: trace.Tracer | None = None
    ) -> None:
        self.url: Final = url
        self.policy: Final = policy
        self._session = session
        self._tracer = tracer or _tracer
        self._ids = itertools.count(1)
        parts = urlsplit(url)
        self._attributes: Final[dict[str, str | int]] = {
            "rpc.system": "jsonrpc",
            "rpc.jsonrpc.version": "2.0",
            "l1.endpoint": redact_url(url),
            "server.address": parts.hostname or "",
            **({"server.port": parts.port} if parts.port else {}),
        }

    async def request(
        self, method: str, params: Sequence[Any] = (), *, deadline_s: float | None = None, mutating: bool = False
    ) -> Any:
        """One call; its result, or :class:`RpcError` for an error response (never retried).
        ``bytes`` anywhere in ``params`` go out as DATA (0x-hex), see ``_request_body``."""
        request_id = next(self._ids)
        payload = _request_body(request_id, method, params)
        span = child_span(
            self._tracer, method, kind=SpanKind.CLIENT, attributes={**self._attributes, "rpc.method": method})
        attempts = 0

        async def attempt(a: Attempt) -> Any:
            nonlocal attempts
            attempts = a.number
            return _result(await self._post(payload, a.timeout_s, span), request_id, method)

        try:
            result = await self.policy.call(attempt, deadline_s=deadline_s, mutating=mutating)
        except BaseException as exc:
            _count(method, exc)
            _fail(span, exc, attempts)
            raise
        _count(method, None)
        span.set_attribute("l1.attempts", attempts)
        span.end()
        return result

    async def batch(self, calls: Sequence[Call], *, deadline_s: float | None = None) -> list[Any]:
        """Several read calls in one HTTP request; results in call order. Raises the first
        call's :class:`RpcError`, if any. Meant for reads: the whole batch is retried together."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        payload = json.dumps(
            [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)} for i, (m, p) in zip(ids, calls, strict=True)]
        ).encode()
        size = len(calls)
        spans = [
            child_span(
                self._tracer, m, kind=SpanKind.CLIENT,
                attributes={**self._attributes, "rpc.method": m, "rpc.jsonrpc.batch_size": size},
            )
            for m, _ in calls
        ]
        attempts = 0

        async def attempt(a: Attempt) -> list[Any]:
            nonlocal attempts
            attempts = a.number
            answer = await self._post(payload, a.timeout_s, spans[0])
            if not isinstance(answer, list):
                if isinstance(answer, dict) and isinstance(answer.get("error"), dict):  # batch refused as a whole
                    raise _rpc_error(answer["error"], "batch")
                raise ProtocolError(f"batch answer is a {type(answer).__name__}, not a list")
            by_id = {r.get("id"): r for r in answer if isinstance(r, dict)}
            results = []
            for request_id, (method, _) in zip(ids, calls, strict=True):
                try:
                    results.append(_result(by_id.get(request_id), request_id, method))
                except RpcError as exc:
                    if exc.code == LIMIT_EXCEEDED:
                        raise  # rate limited: retry the batch
                    results.append(exc)
            return results

        try:
            results = await self.policy.call(attempt, deadline_s=deadline_s)
        except BaseException as exc:
            for span, (method, _) in zip(spans, calls, strict=True):
                _count(method, exc)
                _fail(span, exc, attempts)
            raise
        first_error: RpcError | None = None
        for span, result, (method, _) in zip(spans, results, calls, strict=True):
            _count(method, result if isinstance(result, RpcError) else None)
            if isinstance(result, RpcError):
                _fail(span, result, attempts)
                first_error = first_error or result
            else:
                span.set_attribute("l1.attempts", attempts)
                span.end()
        if first_error is not None:
            raise first_error
        return results

    async def _post(self, payload: bytes, timeout_s: float, span: trace.Span) -> Any:
        headers = dict(_HEADERS)
        propagate.inject(headers, context=trace.set_span_in_context(span))
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.post(self.url, data=payload, headers=headers, timeout=timeout) as response:
            body = await response.read()
            if not 200 <= response.status < 300:
                raise HttpStatusError(response.status, response.reason or "", _retry_after_s(response))
        try:
            return json.loads(body)
        except ValueError:
            raise ProtocolError(f"not JSON: {body[:120]!r}") from None


def _result(response: Any, request_id: int, method: str) -> Any:
    if not isinstance(response, dict) or response.get("id") != request_id:
        raise ProtocolError(f"{method}: no response with id {request_id}: {str(response)[:200]}")
    error = response.get("error")
    if error is not None:
        raise _rpc_error(error, method)
    if "result" not in response:
        raise ProtocolError(f"{method}: response has neither result nor error")
    return response["result"]


def _rpc_error(error: Any, method: str) -> RpcError:
    if not isinstance(error, dict):
        return RpcError(-32603, str(error), method=method)
    code = error.get("code")
    return RpcError(code if isinstance(code, int) else -32603, str(error.get("message", "")), error.get("data"),
                    method=method)


def _retry_after_s(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None  # the HTTP-date form is not worth parsing here


def _count(method: str, exc: BaseException | None) -> None:
    outcome = ("ok" if exc is None else "rpc_error" if isinstance(exc, RpcError)
               else "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed")
    _CALLS.labels(service_label(), method, outcome).inc()


def _fail(span: trace.Span, exc: BaseException, attempts: int) -> None:
    span.set_attribute("l1.attempts", attempts)
    if isinstance(exc, RpcError):
        span.set_attribute("rpc.jsonrpc.error_code", exc.code)
        span.set_attribute("rpc.jsonrpc.error_message", exc.message)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.end()


def _request_body(request_id: int, method: str, params: Sequence[Any]) -> bytes:
    """The request's JSON, ``bytes`` values written as DATA (0x-hex) straight into it.

    A batch's calldata and its signed transaction are ~400 kB each: json.dumps of their 800 kB of
    hex scanned every digit for escapes (~1.4 ms a value, twice a batch), and the hex string was
    copied twice more on its way. Hex needs no escaping: here it is made once and copied once, by
    the one join. Params are a few values deep: the walk is cheap.
    """
    parts = [b'{"jsonrpc":"2.0","id":%d,"method":%b,"params":' % (request_id, json.dumps(method).encode())]
    _json_parts(list(params), parts)
    parts.append(b"}")
    return b"".join(parts)


def _json_parts(value: Any, out: list[bytes]) -> None:
    """Append ``value``'s JSON to ``out`` (bytes as 0x-hex strings)."""
    if isinstance(value, bytes):
        out += (b'"0x', binascii.hexlify(value), b'"')
    elif isinstance(value, dict):
        out.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            out.append(b'%b%b:' % (b"," if i else b"", json.dumps(str(key)).encode()))
            _json_parts(item, out)
        out.append(b"}")
    elif isinstance(value, list | tuple):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _json_parts(item, out)
        out.append(b"]")
    else:
        out.append(json.dumps(value).encode())
