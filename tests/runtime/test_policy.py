"""The call policy against a real grpc.aio server on loopback, a closed port, and real sockets.

Time bounds are deliberately loose (this machine is small and noisy): they tell "bounded by
the deadline" from "ran into a 5 s sleep", never 0.31 s from 0.35 s.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from services.runtime._policy import (
    REQUEST_ID_METADATA_KEY,
    Attempt,
    BreakerOpen,
    CallPolicy,
    DeadlineExceeded,
    PolicyConfig,
    PolicyStats,
    call_unary,
    channel_options,
    policies,
)
from services.runtime._retry import (
    ANSWER,
    FAULT,
    PUSHBACK_KEY,
    TRANSIENT,
    UNRELATED,
    Health,
    Verdict,
    default_classify,
    http_status_verdict,
)
from tests.ports import free_port

pytestmark = pytest.mark.timeout(30)

Code = grpc.StatusCode


@dataclass(frozen=True)
class Step:
    """What the server does for one hit."""

    code: grpc.StatusCode | None = None  # None = answer b"ok"
    sleep_s: float = 0.0
    gate: asyncio.Event | None = None  # answer only once the test sets it (the server shares our loop)
    trailers: tuple[tuple[str, str], ...] = ()


OK = Step()
UNAVAILABLE = Step(Code.UNAVAILABLE)
SLOW = Step(sleep_s=5.0)


def pushback(code: grpc.StatusCode, value: str) -> Step:
    return Step(code, trailers=((PUSHBACK_KEY, value),))


@dataclass
class Backend:
    plan: list[Step] = field(default_factory=list)  # consumed first, one step per hit
    then: Step = OK  # after the plan
    hits: int = 0
    request_ids: list[str | None] = field(default_factory=list)

    async def handle(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.hits += 1
        self.request_ids.append(dict(context.invocation_metadata()).get(REQUEST_ID_METADATA_KEY))
        step = self.plan.pop(0) if self.plan else self.then
        if step.sleep_s:
            await asyncio.sleep(step.sleep_s)
        if step.gate is not None:
            await step.gate.wait()
        if step.code is not None:
            await context.abort(step.code, "scripted", trailing_metadata=step.trailers)
        return b"ok"


@dataclass
class Rig:
    backend: Backend
    method: Any  # grpc.aio.UnaryUnaryMultiCallable, bytes in and out


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    backend = Backend()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler = grpc.unary_unary_rpc_method_handler(backend.handle)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Backend", {"Call": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=channel_options())
    try:
        yield Rig(backend, channel.unary_unary("/test.Backend/Call"))
    finally:
        await channel.close()
        await server.stop(None)


@pytest.fixture
def closed_port() -> int:
    return free_port()  # bound then closed: connecting is refused


FAST = PolicyConfig(
    deadline_s=5.0,
    max_attempts=4,
    backoff_initial_s=0.01,
    backoff_max_s=0.05,
    breaker_fail_max=3,
    breaker_reset_s=60.0,  # tests that need half-open age the circuit (or use a short one)
)


def make_policy(**overrides: Any) -> CallPolicy:
    fields = {f: getattr(FAST, f) for f in FAST.__dataclass_fields__}
    return CallPolicy(f"test-{uuid.uuid4().hex[:8]}", PolicyConfig(**{**fields, **overrides}))


async def unary(policy: CallPolicy, rig: Rig, **kwargs: Any) -> bytes:
    result: bytes = await call_unary(policy, rig.method, b"x", **kwargs)
    return result


async def trip(policy: CallPolicy, rig: Rig) -> None:
    rig.backend.then = UNAVAILABLE
    for _ in range(policy.config.breaker_fail_max):
        with pytest.raises((grpc.aio.AioRpcError, BreakerOpen)):
            await unary(policy, rig)
    assert policy.statistics().state == "open"


def age_open_circuit(policy: CallPolicy) -> None:
    """Move the open circuit's opening back by reset_timeout, instead of sleeping through it."""
    storage = policy.circuit._state_storage
    storage.opened_at = datetime.now(UTC) - timedelta(seconds=policy.config.breaker_reset_s + 1)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls state another task changes; no event to await
            await asyncio.sleep(0.005)


def rpc_code(exc: BaseException | None) -> grpc.StatusCode | None:
    return exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None


# --- retry ---------------------------------------------------------------------------------------


async def test_unavailable_is_retried_then_succeeds(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.plan = [UNAVAILABLE, UNAVAILABLE]
    assert await unary(policy, rig) == b"ok"
    assert rig.backend.hits == 3
    stats = policy.statistics()
    assert (stats.calls, stats.retries, stats.failures, stats.state) == (1, 2, 2, "closed")


async def test_request_id_is_the_same_on_every_attempt(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.plan = [UNAVAILABLE, UNAVAILABLE]
    await unary(policy, rig, mutating=True)
    generated = rig.backend.request_ids
    assert len(generated) == 3 and len(set(generated)) == 1 and generated[0]

    rig.backend.plan, rig.backend.request_ids = [UNAVAILABLE], []
    await unary(policy, rig, request_id="client-chosen")
    assert rig.backend.request_ids == ["client-chosen", "client-chosen"]

    rig.backend.plan, rig.backend.request_ids = [UNAVAILABLE], []
    await unary(policy, rig)  # a read: no key
    assert rig.backend.request_ids == [None, None]

    seen: list[Attempt] = []

    async def fn(attempt: Attempt) -> int:
        seen.append(attempt)
        if len(seen) < 3:
            raise ConnectionResetError("flaky")
        return 7

    assert await policy.call(fn, mutating=True) == 7
    assert [a.number for a in seen] == [1, 2, 3]
    assert len({a.request_id for a in seen}) == 1 and seen[0].request_id
    assert all(0 < a.timeout_s <= FAST.deadline_s for a in seen)
    assert seen[0].timeout_s >= seen[2].timeout_s  # what is left of one deadline


async def test_invalid_argument_is_not_retried_and_does_not_count(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.then = Step(Code.INVALID_ARGUMENT)
    for _ in range(FAST.breaker_fail_max + 2):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await unary(policy, rig)
        assert rpc_code(err.value) == Code.INVALID_ARGUMENT
    assert rig.backend.hits == FAST.breaker_fail_max + 2  # one hit per call
    stats = policy.statistics()
    assert (stats.state, stats.failures, stats.retries) == ("closed", 0, 0)


async def test_client_error_resets_consecutive_failures(rig: Rig) -> None:
    policy = make_policy(max_attempts=1)
    rig.backend.plan = [UNAVAILABLE, UNAVAILABLE, Step(Code.NOT_FOUND), UNAVAILABLE, UNAVAILABLE]
    for _ in range(5):
        with pytest.raises(grpc.aio.AioRpcError):
            await unary(policy, rig)
    assert policy.statistics().state == "closed"  # 2 + 2 failures, never 3 in a row
    assert policy.circuit.fail_counter == 2


async def test_resource_exhausted_without_pushback_is_not_retried(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.then = Step(Code.RESOURCE_EXHAUSTED)
    with pytest.raises(grpc.aio.AioRpcError):
        await unary(policy, rig)
    assert rig.backend.hits == 1
    assert policy.statistics().failures == 1  # overload counts against the breaker


async def test_pushback_is_honoured(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.plan = [pushback(Code.RESOURCE_EXHAUSTED, "300")]
    started = time.monotonic()
    assert await unary(policy, rig) == b"ok"
    elapsed = time.monotonic() - started
    assert rig.backend.hits == 2
    assert 0.28 <= elapsed < 3.0  # waited the server's 300 ms, not our ~10 ms backoff


@pytest.mark.parametrize("value", ["-1", "soon"])
@pytest.mark.parametrize("code", [Code.RESOURCE_EXHAUSTED, Code.UNAVAILABLE])
async def test_negative_or_malformed_pushback_forbids_retry(
    rig: Rig, code: grpc.StatusCode, value: str
) -> None:
    policy = make_policy()
    rig.backend.then = pushback(code, value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await unary(policy, rig)
    assert rpc_code(err.value) == code
    assert rig.backend.hits == 1


async def test_pushback_past_the_deadline_fails_at_once(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.then = pushback(Code.UNAVAILABLE, "5000")
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as err:
        await unary(policy, rig, deadline_s=2.0)
    assert time.monotonic() - started < 1.0  # no 5 s sleep was started
    assert rig.backend.hits == 1
    assert rpc_code(err.value.__cause__) == Code.UNAVAILABLE


async def test_connection_refused_is_retried(closed_port: int) -> None:
    policy = make_policy(max_attempts=3, breaker_fail_max=10)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{closed_port}", options=channel_options()) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call_unary(policy, channel.unary_unary("/test.Backend/Call"), b"x")
    assert rpc_code(err.value) == Code.UNAVAILABLE  # attempts used up: the last error, unchanged
    assert (policy.statistics().retries, policy.statistics().failures) == (2, 3)

    raw = make_policy(max_attempts=3, breaker_fail_max=10)

    async def connect(attempt: Attempt) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", closed_port)
        writer.close()

    with pytest.raises(ConnectionRefusedError):
        await raw.call(connect)
    assert (raw.statistics().retries, raw.statistics().failures) == (2, 3)


# --- deadline -------------------------------------------------------------------------------------


async def test_deadline_bounds_retries_and_backoff(rig: Rig) -> None:
    policy = make_policy(
        max_attempts=10_000, backoff_initial_s=0.02, backoff_max_s=0.1, breaker_fail_max=10_000
    )
    rig.backend.then = UNAVAILABLE
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as err:
        await unary(policy, rig, deadline_s=0.3)
    assert time.monotonic() - started < 1.0
    assert rig.backend.hits >= 2
    # The cause is the last attempt's error: UNAVAILABLE, unless that attempt itself ran into the
    # deadline (a loaded machine can stretch one round trip past what was left): then its timeout.
    cause = err.value.__cause__
    assert rpc_code(cause) in (Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED) or isinstance(cause, TimeoutError), cause
    assert isinstance(err.value, TimeoutError)


async def test_deadline_cuts_a_slow_attempt(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.then = SLOW
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await unary(policy, rig, deadline_s=0.3)
    assert time.monotonic() - started < 1.0
    assert rig.backend.hits == 1
    assert policy.statistics().failures == 1  # too slow counts against the breaker


async def test_deadline_cuts_a_function_that_ignores_its_timeout() -> None:
    policy = make_policy()

    async def stubborn(attempt: Attempt) -> None:
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await policy.call(stubborn, deadline_s=0.3)
    assert time.monotonic() - started < 1.0


# --- breaker --------------------------------------------------------------------------------------


async def test_breaker_opens_after_fail_max_failures(rig: Rig) -> None:
    policy = make_policy(max_attempts=1)
    rig.backend.then = UNAVAILABLE
    for n in range(1, FAST.breaker_fail_max + 1):
        assert policy.statistics().state == "closed"
        with pytest.raises(grpc.aio.AioRpcError):  # the real error, even on the tripping failure
            await unary(policy, rig)
        assert policy.statistics().failures == n
    assert policy.statistics().state == "open"
    assert policy.circuit.current_state == "open"  # pybreaker's own state agrees


async def test_open_breaker_fails_fast_without_reaching_the_server(rig: Rig) -> None:
    policy = make_policy(max_attempts=1)
    await trip(policy, rig)
    hits = rig.backend.hits
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(BreakerOpen) as err:
            await unary(policy, rig)
        assert err.value.retry_after_s is not None and err.value.retry_after_s > 0
        # It says why the circuit opened: the failure it last counted.
        assert err.value.cause.startswith("AioRpcError") and "UNAVAILABLE" in err.value.cause
        assert str(err.value).endswith(f"; last failure: {err.value.cause}")
    assert time.monotonic() - started < 0.5
    assert rig.backend.hits == hits
    assert policy.statistics().rejected == 5


async def test_retries_stop_when_the_breaker_opens(rig: Rig) -> None:
    policy = make_policy(max_attempts=10, breaker_fail_max=2)
    rig.backend.then = UNAVAILABLE
    with pytest.raises(BreakerOpen):
        await unary(policy, rig)
    assert rig.backend.hits == 2
    assert policy.statistics() == PolicyStats(
        policy.target, "open", failures=2, calls=1, retries=2, rejected=1
    )


async def test_half_open_lets_exactly_one_probe_through_then_closes(rig: Rig) -> None:
    policy = make_policy(max_attempts=1)
    await trip(policy, rig)
    age_open_circuit(policy)
    rig.backend.then = Step(sleep_s=0.2)  # healthy again, and slow enough for the others to arrive
    hits = rig.backend.hits
    results = await asyncio.gather(*(unary(policy, rig) for _ in range(5)), return_exceptions=True)
    assert results.count(b"ok") == 1
    rejected = [r for r in results if isinstance(r, BreakerOpen)]
    assert len(rejected) == 4 and all(r.retry_after_s is None for r in rejected)
    assert rig.backend.hits == hits + 1
    assert policy.statistics().state == "closed"
    rig.backend.then = OK
    assert await asyncio.gather(*(unary(policy, rig) for _ in range(5))) == [b"ok"] * 5  # closed: all pass


async def test_half_open_after_reset_timeout_on_the_real_clock(rig: Rig) -> None:
    policy = make_policy(max_attempts=1, breaker_reset_s=0.2)
    await trip(policy, rig)
    rig.backend.then = OK
    await asyncio.sleep(0.3)
    assert await unary(policy, rig) == b"ok"
    assert policy.statistics().state == "closed"


async def test_failed_probe_reopens(rig: Rig) -> None:
    policy = make_policy(max_attempts=1)
    await trip(policy, rig)
    age_open_circuit(policy)
    hits = rig.backend.hits
    with pytest.raises(grpc.aio.AioRpcError):
        await unary(policy, rig)  # the probe, still UNAVAILABLE
    assert rig.backend.hits == hits + 1
    assert policy.statistics().state == "open"
    with pytest.raises(BreakerOpen):
        await unary(policy, rig)
    assert rig.backend.hits == hits + 1


async def test_client_error_on_the_probe_closes(rig: Rig) -> None:
    policy = make_policy(max_attempts=1)
    await trip(policy, rig)
    age_open_circuit(policy)
    rig.backend.then = Step(Code.FAILED_PRECONDITION)  # an answer: the target is up
    with pytest.raises(grpc.aio.AioRpcError):
        await unary(policy, rig)
    assert policy.statistics().state == "closed"


async def test_late_outcome_from_before_the_trip_does_not_decide(rig: Rig) -> None:
    policy = make_policy(max_attempts=1)
    release_early, release_probe = asyncio.Event(), asyncio.Event()
    rig.backend.plan = [Step(Code.UNAVAILABLE, gate=release_early)]
    early = asyncio.create_task(unary(policy, rig))  # admitted while closed
    await wait_until(lambda: rig.backend.hits == 1)
    await trip(policy, rig)
    age_open_circuit(policy)
    rig.backend.then = Step(gate=release_probe)
    probe = asyncio.create_task(unary(policy, rig))
    await wait_until(lambda: rig.backend.hits == 2 + FAST.breaker_fail_max)
    release_early.set()
    with pytest.raises(grpc.aio.AioRpcError):
        await early
    assert policy.statistics().state == "half_open"  # the stale failure did not reopen it
    release_probe.set()
    assert await probe == b"ok"
    assert policy.statistics().state == "closed"


# --- cancellation --------------------------------------------------------------------------------


async def cancel_soon(task: asyncio.Task[Any], ready: Callable[[], bool]) -> float:
    """Cancel ``task`` once ``ready``; return how long it took to end with CancelledError."""
    await wait_until(ready)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.monotonic() - started


async def test_cancel_during_backoff_propagates_at_once(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.then = pushback(Code.UNAVAILABLE, "5000")  # a deterministic 5 s backoff sleep
    task = asyncio.create_task(unary(policy, rig, deadline_s=20.0))
    assert await cancel_soon(task, lambda: rig.backend.hits == 1) < 1.0
    await asyncio.sleep(0.2)
    assert rig.backend.hits == 1


async def test_cancel_during_an_attempt_propagates_at_once(rig: Rig) -> None:
    policy = make_policy()
    rig.backend.then = SLOW
    task = asyncio.create_task(unary(policy, rig))
    assert await cancel_soon(task, lambda: rig.backend.hits == 1) < 1.0
    await asyncio.sleep(0.2)
    assert rig.backend.hits == 1
    stats = policy.statistics()
    assert (stats.state, stats.failures, stats.retries) == ("closed", 0, 0)  # neither success nor failure


async def test_cancelled_probe_releases_the_half_open_slot(rig: Rig) -> None:
    policy = make_policy(max_attempts=1)
    await trip(policy, rig)
    age_open_circuit(policy)
    rig.backend.then = SLOW
    hits = rig.backend.hits
    probe = asyncio.create_task(unary(policy, rig))
    await wait_until(lambda: rig.backend.hits == hits + 1)
    assert policy.statistics().state == "half_open"
    with pytest.raises(BreakerOpen):
        await unary(policy, rig)  # the slot is taken
    assert await cancel_soon(probe, lambda: True) < 1.0
    assert policy.statistics().state == "half_open"
    rig.backend.then = OK
    assert await unary(policy, rig) == b"ok"  # the next caller got the slot
    assert policy.statistics().state == "closed"


# --- statistics, registry, classification, config --------------------------------------------------


async def test_statistics_count_calls_retries_rejections(rig: Rig) -> None:
    policy = make_policy(max_attempts=3, breaker_fail_max=2)
    rig.backend.plan = [UNAVAILABLE]
    assert await unary(policy, rig) == b"ok"
    rig.backend.then = UNAVAILABLE
    for _ in range(2):
        with pytest.raises(BreakerOpen):
            await unary(policy, rig)
    assert policy.statistics() == PolicyStats(
        target=policy.target, state="open", failures=3, calls=3, retries=3, rejected=2
    )


def test_registry_one_policy_per_target() -> None:
    name = f"test-registry-{uuid.uuid4().hex[:8]}"
    policy = CallPolicy.for_target(name, PolicyConfig(max_attempts=2))
    assert CallPolicy.for_target(name) is policy
    assert CallPolicy.for_target(name, PolicyConfig(max_attempts=2)) is policy
    with pytest.raises(ValueError):
        CallPolicy.for_target(name, PolicyConfig(max_attempts=3))
    with pytest.raises(ValueError):
        CallPolicy(name)
    assert policy in policies()
    del policy
    gc.collect()
    assert name not in [p.target for p in policies()]


async def test_classifier_is_extensible() -> None:
    class HttpStatusError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(f"HTTP {status}")
            self.status = status

    def classify(exc: BaseException) -> Verdict:
        if isinstance(exc, HttpStatusError):
            return http_status_verdict(exc.status)
        return default_classify(exc)

    policy = make_policy(classify=classify)
    statuses = [503, 502, 200]

    async def post(attempt: Attempt) -> str:
        status = statuses.pop(0)
        if status != 200:
            raise HttpStatusError(status)
        return "0x1"

    assert await policy.call(post) == "0x1"
    assert policy.statistics().retries == 2

    statuses[:] = [400, 200]
    with pytest.raises(HttpStatusError):
        await policy.call(post)
    assert statuses == [200]  # a 4xx is not retried


def rpc_error(code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...] = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailers), details="x")


@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        (rpc_error(Code.UNAVAILABLE), TRANSIENT),
        (rpc_error(Code.UNAVAILABLE, ((PUSHBACK_KEY, "250"),)), Verdict(True, Health.DOWN, 0.25)),
        (rpc_error(Code.RESOURCE_EXHAUSTED, ((PUSHBACK_KEY, "0"),)), Verdict(True, Health.DOWN, 0.0)),
        (rpc_error(Code.RESOURCE_EXHAUSTED), FAULT),
        (rpc_error(Code.DEADLINE_EXCEEDED), FAULT),
        (rpc_error(Code.INTERNAL), FAULT),
        (rpc_error(Code.UNKNOWN), FAULT),
        (rpc_error(Code.INVALID_ARGUMENT), ANSWER),
        (rpc_error(Code.NOT_FOUND), ANSWER),
        (rpc_error(Code.FAILED_PRECONDITION), ANSWER),
        (rpc_error(Code.ALREADY_EXISTS), ANSWER),
        (rpc_error(Code.CANCELLED), UNRELATED),
        (ConnectionRefusedError(), TRANSIENT),
        (TimeoutError(), TRANSIENT),
        (OSError(113, "No route to host"), TRANSIENT),
        (socket.gaierror(socket.EAI_AGAIN, "temporary failure in name resolution"), TRANSIENT),
        (socket.gaierror(socket.EAI_NONAME, "name not known"), UNRELATED),
        (FileNotFoundError(), UNRELATED),
        (ValueError("a local bug"), UNRELATED),
        (BreakerOpen("other", 1.0), UNRELATED),
        (DeadlineExceeded("other", 1.0, 2), UNRELATED),
    ],
)
def test_default_classification(exc: BaseException, verdict: Verdict) -> None:
    assert default_classify(exc) == verdict


@pytest.mark.parametrize(
    ("status", "verdict"),
    [(503, TRANSIENT), (500, TRANSIENT), (501, FAULT), (429, Verdict(True, Health.DOWN, 2.0)), (404, ANSWER)],
)
def test_http_status_verdict(status: int, verdict: Verdict) -> None:
    assert http_status_verdict(status, retry_after_s=2.0 if status == 429 else None) == verdict


def test_channel_options_keep_grpc_retries_off() -> None:
    lb = ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))
    assert dict(channel_options(lb))["grpc.service_config_disable_resolution"] == 1
    retrying = {"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 5}}]}
    with pytest.raises(ValueError):
        channel_options(("grpc.service_config", json.dumps(retrying)))


@pytest.mark.parametrize(
    "bad",
    [
        {"deadline_s": 0},
        {"max_attempts": 0},
        {"breaker_fail_max": 0},
        {"backoff_initial_s": 2, "backoff_max_s": 1},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PolicyConfig(**bad)  # type: ignore[arg-type]


async def test_deadline_must_be_positive() -> None:
    async def fn(attempt: Attempt) -> None:
        return None

    with pytest.raises(ValueError):
        await make_policy().call(fn, deadline_s=0)
