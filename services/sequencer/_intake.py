"""Where a transaction is validated and accepted: decode → pool rules → durable → acknowledged.

A transaction is acknowledged only once it is on disk. Concurrent submissions share one
commit (group commit): under load, each fsync covers every transaction that arrived while the
previous one ran.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from opentelemetry import trace

from ._mempool import Mempool, MempoolRejected
from ._store import PendingRow, SequencerStore
from ._tx import Transaction, TxRejected, decode_transactions

_tracer = trace.get_tracer("l2node.sequencer")

#: How many transactions' accept spans are remembered for the blocks that seal them.
_SPAN_MEMORY = 65_536
#: Threads decoding incoming batches: one per core of this 2-core machine's worth of recovery.
DECODE_THREADS = 2


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one transaction was not accepted: a gRPC code name, a stable reason, words, a field."""

    status: str
    reason: str
    message: str
    field: str = ""


Outcome = bytes | Refusal
#: NamedTuple construction without the generated __new__'s argument binding (the hot path).
_new_row = tuple.__new__
_hash_of = operator.itemgetter(0)  # PendingRow.hash
#: The current pool (the chain replaces it when it reloads its state).
PoolFn = Callable[[], Mempool]


class SpanMemory:
    """tx hash -> the context of the span that accepted it, for the last ``size`` transactions or so.

    Two generations of half that size: once the newer is full it becomes the older, and the older
    is dropped whole. (A dict dropping its oldest key at every insert rescans the deleted slots at
    its front each time: ~13 us an insert once full, against ~0.1 us here.)
    """

    __slots__ = ("_half", "_newer", "_older")

    def __init__(self, size: int) -> None:
        self._half = max(1, size // 2)
        self._newer: dict[bytes, trace.SpanContext] = {}
        self._older: dict[bytes, trace.SpanContext] = {}

    def remember(self, tx_hashes: Iterable[bytes], context: trace.SpanContext) -> None:
        newer = self._newer
        newer.update(dict.fromkeys(tx_hashes, context))
        if len(newer) >= self._half:
            self._older, self._newer = newer, {}

    def get(self, tx_hash: bytes) -> trace.SpanContext | None:
        context = self._newer.get(tx_hash)
        return context if context is not None else self._older.get(tx_hash)

    def __len__(self) -> int:
        return len(self._newer) + len(self._older)


class _GroupCommit:
    def __init__(self, store: SequencerStore) -> None:
        self._store = store
        self._waiting: list[tuple[list[PendingRow], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0

    async def commit(self, rows: list[PendingRow]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await future

    async def _write(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            rows = [r for batch, _ in group for r in batch]
            try:
                await self._store.run(functools.partial(self._store.insert_pending, rows=rows))
            except BaseException as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            self.commits += 1
            for _, future in group:
                if not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)


class Intake:
    def __init__(self, store: SequencerStore, chain_id: int, pool: PoolFn, *, block_txs: int) -> None:
        self._store = store
        self._chain_id = chain_id
        self._pool = pool
        self._group = _GroupCommit(store)
        self._seq = store.max_seq()
        # Sender recovery (~45 µs a transaction) runs in libsecp256k1 without the GIL: decoding
        # on threads keeps the event loop free and lets concurrent batches use both cores.
        self._decoders = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="decode")
        self.accepted = 0
        self.refused = 0
        self._block_txs = block_txs
        #: Set when the pool holds a block's worth: the producer seals without waiting for its timer.
        self.block_full = asyncio.Event()
        #: tx hash -> the span context of the call that accepted it (bounded, oldest dropped first).
        self.accepted_in = SpanMemory(_SPAN_MEMORY)
        #: Hashes of accepted transactions (in the pool) whose PENDING row is not known to be
        #: durable yet: a block sealing one of them writes its whole row (see SequencerStore.seal_block).
        self.unwritten: set[bytes] = set()

    async def submit(self, raws: Sequence[bytes]) -> list[Outcome]:
        with _tracer.start_as_current_span("accept_transactions") as span:
            span.set_attribute("l2.transactions", len(raws))
            decoded = await asyncio.get_running_loop().run_in_executor(
                self._decoders, decode_transactions, raws, self._chain_id)
            outcomes: list[Outcome | None] = [None] * len(raws)
            txs: list[Transaction] = []
            positions: list[int] = []
            for i, item in enumerate(decoded):
                if isinstance(item, TxRejected):
                    outcomes[i] = Refusal(item.status.value, item.reason, item.message, item.field or "")
                else:
                    txs.append(item)
                    positions.append(i)
            pool = self._pool()
            added = pool.add_many(txs, time.monotonic())
            rows = []
            superseded: list[tuple[bytes, str]] = []
            seq = self._seq
            for i, tx, result in zip(positions, txs, added, strict=True):
                if isinstance(result, MempoolRejected):
                    outcomes[i] = Refusal(result.status, result.reason, result.message)
                    continue
                seq += 1
                tx_hash = tx.hash
                rows.append(_new_row(PendingRow, (tx_hash, tx.raw, tx.sender, tx.nonce, seq)))
                outcomes[i] = tx_hash
                if result.replaced is not None:
                    superseded.append((result.replaced, "REPLACED"))
                if result.evicted:
                    superseded += [(h, "EVICTED") for h in result.evicted]
            self._seq = seq
            if rows:
                self._remember_span(span.get_span_context(), rows)
                unwritten = self.unwritten
                unwritten.update(map(_hash_of, rows))
                try:
                    await self._group.commit(rows)
                finally:
                    unwritten.difference_update(map(_hash_of, rows))
                if len(pool) >= self._block_txs:
                    self.block_full.set()
            if superseded:
                await self._store.run(functools.partial(self._store.drop, dropped=superseded))
            done = [o for o in outcomes if o is not None]
            self.accepted += len(rows)
            self.refused += len(done) - len(rows)
            span.set_attribute("l2.accepted", len(rows))
            return done

    def _remember_span(self, context: trace.SpanContext, rows: list[PendingRow]) -> None:
        """Which accept span each transaction came in under, so the block sealing it can link it."""
        if not context.is_valid:
            return
        self.accepted_in.remember(map(_hash_of, rows), context)

    async def restore(self) -> list[tuple[bytes, str]]:
        """Put the acknowledged-but-unsealed transactions back in the pool after a restart.

        Returns those the rules now refuse (e.g. a replacement that lost): they are dropped.
        """
        stored = self._store.pending()
        if not stored:
            return []
        decoded = decode_transactions([s.raw for s in stored], self._chain_id)
        txs = [d for d in decoded if not isinstance(d, TxRejected)]
        results = self._pool().add_many(txs, time.monotonic())
        refused: list[tuple[bytes, str]] = [
            (tx.hash, r.reason) for tx, r in zip(txs, results, strict=True) if isinstance(r, MempoolRejected)]
        refused += [(s.hash, d.reason) for s, d in zip(stored, decoded, strict=True) if isinstance(d, TxRejected)]
        if refused:
            await self._store.run(functools.partial(self._store.drop, dropped=refused))
        return refused

    async def close(self) -> None:
        await self._group.close()
        self._decoders.shutdown(wait=True)
