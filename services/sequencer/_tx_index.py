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
  :data:`TOP_LEVEL` (~512k rows a run), never merged again. A merge never stalls a block: each block
  does a bounded slice of it in its own transaction (:func:`_work`: at most :data:`WORK_PER_TX` rows
  copied per transaction it seals, :data:`MIN_WORK` at least, and as many rows of merged runs
  deleted), the inputs answering lookups until the slice that completes it swaps the new run in.
  So a kill -9 at any moment leaves the merge where its last committed slice put it, and the next
  block goes on from there. One merge at a time, the lowest level first. Each transaction is
  written three times (its level-0 run, two merges), each time in hash order (a merged run's
  slices land behind any level-0 run written meanwhile: sequential, not at the very edge). What
  is left of a stall is the level-0 run itself: 32k rows in one block (~45 ms of CPU here).
- **Each run has a filter** (:func:`_probe`: a blocked Bloom filter, one 64-bit word a hash, six
  bits of it set; :data:`FILTER_WORDS` words whatever the run's level, so a merged run's is the OR
  of its inputs'), so a lookup seeks only in the runs whose filter has the hash: an unknown hash,
  what every new transaction is checked as, ~never touches a run (~0.4% a full top run).

Uniqueness: the old table's primary key refused a block holding a hash already sealed. Here a
block is checked against itself and the in-memory blocks only; a transaction in a run has a
nonce below its sender's (the chain executed it), so the pool refuses it again (nonce too low)
before any block can hold it. A rewind deletes its blocks' rows first (runs included).

The map and the list of runs are changed only after the writer's transaction commits
(:meth:`TxIndex.committed`: the list first), its rows reach a run in the same transaction that
drops them from the map, and a merged run's rows are deleted only in later transactions than the
one dropping it from the list, so a reader finds a sealed transaction in the map or in a listed
run; one that missed while the list changed looks again.
"""

from __future__ import annotations

import sqlite3
from array import array
from collections.abc import Iterable, Sequence
from functools import reduce
from operator import or_
from typing import Final

from protocol import bloom_fill

#: Transactions in memory (not yet in a run) that make a run: bounds the rebuild at open.
RUN_TXS: Final = 1 << 15
#: Runs of one level merged into one of the next.
FANOUT: Final = 4
#: Runs of this level (RUN_TXS * FANOUT**TOP_LEVEL rows, ~512k) are never merged.
TOP_LEVEL: Final = 2
#: Merge work a block does: rows copied (and rows of merged runs deleted) per transaction it seals.
#: Merging takes 2 copies a transaction (to level 1, to level 2): 3 keeps ahead of a full chain.
WORK_PER_TX: Final = 3
#: ... and at least this many, so emptier blocks finish merges sooner.
MIN_WORK: Final = 4096
#: A run filter's 64-bit words (1 MiB: 16 bits a hash in a full top run; a power of two, <= 2**20).
FILTER_WORDS: Final = 1 << 17

#: A location packed in one integer: block_number << _SHIFT | position (deposits first).
_SHIFT: Final = 24
_MASK: Final = (1 << _SHIFT) - 1

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tx_runs (   -- the runs lookups read (a run being built is not here yet)
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
CREATE TABLE IF NOT EXISTS tx_run_filters (  -- a listed run's filter (_probe); none: always sought in
    run INTEGER PRIMARY KEY,
    bits BLOB NOT NULL                 -- FILTER_WORDS 64-bit words (array("Q"), native: little-endian here)
);
CREATE TABLE IF NOT EXISTS tx_dead_runs (    -- merged runs, their rows deleted a slice a block
    run INTEGER PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS tx_merge (  -- the merge under way, if any: one row
    id INTEGER PRIMARY KEY CHECK (id = 0),
    run INTEGER,                       -- the run it builds (not listed until complete); NULL: none
    level INTEGER,                     -- that run's
    inputs TEXT,                       -- the runs merged, comma-separated
    cursor BLOB,                       -- the last hash copied
    size INTEGER,                      -- rows copied
    next_run INTEGER NOT NULL          -- the next run's number: never one used before
);
"""

#: The old hash-keyed table (_migrate_txs still fills it from an older table; open then moves it to a run).
LEGACY_SCHEMA: Final = """CREATE TABLE IF NOT EXISTS tx_index (
    hash BLOB PRIMARY KEY, block_number INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID"""

#: Two bits of a 64-bit word from 12 bits of a hash (a table: ~0.3 us less a hash than shifting).
_PAIRS: Final = tuple(1 << (v & 63) | 1 << (v >> 6) for v in range(1 << 12))
_SEEK: Final = "SELECT at FROM tx_run_rows WHERE run = ? AND hash = ?"


def pack(number: int, index: int) -> int:
    return number << _SHIFT | index


def unpack(at: int) -> tuple[int, int]:
    """(block number, position in the block) of a packed location."""
    return at >> _SHIFT, at & _MASK


def _probe(tx_hash: bytes) -> tuple[int, int]:
    """The filter word of ``tx_hash`` and the 6 bits it sets there, from its first 8 bytes (a hash
    is uniformly random; an attacker grinding for collisions gets extra seeks, nothing wrong)."""
    x = int.from_bytes(tx_hash[:8], "little")
    y = x >> 20
    return x & (FILTER_WORDS - 1), _PAIRS[y & 4095] | _PAIRS[y >> 12 & 4095] | _PAIRS[y >> 24 & 4095]


def _filter(hashes: Iterable[bytes] = ()) -> array[int]:
    return _fill(array("Q", bytes(8 * FILTER_WORDS)), hashes)


def _fill(bits: array[int], hashes: Iterable[bytes]) -> array[int]:
    """``bits`` with ``hashes`` added: _probe's bits of each, set in C (``protocol.bloom_fill``; this
    runs for every transaction, ~0.4 us a hash in Python; tests/sequencer/test_tx_index.py holds it
    to _probe)."""
    bloom_fill(bits, hashes if isinstance(hashes, list) else list(hashes))
    return bits


def _bits(blob: bytes | None) -> array[int] | None:
    """A stored filter (None: none, or one of another size: the run is always sought in)."""
    if blob is None or len(blob) != 8 * FILTER_WORDS:
        return None
    bits = array("Q", blob)
    if bits.itemsize != 8:
        raise RuntimeError("array('Q') is not 64-bit here")
    return bits


class _Run:
    """A listed run: its number and its filter, read on first use (reads stay cheap at open)."""

    __slots__ = ("bits", "number")

    def __init__(self, number: int, bits: array[int] | bool | None = False) -> None:
        self.number = number
        #: False: not read yet; None: none (always sought in).
        self.bits = bits

    def load(self, reader: sqlite3.Connection) -> array[int] | None:
        row = reader.execute("SELECT bits FROM tx_run_filters WHERE run = ?", (self.number,)).fetchone()
        bits = self.bits = _bits(None if row is None else bytes(row[0]))
        return bits


class TxIndex:
    """hash -> packed location of every sealed transaction: a map of the blocks after the newest
    run, and the runs. Writes (on the writer thread, in its transaction) are staged until
    :meth:`committed`; reads take the reader connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        db.executescript(SCHEMA)
        if db.execute("SELECT 1 FROM tx_merge").fetchone() is None:  # (no write, so no commit, at every open)
            db.execute("INSERT INTO tx_merge (id, next_run) SELECT 0, COALESCE(MAX(run), 0) + 1 FROM tx_runs")
        _migrate(db)
        #: The committed map: read by other threads (get, in), changed by the writer at commit.
        self._recent: dict[bytes, int] = {}
        self._staged: dict[bytes, int] = {}
        self._flushed = False
        self._rewound_to: int | None = None
        #: The committed list of runs, newest first: replaced whole (readers hold a snapshot).
        self._runs: tuple[_Run, ...] = ()
        #: The list this transaction made, to publish at commit, with the filters it built.
        self._next_runs: tuple[_Run, ...] | None = None
        self._new_bits: dict[int, array[int] | None] = {}
        #: The next level-0 run's filter, filled as blocks come (a block rolled back leaves bits: a
        #: seek more, never a miss), made at the first of them: not at open, where its 1 MiB of page
        #: faults was a tenth of a restart. Not inline (made at the flush from the map) after a
        #: restart with blocks in memory, or a flush rolled back.
        self._pending: array[int] | None = None
        self._rebuild(db)
        self._inline = not self._recent
        self._runs = self._listed(db)

    def _rebuild(self, db: sqlite3.Connection) -> None:
        """The map, from the rows of the blocks after the newest run."""
        recent: dict[bytes, int] = {}
        for base, blob in db.execute("SELECT base, hashes FROM tx_recent"):
            recent.update(zip(_split(blob), range(base, base + len(blob) // 32), strict=True))
        self._recent = recent

    def _listed(self, db: sqlite3.Connection) -> tuple[_Run, ...]:
        """The runs ``db`` lists, newest first, keeping the filters already read."""
        known = {run.number: run for run in self._runs}
        return tuple(known.get(number) or _Run(number, self._new_bits.get(number, False))
                     for (number,) in db.execute("SELECT run FROM tx_runs ORDER BY run DESC"))

    def _relist(self, db: sqlite3.Connection) -> None:
        self._next_runs = self._listed(db)

    # -- writes (the writer thread, inside its transaction) ------------------------------------

    def add(self, db: sqlite3.Connection, number: int, first_index: int, hashes: Sequence[bytes]) -> None:
        """Block ``number``'s signed transactions, in block order from position ``first_index``;
        then a slice of merge work."""
        base = pack(number, first_index)
        new = dict(zip(hashes, range(base, base + len(hashes)), strict=True))
        recent = {} if self._flushed else self._recent
        if len(new) != len(hashes) or not new.keys().isdisjoint(recent) or not new.keys().isdisjoint(self._staged):
            raise sqlite3.IntegrityError(f"block {number} holds a transaction already sealed")
        self._staged.update(new)
        if self._inline:
            if self._pending is None:
                self._pending = _filter()
            _fill(self._pending, hashes)
        if hashes:
            db.execute("INSERT INTO tx_recent (number, base, hashes) VALUES (?, ?, ?)",
                       (number, base, b"".join(hashes)))
        if len(recent) + len(self._staged) >= RUN_TXS:
            self._flush(db, recent | self._staged, number)
        if _work(db, max(MIN_WORK, WORK_PER_TX * len(hashes)), self._new_bits):
            self._relist(db)

    def _flush(self, db: sqlite3.Connection, rows: dict[bytes, int], last_block: int) -> None:
        """The map's transactions (and the staged ones), through ``last_block``, as a run of level 0."""
        (upto,) = db.execute("SELECT COALESCE(MAX(last_block), -1) FROM tx_runs").fetchone()
        run = _take_run(db)
        _write_run(db, run, rows)
        db.execute("INSERT INTO tx_runs (run, level, first_block, last_block, size) VALUES (?, 0, ?, ?, ?)",
                   (run, int(upto) + 1, last_block, len(rows)))
        bits = self._new_bits[run] = self._pending if self._inline and self._pending is not None else _filter(rows)
        self._pending, self._inline = None, True
        db.execute("INSERT INTO tx_run_filters (run, bits) VALUES (?, ?)", (run, bits.tobytes()))
        db.execute("DELETE FROM tx_recent")
        self._staged, self._flushed = {}, True
        self._relist(db)

    def rewind(self, db: sqlite3.Connection, number: int, hashes: Sequence[bytes]) -> None:
        """Forget the transactions of blocks after ``number`` (``hashes``): runs' rows now (a merge
        under way is dropped, its inputs stay listed), the map's at commit."""
        (building,) = db.execute("SELECT run FROM tx_merge").fetchone()
        if building is not None:
            db.execute("INSERT INTO tx_dead_runs (run) VALUES (?)", (building,))
            db.execute("UPDATE tx_merge SET run = NULL, level = NULL, inputs = NULL, cursor = NULL, size = NULL")
        runs = [int(r) for (r,) in db.execute("SELECT run FROM tx_runs WHERE last_block > ?", (number,))]
        for run in runs:
            for start in range(0, len(hashes), 256):
                chunk = hashes[start : start + 256]
                db.execute(f"DELETE FROM tx_run_rows WHERE run = ? AND hash IN ({', '.join('?' * len(chunk))})",
                           (run, *chunk))
            (size,) = db.execute("SELECT COUNT(*) FROM tx_run_rows WHERE run = ?", (run,)).fetchone()
            db.execute("UPDATE tx_runs SET last_block = ?, size = ? WHERE run = ?", (number, size, run))
        # (Their filters keep the rewound hashes' bits: a seek more for those, never a miss.)
        db.execute("DELETE FROM tx_run_filters WHERE run IN (SELECT run FROM tx_runs WHERE size = 0)")
        db.execute("DELETE FROM tx_runs WHERE size = 0")
        db.execute("DELETE FROM tx_recent WHERE number > ?", (number,))
        self._staged = {h: at for h, at in self._staged.items() if at >> _SHIFT <= number}
        self._rewound_to = number
        self._relist(db)

    def committed(self) -> None:
        """The writer's transaction committed: the list of runs, then the map, take what it staged.
        (A reader between these steps misses in the map and finds the rows in a listed run, or
        none of a rewound block.)"""
        if self._next_runs is not None:
            self._runs = self._next_runs
        if self._flushed:
            self._recent = {}
        if self._rewound_to is not None:
            limit = self._rewound_to
            self._recent = {h: at for h, at in self._recent.items() if at >> _SHIFT <= limit}
        self._recent.update(self._staged)
        self._unstage()

    def rolled_back(self) -> None:
        if self._flushed:  # the map keeps the transactions the run would have taken: made at the next flush
            self._pending, self._inline = None, False
        self._unstage()

    def _unstage(self) -> None:
        self._staged, self._flushed, self._rewound_to = {}, False, None
        self._next_runs, self._new_bits = None, {}

    # -- reads (the reader connection) ----------------------------------------------------------

    def _find(self, reader: sqlite3.Connection, tx_hash: bytes) -> int | None:
        """The packed location of a sealed transaction: the map, else the listed runs whose filter
        has it; looked for again if the list changed meanwhile (a merged run's rows may be gone).
        A lookup reads at most one run's filter not read yet (1 MiB, ~1 ms) and seeks in the others
        (~3 us each): after an open, no single lookup pays for every run's (~30 ms at 10M)."""
        i = mask = -1
        while True:
            at = self._recent.get(tx_hash)
            if at is not None:
                return at
            runs = self._runs
            if runs and i < 0:
                i, mask = _probe(tx_hash)
            unread = True
            for run in runs:
                bits = run.bits
                if bits is False:
                    bits, unread = (run.load(reader) if unread else None), False
                if bits is None or bits[i] & mask == mask:  # type: ignore[index]
                    row = reader.execute(_SEEK, (run.number, tx_hash)).fetchone()
                    if row is not None:
                        return int(row[0])
            if self._runs is runs:
                return None

    def location(self, reader: sqlite3.Connection, tx_hash: bytes) -> tuple[int, int] | None:
        """(block number, position) of a sealed transaction, or None."""
        at = self._find(reader, tx_hash)
        return None if at is None else unpack(at)

    def sealed(self, reader: sqlite3.Connection, hashes: Sequence[bytes]) -> list[bytes]:
        """Those of ``hashes`` that are sealed."""
        return [h for h in hashes if self._find(reader, h) is not None]

    def in_memory(self) -> int:
        """Transactions the map holds (sealed after the newest run)."""
        return len(self._recent)


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def _take_run(db: sqlite3.Connection) -> int:
    """A new run's number (numbers are never reused: a reader's list may still name an old one)."""
    (run,) = db.execute("SELECT next_run FROM tx_merge").fetchone()
    db.execute("UPDATE tx_merge SET next_run = next_run + 1")
    return int(run)


def _write_run(db: sqlite3.Connection, run: int, rows: dict[bytes, int]) -> None:
    """Rows in hash order under a run number above every other: appends at the B-tree's right edge.
    (The keys sorted, not the items: 32k tuples kept alive would set off the GC's full collections.)"""
    values: list[bytes | int] = [v for tx_hash in sorted(rows) for v in (run, tx_hash, rows[tx_hash])]
    statement = "INSERT INTO tx_run_rows (run, hash, at) VALUES " + ", ".join(["(?, ?, ?)"] * 256)
    for start in range(0, len(values), 3 * 256):
        batch = values[start : start + 3 * 256]
        db.execute(statement if len(batch) == 3 * 256 else
                   "INSERT INTO tx_run_rows (run, hash, at) VALUES " + ", ".join(["(?, ?, ?)"] * (len(batch) // 3)),
                   batch)


def _work(db: sqlite3.Connection, budget: int, new_bits: dict[int, array[int] | None]) -> bool:
    """A slice of the background work, in the block's transaction: up to ``budget`` rows of merged
    runs deleted, and up to ``budget`` rows (+ FANOUT) of the merge under way copied, in hash order
    from where the last slice stopped; the slice that copies its last rows lists the new run in
    its inputs' place (its filter the OR of theirs, kept in ``new_bits``). True if the list changed."""
    left = budget
    for (dead,) in db.execute("SELECT run FROM tx_dead_runs ORDER BY run").fetchall():
        last = db.execute("SELECT hash FROM tx_run_rows WHERE run = ? ORDER BY hash LIMIT 1 OFFSET ?",
                          (dead, left - 1)).fetchone()
        if last is None:
            left -= db.execute("DELETE FROM tx_run_rows WHERE run = ?", (dead,)).rowcount
            db.execute("DELETE FROM tx_dead_runs WHERE run = ?", (dead,))
        else:
            db.execute("DELETE FROM tx_run_rows WHERE run = ? AND hash <= ?", (dead, last[0]))
            left = 0
        if left <= 0:
            break
    run, level, inputs_text, cursor, size = db.execute(
        "SELECT run, level, inputs, cursor, size FROM tx_merge").fetchone()
    if run is None:
        row = db.execute("SELECT level FROM tx_runs WHERE level < ? GROUP BY level HAVING COUNT(*) >= ? "
                         "ORDER BY level LIMIT 1", (TOP_LEVEL, FANOUT)).fetchone()
        if row is None:
            return False
        level = int(row[0]) + 1
        inputs = [int(r) for (r,) in db.execute("SELECT run FROM tx_runs WHERE level = ? ORDER BY run LIMIT ?",
                                                (level - 1, FANOUT))]
        run, cursor, size = _take_run(db), b"", 0
    else:
        inputs = [int(r) for r in str(inputs_text).split(",")]
    marks = ", ".join("?" * len(inputs))
    # Where this slice stops: the first input to reach budget/FANOUT rows past the cursor bounds it.
    step = max(1, budget // len(inputs))
    ends = [row[0] for r in inputs if (row := db.execute(
        "SELECT hash FROM tx_run_rows WHERE run = ? AND hash > ? ORDER BY hash LIMIT 1 OFFSET ?",
        (r, cursor, step - 1)).fetchone()) is not None]
    end = min(ends) if ends else None
    size += db.execute(f"INSERT INTO tx_run_rows (run, hash, at) SELECT ?, hash, at FROM tx_run_rows "
                       f"WHERE run IN ({marks}) AND hash > ?{'' if end is None else ' AND hash <= ?'} ORDER BY hash",
                       (run, *inputs, cursor, *(() if end is None else (end,)))).rowcount
    if end is not None:
        db.execute("UPDATE tx_merge SET run = ?, level = ?, inputs = ?, cursor = ?, size = ?",
                   (run, level, ",".join(map(str, inputs)), end, size))
        return False
    # The last slice: the new run in its inputs' place, in this same transaction.
    blobs = [bytes(b) for (b,) in db.execute(f"SELECT bits FROM tx_run_filters WHERE run IN ({marks})", inputs)]
    if len(blobs) == len(inputs) and all(_bits(b) is not None for b in blobs):
        merged = reduce(or_, (int.from_bytes(b, "little") for b in blobs)).to_bytes(8 * FILTER_WORDS, "little")
        db.execute("INSERT INTO tx_run_filters (run, bits) VALUES (?, ?)", (run, merged))
        new_bits[run] = _bits(merged)
    else:
        new_bits[run] = None  # an input without one (an older version's run): neither has the merged run
    db.execute(f"INSERT INTO tx_runs (run, level, first_block, last_block, size) SELECT ?, ?, MIN(first_block), "
               f"MAX(last_block), ? FROM tx_runs WHERE run IN ({marks})", (run, level, size, *inputs))
    db.execute(f"DELETE FROM tx_runs WHERE run IN ({marks})", inputs)
    db.execute(f"DELETE FROM tx_run_filters WHERE run IN ({marks})", inputs)
    db.executemany("INSERT INTO tx_dead_runs (run) VALUES (?)", [(r,) for r in inputs])
    db.execute("UPDATE tx_merge SET run = NULL, level = NULL, inputs = NULL, cursor = NULL, size = NULL")
    return True


def _migrate(db: sqlite3.Connection) -> None:
    """An older version's hash-keyed tx_index (every sealed block's transactions) becomes one top-level
    run through the newest block (with its filter), once, in one transaction (a crash leaves the old
    table whole)."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tx_index'").fetchone() is None:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        run = _take_run(db)
        # The old table is keyed by hash: read in order, the rows append.
        db.execute("INSERT INTO tx_run_rows (run, hash, at) SELECT ?, hash, (block_number << ?) | idx FROM tx_index "
                   "ORDER BY hash", (run, _SHIFT))
        (size,) = db.execute("SELECT COUNT(*) FROM tx_run_rows WHERE run = ?", (run,)).fetchone()
        (head,) = db.execute("SELECT MAX(number) FROM blocks").fetchone()
        if head is not None:
            db.execute("INSERT INTO tx_runs (run, level, first_block, last_block, size) VALUES (?, ?, 0, ?, ?)",
                       (run, TOP_LEVEL, int(head), int(size)))
            bits = _filter(bytes(h) for (h,) in db.execute("SELECT hash FROM tx_index"))
            db.execute("INSERT INTO tx_run_filters (run, bits) VALUES (?, ?)", (run, bits.tobytes()))
        db.execute("DELETE FROM tx_recent")  # (none: an older version had no such table)
        db.execute("DROP TABLE tx_index")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
