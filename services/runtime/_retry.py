"""What is safe to retry, what says the target is down, and how long to back off.

A failed attempt is classified once into a :class:`Verdict`; the retry loop reads
``Verdict.retry`` / ``Verdict.delay_s`` and the circuit breaker reads ``Verdict.health``.
The default classifier knows gRPC status codes and OS-level connection errors. Transports
with their own error types (the L1 JSON-RPC client) extend it by wrapping it::

    def classify_l1(exc: BaseException) -> Verdict:
        if isinstance(exc, HttpStatusError):
            return http_status_verdict(exc.status, exc.retry_after_s)
        return default_classify(exc)
"""

from __future__ import annotations

import asyncio
import enum
import errno
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import grpc
from tenacity import AsyncRetrying, RetryCallState, wait_random_exponential

PUSHBACK_KEY: Final = "grpc-retry-pushback-ms"  # gRFC A6 server pushback, in trailing metadata


class Health(enum.Enum):
    """What a finished attempt says about the target, as the circuit breaker counts it."""

    UP = "up"  # it answered, even with a client error: a breaker success
    DOWN = "down"  # unreachable, overloaded, too slow or broken: a breaker failure
    UNKNOWN = "unknown"  # says nothing about the target (a local bug, a nested policy): not counted


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the policy treats one failed attempt."""

    retry: bool
    health: Health
    delay_s: float | None = None  # server-mandated wait (pushback); None = our jittered backoff


ANSWER: Final = Verdict(retry=False, health=Health.UP)  # client error: a healthy answer
TRANSIENT: Final = Verdict(retry=True, health=Health.DOWN)
FAULT: Final = Verdict(retry=False, health=Health.DOWN)
UNRELATED: Final = Verdict(retry=False, health=Health.UNKNOWN)

Classifier = Callable[[BaseException], Verdict]


class DeadlineExceeded(TimeoutError):
    """The call's overall deadline ran out, or too little of it is left for the next backoff.

    ``__cause__`` is the last attempt's error, if any attempt ran.
    """

    def __init__(self, target: str, deadline_s: float, attempts: int) -> None:
        super().__init__(f"{target}: deadline of {deadline_s:.3g}s exceeded after {attempts} attempt(s)")
        self.target = target
        self.deadline_s = deadline_s
        self.attempts = attempts


# --- classification -----------------------------------------------------------------------------

_S = grpc.StatusCode
# The server (or the path to it) is in trouble. Everything else is an answer from a healthy server.
_GRPC_DOWN: Final = frozenset(
    {_S.UNAVAILABLE, _S.DEADLINE_EXCEEDED, _S.RESOURCE_EXHAUSTED, _S.INTERNAL, _S.UNKNOWN, _S.DATA_LOSS}
)
# A connection that failed, or broke, at the socket level; the errno survives wrapping in
# client libraries (aiohttp's ClientConnectorError is an OSError carrying it).
_NET_ERRNOS: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTDOWN,
        errno.EADDRNOTAVAIL,
    }
)


def pushback_s(trailing_metadata: Iterable[tuple[str, str | bytes]] | None) -> float | None:
    """The server's pushback in seconds; None if absent; a negative result means "do not retry".

    gRFC A6: a non-negative integer number of ms is the delay; anything else forbids a retry.
    """
    for key, value in trailing_metadata or ():
        if key != PUSHBACK_KEY:
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        try:
            ms = int(text.strip())
        except ValueError:
            return -1.0
        return ms / 1000.0 if ms >= 0 else -1.0
    return None


def grpc_verdict(code: Any, trailing_metadata: Iterable[tuple[str, str | bytes]] | None) -> Verdict:
    """Verdict for a gRPC status. Only UNAVAILABLE is retried by default (nothing was applied, or
    the request_id makes a replay harmless); RESOURCE_EXHAUSTED only when the server says when.
    """
    if code not in _GRPC_DOWN:
        return UNRELATED if code == _S.CANCELLED else ANSWER
    if code not in (_S.UNAVAILABLE, _S.RESOURCE_EXHAUSTED):
        return FAULT
    delay = pushback_s(trailing_metadata)
    if delay is not None:
        return FAULT if delay < 0 else Verdict(retry=True, health=Health.DOWN, delay_s=delay)
    # RESOURCE_EXHAUSTED without pushback may be a quota that will not clear in our deadline, or a
    # client-side message-size limit: not retried.
    return TRANSIENT if code == _S.UNAVAILABLE else FAULT


def http_status_verdict(status: int, retry_after_s: float | None = None) -> Verdict:
    """Verdict for an HTTP status (JSON-RPC over HTTP): 5xx and 429 are retried, other 4xx are answers."""
    if status == 429:
        return Verdict(retry=True, health=Health.DOWN, delay_s=retry_after_s)
    if status >= 500:
        return FAULT if status == 501 else TRANSIENT  # 501: the method is not there; asking again won't help
    return ANSWER


def default_classify(exc: BaseException) -> Verdict:
    """gRPC errors by status code; socket-level connection failures and timeouts are transient."""
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        trailers = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else None
        return grpc_verdict(exc.code(), trailers)
    if isinstance(exc, DeadlineExceeded):
        return UNRELATED  # a nested policy's deadline: that target's problem, and our budget is gone
    if isinstance(exc, ConnectionError | TimeoutError):
        # A timeout with budget left is an inner (connect) timeout: nothing was applied. A timeout of
        # the whole attempt leaves no budget, so the policy does not retry it anyway.
        return TRANSIENT
    if isinstance(exc, socket.gaierror):
        return TRANSIENT if exc.errno == socket.EAI_AGAIN else UNRELATED  # a bad name is our config
    if isinstance(exc, OSError) and exc.errno in _NET_ERRNOS:
        return TRANSIENT
    return UNRELATED


# --- the retry loop -----------------------------------------------------------------------------


@dataclass(slots=True)
class Budget:
    """Per-call state shared by the attempt wrapper and the tenacity strategies."""

    target: str
    deadline_s: float
    deadline: float  # absolute, on the event loop's clock
    max_attempts: int
    attempts: int = 0
    verdict: Verdict | None = None  # of the last failed attempt; None = never retry (cancelled, rejected)
    last_error: BaseException | None = None

    def remaining_s(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    def expired(self) -> DeadlineExceeded:
        return DeadlineExceeded(self.target, self.deadline_s, self.attempts)


def retrying(budget: Budget, *, backoff_initial_s: float, backoff_max_s: float) -> AsyncRetrying:
    """A fresh AsyncRetrying for one call (tenacity keeps per-run state on the object).

    Stops when the attempts are used up (the last error is raised unchanged) or when the next
    wait would end at or past the deadline (:class:`DeadlineExceeded` from the last error), so
    no sleep is ever started that the deadline would cut.
    """
    jitter = wait_random_exponential(multiplier=backoff_initial_s, max=backoff_max_s)  # full jitter

    def retry(state: RetryCallState) -> bool:
        failed = state.outcome is not None and state.outcome.failed
        return failed and budget.verdict is not None and budget.verdict.retry

    def wait(state: RetryCallState) -> float:
        verdict = budget.verdict
        return verdict.delay_s if verdict and verdict.delay_s is not None else jitter(state)

    def stop(state: RetryCallState) -> bool:
        return state.attempt_number >= budget.max_attempts or state.upcoming_sleep >= budget.remaining_s()

    def give_up(state: RetryCallState) -> NoReturn:
        assert state.outcome is not None
        last = state.outcome.exception()
        assert last is not None
        if state.attempt_number >= budget.max_attempts:
            raise last
        raise budget.expired() from last

    return AsyncRetrying(retry=retry, wait=wait, stop=stop, retry_error_callback=give_up)
