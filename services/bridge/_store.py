"""The bridge's store: deposits, withdrawals and the events of their changes, in the worker's
SQLite file (WAL, synchronous=FULL: services.runtime.Storage).

Every status change is written with its event row in one commit, so the event log (what
SubscribeEvents replays) and the records never disagree, even across kill -9. An event row holds
the record as it was after that change (JSON), so a replay shows each step, not only the last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

from protocol import WithdrawalMessage
from services.runtime import Storage

from ._records import DepositRecord, DepositStatus, WithdrawalOutcome, WithdrawalRecord, WithdrawalStatus

Kind = Literal["deposit", "withdrawal"]
DEPOSIT: Final = "deposit"
WITHDRAWAL: Final = "withdrawal"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS deposits (
    id INTEGER PRIMARY KEY, deposit_hash BLOB NOT NULL UNIQUE, source_hash BLOB NOT NULL,
    portal_index INTEGER NOT NULL, sender BLOB NOT NULL, recipient BLOB NOT NULL, value TEXT NOT NULL,
    status INTEGER NOT NULL, l1_block INTEGER NOT NULL, l1_block_hash BLOB NOT NULL, l1_tx_hash BLOB NOT NULL,
    confirmed_at INTEGER NOT NULL, l2_block INTEGER, updated_at INTEGER NOT NULL, traceparent TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deposits_sender ON deposits (sender, id);
CREATE INDEX IF NOT EXISTS deposits_recipient ON deposits (recipient, id);
CREATE INDEX IF NOT EXISTS deposits_tx ON deposits (l1_tx_hash);
CREATE INDEX IF NOT EXISTS deposits_status ON deposits (status);
CREATE TABLE IF NOT EXISTS withdrawals (
    id INTEGER PRIMARY KEY, withdrawal_hash BLOB NOT NULL UNIQUE, nonce INTEGER NOT NULL UNIQUE,
    sender BLOB NOT NULL, target BLOB NOT NULL, value TEXT NOT NULL, gas_limit TEXT NOT NULL, data BLOB NOT NULL,
    status INTEGER NOT NULL, l2_block INTEGER NOT NULL, l2_tx_hash BLOB NOT NULL, output_index INTEGER,
    proven_l1_tx_hash BLOB NOT NULL, prover BLOB NOT NULL, proven_at INTEGER NOT NULL, matures_at INTEGER NOT NULL,
    finalized_l1_tx_hash BLOB NOT NULL, outcome INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    traceparent TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS withdrawals_sender ON withdrawals (sender, id);
CREATE INDEX IF NOT EXISTS withdrawals_target ON withdrawals (target, id);
CREATE INDEX IF NOT EXISTS withdrawals_tx ON withdrawals (l2_tx_hash);
CREATE INDEX IF NOT EXISTS withdrawals_status ON withdrawals (status);
CREATE TABLE IF NOT EXISTS events (sequence INTEGER PRIMARY KEY, kind TEXT NOT NULL, hash BLOB NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_hash ON events (hash);
CREATE TABLE IF NOT EXISTS tracked (l1_tx_hash BLOB PRIMARY KEY, traceparent TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_DEPOSIT_COLUMNS: Final = ("deposit_hash", "source_hash", "portal_index", "sender", "recipient", "value", "status",
                           "l1_block", "l1_block_hash", "l1_tx_hash", "confirmed_at", "l2_block", "updated_at",
                           "traceparent")
_WITHDRAWAL_COLUMNS: Final = ("withdrawal_hash", "nonce", "sender", "target", "value", "gas_limit", "data", "status",
                              "l2_block", "l2_tx_hash", "output_index", "proven_l1_tx_hash", "prover", "proven_at",
                              "matures_at", "finalized_l1_tx_hash", "outcome", "updated_at", "traceparent")
Record = DepositRecord | WithdrawalRecord


def _deposit_row(d: DepositRecord) -> tuple[Any, ...]:
    return (d.deposit_hash, d.source_hash, d.portal_index, d.sender, d.to, str(d.value), int(d.status), d.l1_block,
            d.l1_block_hash, d.l1_tx_hash, d.confirmed_at_l1_block, d.l2_block, d.updated_at, d.traceparent)


def _deposit_of(row: Sequence[Any]) -> DepositRecord:
    (h, source, index, sender, to, value, status, l1_block, l1_block_hash, l1_tx, confirmed, l2_block, updated,
     traceparent) = row
    return DepositRecord(bytes(h), bytes(source), index, bytes(sender), bytes(to), int(value), DepositStatus(status),
                         l1_block, bytes(l1_block_hash), bytes(l1_tx), confirmed, l2_block, updated, traceparent)


def _withdrawal_row(w: WithdrawalRecord) -> tuple[Any, ...]:
    m = w.message
    return (w.withdrawal_hash, m.nonce, m.sender, m.target, str(m.value), str(m.gas_limit), m.data, int(w.status),
            w.l2_block, w.l2_tx_hash, w.output_index, w.proven_l1_tx_hash, w.prover, w.proven_at, w.matures_at,
            w.finalized_l1_tx_hash, int(w.outcome), w.updated_at, w.traceparent)


def _withdrawal_of(row: Sequence[Any]) -> WithdrawalRecord:
    (h, nonce, sender, target, value, gas_limit, data, status, l2_block, l2_tx, output_index, proven_tx, prover,
     proven_at, matures_at, finalized_tx, outcome, updated, traceparent) = row
    message = WithdrawalMessage(nonce, bytes(sender), bytes(target), int(value), int(gas_limit), bytes(data))
    return WithdrawalRecord(message, bytes(h), WithdrawalStatus(status), l2_block, bytes(l2_tx), output_index,
                            bytes(proven_tx), bytes(prover), proven_at, matures_at, bytes(finalized_tx),
                            WithdrawalOutcome(outcome), updated, traceparent)


def _to_json(row: Sequence[Any]) -> str:
    return json.dumps([{"b": v.hex()} if isinstance(v, bytes) else v for v in row])


def _from_json(body: str) -> list[Any]:
    return [bytes.fromhex(v["b"]) if isinstance(v, dict) else v for v in json.loads(body)]


class BridgeStore:
    """The bridge's tables on one connection (the event loop's thread only: each write is one
    short commit). :meth:`changed` wakes whoever waits for the next recorded change."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._db: sqlite3.Connection = storage.connection
        self._db.executescript(_SCHEMA)
        self._changed = asyncio.Event()

    # --- writes: each record with its event, one commit ------------------------------------------

    def put(self, records: Iterable[Record], now: int | None = None) -> list[Record]:
        """Insert or update each record (``updated_at`` stamped now) with one event row each, in one
        commit; the stamped records."""
        stamp = int(time.time()) if now is None else now
        written: list[Record] = []
        with self._storage.transaction() as db:
            for record in records:
                record = dataclasses.replace(record, updated_at=stamp)
                if isinstance(record, DepositRecord):
                    row, kind, key = _deposit_row(record), DEPOSIT, record.deposit_hash
                    self._upsert(db, "deposits", _DEPOSIT_COLUMNS, row)
                else:
                    row, kind, key = _withdrawal_row(record), WITHDRAWAL, record.withdrawal_hash
                    self._upsert(db, "withdrawals", _WITHDRAWAL_COLUMNS, row)
                db.execute("INSERT INTO events (kind, hash, body) VALUES (?, ?, ?)", (kind, key, _to_json(row)))
                written.append(record)
        if written:
            self._wake()
        return written

    @staticmethod
    def _upsert(db: sqlite3.Connection, table: str, columns: Sequence[str], row: Sequence[Any]) -> None:
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}",
                   row)

    def forget_withdrawals_from(self, nonce: int) -> list[WithdrawalRecord]:
        """The sequencer's chain rewound below ``nonce``: its messages from there were never sealed
        for good. Deletes them (they come back, maybe different, as the chain grows again)."""
        gone = [_withdrawal_of(r) for r in self._db.execute(
            f"SELECT {', '.join(_WITHDRAWAL_COLUMNS)} FROM withdrawals WHERE nonce >= ?", (nonce,))]
        with self._storage.transaction() as db:
            db.execute("DELETE FROM withdrawals WHERE nonce >= ?", (nonce,))
        return gone

    def track(self, l1_tx_hash: bytes, traceparent: str) -> list[DepositRecord]:
        """Remember a client's trace for the deposits of ``l1_tx_hash`` (those seen later get it
        when seen); the ones already stored take it now, without a status change (no event)."""
        with self._storage.transaction() as db:
            db.execute("INSERT INTO tracked VALUES (?, ?) ON CONFLICT (l1_tx_hash) DO UPDATE SET "
                       "traceparent = excluded.traceparent", (l1_tx_hash, traceparent))
            db.execute("UPDATE deposits SET traceparent = ? WHERE l1_tx_hash = ?", (traceparent, l1_tx_hash))
        return self.deposits_of_tx(l1_tx_hash)

    def tracked(self, l1_tx_hash: bytes) -> str:
        row = self._db.execute("SELECT traceparent FROM tracked WHERE l1_tx_hash = ?", (l1_tx_hash,)).fetchone()
        return str(row[0]) if row else ""

    def get_meta(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def set_meta(self, key: str, value: int) -> None:
        with self._storage.transaction() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       (key, value))

    # --- reads -----------------------------------------------------------------------------------

    def deposit(self, deposit_hash: bytes) -> DepositRecord | None:
        found = self._deposits("deposit_hash = ?", (deposit_hash,))
        return found[0] if found else None

    def deposits_of_tx(self, l1_tx_hash: bytes) -> list[DepositRecord]:
        # A deposit reorged out and mined again is another deposit of the same transaction: the live one first.
        return self._deposits(f"l1_tx_hash = ? ORDER BY status = {int(DepositStatus.REORGED)}, portal_index, id",
                              (l1_tx_hash,))

    def deposits_in(self, statuses: Iterable[DepositStatus]) -> list[DepositRecord]:
        wanted = [int(s) for s in statuses]
        return self._deposits(f"status IN ({', '.join('?' * len(wanted))}) ORDER BY id", wanted)

    def list_deposits(self, who: bytes, before: int | None, limit: int) -> tuple[list[DepositRecord], int | None]:
        """``who``'s deposits (sender or recipient), newest first, below id ``before``; and the
        id to continue below (None: no more)."""
        return self._page("deposits", _DEPOSIT_COLUMNS, _deposit_of, "(sender = ? OR recipient = ?)", who, before,
                          limit)

    def withdrawal(self, withdrawal_hash: bytes) -> WithdrawalRecord | None:
        found = self._withdrawals("withdrawal_hash = ?", (withdrawal_hash,))
        return found[0] if found else None

    def withdrawal_of_tx(self, l2_tx_hash: bytes) -> WithdrawalRecord | None:
        found = self._withdrawals("l2_tx_hash = ? ORDER BY nonce LIMIT 1", (l2_tx_hash,))
        return found[0] if found else None

    def withdrawals_in(self, statuses: Iterable[WithdrawalStatus]) -> list[WithdrawalRecord]:
        wanted = [int(s) for s in statuses]
        return self._withdrawals(f"status IN ({', '.join('?' * len(wanted))}) ORDER BY nonce", wanted)

    def list_withdrawals(self, who: bytes, before: int | None, limit: int
                         ) -> tuple[list[WithdrawalRecord], int | None]:
        return self._page("withdrawals", _WITHDRAWAL_COLUMNS, _withdrawal_of, "(sender = ? OR target = ?)", who,
                          before, limit)

    def message_hashes(self, count: int) -> list[bytes]:
        """The hashes of messages 0..count-1 in nonce order (fewer if the store has fewer)."""
        rows = self._db.execute("SELECT withdrawal_hash FROM withdrawals WHERE nonce < ? ORDER BY nonce", (count,))
        return [bytes(r[0]) for r in rows]

    def next_nonce(self) -> int:
        row = self._db.execute("SELECT MAX(nonce) FROM withdrawals").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def events(self, from_sequence: int, limit: int) -> list[tuple[int, Record]]:
        """Recorded changes with a sequence >= ``from_sequence``, oldest first: (sequence, the record then)."""
        rows = self._db.execute("SELECT sequence, kind, body FROM events WHERE sequence >= ? ORDER BY sequence "
                                "LIMIT ?", (from_sequence, limit)).fetchall()
        out: list[tuple[int, Record]] = []
        for sequence, kind, body in rows:
            row = _from_json(body)
            out.append((int(sequence), _deposit_of(row) if kind == DEPOSIT else _withdrawal_of(row)))
        return out

    def last_sequence(self) -> int:
        row = self._db.execute("SELECT MAX(sequence) FROM events").fetchone()
        return 0 if row[0] is None else int(row[0])

    # --- change notification ---------------------------------------------------------------------

    def changed(self) -> asyncio.Event:
        """Set at the next recorded change: take it before reading, then wait on it."""
        return self._changed

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _deposits(self, where: str, args: Sequence[Any]) -> list[DepositRecord]:
        query = f"SELECT {', '.join(_DEPOSIT_COLUMNS)} FROM deposits WHERE {where}"
        return [_deposit_of(r) for r in self._db.execute(query, tuple(args))]

    def _withdrawals(self, where: str, args: Sequence[Any]) -> list[WithdrawalRecord]:
        query = f"SELECT {', '.join(_WITHDRAWAL_COLUMNS)} FROM withdrawals WHERE {where}"
        return [_withdrawal_of(r) for r in self._db.execute(query, tuple(args))]

    def _page(self, table: str, columns: Sequence[str], make: Any, who_clause: str, who: bytes, before: int | None,
              limit: int) -> tuple[list[Any], int | None]:
        bound = "" if before is None else " AND id < ?"
        args: tuple[Any, ...] = (who, who) if before is None else (who, who, before)
        rows = self._db.execute(f"SELECT id, {', '.join(columns)} FROM {table} WHERE {who_clause}{bound} "
                                f"ORDER BY id DESC LIMIT ?", (*args, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [make(r[1:]) for r in rows], (int(rows[-1][0]) if more else None)
