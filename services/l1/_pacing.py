"""Adaptive polling: fast while something happens, backing off while nothing does.

An idle node must not cost a paid L1 provider a request per poll per loop (issue 11: ~36/s
before). Every poller of L1 sleeps through a :class:`Pacer`: its interval starts at the base,
doubles with each round that found nothing, up to ``idle_max_s``, and snaps back to the base
when a round finds something. When this process sends an L1 transaction (:class:`Activity`),
its pollers wake and stay at the base interval for ``idle_max_s``: what we send is what they are
about to see, and they must see it as soon as it is mined, not one backed-off interval later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final


class Activity:
    """A process-wide signal that L1 work was started here (a transaction sent)."""

    def __init__(self) -> None:
        self.generation = 0
        self._event = asyncio.Event()

    def notify(self) -> None:
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()  # waiters of this generation woke; later ones wait anew

    async def wait(self, timeout_s: float) -> None:
        """Return after ``timeout_s``, or at once when :meth:`notify` is called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)


class Pacer:
    """The sleep between a polling loop's rounds."""

    def __init__(self, base_s: float, idle_max_s: float, activity: Activity | None = None) -> None:
        if base_s <= 0:
            raise ValueError(f"base_s must be > 0, not {base_s}")
        self.base_s: Final = base_s
        self.idle_max_s: Final = max(base_s, idle_max_s)
        self._activity = activity or Activity()
        self._seen = self._activity.generation
        self._hold_until = 0.0  # monotonic time until which the base interval holds
        self.interval_s = base_s

    def next_interval(self, active: bool) -> float:
        """The interval after a round; ``active``: the round found or did something."""
        generation, now = self._activity.generation, time.monotonic()
        if generation != self._seen:
            self._seen = generation
            self._hold_until = now + self.idle_max_s
        if active or now < self._hold_until:
            self.interval_s = self.base_s
        else:
            self.interval_s = min(self.interval_s * 2, self.idle_max_s)
        return self.interval_s

    async def sleep(self, active: bool) -> None:
        """Sleep the next interval; cut short when this process sends an L1 transaction."""
        await self._activity.wait(self.next_interval(active))
