"""The worker's SQLite database: WAL, synchronous=FULL, one file per service."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Final

#: How long a statement waits for a lock held by another connection (a backup, an operator's
#: sqlite3 shell) before failing with "database is locked".
BUSY_TIMEOUT_MS: Final = 5000


def open_database(path: Path) -> sqlite3.Connection:
    """A connection every commit of which is durable when it returns: WAL, synchronous=FULL.

    Autocommit (``isolation_level=None``): transactions are explicit. It may be handed to another
    thread, but used by one thread at a time.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"{path}: SQLite refused WAL mode (got {mode!r})")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    except BaseException:
        connection.close()
        raise
    return connection


class Storage:
    """One connection to ``<data_dir>/<service>.db``.

    Autocommit unless inside :meth:`transaction`, so every commit is explicit and durable when
    it returns (synchronous=FULL): acknowledge a client only after it. Batch many rows into one
    transaction; a commit costs an fsync. Or, after :meth:`sync_in_groups`, durable once
    :meth:`durable` returns: acknowledge after that. The connection may be handed to a thread
    (``asyncio.to_thread``) but used by one thread at a time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False
        self._depth = 0
        self.connection = open_database(path)
        #: Outermost commits made (``sync_in_groups``: an fsync covers the first ``_WalSync.covered``).
        self._commits = 0
        self._sync: _WalSync | None = None
        self._sync_failure: OSError | None = None
        self._sync_failed = asyncio.Event()

    def sync_in_groups(self) -> None:
        """From now on a commit is durable once :meth:`durable` returns, not when it returns.

        A commit only writes its WAL frames (synchronous=NORMAL: kept across a crash of the
        process, not yet across one of the machine); :meth:`durable` fsyncs the WAL on a thread of
        its own, one fsync for every commit made before it started (group commit), while the event
        loop goes on. So whatever leaves the process (an answer, a signature) awaits ``durable()``
        first, and the COMMIT no longer holds the loop for an fsync each."""
        if self._sync is None:
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self.connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # opens (creates) the WAL file
            self._sync = _WalSync(self.path, lambda: self._commits, self._failed)

    async def durable(self) -> None:
        """Every commit made before this call is on disk when it returns (at once unless
        :meth:`sync_in_groups`: then each commit was when it returned). Concurrent callers share
        an fsync, and a call whose commits an fsync already running covers waits for that one
        (:meth:`sync_now`). Once an fsync failed, this call and every later one raise its OSError:
        the pages it lost are not on disk, and no later fsync can say they are."""
        target = self._commits
        if self._sync is None:
            return
        self._sync.raise_failure()  # before "covered": an fsync done after a failed one proves nothing
        if target <= self._sync.covered:
            return
        await self._sync.next(target)

    def sync_now(self) -> None:
        """Start an fsync of every commit made so far now if no fsync runs (no-op unless
        :meth:`sync_in_groups`): for a :meth:`durable` that comes next, which then waits only for
        what is left of it."""
        if self._sync is not None and self._commits > self._sync.covered:
            self._sync.start()

    async def wait_sync_failed(self) -> OSError:
        """The first failed fsync's error, once one failed (never without :meth:`sync_in_groups`).
        The kernel may have dropped the pages it lost from its cache as if written: what this
        process reads may no longer be what the disk holds (PostgreSQL's "fsyncgate"), so the
        worker stops, non-zero, to start again from the disk (services.runtime._bootstrap)."""
        await self._sync_failed.wait()
        assert self._sync_failure is not None
        return self._sync_failure

    def _failed(self, exc: OSError) -> None:
        self._sync_failure = exc
        self._sync_failed.set()

    @property
    def syncs(self) -> int:
        """The fsyncs :meth:`durable` did (one per group of commits)."""
        return self._sync.done if self._sync is not None else 0

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises. Inside another
        transaction it is a savepoint: its writes join the outer commit (one fsync for a batch of
        them), and a block that raises undoes its own writes only."""
        if self.connection.in_transaction:
            self._depth += 1
            name = f"nested_{self._depth}"
            self.connection.execute(f"SAVEPOINT {name}")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute(f"ROLLBACK TO {name}")
                self.connection.execute(f"RELEASE {name}")
                raise
            finally:
                self._depth -= 1
            self.connection.execute(f"RELEASE {name}")
            return
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")
        self._commits += 1

    def close(self) -> None:
        """Fold the WAL back into the database file and close. An open transaction is rolled
        back: nothing uncommitted was acknowledged to anyone. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")
        self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # syncs the WAL, then the database
        self.connection.close()
        if self._sync is not None:
            self._sync.close()


class _WalSync:
    """fsyncs of a database's WAL file on threads of their own, grouped: those who ask in one step of
    the event loop share the fsync that starts at the next, which covers them all (as the
    sequencer's pending log does its commits). One that starts while another runs does not wait
    for it: the other may not cover what was committed since it began, and concurrent fsyncs of one
    file complete together on this kind of disk (a flush of the device's cache serves both)."""

    #: fsyncs in flight at once (a new group starts while the previous one still runs).
    CONCURRENT: Final = 3

    def __init__(self, path: Path, mark: Callable[[], int], on_failure: Callable[[OSError], None]) -> None:
        self._mark = mark
        self._on_failure = on_failure  # called once, at the first failure
        # The WAL file lives as long as the database has a connection (it is not recreated while
        # one is open), so one descriptor serves every fsync.
        self._fd = os.open(f"{path}-wal", os.O_RDONLY)
        # What a previous run committed may not be on disk yet (it was killed before its durable()):
        # synced now, before this run re-sends any of it.
        os.fsync(self._fd)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the WAL file's own name, once
        finally:
            os.close(directory)
        self._executor = ThreadPoolExecutor(max_workers=self.CONCURRENT, thread_name_prefix="wal-sync")
        #: The group whose fsync starts at the next step of the loop (None: none yet).
        self._starting: list[asyncio.Future[int]] | None = None
        #: The fsyncs running: what each covers (``mark()`` as it started) and its group.
        self._running: list[tuple[int, list[asyncio.Future[int]]]] = []
        #: The commits (``mark()``) the fsyncs done so far cover, whoever started them.
        self.covered = 0
        #: A failed fsync: every later ``next`` raises it (Linux reports a write-back error once).
        self._failed: OSError | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.done = 0

    async def next(self, target: int) -> int:
        """Join a running fsync that covers ``target`` (a ``mark()``), else the one that starts at
        the next step of the event loop (after this call); ``mark()`` as it started (what it
        covers) is returned."""
        self.raise_failure()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        running = next((group for covered, group in self._running if covered >= target), None)
        if running is not None:
            running.append(future)
            return await future
        if self._starting is None:
            self._starting = []
            asyncio.get_running_loop().call_soon(self._start_group)
        self._starting.append(future)
        return await future

    def raise_failure(self) -> None:
        """Raise the first failed fsync's error, if one failed: the pages it lost are not on disk,
        and a later fsync that succeeds does not say so (Linux reports a write-back error once)."""
        if self._failed is not None:
            raise self._failed

    def start(self) -> None:
        """An fsync now (its thread starts it at once), if none runs or is about to: ``next``
        callers then join it. Under load fsyncs already run back to back, and one more started
        here would only cover less than the next group will."""
        if not self._running and self._starting is None and self._failed is None:
            self._start([])

    def _start_group(self) -> None:
        group, self._starting = self._starting or [], None
        self._start(group)

    def _start(self, group: list[asyncio.Future[int]]) -> None:
        entry = (self._mark(), group)
        self._running.append(entry)
        synced = asyncio.get_running_loop().run_in_executor(self._executor, os.fsync, self._fd)
        task = asyncio.create_task(self._finish(entry, synced))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, entry: tuple[int, list[asyncio.Future[int]]], synced: asyncio.Future[None]) -> None:
        covered, group = entry
        try:
            await synced
        except BaseException as exc:
            self._running.remove(entry)
            if isinstance(exc, OSError) and self._failed is None:  # what it covered may be lost, and a
                self._failed = exc  # later fsync would not say so
                self._on_failure(exc)
            for future in group:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        self._running.remove(entry)  # no await from here on: none joins the group after this
        if self._failed is not None:  # one running beside it failed, and may have taken its error report
            for future in group:
                if not future.done():
                    future.set_exception(self._failed)
            return
        self.covered = max(self.covered, covered)
        self.done += 1
        for future in group:
            if not future.done():
                future.set_result(covered)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        os.close(self._fd)
