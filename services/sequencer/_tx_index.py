"""Where each sealed transaction is: hash -> (block, position), without a random-keyed B-tree.

A table keyed by the transaction hash takes random inserts: once it outgrows the page cache each
one dirties a leaf page of its own (~4 KB of WAL, 12-24 us of writer CPU a transaction from 0.5M
to 3M rows, bench/RESULTS.md session 11), ~95% of what sealing writes per transaction. So:

- **Recent blocks' hashes are in memory**, and on disk only as each block's hashes in one row
  (``tx_recent``: appended, 32 bytes a transaction, deleted when a run takes them; ``block_txs``
  has them too, but after the raw transactions, so reading them there reads every raw byte's
  overflow page). A map rebuilt from those rows at open answers for them. The blocks after the
  newest run hold fewer than :data:`RUN_TXS` transactions (plus one block's), so the rebuild is
  bounded (32k hashes: ~5-10 ms here, half that on average).
- **Every RUN_TXS transactions they become one run**, written in the block's own transaction:
  rows keyed (run, hash), the run's number above every other's, in hash order, so they append at
  the B-tree's right edge and each page is written once, full.
- **Runs merge size-tiered**: :data:`FANOUT` runs of a level become one of the next, up to
  :data:`TOP_LEVEL` (~512k rows a run), never merged again, so no merge stalls the writer for more
  than one such run's copy (~0.5-1 s). Each transaction is written three times (its level-0 run,
  two merges), each time appended. A lookup probes every run (one B-tree seek each, in one
  statement that also reads the run list, so it sees one committed snapshot of both), so runs are
  kept few: ~25 at 10M transactions.

Uniqueness: the old table's primary key refused a block holding a hash already sealed. Here a
block is checked against itself and the in-memory blocks only; a transaction in a run has a
nonce below its sender's (the chain executed it), so the pool refuses it again (nonce too low)
before any block can hold it. A rewind deletes its blocks' rows first (runs included).

The map is changed only after the writer's transaction commits (:meth:`TxIndex.committed`), and
its rows reach a run in the same transaction that drops them from the map, so a reader finds a
sealed transaction in the map or in a committed run, never in neither.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Final

#: Transactions in memory (not yet in a run) that make a run: bounds the rebuild at open.
RUN_TXS: Final = 1 << 15
#: Runs of one level merged into one of the next.
FANOUT: Final = 4
#: Runs of this level (RUN_TXS * FANOUT**TOP_LEVEL rows, ~512k) are never merged.
TOP_LEVEL: Final = 2

#: A location packed in one integer: block_number << _SHIFT | position (deposits first).
_SHIFT: Final = 24
_MASK: Final = (1 << _SHIFT) - 1

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tx_runs (
    run INTEGER PRIMARY KEY,           -- newer runs have higher numbers
    level INTEGER NOT NULL,            -- 0: written from memory; n + 1: FANOUT runs of level n merged
    first_block INTEGER NOT NULL,
    last_block INTEGER NOT NULL,       -- the newest run's: blocks after it are in memory only
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tx_recent (  -- the blocks after the newest run: what the map is rebuilt from
    number INTEGER PRIMARY KEY,
    base INTEGER NOT NULL,             -- where its first signed transaction is (packed, as ``at``)
    hashes BLOB NOT NULL               -- its signed transactions' hashes, in block order
);
CREATE TABLE IF NOT EXISTS tx_run_rows (
    run INTEGER NOT NULL,
    hash BLOB NOT NULL,
    at INTEGER NOT NULL,               -- block_number << 24 | position in the block, its deposits first
    PRIMARY KEY (run, hash)
) WITHOUT ROWID;
"""

#: The old hash-keyed table (_migrate_txs still fills it from an older table; open then moves it to a run).
LEGACY_SCHEMA: Final = """CREATE TABLE IF NOT EXISTS tx_index (
    hash BLOB PRIMARY KEY, block_number INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID"""

_IN_RUNS: Final = "run IN (SELECT run FROM tx_runs)"
_HASH: Final = itemgetter(0)


def pack(number: int, index: int) -> int:
    return number << _SHIFT | index


def unpack(at: int) -> tuple[int, int]:
    """(block number, position in the block) of a packed location."""
    return at >> _SHIFT, at & _MASK


class TxIndex:
    """hash -> packed location of every sealed transaction: a map of the blocks after the newest
    run, and the runs. Writes (on the writer thread, in its transaction) are staged until
    :meth:`committed`; reads take the reader connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        db.executescript(SCHEMA)
        _migrate(db)
        #: The committed map: read by other threads (get, in), changed by the writer at commit.
        self._recent: dict[bytes, int] = {}
        self._staged: dict[bytes, int] = {}
        self._flushed = False
        self._rewound_to: int | None = None
        self._rebuild(db)

    def _rebuild(self, db: sqlite3.Connection) -> None:
        """The map, from the rows of the blocks after the newest run."""
        recent: dict[bytes, int] = {}
        for base, blob in db.execute("SELECT base, hashes FROM tx_recent"):
            recent.update(zip(_split(blob), range(base, base + len(blob) // 32), strict=True))
        self._recent = recent

    # -- writes (the writer thread, inside its transaction) ------------------------------------

    def add(self, db: sqlite3.Connection, number: int, first_index: int, hashes: Sequence[bytes]) -> None:
        """Block ``number``'s signed transactions, in block order from position ``first_index``."""
        base = pack(number, first_index)
        new = dict(zip(hashes, range(base, base + len(hashes)), strict=True))
        recent = {} if self._flushed else self._recent
        if len(new) != len(hashes) or not new.keys().isdisjoint(recent) or not new.keys().isdisjoint(self._staged):
            raise sqlite3.IntegrityError(f"block {number} holds a transaction already sealed")
        self._staged.update(new)
        if hashes:
            db.execute("INSERT INTO tx_recent (number, base, hashes) VALUES (?, ?, ?)",
                       (number, base, b"".join(hashes)))
        if len(recent) + len(self._staged) >= RUN_TXS:
            self._flush(db, sorted(chain(recent.items(), self._staged.items()), key=_HASH), number)

    def _flush(self, db: sqlite3.Connection, rows: Sequence[tuple[bytes, int]], last_block: int) -> None:
        """The map's transactions (and the staged ones), through ``last_block``, as a run of level 0."""
        (upto,) = db.execute("SELECT COALESCE(MAX(last_block), -1) FROM tx_runs").fetchone()
        run = _next_run(db)
        _write_run(db, run, rows)
        db.execute("INSERT INTO tx_runs (run, level, first_block, last_block, size) VALUES (?, 0, ?, ?, ?)",
                   (run, int(upto) + 1, last_block, len(rows)))
        db.execute("DELETE FROM tx_recent")
        self._staged, self._flushed = {}, True
        _merge(db)

    def rewind(self, db: sqlite3.Connection, number: int, hashes: Sequence[bytes]) -> None:
        """Forget the transactions of blocks after ``number`` (``hashes``): runs' rows now, the map's at commit."""
        runs = [int(r) for (r,) in db.execute("SELECT run FROM tx_runs WHERE last_block > ?", (number,))]
        for run in runs:
            for start in range(0, len(hashes), 256):
                chunk = hashes[start : start + 256]
                db.execute(f"DELETE FROM tx_run_rows WHERE run = ? AND hash IN ({', '.join('?' * len(chunk))})",
                           (run, *chunk))
            (size,) = db.execute("SELECT COUNT(*) FROM tx_run_rows WHERE run = ?", (run,)).fetchone()
            db.execute("UPDATE tx_runs SET last_block = ?, size = ? WHERE run = ?", (number, size, run))
        db.execute("DELETE FROM tx_runs WHERE size = 0")
        db.execute("DELETE FROM tx_recent WHERE number > ?", (number,))
        self._staged = {h: at for h, at in self._staged.items() if at >> _SHIFT <= number}
        self._rewound_to = number

    def committed(self) -> None:
        """The writer's transaction committed: the map takes what it staged. (A reader between
        these steps misses in the map and finds the rows in the committed runs, or none of a
        rewound block.)"""
        if self._flushed:
            self._recent = {}
        if self._rewound_to is not None:
            limit = self._rewound_to
            self._recent = {h: at for h, at in self._recent.items() if at >> _SHIFT <= limit}
        self._recent.update(self._staged)
        self.rolled_back()

    def rolled_back(self) -> None:
        self._staged, self._flushed, self._rewound_to = {}, False, None

    # -- reads (the reader connection) ----------------------------------------------------------

    def location(self, reader: sqlite3.Connection, tx_hash: bytes) -> tuple[int, int] | None:
        """(block number, position) of a sealed transaction, or None."""
        at = self._recent.get(tx_hash)
        if at is None:
            row = reader.execute(f"SELECT at FROM tx_run_rows WHERE {_IN_RUNS} AND hash = ?", (tx_hash,)).fetchone()
            if row is None:
                return None
            at = int(row[0])
        return unpack(at)

    def sealed(self, reader: sqlite3.Connection, hashes: Sequence[bytes]) -> list[bytes]:
        """Those of ``hashes`` that are sealed."""
        recent = self._recent
        found = [h for h in hashes if h in recent]
        rest = [h for h in hashes if h not in recent]
        for start in range(0, len(rest), 256):
            chunk = rest[start : start + 256]
            found += [bytes(h) for (h,) in reader.execute(
                f"SELECT hash FROM tx_run_rows WHERE {_IN_RUNS} AND hash IN ({', '.join('?' * len(chunk))})", chunk)]
        return found

    def in_memory(self) -> int:
        """Transactions the map holds (sealed after the newest run)."""
        return len(self._recent)


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def _next_run(db: sqlite3.Connection) -> int:
    (top,) = db.execute("SELECT COALESCE(MAX(run), 0) FROM tx_runs").fetchone()
    return int(top) + 1


def _write_run(db: sqlite3.Connection, run: int, rows: Iterable[tuple[bytes, int]]) -> None:
    """Rows in hash order under a run number above every other: appends at the B-tree's right edge."""
    statement = "INSERT INTO tx_run_rows (run, hash, at) VALUES " + ", ".join(["(?, ?, ?)"] * 256)
    batch: list[bytes | int] = []
    for tx_hash, at in rows:
        batch += (run, tx_hash, at)
        if len(batch) == 3 * 256:
            db.execute(statement, batch)
            batch = []
    if batch:
        db.execute("INSERT INTO tx_run_rows (run, hash, at) VALUES " + ", ".join(["(?, ?, ?)"] * (len(batch) // 3)),
                   batch)


def _merge(db: sqlite3.Connection) -> None:
    """While a level below the top holds FANOUT runs, its oldest FANOUT become one run of the next."""
    while True:
        row = db.execute("SELECT level FROM tx_runs WHERE level < ? GROUP BY level HAVING COUNT(*) >= ? "
                         "ORDER BY level LIMIT 1", (TOP_LEVEL, FANOUT)).fetchone()
        if row is None:
            return
        level = int(row[0])
        runs = [int(r) for (r,) in db.execute("SELECT run FROM tx_runs WHERE level = ? ORDER BY run LIMIT ?",
                                              (level, FANOUT))]
        marks = ", ".join("?" * len(runs))
        run = _next_run(db)
        db.execute(f"INSERT INTO tx_run_rows (run, hash, at) SELECT ?, hash, at FROM tx_run_rows "
                   f"WHERE run IN ({marks}) ORDER BY hash", (run, *runs))
        db.execute(f"INSERT INTO tx_runs (run, level, first_block, last_block, size) SELECT ?, ?, MIN(first_block), "
                   f"MAX(last_block), SUM(size) FROM tx_runs WHERE run IN ({marks})", (run, level + 1, *runs))
        db.execute(f"DELETE FROM tx_run_rows WHERE run IN ({marks})", runs)
        db.execute(f"DELETE FROM tx_runs WHERE run IN ({marks})", runs)


def _migrate(db: sqlite3.Connection) -> None:
    """An older version's hash-keyed tx_index (every sealed block's transactions) becomes one top-level
    run through the newest block, once, in one transaction (a crash leaves the old table whole)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tx_index'").fetchone() is None:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        run = _next_run(db)
        # The old table is keyed by hash: read in order, the rows append.
        db.execute("INSERT INTO tx_run_rows (run, hash, at) SELECT ?, hash, (block_number << ?) | idx FROM tx_index "
                   "ORDER BY hash", (run, _SHIFT))
        (size,) = db.execute("SELECT COUNT(*) FROM tx_run_rows WHERE run = ?", (run,)).fetchone()
        (head,) = db.execute("SELECT MAX(number) FROM blocks").fetchone()
        if head is not None:
            db.execute("INSERT INTO tx_runs (run, level, first_block, last_block, size) VALUES (?, ?, 0, ?, ?)",
                       (run, TOP_LEVEL, int(head), int(size)))
        db.execute("DELETE FROM tx_recent")  # (none: an older version had no such table)
        db.execute("DROP TABLE tx_index")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
