"""A running echo worker: error mapping, streaming, health, reflection, worker status."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos.l2node.worker.v1 import worker_pb2, worker_pb2_grpc
from tests.runtime.conftest import ECHO_SERVICE, Worker, channel, echo_method


def _details(err: grpc.aio.AioRpcError) -> dict[str, object]:
    status = rpc_status.from_call(err)
    assert status is not None, f"no google.rpc.Status on {err.code()} {err.details()}"
    out: dict[str, object] = {}
    for detail in status.details:
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if detail.Is(cls.DESCRIPTOR):
                msg = cls()
                detail.Unpack(msg)
                out[cls.DESCRIPTOR.name] = msg
    return out


async def _fail(worker: Worker, **req: object) -> grpc.aio.AioRpcError:
    async with channel(worker.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await echo_method(ch, "Fail")(json.dumps(req).encode())
    return info.value


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("invalid_argument", grpc.StatusCode.INVALID_ARGUMENT),
        ("failed_precondition", grpc.StatusCode.FAILED_PRECONDITION),
        ("already_exists", grpc.StatusCode.ALREADY_EXISTS),
        ("resource_exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("not_found", grpc.StatusCode.NOT_FOUND),
        ("unavailable", grpc.StatusCode.UNAVAILABLE),
    ],
)
async def test_domain_errors_map_to_codes_with_error_info(
    echo: Worker, kind: str, code: grpc.StatusCode
) -> None:
    err = await _fail(echo, kind=kind, reason="NONCE_TOO_LOW")
    assert err.code() is code
    assert err.details() == f"{kind} requested"
    info = _details(err)["ErrorInfo"]
    assert (info.reason, info.domain, dict(info.metadata)) == ("NONCE_TOO_LOW", "l2node", {"asked": kind})


async def test_field_violations_and_retry_info(echo: Worker) -> None:
    err = await _fail(echo, kind="resource_exhausted", field="txs[3].nonce", retry_delay_s=1.5)
    details = _details(err)
    assert details["ErrorInfo"].reason == "RESOURCE_EXHAUSTED"  # the code's name by default
    (violation,) = details["BadRequest"].field_violations
    assert (violation.field, violation.description, violation.reason) == (
        "txs[3].nonce",
        "is wrong",
        "FIELD_BAD",
    )
    assert details["RetryInfo"].retry_delay.ToNanoseconds() == 1_500_000_000


async def test_bad_input_is_invalid_argument(echo: Worker) -> None:
    async with channel(echo.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await echo_method(ch, "Echo")(b"\xff not json")
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = _details(info.value)
    assert details["ErrorInfo"].reason == "BAD_JSON"
    assert details["BadRequest"].field_violations[0].field == "body"


async def test_undecodable_protobuf_is_invalid_argument_not_unknown(echo: Worker) -> None:
    async with channel(echo.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary("/l2node.worker.v1.WorkerService/GetWorkerStatus")(b"\xff\xff\xff")
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _details(info.value)["ErrorInfo"].reason == "MALFORMED_REQUEST"


async def test_uncaught_exception_is_internal_and_worker_keeps_serving(echo: Worker) -> None:
    for _ in range(3):
        err = await _fail(echo, kind="exception")
        assert err.code() is grpc.StatusCode.INTERNAL  # never UNKNOWN
        assert "boom" not in (err.details() or "")  # no internals leak to clients
        info = _details(err)["ErrorInfo"]
        assert (info.reason, info.domain) == ("INTERNAL", "l2node")
        assert len(info.metadata["trace_id"]) == 32
    async with channel(echo.address) as ch:
        assert json.loads(await echo_method(ch, "Echo")(b'{"still": "here"}'))["still"] == "here"
    assert echo.proc.poll() is None
    logged = [e for e in echo.logs() if e.get("message", "").startswith("uncaught exception")]
    assert logged and "RuntimeError: boom" in logged[-1]["exception"]
    assert logged[-1]["trace_id"] == info.metadata["trace_id"]


async def test_handler_aborts_pass_through(echo: Worker) -> None:
    err = await _fail(echo, kind="abort")
    assert (err.code(), err.details()) == (grpc.StatusCode.PERMISSION_DENIED, "aborted by handler")
    err = await _fail(echo, kind="abort_with_status")
    assert err.code() is grpc.StatusCode.DATA_LOSS
    assert rpc_status.from_call(err).message == "lost it"


async def test_streaming_handlers_keep_their_shape(echo: Worker) -> None:
    async with channel(echo.address) as ch:
        for method in ("Stream", "StreamWrite"):
            call = ch.unary_stream(f"/{ECHO_SERVICE}/{method}")(b'{"n": 4}')
            assert [json.loads(m)["i"] async for m in call] == [0, 1, 2, 3]
            assert await call.code() is grpc.StatusCode.OK


async def test_health_reflection_and_worker_status(echo: Worker) -> None:
    async with channel(echo.address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        listed = await health.List(health_pb2.HealthListRequest())
        assert set(listed.statuses) == {"", ECHO_SERVICE, "l2node.worker.v1.WorkerService"}
        assert {s.status for s in listed.statuses.values()} == {health_pb2.HealthCheckResponse.SERVING}
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert info.value.code() is grpc.StatusCode.NOT_FOUND

        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name async for r in replies for s in r.list_services_response.service}
        assert {ECHO_SERVICE, "l2node.worker.v1.WorkerService", "grpc.health.v1.Health"} <= names

        status = await worker_pb2_grpc.WorkerServiceStub(ch).GetWorkerStatus(
            worker_pb2.GetWorkerStatusRequest()
        )
    assert (status.service, status.pid) == ("echo", echo.pid)
    assert status.uptime_s > 0
    assert [(t.id, t.state) for t in status.tasks] == [("ticker", "running")]


async def test_while_it_starts_it_serves_not_serving_and_calls_are_unavailable(
    spawn: Callable[..., Worker], tmp_path: Path
) -> None:
    """The port opens before the service registers, so that a watcher is connected by SERVING."""
    gate = tmp_path / "register"
    worker = spawn(ready=False, settings={"register_after": str(gate)})
    async with channel(worker.address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        watch = health.Watch(health_pb2.HealthCheckRequest(), wait_for_ready=True)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        named = await health.Check(health_pb2.HealthCheckRequest(service=ECHO_SERVICE))
        assert named.status == health_pb2.HealthCheckResponse.NOT_SERVING  # not registered yet
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await echo_method(ch, "Echo")(b"{}")
        assert info.value.code() is grpc.StatusCode.UNAVAILABLE  # as a closed port: clients retry
        gate.touch()
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        assert json.loads(await echo_method(ch, "Echo")(b"{}"))["service"] == "echo"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ch.unary_unary(f"/{ECHO_SERVICE}/NoSuchMethod")(b"{}")
        assert info.value.code() is grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_worker_status_shows_call_policy_breakers(spawn: object) -> None:
    a, b = spawn("echo-a"), spawn("echo-b")  # type: ignore[operator]
    async with channel(a.address) as ch:
        await echo_method(ch, "Call")(json.dumps({"address": b.address}).encode())
        status = await worker_pb2_grpc.WorkerServiceStub(ch).GetWorkerStatus(
            worker_pb2.GetWorkerStatusRequest()
        )
    (breaker,) = status.breakers
    assert breaker.target == f"echo@{b.address}"
    assert breaker.state == worker_pb2.BREAKER_STATE_CLOSED
    assert (breaker.calls, breaker.failures) == (1, 0)


_METHODS = st.sampled_from(
    [f"/{ECHO_SERVICE}/{m}" for m in ("Echo", "Fail", "Stream", "StreamWrite", "Call", "Nope")]
    + ["/grpc.health.v1.Health/Check", "/l2node.worker.v1.WorkerService/GetWorkerStatus", "/x/y"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=_METHODS, body=st.binary(max_size=256) | st.text(max_size=64).map(str.encode))
def test_random_input_never_kills_the_worker(echo: Worker, method: str, body: bytes) -> None:
    with grpc.insecure_channel(echo.address) as ch:
        try:
            if method.endswith(("/Stream", "/StreamWrite")):
                list(ch.unary_stream(method)(body, timeout=5))
            else:
                ch.unary_unary(method)(body, timeout=5)
        except grpc.RpcError as err:
            assert err.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED), err
            if method.startswith("/grpc.health") or method.startswith("/l2node.worker"):
                assert err.code() is grpc.StatusCode.INVALID_ARGUMENT  # protobuf that does not parse
    assert echo.proc.poll() is None
