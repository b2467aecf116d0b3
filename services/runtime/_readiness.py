"""A worker's readiness: whether its services can do their job now, which is not whether the
process is alive (health ``""``, the supervisor's liveness probe).

Two kinds of reasons: fixed ones a service gives while it registers (a key file its role needs is
missing: nothing changes that but a restart with the file), and conditions checked while they last
(a read replica too far behind its upstream to serve fresh reads). Both show in GetWorkerStatus's
``not_ready`` (so `l2node status`, and the node's ``l2node.ready`` that a Kubernetes
readinessProbe asks), and while any holds, the services' own health names say NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Final

from services.runtime._health import NOT_SERVING, SERVING, HealthServicer

_log = logging.getLogger("l2node.runtime")

#: How often the conditions are checked for the health names: a readinessProbe asks every few seconds.
CHECK_INTERVAL_S: Final = 1.0

#: A condition: the reason the service cannot do its job now, or None while it can. Cheap and
#: synchronous (it reads state the service keeps), since GetWorkerStatus calls it on every ask.
ReadinessCheck = Callable[[], str | None]


class Readiness:
    def __init__(self, fixed: Sequence[str], checks: Sequence[ReadinessCheck]) -> None:
        self._fixed = tuple(fixed)
        self._checks = tuple(checks)
        self._shown: tuple[str, ...] | None = None  # the reasons the health names last reflected

    def reasons(self) -> list[str]:
        """Why the services cannot do their job, as of now; empty when ready."""
        return [*self._fixed, *(r for check in self._checks if (r := check()) is not None)]

    def apply(self, health: HealthServicer, names: Sequence[str]) -> None:
        """The services' health names set from :meth:`reasons` (after the worker said SERVING)."""
        reasons = tuple(self.reasons())
        if reasons == self._shown:
            return
        for name in names:
            health.set(name, NOT_SERVING if reasons else SERVING)
        if reasons:
            _log.warning("not ready", extra={"reasons": list(reasons)})
        elif self._shown:
            _log.info("ready again")
        self._shown = reasons

    async def watch(self, health: HealthServicer, names: Sequence[str]) -> None:
        """Keep the health names following the conditions, until cancelled (the worker stopping)."""
        if not self._checks:
            return
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            self.apply(health, names)
