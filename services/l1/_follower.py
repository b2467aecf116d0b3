"""A reorg-aware follower of one contract's logs, with unsafe / safe / finalized heads.

    follower = LogFollower(l1, address=inbox, topics=[[appended, forced]], start_block=deployed_at)
    async with contextlib.aclosing(follower.updates()) as updates:
        async for update in updates:
            for log in update.removed: undo(log)        # reorged out: newest first
            for log in update.added: apply_tentatively(log)
            for log in update.safe: act(log)            # irreversible things happen here, not before
            for log in update.finalized: forget_undo_info(log)

How it works: each poll asks for the latest and the finalized block, then fetches the headers of
the new blocks and their logs in one JSON-RPC batch. It keeps the hash of every block it has
processed above the finalized head; a new block whose parent hash is not the hash it kept (or a
chain that got shorter) is a reorg: it walks back to the common ancestor, reports every log it
had delivered above it as removed, and delivers the new branch's logs. Logs whose block hash
disagrees with the headers fetched alongside (a reorg during the poll) are dropped and fetched
again at the next poll. Finalized history is read in wide eth_getLogs ranges without headers.

No background task: the consumer's ``async for`` drives the polls, so a slow consumer slows the
polling instead of queueing updates, and nothing outlives the loop that iterates.

Quiet when idle: while no delivered log awaits safe or final depth and polls find nothing, the
interval backs off up to ``idle_poll_s`` (a transaction sent through the same client snaps it
back), and the headers between the last block processed and the new tip are not fetched: with no
log to undo, the range end's hash is all a later reorg check needs (a block hash commits to its
ancestors). A range that has logs is read again with every header.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from services.l1._client import L1Client, Topics, block_id, log_filter
from services.l1._config import FollowerConfig
from services.l1._errors import LIMIT_EXCEEDED, HttpStatusError, ProtocolError, ReorgTooDeep, RpcError
from services.l1._pacing import Pacer
from services.l1._records import BlockHeader, Log
from services.runtime import BreakerOpen, DeadlineExceeded

_log = logging.getLogger("l2node.l1")

_REWIND_BATCH: Final = 16  # headers per request while walking back to a common ancestor
#: Failures that mean "L1 is unreachable for now": updates() waits them out.
#: What an unreachable or failing L1 endpoint raises: a loop waits it out rather than crash.
OUTAGE: Final = (BreakerOpen, DeadlineExceeded, HttpStatusError, ProtocolError, aiohttp.ClientError, OSError)


class Status(enum.IntEnum):
    """How final a delivered log is; ordered, so ``status >= Status.SAFE`` reads naturally."""

    UNSAFE = 1  # in the latest chain; may still be reorged out
    SAFE = 2  # at least confirmation_depth blocks deep
    FINALIZED = 3  # at or below the finalized block: will not change


@dataclass(frozen=True, slots=True)
class Heads:
    """The follower's view of the chain; -1 means "no block yet". finalized <= safe <= unsafe."""

    unsafe: int  # newest block processed: every log up to it has been delivered
    safe: int
    finalized: int

    def status(self, block_number: int) -> Status:
        """Status of a delivered log in ``block_number``."""
        if block_number <= self.finalized:
            return Status.FINALIZED
        return Status.SAFE if block_number <= self.safe else Status.UNSAFE


@dataclass(frozen=True, slots=True)
class FollowerUpdate:
    """What changed in one poll; apply the fields in their order. Each log appears in
    ``added``, ``safe`` and ``finalized`` at most once in its life (once more if a reorg
    removed it and the new chain has it again); ``safe`` and ``finalized`` include logs that
    arrive already that deep (catching up on history)."""

    heads: Heads
    removed: tuple[Log, ...]  # reorged out, newest first: undo them
    added: tuple[Log, ...]  # new canonical logs, oldest first; status: heads.status(block_number)
    safe: tuple[Log, ...]  # reached safe depth now, oldest first
    finalized: tuple[Log, ...]  # reached finality now, oldest first

    @property
    def empty(self) -> bool:
        return not (self.removed or self.added or self.safe or self.finalized)


class _Diverged(Exception):
    """The chain no longer contains the block the follower has as its tip."""


class LogFollower:
    """Follows the logs of ``address`` matching ``topics`` from ``start_block`` on.

    Give it the block to resume from (the contract's deployment block, or the first block after
    what the consumer has durably processed as finalized); logs from there on are delivered
    again, so consumers must apply them idempotently (by block hash and log index).
    """

    def __init__(
        self,
        l1: L1Client,
        *,
        address: bytes | Sequence[bytes] | None,
        topics: Topics = (),
        start_block: int = 0,
        config: FollowerConfig | None = None,
    ) -> None:
        if start_block < 0:
            raise ValueError("start_block must be >= 0")
        self.config: Final = config or FollowerConfig()
        self._l1 = l1
        self._address = address
        self._topics = topics
        self._start = start_block
        self._tip = start_block - 1  # newest block processed
        self._hashes: dict[int, bytes] = {}  # processed blocks at or above the finalized head
        self._logs: dict[int, list[Log]] = {}  # delivered logs of blocks not yet finalized
        self._heads = Heads(self._tip, self._tip, self._tip)
        self._use_tag = self.config.use_finalized_tag
        self._behind = True  # the last poll made progress and more blocks are waiting
        self._lock = asyncio.Lock()

    @property
    def heads(self) -> Heads:
        return self._heads

    async def updates(self) -> AsyncIterator[FollowerUpdate]:
        """Poll forever, yielding every update that changes something (logs or heads). An L1
        outage is logged and waited out; an :class:`RpcError` or :class:`ReorgTooDeep` ends it."""
        pacer = Pacer(self.config.poll_interval_s, self.config.idle_poll_s, self._l1.activity)
        while True:
            before = self._heads
            try:
                update = await self.poll()
            except OUTAGE as exc:
                _log.warning("L1 log follower: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(self.config.poll_interval_s)
                continue
            if not update.empty or update.heads != before:
                yield update
            if not self._behind:
                # Logs short of finality keep it at full speed: SAFE and FINALIZED come as soon as before.
                await pacer.sleep(active=not update.empty or bool(self._logs))

    async def poll(self) -> FollowerUpdate:
        """One step: detect a reorg, process up to one range of new blocks, move the heads."""
        async with self._lock:
            latest, chain_finalized = await self._chain_heads()
            removed: list[Log] = []
            added: list[Log] = []
            before = self._tip
            known = self._hashes.get(self._tip)
            if latest.number < self._tip or (latest.number == self._tip and known not in (None, latest.hash)):
                removed += await self._rewind(latest.number)
            for _ in range(2):  # the second try follows the branch a rewind found
                try:
                    if self._tip < chain_finalized:
                        added = await self._catch_up(chain_finalized)
                    elif self._tip < latest.number:
                        added = await self._advance(latest)
                    break
                except _Diverged:
                    removed += await self._rewind(min(latest.number, self._tip))
            # No progress (a reorg raced the reads): the next poll waits an interval, not a moment.
            self._behind = self._tip != before and self._tip < latest.number
            chain_safe = max(latest.number - self.config.confirmation_depth, chain_finalized)
            return self._settle(chain_safe, chain_finalized, removed, added)

    # --- chain heads -----------------------------------------------------------------------------

    async def _chain_heads(self) -> tuple[BlockHeader, int]:
        """The latest block and the finalized block number (never above latest)."""
        if self._use_tag:
            try:
                latest, finalized = await self._l1.get_blocks(["latest", "finalized"])
            except RpcError as exc:
                if exc.code == LIMIT_EXCEEDED:
                    raise
                latest = finalized = None
            if latest is not None and finalized is not None:
                return latest, min(finalized.number, latest.number)
            _log.warning("L1 node has no 'finalized' tag; finalized = latest - %d", self.config.finality_depth)
            self._use_tag = False
        latest = await self._l1.get_block("latest")
        if latest is None:
            raise ProtocolError("no latest block")
        return latest, max(latest.number - self.config.finality_depth, -1)

    # --- moving forward --------------------------------------------------------------------------

    async def _catch_up(self, chain_finalized: int) -> list[Log]:
        """Finalized history: one wide eth_getLogs, plus the range end's hash to link onto later."""
        end = min(chain_finalized, self._tip + self.config.max_log_range)
        calls = [self._get_logs(self._tip + 1, end), _get_header(end)]
        known = self._hashes.get(self._tip)  # unfinalized blocks were delivered: are they canonical?
        found, header, *tip = await self._l1.batch([*calls, _get_header(self._tip)] if known else calls)
        if tip and (tip[0] is None or BlockHeader.from_json(tip[0]).hash != known):
            raise _Diverged
        if header is None:
            raise ProtocolError(f"finalized block {end} is missing")
        logs = sorted(Log.from_json(d) for d in found)
        self._record(end, {end: BlockHeader.from_json(header).hash}, logs)
        return logs

    async def _advance(self, head: BlockHeader, *, dense: bool = False) -> list[Log]:
        """Blocks above the finalized head: headers and logs in one batch, checked against each other
        (with nothing to undo and unless ``dense``, only the range's end headers: see the module doc)."""
        latest = head.number
        start, end = self._tip + 1, min(latest, self._tip + self.config.max_header_batch)
        numbers = list(range(start, end + 1))
        fetch_tip = self._tip >= 0 and self._tip not in self._hashes  # started above the finalized head
        sparse = not dense and not self._logs and self._tip >= 0 and end > start  # nothing to undo
        if sparse:
            numbers = [] if end == latest else [end]  # the latest header came with the chain heads
            fetch_tip = True
        wanted = [self._tip, *numbers] if fetch_tip else numbers
        *docs, found = await self._l1.batch([*(_get_header(n) for n in wanted), self._get_logs(start, end)])
        if any(d is None for d in docs):
            return []  # the chain got shorter meanwhile: the next poll sees it
        headers = [BlockHeader.from_json(d) for d in docs]
        if sparse:
            known = self._hashes.get(self._tip)
            if known is not None and headers[0].hash != known:
                raise _Diverged
            if found:
                return await self._advance(head, dense=True)
            self._record(end, {end: (headers[-1] if numbers else head).hash}, [])
            return []
        parent = self._hashes.get(self._tip)
        hashes: dict[int, bytes] = {}
        for header in headers:
            if parent is not None and header.parent_hash != parent:
                if header.number == start and not fetch_tip:
                    raise _Diverged
                return []  # a reorg between the header reads: try again at the next poll
            hashes[header.number] = parent = header.hash
        logs = sorted(Log.from_json(d) for d in found)
        if any(hashes.get(log.block_number) != log.block_hash for log in logs):
            return []  # logs of another branch than the headers: a reorg during the batch
        self._record(end, hashes, logs)
        return logs

    def _record(self, tip: int, hashes: dict[int, bytes], logs: list[Log]) -> None:
        self._hashes.update(hashes)
        for log in logs:
            self._logs.setdefault(log.block_number, []).append(log)
        self._tip = tip

    # --- reorgs ----------------------------------------------------------------------------------

    async def _rewind(self, height: int) -> list[Log]:
        """Back to the newest block both chains share; the delivered logs above it, newest first."""
        number = min(height, self._tip)
        floor = min(self._hashes, default=self._tip + 1)
        ancestor: int | None = None
        while ancestor is None and number >= floor:
            wanted = list(range(number, max(number - _REWIND_BATCH, floor - 1), -1))
            headers = await self._l1.get_blocks(wanted)
            for n, header in zip(wanted, headers, strict=True):
                if header is not None and self._hashes.get(n) == header.hash:
                    ancestor = n
                    break
            number = wanted[-1] - 1
        if ancestor is None:
            if not self._hashes:  # no block processed yet: nothing to undo
                return []
            if floor != self._start - 1:
                raise ReorgTooDeep(f"L1 replaced blocks down to {floor} or below, at or under the finalized head")
            self._hashes.clear()  # even the block before start_block was replaced: start over from there
            ancestor = floor
        removed = sorted((log for n, logs in self._logs.items() if n > ancestor for log in logs), reverse=True)
        for n in [n for n in self._logs if n > ancestor]:
            del self._logs[n]
        for n in [n for n in self._hashes if n > ancestor]:
            del self._hashes[n]
        if ancestor < self._heads.safe:
            _log.warning("L1 reorg below the safe head: blocks %d..%d replaced", ancestor + 1, self._tip)
        _log.info("L1 reorg: rewound from %d to %d, %d log(s) removed", self._tip, ancestor, len(removed))
        self._tip = ancestor
        self._heads = Heads(
            unsafe=ancestor, safe=min(self._heads.safe, ancestor), finalized=min(self._heads.finalized, ancestor))
        return removed

    # --- heads -----------------------------------------------------------------------------------

    def _settle(self, chain_safe: int, chain_finalized: int, removed: list[Log], added: list[Log]) -> FollowerUpdate:
        """New heads, the logs they promote, and pruning of what finality makes unneeded."""
        old = self._heads
        # Monotonic unless a rewind lowered them: a chain that got shorter does not un-confirm.
        finalized = max(min(chain_finalized, self._tip), old.finalized)
        safe = max(min(chain_safe, self._tip), old.safe, finalized)
        heads = Heads(unsafe=self._tip, safe=safe, finalized=finalized)
        newly_safe = [log for n in sorted(self._logs) if old.safe < n <= safe for log in self._logs[n]]
        newly_final = [log for n in sorted(self._logs) if old.finalized < n <= finalized for log in self._logs[n]]
        for n in [n for n in self._logs if n <= finalized]:
            del self._logs[n]
        # The newest hash at or below the finalized head stays: it anchors the next link (a rewind
        # stops there). Dense, that is the finalized head's own; sparse, the range end before it.
        anchor = max((n for n in self._hashes if n <= finalized), default=finalized)
        for n in [n for n in self._hashes if n < anchor]:
            del self._hashes[n]
        self._heads = heads
        return FollowerUpdate(heads, tuple(removed), tuple(added), tuple(newly_safe), tuple(newly_final))

    def _get_logs(self, start: int, end: int) -> tuple[str, Sequence[Any]]:
        return "eth_getLogs", (log_filter(start, end, self._address, self._topics),)


def _get_header(number: int) -> tuple[str, Sequence[Any]]:
    return "eth_getBlockByNumber", (block_id(number), False)
