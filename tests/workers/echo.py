"""A test worker: JSON-over-bytes echo service built with generic handlers (no protos).

Service ``l2node.testing.v1.EchoService``; every request and response is a JSON object.

- Echo: returns the request plus ``service`` and the ``trace_id`` the handler saw.
- Fail: ``{"kind": ...}`` raises a DomainError subclass (``invalid_argument`` ...),
  ``exception`` (a plain RuntimeError), ``abort`` or ``abort_with_status``.
- Slow: sleeps ``sleep_s`` then answers (drain tests).
- Stream: async generator of ``n`` messages; StreamWrite: the same via ``context.write``.
- Call: calls Echo on ``address`` through ``ctx.channel`` (trace propagation).

Settings: ``{"tasks": "tick" | "crash"}`` adds a background task that ticks forever (and logs
"ticker stopped" when stopped), or one that crashes at once (the task tree gives up and the worker
must exit non-zero). ``{"register_after": path}`` holds registration until that file exists (the
worker serves, NOT_SERVING, meanwhile). Closing the service logs "service closed".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.rpc import code_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace

import supervisor
from services.runtime import (
    AlreadyExists,
    CallPolicy,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Service,
    Unavailable,
    WorkerContext,
    WorkerDefinition,
)

SERVICE = "l2node.testing.v1.EchoService"

_ERRORS: dict[str, type[DomainError]] = {
    "invalid_argument": InvalidArgument,
    "failed_precondition": FailedPrecondition,
    "already_exists": AlreadyExists,
    "resource_exhausted": ResourceExhausted,
    "not_found": NotFound,
    "unavailable": Unavailable,
}


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(
            "request is not JSON", reason="BAD_JSON", field_violations=[FieldViolation("body", str(exc))]
        ) from None
    if not isinstance(value, dict):
        raise InvalidArgument("request must be a JSON object", reason="NOT_AN_OBJECT")
    return value


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def _trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else ""


class Echo:
    """The echo worker's service: its one optional task, and a close that says it ran."""

    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        #: The registry holds policies weakly; the worker keeps its own alive.
        self.policies: dict[str, CallPolicy] = {}

    def tasks(self) -> Sequence[supervisor.ChildSpec]:
        mode = self._ctx.config.settings.get("tasks")
        if mode == "tick":
            logger = self._ctx.logger

            async def tick() -> None:
                try:
                    while True:  # noqa: ASYNC110 - a periodic loop is what services' tasks look like
                        await asyncio.sleep(0.05)
                finally:
                    logger.info("ticker stopped")

            return [supervisor.ChildSpec(id="ticker", start=supervisor.task(tick))]
        if mode == "crash":

            async def crash() -> None:
                await asyncio.sleep(0.01)
                raise RuntimeError("task crashed")

            return [supervisor.ChildSpec(id="crasher", start=supervisor.task(crash))]
        if mode == "lose_fsync":
            storage = self._ctx.storage

            async def lose() -> None:
                # The disk reports a lost write-back (EIO) to the next fsync: injected, as a real one
                # cannot be made in a test. Its commit is what a worker would acknowledge next.
                storage.sync_in_groups()

                def fsync(fd: int) -> None:
                    raise OSError(errno.EIO, "Input/output error")

                os.fsync = fsync
                with storage.transaction() as db:
                    db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
                with contextlib.suppress(OSError):  # the caller's acknowledgement fails; the worker stops
                    await storage.durable()
                await asyncio.Event().wait()

            return [supervisor.ChildSpec(id="loser", start=supervisor.task(lose))]
        return []

    async def aclose(self) -> None:
        self._ctx.logger.info("service closed")


async def register(ctx: WorkerContext) -> Service:
    gate = ctx.config.settings.get("register_after")
    while gate is not None and not os.path.exists(gate):  # noqa: ASYNC110, ASYNC240 - a test gate, polled
        await asyncio.sleep(0.01)
    service = Echo(ctx)

    async def echo(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = _decode(raw)
        ctx.logger.info("echo", extra={"echo_keys": sorted(req)})
        return _encode({**req, "service": ctx.config.service, "trace_id": _trace_id()})

    async def fail(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = _decode(raw)
        kind = req.get("kind", "exception")
        if kind in _ERRORS:
            violations = [FieldViolation(req["field"], "is wrong", "FIELD_BAD")] if "field" in req else []
            raise _ERRORS[kind](
                f"{kind} requested",
                reason=req.get("reason"),
                metadata={"asked": kind},
                field_violations=violations,
                retry_delay_s=req.get("retry_delay_s"),
            )
        if kind == "abort":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "aborted by handler")
        if kind == "abort_with_status":
            status = status_pb2.Status(code=code_pb2.DATA_LOSS, message="lost it")
            await context.abort_with_status(rpc_status.to_status(status))
        raise RuntimeError(f"boom: {kind}")

    async def slow(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = _decode(raw)
        await asyncio.sleep(float(req.get("sleep_s", 1.0)))
        return _encode({"slept": req.get("sleep_s", 1.0)})

    async def stream(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        req = _decode(raw)
        for i in range(int(req.get("n", 3))):
            yield _encode({"i": i})
            await asyncio.sleep(float(req.get("interval_s", 0)))

    async def stream_write(raw: bytes, context: grpc.aio.ServicerContext) -> None:
        req = _decode(raw)
        for i in range(int(req.get("n", 3))):
            await context.write(_encode({"i": i}))

    async def call(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = _decode(raw)
        address = req["address"]
        echo_b = ctx.channel(address).unary_unary(f"/{SERVICE}/Echo")
        policy = service.policies.setdefault(address, CallPolicy.for_target(f"echo@{address}"))
        body = _encode(req.get("payload", {}))
        reply = json.loads(await policy.call(lambda attempt: echo_b(body, timeout=attempt.timeout_s)))
        return _encode({"service": ctx.config.service, "trace_id": _trace_id(), "reply": reply})

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Slow": grpc.unary_unary_rpc_method_handler(slow),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "StreamWrite": grpc.unary_stream_rpc_method_handler(stream_write),
        "Call": grpc.unary_unary_rpc_method_handler(call),
    }
    ctx.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    return service


WORKER = WorkerDefinition(name="echo", register=register)
