"""The sequencer follows derivation: its chain is what derivation makes of L1, plus blocks not yet
posted on top. Never a fork of its own.

Derivation (services.rollups' machine, rules 2-5 and F) reads the inbox's batches in order and,
when the sequencer window lapses (protocol._window), makes blocks itself. At block granularity
that is: with the chain at block n (timestamp t, origin o) and the next batch to read in L1 block
E (a batch at or below the horizon h; none: E = h + 1), a lapsed window (E > o + W) makes block
n + 1 (origin o + 1, origin hash zero, timestamp t, deposits and forced transactions only);
otherwise the batch's next block is taken if it is n + 1 and ``leaf_acceptable``, skipped if
it is n or below, and a gap ends the batch. ``DerivationFollower.reconcile`` runs exactly that
over the batches the inbox follower saw, up to L1's safe head (the horizon: what the sequencer
counts as settled, as for SAFE), and compares each block with the sequencer's own:

* the same block (a posted one with the same fields and transactions; a derived one with the
  same origin and timestamp): derivation agrees, the cursor moves on;
* another block: the sequencer **rewinds** to the last block derivation agrees with
  (``Chain.rewind``: its later blocks are dropped, their transactions pending again and back
  in the pool, nothing acknowledged is lost) and **seals derivation's blocks itself**
  (``Chain.seal_followed``: the same code as every block, so the same deposits and forced
  transactions by the same protocol rules), then production resumes on top;
* no block of its own there: it seals derivation's.

Why compare whole blocks rather than check one condition (block p + 1 not posted by o_p + W):
after a lapse, derivation makes one block per L1 block until it reads the sequencer's next
batch, so how many it made depends on where that batch lands, which the sequencer cannot know
when it resumes; and a batch sent before the lapse and mined after it (or the resumed batch
itself) is read after the derived blocks, taking those of its blocks numbered above them. So a
lapse costs the sequencer at most two rewinds: one when the horizon passes the window (none if
it was offline and sealed nothing meanwhile), one when its next batch reaches the horizon. Until
then a rewind that depends on where that batch landed waits for it (``deferring``; the poster
holds its next batch meanwhile), rather than one rewind per L1 block. To lose nothing but empty
blocks at the second, the chain first seals a run of empty blocks (``Chain.catch_up``), posted
in one batch: derivation skips the leading ones, numbered within what it made itself by then.
The horizon is L1's safe head, so the sequencer's chain is derivation's at that horizon; a
derivation with a larger horizon only extends it.

What clients see: a transaction sealed in a dropped block goes back to PENDING (its receipt
says so; then SEALED again, usually in the next block; DROPPED with the pool's reason only if
derivation's blocks made it invalid, e.g. a forced transaction took its nonce), and a block number
gets another block
(another hash: a block stream sees the number again; compare parent hashes, as with an L1
reorg). Only SEALED blocks are ever dropped: a block is SAFE once derivation at safe depth
agrees with it. Every rewind is logged at ERROR with what it dropped, and counted
(l2node_sequencer_rewinds_total, l2node_sequencer_rewound_blocks_total,
l2node_sequencer_followed_blocks_total). A block derivation made itself is recorded as a batch of
its own (inbox index -1, no L1 transaction): SAFE at once, FINALIZED once L1 finalizes the block
that decided it. A block sealed again from a posted batch (one the sequencer had dropped) is
recorded under that batch, like every block derivation took from it: its receipts name the L1
transaction that carries it.

The cursor (where derivation stands) is durable, so a restart resumes where it was; the inbox
follower starts early enough to see the cursor's batch again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Final, NamedTuple

from protocol import (
    DERIVED_ORIGIN_HASH,
    BatchBlock,
    BatchFormatError,
    BlockHeader,
    PostedBatch,
    batch_blocks,
    derived_origin,
    leaf_acceptable,
    window_lapsed,
)

from . import _metrics as metrics
from ._chain import Chain, L1Origin, SealedBlock, header_from_json, is_derived
from ._store import SAFE, BatchRow, SequencerStore

_log = logging.getLogger("l2node.sequencer.follow")

#: The meta key of the durable cursor.
_CURSOR: Final = "derivation_cursor"


@dataclass(frozen=True, slots=True)
class SeenBatch:
    """A batch as the inbox follower saw it, with its blocks decoded."""

    index: int
    l1_block: int
    l1_block_hash: bytes
    l1_tx_hash: bytes
    blocks: tuple[BatchBlock, ...]
    #: A blob batch's checked origins (rule 5c: a block naming another is skipped); None: calldata.
    origins: tuple[tuple[int, bytes], ...] | None = None

    def attests(self, block: BatchBlock) -> bool:
        return self.origins is None or (block.l1_origin_number, block.l1_origin_hash) in self.origins


def seen_batch(batch: PostedBatch) -> SeenBatch:
    """A posted batch with its blocks; one that is not a list of blocks (never the batcher's own)
    holds none here, though derivation reads it leaf by leaf: the sequencer would then disagree
    with derivation, which only a batcher key in other hands can cause."""
    try:
        blocks = batch_blocks(batch.leaves)
    except BatchFormatError as exc:
        _log.warning("a batch in the inbox that is not a list of blocks", extra={"l1_tx": "0x" + batch.l1_tx_hash.hex(),
                                                              "error": str(exc)})
        blocks = ()
    return SeenBatch(batch.index, batch.l1_block, batch.l1_block_hash, batch.l1_tx_hash, blocks,
                     None if batch.blob is None else batch.blob.origins)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where derivation at the horizon stands, relative to the sequencer's chain."""

    #: The last block derivation agrees with (the sequencer's block of that number is derivation's).
    agreed: int = 0
    #: The inbox index of the batch it reads next, and the next block in it.
    batch: int = 0
    position: int = 0
    #: An L1 block at or before that batch's: the inbox follower restarts there (0: from the start).
    resume_l1_block: int = 0


class _Derived(NamedTuple):
    timestamp: int
    origin: int


class _Taken(NamedTuple):
    batch: SeenBatch
    block: BatchBlock


class _Span(NamedTuple):
    """The blocks derivation took from a batch (those it agreed with the sequencer on)."""

    batch: SeenBatch
    first: int
    last: int


_Step = _Derived | _Taken


class DerivationFollower:
    """Keeps the sequencer's chain on derivation's (see the module notes)."""

    def __init__(self, store: SequencerStore, chain: Chain, window: int, *, catch_up_blocks: int,
                 on_rewind: Callable[[], Awaitable[None]] | None = None) -> None:
        self._store = store
        self._chain = chain
        self._window = window
        self._catch_up_blocks = catch_up_blocks
        self._on_rewind = on_rewind
        self._batches: dict[int, SeenBatch] = {}
        self.cursor = self._load_cursor()
        self._finalized = -1
        #: Set while a rewind waits for the sequencer's next batch to reach the horizon (``_derive``).
        self.deferring = False
        #: Held while derivation runs: a read replica's upstream follower (``_replica``) seals and
        #: rewinds under it too, so the two never interleave over the same blocks.
        self.lock = asyncio.Lock()

    def _load_cursor(self) -> Cursor:
        text = self._store.meta(_CURSOR)
        if text is not None:
            return Cursor(**json.loads(text))
        # First start (or a database from before this cursor): derivation agrees with every SAFE
        # block, which ends a batch; it reads the next batch next.
        agreed = self._store.batch_head(SAFE)
        last = self._store.batch_of_block(agreed) if agreed else None
        if last is None:
            return Cursor()
        return Cursor(agreed, last.inbox_index + 1, 0, last.l1_block)

    def start_block(self, default: int) -> int:
        """Where the inbox follower starts: ``default``, or earlier to see the cursor's batch again."""
        resume = self.cursor.resume_l1_block
        return min(default, resume) if resume else default

    # -- what the inbox follower saw -----------------------------------------------------------

    def add(self, batches: Sequence[SeenBatch]) -> None:
        for batch in batches:
            if batch.index >= self.cursor.batch:
                self._batches[batch.index] = batch

    def remove(self, l1_tx_hashes: Sequence[bytes]) -> None:
        """An L1 reorg took these out (above the horizon: derivation has not read them)."""
        gone = set(l1_tx_hashes)
        for index in [i for i, b in self._batches.items() if b.l1_tx_hash in gone]:
            del self._batches[index]

    # -- derivation, compared -------------------------------------------------------------------

    async def reconcile(self, horizon: int, finalized: int) -> None:
        """Run derivation over what L1 holds up to ``horizon`` (L1's safe head) from the cursor on,
        agreeing with the sequencer's blocks, or rewinding and sealing derivation's instead."""
        async with self.lock:
            await self._reconcile(horizon, finalized)

    async def _reconcile(self, horizon: int, finalized: int) -> None:
        self.deferring = False
        try:
            cursor, taken, done, followed = await self._derive(self.cursor, horizon)
        finally:
            self._chain.following = False
        for batch in done:
            self._batches.pop(batch.index, None)
        if cursor != self.cursor or taken or done or followed or finalized != self._finalized:
            await self._store.run(lambda db: self._record(db, cursor, taken, done, followed, finalized))
        self.cursor, self._finalized = cursor, finalized
        if is_derived(self._chain.head):
            self._chain.catch_up(self._catch_up_blocks)

    async def _derive(self, cursor: Cursor, horizon: int) -> tuple[Cursor, dict[bytes, _Span], list[SeenBatch],
                                                                   list[tuple[int, int]]]:
        """Derivation's steps from ``cursor`` to ``horizon``, each agreed with or followed: the new
        cursor, what each batch gave (its first and last block), the batches read to their end, and
        the followed blocks with the L1 block that decided each."""
        parent = self._header(cursor.agreed)
        taken: dict[bytes, _Span] = {}
        done: list[SeenBatch] = []
        followed: list[tuple[int, int]] = []
        while True:
            batch = self._batches.get(cursor.batch)
            if batch is not None and batch.l1_block > horizon:
                batch = None
            step: _Step
            if window_lapsed(parent.l1_origin_number, horizon + 1 if batch is None else batch.l1_block, self._window):
                step = _Derived(parent.timestamp, derived_origin(parent.l1_origin_number))  # rule F
            elif batch is None:
                break
            elif cursor.position >= len(batch.blocks):
                done.append(batch)
                cursor = Cursor(cursor.agreed, cursor.batch + 1, 0, batch.l1_block)
                continue
            else:
                leaf = batch.blocks[cursor.position]
                if leaf.number > parent.number + 1:  # a gap: the rest of the batch is ignored (rule 5b)
                    done.append(batch)
                    cursor = Cursor(cursor.agreed, cursor.batch + 1, 0, batch.l1_block)
                    continue
                cursor = replace(cursor, position=cursor.position + 1)
                if leaf.number <= parent.number or not leaf_acceptable(
                        parent.timestamp, parent.l1_origin_number, leaf.timestamp, leaf.l1_origin_number,
                        batch.l1_block, self._window) or not batch.attests(leaf):
                    continue  # already derived (5a), or not acceptable (5c; a blob batch: an origin not named)
                step = _Taken(batch, leaf)
            number = parent.number + 1
            if (isinstance(step, _Derived) and batch is None and cursor.batch in self._batches
                    and self._chain.head.number >= number and not self._same(self._header(number), step)):
                # The next batch is on L1 above the horizon: how many blocks derivation makes before
                # it is decided where it landed. Rewind once then, not once per L1 block until then;
                # meanwhile the poster waits (what it would post now is dropped then).
                self.deferring = True
                break
            parent, sealed = await self._agree(number, step, horizon)
            if isinstance(step, _Derived):
                followed.append((number, step.origin - 1 + self._window))
            else:  # taken from a posted batch, sealed again or not: that L1 transaction carries it
                key = step.batch.l1_tx_hash
                taken[key] = _Span(step.batch, taken[key].first if key in taken else number, number)
            if sealed:
                metrics.FOLLOWED_BLOCKS.inc()
            cursor = replace(cursor, agreed=number)
        return cursor, taken, done, followed

    async def _agree(self, number: int, step: _Step, horizon: int) -> tuple[BlockHeader, bool]:
        """The sequencer's block ``number`` once it is derivation's ``step``, and whether it had to
        be sealed (after a rewind, or past the sequencer's head). From the first block it seals,
        the chain holds normal production (``Chain.following``) until this pass ends."""
        chain = self._chain
        while True:
            if chain.head.number >= number:
                ours = self._header(number)
                if self._same(ours, step):
                    return ours, False
                chain.following = True
                await self._rewind(number - 1, step, horizon)
                continue
            chain.following = True
            block = await self._seal(number, step)
            if block is not None:  # None: a block was sealed at that number meanwhile; compare it
                return block.header, True

    def _record(self, db: sqlite3.Connection, cursor: Cursor, taken: dict[bytes, _Span],
                done: Sequence[SeenBatch], followed: Sequence[tuple[int, int]], finalized: int) -> None:
        """What derivation took from each batch (a batch it took nothing from is stale: a re-post,
        or blocks dropped since), the followed blocks, and the cursor: one transaction."""
        store = self._store
        for batch, first, last in taken.values():
            store.take_batch(db, BatchRow(batch.l1_tx_hash, batch.index, first, last, batch.l1_block,
                                          batch.l1_block_hash, SAFE))
        for batch in done:
            if batch.l1_tx_hash not in taken:
                store.stale_batch(db, batch.l1_tx_hash)
        for number, l1_block in followed:
            store.record_followed(db, number, l1_block)
        store.finalize_followed(db, finalized)
        store.set_meta(db, _CURSOR, json.dumps(asdict(cursor)))

    def _header(self, number: int) -> BlockHeader:
        text = self._store.block_header(number)
        assert text is not None, f"block {number} is not stored"
        return header_from_json(text)

    def _same(self, ours: BlockHeader, step: _Step) -> bool:
        """Whether derivation's next block is the sequencer's (the parents being the same)."""
        if isinstance(step, _Derived):
            return is_derived(ours) and ours.l1_origin_number == step.origin and ours.timestamp == step.timestamp
        leaf = step.block
        return (ours.timestamp == leaf.timestamp and ours.l1_origin_number == leaf.l1_origin_number
                and ours.l1_origin_hash == leaf.l1_origin_hash
                and self._store.block_batch_txs(ours.number) == list(leaf.transactions))

    async def _seal(self, number: int, step: _Step) -> SealedBlock | None:
        if isinstance(step, _Derived):
            return await self._chain.seal_followed(number, step.timestamp, L1Origin(step.origin, DERIVED_ORIGIN_HASH),
                                                   ())
        leaf = step.block
        return await self._chain.seal_followed(number, leaf.timestamp,
                                               L1Origin(leaf.l1_origin_number, leaf.l1_origin_hash), leaf.transactions)

    async def _rewind(self, number: int, step: _Step, horizon: int) -> None:
        head = self._chain.head.number
        txs = await self._chain.rewind(number)
        metrics.REWINDS.inc()
        metrics.REWOUND_BLOCKS.inc(head - number)
        _log.error(
            "derivation made other blocks than the sequencer's (the sequencer window lapsed; on a read replica, "
            "its upstream's are not what L1 holds): following it; "
            "blocks after %d dropped, their transactions pending again", number,
            extra={"agreed": number, "dropped_from": number + 1, "dropped_to": head, "repooled": len(txs),
                   "l1_horizon": horizon, "derived": isinstance(step, _Derived)})
        if self._on_rewind is not None:
            await self._on_rewind()

