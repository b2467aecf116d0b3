"""The pending log: every transaction acknowledged and not yet sealed or dropped, durably.

A transaction is acknowledged only once its entry is here, on disk. Why a log of its own, in
its own SQLite file with its own writer thread, and not PENDING rows in the store (as an older
version kept them, in its hash-keyed ``txs`` table):

- **An acknowledgement must not queue behind a block.** The store has one writer thread, and
  under load a block write takes 25-40 ms; a PENDING insert queued behind it held every call in
  flight for that long, and with a few calls in flight that latency *was* the throughput.
- **Appends at the right edge.** Entries are keyed by arrival order, so each one extends the
  B-tree's last page. A table keyed by the random 32-byte transaction hash has every insert
  dirty an index page of its own (~5-8 us of writer CPU a transaction). Sealed transactions
  are indexed by hash in the block's own write (``_tx_index``: in memory, then appended in
  sorted runs).

Entries leave lazily: once a transaction is sealed (its block durable) or dropped (its receipt
durable), :meth:`PendingLog.forget` queues its deletion, done inside the next commit: the commit of
appends in progress or queued, or one of its own when the writer is idle. Without that last, a burst
that ended left every entry it had logged until the next append (61k after a 10M-transfer run), and
a restart then looked each one up in the transaction index (~0.9 s). Nothing depends on a deletion
being durable: a restart re-reads every entry and skips those the store already settled
(``SequencerStore.settled``).

Concurrent appends share one commit (group commit): each fsync covers every entry that arrived
while the previous one ran.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

from services.runtime import open_database

from ._store import write_rows


class Entry(NamedTuple):
    """One acknowledged transaction: its arrival order, and its signed bytes as the client sent them.
    (A NamedTuple: one is built per accepted transaction.)"""

    seq: int
    raw: bytes


_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY, raw BLOB NOT NULL)"


@dataclass(frozen=True, slots=True)
class PendingLogStats:
    #: Group commits done, and entries they appended.
    commits: int
    appended: int
    #: Deletions queued for the next commit.
    forgetting: int


class PendingLog:
    """``<store>.pending.db`` beside the sequencer's database; one writer thread, one commit per group."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(path)
        self._db.execute(_SCHEMA)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pending-log")
        self._waiting: list[tuple[Sequence[Entry], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._forget: list[int] = []
        self._commits = 0
        self._appended = 0

    @staticmethod
    def beside(store_path: Path) -> Path:
        """Where the log of the store at ``store_path`` lives: ``sequencer.db`` -> ``sequencer.pending.db``."""
        return store_path.with_suffix(".pending" + store_path.suffix)

    # -- reads (at start, before any append) ----------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every entry, in arrival order."""
        return [Entry(int(s), bytes(r)) for s, r in self._db.execute("SELECT seq, raw FROM pending ORDER BY seq")]

    def max_seq(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM pending").fetchone()[0])

    # -- writes -----------------------------------------------------------------------------------

    async def append(self, entries: Sequence[Entry]) -> None:
        """Durable when this returns. Concurrent callers share a commit."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((entries, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await future

    def forget(self, seqs: Iterable[int]) -> None:
        """These entries are settled (sealed or dropped, durably): delete them with the next commit,
        which starts now if the writer is idle (on the event loop; called elsewhere, the deletions
        wait for the next append)."""
        before = len(self._forget)
        self._forget.extend(seqs)
        if len(self._forget) > before and (self._writer is None or self._writer.done()):
            with contextlib.suppress(RuntimeError):  # no running loop
                self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting or self._forget:
            group, self._waiting = self._waiting, []
            forget, self._forget = self._forget, []
            entries = [e for batch, _ in group for e in batch]
            try:
                await loop.run_in_executor(self._executor, self._commit, entries, forget)
            except BaseException as exc:
                self._forget = forget + self._forget  # not deleted: try again with the next commit
                if not group and isinstance(exc, Exception):
                    return  # deletions alone failed (a full disk?): they go with the next append
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            self._commits += 1
            self._appended += len(entries)
            for _, future in group:
                if not future.done():
                    future.set_result(None)

    def _commit(self, entries: Sequence[Entry], forget: Sequence[int]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            write_rows(db, "INSERT OR REPLACE INTO pending (seq, raw) VALUES ", "(?, ?)", "", entries)
            # After the inserts: a transaction sealed before its own append committed is forgotten
            # by the commit that writes it.
            if forget:
                write_rows(db, "DELETE FROM pending WHERE seq IN (", "?", ")", [(s,) for s in forget])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def statistics(self) -> PendingLogStats:
        return PendingLogStats(commits=self._commits, appended=self._appended, forgetting=len(self._forget))

    async def close(self) -> None:
        """Wait for the commits in progress and queued (deletions included), then close."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        self._executor.shutdown(wait=True)
        self._db.close()
