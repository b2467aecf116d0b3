"""The intake's bounded memory of which call accepted which transaction (for the seal's span links)."""

from __future__ import annotations

from opentelemetry.trace import SpanContext

from services.sequencer._intake import SpanMemory


def context(n: int) -> SpanContext:
    return SpanContext(trace_id=n + 1, span_id=n + 1, is_remote=False)


def test_span_memory_keeps_the_newest_and_stays_bounded() -> None:
    memory = SpanMemory(8)
    for n in range(10):
        memory.remember([b"%d" % n], context(n))
        assert len(memory) <= 8
        assert memory.get(b"%d" % n) == context(n)  # the newest is always there
    assert memory.get(b"0") is None and memory.get(b"1") is None  # the oldest went first
    assert [memory.get(b"%d" % n) for n in (8, 9)] == [context(8), context(9)]
    memory.remember([b"x", b"y"], context(42))  # a call's whole batch under one context
    assert memory.get(b"x") == memory.get(b"y") == context(42)
