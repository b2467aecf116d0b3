"""The sequencer's store: sealed transactions (block_txs + the tiered index), dropped ones, the status their
batch gives them, what restore asks it (settled, max_seq), and the migration from the txs table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    DEFAULT_CHAIN_ID,
    DEV_PRIVATE_KEYS,
    MESSAGE_PASSER,
    Account,
    BlockEnv,
    Deposit,
    QueuedDeposit,
    QueuedForced,
    Reason,
    State,
    Transaction,
    WithdrawalMessage,
    apply_transaction,
    decode_transaction,
)
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from services.l1 import UnsignedTransaction, sign_transaction
from services.runtime._storage import Storage
from services.sequencer._store import (
    DROPPED,
    FINALIZED,
    FORCED_INCLUDED,
    FORCED_SKIPPED,
    PENDING,
    SAFE,
    SEALED,
    AccountRow,
    BatchRow,
    BlockSpan,
    BlockWrite,
    DropRow,
    DueDeposit,
    ForcedOutcome,
    ForcedTx,
    ReceiptStatus,
    SentMessage,
    SequencerStore,
    StoredDeposit,
    _decode_raws,
    _encode_raws,
    _raw_at,
    decode_message,
)

KEY = DEV_PRIVATE_KEYS[1]
BASE_FEE = 7 * 10**8
GWEI = 10**9


def signed(nonce: int, *, data: bytes = b"", tip: int = GWEI, max_fee: int = 10 * GWEI) -> Transaction:
    gas = 21_000 + 16 * len(data)
    raw = sign_transaction(UnsignedTransaction(DEFAULT_CHAIN_ID, nonce, tip, max_fee, gas, b"\xee" * 20, 1, data),
                           KEY)
    return decode_transaction(raw, DEFAULT_CHAIN_ID)


TXS = [signed(n) for n in range(6)]


@contextlib.contextmanager
def opened(path: pathlib.Path) -> Iterator[SequencerStore]:
    """The store of the database at ``path``, closed (with its storage) on the way out."""
    storage = Storage(path)
    store = SequencerStore(storage.connection, storage.path)
    try:
        yield store
    finally:
        store.close()
        storage.close()


@pytest.fixture
def store(tmp_path: pathlib.Path) -> Iterator[SequencerStore]:
    with opened(tmp_path / "sequencer.db") as s:
        yield s


def dropped(tx: Transaction, seq: int, reason: Reason = Reason.REPLACED) -> DropRow:
    return DropRow(tx.hash, tx.raw, tx.sender, tx.nonce, seq, reason)


def write(store: SequencerStore, fn: Callable[[sqlite3.Connection], object]) -> None:
    """``fn`` in one writer transaction, as the services write (rolled back if it raises)."""
    asyncio.run(store.run(fn))


def seal(store: SequencerStore, number: int, txs: Sequence[Transaction], *, deposits: int = 0,
         new: Sequence[AccountRow] = (), changed: Sequence[AccountRow] = (),
         messages: Sequence[SentMessage] = ()) -> None:
    """Block ``number`` with ``txs`` after ``deposits`` deposits (they lead a block; not stored here)."""
    header = json.dumps({"number": number, "base_fee": str(BASE_FEE)})
    block = BlockWrite(number, bytes([number]) * 32, header, txs, deposits, new, changed, messages)
    write(store, lambda db: store.seal_block(db, block))


def count(store: SequencerStore, table: str) -> int:
    return int(store._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def indexed(store: SequencerStore) -> int:
    """Sealed transactions the index holds: in memory, and in runs."""
    return store._index.in_memory() + count(store, "tx_run_rows")


def test_a_sealed_transaction_is_one_index_row_and_its_receipt_comes_from_its_raw_bytes(
        store: SequencerStore) -> None:
    # a plain transfer, one with calldata (more gas), one whose tip the fee cap limits
    txs = [TXS[0], signed(1, data=b"\x00\x01" * 20), signed(2, tip=5 * 10**8, max_fee=BASE_FEE + 3)]
    seal(store, 1, txs, deposits=2)
    assert (indexed(store), count(store, "block_txs")) == (3, 1)
    # what sealing charged: the same execution, in a state that can pay for it
    state = State([(TXS[0].sender, Account(0, 10**24))])
    env = BlockEnv(1, 0, BASE_FEE)
    for index, tx in enumerate(txs, start=2):
        result = apply_transaction(state, tx, env)
        got = store.tx(tx.hash, DEFAULT_CHAIN_ID)
        assert got is not None
        assert (got.raw, got.sender, got.nonce, got.status, got.block_number, got.index, got.gas_used,
                got.effective_gas_price, got.drop_reason) == (
            tx.raw, tx.sender, tx.nonce, SEALED, 1, index, result.gas_used, result.effective_gas_price, None)
    with_data, capped = store.tx(txs[1].hash, DEFAULT_CHAIN_ID), store.tx(txs[2].hash, DEFAULT_CHAIN_ID)
    assert with_data is not None and (with_data.gas_used or 0) > 21_000
    assert capped is not None and capped.effective_gas_price == BASE_FEE + 3  # the fee cap, not base fee + tip
    assert store.block_tx_hashes(1) == [tx.hash for tx in txs]
    assert store.block_raw_txs(1) == [tx.raw for tx in txs]
    assert store.tx(TXS[5].hash, DEFAULT_CHAIN_ID) is None


def test_a_block_without_signed_transactions_has_an_empty_row(store: SequencerStore) -> None:
    seal(store, 1, [], deposits=3)
    assert store.block_tx_hashes(1) == [] and store.block_raw_txs(1) == []
    assert store.block_tx_hashes(2) == [] and store.block_raw_txs(2) == []  # no such block


def test_status_is_the_batch_s_sealed_safe_finalized_then_sealed_again_after_a_reorg(store: SequencerStore) -> None:
    seal(store, 1, TXS[:2])
    seal(store, 2, TXS[2:3])
    seal(store, 3, TXS[3:4])  # not in the batch

    def statuses() -> list[int]:
        got = [store.tx(tx.hash, DEFAULT_CHAIN_ID) for tx in TXS[:4]]
        return [g.status for g in got if g is not None]

    assert statuses() == [SEALED] * 4
    batch = BatchRow(b"\xb1" * 32, 0, 1, 2, 100, b"\xbb" * 32)
    write(store, lambda db: store.record_batch(db, batch))
    assert statuses() == [SEALED] * 4  # on L1, not yet safe
    db = store._db
    for status in (SAFE, FINALIZED):
        before = db.total_changes
        write(store, lambda db, s=status: store.promote_batch(db, batch.l1_tx_hash, s))
        assert db.total_changes - before == 1  # the batch's row; not one per transaction
        assert statuses() == [status, status, status, SEALED]
    write(store, lambda db: store.record_batch(db, batch))  # seen again after a restart: never demoted
    assert statuses() == [FINALIZED, FINALIZED, FINALIZED, SEALED]
    removed: list[BlockSpan | None] = []
    write(store, lambda db: removed.append(store.remove_batch(db, batch.l1_tx_hash)))  # an L1 reorg took it out
    write(store, lambda db: removed.append(store.remove_batch(db, batch.l1_tx_hash)))  # gone already
    assert removed == [BlockSpan(batch.first_block, batch.last_block), None]
    assert statuses() == [SEALED] * 4
    assert store.batch_of_block(1) is None


def test_the_most_advanced_batch_carrying_a_block_gives_its_status(store: SequencerStore) -> None:
    seal(store, 1, TXS[:1])
    # posted twice (the first send timed out, yet was mined): the earlier one is safe first
    first = BatchRow(b"\x01" * 32, 0, 1, 1, 100, b"\xaa" * 32)
    again = BatchRow(b"\x02" * 32, 1, 1, 1, 101, b"\xab" * 32)
    write(store, lambda db: (store.record_batch(db, first), store.record_batch(db, again),
                             store.promote_batch(db, first.l1_tx_hash, SAFE)))
    assert store.block_status(1) == SAFE and store.block_status(2) == SEALED


def test_a_sealed_transaction_is_never_demoted_by_a_drop(store: SequencerStore) -> None:
    seal(store, 1, TXS[:1])
    write(store, lambda db: store.drop(db, [dropped(TXS[0], seq=9)]))
    got = store.tx(TXS[0].hash, DEFAULT_CHAIN_ID)
    assert got is not None and (got.status, got.block_number, got.drop_reason) == (SEALED, 1, None)
    assert store.settled([TXS[0].hash]) == {TXS[0].hash: (SEALED, 0)}


def test_a_dropped_transaction_sent_again_and_sealed_is_sealed(store: SequencerStore) -> None:
    tx = TXS[0]
    write(store, lambda db: store.drop(db, [dropped(tx, seq=5, reason=Reason.EXPIRED)]))
    assert store.settled([tx.hash]) == {tx.hash: (DROPPED, 5)}
    got = store.tx(tx.hash, DEFAULT_CHAIN_ID)
    assert got is not None and (got.status, got.seq, got.sender, got.nonce, got.raw, got.drop_reason,
                                got.block_number) == (DROPPED, 5, tx.sender, tx.nonce, tx.raw, "EXPIRED", None)
    seal(store, 1, [tx])
    got = store.tx(tx.hash, DEFAULT_CHAIN_ID)
    assert got is not None and (got.status, got.block_number, got.index, got.drop_reason) == (SEALED, 1, 0, None)
    assert store.settled([tx.hash]) == {tx.hash: (SEALED, 0)}


def test_dropped_twice_keeps_the_newer_entry_and_reason(store: SequencerStore) -> None:
    write(store, lambda db: store.drop(db, [dropped(TXS[1], seq=3, reason=Reason.EXPIRED)]))
    write(store, lambda db: store.drop(db, [dropped(TXS[1], seq=7, reason=Reason.EVICTED)]))
    assert store.settled([TXS[0].hash, TXS[1].hash]) == {TXS[1].hash: (DROPPED, 7)}
    got = store.tx(TXS[1].hash, DEFAULT_CHAIN_ID)
    assert got is not None and (got.seq, got.drop_reason) == (7, "EVICTED")


def test_settled_asks_in_chunks(store: SequencerStore) -> None:
    rows = [DropRow(bytes([i]) * 32, b"raw", b"s" * 20, i, i, "EXPIRED") for i in range(200)]
    write(store, lambda db: store.drop(db, rows))
    hashes = [bytes([i % 256]) * 32 for i in range(700)]  # more than one statement's worth
    assert store.settled(hashes) == {bytes([i]) * 32: (DROPPED, i) for i in range(200)}


def test_max_seq_after_a_restart_exceeds_every_dropped_seq(tmp_path: pathlib.Path) -> None:
    with opened(tmp_path / "sequencer.db") as store:
        assert store.max_seq() == 0
        write(store, lambda db: store.drop(db, [dropped(TXS[0], seq=3), dropped(TXS[1], seq=9)]))
        write(store, lambda db: store.drop(db, [dropped(TXS[2], seq=7)]))  # lower than before: the max stays
        seal(store, 1, TXS[3:5])  # sealed ones' seqs are not kept (see max_seq)
    with opened(tmp_path / "sequencer.db") as store:
        assert store.max_seq() == 9


def test_accounts_are_inserted_once_then_updated(store: SequencerStore) -> None:
    a, b = b"\x0a" * 20, b"\x0b" * 20
    seal(store, 1, [], new=(AccountRow(a, 0, Account(0, 5)), AccountRow(b, 1, Account(2, 2**200))))
    seal(store, 2, [], changed=[AccountRow(a, 0, Account(1, 4))])
    assert store.accounts() == [AccountRow(a, 0, Account(1, 4)), AccountRow(b, 1, Account(2, 2**200))]
    with pytest.raises(RuntimeError):  # an account said to be on disk that is not: the block fails whole
        seal(store, 3, TXS[:1], changed=[AccountRow(b"\x0c" * 20, 2, Account(1, 4))])
    assert store.latest_block_number() == 2
    assert store.tx(TXS[0].hash, DEFAULT_CHAIN_ID) is None and store.block_raw_txs(3) == []


def test_a_transaction_sealed_twice_fails_the_block_whole(store: SequencerStore) -> None:
    seal(store, 1, TXS[:1])
    with pytest.raises(sqlite3.IntegrityError):
        seal(store, 2, TXS[:2])
    assert store.latest_block_number() == 1 and store.tx(TXS[1].hash, DEFAULT_CHAIN_ID) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=40))
def test_block_raws_encoding_round_trips_and_reads_any_one_in_place(raws: list[bytes]) -> None:
    blob = _encode_raws(raws)
    assert _decode_raws(blob) == raws
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE TABLE t (b BLOB)")
        db.execute("INSERT INTO t (rowid, b) VALUES (1, ?)", (blob,))
        with db.blobopen("t", "b", 1, readonly=True) as handle:
            assert [_raw_at(handle, i) for i in range(len(raws))] == raws
    finally:
        db.close()


def test_a_blob_that_is_not_an_encoding_is_refused() -> None:
    with pytest.raises(ValueError):
        _decode_raws(_encode_raws([b"abc"]) + b"!")


# -- migration from the txs table -----------------------------------------------------------

#: The schema an older version wrote: one row per transaction, its status rewritten as it advanced.
LEGACY_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blocks (number INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE, header TEXT NOT NULL);
CREATE TABLE txs (hash BLOB PRIMARY KEY, raw BLOB NOT NULL, sender BLOB NOT NULL, nonce INTEGER NOT NULL,
    status INTEGER NOT NULL, seq INTEGER NOT NULL, block_number INTEGER, idx INTEGER, gas_used INTEGER,
    price TEXT, drop_reason TEXT);
CREATE INDEX txs_pending ON txs (seq) WHERE status = 1;
CREATE INDEX txs_in_blocks ON txs (block_number, idx) WHERE block_number IS NOT NULL;
CREATE TABLE batches (l1_tx_hash BLOB PRIMARY KEY, inbox_index INTEGER NOT NULL, first_block INTEGER NOT NULL,
    last_block INTEGER NOT NULL, l1_block INTEGER NOT NULL, l1_block_hash BLOB NOT NULL, status INTEGER NOT NULL);
"""


def legacy_database(path: pathlib.Path, *, pending: bool) -> None:
    """Blocks 0-3 as an older version left them: block 1 holds TXS[0..1] after a deposit (SAFE, its
    batch is), block 2 TXS[2] (SEALED), block 3 none; TXS[3] was dropped (seq 40), TXS[4] pending."""
    db = sqlite3.connect(path)
    db.executescript(LEGACY_SCHEMA)
    header = json.dumps({"base_fee": str(BASE_FEE)})
    db.executemany("INSERT INTO blocks (number, hash, header) VALUES (?, ?, ?)",
                   [(n, bytes([n]) * 32, header) for n in range(4)])

    def row(tx: Transaction, status: int, seq: int, block: int | None = None, idx: int | None = None,
            reason: str | None = None) -> tuple[object, ...]:
        price = None if block is None else str(BASE_FEE + GWEI)
        return (tx.hash, tx.raw, tx.sender, tx.nonce, status, seq, block, idx, 21_000 if block else None, price,
                reason)

    rows = [row(TXS[1], SAFE, 12, 1, 2), row(TXS[2], SEALED, 13, 2, 0), row(TXS[0], SAFE, 11, 1, 1),
            row(TXS[3], DROPPED, 40, reason="EXPIRED")]
    if pending:
        rows.append(row(TXS[4], PENDING, 50))
    db.executemany("INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO batches VALUES (?, 0, 1, 1, 100, ?, ?)", (b"\xb1" * 32, b"\xbb" * 32, SAFE))
    db.commit()
    db.close()


def has_txs_table(store: SequencerStore) -> bool:
    return store._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'txs'").fetchone() is not None


def assert_migrated(store: SequencerStore) -> None:
    assert store.block_tx_hashes(1) == [TXS[0].hash, TXS[1].hash]
    assert store.block_raw_txs(1) == [TXS[0].raw, TXS[1].raw]
    assert store.block_raw_txs(2) == [TXS[2].raw] and store.block_raw_txs(3) == []
    assert (count(store, "tx_run_rows"), count(store, "block_txs"), count(store, "dropped")) == (3, 4, 1)
    got = [store.tx(tx.hash, DEFAULT_CHAIN_ID) for tx in TXS[:4]]
    assert [(g.status, g.block_number, g.index, g.gas_used, g.effective_gas_price, g.drop_reason)
            for g in got if g is not None] == [
        (SAFE, 1, 1, 21_000, BASE_FEE + GWEI, None), (SAFE, 1, 2, 21_000, BASE_FEE + GWEI, None),
        (SEALED, 2, 0, 21_000, BASE_FEE + GWEI, None), (DROPPED, None, None, None, None, "EXPIRED")]
    # senders: the legacy rows' own column, kept per block (a receipt recovers nothing)
    assert [(g.sender, g.nonce) for g in got if g is not None] == [(tx.sender, tx.nonce) for tx in TXS[:4]]
    assert store.settled([tx.hash for tx in TXS]) == {TXS[0].hash: (SEALED, 0), TXS[1].hash: (SEALED, 0),
                                                      TXS[2].hash: (SEALED, 0), TXS[3].hash: (DROPPED, 40)}


def test_a_legacy_database_is_migrated_and_its_pending_rows_wait_for_the_intake(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "old.db"
    legacy_database(path, pending=True)
    with opened(path) as store:
        assert_migrated(store)
        assert store.max_seq() == 50  # the pending row's seq too: the intake numbers new entries above it
        assert [(p.hash, p.seq, p.status) for p in store.pending()] == [(TXS[4].hash, 50, PENDING)]
        assert store.tx(TXS[4].hash, DEFAULT_CHAIN_ID) is None  # only the intake knows pending ones
        assert store._db.execute("SELECT COUNT(*) FROM txs").fetchone()[0] == 1  # only the pending row is left
        write(store, store.delete_pending)  # the intake moved it to the pending log
        assert not has_txs_table(store) and store.pending() == []
    with opened(path) as store:  # reopened: nothing to migrate again
        assert_migrated(store)
        assert store.max_seq() == 50


def test_a_legacy_database_without_pending_rows_loses_its_txs_table_at_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "old.db"
    legacy_database(path, pending=False)
    with opened(path) as store:
        assert_migrated(store)
        assert not has_txs_table(store) and store.pending() == []
        assert store.max_seq() == 40
        seal(store, 4, TXS[4:6])  # and the chain goes on
        assert store.block_raw_txs(4) == [TXS[4].raw, TXS[5].raw]


def test_a_batch_carries_a_block_s_transactions_without_its_forced_ones(store: SequencerStore) -> None:
    write(store, lambda db: store.record_forced(db, [
        QueuedForced(0, 5, TXS[0].raw), QueuedForced(1, 5, b"\x02 garbage"), QueuedForced(2, 6, TXS[1].raw)]))
    seal(store, 1, TXS[:3])  # forced ones lead the block: 0 and 2 were included, 1 skipped
    assert store.forced_due(5) == [ForcedTx(0, TXS[0].raw), ForcedTx(1, b"\x02 garbage")]
    write(store, lambda db: store.settle_forced(db, 1, [ForcedOutcome(0, FORCED_INCLUDED, "0x" + TXS[0].hash.hex()),
                                                        ForcedOutcome(1, FORCED_SKIPPED, Reason.MALFORMED_RLP),
                                                        ForcedOutcome(2, FORCED_INCLUDED, "0x" + TXS[1].hash.hex())]))
    assert store.forced_due(6) == []
    seal(store, 2, TXS[3:4])
    assert store.block_raw_txs(1) == [tx.raw for tx in TXS[:3]]
    assert store.block_batch_txs(1) == [TXS[2].raw] and store.block_batch_txs(2) == [TXS[3].raw]
    assert store.block_batch_txs(3) == []


def test_statuses_are_the_protos_numbers() -> None:
    assert {s.name: s.value for s in ReceiptStatus} == {
        name.removeprefix("RECEIPT_STATUS_"): value for name, value in pb.ReceiptStatus.items() if value}
    assert tuple(ReceiptStatus) == (PENDING, SEALED, SAFE, FINALIZED, DROPPED)


def test_messages_are_kept_in_nonce_order(store: SequencerStore) -> None:
    sender, target = b"\x0a" * 20, b"\x0b" * 20
    first, second, third = (WithdrawalMessage(n, sender, target, 10 + n, 100_000, b"hi" * n) for n in range(3))
    seal(store, 1, [], messages=[SentMessage(b"\x01" * 32, first)])
    seal(store, 2, [])
    seal(store, 3, [], messages=[SentMessage(b"\x02" * 32, second), SentMessage(b"\x03" * 32, third)])
    assert store.message_hashes() == [first.hash(), second.hash(), third.hash()]
    assert [store.message_count(n) for n in range(5)] == [0, 1, 1, 3, 3]
    page = store.messages(1, 256)
    assert (page.message_count, page.head) == (3, 3)
    assert [(m.message, m.hash, m.block_number, m.block_hash, m.tx_hash) for m in page.messages] == [
        (second, second.hash(), 3, b"\x03" * 32, b"\x02" * 32), (third, third.hash(), 3, b"\x03" * 32, b"\x03" * 32)]
    assert [m.message.nonce for m in store.messages(0, 2).messages] == [0, 1]
    assert store.messages(3, 256).messages == [] and store.messages(3, 256).message_count == 3


@given(st.integers(0, 2**256 - 1), st.binary(min_size=20, max_size=20), st.binary(min_size=20, max_size=20),
       st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1), st.binary(max_size=100))
def test_a_stored_message_decodes_to_itself(nonce: int, sender: bytes, target: bytes, value: int, gas: int,
                                            data: bytes) -> None:
    message = WithdrawalMessage(nonce, sender, target, value, gas, data)
    assert decode_message(message.encode()) == message


def test_messages_an_older_version_stored_get_their_transaction_hashes(tmp_path: pathlib.Path) -> None:
    """A database written before messages kept the sending transaction: its withdrawals' hashes
    are found again in their blocks (the transactions to MESSAGE_PASSER, in order)."""
    path = tmp_path / "sequencer.db"
    to_passer = [decode_transaction(sign_transaction(UnsignedTransaction(
        DEFAULT_CHAIN_ID, n, GWEI, 10 * GWEI, 100_000, MESSAGE_PASSER, 5, b""), KEY), DEFAULT_CHAIN_ID)
        for n in (1, 3)]
    txs = [TXS[0], to_passer[0], TXS[2], to_passer[1]]
    messages = [WithdrawalMessage(n, b"\x0a" * 20, b"\x0a" * 20, 5, 100_000, b"") for n in range(2)]
    with opened(path) as store:
        seal(store, 1, txs, messages=[SentMessage(t.hash, m) for t, m in zip(to_passer, messages, strict=True)])
    old = sqlite3.connect(path)  # what the older version had: no tx_hash column
    old.executescript("DROP INDEX messages_by_block; ALTER TABLE messages DROP COLUMN tx_hash;")
    assert [r[1] for r in old.execute("PRAGMA table_info(messages)")] == ["nonce", "hash", "block_number", "body"]
    old.close()
    with opened(path) as store:
        assert [m.tx_hash for m in store.messages(0, 10).messages] == [t.hash for t in to_passer]


def test_a_deposit_is_due_until_a_block_mints_it(store: SequencerStore) -> None:
    deposits = [Deposit(bytes([i]) * 32, bytes([0xD0 + i]) * 20, 10**18 + i) for i in range(3)]
    write(store, lambda db: store.record_deposits(
        db, [QueuedDeposit(i, 5 + i, b"\xaa" * 20, d) for i, d in enumerate(deposits)]))
    assert store.deposits_due(6) == [DueDeposit(0, deposits[0]), DueDeposit(1, deposits[1])]
    assert store.deposit(deposits[1].hash()) == StoredDeposit(
        deposits[1].to, deposits[1].mint, None, 0, deposits[1].source_hash)
    seal(store, 1, TXS[:1], deposits=2)
    write(store, lambda db: store.settle_deposits(db, 1, [0, 1]))
    assert store.deposits_due(7) == [DueDeposit(2, deposits[2])]
    assert store.block_deposits(1) == deposits[:2] and store.block_deposits(2) == []
    assert store.deposit(deposits[1].hash()) == StoredDeposit(
        deposits[1].to, deposits[1].mint, 1, 1, deposits[1].source_hash)
    assert store.deposit(b"\x00" * 32) is None
