"""L1 inputs: what L1 holds for L2, read from the inbox's and the portal's logs. **Where an L1
input is read**, for the sequencer (following L1, reorg-aware) and for derivation alike.

Three kinds, each a record in one field order (its queue index, the L1 block that holds it, then
its content):

- ``PostedBatch``: ``BatchAppended`` plus the batch from its transaction's calldata
  (``appendBatch(data)``, always the transaction's top-level call: the inbox refuses any other);
  the batch format is _batch's, its leaves _batch_input's. The inbox computed the event's input
  root from that very calldata, so the data found must decode and reproduce it (and its
  ``dataHash``). If it does not, or the transaction cannot be found at confirmed depth, the L1
  client is wrong, not the batch: ``BatchDataError`` is raised, never a batch skipped in silence
  (which would make derivation, and the challenger's judging, stop or go wrong there).
  A batch posted in frames (``appendFrame``, see _frames) is found the same way, through the
  ``BatchAppended`` its closing frame logs: that transaction's ``FrameAppended`` log names the
  channel and the L1 block of its frame 0, the channel's earlier ``FrameAppended`` logs name their
  transactions, and the frames' calldata, in frame order, is the batch's leaves; their hash chain
  must be the event's ``dataHash`` (the inbox's, see _frames) and the leaves its input root. A
  channel never closed logs no ``BatchAppended``: it is no batch, and nothing waits on it.
  A blob batch (``appendBlobBatch``, see _blob) logs the same event; its leaves come from the
  transaction's blobs, fetched from the L1 node (``L1Client.get_blobs``) and checked against the
  transaction's versioned hashes (their KZG commitments), its origins from the call's calldata, and
  both against the event's input root. Blobs the node cannot give back are a ``BatchDataError``
  like missing calldata: derivation must not guess (a real node prunes blobs after ~18 days:
  whoever derives later needs an archive of them, as Optimism's nodes do).
- ``QueuedForced``: ``ForcedTransaction``, a signed L2 transaction queued for forced inclusion.
- ``QueuedDeposit``: ``DepositQueued``, ``mint`` wei for ``to`` on L2.

``L1InputReader.read`` returns a range of them in L1 order (derivation); ``follow`` wraps the L1
client's reorg-aware ``LogFollower`` (sequencer): batches as they appear, are reorged out, reach
safe depth and finality; queue entries and deposits once they are at safe depth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.l1 import (
    Contract,
    FollowerConfig,
    Heads,
    L1Client,
    Log,
    LogFollower,
    Transaction,
    versioned_hashes_off_loop,
)

from ._batch import BatchFormatError, decode_batch, encode_leaves
from ._batch_input import Leaf, input_root
from ._blob import BlobBatch, decode_blob_leaves
from ._execution import Deposit
from ._frames import frames_hash
from ._keccak import keccak256


class BatchDataError(RuntimeError):
    """L1 reported a batch whose data it cannot give back as the inbox accepted it: a broken or
    lying L1 client (the inbox refuses any batch that would raise this). Fatal to a derivation
    that meets it: retrying, or another L1 endpoint, is the operator's call."""


@dataclass(frozen=True, slots=True)
class PostedBatch:
    """A batch as the inbox holds it."""

    index: int
    l1_block: int
    l1_block_hash: bytes
    l1_tx_hash: bytes
    #: The sized Merkle root over the batch's leaves that the inbox computed (the event's).
    input_root: bytes
    #: The batch bytes from the transaction's calldata (of a framed batch: its leaves as one
    #: ``appendBatch`` would carry them, ``encode_leaves``).
    data: bytes
    #: Its leaves (decode_batch of ``data``); they reproduce ``input_root``.
    leaves: tuple[Leaf, ...]
    #: A framed batch's L1 transactions before the closing one (``l1_tx_hash``), in frame order.
    earlier_frames: tuple[bytes, ...] = ()
    #: A blob batch's blobs, versioned hashes and origins (then ``data`` is its stream and
    #: ``input_root`` the blob binding, see _blob); None for a calldata batch.
    blob: BlobBatch | None = None


@dataclass(frozen=True, slots=True)
class QueuedForced:
    """An entry of the inbox's forced-inclusion queue."""

    index: int
    l1_block: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class QueuedDeposit:
    """An entry of the portal's deposit queue."""

    index: int
    l1_block: int
    sender: bytes
    deposit: Deposit


L1Input = PostedBatch | QueuedForced | QueuedDeposit


@dataclass(frozen=True, slots=True)
class L1InputsUpdate:
    """What one poll of L1 changed (see services.l1's ``FollowerUpdate``); apply in field order."""

    heads: Heads
    #: L1 transactions of batches a reorg took out, newest first.
    removed: tuple[bytes, ...]
    #: Batches new on L1, at any depth, oldest first.
    added: tuple[PostedBatch, ...]
    #: L1 transactions of batches that reached safe depth now, and finality, oldest first.
    safe: tuple[bytes, ...]
    finalized: tuple[bytes, ...]
    #: Queue entries and deposits that reached safe depth now: they count from there only.
    forced: tuple[QueuedForced, ...]
    deposits: tuple[QueuedDeposit, ...]


class L1InputReader:
    """Reads the L1 inputs of one deployment: its inbox and portal."""

    def __init__(self, l1: L1Client, inbox: Contract, portal: Contract,
                 known: Callable[[bytes], bytes | None] | None = None) -> None:
        """``known``: the data of the caller's own ``appendBatch`` calls by their keccak (a batcher
        following its batches), not read back from L1 nor its input root hashed again: the inbox
        logged the hash of the calldata it was given, so a logged dataHash that names one is that
        data, and the logged root is the one the inbox computed from it. A verifier passes none."""
        assert inbox.address is not None and portal.address is not None
        self._l1, self._inbox, self._portal, self._known = l1, inbox, portal, known
        self._addresses = [inbox.address, portal.address]
        self._batch = inbox.topic("BatchAppended")
        self._append_batch = inbox.function("appendBatch").selector
        self._append_frame = inbox.function("appendFrame").selector
        self._frame = inbox.topic("FrameAppended")
        self._append_blob_batch = inbox.function("appendBlobBatch").selector
        self._forced = inbox.topic("ForcedTransaction")
        self._deposit = portal.topic("DepositQueued")
        self._topics = [[self._batch, self._forced, self._deposit]]

    async def read(self, from_block: int, to_block: int) -> list[L1Input]:
        """Every input in L1 blocks [from, to], in L1 order. For blocks at confirmed depth: a batch
        whose data cannot be found or checked raises ``BatchDataError``."""
        logs = await self._l1.get_logs(from_block, to_block, address=self._addresses, topics=self._topics)
        inputs: list[L1Input] = []
        for log in sorted(logs):
            topic = log.topics[0] if log.topics else b""
            item: L1Input | None
            if topic == self._deposit:
                item = self._queued_deposit(log)
            elif topic == self._forced:
                item = self._queued_forced(log)
            else:
                item = await self._posted_batch(log, reorged_ok=False)
            if item is not None:
                inputs.append(item)
        return inputs

    async def follow(self, start_block: int, config: FollowerConfig) -> AsyncIterator[L1InputsUpdate]:
        """Follow L1 from ``start_block`` on, forever (see ``LogFollower.updates``: an outage is
        waited out; what is delivered again after a restart must be applied idempotently)."""
        follower = LogFollower(self._l1, address=self._addresses, topics=self._topics, start_block=start_block,
                               config=config)
        batch, forced, deposit = self._batch, self._forced, self._deposit
        async for update in follower.updates():
            added = [await self._posted_batch(log, reorged_ok=True) for log in _having(batch, update.added)]
            yield L1InputsUpdate(
                update.heads,
                removed=tuple(log.tx_hash for log in _having(batch, update.removed)),
                added=tuple(b for b in added if b is not None),
                safe=tuple(log.tx_hash for log in _having(batch, update.safe)),
                finalized=tuple(log.tx_hash for log in _having(batch, update.finalized)),
                forced=tuple(f for f in map(self._queued_forced, _having(forced, update.safe)) if f is not None),
                deposits=tuple(d for d in map(self._queued_deposit, _having(deposit, update.safe)) if d is not None),
            )

    async def _posted_batch(self, log: Log, *, reorged_ok: bool) -> PostedBatch | None:
        """A ``BatchAppended`` log's batch, its data read from the transaction's calldata and checked
        against the event (see the module notes). A transaction not found is None if ``reorged_ok``
        (a follower at the unsafe head: the reorg that took it shows in its next update), else
        ``BatchDataError``, like data that does not check."""
        event = self._inbox.decode_log(log)
        if event is None:
            raise BatchDataError(f"L1 tx 0x{log.tx_hash.hex()}: a BatchAppended log that does not decode")
        own = None if self._known is None else self._known(bytes(event.args["dataHash"]))
        if own is not None:  # the inbox computed the logged root from this very data: not hashed again
            a = event.args
            where = f"batch {a['index']} (L1 tx 0x{log.tx_hash.hex()})"
            return PostedBatch(int(a["index"]), int(a["l1Block"]), log.block_hash, log.tx_hash, bytes(a["inputRoot"]),
                               own, _frame_leaves(where, [own]))
        tx = await self._l1.get_transaction(log.tx_hash)
        if tx is None:
            if reorged_ok:
                return None
            raise BatchDataError(f"L1 tx 0x{log.tx_hash.hex()} of batch {event.args['index']} is not found "
                                 "although its log is")
        a = event.args
        where = f"batch {a['index']} (L1 tx 0x{log.tx_hash.hex()})"
        if tx.input[:4] == self._append_blob_batch:
            return await self._posted_blob_batch(log, tx, a, where, reorged_ok=reorged_ok)
        if tx.input[:4] == self._append_frame:
            frames = await self._frames(log, where, tx.input, reorged_ok=reorged_ok)
            if frames is None:
                return None
            datas, data_hash, earlier = list(frames.values()), frames_hash(frames.values()), tuple(frames)[:-1]
        else:
            data = _append_batch_data(self._append_batch, tx.input)
            if data is None:
                raise BatchDataError(f"{where}: the transaction's input is not the appendBatch call the inbox "
                                     "logged")
            datas, data_hash, earlier = [data], keccak256(data), ()
        if data_hash != bytes(a["dataHash"]):
            call = "appendFrame calls" if earlier or tx.input[:4] == self._append_frame else "appendBatch call"
            raise BatchDataError(f"{where}: the transaction's input is not the {call} the inbox logged")
        return self._batch_of(log, a, datas, earlier)

    @staticmethod
    def _batch_of(log: Log, a: Mapping[str, Any], datas: list[bytes], earlier: tuple[bytes, ...]) -> PostedBatch:
        """The batch of calldata ``datas`` (its frames, or the one ``appendBatch``'s) the log names,
        checked against the inbox's input root."""
        where = f"batch {a['index']} (L1 tx 0x{log.tx_hash.hex()})"
        leaves = _frame_leaves(where, datas)
        root = bytes(a["inputRoot"])
        if input_root(leaves) != root:
            raise BatchDataError(f"{where}: the data does not reproduce the inbox's input root")
        data = datas[0] if len(datas) == 1 else encode_leaves(leaves)
        return PostedBatch(int(a["index"]), int(a["l1Block"]), log.block_hash, log.tx_hash, root, data, leaves,
                           earlier)

    async def _frames(self, log: Log, where: str, closing: bytes, *, reorged_ok: bool) -> dict[bytes, bytes] | None:
        """The frames of the channel a ``BatchAppended`` log closed: L1 tx hash -> frame data, in
        frame order (the closing one last). Found through the ``FrameAppended`` logs: the closing
        transaction's names the channel and its first block, and the channel's logs from there to
        the close name the frames' transactions. A frame missing or not matching its log: None if
        ``reorged_ok`` (a reorg is under way at the unsafe head), else ``BatchDataError``."""
        receipt = await self._l1.get_receipt(log.tx_hash)
        mine = [] if receipt is None else [e for e in map(self._inbox.decode_log, receipt.logs)
                                           if e is not None and e.name == "FrameAppended"]
        if len(mine) != 1:
            if reorged_ok:
                return None
            raise BatchDataError(f"{where}: its closing frame's FrameAppended log is not found")
        args = mine[0].args
        channel, last, opened = int(args["channel"]), int(args["frame"]), int(args["openedBlock"])
        logs = [] if last == 0 else await self._l1.get_logs(
            opened, log.block_number, address=self._inbox.address,
            topics=[[self._frame], [channel.to_bytes(32, "big")]])
        by_number: dict[int, tuple[bytes, bytes]] = {}
        for frame_log in logs:
            e = self._inbox.decode_log(frame_log)
            if e is not None and e.name == "FrameAppended" and int(e.args["frame"]) < last:
                by_number[int(e.args["frame"])] = (frame_log.tx_hash, bytes(e.args["frameHash"]))
        by_number[last] = (log.tx_hash, bytes(args["frameHash"]))
        frames: dict[bytes, bytes] = {}
        for number in range(last + 1):
            entry = by_number.get(number)
            tx = None if entry is None else closing if entry[0] == log.tx_hash else await self._tx_input(entry[0])
            frame = None if tx is None else _append_batch_data(self._append_frame, tx)
            if entry is None or frame is None or keccak256(frame) != entry[1]:
                if reorged_ok:
                    return None
                raise BatchDataError(f"{where}: frame {number} of channel {channel} is not found as the inbox "
                                     "logged it")
            frames[entry[0]] = frame
        return frames

    async def _tx_input(self, tx_hash: bytes) -> bytes | None:
        tx = await self._l1.get_transaction(tx_hash)
        return None if tx is None else tx.input

    async def _posted_blob_batch(self, log: Log, tx: Transaction, a: Mapping[str, Any], where: str, *,
                                 reorged_ok: bool) -> PostedBatch | None:
        hashes = tx.blob_versioned_hashes
        if not hashes or keccak256(b"".join(hashes)) != bytes(a["dataHash"]):
            raise BatchDataError(f"{where}: the transaction's versioned hashes are not those the inbox logged")
        try:
            (raw_origins,) = self._inbox.decode_input("appendBlobBatch", tx.input)
        except ValueError:
            raise BatchDataError(f"{where}: the transaction's input is not the appendBlobBatch call the inbox "
                                 "logged") from None
        origins = tuple((int(n), bytes(h)) for n, h in raw_origins)
        blobs = await self._l1.get_blobs(log.tx_hash)
        if blobs is None:
            if reorged_ok:
                return None
            raise BatchDataError(f"{where}: the L1 node has no blobs for it")
        batch = BlobBatch(hashes, origins, tuple(blobs))
        root = bytes(a["inputRoot"])
        if len(blobs) != len(hashes) or batch.input_root() != root:
            raise BatchDataError(f"{where}: the blobs and origins do not reproduce the inbox's input root")
        if await versioned_hashes_off_loop(batch.blobs) != hashes:
            raise BatchDataError(f"{where}: the L1 node's blobs are not those of the transaction's versioned hashes")
        stream = batch.stream()
        return PostedBatch(int(a["index"]), int(a["l1Block"]), log.block_hash, log.tx_hash, root, stream,
                           decode_blob_leaves(stream), blob=batch)

    def _queued_forced(self, log: Log) -> QueuedForced | None:
        event = self._inbox.decode_log(log)
        if event is None:
            return None
        a = event.args
        return QueuedForced(int(a["index"]), int(a["l1Block"]), bytes(a["data"]))

    def _queued_deposit(self, log: Log) -> QueuedDeposit | None:
        event = self._portal.decode_log(log)
        if event is None:
            return None
        a = event.args
        return QueuedDeposit(int(a["index"]), int(a["l1Block"]), bytes(a["from"]),
                             Deposit(bytes(a["sourceHash"]), bytes(a["to"]), int(a["mint"])))


def _having(topic: bytes, logs: Sequence[Log]) -> list[Log]:
    return [log for log in logs if log.topics and log.topics[0] == topic]


def _frame_leaves(where: str, frames: Iterable[bytes]) -> tuple[Leaf, ...]:
    """The leaves of a batch's frames (one: an ``appendBatch``'s data), in order."""
    leaves: list[Leaf] = []
    for data in frames:
        try:
            leaves.extend(decode_batch(data))
        except BatchFormatError as exc:
            raise BatchDataError(f"{where}: the inbox accepted data its format refuses ({exc})") from None
    return tuple(leaves)


def _append_batch_data(selector: bytes, calldata: bytes) -> bytes | None:
    """The ``bytes data`` argument (the first) of an ``appendBatch`` or ``appendFrame`` call, read as
    the contract's ABI decoder reads it (the offset followed, padding ignored: a stricter decoder
    would refuse calls the inbox accepted); None if the input is not such a call."""
    if calldata[:4] != selector or len(calldata) < 36:
        return None
    offset = 4 + int.from_bytes(calldata[4:36], "big")
    if offset + 32 > len(calldata):
        return None
    size = int.from_bytes(calldata[offset : offset + 32], "big")
    data = calldata[offset + 32 : offset + 32 + size]
    return data if len(data) == size else None
