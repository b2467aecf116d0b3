"""Batches: sealed blocks, posted to L1's BatchInbox, and their L1 fate tracked back.

Two loops share nothing but the store:

* the *poster* packs the blocks after the last one on L1 into a batch (by size or time) and
  sends ``appendBatch``; it only ever reads what the follower recorded;
* the *L1 follower* reads L1's inputs (protocol's ``L1InputReader``, reorg-aware, see
  services.l1) and records which L2 blocks each batch carries. When the batch's L1 block
  reaches safe depth, so do its transactions' receipts (SAFE); when it is
  finalized, FINALIZED. A reorg that removes a batch makes its blocks unposted again, and the
  poster sends them once more. The same follower records forced transactions and deposits
  once they are at safe depth, and moves the chain's L1 origin to L1's safe head. At each
  update it runs derivation up to L1's safe head over what it saw (``_follow``), so the chain
  follows derivation when the sequencer window lapsed.

So what counts as posted is what L1 shows, never what the poster believes it sent. Blocks that
derivation made itself (a zero origin hash) are never posted; after a rewind, the poster posts
from the chain's new blocks, and a batch it sent before it is stale (never recorded as posting
them; derivation may still take some of its blocks, which ``_follow`` then seals again).

The batch format itself (what derivation reads back from the calldata) is the protocol's:
``protocol._batch``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from opentelemetry import trace

from protocol import (
    FRAME_HEADER,
    ZERO_HASH,
    BatchBlock,
    L1InputReader,
    L1InputsUpdate,
    Transaction,
    batch_size,
    encode_batch,
    keccak256,
)
from services.l1 import Contract, FollowerConfig, L1Client, L1Error, TxSender
from services.runtime import keyed_context, start_keyed_span

from . import _metrics as metrics
from ._chain import Chain, is_derived
from ._follow import DerivationFollower, SeenBatch, seen_batch
from ._store import FINALIZED, SAFE, BatchRow, SequencerStore
from ._traces import TxCall

_log = logging.getLogger("l2node.sequencer.batcher")
_tracer = trace.get_tracer("l2node.sequencer")


class _Posted(NamedTuple):
    post: trace.SpanContext
    first: int
    last: int
    l1_block: int


def _tx_attributes(call: TxCall) -> dict[str, str | int]:
    if call.tx_hash is not None:
        return {"l2.tx.hash": "0x" + call.tx_hash.hex()}
    return {"l2.tx.count": call.tx_count}


def block_room(max_data: int, number: int, timestamp: int, origin_number: int, origin_hash: bytes,
               txs: Sequence[Transaction]) -> int:
    """How many of ``txs`` (a prefix) block ``number`` can carry so that a batch of it alone stays
    within ``max_data`` bytes: every block must be postable in one L1 transaction, whatever it holds
    (the gas limit alone allows ~1.9 MB of calldata a block). Batches are not compressed, so the
    size is exact: each transaction adds its bytes, its leaf's kind byte and its frame."""
    room = max_data - batch_size([BatchBlock(number, timestamp, origin_number, origin_hash, ())])
    if sum(len(tx.raw) for tx in txs) + (FRAME_HEADER + 1) * len(txs) <= room:  # the usual case, in one pass
        return len(txs)
    count = 0
    for tx in txs:
        room -= FRAME_HEADER + 1 + len(tx.raw)
        if room < 0:
            break
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class BatcherSettings:
    #: Post at least this often while blocks wait (seconds).
    interval_s: float = 1.0
    #: ... or as soon as a batch would be this large (calldata, bytes).
    max_bytes: int = 100_000
    #: A sent batch not mined after this long is re-sent (fee bump) by the tx sender.
    receipt_timeout_s: float = 120.0


class Batcher:
    """Posts batches (``sender``) and follows L1's inputs. Without a sender (a read replica, which
    has no key and posts nothing) only the follower runs: deposits, forced transactions, batches
    and derivation, as on the sequencer."""

    def __init__(self, store: SequencerStore, chain: Chain, l1: L1Client, sender: TxSender | None, inbox: Contract,
                 portal: Contract, settings: BatcherSettings, follower_config: FollowerConfig, start_block: int,
                 window: int) -> None:
        self._store = store
        self._chain = chain
        self._l1 = l1
        self._sender = sender
        self._inbox = inbox
        self._portal = portal
        self._settings = settings
        self._follower_config = follower_config
        self._start_block = start_block
        self._in_flight_upto = 0
        #: The last batch was full (cut at max_bytes) and blocks wait behind it: post again without
        #: waiting for the interval, so posting keeps up with a sequencer that fills batches faster.
        self._backlog = False
        # A reorg that drops our batch transactions leaves the sender's local nonce ahead of L1.
        self._resync_nonce = False
        self._last_post_key = b""
        #: L1 tx hash -> the batch's post span and blocks, until final: for the SAFE / FINALIZED spans.
        self._posted: dict[bytes, _Posted] = {}
        self.batches_sent = 0
        chain.window = window
        # The catch-up covers the L1 blocks between the safe head a follow saw and where the next
        # batch lands (``Chain.catch_up``): the confirmation depth, and as many again for the post.
        self.follow = DerivationFollower(store, chain, window,
                                         catch_up_blocks=2 * follower_config.confirmation_depth + 8,
                                         on_rewind=self._rewound)

    # -- posting --------------------------------------------------------------------------------

    async def run_poster(self) -> None:
        while True:
            await self.post_once()
            if not self._backlog:  # a batch cut at max_bytes left blocks behind: they go at once
                await asyncio.sleep(self._settings.interval_s)

    async def post_once(self) -> bytes | None:
        """Send the next batch if there are unposted blocks; the L1 tx hash, or None."""
        self._backlog = False
        if self._sender is None:
            return None
        first = max(self._store.posted_upto(), self._in_flight_upto) + 1
        last = self._chain.head.number
        if first > last or self.follow.deferring or self._chain.catching_up:
            return None  # (the catch-up blocks go in one batch: derivation skips its leading ones)
        if self._resync_nonce:
            self._resync_nonce = False
            await self._sender.resync_nonce()
        rewinds = self._chain.rewinds
        blocks, data = self._pack(first, last)
        if not blocks:
            return None  # a block derivation made (never posted) is next: the follower records it
        with trace.use_span(self._post_span(blocks[0].number, blocks[-1].number, data), end_on_exit=True) as span:
            span.set_attribute("l2.batch.first_block", blocks[0].number)
            span.set_attribute("l2.batch.last_block", blocks[-1].number)
            span.set_attribute("l2.batch.bytes", len(data))
            tx_hash = await self._sender.send(self._inbox.address, self._inbox.encode_call("appendBatch", data))
            if self._chain.rewinds != rewinds:  # its blocks were dropped while it was sent
                await self._rewound()
                return None
            self._in_flight_upto = blocks[-1].number
            try:
                receipt = await self._sender.wait_receipt(tx_hash, self._settings.receipt_timeout_s)
            except L1Error as exc:
                # Dropped, replaced out, timed out: the follower's record decides what is posted.
                _log.warning("batch not mined; will re-post", extra={"error": str(exc)})
                self._in_flight_upto = 0
                return None
            span.set_attribute("l1.block", receipt.block_number)
            span.set_attribute("l1.tx.hash", "0x" + receipt.tx_hash.hex())
            _log.info("batch posted", extra={"first": blocks[0].number, "last": blocks[-1].number, "bytes": len(data),
                                             "l1_tx": "0x" + receipt.tx_hash.hex(), "l1_block": receipt.block_number})
        self.batches_sent += 1
        metrics.BATCHES.inc()
        metrics.BATCH_BYTES.inc(len(data))
        self._backlog = blocks[-1].number < last
        return receipt.tx_hash

    def _post_span(self, first: int, last: int, data: bytes) -> trace.Span:
        """The batch's post: linked to the seal spans of its blocks, and with ids derived from the
        batch data (``keyed_context``), which derivation reads back from L1 and links to. The same
        data posted again (the first post was not mined) is a child of the first, not its twin."""
        key = keccak256(data)
        links = self._chain.traces.seal_links(first, last)
        if key == self._last_post_key:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(keyed_context(key)))
            return _tracer.start_span("post_batch", context=parent, links=links)
        self._last_post_key = key
        return start_keyed_span(_tracer, "post_batch", key, links=links)

    def _pack(self, first: int, last: int) -> tuple[list[BatchBlock], bytes]:
        """The blocks from ``first`` on that one batch holds (at least one), and its data."""
        blocks: list[BatchBlock] = []
        size = batch_size(())
        max_bytes = self._settings.max_bytes
        for number in range(first, last + 1):
            block = self._chain.block(number)
            if block is None or is_derived(block.header):
                break
            h = block.header
            candidate = BatchBlock(h.number, h.timestamp, h.l1_origin_number, h.l1_origin_hash,
                                   tuple(self._store.block_batch_txs(number)))
            size += batch_size((candidate,)) - batch_size(())
            if blocks and size > max_bytes:
                break
            blocks.append(candidate)
        return blocks, encode_batch(blocks)

    # -- following ----------------------------------------------------------------------------

    async def run_follower(self) -> None:
        """Follow L1's inputs (protocol's ``L1InputReader``): our batches, the forced queue and
        deposits. Queue entries and deposits count once they are at safe depth."""
        start = self.follow.start_block(int(self._store.meta("inbox_follow_from") or self._start_block))
        reader = L1InputReader(self._l1, self._inbox, self._portal)
        self._observe_heads()
        async for update in reader.follow(start, self._follower_config):
            await self._apply(update)
            # Never the head itself: appendBatch's gas estimate runs at the head's number, where
            # BLOCKHASH knows no hash for it (the inbox would call the origin one from the future).
            await self._advance_origin(min(update.heads.safe, update.heads.unsafe - 1))

    async def attest_origin(self) -> None:
        """Before the first block is sealed: if the chain's L1 origin is still the genesis's without a
        hash (the devnet genesis names L1 block 0 with a zero hash), move it to a real L1 block, so
        that every block sealed carries an origin the inbox attests (it refuses a batch with any
        other). The safe head if it is past the genesis's origin, else the block after that origin,
        never the head itself (see ``run_follower``)."""
        origin = self._chain.l1_origin
        if origin.hash != ZERO_HASH:
            return
        head = await self._l1.block_number()
        number = min(max(origin.number + 1, head - self._follower_config.confirmation_depth), head - 1)
        header = await self._l1.get_block(number) if number > origin.number else None
        if header is not None:
            self._chain.set_l1_origin(header.number, header.hash)

    async def _rewound(self) -> None:
        """The chain dropped blocks to follow derivation: what is in flight carries dropped blocks
        (stale: never recorded as posting the new ones), and posting starts again from L1's record."""
        self._in_flight_upto = 0
        stale = [h for pending in self._sender.pending() for h in pending.hashes] if self._sender else []

        def write(db: sqlite3.Connection) -> None:
            for tx_hash in stale:
                self._store.stale_batch(db, tx_hash)

        await self._store.run(write)

    async def _advance_origin(self, safe: int) -> None:
        """New L2 blocks derive from L1's safe head: deposits and forced txs up to it are due."""
        if safe > self._chain.l1_origin.number:
            header = await self._l1.get_block(safe)
            if header is not None:
                self._chain.set_l1_origin(header.number, header.hash)

    async def _apply(self, update: L1InputsUpdate) -> None:
        """Record what L1 shows, then follow derivation up to L1's safe head (``_follow``: it may drop
        blocks), and only then promote batches to SAFE or FINALIZED: a block derivation does not take
        is never shown SAFE, not even for a moment."""
        seen = [seen_batch(batch) for batch in update.added]
        rows = [row for row in map(self._batch_row, seen) if row is not None]

        def record(db: sqlite3.Connection) -> None:
            self._store.record_forced(db, update.forced)
            self._store.record_deposits(db, update.deposits)
            for tx_hash in update.removed:
                span = self._store.remove_batch(db, tx_hash)
                if span is not None:
                    _log.warning("L1 reorg removed a batch; its blocks will be posted again",
                                 extra={"first": span[0], "last": span[1]})
            for row in rows:
                self._store.record_batch(db, row)

        def promote(db: sqlite3.Connection) -> None:
            for tx_hash in update.safe:
                self._store.promote_batch(db, tx_hash, SAFE)
            for tx_hash in update.finalized:
                self._store.promote_batch(db, tx_hash, FINALIZED)
            # Logs at or below the finalized head never change again: a restart resumes after them.
            self._store.set_meta(db, "inbox_follow_from", str(max(self._start_block, update.heads.finalized)))

        news = bool(update.removed or rows or update.safe or update.finalized or update.forced or update.deposits)
        if news:
            await self._store.run(record)
            if update.removed:
                self._in_flight_upto = 0
                self._resync_nonce = True
        self.follow.remove(update.removed)
        self.follow.add(seen)
        await self.follow.reconcile(update.heads.safe, update.heads.finalized)
        if news:
            await self._store.run(promote)
            self._observe_heads()
            self._trace_batches(update, rows)

    def _trace_batches(self, update: L1InputsUpdate, rows: Sequence[BatchRow]) -> None:
        """SAFE and FINALIZED in the traces of the calls that sent the batch's transactions: a span
        each, child of the call's accept span, with the event and a link to the post (``_traces``)."""
        for tx_hash in update.removed:
            self._posted.pop(tx_hash, None)
        data = {b.l1_tx_hash: b.data for b in update.added}
        for row in rows:
            post = keyed_context(keccak256(data[row.l1_tx_hash]))
            self._posted[row.l1_tx_hash] = _Posted(post, row.first_block, row.last_block, row.l1_block)
        for status, done in (("SAFE", update.safe), ("FINALIZED", update.finalized)):
            for tx_hash in done:
                posted = self._posted.get(tx_hash)
                if posted is None:
                    continue
                event: dict[str, str | int] = {
                    "l1.tx.hash": "0x" + tx_hash.hex(), "l1.block": posted.l1_block,
                    "l2.batch.first_block": posted.first, "l2.batch.last_block": posted.last}
                for call in self._chain.traces.calls(posted.first, posted.last):
                    span = _tracer.start_span(
                        f"tx_{status.lower()}", context=trace.set_span_in_context(trace.NonRecordingSpan(call.context)),
                        links=[trace.Link(posted.post)], attributes=_tx_attributes(call))
                    span.add_event(status, event)
                    span.end()
                if status == "FINALIZED":
                    del self._posted[tx_hash]
                    self._chain.traces.forget_upto(posted.last)

    def _observe_heads(self) -> None:
        metrics.HEADS.set("safe", self._store.batch_head(SAFE))
        metrics.HEADS.set("finalized", self._store.batch_head(FINALIZED))

    @staticmethod
    def _batch_row(batch: SeenBatch) -> BatchRow | None:
        blocks = batch.blocks
        if not blocks:
            return None
        return BatchRow(batch.l1_tx_hash, batch.index, blocks[0].number, blocks[-1].number, batch.l1_block,
                        batch.l1_block_hash)
