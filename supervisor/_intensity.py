"""Restart intensity: the rule that turns a crash loop into an escalation."""

from __future__ import annotations

import collections
import time


class RestartIntensity:
    """Counts restarts supervisor-wide over a sliding window of ``period_s`` seconds.

    Every restart attempt counts, failed ones too (OTP's try_again): a child that cannot come
    back must not let its supervisor spin forever.
    """

    def __init__(self, intensity: int, period_s: float) -> None:
        self.intensity = intensity
        self.period_s = period_s
        self._stamps: collections.deque[float] = collections.deque()

    def add(self, now: float | None = None) -> bool:
        """Record one restart; return True when that makes more than ``intensity`` in the window."""
        now = time.monotonic() if now is None else now
        self._stamps.append(now)
        while self._stamps and now - self._stamps[0] > self.period_s:
            self._stamps.popleft()
        return len(self._stamps) > self.intensity

    def recent(self, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        return sum(1 for t in self._stamps if now - t <= self.period_s)
