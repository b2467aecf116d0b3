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
  is imported, so the supervisor sets the directory before it starts the zygote.
- **Cost.** An update is a locked write to an mmap (~1-2 us), no RPC and no thread; a scrape
  reads a few small files. Pulling every worker over gRPC would cost a unary call (~0.25 ms
  of worker CPU) per worker per scrape, and would lose the counts of a restarted worker.
  Hot paths count a batch at once (``inc(n)``), not one transaction at a time.

Conventions: every name starts with ``l2node_``, carries its unit (``_seconds``, ``_bytes``)
and counters end in ``_total``. Metrics that several services emit (breakers, L1 calls) have a
``service`` label, this process's service name (:func:`service_label`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from prometheus_client import Counter, Gauge, Histogram

#: Where the tree tells prometheus-client (and so every forked worker) to keep the samples.
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
PREFIX: Final = "l2node_"
#: l2node_breaker_state's values: alert on > 0.
BREAKER_LEVELS: Final = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

_service = "unknown"


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


def breaker_state(target: str, state: str) -> None:
    BREAKER_STATE.labels(_service, target).set(BREAKER_LEVELS[state])
