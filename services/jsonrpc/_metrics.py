"""The JSON-RPC layer's Prometheus metrics, as the gRPC layer's: per method, its calls, its errors
(by JSON-RPC error code) and its latency. A method this server does not have counts as "other",
so a client cannot grow the label set."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

from services.runtime import counter, gauge, histogram

CALLS: Final = counter("l2node_jsonrpc_calls_total", "JSON-RPC method calls, by method", ("method",))
ERRORS: Final = counter("l2node_jsonrpc_errors_total", "JSON-RPC calls answered with an error, by method and "
                        "JSON-RPC error code", ("method", "code"))
SECONDS: Final = histogram("l2node_jsonrpc_call_duration_seconds", "Time to answer one JSON-RPC call, by method",
                           (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                           ("method",))
SUBSCRIPTIONS: Final = gauge("l2node_jsonrpc_subscriptions", "Open eth_subscribe subscriptions (WebSocket)")
OTHER: Final = "other"

#: method -> its (calls, duration) series, looked up once (a labels() call costs a few us a request).
_SERIES: dict[str, tuple[Counter, Histogram]] = {}


def series(method: str) -> tuple[Counter, Histogram]:
    found = _SERIES.get(method)
    if found is None:
        found = _SERIES[method] = (CALLS.labels(method), SECONDS.labels(method))
    return found
