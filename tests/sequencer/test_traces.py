"""What later spans link to: per block, its seal span and the calls its transactions came in."""

from __future__ import annotations

from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext

from services.sequencer._traces import MAX_LINKS, BlockTraces, TxCall


def ctx(n: int) -> SpanContext:
    return SpanContext(trace_id=n, span_id=n, is_remote=False)


def h(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_a_block_remembers_each_call_once_with_the_hash_when_it_sent_one() -> None:
    origins = {h(1): ctx(10), h(2): ctx(20), h(3): ctx(20)}  # h(4): a deposit, no call
    traces = BlockTraces()
    traces.sealed(5, ctx(500), [h(1), h(2), h(3), h(4)], origins.get)
    assert traces.calls(5, 5) == (TxCall(ctx(10), h(1), 1), TxCall(ctx(20), None, 2))
    assert [link.context for link in traces.seal_links(1, 9)] == [ctx(500)]


def test_a_batch_merges_a_call_across_its_blocks() -> None:
    origins = {h(1): ctx(10), h(2): ctx(10), h(3): ctx(30)}
    traces = BlockTraces()
    traces.sealed(1, ctx(100), [h(1)], origins.get)
    traces.sealed(2, ctx(200), [h(2), h(3)], origins.get)
    assert traces.calls(1, 1) == (TxCall(ctx(10), h(1), 1),)
    assert traces.calls(1, 2) == (TxCall(ctx(10), None, 2), TxCall(ctx(30), h(3), 1))


def test_links_are_bounded_and_memory_is_bounded_and_forgotten_when_final() -> None:
    traces = BlockTraces(max_calls=10)
    for n in range(1, 41):
        traces.sealed(n, ctx(1000 + n), [h(n)], {h(n): ctx(n)}.get)
    assert len(traces) == 10  # the oldest blocks went first
    assert traces.calls(1, 30) == () and len(traces.calls(31, 40)) == 10
    links = traces.seal_links(1, 40)
    assert len(links) <= MAX_LINKS and links[-1].context == ctx(1040)
    traces.forget_upto(35)
    assert len(traces) == 5 and traces.seal_links(1, 35) == []
    traces.sealed(41, INVALID_SPAN_CONTEXT, [h(41)], {h(41): ctx(41)}.get)  # tracing off: nothing kept
    assert len(traces) == 5


def test_a_block_sealed_again_replaces_its_entry() -> None:
    traces = BlockTraces()
    traces.sealed(1, ctx(100), [h(1), h(2)], {h(1): ctx(1), h(2): ctx(2)}.get)
    traces.sealed(1, ctx(101), [h(1)], {h(1): ctx(1)}.get)  # the first write failed: sealed again
    assert len(traces) == 1 and [link.context for link in traces.seal_links(1, 1)] == [ctx(101)]
