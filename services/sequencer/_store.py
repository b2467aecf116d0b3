"""The sequencer's durable state: what it acknowledged, what it sealed, and the account snapshot.

Everything is written by one thread (a single-worker executor) through one connection, in
grouped transactions: a commit costs an fsync (~0.1-4 ms here), so acknowledgements wait for
the next group commit instead of paying one each. Reads that must not wait behind a commit
(receipts, blocks) use a second connection; WAL lets it read while the writer writes.

Restart loads the account snapshot of the last sealed block: O(accounts), never a replay of the
chain. Acknowledged transactions not yet sealed are not here but in the pending log
(``_pending_log``); a transaction gets its row here when it is sealed or dropped.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

T = TypeVar("T")

#: Transaction status as stored; the numbers match l2node.sequencer.v1.ReceiptStatus.
PENDING: Final = 1
SEALED: Final = 2
SAFE: Final = 3
FINALIZED: Final = 4
DROPPED: Final = 5

#: WAL pages between automatic checkpoints (SQLite's default: 1,000).
WAL_CHECKPOINT_PAGES: Final = 10_000

#: Fate of a forced transaction (the forced table's state column).
FORCED_WAITING: Final = 0
FORCED_INCLUDED: Final = 1
FORCED_SKIPPED: Final = 2

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    header TEXT NOT NULL               -- canonical JSON of the header fields
);
CREATE TABLE IF NOT EXISTS txs (
    hash BLOB PRIMARY KEY,
    raw BLOB NOT NULL,
    sender BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    status INTEGER NOT NULL,
    seq INTEGER NOT NULL,              -- arrival order, kept across restarts (FCFS ties)
    block_number INTEGER,
    idx INTEGER,
    gas_used INTEGER,
    price TEXT,                        -- effective gas price, decimal wei
    drop_reason TEXT
);
-- Partial indexes: a transaction is in txs_pending only while PENDING and in txs_in_blocks only
-- once sealed, so acknowledging one adds one entry, sealing it moves it from one to the other, and
-- SAFE/FINALIZED touch neither (full indexes on (status, seq) and (block_number, idx) cost ~15%
-- more writing per transaction). Databases made before them are migrated here, once.
DROP INDEX IF EXISTS txs_by_status;
DROP INDEX IF EXISTS txs_by_block;
CREATE INDEX IF NOT EXISTS txs_pending ON txs (seq) WHERE status = {PENDING};
CREATE INDEX IF NOT EXISTS txs_in_blocks ON txs (block_number, idx) WHERE block_number IS NOT NULL;
CREATE TABLE IF NOT EXISTS accounts (
    address BLOB PRIMARY KEY,
    slot INTEGER NOT NULL UNIQUE,      -- creation order = the account tree's leaf order
    nonce INTEGER NOT NULL,
    balance TEXT NOT NULL              -- decimal wei: balances exceed SQLite's 64-bit integers
);
CREATE TABLE IF NOT EXISTS batches (    -- batches seen on L1 (the inbox follower's record)
    l1_tx_hash BLOB PRIMARY KEY,
    inbox_index INTEGER NOT NULL,
    first_block INTEGER NOT NULL,
    last_block INTEGER NOT NULL,
    l1_block INTEGER NOT NULL,
    l1_block_hash BLOB NOT NULL,
    status INTEGER NOT NULL            -- SEALED (= on L1, unsafe), SAFE or FINALIZED
);
CREATE INDEX IF NOT EXISTS batches_by_block ON batches (first_block, last_block);
CREATE TABLE IF NOT EXISTS forced (     -- the inbox's forced-inclusion queue, as seen at safe depth
    inbox_index INTEGER PRIMARY KEY,
    raw BLOB NOT NULL,
    l1_block INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,  -- 0 waiting, 1 included, 2 skipped by rule
    block_number INTEGER,
    note TEXT
);
CREATE TABLE IF NOT EXISTS deposits (   -- deposits from the L1 portal, as seen at safe depth
    portal_index INTEGER PRIMARY KEY,
    source_hash BLOB NOT NULL UNIQUE,
    tx_hash BLOB NOT NULL UNIQUE,      -- its L2 transaction hash (services.sequencer._execution.Deposit.hash)
    recipient BLOB NOT NULL,
    mint TEXT NOT NULL,                -- decimal wei
    l1_block INTEGER NOT NULL,
    block_number INTEGER               -- the L2 block that minted it; NULL while due
);
CREATE TABLE IF NOT EXISTS messages (
    nonce INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""


class DropRow(NamedTuple):
    """A dropped transaction's row: its receipt says DROPPED with ``reason``."""

    hash: bytes
    raw: bytes
    sender: bytes
    nonce: int
    #: The pending log entry it was (a later entry with the same hash was sent again).
    seq: int
    reason: str


class SealedTx(NamedTuple):
    """A sealed transaction's row, in the order it is bound (one is built per transaction)."""

    hash: bytes
    raw: bytes
    sender: bytes
    nonce: int
    seq: int
    block_number: int
    idx: int
    gas_used: int
    #: The effective gas price in decimal (the column is text: a price may exceed 64 bits).
    price: str


@dataclass(frozen=True, slots=True)
class BatchRow:
    l1_tx_hash: bytes
    inbox_index: int
    first_block: int
    last_block: int
    l1_block: int
    l1_block_hash: bytes
    status: int = SEALED


@dataclass(frozen=True, slots=True)
class StoredTx:
    hash: bytes
    raw: bytes
    sender: bytes
    nonce: int
    status: int
    seq: int
    block_number: int | None
    index: int | None
    gas_used: int | None
    effective_gas_price: int | None
    drop_reason: str | None


class SequencerStore:
    def __init__(self, writer: sqlite3.Connection, path: Path) -> None:
        self._db = writer
        self._db.executescript(_SCHEMA)
        # Checkpoint the WAL every ~40 MB rather than SQLite's ~4 MB: the transactions' hash index
        # takes random inserts, so most commits dirty the same index pages again, and a rarer
        # checkpoint copies each of them once instead of once per 4 MB (~2 us less writer CPU per
        # transaction here). Durability is the same; a crash leaves at most that much WAL to read.
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA query_only=ON")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sequencer-store")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer thread, inside one transaction."""

        def in_txn() -> T:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

        return await asyncio.get_running_loop().run_in_executor(self._executor, in_txn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._reader.close()

    # -- writes (called through run) ----------------------------------------------------------

    @staticmethod
    def seal_block(
        db: sqlite3.Connection, number: int, block_hash: bytes, header_json: str, txs: Sequence[SealedTx],
        new_accounts: Sequence[tuple[bytes, int, int, str]], changed_accounts: Sequence[tuple[int, str, bytes]],
        messages: Iterable[tuple[int, bytes, bytes]],
    ) -> None:
        """The block, its transactions' rows, and the account snapshot: all or nothing.

        ``new_accounts``: (address, slot, nonce, balance) of accounts the block created;
        ``changed_accounts``: (nonce, balance, address) of accounts already on disk (balances in
        decimal).
        """
        db.execute("INSERT INTO blocks (number, hash, header) VALUES (?, ?, ?)", (number, block_hash, header_json))
        # The first row of most transactions. Not of one dropped earlier and sent again, nor of
        # a PENDING row an older version wrote: those rows become this one.
        write_rows(
            db, "INSERT INTO txs (hash, raw, sender, nonce, status, seq, block_number, idx, gas_used, price) VALUES ",
            f"(?, ?, ?, ?, {SEALED}, ?, ?, ?, ?, ?)", " ON CONFLICT(hash) DO UPDATE SET status = excluded.status, "
            "block_number = excluded.block_number, idx = excluded.idx, gas_used = excluded.gas_used, "
            "price = excluded.price, drop_reason = NULL", txs)
        write_rows(db, "INSERT INTO accounts (address, slot, nonce, balance) VALUES ", "(?, ?, ?, ?)",
                   " ON CONFLICT(address) DO UPDATE SET nonce = excluded.nonce, balance = excluded.balance",
                   new_accounts)
        if write_rows(db, "UPDATE accounts SET nonce = v.column1, balance = v.column2 FROM (VALUES ", "(?, ?, ?)",
                      ") AS v WHERE accounts.address = v.column3", changed_accounts) != len(changed_accounts):
            raise RuntimeError("an account the snapshot should hold is missing")
        db.executemany(
            "INSERT INTO messages (nonce, hash, block_number, body) VALUES (?, ?, ?, ?)",
            [(n, h, number, body) for n, h, body in messages],
        )

    @staticmethod
    def drop(db: sqlite3.Connection, dropped: Sequence[DropRow]) -> None:
        """Receipts that say DROPPED, with the reason. A sealed transaction is never demoted."""
        write_rows(db, "INSERT INTO txs (hash, raw, sender, nonce, seq, drop_reason, status) VALUES ",
                   f"(?, ?, ?, ?, ?, ?, {DROPPED})", " ON CONFLICT(hash) DO UPDATE SET status = excluded.status, "
                   "seq = excluded.seq, drop_reason = excluded.drop_reason "
                   f"WHERE txs.status IN ({PENDING}, {DROPPED})", dropped)

    @staticmethod
    def delete_pending(db: sqlite3.Connection) -> None:
        """Forget the PENDING rows an older version kept here (they are in the pending log now)."""
        db.execute(f"DELETE FROM txs WHERE status = {PENDING}")

    @staticmethod
    def record_batch(db: sqlite3.Connection, batch: BatchRow) -> None:
        db.execute(
            "INSERT INTO batches (l1_tx_hash, inbox_index, first_block, last_block, l1_block, l1_block_hash, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(l1_tx_hash) DO UPDATE SET inbox_index = excluded.inbox_index, "
            "l1_block = excluded.l1_block, l1_block_hash = excluded.l1_block_hash, "
            # Seen again after a restart (the follower resumes at the finalized head): never demote.
            "status = MAX(batches.status, excluded.status)",
            (batch.l1_tx_hash, batch.inbox_index, batch.first_block, batch.last_block, batch.l1_block,
             batch.l1_block_hash, SEALED),
        )

    @staticmethod
    def remove_batch(db: sqlite3.Connection, l1_tx_hash: bytes) -> tuple[int, int] | None:
        """An L1 reorg took the batch out: forget it; its transactions are merely SEALED again."""
        row = db.execute("SELECT first_block, last_block FROM batches WHERE l1_tx_hash = ?", (l1_tx_hash,)).fetchone()
        if row is None:
            return None
        db.execute("DELETE FROM batches WHERE l1_tx_hash = ?", (l1_tx_hash,))
        db.execute("UPDATE txs SET status = ? WHERE block_number BETWEEN ? AND ? AND status IN (?, ?)",
                   (SEALED, row[0], row[1], SAFE, FINALIZED))
        return int(row[0]), int(row[1])

    @staticmethod
    def promote_batch(db: sqlite3.Connection, l1_tx_hash: bytes, status: int) -> None:
        """The batch's L1 block reached safe (or finalized) depth; so did its transactions."""
        row = db.execute("SELECT first_block, last_block FROM batches WHERE l1_tx_hash = ?", (l1_tx_hash,)).fetchone()
        if row is None:
            return
        db.execute("UPDATE batches SET status = ? WHERE l1_tx_hash = ? AND status < ?", (status, l1_tx_hash, status))
        db.execute("UPDATE txs SET status = ? WHERE block_number BETWEEN ? AND ? AND status >= ? AND status < ?",
                   (status, row[0], row[1], SEALED, status))

    @staticmethod
    def record_forced(db: sqlite3.Connection, rows: Iterable[tuple[int, bytes, int]]) -> None:
        db.executemany("INSERT OR IGNORE INTO forced (inbox_index, raw, l1_block) VALUES (?, ?, ?)", rows)

    @staticmethod
    def settle_forced(db: sqlite3.Connection, block_number: int, outcomes: Iterable[tuple[int, int, str]]) -> None:
        """(inbox index, FORCED_INCLUDED or FORCED_SKIPPED, note) for each forced tx the block decided."""
        db.executemany("UPDATE forced SET state = ?, block_number = ?, note = ? WHERE inbox_index = ?",
                       [(state, block_number, note, index) for index, state, note in outcomes])

    @staticmethod
    def record_deposits(db: sqlite3.Connection, rows: Iterable[tuple[int, bytes, bytes, bytes, int, int]]) -> None:
        """(portal index, source hash, L2 tx hash, recipient, mint, L1 block) of deposits seen at safe depth."""
        db.executemany("INSERT OR IGNORE INTO deposits (portal_index, source_hash, tx_hash, recipient, mint, l1_block) "
                       "VALUES (?, ?, ?, ?, ?, ?)", [(i, s, h, r, str(m), b) for i, s, h, r, m, b in rows])

    @staticmethod
    def settle_deposits(db: sqlite3.Connection, block_number: int, indexes: Iterable[int]) -> None:
        db.executemany("UPDATE deposits SET block_number = ? WHERE portal_index = ?",
                       [(block_number, i) for i in indexes])

    @staticmethod
    def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # -- reads (any thread-safe moment; the reader sees committed data only) ------------------

    def meta(self, key: str) -> str | None:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def tx(self, tx_hash: bytes) -> StoredTx | None:
        row = self._reader.execute(
            "SELECT hash, raw, sender, nonce, status, seq, block_number, idx, gas_used, price, drop_reason "
            "FROM txs WHERE hash = ?", (tx_hash,)).fetchone()
        return None if row is None else _stored(row)

    def settled(self, hashes: Sequence[bytes]) -> dict[bytes, tuple[int, int]]:
        """hash -> (status, seq) of those of ``hashes`` that have a row: sealed (or later), or dropped."""
        found: dict[bytes, tuple[int, int]] = {}
        for start in range(0, len(hashes), _MAX_ROWS):
            chunk = hashes[start : start + _MAX_ROWS]
            marks = ", ".join("?" * len(chunk))
            rows = self._reader.execute(
                f"SELECT hash, status, seq FROM txs WHERE hash IN ({marks}) AND status != {PENDING}", chunk)
            found.update((bytes(h), (int(status), int(seq))) for h, status, seq in rows)
        return found

    def pending(self) -> list[StoredTx]:
        """PENDING rows: only an older version wrote them (now: the pending log); migrated at start."""
        rows = self._reader.execute(
            "SELECT hash, raw, sender, nonce, status, seq, block_number, idx, gas_used, price, drop_reason "
            f"FROM txs WHERE status = {PENDING} ORDER BY seq").fetchall()  # a literal: txs_pending's condition
        return [_stored(r) for r in rows]

    def max_seq(self) -> int:
        row = self._reader.execute("SELECT COALESCE(MAX(seq), 0) FROM txs").fetchone()
        return int(row[0])

    def block_header(self, number: int) -> str | None:
        row = self._reader.execute("SELECT header FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def block_tx_hashes(self, number: int) -> list[bytes]:
        rows = self._reader.execute("SELECT hash FROM txs WHERE block_number = ? ORDER BY idx", (number,))
        return [bytes(r[0]) for r in rows]

    def block_raw_txs(self, number: int) -> list[bytes]:
        rows = self._reader.execute("SELECT raw FROM txs WHERE block_number = ? ORDER BY idx", (number,))
        return [bytes(r[0]) for r in rows]

    def batch_of_block(self, number: int) -> BatchRow | None:
        row = self._reader.execute(
            "SELECT l1_tx_hash, inbox_index, first_block, last_block, l1_block, l1_block_hash, status FROM batches "
            "WHERE first_block <= ? AND last_block >= ? ORDER BY l1_block DESC LIMIT 1", (number, number)).fetchone()
        if row is None:
            return None
        return BatchRow(bytes(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), bytes(row[5]), int(row[6]))

    def posted_upto(self) -> int:
        """The last L2 block some batch on L1 carries (0: none yet; genesis is never posted)."""
        row = self._reader.execute("SELECT COALESCE(MAX(last_block), 0) FROM batches").fetchone()
        return int(row[0])

    def batch_head(self, status: int) -> int:
        """The newest L2 block every block up to which is in a batch of at least ``status``."""
        rows = self._reader.execute("SELECT first_block, last_block FROM batches WHERE status >= ? "
                                    "ORDER BY first_block", (status,)).fetchall()
        head = 0
        for first, last in rows:
            if first > head + 1:
                break
            head = max(head, int(last))
        return head

    def deposits_due(self, l1_origin: int) -> list[tuple[int, bytes, bytes, int]]:
        """Unminted deposits from L1 blocks up to ``l1_origin``: (index, source hash, to, mint)."""
        rows = self._reader.execute("SELECT portal_index, source_hash, recipient, mint FROM deposits "
                                    "WHERE block_number IS NULL AND l1_block <= ? ORDER BY portal_index",
                                    (l1_origin,)).fetchall()
        return [(int(i), bytes(s), bytes(r), int(m)) for i, s, r, m in rows]

    def block_deposit_sources(self, number: int) -> list[tuple[bytes, bytes, int]]:
        rows = self._reader.execute("SELECT source_hash, recipient, mint FROM deposits WHERE block_number = ? "
                                    "ORDER BY portal_index", (number,)).fetchall()
        return [(bytes(s), bytes(r), int(m)) for s, r, m in rows]

    def deposit(self, tx_hash: bytes) -> tuple[bytes, int, int | None, int] | None:
        """A deposit by its L2 hash: (recipient, mint, the L2 block that minted it, its index there)."""
        row = self._reader.execute("SELECT recipient, mint, block_number, portal_index FROM deposits "
                                   "WHERE tx_hash = ?", (tx_hash,)).fetchone()
        if row is None:
            return None
        index = None
        if row[2] is not None:  # deposits lead their block, in portal order
            index = self._reader.execute("SELECT COUNT(*) FROM deposits WHERE block_number = ? AND portal_index < ?",
                                         (row[2], row[3])).fetchone()[0]
        return bytes(row[0]), int(row[1]), None if row[2] is None else int(row[2]), 0 if index is None else int(index)

    def forced_due(self, l1_origin: int) -> list[tuple[int, bytes]]:
        """Waiting forced transactions from L1 blocks up to ``l1_origin``, in queue order."""
        rows = self._reader.execute("SELECT inbox_index, raw FROM forced WHERE state = 0 AND l1_block <= ? "
                                    "ORDER BY inbox_index", (l1_origin,)).fetchall()
        return [(int(i), bytes(r)) for i, r in rows]

    def latest_block_number(self) -> int | None:
        row = self._reader.execute("SELECT MAX(number) FROM blocks").fetchone()
        return None if row[0] is None else int(row[0])

    def accounts(self) -> list[tuple[bytes, int, int]]:
        """Every account of the last sealed block, in creation (slot) order."""
        return [(bytes(a), int(n), int(b)) for a, n, b in self._reader.execute(
            "SELECT address, nonce, balance FROM accounts ORDER BY slot")]

    def messages(self) -> list[tuple[int, bytes]]:
        return [(int(n), bytes(h)) for n, h in self._reader.execute("SELECT nonce, hash FROM messages ORDER BY nonce")]


#: Rows per statement, at most (a power of two).
_MAX_ROWS: Final = 256


def write_rows(db: sqlite3.Connection, head: str, row: str, tail: str, rows: Sequence[Sequence[Any]]) -> int:
    """``head row, row, ... tail`` with ``rows`` bound in order, in statements of up to _MAX_ROWS
    rows; the number of rows changed.

    Not executemany: sqlite3 releases the GIL around every step, and executemany steps once per
    row, so under load each row waits to take the GIL back (an executemany of 256 rows took
    3-4x its CPU time in wall time). Statements of power-of-two sizes keep the prepared ones
    few (sqlite3 caches 128 per connection).
    """
    changed = 0
    start, end = 0, len(rows)
    while start < end:
        count = min(_MAX_ROWS, 1 << ((end - start).bit_length() - 1))
        params = list(chain.from_iterable(rows[start : start + count]))
        changed += db.execute(_statement(head, row, tail, count), params).rowcount
        start += count
    return changed


@functools.cache
def _statement(head: str, row: str, tail: str, count: int) -> str:
    return head + ", ".join([row] * count) + tail


def _stored(row: Any) -> StoredTx:
    return StoredTx(
        hash=bytes(row[0]), raw=bytes(row[1]), sender=bytes(row[2]), nonce=int(row[3]), status=int(row[4]),
        seq=int(row[5]), block_number=row[6], index=row[7], gas_used=row[8],
        effective_gas_price=None if row[9] is None else int(row[9]), drop_reason=row[10],
    )
