"""The sequencer's store: sealed and dropped rows, what restore asks it (settled), index migration."""

from __future__ import annotations

import pathlib
import sqlite3
from collections.abc import Iterator

import pytest

from services.runtime._storage import Storage
from services.sequencer._store import DROPPED, PENDING, SEALED, DropRow, SealedTx, SequencerStore


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[SequencerStore]:
    storage = Storage(tmp_path / "sequencer.db")
    s = SequencerStore(storage.connection, storage.path)
    yield s
    s.close()
    storage.close()


def sealed(i: int, number: int, index: int) -> SealedTx:
    return SealedTx(bytes([i]) * 32, b"raw %d" % i, bytes([i]) * 20, i, 0, number, index, 21_000, str(2**70 + index))


def dropped(i: int, seq: int, reason: str = "REPLACED") -> DropRow:
    return DropRow(bytes([i]) * 32, b"raw %d" % i, bytes([i]) * 20, i, seq, reason)


def write(store: SequencerStore, fn: object) -> None:
    db = store._db
    db.execute("BEGIN IMMEDIATE")
    fn(db)  # type: ignore[operator]
    db.execute("COMMIT")


def seal(store: SequencerStore, number: int, txs: list[SealedTx],
         new: tuple[tuple[bytes, int, int, str], ...] = (), changed: tuple[tuple[int, str, bytes], ...] = ()) -> None:
    write(store, lambda db: store.seal_block(db, number, bytes([number]) * 32, "{}", txs, new, changed, ()))


def test_a_sealed_transaction_gets_its_whole_row(store: SequencerStore) -> None:
    seal(store, 1, [sealed(1, 1, 0), sealed(2, 1, 1)])
    for index, i in enumerate((1, 2)):
        got = store.tx(bytes([i]) * 32)
        assert got is not None
        assert (got.raw, got.sender, got.nonce, got.status, got.block_number, got.index, got.gas_used,
                got.effective_gas_price, got.drop_reason) == (
            b"raw %d" % i, bytes([i]) * 20, i, SEALED, 1, index, 21_000, 2**70 + index, None)
    assert store.block_tx_hashes(1) == [b"\x01" * 32, b"\x02" * 32]


def test_a_dropped_transaction_sent_again_and_sealed_is_sealed(store: SequencerStore) -> None:
    write(store, lambda db: store.drop(db, [dropped(1, seq=5, reason="EXPIRED")]))
    assert store.settled([b"\x01" * 32]) == {b"\x01" * 32: (DROPPED, 5)}
    seal(store, 1, [sealed(1, 1, 0)])
    got = store.tx(b"\x01" * 32)
    assert got is not None and (got.status, got.block_number, got.drop_reason) == (SEALED, 1, None)


def test_a_sealed_transaction_is_never_demoted_by_a_drop(store: SequencerStore) -> None:
    seal(store, 1, [sealed(1, 1, 0)])
    write(store, lambda db: store.drop(db, [dropped(1, seq=9)]))
    got = store.tx(b"\x01" * 32)
    assert got is not None and (got.status, got.drop_reason) == (SEALED, None)
    # dropped twice (sent again in between): the newer drop's entry and reason
    write(store, lambda db: store.drop(db, [dropped(2, seq=3, reason="EXPIRED")]))
    write(store, lambda db: store.drop(db, [dropped(2, seq=7, reason="EVICTED")]))
    assert store.settled([b"\x01" * 32, b"\x02" * 32, b"\x03" * 32]) == {
        b"\x01" * 32: (SEALED, 0), b"\x02" * 32: (DROPPED, 7)}


def test_settled_asks_in_chunks(store: SequencerStore) -> None:
    write(store, lambda db: store.drop(db, [dropped(i, seq=i) for i in range(200)]))
    hashes = [bytes([i % 256]) * 32 for i in range(700)]  # more than one statement's worth
    assert store.settled(hashes) == {bytes([i]) * 32: (DROPPED, i) for i in range(200)}


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
