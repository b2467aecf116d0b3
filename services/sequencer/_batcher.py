"""Batches: sealed blocks, posted to L1's BatchInbox, and their L1 fate tracked back.

Two loops share nothing but the store:

* the *poster* packs the blocks after the last one on L1 (or in flight) into a batch (by size or
  time) and sends ``appendBatch``; it only ever reads what the follower recorded, and what it has
  in flight;
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

**In flight.** Up to ``max_in_flight`` batch transactions are sent and not yet mined at once, at
consecutive nonces the tx sender hands out locally; a task per batch waits for its receipt (the
sender bumps a stuck one at its nonce, by at least the replacement minimum). L1 mines them in
nonce order, so their blocks land in order. Derivation skips a block it has (rule 5a), so a block
posted twice costs only gas; a gap would end a batch (rule 5b), so each failure re-posts from the
first block it may have lost, never later, at the nonce the node expects next (a nonce gap's, if L1
lost one of ours: ahead of those waiting behind it), so L1 never holds a batch after a block gap.

* a batch not mined (dropped, its nonce taken, timed out): from its first block, at a nonce the
  node expects (the sender resyncs);
* an L1 reorg removes batches: from the first block of the first removed, at the node's nonce
  (anvil does not put removed transactions back in its pool, geth does: then they land twice);
  those in flight behind the gap land after the re-post;
* a restart (kill -9 included): the sender takes back what the node's pool still holds from the
  key (``txpool_content``), which is in flight again; the poster waits for the follower's first
  pass, so what was mined meanwhile is on record, and goes on after both. Without a txpool API
  the in-flight ones are posted again (twice on L1, once for derivation).

**Frames.** A batch larger than one L1 transaction carries (``max_frame_bytes``: EIP-7825's gas
cap, the pool's size limit, or a setting) goes as a channel of frames (protocol._frames,
``BatchInbox.appendFrame``): whole leaves, cut in order, sent at consecutive nonces like batches
in flight, frame 0 opening a fresh channel. The channel is one flight: its blocks are posted when
its closing frame is (that frame logs the batch), and any frame not mined, or mined reverted (a
frame whose predecessor a reorg took is refused out of order), re-posts from the batch's first
block, at frame 0 again, which abandons whatever channel L1 still holds open. A reorg removing
one frame removes the close after it too, so the follower's "removed" covers it. After a restart,
a channel whose frames are all still in the pool is taken back as one flight (``recover``); one the
previous run did not finish sending is not: its blocks are posted again, and its stale frames,
landing first, open a channel that the new frame 0 abandons.

The batch format itself (what derivation reads back from the calldata) is the protocol's:
``protocol._batch``.

**Blobs** (``batch_data``, L1Settings): a batch may go as an EIP-4844 blob transaction instead
(``appendBlobBatch``, the same leaves in blobs, protocol._blob), up to ``max_blobs`` blobs of
126,976 usable bytes each rather than ``max_bytes`` of calldata. "auto" prices both per batch when
it is packed (calldata at the floor of 40 gas a byte x the base fee against whole blobs x the blob
base fee) and takes the cheaper; on the devnet (blob base fee 1 wei) that is blobs. A block with a
transaction longer than a step can open from a blob (``fits_blob``) always goes as calldata. Blob
batches are in flight, watched, bumped and re-posted like any other (the sender keeps their blobs
for a bump). The pool keeps no blobs to re-sign with after a restart, so the poster records each
blob batch's blocks before it sends it (``SequencerStore.record_blob_post``, by its versioned hashes):
``recover`` rebuilds a pooled one's blobs from them (the same blocks make the same blobs, checked
against the pooled versioned hashes) and takes it back like a calldata batch. One it cannot rebuild
(its blocks dropped by a rewind meanwhile, or sent by a version that recorded nothing) has its
blocks posted again, which derivation skips (rule 5a).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from opentelemetry import trace

from protocol import (
    BATCH_VERSION,
    BLOB_BYTES,
    FRAME_HEADER,
    ZERO_HASH,
    BatchBlock,
    BatchFormatError,
    L1InputReader,
    L1InputsUpdate,
    Transaction,
    batch_blocks,
    batch_leaves,
    batch_size,
    blob_batch_size,
    blob_stream,
    decode_batch,
    decode_blob_leaves,
    encode_batch,
    encode_blob_batch,
    fits_blob,
    keccak256,
    origins_of,
    split_frames,
)
from services.l1 import (
    GAS_PER_BLOB,
    BlobSidecar,
    Contract,
    FollowerConfig,
    Heads,
    L1Client,
    RpcError,
    TxSender,
    in_kzg_process,
    versioned_hash,
    warm_up,
)
from services.l1 import BlockHeader as L1Block
from services.runtime import keyed_context, start_keyed_span

from . import _metrics as metrics
from ._chain import Chain, is_derived
from ._follow import DerivationFollower, SeenBatch, seen_batch
from ._settings import L1_MAX_TX_BYTES, L1_TX_OVERHEAD, batch_tx_gas
from ._store import FINALIZED, SAFE, BatchRow, BlockSpan, SequencerStore
from ._traces import TxCall

_log = logging.getLogger("l2node.sequencer.batcher")

#: Gas on top of a frame's estimate as a frame 0 (see ``Batcher._send_frames``): the frontier
#: slots a later frame may write that a frame 0 does not (up to 3 a level, 22,100 gas each the first
#: time, for the ~8 levels of 65k leaves) and the channel's two slots.
FRAME_GAS_MARGIN = 8 * 3 * 22_100 + 2 * 22_100
_tracer = trace.get_tracer("l2node.sequencer")
#: Given-up batch transactions remembered for a rewind (``Batcher._given_up``), the oldest go first.
_GIVEN_UP_KEPT = 256


class _InFlight(NamedTuple):
    tx_hash: bytes  # of the first version sent (the sender tracks its replacements); a channel's last frame
    first: int
    last: int
    #: A batch posted in frames: every frame's transaction (first versions), in order; () for one
    #: ``appendBatch``.
    frames: tuple[bytes, ...] = ()

    @property
    def transactions(self) -> tuple[bytes, ...]:
        return self.frames or (self.tx_hash,)


class _Posted(NamedTuple):
    post: trace.SpanContext
    first: int
    last: int
    l1_block: int


def _blocks_of(batch: bytes | None) -> tuple[BatchBlock, ...]:
    """The blocks of a batch; () if it is none or not a batch of blocks (not ours to track)."""
    if batch is None:
        return ()
    try:
        return batch_blocks(decode_batch(batch))
    except BatchFormatError:
        return ()


def _blob_blocks(blobs: Sequence[bytes]) -> tuple[BatchBlock, ...]:
    """The blocks of a blob batch's blobs; () if they hold no list of blocks."""
    try:
        return batch_blocks(decode_blob_leaves(blob_stream(blobs)))
    except BatchFormatError:
        return ()


def _tx_attributes(call: TxCall) -> dict[str, str | int]:
    if call.tx_hash is not None:
        return {"l2.tx.hash": "0x" + call.tx_hash.hex()}
    return {"l2.tx.count": call.tx_count}


def block_room(max_data: int, number: int, timestamp: int, origin_number: int, origin_hash: bytes,
               txs: Sequence[Transaction]) -> int:
    """How many of ``txs`` (a prefix) block ``number`` can carry so that a batch of it alone stays
    within ``max_data`` bytes (L1Settings.block_data): every block must be postable in one batch,
    whatever it holds (the gas limit alone allows ~1.9 MB of calldata a block): one L1 transaction,
    or a channel of frames when batches may be larger than one carries. Batches are not compressed, so the
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


#: EIP-7623's floor: what a byte of batch calldata costs (gas); a blob's byte costs blob gas.
CALLDATA_FLOOR_GAS_PER_BYTE = 40


async def blobs_cheaper(l1: L1Client) -> bool:
    """Whether the L1 takes blobs and a full blob (2**17 blob gas at eth_blobBaseFee) costs less than
    its 126,976 usable bytes as calldata at the floor (40 gas a byte at the base fee) now."""
    try:
        head = await l1.request("eth_getBlockByNumber", "latest", False)
        if not head or "excessBlobGas" not in head:
            return False  # an L1 before Cancun (not one that hosts the contracts: they use MCOPY)
        blob_fee = await l1.blob_base_fee()
    except RpcError:  # an L1 without blobs (or without the method): calldata
        return False
    base_fee = int(head.get("baseFeePerGas") or "0x0", 16)
    return blob_fee * GAS_PER_BLOB < base_fee * CALLDATA_FLOOR_GAS_PER_BYTE * BLOB_BYTES


@dataclass(frozen=True, slots=True)
class L1Heads:
    """Where the follower's reading of L1 stands, as blocks (OP's sync status names them so)."""

    head: L1Block  # L1's newest block
    current: L1Block  # the newest block read: every input up to it is taken in
    safe: L1Block  # the newest at safe depth: what SAFE is decided on
    finalized: L1Block


@dataclass(frozen=True, slots=True)
class BatcherSettings:
    #: Post at least this often while blocks wait (seconds).
    interval_s: float = 1.0
    #: ... or as soon as a batch would be this large (calldata, bytes).
    max_bytes: int = 100_000
    #: A sent batch not mined after this long is given up and its blocks posted again (the tx
    #: sender bumps its fees every ``SenderConfig.replace_after_s`` meanwhile).
    receipt_timeout_s: float = 120.0
    #: Batch transactions sent and not yet mined, at most (L1Settings.max_in_flight; 1: one batch
    #: per L1 block at best, as before). Each frame of a channel counts.
    max_in_flight: int = 8
    #: A batch larger than this (bytes of data) goes in frames of at most this (L1Settings.frame_bytes).
    max_frame_bytes: int = L1_MAX_TX_BYTES - L1_TX_OVERHEAD
    #: "calldata", "blobs" or "auto" (L1Settings.batch_data), and blobs per blob batch at most.
    batch_data: str = "calldata"
    max_blobs: int = 6



class Batcher:
    """Posts batches (``sender``) and follows L1's inputs. Without a sender (a read replica, which
    has no key and posts nothing) only the follower runs: deposits, forced transactions, batches
    and derivation, as on the sequencer."""

    def __init__(self, store: SequencerStore, chain: Chain, l1: L1Client, sender: TxSender | None, inbox: Contract,
                 portal: Contract, settings: BatcherSettings, follower_config: FollowerConfig, start_block: int,
                 window: int, *, idle_poll: Callable[[], Awaitable[float]] | None = None) -> None:
        self._store = store
        self._chain = chain
        self._l1 = l1
        self._sender = sender
        self._inbox = inbox
        self._portal = portal
        self._settings = settings
        self._follower_config = follower_config
        #: The follower's idle poll, measured from L1 as it starts (None: the config's as it is).
        self._idle_poll = idle_poll
        self._start_block = start_block
        #: The last block of the newest batch sent (0: none in flight; post from L1's record).
        self._in_flight_upto = 0
        #: Batches sent and not yet mined, by their first version's L1 tx hash; each has a watcher.
        self._in_flight: dict[bytes, _InFlight] = {}
        #: Batch transactions given up (their blocks posted again) that L1 may still mine, oldest first
        #: (a dict as an ordered set): stale at a rewind, as those in flight are, until seen on L1.
        self._given_up: dict[bytes, None] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._full = False  # the last post_once found every slot taken
        self._warming: asyncio.Task[None] | None = None
        self._slot_free = asyncio.Event()
        self._followed = asyncio.Event()  # set after each of the follower's passes (``_wait_followed``)
        #: The L1 head when ``recover`` read the pool: batches of a previous run gone from the pool
        #: by then were mined at or below it, so posting waits for the follower to pass it.
        self._recovered_at = -1
        #: After a rewind, one batch at a time until the follower has seen it (``post_once``): -1 =
        #: the next may go, n = the one sent (its last block) awaits the follower; None = no rewind.
        self._settle: int | None = None
        #: The last batch was full (cut at max_bytes) and blocks wait behind it: post again without
        #: waiting for the interval, so posting keeps up with a sequencer that fills batches faster.
        self._backlog = False
        # A reorg that drops our batch transactions leaves the sender's local nonce ahead of L1.
        self._resync_nonce = False
        self._last_post_key = b""
        #: The data of the appendBatch calls sent, by keccak, until the follower sees them logged: it
        #: does not read them back from L1 (L1InputReader's ``known``); the oldest go first.
        self._sent_data: dict[bytes, bytes] = {}
        #: L1 tx hash -> the batch's post span and blocks, until final: for the SAFE / FINALIZED spans.
        self._posted: dict[bytes, _Posted] = {}
        self.batches_sent = 0
        #: The follower's heads as of its last update (None before the first), and the last
        #: ``l1_heads`` answer: (those heads, when, the blocks).
        self._heads: Heads | None = None
        self._l1_heads: tuple[Heads, float, L1Heads] | None = None
        chain.window = window
        # The catch-up covers the L1 blocks between the safe head a follow saw and where the next
        # batch lands (``Chain.catch_up``): the confirmation depth, and as many again for the post.
        self.follow = DerivationFollower(store, chain, window,
                                         catch_up_blocks=2 * follower_config.confirmation_depth + 8,
                                         on_rewind=self._rewound)

    # -- posting --------------------------------------------------------------------------------

    async def run_poster(self) -> None:
        """Send batches, up to ``max_in_flight`` not yet mined at once; each is waited for by a task
        of its own (``_watch``). Before the first: what a previous run left in flight (``recover``),
        and the follower's first pass, so that batches mined while the worker was down are not
        posted again (they would only cost gas: derivation skips blocks it has, rule 5a)."""
        try:
            if self._settings.batch_data != "calldata":  # the KZG process and its setup (~3-7 s) before blobs are due
                self._warming = asyncio.create_task(in_kzg_process(warm_up))
            await self.recover()
            await self._wait_followed(self._recovered_at)
            while True:
                sent = await self.post_once()
                if sent is not None and self._backlog:
                    continue  # a batch cut at max_bytes left blocks behind: they go at once
                if self._full:  # every slot taken: the next batch goes when one is mined
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._settings.interval_s):
                            await self._slot_free.wait()
                    continue
                await asyncio.sleep(self._settings.interval_s)
        finally:
            for task in self._watchers:
                task.cancel()

    @property
    def _poster(self) -> TxSender:
        """The batcher's L1 sender: only the poster's paths use it, and a read replica runs none."""
        assert self._sender is not None, "a read replica's batcher posts nothing"
        return self._sender

    async def recover(self) -> None:
        """Take back the batches a previous run sent that L1's pool still holds (``TxSender.recover``):
        they are in flight again, watched and bumped like the ones sent now, and posting goes on
        after their blocks rather than posting them twice."""
        channel: list[tuple[bytes, bytes]] = []  # the frames of a channel so far: (first hash, frame data)
        for pending in await self._poster.recover(self._pooled_blobs):
            frame = self._call("appendFrame", pending.to, pending.data)
            hashes: tuple[bytes, ...] = ()
            if frame is not None:
                number, last = int(frame[1]), bool(frame[2])
                channel = [*channel[:number], (pending.hashes[0], bytes(frame[0]))] if number <= len(channel) else []
                if len(channel) != number + 1 or not last:
                    continue  # (a channel the previous run did not finish sending: its blocks go again)
                hashes = tuple(h for h, _ in channel)
                blocks = _blocks_of(bytes((BATCH_VERSION,)) + b"".join(d[1:] for _, d in channel))  # (whole leaves)
                channel = []
            elif pending.sidecar is not None:  # a blob batch, its blobs rebuilt (``_pooled_blobs``)
                blocks = _blob_blocks(pending.sidecar.blobs)
            else:
                call = self._call("appendBatch", pending.to, pending.data)
                blocks = _blocks_of(None if call is None else bytes(call[0]))
            if blocks:
                self._start_watch(_InFlight(hashes[-1] if hashes else pending.hashes[0], blocks[0].number,
                                            blocks[-1].number, hashes))
                self._in_flight_upto = max(self._in_flight_upto, blocks[-1].number)
        # Read after the pool: a batch mined between the follower's first pass and that read is in
        # neither, and only a pass up to this head shows it (else its blocks would go twice).
        self._recovered_at = await self._l1.block_number()

    async def _wait_followed(self, l1_block: int) -> None:
        """Until the follower has delivered every log up to ``l1_block`` (at least one pass)."""
        while self._heads is None or self._heads.unsafe < l1_block:
            self._followed.clear()
            await self._followed.wait()

    async def _pooled_blobs(self, versioned_hashes: tuple[bytes, ...]) -> BlobSidecar | None:
        """The blobs of a pooled blob batch, rebuilt from the blocks it was recorded with before it was
        sent (``record_blob_post``); None if not on record or a block is gone (a rewind). The sender
        checks them against the pooled transaction's versioned hashes."""
        span = self._store.blob_post(keccak256(b"".join(versioned_hashes)))
        blocks = [] if span is None else [self._batch_block(n) for n in range(span.first, span.last + 1)]
        if not blocks or any(b is None for b in blocks):
            return None
        return await self._poster.sidecar(encode_blob_batch([b for b in blocks if b is not None]))

    def _call(self, function: str, to: bytes | None, data: bytes) -> tuple[Any, ...] | None:
        """The arguments of a call of the inbox's ``function``; None for any other transaction."""
        if to != self._inbox.address:
            return None
        try:
            return self._inbox.decode_input(function, data)
        except ValueError:
            return None

    @property
    def in_flight(self) -> int:
        """Batch transactions (frames included) sent and not yet seen mined."""
        return sum(len(flight.transactions) for flight in self._in_flight.values())

    async def post_once(self) -> bytes | None:
        """Send the next batch if there are unposted blocks and a slot for it; the L1 tx hash, or
        None. It does not wait for the receipt (``_watch`` does)."""
        self._backlog = False
        if self._sender is None:  # a read replica's: it follows, it posts nothing
            return None
        self._full = self.in_flight >= self._settings.max_in_flight
        if self._full:
            self._slot_free.clear()
            return None
        if self._settle is not None and (self._settle >= 0 or self._in_flight):
            # After a rewind (the sequencer window lapsed): where the next batch lands decides how many
            # blocks derivation makes before it, and so whether the blocks after it stand. Until the
            # follower has seen it (then ``follow.deferring`` holds posting until it is at the
            # horizon), nothing goes out behind it, as when the poster waited for every receipt.
            return None
        first = max(self._store.posted_upto(), self._in_flight_upto) + 1
        last = self._chain.head.number
        if first > last or self.follow.deferring or self._chain.catching_up:
            return None  # (the catch-up blocks go in one batch: derivation skips its leading ones)
        if self._resync_nonce:
            self._resync_nonce = False
            await self._sender.resync_nonce()
        rewinds = self._chain.rewinds
        use_blobs = await self._use_blobs()
        blocks, data, blobs = self._pack_blobs(first, last) if use_blobs else (*self._pack(first, last), None)
        if not blocks:
            return None  # a block derivation made (never posted) is next: the follower records it
        with trace.use_span(self._post_span(blocks[0].number, blocks[-1].number, data), end_on_exit=True) as span:
            span.set_attribute("l2.batch.first_block", blocks[0].number)
            span.set_attribute("l2.batch.last_block", blocks[-1].number)
            span.set_attribute("l2.batch.bytes", len(data))
            assert self._inbox.address is not None
            frames: tuple[bytes, ...] = ()
            if blobs is not None:
                span.set_attribute("l2.batch.blobs", len(blobs))
                sidecar = await self._sender.sidecar(blobs)
                await self._record_blob_post(sidecar, BlockSpan(blocks[0].number, blocks[-1].number))
                tx_hash = await self._sender.send_blobs(
                    self._inbox.address, self._inbox.encode_call("appendBlobBatch", list(origins_of(blocks))), sidecar)
            elif len(data) > self._settings.max_frame_bytes:
                frames = await self._send_frames(split_frames(batch_leaves(blocks), self._settings.max_frame_bytes))
                tx_hash = frames[-1]
                span.set_attribute("l2.batch.frames", len(frames))
            else:
                call = self._inbox.encode_call("appendBatch", data)
                # One execution refuses a batch that would revert, as the estimate did (and uses no
                # nonce), on the pending block: behind the batches in flight. The gas limit is
                # computed (batch_tx_gas), not searched for.
                await self._l1.call(self._inbox.address, call, sender=self._poster.address, block="pending")
                tx_hash = await self._poster.send(self._inbox.address, call,
                                                  gas=batch_tx_gas(call, self._poster.config.max_gas))
                self._sent_data[self._last_post_key] = data  # (_post_span's key: keccak256(data))
                while len(self._sent_data) > _GIVEN_UP_KEPT:
                    del self._sent_data[next(iter(self._sent_data))]
            span.set_attribute("l1.tx.hash", "0x" + tx_hash.hex())
            if self._chain.rewinds != rewinds:  # its blocks were dropped while it was sent
                await self._rewound()
                return None
            self._in_flight_upto = blocks[-1].number
            if self._settle is not None:
                self._settle = blocks[-1].number
            self._start_watch(_InFlight(tx_hash, blocks[0].number, blocks[-1].number, frames))
        self.batches_sent += 1
        metrics.BATCHES.inc()
        metrics.BATCH_BYTES.inc(len(data))
        self._backlog = blocks[-1].number < last
        return tx_hash

    async def _record_blob_post(self, sidecar: BlobSidecar, span: BlockSpan) -> None:
        """Before a blob batch is sent: its blocks, by its versioned hashes, for ``recover`` after a
        crash (the pool gives back no blobs to bump it with)."""
        data_hash = keccak256(b"".join(versioned_hash(c) for c in sidecar.commitments))
        posted_upto = self._store.posted_upto()
        await self._store.run(lambda db: self._store.record_blob_post(db, data_hash, span, posted_upto))

    async def _send_frames(self, frames: Sequence[bytes]) -> tuple[bytes, ...]:
        """Send a batch's frames (protocol._frames) at consecutive nonces, frame 0 opening a fresh
        channel (it abandons any channel left open by a failed post: BatchInbox.appendFrame); their
        L1 transaction hashes. A frame after the first cannot be estimated before the ones ahead of
        it are mined (the inbox would refuse it out of order), so each is estimated as a frame 0 of
        the same data, plus what the frontier's storage may cost on top (``FRAME_GAS_MARGIN``)."""
        assert self._inbox.address is not None
        hashes: list[bytes] = []
        for number, frame in enumerate(frames):
            last = number == len(frames) - 1
            estimate = await self._l1.estimate_gas(self._inbox.address, self._inbox.encode_call(
                "appendFrame", frame, 0, last), sender=self._poster.address)
            gas = min(estimate + FRAME_GAS_MARGIN, self._poster.config.max_gas)
            hashes.append(await self._poster.send(self._inbox.address, self._inbox.encode_call(
                "appendFrame", frame, number, last), gas=gas))
        return tuple(hashes)

    def _start_watch(self, flight: _InFlight) -> None:
        self._in_flight[flight.tx_hash] = flight
        task = asyncio.create_task(self._watch(flight), name=f"batch-{flight.first}-{flight.last}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _watch(self, flight: _InFlight) -> None:
        """Wait for a batch transaction's receipt (the sender bumps its fees while it is stuck). Not
        mined (dropped, its nonce taken, timed out): its blocks are posted again, from its first on
        (batches after it may still land: derivation skips the blocks it has, rule 5a)."""
        try:
            # A span of its own, child of the post (whose context the task copied): the post has ended
            # by the time the receipt comes, and the sender puts the receipt on the current span.
            with _tracer.start_as_current_span("wait_batch_receipt", attributes={
                    "l1.tx.hash": "0x" + flight.tx_hash.hex(), "l2.batch.first_block": flight.first,
                    "l2.batch.last_block": flight.last, "l2.batch.frames": len(flight.transactions)}):
                for tx_hash in flight.transactions:  # a channel's frames, in nonce order: the close last
                    receipt = await self._poster.wait_receipt(tx_hash, self._settings.receipt_timeout_s)
                    if not receipt.success:  # (a frame out of order, an origin gone: after a reorg)
                        raise RuntimeError(f"batch L1 tx 0x{receipt.tx_hash.hex()} reverted")
        except Exception as exc:  # (L1Error, or anything unforeseen: its blocks must not be left unposted)
            _log.warning("batch not mined; will re-post", extra={"first": flight.first, "last": flight.last,
                                                                  "error": str(exc)})
            # Its blocks go again: nothing of it is waited for or bumped any more (the frames behind
            # a failed one were never waited for, and stayed in the sender's pending list).
            for tx_hash in flight.transactions:
                self._given_up.update(dict.fromkeys(self._poster.give_up(tx_hash)))
            while len(self._given_up) > _GIVEN_UP_KEPT:
                del self._given_up[next(iter(self._given_up))]
            self._in_flight_upto = min(self._in_flight_upto, flight.first - 1)
            self._resync_nonce = True
            if self._settle is not None:
                self._settle = -1
        else:
            _log.info("batch posted", extra={"first": flight.first, "last": flight.last,
                                            "l1_tx": "0x" + receipt.tx_hash.hex(), "l1_block": receipt.block_number})
        finally:
            if self._in_flight.get(flight.tx_hash) is flight:  # (not a watcher started since for the same tx)
                del self._in_flight[flight.tx_hash]
            self._slot_free.set()

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

    async def _use_blobs(self) -> bool:
        """Whether the next batch goes in blobs (``batch_data``; "auto": ``blobs_cheaper``)."""
        mode = self._settings.batch_data
        return await blobs_cheaper(self._l1) if mode == "auto" else mode == "blobs"

    def _pack_blobs(self, first: int, last: int) -> tuple[list[BatchBlock], bytes, tuple[bytes, ...] | None]:
        """As ``_pack``, for a blob batch of at most ``max_blobs`` blobs: the blocks, the blob stream
        (what derivation reads back: its hash keys the post span), the blobs. A first block a blob
        cannot carry (``fits_blob``) goes alone as calldata (blobs None); a later one ends the batch."""
        room = self._settings.max_blobs * BLOB_BYTES
        blocks: list[BatchBlock] = []
        for number in range(first, last + 1):
            candidate = self._batch_block(number)
            if candidate is None:
                break
            if not fits_blob((candidate,)):
                if blocks:
                    break
                blocks, data = self._pack(first, first)
                return blocks, data, None
            if blocks and blob_batch_size([*blocks, candidate]) > room:
                break
            blocks.append(candidate)
        if not blocks:
            return [], b"", None
        blobs = encode_blob_batch(blocks)
        return blocks, blob_stream(blobs), blobs

    def _batch_block(self, number: int) -> BatchBlock | None:
        """Block ``number`` as a batch carries it; None if there is none or derivation made it."""
        block = self._chain.block(number)
        if block is None or is_derived(block.header):
            return None
        h = block.header
        return BatchBlock(h.number, h.timestamp, h.l1_origin_number, h.l1_origin_hash,
                          tuple(self._store.block_batch_txs(number)))

    def _pack(self, first: int, last: int) -> tuple[list[BatchBlock], bytes]:
        """The blocks from ``first`` on that one batch holds (at least one), and its data."""
        blocks: list[BatchBlock] = []
        size = batch_size(())
        max_bytes = self._settings.max_bytes
        for number in range(first, last + 1):
            candidate = self._batch_block(number)
            if candidate is None:
                break
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
        reader = L1InputReader(self._l1, self._inbox, self._portal,
                               known=lambda data_hash: self._sent_data.pop(data_hash, None))
        self._observe_heads()
        config = self._follower_config
        if self._idle_poll is not None:
            # Measured here, after SERVING: L1's block time is no part of a restart's way to it.
            config = self._follower_config = replace(config, idle_poll_s=await self._idle_poll())
            _log.info("following L1", extra={"idle_poll_s": config.idle_poll_s})
        async for update in reader.follow(start, config):
            await self._apply(update)  # (sets ``_heads``)
            # Never the head itself: appendBatch's gas estimate runs at the head's number, where
            # BLOCKHASH knows no hash for it (the inbox would call the origin one from the future).
            await self._advance_origin(min(update.heads.safe, update.heads.unsafe - 1))

    async def l1_heads(self) -> L1Heads | None:
        """The L1 blocks the follower stands at, read in one batch request only when asked (a status
        read, never the hot path), and answered again while the follower's heads stay put, for up to
        a poll interval (L1's head moves without them); None before the follower's first update."""
        heads, last, now = self._heads, self._l1_heads, time.monotonic()
        if heads is None:
            return None
        if last is not None and last[0] == heads and now - last[1] < self._follower_config.poll_interval_s:
            return last[2]
        numbers = [max(n, 0) for n in (heads.unsafe, heads.safe, heads.finalized)]
        found = await self._l1.get_blocks(["latest", *numbers])
        if any(block is None for block in found):  # L1 got shorter since (a reorg): the follower catches up
            return last[2] if last is not None else None
        head, current, safe, finalized = (block for block in found if block is not None)
        answer = L1Heads(head, current, safe, finalized)
        self._l1_heads = (heads, now, answer)
        return answer

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
        (stale: never recorded as posting the new ones), and posting starts again from L1's record,
        one batch at a time until the follower has seen the first (``post_once``)."""
        self._in_flight_upto = 0
        self._settle = -1
        stale = [h for pending in self._sender.pending() for h in pending.hashes] if self._sender else []
        stale.extend(self._given_up)

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
        for batch in update.added:  # on L1 now: a rewind's record (``SequencerStore.rewind``) covers it
            self._given_up.pop(batch.l1_tx_hash, None)
        rows = [row for row in map(self._batch_row, seen) if row is not None]
        removed: list[tuple[int, int]] = []

        def record(db: sqlite3.Connection) -> None:
            self._store.record_forced(db, update.forced)
            self._store.record_deposits(db, update.deposits)
            for tx_hash in update.removed:
                span = self._store.remove_batch(db, tx_hash)
                if span is not None:
                    removed.append(span)
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
                # Posted again from the first block a removed batch carried (batches in flight after
                # it may land too: derivation skips the blocks it has, rule 5a), at a nonce L1 expects
                # now: a reorg that drops our transactions leaves the sender's local nonce ahead.
                self._in_flight_upto = min([self._in_flight_upto, *(first - 1 for first, _ in removed)])
                self._resync_nonce = True
                if self._settle is not None:
                    self._settle = -1
        self.follow.remove(update.removed)
        self.follow.add(seen)
        await self.follow.reconcile(update.heads.safe, update.heads.finalized)
        if news:
            await self._store.run(promote)
            self._observe_heads()
            self._trace_batches(update, rows)
        if self._settle is not None and 0 <= self._settle <= self._store.posted_upto():
            self._settle = None  # the batch sent after the rewind is on record: follow.deferring takes over
        self._heads = update.heads
        self._followed.set()

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
