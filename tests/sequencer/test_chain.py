"""Block production in one process: the real chain, intake, store and pending log of a sequencer,
driven without gRPC, for what a worker-level test cannot arrange (a block write that fails, a
poster with blocks already waiting, blocks of exactly measured size)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import pathlib
import random
import sqlite3
import time

import pytest

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_BATCHER_KEY, DEVNET_DEPLOYER_KEY, deploy_contracts
from protocol import (
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    DEV_PRIVATE_KEYS,
    MAX_TX_SIZE,
    BatchBlock,
    Deposit,
    Genesis,
    QueuedDeposit,
    QueuedForced,
    State,
    decode_transaction,
    devnet_genesis,
    encode_batch,
    keccak256,
)
from services.l1 import (
    Artifact,
    Contract,
    FollowerConfig,
    L1Client,
    LocalSigner,
    TxSender,
    UnsignedTransaction,
    sign_transaction,
)
from services.runtime._storage import Storage
from services.sequencer._batcher import Batcher, BatcherSettings, block_room
from services.sequencer._chain import BlockRoom, Chain, Mempools, SealedBlock
from services.sequencer._intake import Intake
from services.sequencer._mempool import Mempool, MempoolConfig
from services.sequencer._pending_log import PendingLog
from services.sequencer._producer import BlockProducer
from services.sequencer._settings import L1Settings, SequencerSettings
from services.sequencer._store import DROPPED, SEALED, SequencerStore
from supervisor import TaskStatus
from tests.l1.anvil import Anvil

GWEI = 10**9


class Sequencer:
    """What services.sequencer wires together at start, over ``data``."""

    def __init__(self, data: pathlib.Path, genesis: Genesis | None = None, block_room: BlockRoom | None = None,
                 config: MempoolConfig | None = None) -> None:
        self.storage = Storage(data / "sequencer.db")
        self.store = SequencerStore(self.storage.connection, self.storage.path)
        self.log = PendingLog(PendingLog.beside(self.storage.path))
        config = config or MempoolConfig()

        def new_pool(state: State, base_fee: int) -> Mempool:
            return Mempool(config, account_state=state.get, base_fee=base_fee)

        pools = Mempools(new_pool)
        self.intake = Intake(self.store, self.log, DEFAULT_CHAIN_ID, pools.current, block_txs=1_000,
                             decode_threads=2)
        self.chain = Chain(self.store, genesis or devnet_genesis(), pools, self.intake, max_block_txs=1_000,
                           block_room=block_room)

    async def open(self) -> None:
        await self.chain.open()
        await self.intake.restore()

    async def close(self) -> None:
        await self.intake.close()
        self.store.close()
        self.storage.close()


def transfer(sender: int, nonce: int, *, fee_cap: int = 10 * GWEI) -> bytes:
    fields = UnsignedTransaction(DEFAULT_CHAIN_ID, nonce, min(GWEI, fee_cap), fee_cap, 21_000, DEV_ACCOUNTS[9],
                                 1 + nonce)
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


async def test_a_full_batch_is_followed_at_once_not_after_the_interval(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path) -> None:
    """Blocks worth several batches wait: the poster sends them back to back. With an interval of an
    hour, a poster that slept after each batch would send one and stop there."""
    deployed = await deploy_contracts(anvil.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path / "l1-data")
    origin = anvil.rpc("eth_getBlockByNumber", "latest", False)  # an origin the inbox attests
    sequencer.chain.set_l1_origin(int(origin["number"], 16), bytes.fromhex(origin["hash"][2:]))
    for sender in range(4):  # four blocks of ~1.5 KB of transfers each
        await sequencer.intake.submit([transfer(sender, nonce) for nonce in range(16)])
        assert await sequencer.chain.seal() is not None
    async with L1Client(anvil.url) as client:
        batcher = Batcher(
            sequencer.store, sequencer.chain, client,
            await TxSender.create(client, LocalSigner(bytes.fromhex(DEVNET_BATCHER_KEY.removeprefix("0x")))),
            Contract(Artifact.load("BatchInbox"), deployed.batch_inbox),
            Contract(Artifact.load("DepositPortal"), deployed.deposit_portal),
            BatcherSettings(interval_s=3600, max_bytes=2_000), FollowerConfig(), deployed.block_number, window=3600)
        # The poster waits for the follower's first pass (what L1 already holds is not posted again).
        tasks = [asyncio.create_task(batcher.run_poster()), asyncio.create_task(batcher.run_follower())]
        try:
            async with asyncio.timeout(60):  # a bound against hanging; each post is one anvil round trip
                while batcher.batches_sent < 4:  # noqa: ASYNC110 - polls a counter the poster task moves
                    await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    assert batcher.batches_sent == 4  # one block each: two would exceed max_bytes


# -- every block's batch fits one L1 transaction ------------------------------------------------


def data_transfer(sender: int, nonce: int, data: bytes) -> bytes:
    fields = UnsignedTransaction(DEFAULT_CHAIN_ID, nonce, GWEI, 10 * GWEI, 21_000 + 16 * len(data), DEV_ACCOUNTS[9],
                                 1, data)
    return sign_transaction(fields, DEV_PRIVATE_KEYS[sender])


def batch_of(store: SequencerStore, block: SealedBlock) -> bytes:
    h = block.header
    return encode_batch([BatchBlock(h.number, h.timestamp, h.l1_origin_number, h.l1_origin_hash,
                                    tuple(store.block_batch_txs(h.number)))])


async def test_a_block_carries_no_more_than_one_l1_transaction_can_post(tmp_path: pathlib.Path) -> None:
    limit = L1Settings().max_batch_data
    sequencer = Sequencer(tmp_path, block_room=functools.partial(block_room, limit))  # as with a batcher
    await sequencer.open()
    try:
        raws = [data_transfer(0, nonce, random.randbytes(40_000)) for nonce in range(5)]  # incompressible
        assert all(isinstance(o, bytes) for o in await sequencer.intake.submit(raws))
        first = await sequencer.chain.seal()
        second = await sequencer.chain.seal()
        assert first is not None and second is not None
        assert (len(first.tx_hashes), len(second.tx_hashes)) == (3, 2)  # 4 x 40 KB would not post
        assert all(len(batch_of(sequencer.store, b)) <= limit for b in (first, second))
        zeros = [data_transfer(1, nonce, bytes(40_000)) for nonce in range(5)]  # batches are not compressed:
        assert all(isinstance(o, bytes) for o in await sequencer.intake.submit(zeros))  # zeros take room too
        block = await sequencer.chain.seal()
        assert block is not None and len(block.tx_hashes) == 3 and len(batch_of(sequencer.store, block)) <= limit
        assert await sequencer.chain.seal() is not None
        many = [transfer(sender, nonce) for sender in range(2, 9) for nonce in range(16)]  # transfers: under the bound
        assert all(isinstance(o, bytes) for o in await sequencer.intake.submit(many))
        block = await sequencer.chain.seal()
        assert block is not None and len(block.tx_hashes) == len(many)
    finally:
        await sequencer.close()


async def test_a_block_s_worth_pending_by_its_room_is_sealed_at_once_not_after_the_block_time(
        tmp_path: pathlib.Path) -> None:
    """A block's room (one batch's data), not ``max_block_txs``, is what fills it under load: once
    the room cut a block short, as many pending as it held are a block's worth, and the producer
    seals them at once. Waiting out the block time after every full block would cap sealing at a
    room per block time however fast the code (3,442 transfers per 250 ms: 13.8k tx/s with 390 kB
    batches). Less than a block's worth waits for the block time."""
    limit = L1Settings().max_batch_data
    sequencer = Sequencer(tmp_path, block_room=functools.partial(block_room, limit))
    await sequencer.open()
    chain = sequencer.chain
    producer = BlockProducer(chain, sequencer.intake, max_block_txs=1_000, block_time_s=60)
    task: asyncio.Task[None] | None = None
    try:
        assert chain.block_worth(1_000) == 1_000  # no block cut short yet
        raws = [data_transfer(0, nonce, random.randbytes(40_000)) for nonce in range(7)]  # 3 fit a block
        assert all(isinstance(o, bytes) for o in await sequencer.intake.submit(raws))
        task = asyncio.create_task(producer.run(TaskStatus()))
        sizes = []
        async with asyncio.timeout(10):  # the block time is a minute
            async for block in chain.follow(1):
                sizes.append(len(block.tx_hashes))
                if block.header.number == 2:
                    break
        assert sizes == [3, 3]  # the second went at once: 4 pending were more than the 3 a block held
        await asyncio.sleep(0.2)
        assert chain.head.number == 2 and len(chain.mempool) == 1  # 1 of 3: it waits for the minute
        assert chain.block_worth(1_000) == 3 and chain.block_worth(2) == 2
        more = [data_transfer(0, nonce, random.randbytes(40_000)) for nonce in range(7, 9)]
        assert all(isinstance(o, bytes) for o in await sequencer.intake.submit(more))  # 3 pending: a block's worth
        async with asyncio.timeout(10):
            async for block in chain.follow(3):
                assert len(block.tx_hashes) == 3
                break
        assert chain.block_worth(1_000) == 1_000  # that block held all it was offered
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sequencer.close()


def test_with_a_batcher_the_pool_refuses_what_no_l1_transaction_can_carry(tmp_path: pathlib.Path) -> None:
    l1 = {"rpc": "http://127.0.0.1:1", "contracts": "contracts.json", "batcher_key_file": "batcher.key"}
    limits = L1Settings(**l1)
    assert SequencerSettings.from_mapping({}).mempool_config().max_tx_size == MAX_TX_SIZE  # no batcher: no bound
    assert SequencerSettings.from_mapping({"l1": l1}).mempool_config().max_tx_size == limits.max_l2_tx < MAX_TX_SIZE
    # A batch larger than one L1 transaction goes in frames; a frame cannot outgrow one.
    framed = SequencerSettings.from_mapping({"l1": {**l1, "batch_max_bytes": 4 * limits.max_batch_data}})
    assert framed.l1_settings().block_data == 4 * limits.max_batch_data
    assert framed.mempool_config().max_tx_size == limits.max_l2_tx
    with pytest.raises(ValueError, match="max_frame_bytes"):
        SequencerSettings.from_mapping({"l1": {**l1, "max_frame_bytes": limits.max_batch_data + 1}})
    # the largest transaction the pool lets in posts alone, incompressible as it may be
    probe = data_transfer(0, 0, bytes(100_000))
    overhead = len(probe) - 100_000
    largest = data_transfer(0, 0, random.randbytes(limits.max_l2_tx - overhead))
    while len(largest) != limits.max_l2_tx:  # a signature whose r or s has a leading zero byte (1 in 128)
        largest = data_transfer(0, 0, random.randbytes(limits.max_l2_tx - overhead))
    tx = decode_transaction(largest, DEFAULT_CHAIN_ID)
    assert block_room(limits.max_batch_data, 2**40, 2**40, 2**40, bytes(32), [tx]) == 1
    assert len(encode_batch([BatchBlock(2**40, 2**40, 2**40, bytes(32), (largest,))])) <= limits.max_batch_data


# -- what the seal refuses of the pool's selection ----------------------------------------------


async def force(s: Sequencer, index: int, raw: bytes) -> None:
    """An entry of the inbox's forced queue, seen at safe depth (what the batcher's follower records)."""
    await s.store.run(lambda db: s.store.record_forced(db, [QueuedForced(index, 0, raw)]))


async def test_a_transaction_a_full_block_has_no_gas_left_for_waits_for_the_next(tmp_path: pathlib.Path) -> None:
    s = Sequencer(tmp_path, dataclasses.replace(devnet_genesis(), gas_limit=100_000))
    await s.open()
    try:
        forced = data_transfer(5, 0, b"\x01" * 3_000)  # 69,000 gas, applied before the pool's selection
        await force(s, 0, forced)
        first, second = await s.intake.submit([transfer(1, 0), transfer(1, 1)])  # 21,000 each
        block = await s.chain.seal()
        assert block is not None and block.tx_hashes == (keccak256(forced), first)  # no gas left for the second
        assert isinstance(second, bytes) and s.intake.pending_entry(second) is not None
        assert s.store.tx(second, DEFAULT_CHAIN_ID) is None  # not dropped: still pending
        block = await s.chain.seal()
        assert block is not None and block.tx_hashes == (second,)
    finally:
        await s.close()


async def test_a_nonce_a_forced_transaction_took_drops_only_that_transaction(sequencer: Sequencer) -> None:
    forced = data_transfer(2, 0, b"forced")  # sender 2's nonce 0, not the one in the pool
    await force(sequencer, 0, forced)
    taken, after = await sequencer.intake.submit([transfer(2, 0), transfer(2, 1)])
    block = await sequencer.chain.seal()
    assert block is not None and block.tx_hashes == (keccak256(forced), after)
    assert isinstance(taken, bytes)
    stored = sequencer.store.tx(taken, DEFAULT_CHAIN_ID)
    assert stored is not None and (stored.status, stored.drop_reason) == (DROPPED, "NONCE_TOO_LOW")


async def test_empty_blocks_lower_the_base_fee_while_a_fee_cap_waits_under_it(sequencer: Sequencer) -> None:
    chain = sequencer.chain
    fee_cap = 6 * GWEI // 10
    assert chain.next_base_fee > fee_cap
    (tx_hash,) = await sequencer.intake.submit([transfer(0, 0, fee_cap=fee_cap)])
    assert isinstance(tx_hash, bytes)
    waiting = chain.mempool.waiting(tx_hash)
    assert waiting is not None and waiting.message == f"fee cap {fee_cap} under base fee {chain.next_base_fee}"
    now = float(chain.head.timestamp)
    assert await chain.seal(now) is None  # the last block is too recent: no empty block yet
    base_fees = []
    while True:
        now += 1.0  # empty_block_time_s
        block = await chain.seal(now)
        assert block is not None
        base_fees.append(block.header.base_fee)
        if block.tx_hashes:
            break
        assert block.header.gas_used == 0
    assert block.tx_hashes == (tx_hash,) and block.header.base_fee <= fee_cap
    assert base_fees == sorted(base_fees, reverse=True) and len(set(base_fees)) == len(base_fees) > 2
    assert await chain.seal(now + 10) is None  # nothing waits on the base fee: an idle chain seals nothing


async def test_an_idle_chain_seals_no_empty_blocks(sequencer: Sequencer) -> None:
    assert await sequencer.chain.seal(1e9) is None


async def test_a_fee_cap_under_the_base_fee_for_its_whole_lifetime_is_dropped_saying_so(
        tmp_path: pathlib.Path) -> None:
    s = Sequencer(tmp_path, config=MempoolConfig(lifetime=5.0))
    await s.open()
    try:
        (tx_hash,) = await s.intake.submit([transfer(0, 0, fee_cap=GWEI // 2)])
        (behind,) = await s.intake.submit([transfer(0, 1)])
        assert isinstance(tx_hash, bytes) and isinstance(behind, bytes)
        await s.chain.expire(time.monotonic())
        assert tx_hash in s.chain.mempool
        await s.chain.expire(time.monotonic() + 6.0)
        for h, reason in ((tx_hash, "FEE_CAP_BELOW_BASE_FEE"), (behind, "NONCE_GAP")):
            stored = s.store.tx(h, DEFAULT_CHAIN_ID)
            assert stored is not None and (stored.status, stored.drop_reason) == (DROPPED, reason)
        assert len(s.chain.mempool) == 0
    finally:
        await s.close()


async def test_deposits_due_at_a_new_l1_origin_wake_the_producer_at_once(sequencer: Sequencer) -> None:
    """A deposit is minted as soon as L1's safe head passes it, not at the producer's next tick:
    with a block time of a minute, the block minting it comes at once all the same."""
    deposit = Deposit(keccak256(b"deposit"), b"\xd0" * 20, 10**18)
    store = sequencer.store
    await store.run(lambda db: store.record_deposits(db, [QueuedDeposit(0, 7, DEV_ACCOUNTS[0], deposit)]))
    sequencer.chain.set_l1_origin(6, keccak256(b"L1 block 6"))
    assert not sequencer.chain.inputs_due.is_set()  # nothing due at block 6
    producer = BlockProducer(sequencer.chain, sequencer.intake, max_block_txs=1_000, block_time_s=60)
    task = asyncio.create_task(producer.run(TaskStatus()))
    try:
        await asyncio.sleep(0.05)  # its first round found nothing: it waits for its minute
        assert sequencer.chain.head.number == 0
        sequencer.chain.set_l1_origin(7, keccak256(b"L1 block 7"))
        assert sequencer.chain.inputs_due.is_set()
        async with asyncio.timeout(5):
            block = await anext(aiter(sequencer.chain.follow(1)))
        assert block.header.number == 1 and block.tx_hashes == (deposit.hash(),)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_reads_see_the_head_not_a_block_still_being_made_durable(sequencer: Sequencer) -> None:
    """The chain's state holds a block's changes from its execution on, before the block is durable
    and the head: a read meanwhile (GetAccount, and so eth_getBalance "latest") must give the
    head's account, or it would show a balance that a crash before the commit takes back."""
    sender, recipient = DEV_ACCOUNTS[0], DEV_ACCOUNTS[9]
    before = {a: sequencer.chain.account(a) for a in (sender, recipient)}
    await sequencer.intake.submit([transfer(0, 0)])
    # Another writer holds SQLite's write lock: the block's commit waits on it (busy timeout).
    other = sqlite3.connect(sequencer.storage.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        sealing = asyncio.create_task(sequencer.chain.seal())
        for _ in range(200):  # until the block is executed and its write is waiting
            await asyncio.sleep(0.01)
            if sequencer.chain.state.get(sender).nonce == 1:
                break
        assert sequencer.chain.state.get(sender).nonce == 1 and not sealing.done()
        assert {a: sequencer.chain.account(a) for a in (sender, recipient)} == before
    finally:
        other.execute("ROLLBACK")
        other.close()
    block = await sealing
    assert block is not None and sequencer.chain.head.number == block.header.number
    after = {a: sequencer.chain.account(a) for a in (sender, recipient)}
    assert after[sender].nonce == 1 and after[recipient].balance == before[recipient].balance + 1
