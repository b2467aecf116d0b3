"""The pod's one Prometheus endpoint: every worker's metrics and the supervisor's, on
``[node] metrics_port`` (default: the port after the last worker's, base_port + 1 + workers).

Workers write theirs to ``DATA_DIR/run/metrics`` (prometheus-client's multi-process mode; why,
in ``services/runtime/_metrics.py``); this module empties that directory when the tree starts,
points the zygote (and so every worker forked from it) at it, merges it at scrape time, and adds
the supervisor's own counters, taken from the root supervisor's event bus (the supervisor
library stays generic: it knows nothing of Prometheus).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

import supervisor as sv
from services.runtime import MULTIPROC_ENV, exit_reason

PATH = "/metrics"
_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def prepare(run_dir: pathlib.Path) -> pathlib.Path:
    """An empty samples directory, named in the environment the zygote inherits."""
    path = run_dir / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def url(host: str, port: int) -> str:
    return f"http://{host}:{port}{PATH}"


class TreeMetrics(Collector):
    """The supervisor's counters, fed by its event bus; live child states read at scrape time."""

    def __init__(self, root: sv.Supervisor, samples: pathlib.Path) -> None:
        self._root, self._samples = root, samples
        self._exits: Counter[tuple[str, str]] = Counter()
        self._restarts: Counter[str] = Counter()
        self._probe_failures: Counter[str] = Counter()
        self._escalations: Counter[str] = Counter()
        self._escalations["root"] = 0  # series exist from the start, so increase() sees the first one

    def on_event(self, event: sv.Event) -> None:
        kind = event.type
        if kind is sv.EventType.EXITED:
            self._exits[event.child_id, exit_reason(event.reason)] += 1
            if event.pid:  # its live gauges (pool sizes, ...) go with it; its counters stay
                mark_process_dead(event.pid, str(self._samples))
        elif kind is sv.EventType.STARTED:
            self._restarts[event.child_id] += 0
            self._probe_failures[event.child_id] += 0
        elif kind is sv.EventType.RESTARTED:
            self._restarts[event.child_id] += 1
        elif kind is sv.EventType.PROBE_FAILED:
            self._probe_failures[event.child_id] += 1
        elif kind is sv.EventType.ESCALATED:
            self._escalations[event.child_id or "root"] += 1

    def collect(self) -> Iterator[Metric]:
        exits = CounterMetricFamily("l2node_child_exits", "Child process exits, by child and reason",
                                    labels=("child", "reason"))
        for (child, reason), n in sorted(self._exits.items()):
            exits.add_metric((child, reason), n)
        yield exits
        yield _per_child(CounterMetricFamily("l2node_child_restarts", "Restarts of a child by its supervisor",
                                             labels=("child",)), self._restarts.items())
        yield _per_child(CounterMetricFamily("l2node_child_probe_failures", "Liveness probes a child missed",
                                             labels=("child",)), self._probe_failures.items())
        yield _per_child(CounterMetricFamily("l2node_supervisor_escalations",
                                             "Restart intensity exceeded: the supervisor gave up",
                                             labels=("supervisor",)), self._escalations.items())
        up = GaugeMetricFamily("l2node_child_up", "1 if the child is running, else 0", labels=("child", "kind"))
        for c in self._root.walk():
            up.add_metric((c.path, c.kind.value), 1.0 if c.state is sv.ChildState.RUNNING else 0.0)
        yield up


def _per_child(family: CounterMetricFamily, rows: Iterable[tuple[str, int]]) -> CounterMetricFamily:
    for child, n in sorted(rows):
        family.add_metric((child,), n)
    return family


class MetricsServer:
    """``GET /metrics`` over aiohttp in the supervisor's loop; the worker files are merged in a
    thread so that a scrape never stalls restart decisions."""

    def __init__(self, tree: TreeMetrics, samples: pathlib.Path) -> None:
        self._tree = CollectorRegistry(auto_describe=False)
        self._tree.register(tree)
        self._workers = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(self._workers, str(samples))
        self._runner: web.AppRunner | None = None

    async def _scrape(self, request: web.Request) -> web.Response:
        body = generate_latest(self._tree) + await asyncio.to_thread(generate_latest, self._workers)
        return web.Response(body=body, headers={"Content-Type": _CONTENT_TYPE})

    async def start(self, host: str, port: int) -> None:
        """Raises OSError if the port is taken."""
        app = web.Application()
        app.router.add_get(PATH, self._scrape)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=False).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
