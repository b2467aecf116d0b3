"""OpenTelemetry's CPU per span in a worker, on one thread (``time.thread_time``):

    .venv/bin/python bench/otel_spans.py [--spans 30000] [--rounds 3]
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 .venv/bin/python bench/otel_spans.py   # with the exporter

The provider ``init_tracing`` gives a worker (no exporter unless OTEL_EXPORTER_OTLP_ENDPOINT is set;
then a BatchSpanProcessor, whose export thread is not counted), and per kind of span the calls the
runtime makes: a CLIENT span with its traceparent injected and ended (services/runtime/_tracing.py);
a SERVER span from the caller's metadata, current for the handler, its status attribute, ended
(services/runtime/_interceptor.py), beside the same on ``INVALID_SPAN`` (an untraced method); an
internal ``start_as_current_span``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from services.runtime._tracing import _client_span, _end, _traceparent, init_tracing

METHOD = "/l2node.channels.v1.PeerService/Update"
ATTRIBUTES = {"rpc.system": "grpc", "rpc.service": "l2node.channels.v1.PeerService", "rpc.method": "Update"}


def client_spans(tracer: trace.Tracer, n: int) -> tuple[float, dict[str, str]]:
    """us per CLIENT span under a recorded parent, and the last traceparent (for the server side)."""
    root = tracer.start_span("root")
    token = otel_context.attach(trace.set_span_in_context(root))
    metadata: dict[str, str] = {}
    start = time.thread_time()
    for _ in range(n):
        span = _client_span(tracer, METHOD)
        metadata = _traceparent(span)
        _end(span, grpc.StatusCode.OK, None)
    spent = time.thread_time() - start
    otel_context.detach(token)
    root.end()
    return spent / n * 1e6, metadata


def server_spans(tracer: trace.Tracer, n: int, metadata: dict[str, str], traced: bool) -> float:
    start = time.thread_time()
    for _ in range(n):
        span = tracer.start_span(METHOD.lstrip("/"), context=propagate.extract(dict(metadata)), kind=SpanKind.SERVER,
                                 attributes=ATTRIBUTES, record_exception=False, set_status_on_exception=False
                                 ) if traced else trace.INVALID_SPAN
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            span.set_attribute("rpc.grpc.status_code", 0)
    return (time.thread_time() - start) / n * 1e6


def internal_spans(tracer: trace.Tracer, n: int) -> float:
    start = time.thread_time()
    for _ in range(n):
        with tracer.start_as_current_span("channels.forward", attributes={"hop": 1}):
            pass
    return (time.thread_time() - start) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=30_000, help="spans of each kind a round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tracing = init_tracing("otel-spans")
    print(f"command: {' '.join(sys.argv)}; exporter: {tracing.processor is not None}")
    for round_ in range(args.rounds):
        client, metadata = client_spans(tracing.tracer, args.spans)
        server = server_spans(tracing.tracer, args.spans, metadata, traced=True)
        untraced = server_spans(tracing.tracer, args.spans, metadata, traced=False)
        internal = internal_spans(tracing.tracer, args.spans)
        print(f"round {round_}: CLIENT + traceparent {client:.1f} us; SERVER {server:.1f} us "
              f"(untraced {untraced:.1f} us); internal {internal:.1f} us")
    tracing.shutdown()


if __name__ == "__main__":
    main()
