"""The sequencer's store: sealing rows whose PENDING insert is on disk, queued, or missing; index migration."""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterator

import pytest

from services.runtime._storage import Storage
from services.sequencer._store import PENDING, SEALED, PendingRow, SealedTx, SequencerStore


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[SequencerStore]:
    storage = Storage(tmp_path / "sequencer.db")
    s = SequencerStore(storage.connection, storage.path)
    yield s
    s.close()
    storage.close()


def row(i: int, seq: int | None = None) -> PendingRow:
    return PendingRow(bytes([i]) * 32, b"raw %d" % i, bytes([i]) * 20, i, 100 + i if seq is None else seq)


def sealed(r: PendingRow, number: int, index: int) -> SealedTx:
    return SealedTx(r.hash, r.raw, r.sender, r.nonce, 0, number, index, 21_000, str(2**70 + index))


def write(store: SequencerStore, fn: object) -> None:
    db = store._db
    db.execute("BEGIN IMMEDIATE")
    fn(db)  # type: ignore[operator]
    db.execute("COMMIT")


def seal(store: SequencerStore, number: int, txs: list[SealedTx], unwritten: frozenset[bytes] = frozenset(),
         new: tuple[tuple[bytes, int, int, str], ...] = (), changed: tuple[tuple[int, str, bytes], ...] = ()) -> None:
    write(store, lambda db: store.seal_block(db, number, bytes([number]) * 32, "{}", txs, new, changed, (),
                                             unwritten))


@pytest.mark.parametrize("unwritten", [False, True], ids=["listed", "not-listed"])
def test_every_sealed_transaction_gets_its_row_whatever_was_written_before(store: SequencerStore,
                                                                          unwritten: bool) -> None:
    on_disk, queued = row(1), row(2)
    write(store, lambda db: store.insert_pending(db, [on_disk]))
    # ``queued``'s PENDING insert comes after the block: listed as unwritten (the intake's set),
    # or not (the set was wrong): its row is written whole either way.
    seal(store, 1, [sealed(on_disk, 1, 0), sealed(queued, 1, 1)],
         frozenset({queued.hash}) if unwritten else frozenset())
    write(store, lambda db: store.insert_pending(db, [queued]))  # ignored: the row is there
    for index, r in enumerate((on_disk, queued)):
        got = store.tx(r.hash)
        assert got is not None
        assert (got.raw, got.sender, got.nonce, got.status, got.block_number, got.index, got.gas_used,
                got.effective_gas_price) == (r.raw, r.sender, r.nonce, SEALED, 1, index, 21_000, 2**70 + index)
    assert store.tx(on_disk.hash).seq == on_disk.seq  # type: ignore[union-attr]
    assert store.block_tx_hashes(1) == [on_disk.hash, queued.hash]
    assert store.pending() == []


def test_pending_rows_come_back_in_arrival_order(store: SequencerStore) -> None:
    rows = [row(3, seq=1), row(1, seq=2), row(2, seq=3)]
    write(store, lambda db: store.insert_pending(db, rows))
    seal(store, 1, [sealed(rows[1], 1, 0)])
    assert [(s.hash, s.status) for s in store.pending()] == [(rows[0].hash, PENDING), (rows[2].hash, PENDING)]


def test_accounts_are_inserted_once_then_updated(store: SequencerStore) -> None:
    a, b = b"\x0a" * 20, b"\x0b" * 20
    seal(store, 1, [], new=((a, 0, 0, "5"), (b, 1, 2, str(2**200))))
    seal(store, 2, [], changed=((1, "4", a),))
    assert store.accounts() == [(a, 1, 4), (b, 2, 2**200)]
    with pytest.raises(RuntimeError):  # an account said to be on disk that is not: the block fails whole
        seal(store, 3, [], changed=((1, "4", b"\x0c" * 20),))
    assert store.latest_block_number() == 2


def test_a_database_with_the_old_full_indexes_is_migrated(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE txs (hash BLOB PRIMARY KEY, raw BLOB NOT NULL, sender BLOB NOT NULL, nonce INTEGER NOT NULL,
            status INTEGER NOT NULL, seq INTEGER NOT NULL, block_number INTEGER, idx INTEGER, gas_used INTEGER,
            price TEXT, drop_reason TEXT);
        CREATE INDEX txs_by_status ON txs (status, seq);
        CREATE INDEX txs_by_block ON txs (block_number, idx);
    """)
    db.execute("INSERT INTO txs (hash, raw, sender, nonce, status, seq) VALUES (?, ?, ?, ?, ?, ?)",
               (b"h" * 32, b"raw", b"s" * 20, 0, PENDING, 7))
    db.commit()
    db.close()
    storage = Storage(path)
    store = SequencerStore(storage.connection, storage.path)
    try:
        names = {n for (n,) in storage.connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"txs_pending", "txs_in_blocks"} <= names and not {"txs_by_status", "txs_by_block"} & names
        assert [s.hash for s in store.pending()] == [b"h" * 32]
    finally:
        store.close()
        storage.close()
