"""The batcher's sender on a real anvil: signing, nonces, fees, replacement, reverts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from eth_account import Account

from services.l1 import (
    GWEI,
    Artifact,
    Contract,
    FeeCapExceeded,
    L1Client,
    LocalSigner,
    RpcError,
    SenderConfig,
    TransactionDropped,
    TxSender,
    UnsignedTransaction,
    checksum,
    keccak,
    policy_config,
)
from services.runtime import CallPolicy
from tests.l1.anvil import DEV_ADDRESSES, DEV_KEYS, Anvil
from tests.l1.test_follower import batch

BATCHER, STRANGER = LocalSigner(DEV_KEYS[1]), LocalSigner(DEV_KEYS[2])
SINK = bytes.fromhex("000000000000000000000000000000000000dead")


@pytest.fixture
async def l1(chain: Anvil) -> AsyncIterator[L1Client]:
    policy = CallPolicy(f"l1-test-{uuid.uuid4().hex[:8]}", policy_config(backoff_initial_s=0.001, backoff_max_s=0.01))
    async with L1Client(chain.url, policy=policy) as client:
        yield client


@pytest.fixture
async def inbox(l1: L1Client) -> Contract:
    deployer = await TxSender.create(l1, LocalSigner(DEV_KEYS[0]))
    artifact = Artifact.load("BatchInbox")
    receipt = await deployer.wait_receipt(
        await deployer.send(None, Contract(artifact).encode_deploy(BATCHER.address)), 5)
    return Contract(artifact, receipt.contract_address)


def test_signatures_are_what_a_wallet_library_signs() -> None:
    for to, data in ((SINK, b""), (None, b"\x60\x00"), (SINK, bytes(range(256)) * 3)):
        tx = UnsignedTransaction(chain_id=31337, nonce=7, max_priority_fee_per_gas=GWEI, max_fee_per_gas=3 * GWEI,
                                 gas_limit=90_000, to=to, value=12345, data=data)
        ours = BATCHER.sign(tx)
        fields = {"type": 2, "chainId": 31337, "nonce": 7, "maxPriorityFeePerGas": GWEI, "maxFeePerGas": 3 * GWEI,
                  "gas": 90_000, "value": 12345, "data": data, **({"to": checksum(to)} if to else {})}
        theirs = Account.sign_transaction(fields, DEV_KEYS[1])
        assert ours.raw == bytes(theirs.raw_transaction) and ours.hash == bytes(theirs.hash) == keccak(ours.raw)
    assert BATCHER.address == bytes.fromhex(DEV_ADDRESSES[1][2:])
    assert "59c6" not in repr(BATCHER)  # the key never shows up in a repr


async def test_send_and_receipt(l1: L1Client) -> None:
    sender = await TxSender.create(l1, BATCHER)
    before = await l1.get_balance(SINK)
    tx_hash = await sender.send(SINK, value=10**15)
    receipt = await sender.wait_receipt(tx_hash, 5)
    assert receipt.success and receipt.tx_hash == tx_hash and receipt.sender == BATCHER.address
    assert receipt.gas_used == 21_000 and receipt.effective_gas_price > 0
    assert await l1.get_balance(SINK) == before + 10**15
    assert sender.pending() == ()  # seen mined: forgotten


async def test_fees_follow_the_base_fee_within_the_cap(l1: L1Client) -> None:
    sender = await TxSender.create(l1, BATCHER)
    head = await l1.get_block("latest")
    assert head is not None and head.base_fee is not None
    await sender.send(SINK, value=1)
    (pending,) = sender.pending()
    tip = await l1.max_priority_fee()
    assert pending.fees.max_priority_fee_per_gas == tip
    assert pending.fees.max_fee_per_gas == 2 * head.base_fee + tip
    # No chain id given (a worker's start asks L1 nothing): asked at the first signature.
    capped = TxSender(l1, BATCHER, None, SenderConfig(max_fee_cap_wei=head.base_fee + 1))
    assert capped.chain_id is None
    await capped.send(SINK, value=1)
    assert capped.pending()[0].fees.max_fee_per_gas == head.base_fee + 1 and capped.chain_id == sender.chain_id
    broke = TxSender(l1, BATCHER, sender.chain_id, SenderConfig(max_fee_cap_wei=1))
    with pytest.raises(FeeCapExceeded):
        await broke.send(SINK, value=1)


async def test_nonce_resyncs_after_an_out_of_band_transaction(l1: L1Client) -> None:
    sender = await TxSender.create(l1, BATCHER)
    first = await sender.send(SINK, value=1)
    # The same key, used by somebody else: takes the nonce the sender would use next.
    nonce = await l1.get_transaction_count(BATCHER.address)
    other = Account.sign_transaction({"type": 2, "chainId": 31337, "nonce": nonce, "maxFeePerGas": 10 * GWEI,
                                      "maxPriorityFeePerGas": GWEI, "gas": 21_000, "to": DEV_ADDRESSES[3],
                                      "value": 1}, DEV_KEYS[1])
    await l1.send_raw_transaction(bytes(other.raw_transaction))
    second = await sender.send(SINK, value=2)  # "nonce too low" → resync → nonce + 1
    mined = [await l1.get_transaction(h) for h in (first, second)]
    assert [t.nonce for t in mined if t is not None] == [nonce - 1, nonce + 1]
    assert (await sender.wait_receipt(second, 5)).success
    # A restarted sender starts from the node's pending count.
    restarted = await TxSender.create(l1, BATCHER)
    third = await restarted.send(SINK, value=3)
    tx = await l1.get_transaction(third)
    assert tx is not None and tx.nonce == nonce + 2


async def test_a_reverting_call_is_not_retried_and_uses_no_nonce(l1: L1Client, inbox: Contract) -> None:
    assert inbox.address is not None
    sender = await TxSender.create(l1, STRANGER)
    before = l1.policy.statistics()
    nonce = await l1.get_transaction_count(STRANGER.address)
    with pytest.raises(RpcError) as caught:
        await sender.send(inbox.address, inbox.encode_call("appendBatch", batch(b"batch")))
    error = inbox.decode_error(caught.value.revert_data)
    assert error is not None and (error.name, error.args) == ("NotBatcher", (STRANGER.address,))
    after = l1.policy.statistics()
    assert after.calls - before.calls == 2  # get_transaction_count + the one eth_estimateGas
    assert after.retries == before.retries and after.failures == before.failures and after.state == "closed"
    assert await l1.get_transaction_count(STRANGER.address) == nonce
    batcher = await TxSender.create(l1, BATCHER)  # and the batcher itself can
    sent = await batcher.send(inbox.address, inbox.encode_call("appendBatch", batch(b"b")))
    receipt = await batcher.wait_receipt(sent, 5)
    assert receipt.success


async def test_a_stuck_transaction_is_replaced_with_bumped_fees(l1: L1Client, chain: Anvil) -> None:
    sender = await TxSender.create(l1, BATCHER, SenderConfig(replace_after_s=0.05, receipt_poll_s=0.02))
    chain.rpc("evm_setAutomine", False)  # nothing gets mined until we say so
    original = await sender.send(SINK, value=5)
    (pending,) = sender.pending()
    replacement = await sender.replace(original)
    (bumped,) = sender.pending()
    assert bumped.hashes == (original, replacement) and bumped.nonce == pending.nonce
    assert bumped.fees.max_fee_per_gas >= pending.fees.max_fee_per_gas * 110 // 100
    assert bumped.fees.max_priority_fee_per_gas >= pending.fees.max_priority_fee_per_gas * 110 // 100
    assert pooled(chain) == [replacement]  # the node replaced it
    # wait_receipt replaces again on its own (replace_after_s), and returns whichever version is mined.
    async with asyncio.timeout(5), asyncio.TaskGroup() as tg:
        waiting = tg.create_task(sender.wait_receipt(original, 5))
        for _ in range(500):  # until the node holds a third version
            if pooled(chain) != [replacement]:
                break
            await asyncio.sleep(0.01)
        (third,) = pooled(chain)
        chain.rpc("evm_mine")
    receipt = waiting.result()
    assert receipt.success and receipt.tx_hash == third
    assert await l1.get_receipt(original) is None and sender.pending() == ()


async def test_a_transaction_the_pool_drops_is_sent_again_as_it_is_long_before_a_bump(
        l1: L1Client, chain: Anvil) -> None:
    """anvil lets go of pooled transactions that did not fit a full block, with the key's later ones
    (a bench saw every batch in flight wait 30 s for its bump): the sender notices the node no longer
    has them and sends the very same bytes again (no new version, no bump), within
    rebroadcast_check_s, not replace_after_s."""
    sender = await TxSender.create(l1, BATCHER, SenderConfig(replace_after_s=60, rebroadcast_check_s=0.05,
                                                             receipt_poll_s=0.02))
    chain.rpc("evm_setAutomine", False)
    first, second = await sender.send(SINK, value=1), await sender.send(SINK, value=2)
    chain.rpc("anvil_dropTransaction", "0x" + first.hex())  # as the pool does: the second goes with it
    assert pooled(chain) == [] and queued(chain) == []
    async with asyncio.timeout(5), asyncio.TaskGroup() as tg:
        waiting = [tg.create_task(sender.wait_receipt(h, 5)) for h in (first, second)]
        for _ in range(500):  # until the node holds both again
            if pooled(chain) == [first, second]:
                break
            await asyncio.sleep(0.01)
        chain.rpc("evm_mine")
    assert [w.result().tx_hash for w in waiting] == [first, second]  # the very transactions, mined in order
    assert sender.pending() == ()


async def test_a_dropped_transaction_the_base_fee_has_outgrown_is_replaced_at_once() -> None:
    """Sent again as it is, a dropped transaction whose max fee the base fee has risen above is
    refused: it is replaced at market fees then, not replace_after_s later. (An anvil of its own: the
    base fee set here outlives a revert of the shared one.)"""
    chain = Anvil()
    chain.start()
    try:
        policy = CallPolicy(f"l1-test-{uuid.uuid4().hex[:8]}", policy_config(backoff_initial_s=0.001))
        async with L1Client(chain.url, policy=policy) as l1:
            sender = await TxSender.create(l1, BATCHER, SenderConfig(replace_after_s=60, rebroadcast_check_s=0.05,
                                                                     receipt_poll_s=0.02))
            chain.rpc("evm_setAutomine", False)
            sent = await sender.send(SINK, value=1)
            (pending,) = sender.pending()
            chain.rpc("anvil_dropTransaction", "0x" + sent.hex())
            chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(pending.fees.max_fee_per_gas * 3))
            chain.rpc("evm_mine")  # an empty block at that base fee: the next one's is near it
            async with asyncio.timeout(5), asyncio.TaskGroup() as tg:
                waiting = tg.create_task(sender.wait_receipt(sent, 5))
                for _ in range(500):  # until the node holds a version again
                    if pooled(chain):
                        break
                    await asyncio.sleep(0.01)
                (replacement,) = pooled(chain)
                chain.rpc("evm_mine")
            receipt = waiting.result()
            assert replacement != sent and receipt.tx_hash == replacement and receipt.success
    finally:
        chain.stop()


def pooled(chain: Anvil) -> list[bytes]:
    """The batcher's transactions in anvil's mempool."""
    pending = chain.rpc("txpool_content")["pending"].get(DEV_ADDRESSES[1].lower(), {})
    return [bytes.fromhex(entry["hash"][2:]) for entry in pending.values()]


def queued(chain: Anvil) -> list[bytes]:
    """The batcher's transactions anvil holds behind a nonce gap."""
    waiting = chain.rpc("txpool_content")["queued"].get(DEV_ADDRESSES[1].lower(), {})
    return [bytes.fromhex(entry["hash"][2:]) for entry in waiting.values()]


async def test_a_nonce_gap_left_by_a_reorg_is_reported_and_the_next_send_fills_it(
    l1: L1Client, chain: Anvil
) -> None:
    sender = await TxSender.create(l1, BATCHER, SenderConfig(replace_after_s=0.01))
    first = await sender.send(SINK, value=1)
    await sender.wait_receipt(first, 5)
    chain.rpc("anvil_rollback", 1)  # the block, and the transaction with it, are gone
    stuck = await sender.send(SINK, value=2)  # the local nonce is one ahead of the chain now
    with pytest.raises(TransactionDropped, match="nonce gap"):
        await sender.wait_receipt(stuck, 5)
    again = await sender.send(SINK, value=1)  # resynced: fills the gap
    receipt = await sender.wait_receipt(again, 5)
    tx = await l1.get_transaction(again)
    assert receipt.success and tx is not None and tx.nonce == 0


async def test_a_restarted_sender_takes_back_its_pooled_transactions_and_a_stale_nonce_resyncs(
    l1: L1Client, chain: Anvil
) -> None:
    """Several in flight, then the process dies: the next sender finds them in the node's pool
    (txpool_content), tracks them again (a stuck one can be bumped) and numbers after them. A sender
    whose local nonce fell behind the pool ("replacement transaction underpriced": the node holds
    another transaction of the key at that nonce, not outbid) resyncs instead of failing."""
    chain.rpc("evm_setAutomine", False)
    before = await TxSender.create(l1, BATCHER)
    stale = await TxSender.create(l1, BATCHER)  # its next nonce is the one `before` takes first
    sent = [await before.send(SINK, value=v) for v in (1, 2, 3)]
    restarted = await TxSender.create(l1, BATCHER)
    recovered = await restarted.recover()
    assert [p.hashes for p in recovered] == [(h,) for h in sent] and restarted.pending() == recovered
    assert [p.data for p in recovered] == [b""] * 3 and [p.value for p in recovered] == [1, 2, 3]
    bumped = await restarted.replace(sent[-1])  # a recovered one is replaceable like any other
    assert pooled(chain)[-1] == bumped
    fourth = await stale.send(SINK, value=4)  # at the pool's first nonce first: refused, then resynced
    tx = await l1.get_transaction(fourth)
    assert tx is not None and tx.nonce == recovered[-1].nonce + 1
    chain.rpc("evm_mine")
    receipt = await restarted.wait_receipt(sent[-1], 5)
    assert receipt.tx_hash == bumped and restarted.pending() == recovered[:2]
