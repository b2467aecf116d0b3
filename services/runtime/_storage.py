"""The worker's SQLite database: WAL, synchronous=FULL, one file per service."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
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
    transaction; a commit costs an fsync. The connection may be handed to a thread
    (``asyncio.to_thread``) but used by one thread at a time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False
        self._depth = 0
        self.connection = open_database(path)

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

    def close(self) -> None:
        """Fold the WAL back into the database file and close. An open transaction is rolled
        back: nothing uncommitted was acknowledged to anyone. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")
        self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.connection.close()
