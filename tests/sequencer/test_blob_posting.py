"""The sequencer worker posting its batches in blobs (``[l1] batch_data = "blobs"`` and "auto"), on a
real anvil that mines when told: every transfer reaches SAFE while the chain's block hashes stay
those the sequencer sealed (it follows derivation at L1's safe head and would rewind to any other
chain: tests/sequencer/test_batches_in_flight.py's argument), every batch in the inbox is an
EIP-4844 transaction whose blobs the L1 node gives back, and derivation from L1 alone (the
rollups worker's Deriver over the one L1 reader) makes the same blocks."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account

from l2node.node.deploy import Addresses
from protocol import DEFAULT_CHAIN_ID, MAX_BLOB_LEAF, L1InputReader, PostedBatch, TxLeaf, batch_blocks, devnet_genesis
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from services.l1 import Artifact, Contract, L1Client
from services.rollups._derivation import Deriver, read_l1
from services.sequencer._batcher import blobs_cheaper
from services.sequencer._settings import SequencerSettings
from tests.l1.anvil import Anvil
from tests.sequencer.test_batches_in_flight import (
    all_safe,
    block_hashes,
    deploy_and_start,
    kill_9,
    pool,
    receipt,
    send_one_block_each,
    start_worker,
    stop,
    wait,
)
from tests.sequencer.test_service import DEV_KEYS

#: The bound against hanging of a wait that includes the first blob: the worker's KZG process starts
#: and loads the trusted setup first, seconds of CPU that took over 30 s of a loaded CI run's 2 cores.
BLOB_BOUND_S = 120

async def derive(url: str, inbox: bytes, portal: bytes, since: int) -> tuple[list[PostedBatch], Deriver]:
    async with L1Client(url) as l1:
        reader = L1InputReader(l1, Contract(Artifact.load("BatchInbox"), inbox),
                               Contract(Artifact.load("DepositPortal"), portal))
        head = await l1.block_number()
        batches = [b for b in await reader.read(since, head) if isinstance(b, PostedBatch)]
        deriver = Deriver(devnet_genesis())
        await read_l1(reader, deriver.inputs, since, head)
        deriver.inputs.l1_horizon = head
        deriver.advance()
        return batches, deriver


def posted(tmp_path: pathlib.Path, anvil: Anvil, mode: str, send: Callable[[Any], list[str]]
           ) -> list[PostedBatch]:
    """The worker with ``l1.batch_data = mode`` seals what ``send`` sends (the transfers' hashes), until
    all are SAFE with the block hashes unchanged; then derivation from L1 alone must make the same
    blocks. The batches it read."""
    inbox, since, proc, stub, channel = deploy_and_start(tmp_path, anvil, {"batch_data": mode})
    try:
        txs = send(stub)
        head = stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5).unsafe_block
        before = block_hashes(stub, head)
        wait(all_safe(stub, txs), "every transfer SAFE", BLOB_BOUND_S, mine=anvil)
        assert block_hashes(stub, head) == before
    finally:
        stop(proc, channel)
    return derived(tmp_path, anvil, inbox, since, before)


def derived(tmp_path: pathlib.Path, anvil: Anvil, inbox: bytes, since: int, chain: list[str]) -> list[PostedBatch]:
    """The batches on L1 after ``since``, derivation from them alone making ``chain`` (its block hashes)."""
    portal = Addresses.from_json(json.loads((tmp_path / "l1" / "contracts.json").read_text())).deposit_portal
    batches, deriver = asyncio.run(derive(anvil.url, inbox, portal, since))
    assert ["0x" + b.hash.hex() for b in deriver.blocks[1 : len(chain) + 1]] == chain
    return batches


@pytest.mark.parametrize("mode", ["blobs", "auto"])
def test_the_worker_posts_blob_batches_that_derive_its_chain(tmp_path: pathlib.Path, anvil: Anvil,
                                                             mode: str) -> None:
    batches = posted(tmp_path, anvil, mode, lambda stub: send_one_block_each(stub, range(5)))
    assert batches and all(b.blob is not None for b in batches)
    for b in batches:
        assert anvil.rpc("eth_getTransactionByHash", "0x" + b.l1_tx_hash.hex())["type"] == "0x3"


def test_kill_9_with_blob_batches_in_the_pool_takes_them_back_and_posts_each_block_once(
        tmp_path: pathlib.Path, anvil: Anvil) -> None:
    """Killed (-9) while blob batches wait in L1's pool, the restarted worker takes them back (their
    blobs rebuilt from its blocks: the pool holds none) rather than post their blocks again: every
    transfer reaches SAFE (or FINALIZED) with the chain unchanged, what the pool held lands, and each
    block is in exactly one batch on L1."""
    mode = {"batch_data": "blobs"}
    inbox, since, proc, stub, channel = deploy_and_start(tmp_path, anvil, mode)
    try:
        txs = send_one_block_each(stub, range(3))
        wait(lambda: len(pool(anvil)) >= 1, "a blob batch in the pool", BLOB_BOUND_S)
        txs += send_one_block_each(stub, range(3, 5))
        wait(lambda: len(pool(anvil)) >= 2, "two blob batches in the pool")
        head, before, in_pool = kill_9(proc, stub, channel, anvil)
        assert all(anvil.rpc("eth_getTransactionByHash", h)["type"] == "0x3" for h in in_pool.values())

        proc, stub, channel = start_worker(tmp_path, anvil, mode)
        # SAFE at least: the restart loads the KZG setup before it takes the blob batches back, and L1
        # goes on mining meanwhile, so the follower may first see them at finalized depth.
        settled = (pb.RECEIPT_STATUS_SAFE, pb.RECEIPT_STATUS_FINALIZED)
        wait(lambda: all(receipt(stub, h).status in settled for h in txs), "every transfer SAFE", BLOB_BOUND_S,
             mine=anvil)
        assert block_hashes(stub, head) == before
    finally:
        stop(proc, channel)
    batches = derived(tmp_path, anvil, inbox, since, before)
    assert set(in_pool.values()) <= {"0x" + b.l1_tx_hash.hex() for b in batches}  # taken back, landed
    carried = [block.number for b in batches for block in batch_blocks(b.leaves)]
    assert carried == list(range(1, head + 1))  # each block once, in order


def test_a_block_with_a_transaction_too_long_for_a_blob_leaf_goes_as_calldata(
        tmp_path: pathlib.Path, anvil: Anvil) -> None:
    """A step opens at most MAX_BLOB_LEAF bytes of a blob leaf: a block holding a longer transaction is
    posted as calldata, the blocks around it in blobs, and derivation reads the mix as one chain."""
    def send(stub: Any) -> list[str]:
        txs = send_one_block_each(stub, range(2))
        big = Account.sign_transaction({
            "type": 2, "chainId": DEFAULT_CHAIN_ID, "nonce": 2, "to": "0x000000000000000000000000000000000000dEaD",
            "value": 1, "gas": 200_000, "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9,
            "data": b"\x01" * MAX_BLOB_LEAF}, DEV_KEYS[0]).raw_transaction
        tx_hash = stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=bytes(big)), timeout=10).tx_hash
        return [*txs, tx_hash, *send_one_block_each(stub, range(3, 5))]

    batches = posted(tmp_path, anvil, "blobs", send)
    kinds = [(b.blob is not None, any(isinstance(leaf, TxLeaf) and len(leaf.raw) > MAX_BLOB_LEAF
                                      for leaf in b.leaves)) for b in batches]
    assert (False, True) in kinds and (True, False) in kinds and (True, True) not in kinds


def test_batch_data_is_checked() -> None:
    l1 = {"rpc": "http://x", "contracts": "c", "batcher_key_file": "k"}
    with pytest.raises(ValueError, match="batch_data"):
        SequencerSettings.from_mapping({"l1": {**l1, "batch_data": "frames"}})
    with pytest.raises(ValueError, match="max_blobs"):
        SequencerSettings.from_mapping({"l1": {**l1, "max_blobs": 0}})


def test_auto_takes_blobs_where_they_cost_less() -> None:
    """On the devnet a blob's gas costs 1 wei: blobs. (Every L1 that can host the contracts takes blobs:
    they are built for Cancun, MCOPY included; anvil reports blob fields on older hardforks too.)"""
    async def cheaper(node: Anvil) -> bool:
        async with L1Client(node.url) as l1:
            return await blobs_cheaper(l1)

    node = Anvil()
    node.start()
    try:
        assert asyncio.run(cheaper(node)) is True
    finally:
        node.stop()
