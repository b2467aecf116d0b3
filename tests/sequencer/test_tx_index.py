"""The tiered transaction index (services/sequencer/_tx_index.py): sealed transactions found by hash
whether their block is still in memory or in a run, merged, being merged a slice a block, or not,
after a restart, a rewind, a kill -9 (also inside the slice that completes a merge), and the
one-time migration from the hash-keyed table; unknown hashes are not found, and the runs' filters
spare them the seeks; a transaction in an old run is refused if sent again. Runs are made tiny
here (a few transactions) and merges slow (a few rows a block) so every path is crossed."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from array import array
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import DEFAULT_CHAIN_ID, DEV_PRIVATE_KEYS, Reason, Transaction, bloom_fill, decode_transaction
from services.l1 import UnsignedTransaction, sign_transaction
from services.sequencer import _tx_index
from services.sequencer._intake import Refusal
from services.sequencer._store import SEALED, SequencerStore
from tests.sequencer.test_chain import Sequencer, transfer
from tests.sequencer.test_store import BASE_FEE, count, opened, write

ROOT = pathlib.Path(__file__).resolve().parents[2]
GWEI = 10**9
#: 33 transfers of one sender, nonces 0..32 (signed once: signing is the slow part).
TXS = [decode_transaction(sign_transaction(UnsignedTransaction(DEFAULT_CHAIN_ID, n, GWEI, 10 * GWEI, 21_000,
                                                               b"\xee" * 20, 1), DEV_PRIVATE_KEYS[2]),
                          DEFAULT_CHAIN_ID) for n in range(33)]


@pytest.fixture(autouse=True)
def small_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run every 4 transactions, 2 runs of a level merged, level 2 the top; a merge copies 3 rows
    a block (one a transaction, 3 at least), so merges span blocks; filters of 16 words."""
    monkeypatch.setattr(_tx_index, "RUN_TXS", 4)
    monkeypatch.setattr(_tx_index, "FANOUT", 2)
    monkeypatch.setattr(_tx_index, "TOP_LEVEL", 2)
    monkeypatch.setattr(_tx_index, "MIN_WORK", 3)
    monkeypatch.setattr(_tx_index, "WORK_PER_TX", 1)
    monkeypatch.setattr(_tx_index, "FILTER_WORDS", 16)


def seal(store: SequencerStore, number: int, txs: Sequence[Transaction], deposits: int = 0) -> None:
    from services.sequencer._store import BlockWrite

    header = json.dumps({"number": number, "base_fee": str(BASE_FEE)})
    write(store, lambda db: store.seal_block(db, BlockWrite(number, number.to_bytes(32, "big"), header, txs, deposits)))


def levels(store: SequencerStore) -> list[int]:
    return [int(level) for (level,) in store._db.execute("SELECT level FROM tx_runs ORDER BY level")]


def listed_rows(store: SequencerStore) -> int:
    """Rows of the runs lookups read (not those of a run being built, or merged and being deleted)."""
    return int(store._db.execute("SELECT COUNT(*) FROM tx_run_rows WHERE run IN (SELECT run FROM tx_runs)")
               .fetchone()[0])


def merging(store: SequencerStore) -> bool:
    """A merge under way, or merged runs' rows still to delete."""
    (run,) = store._db.execute("SELECT run FROM tx_merge").fetchone()
    return run is not None or count(store, "tx_dead_runs") > 0


def settle(store: SequencerStore, number: int) -> int:
    """Empty blocks after ``number`` until no merge is under way; the last one's number."""
    while merging(store):
        number += 1
        seal(store, number, [])
    return number


def assert_found(store: SequencerStore, where: dict[bytes, tuple[int, int]]) -> None:
    """Every hash in ``where`` at its (block, position), its receipt SEALED; others unknown."""
    for tx_hash, (number, index) in where.items():
        got = store.tx(tx_hash, DEFAULT_CHAIN_ID)
        assert got is not None and (got.status, got.block_number, got.index) == (SEALED, number, index)
    unknown = [tx.hash for tx in TXS if tx.hash not in where]
    assert all(store.tx(h, DEFAULT_CHAIN_ID) is None for h in unknown)
    assert set(store.settled([*where, *unknown])) == set(where)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=8, max_size=40), max_size=300), st.integers(0, 2**64 - 1))
def test_the_filter_fill_in_c_sets_what_probe_says(hashes: list[bytes], word: int) -> None:
    # _fill (protocol.bloom_fill) against _probe's arithmetic, hash by hash, on a filter already holding bits
    bits = _tx_index._filter()
    bits[word % _tx_index.FILTER_WORDS] = word
    expected = array("Q", bits)
    for h in hashes:
        at, pair_bits = _tx_index._probe(h)
        expected[at] |= pair_bits
    assert _tx_index._fill(bits, iter(hashes)) == expected
    assert all(_tx_index._probe(h)[1] & bits[_tx_index._probe(h)[0]] == _tx_index._probe(h)[1] for h in hashes)


def test_the_filter_fill_takes_any_writable_buffer_unaligned_too() -> None:
    rng = random.Random(5)
    hashes = [rng.randbytes(32) for _ in range(50)]
    expected = _tx_index._fill(array("Q", bytes(8 * 16)), hashes)
    raw = bytearray(8 * 16 + 1)
    bloom_fill(memoryview(raw)[1:], hashes)  # one byte off any word boundary
    assert bytes(raw[1:]) == expected.tobytes() and raw[0] == 0


def test_the_filter_fill_refuses_a_short_hash_and_a_bad_filter() -> None:
    bits = _tx_index._filter()
    with pytest.raises(TypeError):
        bloom_fill(bits, [b"\xff" * 32, bytes(7)])
    assert not any(bits)  # refused whole: the good hash before it set nothing
    with pytest.raises(TypeError):
        bloom_fill(_tx_index._filter(), [bytearray(32)])
    with pytest.raises(ValueError):
        bloom_fill(array("Q", bytes(8 * 3)), [bytes(32)])
    with pytest.raises(BufferError):
        bloom_fill(bytes(8 * 4), [bytes(32)])  # not writable


@pytest.mark.parametrize("words", [16, 1 << 12], ids=["filters-full", "filters-sparse"])
def test_lookups_across_runs_merges_and_a_restart(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                  words: int) -> None:
    monkeypatch.setattr(_tx_index, "FILTER_WORDS", words)
    where: dict[bytes, tuple[int, int]] = {}
    seen_merging = False
    with opened(tmp_path / "sequencer.db") as store:
        for number in range(1, 12):  # 3 transactions a block, block 2k with 1 deposit before them
            deposits = 1 - number % 2
            txs = TXS[3 * (number - 1) : 3 * number]
            seal(store, number, txs, deposits)
            where.update((tx.hash, (number, deposits + i)) for i, tx in enumerate(txs))
            assert_found(store, where)
            seen_merging |= merging(store)
        # 11 blocks of 3: a run every 2 blocks (6 >= 4); block 11 in memory only
        assert seen_merging and store._index.in_memory() == 3 and listed_rows(store) == 30
    with opened(tmp_path / "sequencer.db") as store:  # a restart: the map rebuilt from block 11's row
        assert store._index.in_memory() == 3 and listed_rows(store) == 30
        assert_found(store, where)
        # merges resume where they stopped: 5 runs merged 2 by 2 up to level 2, then one left over
        head = settle(store, 11)
        assert head > 11 and levels(store) == [0, 2] and count(store, "tx_run_rows") == 30
        assert_found(store, where)
    with opened(tmp_path / "sequencer.db") as store:
        assert levels(store) == [0, 2]
        assert_found(store, where)


def test_an_unknown_hash_is_sought_in_no_run(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With filters of 4,096 words, 1,000 unknown hashes cost no seek in the runs (the filter of a
    run of ~12 hashes has ~72 bits of 262,144 set), while a sealed one costs one. After an open, a
    lookup reads one run's filter at most, and seeks in the runs whose filter it has not read."""
    monkeypatch.setattr(_tx_index, "FILTER_WORDS", 1 << 12)
    with opened(tmp_path / "sequencer.db") as store:
        for number in range(1, 12):
            seal(store, number, TXS[3 * (number - 1) : 3 * number])
        settle(store, 11)
        assert len(levels(store)) == 2
        seeks: list[str] = []
        store._reader.set_trace_callback(lambda sql: seeks.append(sql) if "tx_run" in sql else None)
        rng = random.Random(3)
        unknown = [rng.randbytes(32) for _ in range(1000)]
        assert store.settled(unknown) == {} and all(store.tx(h, DEFAULT_CHAIN_ID) is None for h in unknown[:100])
        assert seeks == []
        assert store._index.location(store._reader, TXS[0].hash) == (1, 0)
        assert len(seeks) == 1
    with opened(tmp_path / "sequencer.db") as store:  # after an open: one filter read a lookup, seeks for the rest
        statements: list[str] = []
        store._reader.set_trace_callback(lambda sql: statements.append(sql) if "tx_run" in sql else None)
        for n in range(2):
            statements.clear()
            assert store.settled(unknown[n : n + 1]) == {}
            assert [s.startswith("SELECT bits") for s in statements] == [True, False][: 2 - n]
        statements.clear()
        assert store.settled(unknown) == {} and statements == []


def test_the_next_runs_filter_after_a_restart_and_a_rolled_back_flush(tmp_path: pathlib.Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter of the next level-0 run is filled as blocks come; after a restart with blocks in
    memory, or a flush rolled back, it is made from the run's rows: no sealed hash is missed."""
    monkeypatch.setattr(_tx_index, "FILTER_WORDS", 1 << 12)  # sparse: a missing bit would miss
    path = tmp_path / "sequencer.db"
    where: dict[bytes, tuple[int, int]] = {}

    def sealed(number: int, txs: Sequence[Transaction]) -> None:
        seal(store, number, txs)
        where.update((tx.hash, (number, i)) for i, tx in enumerate(txs))
        assert_found(store, where)

    with opened(path) as store:
        sealed(1, TXS[0:3])
    with opened(path) as store:
        sealed(2, TXS[3:5])  # a flush: blocks 1-2
        assert levels(store) == [0] and store._index.in_memory() == 0
        sealed(3, TXS[5:8])

        def fails(db: sqlite3.Connection) -> None:
            from services.sequencer._store import BlockWrite

            store.seal_block(db, BlockWrite(4, bytes(32), json.dumps({"number": 4, "base_fee": str(BASE_FEE)}),
                                            TXS[8:10]))
            raise RuntimeError("after the flush")

        with pytest.raises(RuntimeError):
            write(store, fails)
        assert levels(store) == [0] and store._index.in_memory() == 3
        sealed(4, TXS[8:10])
        assert store._index.in_memory() == 0
        sealed(5, TXS[10:11])
        settle(store, 5)
        assert_found(store, where)


def test_random_blocks_rewinds_and_restarts_against_a_model(tmp_path: pathlib.Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """300 random steps (a block of 0-5 transactions, a rewind of 1-12 blocks, or a restart) with
    merges under way most of the time: after each, every hash the model holds is found where it
    says, no rewound or unknown one is, and the listed runs and the map hold exactly the model."""
    monkeypatch.setattr(_tx_index, "FILTER_WORDS", 64)
    rng = random.Random(11)
    path = tmp_path / "sequencer.db"
    model: dict[bytes, tuple[int, int]] = {}
    gone: list[bytes] = []
    head = 0
    sender = bytes(20)
    steps = 0
    while steps < 300:
        with opened(path) as store:
            while steps < 300:
                steps += 1
                action = rng.random()
                if action < 0.04:
                    break  # a restart
                if action < 0.12 and head > 1:
                    number = max(0, head - rng.randrange(1, 13))
                    rewound = [h for h, (n, _) in model.items() if n > number]
                    write(store, lambda db, n=number, r=rewound: store.rewind(db, n, [], r, []))
                    for h in rewound:
                        del model[h]
                    gone += rewound
                    head = number
                else:
                    head += 1
                    txs = [Transaction(901, 0, 0, 0, 21_000, sender, 0, b"", (), 0, 0, 0, sender, rng.randbytes(32),
                                       b"x") for _ in range(rng.randrange(0, 6))]
                    seal(store, head, txs)
                    model.update((tx.hash, (head, i)) for i, tx in enumerate(txs))
                reader = store._reader
                assert all(store._index.location(reader, h) == at for h, at in model.items())
                assert not any(store._index.location(reader, h) for h in [*gone, rng.randbytes(32)])
                assert listed_rows(store) + store._index.in_memory() == len(model)
    with opened(path) as store:
        settle(store, head)
        assert count(store, "tx_run_rows") == listed_rows(store) == len(model) - store._index.in_memory()
        assert sorted(store._index.sealed(store._reader, [*model, *gone])) == sorted(model)


class _SealingMidLookup:
    """The reader connection, but its first seek in a run first seals ``blocks`` (the writer's
    transactions, committed): a lookup that read the list of runs before them seeks after them."""

    def __init__(self, store: SequencerStore, blocks: Sequence[tuple[int, Sequence[Transaction]]]) -> None:
        self.store, self.blocks, self.sealed = store, blocks, False

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        if sql == _tx_index._SEEK and not self.sealed:
            self.sealed = True
            for number, txs in self.blocks:
                seal(self.store, number, txs)
        return self.store._reader.execute(sql, params)


def test_a_lookup_that_read_the_runs_before_a_merge_and_its_deletes_finds_the_merged_run(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup reads the list of runs, then (before its seek) a block completes a merge of the run
    it will seek in, and the next deletes that run's rows: the seek misses, the list has changed,
    the lookup looks again and finds the transaction in the merged run."""
    monkeypatch.setattr(_tx_index, "MIN_WORK", 1000)  # a merge in one slice, its inputs' rows deleted in the next
    with opened(tmp_path / "sequencer.db") as store:
        seal(store, 1, TXS[0:4])  # run 1
        assert levels(store) == [0] and store._index.in_memory() == 0
        reader = _SealingMidLookup(store, [(2, TXS[4:8]), (3, [])])  # run 2, merged with 1; then 1's rows deleted
        assert store._index.location(reader, TXS[0].hash) == (1, 0)  # type: ignore[arg-type]
        assert reader.sealed and levels(store) == [1] and count(store, "tx_run_rows") == 8


def test_a_block_repeating_a_hash_in_memory_fails_whole_and_leaves_the_map_as_it_was(tmp_path: pathlib.Path) -> None:
    with opened(tmp_path / "sequencer.db") as store:
        seal(store, 1, TXS[:1])
        with pytest.raises(sqlite3.IntegrityError):
            seal(store, 2, TXS[1:3] + TXS[:1])
        with pytest.raises(sqlite3.IntegrityError):  # twice in one block
            seal(store, 2, [TXS[1], TXS[1]])
        assert store.latest_block_number() == 1 and store._index.in_memory() == 1
        seal(store, 2, TXS[1:3])
        assert_found(store, {TXS[0].hash: (1, 0), TXS[1].hash: (2, 0), TXS[2].hash: (2, 1)})


def test_a_rewind_forgets_its_blocks_in_runs_and_in_memory(tmp_path: pathlib.Path) -> None:
    with opened(tmp_path / "sequencer.db") as store:
        for number in range(1, 6):  # runs through block 4, block 5 in memory
            seal(store, number, TXS[2 * (number - 1) : 2 * number])
        assert store._index.in_memory() == 2 and listed_rows(store) == 8 and merging(store)
        gone = [tx.hash for tx in TXS[2:10]]
        write(store, lambda db: store.rewind(db, 1, [], gone, []))
        where = {TXS[0].hash: (1, 0), TXS[1].hash: (1, 1)}
        assert_found(store, where)
        assert store._index.in_memory() == 0 and listed_rows(store) == 2
        seal(store, 2, TXS[4:6])  # sealed again elsewhere: found there
        where |= {TXS[4].hash: (2, 0), TXS[5].hash: (2, 1)}
        assert_found(store, where)
        settle(store, 2)  # the merge dropped by the rewind: its rows deleted, no other
        assert count(store, "tx_run_rows") == listed_rows(store) == 2
        assert_found(store, where)
    with opened(tmp_path / "sequencer.db") as store:
        assert_found(store, where)


def test_a_database_with_the_hash_keyed_table_is_migrated_once(tmp_path: pathlib.Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tx_index, "RUN_TXS", 1000)  # all in memory: then made an older version's table
    path = tmp_path / "sequencer.db"
    where: dict[bytes, tuple[int, int]] = {}
    with opened(path) as store:
        for number in range(1, 4):
            seal(store, number, TXS[3 * (number - 1) : 3 * number], deposits=number - 1)
            where.update((tx.hash, (number, number - 1 + i)) for i, tx in enumerate(TXS[3 * (number - 1): 3 * number]))
    db = sqlite3.connect(path)
    db.executescript(_tx_index.LEGACY_SCHEMA + ";DROP TABLE tx_runs; DROP TABLE tx_run_rows;")
    db.executemany("INSERT INTO tx_index (hash, block_number, idx) VALUES (?, ?, ?)",
                   [(h, n, i) for h, (n, i) in where.items()])
    db.commit()
    db.close()
    monkeypatch.setattr(_tx_index, "RUN_TXS", 4)
    with opened(path) as store:
        assert levels(store) == [2] and store._index.in_memory() == 0  # one top-level run through block 3
        assert store._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'tx_index'").fetchone() is None
        assert_found(store, where)
        seal(store, 4, TXS[9:11])  # after it: in memory
        where |= {TXS[9].hash: (4, 0), TXS[10].hash: (4, 1)}
        assert store._index.in_memory() == 2
        assert_found(store, where)
    with opened(path) as store:  # nothing to migrate again
        assert levels(store) == [2] and store._index.in_memory() == 2
        assert_found(store, where)


async def test_a_transaction_in_an_old_run_sent_again_is_refused(tmp_path: pathlib.Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The index checks a block only against the blocks in memory: one in a run is refused by the
    pool (its sender's nonce is past it), before and after a restart, and its receipt stays."""
    monkeypatch.setattr(_tx_index, "MIN_WORK", 100)  # a merge in one slice
    sequencer = Sequencer(tmp_path)
    await sequencer.open()
    first = transfer(0, 0)
    try:
        (first_hash,) = await sequencer.intake.submit([first])
        block = await sequencer.chain.seal()
        assert block is not None
        sealed_in = block.header.number
        for nonce in range(1, 10):  # 9 blocks more: the first one's block is in a merged run
            await sequencer.intake.submit([transfer(0, nonce)])
            assert await sequencer.chain.seal() is not None
        assert 1 in levels(sequencer.store) and sequencer.store._index.in_memory() < 4
        (again,) = await sequencer.intake.submit([first])
        assert isinstance(again, Refusal) and again.reason is Reason.NONCE_TOO_LOW
    finally:
        await sequencer.close()
    sequencer = Sequencer(tmp_path)
    await sequencer.open()
    try:
        (again,) = await sequencer.intake.submit([first])
        assert isinstance(again, Refusal) and again.reason is Reason.NONCE_TOO_LOW
        stored = sequencer.store.tx(first_hash, DEFAULT_CHAIN_ID)
        assert stored is not None and (stored.status, stored.block_number) == (SEALED, sealed_in)
    finally:
        await sequencer.close()


_SEALER = """
import json, os, pathlib, random, signal, sys, asyncio
from protocol import Transaction
from services.runtime._storage import Storage
from services.sequencer import _tx_index
from services.sequencer._store import BlockWrite, SequencerStore
for name, value in json.loads(sys.argv[4]).items():
    setattr(_tx_index, name, value)
if sys.argv[3] == "die-in-swap":  # SIGKILL itself inside the slice that completes a merge, before COMMIT
    work = _tx_index._work
    def dying(*args):
        if work(*args):
            os.kill(os.getpid(), signal.SIGKILL)
        return False
    _tx_index._work = dying
path = pathlib.Path(sys.argv[1])
storage = Storage(path)
store = SequencerStore(storage.connection, storage.path)
rng = random.Random(int(sys.argv[2]))
number = store.latest_block_number() or 0
sender = bytes(20)
while True:
    number += 1
    txs = [Transaction(901, 0, 0, 0, 21_000, sender, 0, b"", (), 0, 0, 0, sender, rng.randbytes(32), b"x")
           for _ in range(rng.randrange(0, 7))]
    asyncio.run(store.run(lambda db: store.seal_block(db, BlockWrite(number, rng.randbytes(32), "{}", txs))))
"""


#: The sealer's settings (and the checking process's): runs of 16 merged 2 by 2 up to level 3, 2
#: rows a block at least and 2 a transaction (a merge is under way most of the time), filters of 64 words.
SEALER_SETTINGS = {"RUN_TXS": 16, "FANOUT": 2, "TOP_LEVEL": 3, "MIN_WORK": 2, "WORK_PER_TX": 2, "FILTER_WORDS": 64}


def sealer(tmp_path: pathlib.Path, seed: int, mode: str, monkeypatch: pytest.MonkeyPatch) -> subprocess.Popen[bytes]:
    """A process sealing blocks of 0-6 random transactions into tmp_path/sequencer.db, forever (mode
    "run") or until it SIGKILLs itself ("die-in-swap"); this process takes its settings."""
    for name, value in SEALER_SETTINGS.items():
        monkeypatch.setattr(_tx_index, name, value)
    script = tmp_path / "sealer.py"
    script.write_text(textwrap.dedent(_SEALER))
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "sequencer.db"), str(seed), mode,
                             json.dumps(SEALER_SETTINGS)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def head_of(path: pathlib.Path) -> int:
    with contextlib.suppress(sqlite3.OperationalError), contextlib.closing(sqlite3.connect(path)) as db:
        (head,) = db.execute("SELECT MAX(number) FROM blocks").fetchone()
        return int(head or 0)
    return 0


def wait_for_blocks(path: pathlib.Path, blocks: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the sealer's head is past ``blocks`` (it must not have exited meanwhile)."""
    while head_of(path) <= blocks:
        assert proc.poll() is None
        time.sleep(0.05)


def check_every_sealed_transaction(path: pathlib.Path) -> None:
    """Every transaction of every durable block found where its block has it, by the runs' rows the
    lookups read (a run being built, or merged and being deleted, aside), and none of a block that
    is not durable; then the merge under way, resumed by empty blocks, completes."""
    with opened(path) as store:
        head = store.latest_block_number()
        assert head is not None and head > 10
        reader = store._reader
        total = 0
        for number in range(1, head + 1):
            for i, tx_hash in enumerate(store.block_tx_hashes(number)):
                assert store._index.location(reader, tx_hash) == (number, i)
                total += 1
        assert listed_rows(store) + store._index.in_memory() == total
        (top,) = store._db.execute("SELECT MAX(at >> 24) FROM tx_run_rows").fetchone()
        assert top is None or top <= head
        settle(store, head)
        assert count(store, "tx_run_rows") == listed_rows(store) == total - store._index.in_memory()


def test_kill_9_while_sealing_and_merging_leaves_every_sealed_transaction_found(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process sealing blocks (SEALER_SETTINGS: a merge is under way most of the time) is
    SIGKILLed at random moments, until 3 kills have landed with a merge under way; after each kill
    every sealed transaction is found (check_every_sealed_transaction)."""
    path = tmp_path / "sequencer.db"
    rng = random.Random(7)
    mid_merge = rounds = 0
    while mid_merge < 3:
        assert rounds < 30
        proc = sealer(tmp_path, rounds, "run", monkeypatch)
        wait_for_blocks(path, head_of(path) + 40, proc)
        time.sleep(rng.random() / 2)  # then at a random moment (mid-write, mid-merge, mid-checkpoint)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        rounds += 1
        with contextlib.closing(sqlite3.connect(path)) as db:
            (building,) = db.execute("SELECT run FROM tx_merge").fetchone()
            mid_merge += building is not None
        check_every_sealed_transaction(path)


def test_kill_9_inside_the_slice_completing_a_merge_leaves_it_under_way(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sealer SIGKILLs itself inside the transaction that would list a merged run in its
    inputs' place: the inputs stay listed, the merge resumes, nothing is lost."""
    path = tmp_path / "sequencer.db"
    for round_ in range(2):
        proc = sealer(tmp_path, round_, "die-in-swap", monkeypatch)
        assert proc.wait(timeout=120) == -signal.SIGKILL
        with contextlib.closing(sqlite3.connect(path)) as db:
            (building,) = db.execute("SELECT run FROM tx_merge").fetchone()
            assert building is not None  # its last slice rolled back with the block
        check_every_sealed_transaction(path)
