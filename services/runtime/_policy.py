"""The one way every outbound call is made: deadline → tenacity retry → pybreaker circuit.

One :class:`CallPolicy` per target (another service, the L1 RPC endpoint, a prover), shared by
everything in the process that calls it::

    policy = CallPolicy.for_target("sequencer")
    block = await call_unary(policy, stub.GetBlock, GetBlockRequest(number=7))
    ack = await call_unary(policy, stub.SubmitBatch, batch, mutating=True)  # same request id each try
    head = await l1_policy.call(lambda a: l1.block_number(timeout=a.timeout_s))

Each attempt goes through the breaker; the retry loop is bounded by both ``max_attempts`` and
the call's deadline. What :meth:`CallPolicy.call` raises:

- :class:`BreakerOpen` — the circuit rejected an attempt (the first, or a retry), nothing was sent.
- :class:`DeadlineExceeded` (a ``TimeoutError``) — the deadline passed while an attempt ran (it
  is cut off even if the function ignores ``Attempt.timeout_s``; the transport's own timeout
  error, e.g. gRPC DEADLINE_EXCEEDED, is reported the same way), or an attempt failed retryably
  and the next backoff would end at or past the deadline. ``__cause__`` is the last attempt's error.
- ``asyncio.CancelledError`` — at once, from an attempt or a backoff sleep; never retried.
- otherwise the last attempt's own error, unchanged: a non-retryable error (INVALID_ARGUMENT...),
  or a retryable one when ``max_attempts`` are used up.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import pybreaker

from services.runtime._breaker import AsyncBreaker, BreakerOpen, BreakerState
from services.runtime._retry import (
    FAULT,
    Budget,
    Classifier,
    DeadlineExceeded,
    Health,
    Verdict,
    default_classify,
    http_status_verdict,
    retrying,
)

__all__ = [
    "REQUEST_ID_METADATA_KEY",
    "Attempt",
    "BreakerOpen",
    "BreakerState",
    "CallPolicy",
    "Classifier",
    "DeadlineExceeded",
    "Health",
    "PolicyConfig",
    "PolicyStats",
    "Verdict",
    "call_unary",
    "channel_options",
    "default_classify",
    "http_status_verdict",
    "new_request_id",
    "policies",
]

T = TypeVar("T")
Req_contra = TypeVar("Req_contra", contravariant=True)
Resp_co = TypeVar("Resp_co", covariant=True)

REQUEST_ID_METADATA_KEY: Final = "l2node-request-id"
_DEADLINE_SLACK_S: Final = 0.01  # a failure this close to the deadline counts as running into it


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Every default of the call policy, in one place."""

    deadline_s: float = 5.0  # whole call, backoff included; overridable per call
    max_attempts: int = 4  # first try + 3 retries
    backoff_initial_s: float = 0.05  # full-jitter window of the first retry; doubles each retry
    backoff_max_s: float = 1.0  # cap of that window
    breaker_fail_max: int = 5  # consecutive unhealthy outcomes that open the circuit
    breaker_reset_s: float = 5.0  # open → half-open after this long (a restarted worker is up in ~0.1 s)
    classify: Classifier = default_classify  # what is retried and what counts against the breaker

    def __post_init__(self) -> None:
        if not (self.deadline_s > 0 and self.breaker_reset_s > 0):
            raise ValueError("deadline_s and breaker_reset_s must be > 0")
        if self.max_attempts < 1 or self.breaker_fail_max < 1:
            raise ValueError("max_attempts and breaker_fail_max must be >= 1")
        if not 0 <= self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 <= backoff_initial_s <= backoff_max_s")


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the call function gets on each attempt."""

    number: int  # 1 for the first try
    timeout_s: float  # time left until the call's deadline: use it as this attempt's timeout
    request_id: str | None  # idempotency key, identical on every attempt of one call


@dataclass(frozen=True, slots=True)
class PolicyStats:
    """Served by the worker status RPC and shown by ``l2node status``; counters are totals."""

    target: str
    state: BreakerState
    failures: int  # attempts that counted against the breaker
    calls: int  # CallPolicy.call invocations
    retries: int  # attempts after the first
    rejected: int  # attempts the open circuit refused


_live: weakref.WeakValueDictionary[str, CallPolicy] = weakref.WeakValueDictionary()


def policies() -> list[CallPolicy]:
    """Every live policy of this process, by target name."""
    return sorted(_live.values(), key=lambda p: p.target)


def new_request_id() -> str:
    """A fresh idempotency key (uuid4 hex), for a caller that puts it in its message too."""
    return uuid.uuid4().hex


class CallPolicy:
    """Deadline, retry and circuit breaker for every call to one target."""

    def __init__(self, target: str, config: PolicyConfig | None = None) -> None:
        if target in _live:
            raise ValueError(f"a call policy for {target!r} exists; use CallPolicy.for_target")
        self.target: Final = target
        self.config: Final = config or PolicyConfig()
        self._breaker = AsyncBreaker(
            target, fail_max=self.config.breaker_fail_max, reset_s=self.config.breaker_reset_s
        )
        self._calls = 0
        self._retries = 0
        _live[target] = self

    @classmethod
    def for_target(cls, target: str, config: PolicyConfig | None = None) -> CallPolicy:
        """The process's policy for ``target``, created on first use. A different explicit
        ``config`` for an existing target is an error, not a silent second breaker."""
        existing = _live.get(target)
        if existing is None:
            return cls(target, config)
        if config is not None and config != existing.config:
            raise ValueError(f"call policy for {target!r} already exists with another config")
        return existing

    @property
    def circuit(self) -> pybreaker.CircuitBreaker:
        """The underlying pybreaker breaker, e.g. to add a metrics listener."""
        return self._breaker.circuit

    def statistics(self) -> PolicyStats:
        return PolicyStats(
            target=self.target,
            state=self._breaker.state,
            failures=self._breaker.failures,
            calls=self._calls,
            retries=self._retries,
            rejected=self._breaker.rejected,
        )

    async def call(
        self,
        fn: Callable[[Attempt], Awaitable[T]],
        *,
        deadline_s: float | None = None,
        request_id: str | None = None,
        mutating: bool = False,
    ) -> T:
        """Run ``fn`` under the policy; see the module docstring for what it raises.

        ``mutating=True`` without a ``request_id`` generates one, so every attempt carries the
        same idempotency key and a retry of an applied-but-unanswered call cannot apply twice.
        """
        budget_s = self.config.deadline_s if deadline_s is None else deadline_s
        if budget_s <= 0:
            raise ValueError("deadline_s must be > 0")
        if mutating and request_id is None:
            request_id = new_request_id()
        self._calls += 1
        budget = Budget(
            target=self.target,
            deadline_s=budget_s,
            deadline=asyncio.get_running_loop().time() + budget_s,
            max_attempts=self.config.max_attempts,
        )
        try:
            # The first attempt outside tenacity: a retry loop costs ~50 us of CPU a call to set up
            # and run, and nearly every call is answered at once.
            return await self._attempt(fn, budget, request_id)
        except BaseException as exc:
            if budget.verdict is None or not budget.verdict.retry:
                raise  # what the loop would have raised as is: nothing to retry
            first: BaseException | None = exc

        async def again(fn: Callable[[Attempt], Awaitable[T]], budget: Budget, request_id: str | None) -> T:
            # The loop's first attempt is the one just made: its error, as it came, so the loop's
            # stop, backoff and give-up rules see exactly what they would have.
            nonlocal first
            if first is not None:
                error, first = first, None
                raise error
            return await self._attempt(fn, budget, request_id)

        run = retrying(
            budget, backoff_initial_s=self.config.backoff_initial_s, backoff_max_s=self.config.backoff_max_s
        )
        result: T = await run(again, fn, budget, request_id)
        return result

    async def _attempt(
        self, fn: Callable[[Attempt], Awaitable[T]], budget: Budget, request_id: str | None
    ) -> T:
        budget.verdict = None
        budget.attempts += 1
        if budget.attempts > 1:
            self._retries += 1
        remaining = budget.remaining_s()
        if remaining <= 0:  # a backoff sleep ended late
            raise budget.expired() from budget.last_error
        permit = self._breaker.admit()
        health, error = Health.UNKNOWN, None  # stays so for CancelledError: neither success nor failure
        guard = asyncio.timeout_at(budget.deadline)  # cuts off a function that ignores timeout_s
        try:
            async with guard:
                result = await fn(Attempt(budget.attempts, remaining, request_id))
            health = Health.UP
            return result
        except Exception as exc:
            verdict = FAULT if guard.expired() else self.config.classify(exc)
            health, error = verdict.health, exc
            budget.last_error = exc
            if verdict.health is not Health.UP and budget.remaining_s() <= _DEADLINE_SLACK_S:
                # It ran into the deadline; the transport's own timeout (gRPC's DEADLINE_EXCEEDED)
                # may fire a hair before our guard, so report both alike. An answer stays an answer.
                raise budget.expired() from exc
            budget.verdict = verdict
            raise
        finally:
            self._breaker.settle(permit, health, error)


# --- gRPC ---------------------------------------------------------------------------------------

Metadata = Sequence[tuple[str, str | bytes]]


class UnaryUnaryMethod(Protocol[Req_contra, Resp_co]):
    """A grpc.aio unary-unary stub method (``stub.GetBlock`` or ``channel.unary_unary(...)``)."""

    def __call__(
        self, request: Req_contra, *, timeout: float | None = ..., metadata: Metadata | None = ...
    ) -> Awaitable[Resp_co]: ...


async def call_unary(
    policy: CallPolicy,
    method: UnaryUnaryMethod[Req_contra, Resp_co],
    request: Req_contra,
    *,
    deadline_s: float | None = None,
    request_id: str | None = None,
    mutating: bool = False,
    metadata: Metadata = (),
) -> Resp_co:
    """Call a grpc.aio unary method through ``policy``: each attempt gets ``timeout=`` the time
    left and the request id in ``l2node-request-id`` metadata (a message with its own
    ``request_id`` field should carry the same id). The channel's options must pass through
    :func:`channel_options`, so gRPC does not retry underneath the policy.
    """

    async def attempt(a: Attempt) -> Resp_co:
        md = metadata if a.request_id is None else (*metadata, (REQUEST_ID_METADATA_KEY, a.request_id))
        return await method(request, timeout=a.timeout_s, metadata=md)

    return await policy.call(attempt, deadline_s=deadline_s, request_id=request_id, mutating=mutating)


def channel_options(*options: tuple[str, Any]) -> tuple[tuple[str, Any], ...]:
    """``options`` for a grpc.aio channel used under a CallPolicy, checked to configure no gRPC
    retries: the policy retries, and a gRPC retryPolicy/hedgingPolicy underneath would multiply
    its attempts (4 x 5 = 20 sends). Transparent retries (the RPC never left this process) are
    harmless and stay on.
    """
    for key, value in options:
        if key == "grpc.service_config" and _configures_retries(json.loads(value)):
            raise ValueError("no retryPolicy/hedgingPolicy in grpc.service_config under a CallPolicy")
    # No service config from the name resolver (DNS TXT) either: it could carry a retry policy.
    return (*options, ("grpc.service_config_disable_resolution", 1))


def _configures_retries(service_config: Any) -> bool:
    methods = service_config.get("methodConfig", []) if isinstance(service_config, dict) else []
    return any("retryPolicy" in m or "hedgingPolicy" in m for m in methods if isinstance(m, dict))
