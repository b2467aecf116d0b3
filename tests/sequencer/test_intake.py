"""The intake: its bounded memory of which call accepted which transaction (for the seal's span
links), and what it makes of the store and the pending log across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys

import pytest
from opentelemetry.trace import SpanContext

from protocol import DEFAULT_CHAIN_ID, DEV_PRIVATE_KEYS, Reason, keccak256
from services.l1 import UnsignedTransaction, sign_transaction
from services.runtime._storage import Storage
from services.sequencer import _intake as intake_module
from services.sequencer._intake import Intake, SpanMemory
from services.sequencer._mempool import AccountState, Mempool, MempoolConfig
from services.sequencer._pending_log import PendingLog
from services.sequencer._settings import SequencerSettings
from services.sequencer._store import DROPPED, SEALED, BlockWrite, SequencerStore

GWEI = 10**9


def context(n: int) -> SpanContext:
    return SpanContext(trace_id=n + 1, span_id=n + 1, is_remote=False)


def test_span_memory_keeps_the_newest_and_stays_bounded() -> None:
    memory = SpanMemory(8)
    for n in range(10):
        memory.remember([b"%d" % n], context(n))
        assert len(memory) <= 8
        assert memory.get(b"%d" % n) == context(n)  # the newest is always there
    assert memory.get(b"0") is None and memory.get(b"1") is None  # the oldest went first
    assert [memory.get(b"%d" % n) for n in (8, 9)] == [context(8), context(9)]
    memory.remember([b"x", b"y"], context(42))  # a call's whole batch under one context
    assert memory.get(b"x") == memory.get(b"y") == context(42)


# -- restart: what the store and the pending log say together -------------------------------


class Node:
    """The store, the pending log and the intake of one process lifetime, over ``data``."""

    def __init__(self, data: pathlib.Path) -> None:
        self.storage = Storage(data / "sequencer.db")
        self.store = SequencerStore(self.storage.connection, self.storage.path)
        self.log = PendingLog(PendingLog.beside(self.storage.path))
        self.pool = Mempool(MempoolConfig(), account_state=lambda sender: AccountState(0, 10**30), base_fee=GWEI)
        self.intake = Intake(self.store, self.log, DEFAULT_CHAIN_ID, lambda: self.pool, block_txs=100,
                             decode_threads=2)

    async def drop(self, tx_hash: bytes, reason: Reason) -> None:
        """What the chain does when the pool lets a transaction go."""
        await self.intake.record_drops(self.pool.drop(tx_hash, reason))

    async def seal(self, number: int, tx_hash: bytes) -> None:
        """A block of the one transaction, as the chain writes it."""
        tx = self.intake.pending_entry(tx_hash)
        assert tx is not None
        header = json.dumps({"base_fee": str(GWEI)})
        await self.store.run(lambda db: self.store.seal_block(db, BlockWrite(number, bytes([number]) * 32, header,
                                                                             [tx])))
        self.intake.sealed([tx.hash])

    async def close(self) -> None:
        await self.intake.close()
        self.store.close()
        self.storage.close()


def transfer(nonce: int) -> bytes:
    key = DEV_PRIVATE_KEYS[2]
    return sign_transaction(UnsignedTransaction(DEFAULT_CHAIN_ID, nonce, GWEI, 10 * GWEI, 21_000, b"\xee" * 20, 1),
                            key)


def transfer_hash(nonce: int) -> bytes:
    return keccak256(transfer(nonce))


def forget_the_log(path: pathlib.Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(str(path) + suffix).unlink(missing_ok=True)


def status(node: Node, tx_hash: bytes) -> int | None:
    row = node.store.tx(tx_hash, DEFAULT_CHAIN_ID)
    return None if row is None else row.status


async def test_a_transaction_dropped_then_sent_again_comes_back_after_a_restart_and_is_sealed(
        tmp_path: pathlib.Path) -> None:
    raw = transfer(0)
    node = Node(tmp_path)
    (tx_hash,) = await node.intake.submit([raw])
    assert isinstance(tx_hash, bytes)
    await node.drop(tx_hash, Reason.EXPIRED)
    assert status(node, tx_hash) == DROPPED and node.intake.pending_entry(tx_hash) is None
    assert await node.intake.submit([raw]) == [tx_hash]  # sent again: a newer pending log entry
    await node.close()

    node = Node(tmp_path)
    assert await node.intake.restore() == []
    assert node.intake.pending_entry(tx_hash) is not None and len(node.pool) == 1  # not settled by its old drop
    await node.seal(1, tx_hash)
    assert status(node, tx_hash) == SEALED
    await node.close()

    node = Node(tmp_path)
    assert await node.intake.restore() == []
    assert node.intake.pending_entry(tx_hash) is None and len(node.pool) == 0  # sealed: settled
    assert status(node, tx_hash) == SEALED
    await node.close()


async def test_after_a_restart_new_entries_are_numbered_above_every_dropped_one(tmp_path: pathlib.Path) -> None:
    raw = transfer(0)
    node = Node(tmp_path)
    for nonce in (1, 2, 3):  # other entries first: the dropped one's seq is 4
        await node.intake.submit([transfer(nonce)])
    (tx_hash,) = await node.intake.submit([raw])
    assert isinstance(tx_hash, bytes)
    await node.drop(tx_hash, Reason.EXPIRED)
    for nonce in (1, 2, 3):
        await node.drop(transfer_hash(nonce), Reason.EXPIRED)
    await node.close()
    # Every log entry's deletion durable (here: the whole log gone): only the store remembers seq 4.
    forget_the_log(PendingLog.beside(tmp_path / "sequencer.db"))

    node = Node(tmp_path)
    assert await node.intake.restore() == []
    assert await node.intake.submit([raw]) == [tx_hash]  # sent again after the restart
    assert [seq for seq, _ in node.log.entries()] == [5]
    await node.close()

    node = Node(tmp_path)  # so the next restart sees it pending again, not dropped as seq 4
    await node.intake.restore()
    assert node.intake.pending_entry(tx_hash) is not None
    await node.close()



async def test_a_restart_deletes_the_settled_entries_for_good_and_decodes_only_the_rest(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed after a block is durable and before its entries' deletion commits: a worker
    killed in a loop used to decode every sealed transaction again at each start (65,826 of them at
    1M accounts: 3.4 s)."""
    node = Node(tmp_path)
    monkeypatch.setattr(node.log, "forget", lambda seqs: None)  # the deletions never commit: the kill
    hashes = await node.intake.submit([transfer(n) for n in range(3)])
    for number, tx_hash in enumerate(hashes[:2], start=1):
        assert isinstance(tx_hash, bytes)
        await node.seal(number, tx_hash)
    await node.close()  # both sealed entries are still in the log

    node = Node(tmp_path)
    assert len(node.log.entries()) == 3
    decoded: list[int] = []
    real = intake_module.decode_transactions
    monkeypatch.setattr(intake_module, "decode_transactions",
                        lambda raws, chain_id: decoded.append(len(raws)) or real(raws, chain_id))
    assert await node.intake.restore() == []
    assert decoded == [1]  # the one still pending, not the two sealed
    assert [e.seq for e in node.log.entries()] == [3] and len(node.pool) == 1
    await node.close()


# -- the decode threads' priority -------------------------------------------------------------


@pytest.mark.skipif(sys.platform != "linux", reason="nice is per thread on Linux only")
async def test_decode_threads_run_below_the_event_loop_by_decode_nice(tmp_path: pathlib.Path) -> None:
    """Recovery on the decode threads needs no GIL; the loop holds it: a loop waiting for a CPU
    behind a decode thread would hold up every Python thread of the worker."""
    storage = Storage(tmp_path / "sequencer.db")
    store = SequencerStore(storage.connection, storage.path)
    log = PendingLog(PendingLog.beside(storage.path))
    pool = Mempool(MempoolConfig(), account_state=lambda sender: AccountState(0, 10**30), base_fee=GWEI)
    intake = Intake(store, log, DEFAULT_CHAIN_ID, lambda: pool, block_txs=100, decode_threads=1, decode_nice=5)
    base = os.getpriority(os.PRIO_PROCESS, 0)  # the calling thread's (Linux)
    try:
        assert isinstance((await intake.submit([transfer(0)]))[0], bytes)  # decoding works at that priority
        seen = await asyncio.get_running_loop().run_in_executor(intake._decoders, os.getpriority, os.PRIO_PROCESS, 0)
        assert seen == min(19, base + 5)
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the loop's thread is left as it was
    finally:
        await intake.close()
        store.close()
        storage.close()


def test_decode_nice_is_a_whole_number_from_0_to_19() -> None:
    assert SequencerSettings.from_mapping({}).decode_nice == 5
    assert SequencerSettings.from_mapping({"decode_nice": 0}).decode_nice == 0
    for bad in (-1, 20, 2.5, True):
        with pytest.raises(ValueError, match="decode_nice"):
            SequencerSettings.from_mapping({"decode_nice": bad})
