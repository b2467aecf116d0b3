"""Prometheus metrics of a worker process: declared here, served by the tree's one endpoint.

Why ``prometheus-client`` in multi-process mode (and not OTel's Prometheus exporter, nor a
supervisor that pulls each worker over gRPC):

- **One port per pod.** Every worker writes its samples to memory-mapped files in one shared
  directory (``DATA_DIR/run/metrics``, ``PROMETHEUS_MULTIPROC_DIR``); the root supervisor
  (``l2node.node.metrics``) merges them at scrape time and serves them with its own. OTel's
  exporter would open an HTTP port per process; on Kubernetes that is a port per worker.
- **Restarts.** A counter is the sum over every process that ever wrote it in this tree, so a
  worker killed and restarted keeps its counts (``rate()`` sees no reset). A gauge counts only
  live processes (``livesum``): the supervisor drops a dead worker's gauge file when it sees the
  exit, so a pool size is never the dead worker's last value. Everything starts from zero with
  each ``l2node up`` (the directory is emptied when the tree starts).
- **Fork from a zygote.** prometheus-client notices the pid change after a fork and opens the
  child's own files; nothing is shared by accident. The mode is chosen when prometheus-client
  is imported, so the supervisor sets the directory before it starts the zygote. Noticing it
  costs the first update after a fork ~2 ms (3 files created, every series the zygote's modules
  declared written again; a real worker's first is its L1 client's breaker, on its way to
  SERVING): :func:`own_files` does it in the zygote's warm process, before it is a worker.
- **Cost.** An update is a locked write to an mmap (~1-2 us), no RPC and no thread; a scrape
  reads a few small files. Pulling every worker over gRPC would cost a unary call (~0.25 ms
  of worker CPU) per worker per scrape, and would lose the counts of a restarted worker.
  Hot paths count a batch at once (``inc(n)``), not one transaction at a time.

Conventions: every name starts with ``l2node_``, carries its unit (``_seconds``, ``_bytes``)
and counters end in ``_total``. Metrics that several services emit (breakers, L1 calls) have a
``service`` label, this process's service name (:func:`service_label`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from prometheus_client import Counter, Gauge, Histogram, values

import supervisor

#: Where the tree tells prometheus-client (and so every forked worker) to keep the samples.
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
PREFIX: Final = "l2node_"
#: l2node_breaker_state's values: alert on > 0.
BREAKER_LEVELS: Final = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

_service = "unknown"
_CODE = re.compile(r"exited with code (\d+)")
_SIGNAL = re.compile(r"killed by (SIG[A-Z0-9]+)")
_ERROR = re.compile(r"^([A-Za-z_]\w*): ")


def bind(service: str) -> None:
    """Name this process in the ``service`` label (the runtime calls it before ``register``)."""
    global _service
    _service = service


def service_label() -> str:
    return _service


def _name(name: str) -> str:
    if not name.startswith(PREFIX):
        raise ValueError(f"metric {name!r} must start with {PREFIX!r}")
    return name


# registry=None: served from the shared files only, never from a process's own registry (the
# supervisor imports these modules too, and must not serve its zero copies of them).
def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    return Counter(_name(name), doc, labels, registry=None)


def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
    return Gauge(_name(name), doc, labels, registry=None, multiprocess_mode="livesum")


def histogram(name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Histogram:
    return Histogram(_name(name), doc, labels, registry=None, buckets=buckets)


BREAKER_STATE: Final = gauge(
    "l2node_breaker_state", "Circuit breaker per outbound target: 0 closed, 1 half-open, 2 open",
    ("service", "target"))


def own_files() -> None:
    """In a process just forked from the zygote (its warm process, while it waits for orders: the
    zygote's ``warm`` hook): switch prometheus-client to this process's own sample files now, as its
    first update would. Its files hold every series at zero, as the first update would leave them.
    Nothing to do outside multi-process mode."""
    switch = getattr(values.ValueClass, "_MmapedValue__check_for_pid_change", None)
    if switch is not None:  # prometheus-client's own check, run before every read and update
        switch(None)  # (it reads no attribute of the value it is called on)


def breaker_state(target: str, state: str) -> None:
    BREAKER_STATE.labels(_service, target).set(BREAKER_LEVELS[state])


def exit_reason(reason: str) -> str:
    """A supervisor's exit reason as a label of bounded cardinality: exit_code_N, SIGKILL, hung,
    stop_timeout, error_<ExceptionType> (a task's crash), shutdown, cancelled, returned, other."""
    if reason.startswith("did not stop"):  # before the signal that ended it
        return "stop_timeout"
    if reason.startswith("hung"):
        return "hung"
    if match := _CODE.search(reason):
        return f"exit_code_{match.group(1)}"
    if match := _SIGNAL.search(reason):
        return match.group(1)
    if match := _ERROR.match(reason):
        return f"error_{match.group(1)}"
    return reason if reason in ("shutdown", "cancelled", "returned") else "other"


TASK_EXITS: Final = counter("l2node_task_exits_total", "Exits of a worker's supervised loops, by reason",
                            ("service", "task", "reason"))
TASK_RESTARTS: Final = counter("l2node_task_restarts_total", "Restarts of a worker's supervised loops",
                               ("service", "task"))


def task_event(event: supervisor.Event) -> None:
    """A worker's task tree event (an EventBus listener): its loops' exits and restarts."""
    if event.type is supervisor.EventType.EXITED:
        TASK_EXITS.labels(_service, event.child_id, exit_reason(event.reason)).inc()
    elif event.type is supervisor.EventType.RESTARTED:
        TASK_RESTARTS.labels(_service, event.child_id).inc()
