"""Block production in one process: the real chain, intake, store and pending log of a sequencer,
driven without gRPC, for what a worker-level test cannot arrange (a block write that fails, a
poster with blocks already waiting)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import sqlite3
from collections.abc import AsyncIterator, Iterator

import pytest

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_BATCHER_KEY, DEVNET_DEPLOYER_KEY, deploy_contracts
from services.l1 import Artifact, Contract, FollowerConfig, L1Client, LocalSigner, TxSender
from services.runtime._storage import Storage
from services.sequencer._batcher import Batcher, BatcherSettings
from services.sequencer._chain import Chain
from services.sequencer._execution import State
from services.sequencer._genesis import DEV_ACCOUNTS, DEV_PRIVATE_KEYS, devnet_genesis
from services.sequencer._intake import Intake
from services.sequencer._mempool import Mempool, MempoolConfig
from services.sequencer._pending_log import PendingLog
from services.sequencer._rules import DEFAULT_CHAIN_ID
from services.sequencer._store import SEALED, SequencerStore
from services.sequencer._tx import UnsignedTransaction, sign_transaction
from tests.l1.anvil import Anvil

GWEI = 10**9


class Sequencer:
    """What services.sequencer wires together at start, over ``data``."""

    def __init__(self, data: pathlib.Path) -> None:
        self.storage = Storage(data / "sequencer.db")
        self.store = SequencerStore(self.storage.connection, self.storage.path)
        self.log = PendingLog(PendingLog.beside(self.storage.path))
        config = MempoolConfig()

        def new_pool(state: State, base_fee: int) -> Mempool:
            return Mempool(config, account_state=state.get, base_fee=base_fee)

        self.chain = Chain(self.store, devnet_genesis(), new_pool, max_block_txs=1_000)
        self.intake = Intake(self.store, self.log, DEFAULT_CHAIN_ID, lambda: self.chain.mempool, block_txs=1_000)
        self.chain.on_sealed = self.intake.sealed
        self.chain.on_dropped = self.intake.record_drops
        self.chain.on_repool = self.intake.repool

    async def open(self) -> None:
        await self.chain.open()
        await self.intake.restore()

    async def close(self) -> None:
        await self.intake.close()
        self.store.close()
        self.storage.close()


@pytest.fixture
async def sequencer(tmp_path: pathlib.Path) -> AsyncIterator[Sequencer]:
    s = Sequencer(tmp_path)
    await s.open()
    yield s
    await s.close()


def transfer(sender: int, nonce: int) -> bytes:
    fields = UnsignedTransaction(DEFAULT_CHAIN_ID, nonce, GWEI, 10 * GWEI, 21_000, DEV_ACCOUNTS[9], 1 + nonce)
    return sign_transaction(fields, DEV_PRIVATE_KEYS[sender])


def fail_block_writes(store: SequencerStore, failing: bool) -> None:
    """A trigger on the writer's connection (TEMP: nobody else sees it) that aborts every block
    insert, so the block's whole SQLite transaction fails as on a full disk; dropped, writes go on."""
    db: sqlite3.Connection = store._db
    if failing:
        db.execute("CREATE TEMP TRIGGER no_room BEFORE INSERT ON blocks "
                   "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    else:
        db.execute("DROP TRIGGER no_room")


async def test_a_failed_block_write_puts_every_acknowledged_transaction_back_in_the_pool(
        sequencer: Sequencer) -> None:
    raws = [transfer(sender, nonce) for sender in range(3) for nonce in range(4)]
    outcomes = await sequencer.intake.submit(raws)
    hashes = [o for o in outcomes if isinstance(o, bytes)]
    assert len(hashes) == len(raws) and len(sequencer.chain.mempool) == len(raws)
    head = sequencer.chain.head.number

    fail_block_writes(sequencer.store, True)
    with pytest.raises(sqlite3.IntegrityError, match="full"):
        await sequencer.chain.seal()
    assert sequencer.chain.head.number == head and len(sequencer.chain.mempool) == 0  # back to the durable head
    late = await sequencer.intake.submit([transfer(3, 0)])  # accepted meanwhile, into the new pool
    assert isinstance(late[0], bytes)

    fail_block_writes(sequencer.store, False)
    block = await sequencer.chain.seal()
    assert block is not None and block.header.number == head + 1
    assert sorted(block.tx_hashes) == sorted([*hashes, late[0]])  # nothing acknowledged waits for a restart
    for tx_hash in hashes:
        stored = sequencer.store.tx(tx_hash, DEFAULT_CHAIN_ID)
        assert stored is not None and stored.status == SEALED and stored.block_number == head + 1
    assert len(sequencer.chain.mempool) == 0 and sequencer.intake.pending_entry(hashes[0]) is None


async def test_a_transaction_sent_again_while_its_block_failed_is_not_dropped(sequencer: Sequencer) -> None:
    raw = transfer(0, 0)
    (tx_hash,) = await sequencer.intake.submit([raw])
    fail_block_writes(sequencer.store, True)
    with pytest.raises(sqlite3.IntegrityError):
        await sequencer.chain.seal()
    fail_block_writes(sequencer.store, False)
    assert await sequencer.intake.submit([raw]) == [tx_hash]  # the new pool does not know it yet
    assert await sequencer.intake.repool() == []  # already pooled: kept, not refused
    block = await sequencer.chain.seal()
    assert block is not None and block.tx_hashes == (tx_hash,)
    stored = sequencer.store.tx(tx_hash, DEFAULT_CHAIN_ID)
    assert stored is not None and stored.status == SEALED


# -- the batch poster over a real anvil ------------------------------------------------------


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    node = Anvil()
    node.start()
    try:
        yield node
    finally:
        node.stop()


async def test_a_full_batch_is_followed_at_once_not_after_the_interval(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path) -> None:
    """Blocks worth several batches wait: the poster sends them back to back. With an interval of an
    hour, a poster that slept after each batch would send one and stop there."""
    deployed = await deploy_contracts(anvil.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path / "l1-data")
    for sender in range(4):  # four blocks of ~1.5 KB of transfers each
        await sequencer.intake.submit([transfer(sender, nonce) for nonce in range(16)])
        assert await sequencer.chain.seal() is not None
    async with L1Client(anvil.url) as client:
        batcher = Batcher(
            sequencer.store, sequencer.chain, client,
            await TxSender.create(client, LocalSigner(bytes.fromhex(DEVNET_BATCHER_KEY.removeprefix("0x")))),
            Contract(Artifact.load("BatchInbox"), deployed.batch_inbox),
            Contract(Artifact.load("DepositPortal"), deployed.deposit_portal),
            BatcherSettings(interval_s=3600, max_bytes=2_000), FollowerConfig(), deployed.block_number)
        poster = asyncio.create_task(batcher.run_poster())
        try:
            async with asyncio.timeout(60):  # a bound against hanging; each post is one anvil round trip
                while batcher.batches_sent < 4:  # noqa: ASYNC110 - polls a counter the poster task moves
                    await asyncio.sleep(0.05)
        finally:
            poster.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poster
    assert batcher.batches_sent == 4  # one block each: two would exceed max_bytes
