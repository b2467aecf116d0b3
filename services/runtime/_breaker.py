"""An asyncio adapter that drives a pybreaker.CircuitBreaker without its synchronous call path.

pybreaker only knows "call func, look at the outcome" in one synchronous step (``call_async``
needs Tornado; wrapping a coroutine function counts nothing, since calling it just returns a
coroutine). So the adapter splits a call in two synchronous halves around the caller's await:

- :meth:`AsyncBreaker.admit` decides before the attempt: closed → go; open → :class:`BreakerOpen`
  until ``reset_timeout`` has elapsed, then half-open; half-open → exactly one trial at a time.
- :meth:`AsyncBreaker.settle` feeds the outcome back through ``CircuitBreaker.call`` with a
  function that replays it, so pybreaker's own counters, storage, listeners and transitions
  stay the source of truth.

pybreaker's lock is held only inside these synchronous halves, never across an await.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, NoReturn

import pybreaker

from services.runtime._metrics import breaker_state
from services.runtime._redact import redact
from services.runtime._retry import Health

BreakerState = Literal["closed", "open", "half_open"]

_STATE_NAMES: Final[dict[str, BreakerState]] = {  # pybreaker's → ours (identifier-safe, for metrics)
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_OPEN: "open",
    pybreaker.STATE_HALF_OPEN: "half_open",
}


class BreakerOpen(pybreaker.CircuitBreakerError):
    """The target's circuit is open (or its half-open trial is taken): the call was not attempted.

    ``retry_after_s`` is the time until the breaker lets a trial through, None while a trial runs;
    ``cause`` the last failure the circuit counted (what an operator needs: why it opened).
    """

    def __init__(self, target: str, retry_after_s: float | None, cause: str = "") -> None:
        when = "a trial call is in flight" if retry_after_s is None else f"retry in {retry_after_s:.3g}s"
        super().__init__(f"circuit for {target} is open ({when})" + (f"; last failure: {cause}" if cause else ""))
        self.target = target
        self.retry_after_s = retry_after_s
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one attempt; hand it back to :meth:`AsyncBreaker.settle` exactly once."""

    trial: bool  # the half-open probe: its outcome closes or re-opens the circuit
    generation: int  # state transitions seen at admission; a later outcome from an older one is stale


class _Observer(pybreaker.CircuitBreakerListener):
    """Counts what pybreaker reports, so statistics come from pybreaker itself."""

    def __init__(self) -> None:
        self.failures = 0
        self.generation = 0
        self.last_failure = ""

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self.failures += 1
        self.last_failure = redact(f"{type(exc).__name__}: {exc}")  # it is shown: a URL's key is not

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self.generation += 1
        breaker_state(cb.name or "", _STATE_NAMES[new_state.name])


def _replay(error: BaseException | None) -> None:
    if error is not None:
        raise error


class AsyncBreaker:
    """One pybreaker.CircuitBreaker per target, usable from asyncio."""

    def __init__(self, target: str, *, fail_max: int, reset_s: float) -> None:
        self.target = target
        self._observer = _Observer()
        self.circuit = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_s, name=target, listeners=[self._observer]
        )
        self._trial_taken = False
        self.rejected = 0
        breaker_state(target, self.state)

    @property
    def state(self) -> BreakerState:
        """The state as pybreaker's storage has it: "closed", "open" or "half_open"."""
        return _STATE_NAMES[self.circuit.current_state]

    @property
    def failures(self) -> int:
        """Failures pybreaker has recorded since start (monotonic, unlike its consecutive counter)."""
        return self._observer.failures

    def admit(self) -> Permit:
        """Decide whether an attempt may start; raise :class:`BreakerOpen` if not."""
        cb = self.circuit
        with cb._lock:  # pybreaker's RLock; held for this synchronous check only
            state = cb.state.name  # re-reads the storage, noticing changes made elsewhere
            if state == pybreaker.STATE_OPEN:
                wait_s = self._until_reset_s()
                if wait_s > 0:
                    self._reject(wait_s)
                cb.half_open()  # notifies listeners, like pybreaker's own open-state before_call
                state = pybreaker.STATE_HALF_OPEN
            trial = state == pybreaker.STATE_HALF_OPEN
            if trial:
                if self._trial_taken:
                    self._reject(None)
                self._trial_taken = True
            return Permit(trial=trial, generation=self._observer.generation)

    def settle(self, permit: Permit, health: Health, error: BaseException | None) -> None:
        """Record an attempt's outcome through pybreaker. Always frees a trial slot, so a cancelled
        probe (``Health.UNKNOWN``) lets the next caller probe instead of wedging half-open."""
        cb = self.circuit
        with cb._lock:
            if permit.trial:
                self._trial_taken = False
            if health is Health.UNKNOWN or permit.generation != self._observer.generation:
                # Says nothing about the target, or admitted before the circuit last changed state:
                # such a late outcome must not trip, close or reopen it; only the trial decides.
                return
            failed = error if health is Health.DOWN else None
            traceback = failed.__traceback__ if failed is not None else None
            try:
                cb.call(_replay, failed)
            except pybreaker.CircuitBreakerError:
                pass  # pybreaker's way of saying "this failure tripped the circuit"
            except BaseException as exc:
                if exc is not failed:
                    raise
            finally:
                if failed is not None:
                    failed.__traceback__ = traceback  # the caller sees the attempt's own traceback

    def _until_reset_s(self) -> float:
        opened_at = self.circuit._state_storage.opened_at
        if opened_at is None:
            return 0.0
        reopen_at = opened_at + timedelta(seconds=self.circuit.reset_timeout)
        return (reopen_at - datetime.now(UTC)).total_seconds()  # pybreaker's wall clock, as it checks

    def _reject(self, retry_after_s: float | None) -> NoReturn:
        self.rejected += 1
        raise BreakerOpen(self.target, retry_after_s, self._observer.last_failure)
