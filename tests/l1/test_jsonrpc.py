"""The JSON-RPC transport against a scripted HTTP server: what is retried, what is an answer,
what the breaker counts, and the client spans."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.l1 import HttpStatusError, L1Client, ProtocolError, RpcError, policy_config
from services.runtime import CallPolicy, quiet, redact_url

Reply = Callable[[Any], web.Response]


@dataclass
class Script:
    """Replies in order (the last one repeats); every request body is kept."""

    replies: list[Reply] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    traceparents: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.requests.append(body)
        self.traceparents.append(request.headers.get("traceparent", ""))
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        return reply(body)


def result(value: Any) -> Reply:
    def reply(body: Any) -> web.Response:
        if isinstance(body, list):
            return web.json_response([{"jsonrpc": "2.0", "id": b["id"], "result": value} for b in reversed(body)])
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": value})
    return reply


def error(code: int, message: str, data: Any = None) -> Reply:
    return lambda body: web.json_response(
        {"jsonrpc": "2.0", "id": body["id"], "error": {"code": code, "message": message, "data": data}})


def status(code: int, **headers: str) -> Reply:
    return lambda body: web.Response(status=code, text="<html>busy</html>", headers=headers)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_post("/v3/secret-api-key", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield script, f"http://127.0.0.1:{port}/v3/secret-api-key"
    finally:
        await runner.cleanup()


@pytest.fixture
def policy() -> CallPolicy:
    return CallPolicy(f"l1-test-{uuid.uuid4().hex[:8]}",
                      policy_config(deadline_s=2.0, backoff_initial_s=0.001, backoff_max_s=0.005, breaker_fail_max=3))


@pytest.fixture
def spans() -> tuple[InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider


async def test_5xx_is_retried_and_counted_by_the_breaker(server: tuple[Script, str], policy: CallPolicy) -> None:
    script, url = server
    script.replies = [status(503), status(502), result("0x7a69")]
    async with L1Client(url, policy=policy) as l1:
        assert await l1.chain_id() == 31337
    stats = policy.statistics()
    assert (stats.calls, stats.retries, stats.failures, stats.state) == (1, 2, 2, "closed")


async def test_rate_limits_are_retried(server: tuple[Script, str], policy: CallPolicy) -> None:
    script, url = server
    script.replies = [status(429, **{"Retry-After": "0"}), error(-32005, "limit exceeded"), result("0x1")]
    async with L1Client(url, policy=policy) as l1:
        assert await l1.block_number() == 1
    assert policy.statistics().retries == 2


async def test_a_revert_is_an_answer_never_retried(server: tuple[Script, str], policy: CallPolicy) -> None:
    script, url = server
    script.replies = [error(3, "execution reverted", "0xf1dff602" + "00" * 32)]
    async with L1Client(url, policy=policy) as l1:
        with pytest.raises(RpcError) as caught:
            await l1.call(b"\x01" * 20, b"")
    assert (caught.value.code, caught.value.revert_data) == (3, bytes.fromhex("f1dff602" + "00" * 32))
    assert len(script.requests) == 1
    stats = policy.statistics()
    assert (stats.calls, stats.retries, stats.failures) == (1, 0, 0)  # and the endpoint counts as up


async def test_bytes_go_out_as_hex_data_in_a_request_a_json_parser_reads_back(
        server: tuple[Script, str], policy: CallPolicy) -> None:
    script, url = server
    script.replies = [result("0x" + "ab" * 32)]
    data = bytes(range(256)) * 1_600  # a batch-sized call: written into the body as hex, not by json.dumps
    async with L1Client(url, policy=policy) as l1:
        await l1.call(b"\x01" * 20, data, sender=b"\x02" * 20, value=5, block="pending")
        await l1.send_raw_transaction(b"\x02\xf8")
        await l1.rpc.request("eth_x", ({"a": [1, None, True, b"\x00\xff"], "q": 'say "hi"\\ \u00e9'}, 1.5))
    call, send, other = script.requests
    assert call["method"] == "eth_call" and call["jsonrpc"] == "2.0"
    assert call["params"] == [{"data": "0x" + data.hex(), "to": "0x" + "01" * 20, "from": "0x" + "02" * 20,
                               "value": "0x5"}, "pending"]
    assert send["params"] == ["0x02f8"]
    assert other["params"] == [{"a": [1, None, True, "0x00ff"], "q": 'say "hi"\\ \u00e9'}, 1.5]
    assert len({call["id"], send["id"], other["id"]}) == 3


async def test_4xx_and_garbage_are_not_retried(server: tuple[Script, str], policy: CallPolicy) -> None:
    script, url = server
    script.replies = [status(401)]
    async with L1Client(url, policy=policy) as l1:
        with pytest.raises(HttpStatusError) as caught:
            await l1.chain_id()
        assert caught.value.status == 401
        script.replies = [lambda body: web.Response(text="<html>proxy error</html>")]
        with pytest.raises(ProtocolError):
            await l1.chain_id()
    assert policy.statistics().retries == 0


async def test_the_breaker_opens_after_repeated_failures(server: tuple[Script, str], policy: CallPolicy) -> None:
    script, url = server
    script.replies = [status(503)]
    async with L1Client(url, policy=policy) as l1:
        with pytest.raises(Exception):  # noqa: B017 - the policy's DeadlineExceeded, HttpStatusError or BreakerOpen
            await l1.chain_id()
    assert policy.statistics().state == "open"


async def test_a_batch_is_one_request_with_a_span_per_call(
    server: tuple[Script, str], policy: CallPolicy, spans: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    script, url = server
    exporter, provider = spans
    script.replies = [result("0x5")]
    tracer = provider.get_tracer("t")
    async with L1Client(url, policy=policy, tracer=tracer) as l1:
        with tracer.start_as_current_span("work"):
            assert await l1.batch([("eth_blockNumber", ()), ("eth_chainId", ())]) == ["0x5", "0x5"]
    assert len(script.requests) == 1 and len(script.requests[0]) == 2
    assert sorted(s.name for s in exporter.get_finished_spans()) == ["eth_blockNumber", "eth_chainId", "work"]


async def test_each_call_is_a_client_span_without_the_endpoints_secrets(
    server: tuple[Script, str], policy: CallPolicy, spans: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    script, url = server
    exporter, provider = spans
    script.replies = [status(503), result("0x7a69")]
    tracer = provider.get_tracer("t")
    async with L1Client(url, policy=policy, tracer=tracer) as l1:
        with tracer.start_as_current_span("work"):
            await l1.chain_id()
            script.replies = [error(-32000, "nonce too low")]
            script.requests.clear()
            with pytest.raises(RpcError):
                await l1.send_raw_transaction(b"\x02")
    ok, failed, _work = exporter.get_finished_spans()
    assert (ok.name, ok.kind, failed.name) == ("eth_chainId", SpanKind.CLIENT, "eth_sendRawTransaction")
    assert ok.attributes is not None and failed.attributes is not None
    assert ok.attributes["rpc.system"] == "jsonrpc" and ok.attributes["rpc.method"] == "eth_chainId"
    assert ok.attributes["l1.attempts"] == 2  # one span for the call, however many attempts
    assert "secret" not in str(ok.attributes["l1.endpoint"])
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["rpc.jsonrpc.error_code"] == -32000
    # W3C trace context goes along with each request.
    assert f"{failed.context.trace_id:032x}-{failed.context.span_id:016x}" in script.traceparents[-1]


async def test_calls_outside_work_make_no_spans_and_send_no_traceparent(
    server: tuple[Script, str], policy: CallPolicy, spans: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    """A loop's poll (no span) or a quiet one: an idle node must not make a root trace per call."""
    script, url = server
    exporter, provider = spans
    tracer = provider.get_tracer("t")
    script.replies = [result("0x1")]
    async with L1Client(url, policy=policy, tracer=tracer) as l1:
        await l1.block_number()
        with tracer.start_as_current_span("work"), quiet():
            await l1.block_number()
            await l1.batch([("eth_blockNumber", ()), ("eth_chainId", ())])
    assert [s.name for s in exporter.get_finished_spans()] == ["work"]
    assert len(script.requests) == 3 and not [t for t in script.traceparents if t]


def test_span_endpoints_are_redacted_by_the_one_redaction() -> None:
    shown = redact_url("https://user:pw@eth.example.com:8545/v3/0123456789abcdef0123456789abcdef?apikey=SECRET")
    assert "pw" not in shown and "0123456789abcdef" not in shown and "SECRET" not in shown
    assert shown.startswith("https://") and "eth.example.com:8545" in shown
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
