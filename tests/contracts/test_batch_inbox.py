"""BatchInbox on a real anvil: batcher-only appends, forced inclusion, views, custom errors."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from services.l1 import Artifact, Contract, L1Client, LocalSigner, Receipt, RpcError, TxSender, keccak
from tests.l1.anvil import DEV_KEYS

ARTIFACT = Artifact.load("BatchInbox")
DEPLOYER, BATCHER, ALICE, BOB = (LocalSigner(k) for k in DEV_KEYS)
L2_CHAIN_ID = 901


@pytest.fixture
async def inbox(l1: L1Client) -> Contract:
    deployer = await TxSender.create(l1, DEPLOYER)
    tx_hash = await deployer.send(None, Contract(ARTIFACT).encode_deploy(BATCHER.address))
    receipt = await deployer.wait_receipt(tx_hash, 5)
    assert receipt.success and receipt.contract_address is not None
    return Contract(ARTIFACT, receipt.contract_address)


async def transact(l1: L1Client, signer: LocalSigner, inbox: Contract, function: str, *args: Any,
                   gas: int | None = None) -> Receipt:
    assert inbox.address is not None
    sender = await TxSender.create(l1, signer)
    tx_hash = await sender.send(inbox.address, inbox.encode_call(function, *args), gas=gas)
    return await sender.wait_receipt(tx_hash, 5)


async def revert_of(l1: L1Client, inbox: Contract, signer: LocalSigner, function: str, *args: Any) -> Any:
    assert inbox.address is not None
    with pytest.raises(RpcError) as caught:
        await l1.call(inbox.address, inbox.encode_call(function, *args), sender=signer.address)
    assert caught.value.code == 3  # execution reverted: an answer, with revert data
    return inbox.decode_error(caught.value.revert_data)


def root(batch: bytes) -> bytes:
    """A stand-in input root (the inbox stores it; derivation, not the inbox, checks it)."""
    return keccak(b"root" + batch)


def l2_transaction(nonce: int) -> Any:
    return Account.sign_transaction(
        {"type": 2, "chainId": L2_CHAIN_ID, "nonce": nonce, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9,
         "gas": 21000, "to": BOB.address, "value": 1, "data": b""}, DEV_KEYS[2])


async def test_the_batcher_appends_batches_and_derivation_finds_their_data(l1: L1Client, inbox: Contract) -> None:
    batches = [b"\x01first batch" * 10, b"\x02second"]
    receipts = [await transact(l1, BATCHER, inbox, "appendBatch", b, root(b)) for b in batches]
    for index, (batch, receipt) in enumerate(zip(batches, receipts, strict=True)):
        assert receipt.success
        (event,) = [inbox.decode_log(log) for log in receipt.logs]
        assert event is not None and event.name == "BatchAppended"
        assert event.args == {"index": index, "dataHash": keccak(batch), "inputRoot": root(batch),
                              "l1Block": receipt.block_number}
        # The input root and L1 block are stored: a one-step proof reads them.
        assert await inbox.read(l1, "batch", index) == (root(batch), receipt.block_number)
        assert event.log.topics[1] == index.to_bytes(32, "big")  # index is indexed: filterable
        # Derivation: the event's transaction carries the batch in its input.
        tx = await l1.get_transaction(event.log.tx_hash)
        assert tx is not None and tx.to == inbox.address
        assert inbox.decode_input("appendBatch", tx.input) == (batch, root(batch))
    assert await inbox.read(l1, "batchCount") == (2,)
    assert await inbox.read(l1, "batcher") == (BATCHER.address,)


async def test_appending_is_cheap(l1: L1Client, inbox: Contract) -> None:
    batch = bytes(range(256)) * 4
    receipt = await transact(l1, BATCHER, inbox, "appendBatch", batch, root(batch))
    calldata_gas = 16 * (len(batch) + 100)
    assert receipt.gas_used < 21_000 + calldata_gas + 70_000  # two new slots, one log, no data in storage


async def test_only_the_batcher_may_append(l1: L1Client, inbox: Contract) -> None:
    error = await revert_of(l1, inbox, ALICE, "appendBatch", b"junk", root(b"junk"))
    assert (error.name, error.args) == ("NotBatcher", (ALICE.address,))
    # Mined anyway (explicit gas skips the estimate): reverted, nothing appended.
    receipt = await transact(l1, ALICE, inbox, "appendBatch", b"junk", root(b"junk"), gas=100_000)
    assert not receipt.success and receipt.logs == ()
    assert await inbox.read(l1, "batchCount") == (0,)


async def test_empty_input_is_refused(l1: L1Client, inbox: Contract) -> None:
    assert (await revert_of(l1, inbox, BATCHER, "appendBatch", b"", root(b"x"))).name == "EmptyData"
    assert (await revert_of(l1, inbox, BATCHER, "appendBatch", b"x", bytes(32))).name == "ZeroInputRoot"
    assert (await revert_of(l1, inbox, ALICE, "forceInclude", b"")).name == "EmptyData"


async def test_anyone_can_force_include_a_signed_l2_transaction(l1: L1Client, inbox: Contract) -> None:
    queued = [(ALICE, l2_transaction(0)), (BOB, l2_transaction(1))]
    for index, (signer, signed) in enumerate(queued):
        raw = bytes(signed.raw_transaction)
        receipt = await transact(l1, signer, inbox, "forceInclude", raw)
        (event,) = [inbox.decode_log(log) for log in receipt.logs]
        assert event is not None and event.name == "ForcedTransaction"
        # txHash is the L2 transaction hash, as the wallet computed it.
        assert event.args == {"index": index, "txHash": bytes(signed.hash), "data": raw,
                              "l1Block": receipt.block_number}
        assert await inbox.read(l1, "forcedTransaction", index) == (bytes(signed.hash), receipt.block_number)
    assert await inbox.read(l1, "forcedCount") == (2,)
    assert await inbox.read(l1, "batchCount") == (0,)  # the queue is separate from the batches


async def test_forced_transactions_are_capped_in_size(l1: L1Client, inbox: Contract) -> None:
    (cap,) = await inbox.read(l1, "MAX_FORCED_TX_SIZE")
    assert cap == 128 * 1024
    error = await revert_of(l1, inbox, ALICE, "forceInclude", b"\x02" * (cap + 1))
    assert (error.name, error.args) == ("ForcedTxTooLarge", (cap + 1, cap))
    assert inbox.address is not None
    data = inbox.encode_call("forceInclude", b"\x02" * cap)
    assert inbox.decode_output("forceInclude", await l1.call(inbox.address, data, sender=ALICE.address)) == (0,)


async def test_views_reject_indexes_out_of_range(l1: L1Client, inbox: Contract) -> None:
    error = await revert_of(l1, inbox, ALICE, "batch", 0)
    assert (error.name, error.args) == ("IndexOutOfRange", (0, 0))
    await transact(l1, ALICE, inbox, "forceInclude", bytes(l2_transaction(0).raw_transaction))
    error = await revert_of(l1, inbox, ALICE, "forcedTransaction", 1)
    assert (error.name, error.args) == ("IndexOutOfRange", (1, 1))


async def test_the_batcher_cannot_be_the_zero_address(l1: L1Client) -> None:
    inbox = Contract(ARTIFACT)
    with pytest.raises(RpcError) as caught:
        await l1.estimate_gas(None, inbox.encode_deploy(b"\x00" * 20), sender=DEPLOYER.address)
    error = inbox.decode_error(caught.value.revert_data)
    assert error is not None and error.name == "ZeroBatcher"


async def test_deployed_code_matches_the_artifact(l1: L1Client, inbox: Contract) -> None:
    assert inbox.address is not None
    code = await l1.get_code(inbox.address)
    assert code != ARTIFACT.deployed_bytecode  # the batcher is baked in as an immutable...
    assert ARTIFACT.matches_code(code)  # ...which matches_code masks
    assert not ARTIFACT.matches_code(code[:-1] + b"\x00")
