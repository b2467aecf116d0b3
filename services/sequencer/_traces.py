"""What the sequencer's spans remember so that later work can join a transaction's trace.

A transaction's trace is its sending call's: CLI (or any client) → ``SendRawTransactions`` →
``accept_transactions``. Later work is per block or per batch, so it links back instead of
nesting: ``seal_block`` links to the accept spans of the calls its transactions came in,
``post_batch`` links to the ``seal_block`` spans of the blocks it carries. SAFE and FINALIZED
come much later, when the accept span has long ended (a span cannot take events once ended,
and one kept open for minutes, per transaction, would be lost on a restart and cost memory
per transaction). So when a batch reaches safe depth, then finality, the follower starts a
short span per call in the accept span's trace (its child: the same trace), named
``tx_safe`` / ``tx_finalized``, with the event (``SAFE`` / ``FINALIZED``) and a link to the
batch's post. It carries ``l2.tx.hash`` when that call had one transaction in the batch (what
the CLI and wallets send), so a Jaeger search by the hash finds it and with it the whole
trace; a bulk call's span carries ``l2.tx.count`` (a tag per transaction would cost a span
per transaction at ~20,000 tx/s). One span per call and batch: the cost follows the calls,
as the accept spans' does.

Kept in memory only, bounded (``max_calls``): after a restart, or under a flood of
single-transaction calls older than the bound, the later spans are not made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from opentelemetry import trace

#: Links per span, at most: enough to find the work it continues, bounded in cost.
MAX_LINKS = 32


class TxCall(NamedTuple):
    """The call (its accept span) that sent some of a block's or batch's transactions."""

    context: trace.SpanContext
    #: The transaction's hash when the call had exactly one in the block (or batch), else None.
    tx_hash: bytes | None
    tx_count: int


class BlockTraces:
    """block number -> its ``seal_block`` span and the calls its transactions came in."""

    __slots__ = ("_blocks", "_calls", "_max_calls")

    def __init__(self, max_calls: int = 65_536) -> None:
        self._blocks: dict[int, tuple[trace.SpanContext, tuple[TxCall, ...]]] = {}
        self._calls = 0
        self._max_calls = max_calls

    def sealed(self, number: int, seal: trace.SpanContext, tx_hashes: Iterable[bytes],
               origin: Callable[[bytes], trace.SpanContext | None]) -> None:
        if not seal.is_valid:
            return
        # Per transaction on the seal path: plain dicts, one TxCall per call (0.18 us a transaction,
        # against 0.53 us building one per transaction and merging).
        first: dict[int, tuple[trace.SpanContext, bytes]] = {}
        counts: dict[int, int] = {}
        for tx_hash in tx_hashes:
            ctx = origin(tx_hash)
            if ctx is not None:
                span_id = ctx.span_id
                if span_id in counts:
                    counts[span_id] += 1
                else:
                    counts[span_id] = 1
                    first[span_id] = (ctx, tx_hash)
        calls = tuple(TxCall(ctx, tx_hash if counts[span_id] == 1 else None, counts[span_id])
                      for span_id, (ctx, tx_hash) in first.items())
        old = self._blocks.pop(number, None)  # sealed again after a failed write
        self._calls += len(calls) - (len(old[1]) if old else 0)
        self._blocks[number] = (seal, calls)
        while self._calls > self._max_calls and self._blocks:
            self._calls -= len(self._blocks.pop(next(iter(self._blocks)))[1])

    def seal_links(self, first: int, last: int) -> list[trace.Link]:
        """Links to the seal spans of blocks ``first..last`` (the last ``MAX_LINKS`` of them)."""
        found = [entry[0] for n in range(max(first, last - MAX_LINKS + 1), last + 1)
                 if (entry := self._blocks.get(n)) is not None]
        return [trace.Link(ctx) for ctx in found]

    def calls(self, first: int, last: int) -> tuple[TxCall, ...]:
        """The calls that sent transactions of blocks ``first..last``, merged per call."""
        return _merge(call for n in range(first, last + 1) if (entry := self._blocks.get(n)) is not None
                      for call in entry[1])

    def sent_in(self, number: int, tx_hash: bytes) -> trace.SpanContext | None:
        """The accept span of the call that sent ``tx_hash`` alone (a single-transaction call: a
        wallet's or the CLI's), sealed in block ``number``; None if not remembered."""
        entry = self._blocks.get(number)
        return next((call.context for call in entry[1] if call.tx_hash == tx_hash), None) if entry else None

    def forget_upto(self, number: int) -> None:
        """Blocks up to ``number`` are final: nothing links to them any more."""
        for n in [n for n in self._blocks if n <= number]:
            self._calls -= len(self._blocks.pop(n)[1])

    def __len__(self) -> int:
        return self._calls


def _merge(calls: Iterable[tuple[trace.SpanContext, bytes | None, int]]) -> tuple[TxCall, ...]:
    merged: dict[int, TxCall] = {}
    for ctx, tx_hash, count in calls:
        seen = merged.get(ctx.span_id)
        merged[ctx.span_id] = TxCall(ctx, tx_hash, count) if seen is None else TxCall(ctx, None, seen.tx_count + count)
    return tuple(merged.values())
