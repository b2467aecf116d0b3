"""The log follower on a real anvil: heads, statuses, catching up, and reorgs made with anvil's
own RPCs (anvil_reorg, anvil_rollback, evm_snapshot/evm_revert)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from services.l1 import (
    Artifact,
    Contract,
    FollowerConfig,
    FollowerUpdate,
    L1Client,
    LocalSigner,
    Log,
    LogFollower,
    Receipt,
    ReorgTooDeep,
    Status,
    TxSender,
    UnsignedTransaction,
    keccak,
    policy_config,
)
from services.runtime import CallPolicy
from tests.l1.anvil import DEV_KEYS, Anvil

BATCHER = LocalSigner(DEV_KEYS[1])
BY_DEPTH = FollowerConfig(confirmation_depth=2, use_finalized_tag=False, finality_depth=4, poll_interval_s=0.01)


def batch(payload: bytes) -> bytes:
    """A batch the inbox accepts around ``payload``: one TX leaf (no BLOCK leaf, so no L1 origin to
    check). These tests are about sending and following, not batch contents."""
    return b"\x01" + (1 + len(payload)).to_bytes(3, "big") + b"\x00" + payload


@dataclass
class Inbox:
    l1: L1Client
    contract: Contract
    sender: TxSender
    deployed_at: int

    async def append(self, data: bytes) -> Receipt:
        assert self.contract.address is not None
        tx_hash = await self.sender.send(self.contract.address, self.contract.encode_call("appendBatch", batch(data)))
        return await self.sender.wait_receipt(tx_hash, 5)

    def follower(self, config: FollowerConfig = BY_DEPTH, start_block: int | None = None) -> LogFollower:
        return LogFollower(self.l1, address=self.contract.address, topics=[self.contract.topic("BatchAppended")],
                           start_block=self.deployed_at if start_block is None else start_block, config=config)

    def data_hash(self, log: Log) -> bytes:
        event = self.contract.decode_log(log)
        assert event is not None
        value: bytes = event.args["dataHash"]
        return value


@dataclass
class Consumer:
    """Applies updates the way a service would: a tentative set, a safe set, a final set."""

    seen: dict[tuple[bytes, int], Log] = field(default_factory=dict)
    safe: set[tuple[bytes, int]] = field(default_factory=set)
    final: set[tuple[bytes, int]] = field(default_factory=set)

    def apply(self, update: FollowerUpdate) -> None:
        for log in update.removed:
            key = (log.block_hash, log.log_index)
            assert key in self.seen and key not in self.final
            del self.seen[key]
            self.safe.discard(key)
        for log in update.added:
            self.seen[(log.block_hash, log.log_index)] = log
        for log in update.safe:
            key = (log.block_hash, log.log_index)
            assert key in self.seen and key not in self.safe  # once, after being added
            self.safe.add(key)
        for log in update.finalized:
            key = (log.block_hash, log.log_index)
            assert key in self.safe and key not in self.final
            self.final.add(key)


@pytest.fixture
async def inbox(chain: Anvil) -> AsyncIterator[Inbox]:
    policy = CallPolicy(f"l1-test-{uuid.uuid4().hex[:8]}", policy_config())
    async with L1Client(chain.url, policy=policy) as l1:
        sender = await TxSender.create(l1, BATCHER)
        artifact = Artifact.load("BatchInbox")
        tx_hash = await sender.send(None, Contract(artifact).encode_deploy(BATCHER.address))
        receipt = await sender.wait_receipt(tx_hash, 5)
        yield Inbox(l1, Contract(artifact, receipt.contract_address), sender, receipt.block_number)


async def test_logs_move_from_unsafe_to_safe_to_finalized_as_blocks_are_mined(inbox: Inbox, chain: Anvil) -> None:
    follower = inbox.follower()
    receipt = await inbox.append(b"batch one")
    update = await follower.poll()
    (log,) = update.added
    assert (log.tx_hash, log.block_number, inbox.data_hash(log)) == (receipt.tx_hash, receipt.block_number,
                                                                     keccak(batch(b"batch one")))
    assert update.heads.unsafe == receipt.block_number and update.heads.status(log.block_number) is Status.UNSAFE
    assert update.safe == update.finalized == ()
    chain.rpc("evm_mine")
    assert (await follower.poll()).safe == ()  # one block deep; safe needs two
    chain.rpc("evm_mine")
    update = await follower.poll()
    assert update.safe == (log,) and update.heads.status(log.block_number) is Status.SAFE
    assert update.heads.safe == receipt.block_number and update.finalized == ()
    chain.rpc("anvil_mine", 2)
    update = await follower.poll()
    assert update.finalized == (log,) and update.heads.status(log.block_number) is Status.FINALIZED
    assert update.heads == follower.heads and update.heads.finalized == update.heads.unsafe - 4
    chain.rpc("anvil_mine", 3)
    before = follower.heads
    update = await follower.poll()
    assert update.empty and update.heads.unsafe == before.unsafe + 3 and update.heads.safe == before.safe + 3


async def test_the_nodes_finalized_tag_drives_the_finalized_head(inbox: Inbox, chain: Anvil) -> None:
    follower = inbox.follower(FollowerConfig(confirmation_depth=2, poll_interval_s=0.01))
    receipt = await inbox.append(b"batch")
    update = await follower.poll()
    assert len(update.added) == 1 and update.heads.finalized < receipt.block_number
    chain.rpc("anvil_mine", 70)
    update = await follower.poll()
    finalized = chain.rpc("eth_getBlockByNumber", "finalized", False)
    assert update.heads.finalized == int(finalized["number"], 16) >= receipt.block_number  # anvil: latest - 64
    assert len(update.safe) == 1 and update.finalized == update.safe  # both depths reached in one update


async def test_catching_up_on_history_delivers_every_log_once(inbox: Inbox, chain: Anvil) -> None:
    receipts = []
    for i in range(5):
        receipts.append(await inbox.append(f"batch {i}".encode()))
        chain.rpc("anvil_mine", 7)
    latest = int(chain.rpc("eth_blockNumber"), 16)
    follower = inbox.follower(FollowerConfig(confirmation_depth=2, finality_depth=10, use_finalized_tag=False,
                                             max_log_range=8, max_header_batch=4, poll_interval_s=0.01))
    consumer = Consumer()
    updates = 0
    async with asyncio.timeout(10), contextlib.aclosing(follower.updates()) as stream:
        async for update in stream:
            consumer.apply(update)
            updates += 1
            if update.heads.unsafe == latest:
                break
    assert updates > 3  # in ranges: finalized history by eth_getLogs, then headers in batches
    assert [log.tx_hash for log in sorted(consumer.seen.values())] == [r.tx_hash for r in receipts]
    final_logs = [log for key, log in consumer.seen.items() if key in consumer.final]
    assert all(log.block_number <= latest - 10 for log in final_logs) and len(final_logs) >= 4
    assert len(consumer.safe) == 5  # all at least 2 deep


async def test_a_block_replaced_by_anvil_reorg_is_reported_removed_and_the_new_log_added(
    inbox: Inbox, chain: Anvil
) -> None:
    follower = inbox.follower()
    consumer = Consumer()
    original = await inbox.append(b"original batch")
    consumer.apply(await follower.poll())
    (old_log,) = consumer.seen.values()
    # Replace the block with one holding a different batch, from the same batcher with the same nonce.
    tx = await inbox.l1.get_transaction(original.tx_hash)
    assert tx is not None and inbox.contract.address is not None
    data = inbox.contract.encode_call("appendBatch", batch(b"replacement batch"))
    other = BATCHER.sign(UnsignedTransaction(chain_id=31337, nonce=tx.nonce, max_priority_fee_per_gas=10**9,
                                             max_fee_per_gas=10**10, gas_limit=200_000, to=inbox.contract.address,
                                             value=0, data=data))
    chain.rpc("anvil_reorg", 1, [["0x" + other.raw.hex(), 0]])
    update = await follower.poll()
    consumer.apply(update)
    assert update.removed == (old_log,)
    (new_log,) = update.added
    assert new_log.block_number == old_log.block_number and new_log.block_hash != old_log.block_hash
    assert new_log.tx_hash == other.hash and inbox.data_hash(new_log) == keccak(batch(b"replacement batch"))
    assert await inbox.l1.get_receipt(original.tx_hash) is None
    # Both survive to finality with the new log only.
    chain.rpc("anvil_mine", 5)
    consumer.apply(await follower.poll())
    assert list(consumer.seen.values()) == [new_log] and consumer.final == {(new_log.block_hash, new_log.log_index)}


async def test_a_reorg_through_snapshot_and_revert_to_a_chain_of_the_same_height(inbox: Inbox, chain: Anvil) -> None:
    follower = inbox.follower()
    consumer = Consumer()
    snapshot = chain.rpc("evm_snapshot")
    await inbox.append(b"A")
    chain.rpc("evm_mine")
    consumer.apply(await follower.poll())
    tip = follower.heads.unsafe
    assert [inbox.data_hash(log) for log in consumer.seen.values()] == [keccak(batch(b"A"))]
    assert chain.rpc("evm_revert", snapshot)
    await inbox.sender.resync_nonce()  # the chain forgot the sender's transaction
    await inbox.append(b"B")
    chain.rpc("evm_mine")
    assert int(chain.rpc("eth_blockNumber"), 16) == tip  # same height, different blocks
    update = await follower.poll()
    consumer.apply(update)
    assert [inbox.data_hash(log) for log in update.removed] == [keccak(batch(b"A"))]
    assert [inbox.data_hash(log) for log in update.added] == [keccak(batch(b"B"))]
    assert [inbox.data_hash(log) for log in consumer.seen.values()] == [keccak(batch(b"B"))]


async def test_a_shorter_chain_after_anvil_rollback(inbox: Inbox, chain: Anvil) -> None:
    follower = inbox.follower()
    receipt = await inbox.append(b"A")
    await follower.poll()
    chain.rpc("anvil_rollback", 1)
    update = await follower.poll()
    assert [log.tx_hash for log in update.removed] == [receipt.tx_hash] and update.added == ()
    assert update.heads.unsafe == receipt.block_number - 1


async def test_a_reorg_below_the_finalized_head_stops_the_follower(inbox: Inbox, chain: Anvil) -> None:
    follower = inbox.follower()
    snapshot = chain.rpc("evm_snapshot")
    await inbox.append(b"A")
    chain.rpc("anvil_mine", 6)
    update = await follower.poll()
    assert len(update.finalized) == 1
    assert chain.rpc("evm_revert", snapshot)
    chain.rpc("anvil_mine", 10)
    with pytest.raises(ReorgTooDeep):
        await follower.poll()


async def test_starting_above_the_finalized_head_links_onto_the_block_before(inbox: Inbox, chain: Anvil) -> None:
    chain.rpc("anvil_mine", 3)
    start = int(chain.rpc("eth_blockNumber"), 16) + 1
    follower = inbox.follower(FollowerConfig(confirmation_depth=1, finality_depth=50, use_finalized_tag=False),
                              start_block=start)
    receipt = await inbox.append(b"after start")
    update = await follower.poll()
    assert [log.tx_hash for log in update.added] == [receipt.tx_hash]
    chain.rpc("anvil_rollback", 2)  # drops the log's block and the block before it, which the follower linked onto
    update = await follower.poll()
    assert [log.tx_hash for log in update.removed] == [receipt.tx_hash]


async def test_with_nothing_to_undo_a_reorg_inside_a_range_read_sparsely_is_still_seen(
    inbox: Inbox, chain: Anvil
) -> None:
    """Idle, the follower keeps only the hash of each range's end (no log above finality to undo):
    a reorg that puts a log into a block of a range already read still reaches the consumer."""
    config = FollowerConfig(confirmation_depth=2, finality_depth=50, use_finalized_tag=False)
    follower = inbox.follower(config)
    consumer = Consumer()
    consumer.apply(await follower.poll())
    chain.rpc("anvil_mine", 6)
    consumer.apply(await follower.poll())  # six blocks, no log: read sparsely
    tip = follower.heads.unsafe
    assert consumer.seen == {} and tip == int(chain.rpc("eth_blockNumber"), 16)
    assert inbox.contract.address is not None
    # The nonce at the chain's head, not counting the pool: the transaction goes straight into a block
    # of the reorg, and a transaction another test left pending must not push it past a gap.
    nonce = await inbox.l1.get_transaction_count(BATCHER.address, "latest")
    data = inbox.contract.encode_call("appendBatch", batch(b"in a replaced block"))
    tx = BATCHER.sign(UnsignedTransaction(chain_id=31337, nonce=nonce, max_priority_fee_per_gas=10**9,
                                          max_fee_per_gas=10**10, gas_limit=200_000, to=inbox.contract.address,
                                          value=0, data=data))
    chain.rpc("anvil_reorg", 4, [["0x" + tx.raw.hex(), 1]])  # the log lands 3 blocks under the tip
    update = await follower.poll()
    consumer.apply(update)
    assert update.removed == () and [log.tx_hash for log in update.added] == [tx.hash]
    assert update.added[0].block_number == tip - 2
    chain.rpc("anvil_mine", 3)
    consumer.apply(await follower.poll())
    assert consumer.safe == set(consumer.seen)  # and it goes on to safe depth as any log does


async def test_updates_back_off_while_idle_and_snap_back_when_this_client_sends(inbox: Inbox, chain: Anvil) -> None:
    config = FollowerConfig(confirmation_depth=0, finality_depth=50, use_finalized_tag=False, poll_interval_s=0.05,
                            idle_poll_s=30.0)
    follower = inbox.follower(config)
    arrivals: list[float] = []
    updates: asyncio.Queue[FollowerUpdate] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def run() -> None:
        async with contextlib.aclosing(follower.updates()) as stream:
            async for update in stream:
                arrivals.append(loop.time())
                updates.put_nowait(update)

    task = asyncio.create_task(run())
    try:
        for _ in range(40):  # blocks keep coming, with no log of ours: the polls space out
            await asyncio.to_thread(chain.rpc, "evm_mine")
            await asyncio.sleep(0.1)
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert gaps[0] < 0.5 and max(gaps) >= 1.2, gaps
        receipt = await inbox.append(b"ours")  # a transaction sent through this client wakes it at once
        while not (update := await asyncio.wait_for(updates.get(), 1.0)).added:
            pass
        assert [log.tx_hash for log in update.added] == [receipt.tx_hash]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
