"""Idempotent mutating calls: a retried request with the same ``request_id`` gets the first answer."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: Answers remembered per service by default; the oldest are forgotten first.
DEFAULT_WINDOW: Final = 4096


class Idempotency:
    """Remembers the answers of the last ``window`` mutating calls by their request_id.

    In memory only: a retry that crosses a restart of the worker is applied again, so what it
    guards must also be safe by itself (a duplicate transaction is refused by its hash, a
    supervisor call by the child's state).
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._window = window
        self._answers: OrderedDict[str, Any] = OrderedDict()

    async def once(self, request_id: str, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()``, unless ``request_id`` (when set) was answered already."""
        if request_id and request_id in self._answers:
            answer: T = self._answers[request_id]
            return answer
        reply = await call()
        if request_id:
            self._answers[request_id] = reply
            while len(self._answers) > self._window:
                self._answers.popitem(last=False)
        return reply
