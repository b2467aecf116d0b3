"""The channels worker's store: channels, their states, invoices and events, in the worker's
SQLite file (WAL, synchronous=FULL: services.runtime.Storage).

Crash safety rests on two rules the schema enforces. A state row is committed (durable) before
this node's signature of it leaves the process: the caller stores, then sends. And ``states`` has
UNIQUE (channel_id, sequence): once this node signed a state at a sequence, a different state at
that sequence cannot be stored, so it cannot be signed (:meth:`ChannelsStore.put_state` raises
:class:`SequenceTaken`). A state this node signed whose counter-signature never came is kept, and
re-sent as it is (never re-signed differently) until the peer accepts or refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from services.runtime import Storage

from ._records import (
    ChannelRecord,
    ChannelStatus,
    EventRecord,
    ForwardRecord,
    ForwardStatus,
    HtlcTuple,
    InvoiceRecord,
    InvoiceStatus,
    PaymentRecord,
    PaymentStatus,
    RouteHop,
    StateRecord,
)

#: A write that goes into the same commit as a co-signed state (a forward's or a payment's new status).
Effect = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True, slots=True)
class Meaning:
    """What one change of a co-signed state means to this node: its event (kind, payment hash,
    amount) and the writes that go with it."""

    kind: str
    payment_hash: bytes
    amount: int
    effects: Sequence[Effect] = ()

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS channels (
    id INTEGER PRIMARY KEY, channel_id BLOB NOT NULL UNIQUE, a BLOB NOT NULL, b BLOB NOT NULL,
    nonce INTEGER NOT NULL, we_are_a INTEGER NOT NULL, peer TEXT NOT NULL, status INTEGER NOT NULL,
    amount_a TEXT NOT NULL, amount_b TEXT NOT NULL, open_tx BLOB NOT NULL, close_tx BLOB NOT NULL,
    closes_at INTEGER NOT NULL, reason TEXT NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS states (
    channel_id BLOB NOT NULL REFERENCES channels (channel_id), sequence INTEGER NOT NULL,
    balance_a TEXT NOT NULL, balance_b TEXT NOT NULL, htlcs TEXT NOT NULL, sig_a BLOB NOT NULL,
    sig_b BLOB NOT NULL, refused INTEGER NOT NULL DEFAULT 0, payment_hash BLOB NOT NULL DEFAULT x'',
    preimage BLOB NOT NULL DEFAULT x'', request BLOB NOT NULL DEFAULT x'', steps BLOB NOT NULL DEFAULT x'',
    UNIQUE (channel_id, sequence));
CREATE TABLE IF NOT EXISTS invoices (
    payment_hash BLOB PRIMARY KEY, preimage BLOB NOT NULL, amount TEXT NOT NULL, memo TEXT NOT NULL,
    status INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    sequence INTEGER PRIMARY KEY, kind TEXT NOT NULL, channel_id BLOB NOT NULL, payment_hash BLOB NOT NULL,
    amount TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS forwards (
    in_channel BLOB NOT NULL, payment_hash BLOB NOT NULL, amount TEXT NOT NULL, expiry INTEGER NOT NULL,
    onward TEXT NOT NULL, status INTEGER NOT NULL, out_channel BLOB NOT NULL, preimage BLOB NOT NULL,
    reason TEXT NOT NULL, message TEXT NOT NULL, updated_at INTEGER NOT NULL,
    PRIMARY KEY (in_channel, payment_hash));
CREATE INDEX IF NOT EXISTS forwards_status ON forwards (status) WHERE status != 5;
CREATE INDEX IF NOT EXISTS forwards_sent ON forwards (out_channel, payment_hash) WHERE status = 2;
CREATE TABLE IF NOT EXISTS payments (
    payment_hash BLOB PRIMARY KEY, payee BLOB NOT NULL, amount TEXT NOT NULL, status INTEGER NOT NULL,
    fee TEXT NOT NULL, route TEXT NOT NULL, channel_id BLOB NOT NULL, attempts INTEGER NOT NULL,
    preimage BLOB NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS parts (
    channel_id BLOB NOT NULL, sequence INTEGER NOT NULL, idx INTEGER NOT NULL, amount TEXT NOT NULL,
    payment_hash BLOB NOT NULL, preimage BLOB NOT NULL, request_key TEXT NOT NULL,
    PRIMARY KEY (channel_id, sequence, idx));
CREATE INDEX IF NOT EXISTS parts_payment ON parts (payment_hash) WHERE payment_hash != x'';
CREATE INDEX IF NOT EXISTS parts_request_key ON parts (request_key) WHERE request_key != '';
CREATE TABLE IF NOT EXISTS announcements (
    channel_id BLOB NOT NULL, from_a INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (channel_id, from_a));
"""
#: The indexes dropped are a store's from before forwards_sent: an index over every forward (or
#: payment) keyed by the payment hash had each write dirty a random page for the commit to write.
#: forwards_sent holds the HTLCs in flight only (a few pages); payments_channel and events_channel
#: had no reader (events are read by sequence), and cost an entry at every write.
_INDEXES: Final = """
CREATE INDEX IF NOT EXISTS states_payment ON states (payment_hash) WHERE payment_hash != x'';
DROP INDEX IF EXISTS forwards_out;
DROP INDEX IF EXISTS forwards_waiting;
DROP INDEX IF EXISTS payments_channel;
DROP INDEX IF EXISTS events_channel;
"""
#: Payment and forward rows kept in memory (ChannelsStore._payments, _forwards): more than the
#: HTLC slots of a few channels, so those in flight are kept.
_KEPT_PAYMENTS: Final = 8192
_KEPT_FORWARDS: Final = 8192
#: The connection's page cache (KiB).
_CACHE_KIB: Final = 64 * 1024
_CHANNEL_COLUMNS: Final = ("channel_id", "a", "b", "nonce", "we_are_a", "peer", "status", "amount_a", "amount_b",
                           "open_tx", "close_tx", "closes_at", "reason", "updated_at")


class SequenceTaken(Exception):
    """This node already holds (so may have signed) a different state at that sequence."""

    def __init__(self, existing: StateRecord) -> None:
        super().__init__(f"channel 0x{existing.channel_id.hex()} already has a state at sequence {existing.sequence}")
        self.existing = existing


def _channel_of(row: Sequence[Any]) -> ChannelRecord:
    (cid, a, b, nonce, we_are_a, peer, status, amount_a, amount_b, open_tx, close_tx, closes_at, reason,
     updated_at) = row
    return ChannelRecord(bytes(cid), bytes(a), bytes(b), nonce, bool(we_are_a), peer, ChannelStatus(status),
                         int(amount_a), int(amount_b), bytes(open_tx), bytes(close_tx), closes_at, reason, updated_at)


@functools.lru_cache(maxsize=16384)
def _htlc_json(htlc: HtlcTuple) -> str:
    f, amount, h, expiry = htlc
    return json.dumps([f, str(amount), h.hex(), expiry])


def _htlcs_json(htlcs: tuple[HtlcTuple, ...]) -> str:
    """A state's HTLCs as stored: json.dumps of the list, each HTLC's text made once (an HTLC in
    flight is in every state written until it resolves)."""
    return "[" + ", ".join(map(_htlc_json, htlcs)) + "]"


def _htlcs_of(text: str) -> tuple[HtlcTuple, ...]:
    return tuple((bool(f), int(amount), bytes.fromhex(h), int(expiry)) for f, amount, h, expiry in json.loads(text))


def _state_of(row: Sequence[Any]) -> StateRecord:
    cid, sequence, balance_a, balance_b, htlcs, sig_a, sig_b = row
    return StateRecord(bytes(cid), sequence + _OFFSET, int(balance_a), int(balance_b), _htlcs_of(htlcs), bytes(sig_a),
                       bytes(sig_b))


_STATE_COLUMNS: Final = "channel_id, sequence, balance_a, balance_b, htlcs, sig_a, sig_b"
#: The same, of a states table joined as ``s``.
_JOINED_STATE_COLUMNS: Final = ", ".join(f"s.{c}" for c in _STATE_COLUMNS.split(", "))
#: A sequence is a uint64 (a final state's is 2**64 - 1) and SQLite's INTEGER a signed 64-bit one:
#: stored as sequence - 2**63, which keeps the order.
_OFFSET: Final = 2**63


def _enc(sequence: int) -> int:
    return sequence - _OFFSET


def _above(latest: StateRecord | None) -> tuple[str, int]:
    """The sequences above ``latest`` (every one if None), as an SQL comparison and its bound:
    strictly above it, since a final state's sequence + 1 is beyond SQLite's INTEGER."""
    return (">=", _enc(0)) if latest is None else (">", _enc(latest.sequence))


class ChannelsStore:
    """The worker's tables on one connection (the event loop's thread only: each write is one
    short commit, durable once :meth:`durable` returns). :meth:`changed` wakes whoever waits for the next event."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._db = storage.connection
        # Every state is O(HTLCs in flight) (kilobytes with a hundred), so under load the working set
        # outgrows SQLite's default 2 MB page cache and reads go back to the file.
        self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(states)")}
        if "request" not in columns:  # a store from before multi-hop
            self._db.execute("ALTER TABLE states ADD COLUMN request BLOB NOT NULL DEFAULT x''")
        if "steps" not in columns:  # a store from before chained updates (U5)
            self._db.execute("ALTER TABLE states ADD COLUMN steps BLOB NOT NULL DEFAULT x''")
        self._db.executescript(_INDEXES)
        self._changed = asyncio.Event()
        self._latest: dict[bytes, StateRecord] = {}
        #: The highest sequence stored per channel, as read or written (asked at every chain and refusal).
        self._highest: dict[bytes, int] = {}
        #: Forwards written since ``take_touched`` last ran (the resolver's work list), each as written
        #: (None: read it again).
        self._touched: dict[tuple[bytes, bytes], ForwardRecord | None] = {}
        #: Payments written since the last commit's notification, and who watches which (``watch_payment``).
        self._touched_payments: set[bytes] = set()
        self._payment_watchers: dict[bytes, list[Callable[[], None]]] = {}
        #: Rows as this node last wrote or read them, so the hot path reads no SQL: every channel (by
        #: id order; None: read them all again, as after each channel write: those are rare), and
        #: the forwards written or read last (at most _KEPT_FORWARDS), with those waiting on an
        #: outgoing channel by (out_channel, payment_hash). Forgotten whenever a transaction raises (its
        #: writes undone), so they never hold a rolled-back write.
        self._channels: dict[bytes, ChannelRecord] | None = None
        self._forwards: dict[tuple[bytes, bytes], ForwardRecord] = {}
        #: The row each kept forward was written as (with the record it was made of): its next
        #: write compares against it, not a row made again.
        self._forward_rows: dict[tuple[bytes, bytes], tuple[ForwardRecord, tuple[Any, ...]]] = {}
        self._forwarded: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}
        #: And the payments written or read last (at most _KEPT_PAYMENTS: a payer reads its own
        #: several times while it is in flight).
        self._payments: dict[bytes, PaymentRecord] = {}
        #: Whether any payment row exists (None: look): a node that never paid (a forwarding hop)
        #: reads no payment row for the HTLCs it forwards.
        self._any_payment: bool | None = None
        #: And the open invoices made last (the payee reads each as its HTLC arrives, H5).
        self._invoices: dict[bytes, InvoiceRecord] = {}
        #: H6: the FORWARDED forwards by (out_channel, in_channel) (None: count them again).
        self._waiting: dict[tuple[bytes, bytes], int] | None = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            with self._storage.transaction() as db:
                yield db
        except BaseException:
            self._channels = None
            self._latest.clear()
            self._highest.clear()
            self._forwards.clear()
            self._forward_rows.clear()
            self._forwarded.clear()
            self._payments.clear()
            self._any_payment = None
            self._invoices.clear()
            self._waiting = None
            self._touched = dict.fromkeys(self._touched)
            raise

    def _keep_forward(self, f: ForwardRecord) -> None:
        key = (f.in_channel, f.payment_hash)
        self._forget_forward(key)
        self._forwards[key] = f
        if f.status == ForwardStatus.FORWARDED:
            self._forwarded[(f.out_channel, f.payment_hash)] = key
        if len(self._forwards) > _KEPT_FORWARDS:  # the oldest written or read goes
            self._forget_forward(next(iter(self._forwards)))

    def _forget_forward(self, key: tuple[bytes, bytes]) -> None:
        self._forward_rows.pop(key, None)
        old = self._forwards.pop(key, None)
        if old is not None and old.status == ForwardStatus.FORWARDED:
            self._forwarded.pop((old.out_channel, old.payment_hash), None)

    async def durable(self) -> None:
        """Every write made so far is on disk when this returns: await it before anything this
        node signed or acknowledged leaves the process (the worker's storage syncs in groups)."""
        await self._storage.durable()

    def sync_soon(self) -> None:
        """Start making every write so far durable now, for a message that will ask for it next
        (``durable``): its wait is then what is left of an fsync already running, not a whole one
        started when it asks."""
        self._storage.sync_now()

    def changed(self) -> asyncio.Event:
        """An event set at the next recorded event (take it before reading, then wait on it)."""
        return self._changed

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Every write inside in one durable commit (each method's own commit becomes a savepoint
        of it: one that raises undoes its own writes only)."""
        with self._transaction():
            yield

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        touched, self._touched_payments = self._touched_payments, set()
        for payment_hash in touched:
            for woken in self._payment_watchers.pop(payment_hash, ()):
                woken()

    # --- channels -----------------------------------------------------------------------------

    def add_channel(self, channel: ChannelRecord, funding: StateRecord, event: str) -> None:
        """A new channel with its funding state (sequence 0), in one commit."""
        with self._transaction() as db:
            db.execute(f"INSERT INTO channels ({', '.join(_CHANNEL_COLUMNS)}) VALUES "
                       f"({', '.join('?' * len(_CHANNEL_COLUMNS))})", _channel_row(channel))
            self._channels = None
            self._insert_state(db, funding)
            self._event(db, event, channel.channel_id)
        self._notify()

    def update_channel(self, channel: ChannelRecord, event: str = "") -> ChannelRecord:
        channel = _stamped(channel)
        with self._transaction() as db:
            db.execute(f"UPDATE channels SET {', '.join(c + ' = ?' for c in _CHANNEL_COLUMNS[1:])} "
                       "WHERE channel_id = ?", (*_channel_row(channel)[1:], channel.channel_id))
            self._channels = None
            if event:
                self._event(db, event, channel.channel_id)
        if event:
            self._notify()
        return channel

    def _all_channels(self) -> dict[bytes, ChannelRecord]:
        if self._channels is None:
            rows = self._db.execute(f"SELECT {', '.join(_CHANNEL_COLUMNS)} FROM channels ORDER BY id").fetchall()
            self._channels = {bytes(r[0]): _channel_of(r) for r in rows}
        return self._channels

    def channel(self, channel_id: bytes) -> ChannelRecord | None:
        return self._all_channels().get(channel_id)

    def channels(self, before: int | None = None, limit: int = 50) -> tuple[list[ChannelRecord], int | None]:
        """Newest first; the page token of the next page (None: no more)."""
        rows = self._db.execute(f"SELECT id, {', '.join(_CHANNEL_COLUMNS)} FROM channels WHERE id < ? "
                                "ORDER BY id DESC LIMIT ?", (before or 2**62, limit + 1)).fetchall()
        more = rows[limit - 1][0] if len(rows) > limit else None
        return [_channel_of(r[1:]) for r in rows[:limit]], more

    def channels_with(self, peer_key: bytes) -> list[ChannelRecord]:
        return [c for c in self._all_channels().values() if peer_key in (c.a, c.b)]

    def channels_in(self, statuses: Sequence[ChannelStatus]) -> list[ChannelRecord]:
        return [c for c in self._all_channels().values() if c.status in statuses]

    # --- states -------------------------------------------------------------------------------

    def _cosigned(self, state: StateRecord) -> None:
        """``state`` written with both signatures (in a transaction: one that raises forgets it,
        ``_transaction``): the latest co-signed state if newer than the one kept. A state of one
        signature leaves the latest as it is; with none kept, the next read finds it."""
        kept = self._latest.get(state.channel_id)
        if kept is not None and state.sequence > kept.sequence:
            self._latest[state.channel_id] = state

    def _insert_state(self, db: sqlite3.Connection, state: StateRecord, payment_hash: bytes = b"",
                      request: bytes = b"", steps: bytes = b"") -> None:
        if state.cosigned:
            self._cosigned(state)
        if state.sequence > self._highest.get(state.channel_id, state.sequence):
            self._highest[state.channel_id] = state.sequence
        db.execute(f"INSERT INTO states ({_STATE_COLUMNS}, payment_hash, request, steps) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (state.channel_id, _enc(state.sequence), str(state.balance_a), str(state.balance_b),
                    _htlcs_json(state.htlcs), state.sig_a, state.sig_b, payment_hash, request, steps))

    def state(self, channel_id: bytes, sequence: int) -> StateRecord | None:
        row = self._db.execute(f"SELECT {_STATE_COLUMNS} FROM states WHERE channel_id = ? AND sequence = ?",
                               (channel_id, _enc(sequence))).fetchone()
        return _state_of(row) if row else None

    def put_state(self, state: StateRecord, payment_hash: bytes = b"", request: bytes = b"",
                  effects: Sequence[Effect] = (), steps: bytes = b"") -> StateRecord:
        """Store ``state`` (durable when this returns) with the invoice it pays and the proposal
        that carries it (``request``, and the unsigned steps of its chain before it, ``steps``: a
        serialized ProposeBatchRequest; re-sent as they are), or add signatures to the same state
        already stored; the stored row. SequenceTaken if a different state holds that sequence."""
        with self._transaction() as db:
            row = db.execute(f"SELECT {_STATE_COLUMNS} FROM states WHERE channel_id = ? AND sequence = ?",
                             (state.channel_id, _enc(state.sequence))).fetchone()
            for effect in effects:
                effect(db)
            if row is None:  # one write of the row (it is kilobytes): its request and steps with it
                self._insert_state(db, state, payment_hash, request, steps)
                return state
            existing = _state_of(row)
            if not existing.same_content(state):
                raise SequenceTaken(existing)
            merged = StateRecord(existing.channel_id, existing.sequence, existing.balance_a, existing.balance_b,
                                 existing.htlcs, existing.sig_a or state.sig_a, existing.sig_b or state.sig_b)
            if merged != existing:
                if merged.cosigned:
                    self._cosigned(merged)
                db.execute("UPDATE states SET sig_a = ?, sig_b = ? WHERE channel_id = ? AND sequence = ?",
                           (merged.sig_a, merged.sig_b, state.channel_id, _enc(state.sequence)))
            return merged

    def latest_cosigned(self, channel_id: bytes) -> StateRecord | None:
        """The newest state both signed. Kept in memory once read outside a transaction (a state
        is O(HTLCs) to decode, and it is read on every payment and every forward), and replaced
        by a newer one as it is written (``_cosigned``); a transaction that raises forgets it, so
        a rolled-back write never leaves it stale."""
        cached = self._latest.get(channel_id)
        if cached is not None:
            return cached
        row = self._db.execute(f"SELECT {_STATE_COLUMNS} FROM states WHERE channel_id = ? AND sig_a != x'' "
                               "AND sig_b != x'' ORDER BY sequence DESC LIMIT 1", (channel_id,)).fetchone()
        latest = _state_of(row) if row else None
        if latest is not None and not self._db.in_transaction:
            self._latest[channel_id] = latest
        return latest

    def pending(self, channel_id: bytes) -> StateRecord | None:
        """The newest state above the latest co-signed one that holds only one signature and was not
        refused: signed by this node and not yet accepted (re-sent as is), or none."""
        op, bound = _above(self.latest_cosigned(channel_id))
        row = self._db.execute(f"SELECT {_STATE_COLUMNS} FROM states WHERE channel_id = ? AND sequence {op} ? "
                               "AND refused = 0 AND (sig_a = x'' OR sig_b = x'') ORDER BY sequence DESC LIMIT 1",
                               (channel_id, bound)).fetchone()
        return _state_of(row) if row else None

    def pendings(self, channel_id: bytes) -> list[StateRecord]:
        """Every state above the latest co-signed one that holds only this node's signature and
        was not refused, by sequence: signed by this node and not yet answered (re-sent as is)."""
        op, bound = _above(self.latest_cosigned(channel_id))
        rows = self._db.execute(f"SELECT {_STATE_COLUMNS} FROM states WHERE channel_id = ? AND sequence {op} ? "
                                "AND refused = 0 AND (sig_a = x'' OR sig_b = x'') ORDER BY sequence",
                                (channel_id, bound)).fetchall()
        return [_state_of(r) for r in rows]

    def put_parts(self, state: StateRecord, parts: Sequence[tuple[int, bytes, str]]) -> None:
        """The payments (amount, invoice hash, the client's request_id) a state this node proposed
        makes, with it (inside the batch that stores the state)."""
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO parts (channel_id, sequence, idx, amount, payment_hash, preimage, "
                           "request_key) VALUES (?, ?, ?, ?, ?, x'', ?)",
                           [(state.channel_id, _enc(state.sequence), i, str(a), h, k)
                            for i, (a, h, k) in enumerate(parts)])

    def parts_of(self, channel_id: bytes, sequence: int) -> list[tuple[int, bytes, str]]:
        rows = self._db.execute("SELECT amount, payment_hash, request_key FROM parts WHERE channel_id = ? AND "
                                "sequence = ? ORDER BY idx", (channel_id, _enc(sequence))).fetchall()
        return [(int(a), bytes(h), k) for a, h, k in rows]

    def record_sent(self, state: StateRecord, parts: Sequence[tuple[int, bytes]], preimages: Sequence[bytes]) -> None:
        """The co-signed state of this node's payments, each payment's event and the preimages
        its invoices revealed (the proofs of payment), in one commit."""
        with self._transaction() as db:
            self.put_state(state)
            db.executemany("UPDATE parts SET preimage = ? WHERE channel_id = ? AND sequence = ? AND idx = ?",
                           [(p, state.channel_id, _enc(state.sequence), i) for i, p in enumerate(preimages) if p])
            for amount, payment_hash in parts:
                self._event(db, "PAYMENT_SENT", state.channel_id, payment_hash, amount)
        self._notify()

    def record_received(self, state: StateRecord, parts: Sequence[tuple[int, bytes]]) -> None:
        """The co-signed state of payments to this node, each one's event, its invoices paid."""
        with self._transaction() as db:
            self.put_state(state)
            for amount, payment_hash in parts:
                if payment_hash:
                    self._invoice_paid(db, payment_hash)
                self._event(db, "PAYMENT_RECEIVED", state.channel_id, payment_hash, amount)
        self._notify()

    def paid(self, payment_hash: bytes) -> tuple[StateRecord, bytes] | None:
        """The co-signed state in which this node paid the invoice ``payment_hash``, and its preimage."""
        return self.paid_many((payment_hash,)).get(payment_hash)

    def paid_many(self, payment_hashes: Sequence[bytes]) -> dict[bytes, tuple[StateRecord, bytes]]:
        """``paid`` of several invoices in one read: those this node paid, by payment hash."""
        rows = self._cosigned_parts("payment_hash", "x''", payment_hashes, ", p.preimage", "AND p.preimage != x''")
        return {bytes(r[0]): (_state_of(r[1:-1]), bytes(r[-1])) for r in rows}

    def by_request_key(self, request_key: str) -> StateRecord | None:
        """The co-signed state of the direct payment the client asked for with ``request_key``."""
        return self.by_request_keys((request_key,)).get(request_key)

    def by_request_keys(self, request_keys: Sequence[str]) -> dict[str, StateRecord]:
        """``by_request_key`` of several in one read: those paid, by request key."""
        return {str(r[0]): _state_of(r[1:]) for r in self._cosigned_parts("request_key", "''", request_keys)}

    def _cosigned_parts(self, column: str, empty: str, values: Sequence[object], more: str = "", where: str = ""
                        ) -> list[Any]:
        """(the part's ``column``, its state's columns, ``more``) of each part whose ``column`` is one of
        ``values`` in a co-signed state; ``column != empty`` restated, so SQLite uses its partial index."""
        if not values:
            return []
        return self._db.execute(f"SELECT p.{column}, {_JOINED_STATE_COLUMNS}{more} FROM parts p "
                                "JOIN states s ON s.channel_id = p.channel_id AND s.sequence = p.sequence "
                                f"WHERE p.{column} IN ({', '.join('?' * len(values))}) AND p.{column} != {empty} "
                                f"{where} AND s.sig_a != x'' AND s.sig_b != x''", tuple(values)).fetchall()

    def payment_of(self, channel_id: bytes, sequence: int) -> bytes:
        """The payment hash of the invoice a state this node proposed pays (b"": none)."""
        row = self._db.execute("SELECT payment_hash FROM states WHERE channel_id = ? AND sequence = ?",
                               (channel_id, _enc(sequence))).fetchone()
        return bytes(row[0]) if row else b""

    def request_of(self, channel_id: bytes, sequence: int) -> bytes:
        """The proposal (a serialized ProposeRequest) that carried this node's state at ``sequence``."""
        row = self._db.execute("SELECT request FROM states WHERE channel_id = ? AND sequence = ?",
                               (channel_id, _enc(sequence))).fetchone()
        return bytes(row[0]) if row else b""

    def steps_of(self, channel_id: bytes, sequence: int) -> bytes:
        """The unsigned steps before this node's state at ``sequence`` in its chain (a serialized
        ProposeBatchRequest; b"": the state is an update of its own)."""
        row = self._db.execute("SELECT steps FROM states WHERE channel_id = ? AND sequence = ?",
                               (channel_id, _enc(sequence))).fetchone()
        return bytes(row[0]) if row else b""

    def refuse(self, channel_id: bytes, sequence: int) -> None:
        """The peer refused this node's state at ``sequence``: never re-sent, its sequence stays taken."""
        with self._transaction() as db:  # a commit durable() counts
            db.execute("UPDATE states SET refused = 1 WHERE channel_id = ? AND sequence = ?",
                       (channel_id, _enc(sequence)))

    def highest_sequence(self, channel_id: bytes) -> int:
        """The highest sequence stored (so possibly signed by this node) in the channel; -1: none."""
        kept = self._highest.get(channel_id)
        if kept is not None:
            return kept
        row = self._db.execute("SELECT MAX(sequence) FROM states WHERE channel_id = ?", (channel_id,)).fetchone()
        highest = -1 if row[0] is None else int(row[0]) + _OFFSET
        if highest >= 0:
            self._highest[channel_id] = highest
        return highest

    def states(self, channel_id: bytes) -> list[StateRecord]:
        """Every state held of the channel, by sequence."""
        rows = self._db.execute(f"SELECT {_STATE_COLUMNS} FROM states WHERE channel_id = ? ORDER BY sequence",
                                (channel_id,)).fetchall()
        return [_state_of(r) for r in rows]

    def record_chain(self, state: StateRecord, meanings: Sequence[Meaning]) -> StateRecord:
        """The co-signed state of a chain of HTLC changes (U5) and what each change means (its
        event, its invoice, its ``effects``), in one commit: the state row written once, whatever
        the chain's length (it is O(HTLCs) to write and to read)."""
        with self._transaction() as db:
            row = db.execute(f"SELECT {_STATE_COLUMNS} FROM states WHERE channel_id = ? AND sequence = ?",
                             (state.channel_id, _enc(state.sequence))).fetchone()
            if row is None:
                self._insert_state(db, state)
            else:
                existing = _state_of(row)
                if not existing.same_content(state):
                    raise SequenceTaken(existing)
                merged = StateRecord(existing.channel_id, existing.sequence, existing.balance_a, existing.balance_b,
                                     existing.htlcs, state.sig_a or existing.sig_a, state.sig_b or existing.sig_b)
                if merged.cosigned:
                    self._cosigned(merged)
                db.execute("UPDATE states SET sig_a = ?, sig_b = ? WHERE channel_id = ? AND sequence = ?",
                           (merged.sig_a, merged.sig_b, state.channel_id, _enc(state.sequence)))
            self._write_meanings(db, state.channel_id, meanings)
        self._notify()
        return state

    def apply_meanings(self, channel_id: bytes, meanings: Sequence[Meaning]) -> None:
        """What several changes in ``channel_id`` mean (their effects and events), no state with
        them, in one commit: one transaction, not a savepoint and an event statement each."""
        with self._transaction() as db:
            self._write_meanings(db, channel_id, meanings)
        self._notify()

    def _write_meanings(self, db: sqlite3.Connection, channel_id: bytes, meanings: Sequence[Meaning]) -> None:
        at = int(time.time())
        for meaning in meanings:
            for effect in meaning.effects:
                effect(db)
            if meaning.kind == "PAYMENT_RECEIVED" and meaning.payment_hash:
                self._invoice_paid(db, meaning.payment_hash)
        # The events in one statement, in the changes' order (the effects write no event).
        db.executemany(_EVENT_INSERT, [(m.kind, channel_id, m.payment_hash, str(m.amount), at) for m in meanings])

    # --- invoices -----------------------------------------------------------------------------

    def add_invoice(self, invoice: InvoiceRecord) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO invoices (payment_hash, preimage, amount, memo, status, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (invoice.payment_hash, invoice.preimage, str(invoice.amount),
                                                     invoice.memo, int(invoice.status), invoice.created_at))
            self._event(db, "INVOICE_CREATED", b"", invoice.payment_hash, invoice.amount)
            self._keep_invoice(invoice)
        self._notify()

    def invoice(self, payment_hash: bytes) -> InvoiceRecord | None:
        kept = self._invoices.get(payment_hash)
        if kept is not None:
            return kept
        row = self._db.execute("SELECT payment_hash, preimage, amount, memo, status, created_at FROM invoices "
                               "WHERE payment_hash = ?", (payment_hash,)).fetchone()
        if row is None:
            return None
        h, preimage, amount, memo, status, created = row
        return InvoiceRecord(bytes(h), bytes(preimage), int(amount), memo, InvoiceStatus(status), created)

    def _keep_invoice(self, invoice: InvoiceRecord) -> None:
        self._invoices[invoice.payment_hash] = invoice
        if len(self._invoices) > _KEPT_PAYMENTS:  # the oldest made goes
            del self._invoices[next(iter(self._invoices))]

    def _invoice_paid(self, db: sqlite3.Connection, payment_hash: bytes) -> None:
        db.execute("UPDATE invoices SET status = ? WHERE payment_hash = ?", (int(InvoiceStatus.PAID), payment_hash))
        self._invoices.pop(payment_hash, None)  # read again if asked (paid once: rarely)

    # --- forwards and payments (multi-hop) -----------------------------------------------------

    def forward_effect(self, f: ForwardRecord, *, new: bool = False) -> Effect:
        """Write ``f`` (inserted, or its row updated in place): for put_state's and record_chain's
        ``effects``. ``new``: an HTLC just offered to this node, whose row is not read if not kept:
        one of that channel and payment hash cannot be in flight (C6: one hash a direction), so a
        row it may have is DONE (a failed attempt's) and is replaced whole; the read found nothing
        for nearly every one (a statement a payment at each hop)."""
        stamped = replace(f, updated_at=int(time.time()))
        key = (f.in_channel, f.payment_hash)
        row = _forward_row(stamped)

        def write(db: sqlite3.Connection) -> None:
            # Kept in memory while in flight: no read; its row as written, not made again.
            old = self._forwards.get(key) if new else self.forward(*key)
            written = self._forward_rows.get(key)
            _write_row(db, "forwards", _FORWARD_NAMES, 2, row, None if old is None else
                       written[1] if written is not None and written[0] is old else _forward_row(old))
            if self._waiting is not None:  # H6's count of FORWARDED ones, kept as it changes
                for held, step in ((old, -1), (stamped, 1)):
                    if held is not None and held.status == ForwardStatus.FORWARDED:
                        pair = (held.out_channel, held.in_channel)
                        self._waiting[pair] = self._waiting.get(pair, 0) + step
            self._keep_forward(stamped)
            self._forward_rows[key] = (stamped, row)
            self._touched[key] = stamped
        return write

    def touch(self, in_channel: bytes, payment_hash: bytes) -> None:
        """Have the next ``take_touched`` read this forward again."""
        self._touched[(in_channel, payment_hash)] = None

    def resolving(self, channel_id: bytes) -> bool:
        """Whether a forward written since ``take_touched`` last ran will settle or fail its incoming
        HTLC, in ``channel_id`` (the payee's, as it accepts the HTLC: its settle is an update it is
        about to propose there)."""
        return any(f is not None and f.in_channel == channel_id and f.status in (ForwardStatus.SETTLING,
                                                                                 ForwardStatus.FAILING)
                   for f in self._touched.values())

    def take_touched(self) -> list[ForwardRecord]:
        """The forwards written since the last call, as stored now (a rolled-back write's too: it
        is read again, as it stands)."""
        touched, self._touched = self._touched, {}
        found = (f or self.forward(*key) for key, f in touched.items())
        return [f for f in found if f is not None]

    def payment_effect(self, p: PaymentRecord) -> Effect:
        now = int(time.time())
        stamped = replace(p, created_at=p.created_at or now, updated_at=now)
        row = _payment_row(stamped)
        touched = self._touched_payments

        def write(db: sqlite3.Connection) -> None:
            old = self._payments.get(p.payment_hash)  # kept while in flight; else replaced whole, unread
            _write_row(db, "payments", _PAYMENT_NAMES, 1, row, None if old is None else _payment_row(old))
            self._any_payment = True
            self._keep_payment(stamped)
            touched.add(p.payment_hash)
        return write

    def watch_payment(self, payment_hash: bytes, woken: Callable[[], None]) -> None:
        """``woken()`` once, after the next commit that writes the payment's row (watch, then read
        it: no write is missed): a payer's call is woken once by a commit of many of its payments,
        not once per payment, and not by every change of the store."""
        self._payment_watchers.setdefault(payment_hash, []).append(woken)

    def unwatch_payment(self, payment_hash: bytes, woken: Callable[[], None]) -> None:
        """No longer ``woken()`` for that payment (a payer that stopped waiting)."""
        watchers = self._payment_watchers.get(payment_hash)
        if watchers is not None and woken in watchers:
            watchers.remove(woken)
            if not watchers:
                del self._payment_watchers[payment_hash]

    def apply(self, effects: Sequence[Effect], event: str = "", channel_id: bytes = b"", payment_hash: bytes = b"",
              amount: int = 0) -> None:
        """``effects`` (and an event) in one commit."""
        with self._transaction() as db:
            for effect in effects:
                effect(db)
            if event:
                self._event(db, event, channel_id, payment_hash, amount)
        self._notify()

    def forward(self, in_channel: bytes, payment_hash: bytes) -> ForwardRecord | None:
        kept = self._forwards.get((in_channel, payment_hash))
        if kept is not None:
            return kept
        row = self._db.execute(f"SELECT {_FORWARD_COLUMNS} FROM forwards WHERE in_channel = ? AND payment_hash = ?",
                               (in_channel, payment_hash)).fetchone()
        if row is None:
            return None
        found = _forward_of(row)
        self._keep_forward(found)
        return found

    def forward_out(self, out_channel: bytes, payment_hash: bytes) -> ForwardRecord | None:
        """The forward whose HTLC went on over ``out_channel`` (waiting there)."""
        kept = self._forwards.get(self._forwarded.get((out_channel, payment_hash), (b"", b"")))
        if kept is not None:
            return kept
        if not any(n for (out, _), n in self._waiting_counts().items() if out == out_channel):
            return None  # H6's count: no forward waits on out_channel (a payer's own HTLCs: no read)
        # status = 2 (FORWARDED) written out, so SQLite proves the partial index forwards_sent applies.
        row = self._db.execute(f"SELECT {_FORWARD_COLUMNS} FROM forwards WHERE out_channel = ? AND payment_hash = ? "
                               "AND status = 2", (out_channel, payment_hash)).fetchone()
        if row is None:
            return None
        found = _forward_of(row)
        self._keep_forward(found)
        return found

    def forwards_to_do(self) -> list[ForwardRecord]:
        """Every forward not DONE, oldest first."""
        # Through the partial index (the planner may pick a scan of every forward ever made: the
        # resolver asks every _RETRY_S).
        rows = self._db.execute(f"SELECT {_FORWARD_COLUMNS} FROM forwards INDEXED BY forwards_status WHERE status != 5 "
                                "ORDER BY rowid").fetchall()
        return [_forward_of(r) for r in rows]

    def forwarded_over(self, out_channel: bytes, incoming: bytes) -> int:
        """How many HTLCs from ``incoming`` wait on ``out_channel`` (the slot share, H6): counted in
        memory as forwards are written, read again after a transaction that raised."""
        return self._waiting_counts().get((out_channel, incoming), 0)

    def _waiting_counts(self) -> dict[tuple[bytes, bytes], int]:
        if self._waiting is None:
            # status = 2 (FORWARDED) written out, so SQLite proves the partial index forwards_sent applies.
            rows = self._db.execute("SELECT out_channel, in_channel, COUNT(*) FROM forwards WHERE status = 2 "
                                    "GROUP BY out_channel, in_channel").fetchall()
            self._waiting = {(bytes(o), bytes(i)): int(n) for o, i, n in rows}
        return self._waiting

    def payment(self, payment_hash: bytes) -> PaymentRecord | None:
        kept = self._payments.get(payment_hash)
        if kept is not None:
            return kept
        if self._any_payment is None:
            self._any_payment = self._db.execute("SELECT 1 FROM payments LIMIT 1").fetchone() is not None
        if not self._any_payment:
            return None
        row = self._db.execute(f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE payment_hash = ?",
                               (payment_hash,)).fetchone()
        if row is None:
            return None
        found = _payment_of(row)
        self._keep_payment(found)
        return found

    def payment_on(self, channel_id: bytes, payment_hash: bytes) -> PaymentRecord | None:
        """This node's own payment whose current attempt's first HTLC is in ``channel_id``."""
        found = self.payment(payment_hash)  # one row per payment hash
        return found if found is not None and found.channel_id == channel_id else None

    def _keep_payment(self, p: PaymentRecord) -> None:
        self._payments.pop(p.payment_hash, None)
        self._payments[p.payment_hash] = p
        if len(self._payments) > _KEPT_PAYMENTS:  # the oldest written or read goes
            del self._payments[next(iter(self._payments))]

    def put_announcement(self, channel_id: bytes, from_a: bool, body: bytes) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO announcements (channel_id, from_a, body) VALUES (?, ?, ?)",
                       (channel_id, int(from_a), body))

    def announcement_bodies(self) -> list[bytes]:
        return [bytes(r[0]) for r in self._db.execute("SELECT body FROM announcements ORDER BY rowid")]

    def forget_announcements(self, channel_id: bytes) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM announcements WHERE channel_id = ?", (channel_id,))

    # --- events -------------------------------------------------------------------------------

    @staticmethod
    def _event(db: sqlite3.Connection, kind: str, channel_id: bytes, payment_hash: bytes = b"",
               amount: int = 0) -> None:
        db.execute(_EVENT_INSERT, (kind, channel_id, payment_hash, str(amount), int(time.time())))

    def events(self, from_sequence: int, limit: int) -> list[EventRecord]:
        rows = self._db.execute("SELECT sequence, kind, channel_id, payment_hash, amount, at FROM events "
                                "WHERE sequence >= ? ORDER BY sequence LIMIT ?", (from_sequence, limit)).fetchall()
        return [EventRecord(s, k, bytes(c), bytes(h), int(a), at) for s, k, c, h, a, at in rows]

    def last_event(self) -> int:
        row = self._db.execute("SELECT MAX(sequence) FROM events").fetchone()
        return 0 if row[0] is None else int(row[0])


_EVENT_INSERT: Final = "INSERT INTO events (kind, channel_id, payment_hash, amount, at) VALUES (?, ?, ?, ?, ?)"
_FORWARD_NAMES: Final = ("in_channel", "payment_hash", "amount", "expiry", "onward", "status", "out_channel",
                         "preimage", "reason", "message", "updated_at")
_FORWARD_COLUMNS: Final = ", ".join(_FORWARD_NAMES)
_PAYMENT_NAMES: Final = ("payment_hash", "payee", "amount", "status", "fee", "route", "channel_id", "attempts",
                         "preimage", "reason", "message", "created_at", "updated_at")
_PAYMENT_COLUMNS: Final = ", ".join(_PAYMENT_NAMES)


def _forward_row(f: ForwardRecord) -> tuple[Any, ...]:
    return (f.in_channel, f.payment_hash, str(f.amount), f.expiry, _route_json(f.onward), int(f.status),
            f.out_channel, f.preimage, f.reason, f.message, f.updated_at)


def _payment_row(p: PaymentRecord) -> tuple[Any, ...]:
    return (p.payment_hash, p.payee, str(p.amount), int(p.status), str(p.fee), _route_json(p.route), p.channel_id,
            p.attempts, p.preimage, p.reason, p.message, p.created_at, p.updated_at)


def _write_row(db: sqlite3.Connection, table: str, names: tuple[str, ...], keys: int, row: tuple[Any, ...],
               old: tuple[Any, ...] | None) -> None:
    """Write ``row`` (its first ``keys`` values the primary key) over ``old``, the row as stored
    (None: none): only the columns that changed, in place. INSERT OR REPLACE deletes the row and
    inserts it again, every index entry with it: a forward's and a payment's indexes are keyed by
    the payment hash, so each write dirtied a random index page for the commit to write."""
    if old is not None:
        changed = tuple(i for i in range(keys, len(row)) if row[i] != old[i])
        if not changed:
            return
        if db.execute(_update_sql(table, names, keys, changed),
                      (*(row[i] for i in changed), *row[:keys])).rowcount == 1:
            return
    db.execute(_insert_sql(table, names), row)


@functools.lru_cache(maxsize=256)
def _update_sql(table: str, names: tuple[str, ...], keys: int, changed: tuple[int, ...]) -> str:
    return (f"UPDATE {table} SET {', '.join(names[i] + ' = ?' for i in changed)} "
            f"WHERE {' AND '.join(n + ' = ?' for n in names[:keys])}")


@functools.lru_cache(maxsize=16)
def _insert_sql(table: str, names: tuple[str, ...]) -> str:
    return f"INSERT OR REPLACE INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


@functools.lru_cache(maxsize=16384)
def _route_json(hops: tuple[RouteHop, ...]) -> str:
    """A route as stored, made once per route: a forward's row is written at each of its four
    steps (and a payment's twice) with the same ``onward``, whose JSON was most of each write."""
    return json.dumps([[h.channel_id.hex(), h.node.hex(), str(h.amount), h.expiry] for h in hops])


def _route_of(text: str) -> tuple[RouteHop, ...]:
    return tuple(RouteHop(bytes.fromhex(c), bytes.fromhex(n), int(a), int(e)) for c, n, a, e in json.loads(text))


def _forward_of(row: Sequence[Any]) -> ForwardRecord:
    in_channel, h, amount, expiry, onward, status, out_channel, preimage, reason, message, updated = row
    return ForwardRecord(bytes(in_channel), bytes(h), int(amount), expiry, _route_of(onward), ForwardStatus(status),
                         bytes(out_channel), bytes(preimage), reason, message, updated)


def _payment_of(row: Sequence[Any]) -> PaymentRecord:
    h, payee, amount, status, fee, route, cid, attempts, preimage, reason, message, created, updated = row
    return PaymentRecord(bytes(h), bytes(payee), int(amount), PaymentStatus(status), int(fee), _route_of(route),
                         bytes(cid), attempts, bytes(preimage), reason, message, created, updated)


def _stamped(channel: ChannelRecord) -> ChannelRecord:
    return replace(channel, updated_at=int(time.time()))


def _channel_row(c: ChannelRecord) -> tuple[Any, ...]:
    return (c.channel_id, c.a, c.b, c.nonce, int(c.we_are_a), c.peer, int(c.status), str(c.amount_a),
            str(c.amount_b), c.open_tx, c.close_tx, c.closes_at, c.reason, c.updated_at or int(time.time()))
