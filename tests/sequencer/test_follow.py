"""The sequencer follows derivation (services/sequencer/_follow.py): the real chain, store, intake and
pending log of a sequencer, with the batches the inbox follower would have seen given directly.

W = 8 L1 blocks throughout. The L1 block hashes are made up: nothing here reads L1.
"""

from __future__ import annotations

import asyncio
import pathlib
from dataclasses import replace

import pytest

from protocol import (
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    DEV_PRIVATE_KEYS,
    MESSAGE_PASSER,
    BatchBlock,
    Deposit,
    QueuedDeposit,
    QueuedForced,
    encode_withdrawal_call,
    heartbeat_due,
    keccak256,
    leaf_acceptable,
    window_lapsed,
)
from services.l1 import UnsignedTransaction, sign_transaction
from services.sequencer._chain import is_derived
from services.sequencer._follow import DerivationFollower, SeenBatch
from services.sequencer._producer import BlockProducer
from services.sequencer._store import FINALIZED, SAFE, SEALED
from supervisor import TaskStatus
from tests.sequencer.test_chain import GWEI, Sequencer, data_transfer, transfer

W = 8
PAYEE = bytes.fromhex("00000000000000000000000000000000000000aa")


def l1_hash(number: int) -> bytes:
    return keccak256(b"L1 block %d" % number)


def follower(s: Sequencer) -> DerivationFollower:
    s.chain.window = W
    return DerivationFollower(s.store, s.chain, W, catch_up_blocks=3)


@pytest.fixture
def seq(sequencer: Sequencer) -> Sequencer:
    return sequencer


def posted(s: Sequencer, index: int, l1_block: int, first: int, last: int) -> SeenBatch:
    """The batch the poster would have sent with blocks ``first``-``last``, seen in ``l1_block``."""
    blocks = []
    for number in range(first, last + 1):
        block = s.chain.block(number)
        assert block is not None
        h = block.header
        blocks.append(BatchBlock(number, h.timestamp, h.l1_origin_number, h.l1_origin_hash,
                                 tuple(s.store.block_batch_txs(number))))
    return SeenBatch(index, l1_block, l1_hash(l1_block), keccak256(b"batch %d" % index), tuple(blocks))


async def seal_at(s: Sequencer, origin: int, now: float) -> int:
    s.chain.set_l1_origin(origin, l1_hash(origin))
    block = await s.chain.seal(now)
    assert block is not None
    return block.header.number


async def queue_forced_and_deposit(s: Sequencer, l1_block: int) -> tuple[bytes, Deposit]:
    forced = data_transfer(4, 0, b"forced")
    deposit = Deposit(keccak256(b"deposit 0"), PAYEE, 5 * 10**18)
    await s.store.run(lambda db: (s.store.record_forced(db, [QueuedForced(0, l1_block, forced)]),
                                  s.store.record_deposits(db, [QueuedDeposit(0, l1_block, DEV_ACCOUNTS[0], deposit)])))
    return forced, deposit


def test_the_window_rules() -> None:
    assert not window_lapsed(10, 18, W) and window_lapsed(10, 19, W)  # posted by origin + W, or derivation makes it
    assert leaf_acceptable(5, 10, 5, 10, 18, W)
    assert not leaf_acceptable(5, 10, 4, 10, 18, W)  # its timestamp goes back
    assert not leaf_acceptable(5, 10, 5, 9, 18, W)  # its origin goes back
    assert not leaf_acceptable(5, 10, 5, 19, 18, W)  # an origin from the future
    assert not leaf_acceptable(5, 10, 5, 10, 19, W)  # posted too late
    assert not leaf_acceptable(5, 10, 2**64, 10, 18, W)  # a timestamp no snapshot holds
    assert heartbeat_due(10, 15, W) and not heartbeat_due(10, 14, W)


async def test_blocks_posted_in_time_are_agreed_with_and_safe(seq: Sequencer) -> None:
    f = follower(seq)
    await seq.intake.submit([transfer(0, 0)])
    await seal_at(seq, 3, 100)
    await seq.intake.submit([transfer(0, 1)])
    await seal_at(seq, 4, 101)
    await f.reconcile(horizon=7, finalized=0)  # not posted yet, window still open (0 + 8 >= 8)
    assert f.cursor.agreed == 0 and seq.chain.head.number == 2
    f.add([posted(seq, 0, 8, 1, 2)])
    await f.reconcile(horizon=W + 4 - 1, finalized=0)  # the next input is past it: 12 + 1 > 4 + W would lapse
    assert f.cursor.agreed == 2 and seq.chain.head.number == 2 and seq.chain.rewinds == 0
    assert seq.store.block_status(2) == SAFE and seq.store.batch_head(SAFE) == 2


async def test_a_lapsed_window_makes_the_sequencer_seal_derivations_blocks_and_keep_every_transaction(
        seq: Sequencer, tmp_path: pathlib.Path) -> None:
    """Nothing posted by origin + W: derivation makes block 1 itself (origin 1, deposits and forced
    only) and one more per L1 block of lapse; the sequencer drops its own block 1 and seals them, its
    transaction pending again, then sealed on top."""
    f = follower(seq)
    forced, deposit = await queue_forced_and_deposit(seq, l1_block=1)
    (sent,) = await seq.intake.submit([transfer(0, 0)])
    assert isinstance(sent, bytes)
    own = seq.chain.block(await seal_at(seq, 3, 100))
    assert own is not None and sent in own.tx_hashes
    genesis = seq.chain.block(0)
    assert genesis is not None

    await f.reconcile(horizon=W + 2, finalized=0)  # h + 1 > 0 + W: blocks 1-3 (origins 1-3) are derivation's
    chain = seq.chain
    assert chain.rewinds == 1 and chain.head.number == 3 and f.cursor.agreed == 3
    derived = [chain.block(n) for n in (1, 2, 3)]
    assert all(b is not None and is_derived(b.header) for b in derived)
    assert [b.header.l1_origin_number for b in derived if b] == [1, 2, 3]
    assert all(b.header.timestamp == genesis.header.timestamp for b in derived if b)  # the parent's timestamp
    first = derived[0]
    assert first is not None and first.hash != own.hash
    assert first.tx_hashes == (deposit.hash(), keccak256(forced))  # deposits, then forced; nothing else
    assert chain.state.get(PAYEE).balance == deposit.mint
    assert seq.store.tx(sent, DEFAULT_CHAIN_ID) is None and seq.intake.pending_entry(sent) is not None  # PENDING
    assert seq.store.block_status(3) == SAFE and seq.store.batch_of_block(3) is None  # no L1 transaction

    # Production resumes on top: catch-up blocks first, the transaction in the first of them.
    resumed = await chain.seal(200)
    assert resumed is not None and resumed.header.number == 4 and sent in resumed.tx_hashes
    assert resumed.header.l1_origin_number == 3 and resumed.header.parent_hash == chain.block(3).hash  # type: ignore[union-attr]
    sealed = seq.store.tx(sent, DEFAULT_CHAIN_ID)
    assert sealed is not None and (sealed.status, sealed.block_number) == (SEALED, 4)
    for _ in range(2):  # the rest of catch_up_blocks (3), then nothing: the origin is fresh
        assert await chain.seal(200) is not None
    assert await chain.seal(200) is None

    await f.reconcile(horizon=W + 2, finalized=W + 3)  # L1 finalized past what decided them
    assert seq.store.block_status(1) == FINALIZED


async def test_a_late_batch_is_taken_after_derivations_blocks_as_derivation_takes_it(seq: Sequencer) -> None:
    """The sequencer resumes after a lapse; its batch lands later than the derived chain's window:
    derivation makes more blocks first, then takes the batch's blocks numbered above them. The
    sequencer rewinds once more and ends with exactly that chain."""
    f = follower(seq)
    await f.reconcile(horizon=W, finalized=0)  # blocks 1 (origin 1): lapsed at 0 + W < W + 1
    assert seq.chain.head.number == 1 and is_derived(seq.chain.head)
    await seal_at(seq, 8, 300)  # catch-up block 2, origin 8
    sent = []
    for sender in (1, 2, 3, 5):  # blocks 3-6, a transfer each
        (tx_hash,) = await seq.intake.submit([transfer(sender, 0)])
        assert isinstance(tx_hash, bytes)
        sent.append(tx_hash)
        await seal_at(seq, 8, 301)
    # Lands in L1 block 12: derivation makes blocks 2-4 (origins 2-4, up to 12 - W), skips leaves
    # 2-4 and takes 5 and 6. The transfers of the skipped leaves 3 and 4 are pending again.
    late = posted(seq, 0, 12, 2, 6)
    f.add([late])
    await f.reconcile(horizon=12, finalized=0)
    chain = seq.chain
    assert chain.rewinds == 1 and chain.head.number == 6 and f.cursor.agreed == 6
    assert [chain.block(n).header.l1_origin_number for n in range(1, 7)] == [1, 2, 3, 4, 8, 8]  # type: ignore[union-attr]
    assert [is_derived(chain.block(n).header) for n in range(1, 7)] == [True] * 4 + [False] * 2  # type: ignore[union-attr]
    assert [chain.block(n).tx_hashes for n in (5, 6)] == [(sent[2],), (sent[3],)]  # type: ignore[union-attr]
    assert all(seq.intake.pending_entry(h) is not None for h in sent[:2])
    assert seq.store.batch_head(SAFE) == 6
    # Blocks 5 and 6 were sealed again, from the batch: it carries them, and their receipts say so.
    carrier = seq.store.batch_of_block(5)
    assert carrier is not None and (carrier.l1_tx_hash, carrier.first_block, carrier.last_block) == (
        late.l1_tx_hash, 5, 6)


async def test_a_rewind_survives_a_restart_with_nothing_acknowledged_lost(tmp_path: pathlib.Path) -> None:
    s = Sequencer(tmp_path)
    await s.open()
    try:
        f = follower(s)
        sent = await s.intake.submit([transfer(2, 0), transfer(2, 1)])
        await seal_at(s, 3, 100)
        await f.reconcile(horizon=W, finalized=0)
        assert s.chain.rewinds == 1
        cursor = f.cursor
    finally:
        await s.close()
    s = Sequencer(tmp_path)
    await s.open()
    try:
        f = follower(s)
        assert f.cursor == cursor and s.chain.head.number == 1 and is_derived(s.chain.head)
        assert all(isinstance(h, bytes) and s.intake.pending_entry(h) is not None for h in sent)
        s.chain.set_l1_origin(9, l1_hash(9))
        block = await s.chain.seal(200)
        assert block is not None and set(sent) <= set(block.tx_hashes)
    finally:
        await s.close()


async def test_an_idle_chain_seals_a_heartbeat_before_half_the_window_passes(seq: Sequencer) -> None:
    chain = seq.chain
    chain.window = W
    chain.set_l1_origin(4, l1_hash(4))
    assert await chain.seal(100) is None  # 4 - 0 = W / 2: not yet
    chain.set_l1_origin(5, l1_hash(5))
    beat = await chain.seal(100)
    assert beat is not None and beat.tx_hashes == () and beat.header.l1_origin_number == 5
    assert await chain.seal(100) is None


async def test_with_a_batcher_no_block_is_sealed_before_a_real_l1_origin(seq: Sequencer) -> None:
    seq.chain.window = W
    await seq.intake.submit([transfer(0, 0)])
    assert await seq.chain.seal(100) is None  # the genesis origin's hash is zero: no batch could cite it
    seq.chain.set_l1_origin(1, l1_hash(1))
    assert await seq.chain.seal(100) is not None


async def test_a_block_stream_sees_the_blocks_that_replaced_those_it_was_given(seq: Sequencer) -> None:
    f = follower(seq)
    seen: list[tuple[int, bytes]] = []

    async def watch() -> None:
        async for block in seq.chain.follow(1):
            seen.append((block.header.number, block.hash))

    task = asyncio.create_task(watch())
    try:
        await seq.intake.submit([transfer(0, 0)])
        await seal_at(seq, 3, 100)
        await seal_at(seq, 8, 101)  # a heartbeat: the origin moved past half the window
        await f.reconcile(horizon=W, finalized=0)  # lapsed: block 1 replaced, block 2 dropped
        async with asyncio.timeout(5):
            while len(seen) < 3:  # noqa: ASYNC110 - polls what the watcher task collects
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    derived = seq.chain.block(1)
    assert derived is not None and is_derived(derived.header)
    assert [n for n, _ in seen] == [1, 2, 1] and seen[2][1] == derived.hash != seen[0][1]


async def test_genesis_is_not_a_derived_block_and_brings_no_catch_up(seq: Sequencer) -> None:
    f = follower(seq)
    genesis = seq.chain.block(0)
    assert genesis is not None and genesis.header.l1_origin_hash == bytes(32) and not is_derived(genesis.header)
    await f.reconcile(horizon=3, finalized=0)
    assert seq.chain.head.number == 0 and not seq.chain.catching_up


async def test_catch_up_blocks_that_cannot_be_sealed_yet_do_not_starve_the_event_loop(seq: Sequencer) -> None:
    """No L1 origin yet (the follower sets it): the producer waits between rounds, so the follower runs."""
    seq.chain.window = W
    seq.chain.catch_up(5)
    producer = asyncio.create_task(BlockProducer(seq.chain, seq.intake, max_block_txs=1_000, block_time_s=0.02)
                                   .run(TaskStatus()))
    ticks = 0
    try:
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        seq.chain.set_l1_origin(1, l1_hash(1))
        async with asyncio.timeout(5):
            while seq.chain.catching_up:  # noqa: ASYNC110 - the producer task seals them
                await asyncio.sleep(0.01)
    finally:
        producer.cancel()
    assert ticks == 20 and seq.chain.head.number == 5


async def test_a_withdrawal_in_a_block_derivation_replaced_is_listed_again_only_from_its_new_block(
        seq: Sequencer) -> None:
    """The messages table follows the rewind: the message of the dropped block goes with it (a
    derived block records none), and comes back, same nonce, with the block that seals it again."""
    f = follower(seq)
    raw = sign_transaction(UnsignedTransaction(DEFAULT_CHAIN_ID, 0, GWEI, 10 * GWEI, 100_000, MESSAGE_PASSER, 5,
                                               encode_withdrawal_call(PAYEE, 100_000)), DEV_PRIVATE_KEYS[2])
    (sent,) = await seq.intake.submit([raw])
    own = seq.chain.block(await seal_at(seq, 3, 100))
    assert own is not None and own.message_count == 1
    assert [m.block_hash for m in seq.store.messages(0, 10).messages] == [own.hash]

    await f.reconcile(horizon=W + 2, finalized=0)  # nothing posted: blocks 1-3 are derivation's
    assert seq.chain.rewinds == 1 and seq.chain.head.number == 3
    page = seq.store.messages(0, 10)
    assert (page.messages, page.message_count, page.head) == ([], 0, 3)
    assert [seq.chain.block(n).message_count for n in (1, 2, 3)] == [0, 0, 0]  # type: ignore[union-attr]

    again = await seq.chain.seal(200)
    assert again is not None and sent in again.tx_hashes and again.message_count == 1
    (m,) = seq.store.messages(0, 10).messages
    assert (m.message.nonce, m.block_number, m.block_hash, m.tx_hash) == (0, again.header.number, again.hash, sent)
    assert m.message.target == PAYEE and m.message.value == 5


async def test_a_block_of_a_blob_batch_naming_an_origin_the_batch_did_not_is_not_derivations(seq: Sequencer) -> None:
    """Rule 5c for blob batches (protocol/_blob.py): the inbox checked only the origins the batch's
    calldata named, so derivation skips a block naming another: the sequencer's block 2 is not
    derivation's, and once the window of block 1's origin lapses derivation makes block 2 itself."""
    f = follower(seq)
    await seq.intake.submit([transfer(0, 0)])
    await seal_at(seq, 3, 100)
    await seq.intake.submit([transfer(0, 1)])
    await seal_at(seq, 4, 101)
    batch = posted(seq, 0, 8, 1, 2)
    f.add([replace(batch, origins=((3, l1_hash(3)),))])  # block 2's origin 4 not named
    await f.reconcile(horizon=W + 3 - 1, finalized=0)  # the window of origin 3 still open
    assert f.cursor.agreed == 1 and seq.store.block_status(1) == SAFE and seq.store.block_status(2) != SAFE
    own = seq.chain.block(2)
    await f.reconcile(horizon=W + 3, finalized=0)  # lapsed: block 2 is derivation's own
    block = seq.chain.block(2)
    assert own is not None and block is not None and is_derived(block.header) and block.hash != own.hash
    assert seq.chain.rewinds == 1 and f.cursor.agreed >= 2
