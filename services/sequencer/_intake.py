"""Where a transaction is accepted: decoded (validated, by the protocol) → admitted by the pool →
durable → acknowledged.

A transaction is acknowledged only once it is on disk, in the pending log (``_pending_log``:
concurrent submissions share one commit). The intake also owns what leaves the log: a block
sealed, or a transaction dropped (its receipt written first), and puts the log's transactions
back in the pool after a restart.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter

from opentelemetry import trace

from protocol import Reason, Transaction, TxRejected, decode_transactions, keccak256
from services.runtime import lower_thread_priority

from . import _metrics as metrics
from ._mempool import Dropped, Mempool, MempoolRejected
from ._pending_log import Entry, PendingLog
from ._store import DROPPED, DropRow, SequencerStore

_tracer = trace.get_tracer("l2node.sequencer")

#: How many transactions' accept spans are remembered for the blocks that seal them.
_SPAN_MEMORY = 65_536


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why one transaction was not accepted: a stable reason (its gRPC status follows), words, a field."""

    reason: Reason
    message: str
    field: str = ""


Outcome = bytes | Refusal
#: The current pool (the chain replaces it when it reloads its state): ``Mempools.current``.
PoolFn = Callable[[], Mempool]
_SEQ = itemgetter(0)


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


class Intake:
    """Accepts transactions into the current pool and the pending log; the chain's listener
    (``_chain.ChainListener``): told what was sealed or dropped, and when to refill the pool."""

    def __init__(self, store: SequencerStore, log: PendingLog, chain_id: int, pool: PoolFn, *, block_txs: int,
                 decode_threads: int, decode_nice: int = 0) -> None:
        self._store = store
        self._log = log
        self._chain_id = chain_id
        self._pool = pool
        # Above every dropped row's entry and every entry still logged (see SequencerStore.max_seq).
        self._seq = max(store.max_seq(), log.max_seq())
        # Decoding on threads (SequencerSettings.decode_threads) keeps the event loop free and lets
        # concurrent batches use every core; at a lower priority (decode_nice) than the loop's.
        self._decoders = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode",
                                            initializer=lower_thread_priority, initargs=(decode_nice,))
        self.accepted = 0
        self.refused = 0
        #: A block's worth of pooled transactions (the producer keeps it as ``Chain.block_worth``).
        self.block_txs = block_txs
        #: Set when the pool holds a block's worth: the producer seals without waiting for its timer.
        self.block_full = asyncio.Event()
        #: tx hash -> the span context of the call that accepted it (bounded, oldest dropped first).
        self._accepted_in = SpanMemory(_SPAN_MEMORY)
        #: tx hash -> (its pending log seq, the transaction), for every entry not yet settled.
        self._logged: dict[bytes, tuple[int, Transaction]] = {}

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
                    outcomes[i] = Refusal(item.reason, item.message, item.field or "")
                else:
                    txs.append(item)
                    positions.append(i)
            if len(raws) == 1 and txs:  # a wallet's or the CLI's call: Jaeger finds it by the hash
                span.set_attribute("l2.tx.hash", "0x" + txs[0].hash.hex())
            pool = self._pool()
            added = pool.add_many(txs, time.monotonic())
            entries: list[Entry] = []
            logged = self._logged
            superseded: list[Dropped] = []
            seq = self._seq
            for i, tx, result in zip(positions, txs, added, strict=True):
                if isinstance(result, MempoolRejected):
                    outcomes[i] = Refusal(result.reason, result.message)
                    continue
                seq += 1
                tx_hash = tx.hash
                entries.append(Entry(seq, tx.raw))
                logged[tx_hash] = (seq, tx)
                outcomes[i] = tx_hash
                if result.replaced is not None:
                    superseded.append(Dropped(result.replaced, Reason.REPLACED))
                if result.evicted:
                    superseded += [Dropped(h, Reason.EVICTED) for h in result.evicted]
            self._seq = seq
            if entries:
                self._remember_span(span.get_span_context(), outcomes)
                await self._log.append(entries)
                if len(pool) >= self.block_txs:
                    self.block_full.set()
            if superseded:
                await self.record_drops(superseded)
            done = [o for o in outcomes if o is not None]
            self.accepted += len(entries)
            self.refused += len(done) - len(entries)
            metrics.ACCEPTED.inc(len(entries))
            if len(done) > len(entries):
                metrics.count_refusals(o.reason for o in done if isinstance(o, Refusal))
            span.set_attribute("l2.accepted", len(entries))
            return done

    def origin(self, tx_hash: bytes) -> trace.SpanContext | None:
        """The context of the span that accepted ``tx_hash``, if remembered."""
        return self._accepted_in.get(tx_hash)

    def _remember_span(self, context: trace.SpanContext, outcomes: list[Outcome | None]) -> None:
        """Which accept span each transaction came in under, so the block sealing it can link it."""
        if not context.is_valid:
            return
        self._accepted_in.remember([o for o in outcomes if isinstance(o, bytes)], context)

    # -- what leaves the pending log ----------------------------------------------------------

    def sealed(self, tx_hashes: Iterable[bytes]) -> None:
        """These transactions are in a durable block: their log entries can go."""
        logged = self._logged
        self._log.forget([entry[0] for h in tx_hashes if (entry := logged.pop(h, None)) is not None])

    async def record_drops(self, dropped: Sequence[Dropped]) -> None:
        """Transactions the pool let go: their receipts say DROPPED, with the reason, then their log
        entries can go. Hashes the log does not hold (never acknowledged) are ignored."""
        rows = []
        for d in dropped:
            entry = self._logged.pop(d.hash, None)
            if entry is not None:
                seq, tx = entry
                rows.append(DropRow(d.hash, tx.raw, tx.sender, tx.nonce, seq, d.reason))
        if rows:
            await self._store.run(functools.partial(self._store.drop, dropped=rows))
            for row in rows:
                metrics.DROPPED.labels(row.reason.value).inc()
            self._log.forget(row.seq for row in rows)

    async def unseal(self, txs: Sequence[Transaction]) -> None:
        """Sealed transactions whose blocks the chain drops (it follows derivation, see
        ``Chain.rewind``): acknowledged, so logged again, durably, with new entries; their receipts
        say PENDING until they are sealed again."""
        entries: list[Entry] = []
        seq = self._seq
        for tx in txs:
            if tx.hash in self._logged:
                continue
            seq += 1
            entries.append(Entry(seq, tx.raw))
            self._logged[tx.hash] = (seq, tx)
        self._seq = seq
        if entries:
            await self._log.append(entries)

    def pending_entry(self, tx_hash: bytes) -> Transaction | None:
        """The acknowledged transaction ``tx_hash`` while it is neither sealed nor dropped."""
        entry = self._logged.get(tx_hash)
        return None if entry is None else entry[1]

    # -- restart ------------------------------------------------------------------------------

    async def restore(self) -> list[Dropped]:
        """Put the acknowledged-but-unsealed transactions back in the pool after a restart.

        Returns those the rules now refuse (e.g. a replacement that lost): they are dropped.
        """
        await self._migrate_pending_rows()
        entries = self._log.entries()
        if not entries:
            return []
        # Settled ones first, by hash (keccak256 of the raw bytes: ~30x cheaper than decoding and
        # recovering the sender, and after a busy run most entries are settled, their deletion not
        # yet committed): only the rest are decoded.
        hashes = [keccak256(e.raw) for e in entries]
        settled = self._store.settled(hashes)
        done: list[int] = []
        unsettled: list[Entry] = []
        for entry, tx_hash in zip(entries, hashes, strict=True):
            known = settled.get(tx_hash)
            # Sealed, or dropped as this very entry (or a later one): settled. A transaction dropped
            # and then sent again has a newer entry than its DROPPED row: pending again.
            if known is not None and (known.status != DROPPED or known.seq >= entry.seq):
                done.append(entry.seq)
            else:
                unsettled.append(entry)
        decoded = decode_transactions([e.raw for e in unsettled], self._chain_id)
        txs: list[Transaction] = []
        unreadable: list[DropRow] = []
        for (seq, raw), item in zip(unsettled, decoded, strict=True):
            if isinstance(item, TxRejected):  # only if the rules changed (the chain id?): its receipt says why
                unreadable.append(DropRow(keccak256(raw), raw, b"", 0, seq, item.reason))
                continue
            if item.hash in self._logged:  # the same transaction logged twice (a migrated row)
                done.append(seq)
                continue
            self._logged[item.hash] = (seq, item)
            txs.append(item)
        if unreadable:
            await self._store.run(functools.partial(self._store.drop, dropped=unreadable))
            done += [row.seq for row in unreadable]
        self._log.forget(done)
        await self._log.append([])  # the settled ones deleted now, durably: the next restart skips them
        return await self._pool_again(txs)

    async def repool(self) -> list[Dropped]:
        """The chain replaced its pool with an empty one (a block write failed and it went back to
        the durable head): put every logged transaction back, in arrival order, as after a restart
        but from memory. Without this they would wait, acknowledged and durable, for a restart."""
        entries = sorted(self._logged.values(), key=_SEQ)
        return await self._pool_again([tx for _, tx in entries])

    async def _pool_again(self, txs: Sequence[Transaction]) -> list[Dropped]:
        """Add logged transactions (arrival order) to the pool; those the rules now refuse (e.g. a
        replacement that lost) are dropped and returned. One the pool already holds (sent again
        meanwhile) stays."""
        results = self._pool().add_many(txs, time.monotonic())
        refused = [Dropped(tx.hash, r.reason) for tx, r in zip(txs, results, strict=True)
                   if isinstance(r, MempoolRejected) and r.reason is not Reason.ALREADY_KNOWN]
        if refused:
            await self.record_drops(refused)
        return refused

    async def _migrate_pending_rows(self) -> None:
        """PENDING rows an older version kept in the store move to the log: appended (durably) first,
        then deleted; a crash in between only logs them twice, and restore keeps one."""
        rows = self._store.pending()
        if rows:
            await self._log.append([Entry(row.seq, row.raw) for row in rows])
            await self._store.run(self._store.delete_pending)

    async def close(self) -> None:
        self._decoders.shutdown(wait=True)
        await self._log.close()
