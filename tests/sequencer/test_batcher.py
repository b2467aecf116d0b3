"""Batches: the format, and a real sequencer posting to a real anvil that reorgs its batch away."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from l2node.node.deploy import (
    DEVNET_BATCHER,
    DEVNET_BATCHER_KEY,
    DEVNET_DEPLOYER_KEY,
    RollupParams,
    deploy_contracts,
)
from protocol import (
    BATCH_VERSION,
    BatchBlock,
    BatchFormatError,
    batch_leaves,
    batch_size,
    decode_batch,
    encode_batch,
)
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from tests.conftest import Collector, otel_env
from tests.l1.anvil import Anvil
from tests.ports import free_port
from tests.sequencer.test_service import DEV_KEYS, ROOT, sign
from tests.serving import wait_serving


def test_batch_round_trip() -> None:
    blocks = [BatchBlock(1, 1000, 5, b"\x11" * 32, (b"\x02abc", b"\x02def")), BatchBlock(2, 1001, 5, b"\x11" * 32, ())]
    data = encode_batch(blocks)
    assert data[0] == BATCH_VERSION and len(data) == batch_size(blocks)
    assert decode_batch(data) == tuple(batch_leaves(blocks))
    assert data[1:4] == (161).to_bytes(3, "big") and data[4] == 0x01  # a framed BLOCK leaf first


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "EmptyData"),
        (b"\x00" + zlib.compress(b"\xc0"), "UnknownVersion"),  # format 0 (zlib) is gone
        (b"\x01", "NoLeaves"),
        (b"\x01\x00\x00", "TruncatedLeaf"),  # a frame header cut short
        (b"\x01\x00\x00\x05\x00abc", "TruncatedLeaf"),  # a leaf running past the end
        (b"\x01\x00\x00\x00", "EmptyLeaf"),
        (b"\x01\x00\x00\x01\x02", "UnknownLeaf"),  # a third kind
        (b"\x01\x00\x00\x02\x01\x00", "UnknownLeaf"),  # a BLOCK leaf of another size
    ],
)
def test_bad_batches_are_refused_with_the_inbox_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BatchFormatError) as caught:
        decode_batch(data)
    assert caught.value.reason == reason


@pytest.fixture
def l1(tmp_path: pathlib.Path) -> Iterator[Anvil]:
    anvil = Anvil()
    anvil.start()
    try:
        yield anvil
    finally:
        anvil.stop()


def start_sequencer(tmp_path: pathlib.Path, l1: Anvil, env: dict[str, str] | None = None,
                    params: RollupParams | None = None) -> tuple[subprocess.Popen[bytes], Any, grpc.Channel]:
    asyncio.run(deploy_contracts(l1.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path, params=params))
    key_file = tmp_path / "batcher.key"
    key_file.write_text(DEVNET_BATCHER_KEY)
    address = f"127.0.0.1:{free_port()}"
    settings = {"block_time_s": 0.05, "l1": {
        "rpc": l1.url, "contracts": str(tmp_path / "l1" / "contracts.json"), "batcher_key_file": str(key_file),
        "batch_interval_s": 0.1, "confirmation_depth": 2, "poll_interval_s": 0.05}}
    config = {"service": "sequencer", "address": address, "data_dir": str(tmp_path / "seq"), "settings": settings}
    log = (tmp_path / "sequencer.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "services.runtime", "services.sequencer:WORKER",
                             "--config-json", json.dumps(config)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                            env={**os.environ, **(env or {})})
    channel = grpc.insecure_channel(address)
    wait_serving(channel, proc=proc)
    return proc, pb_grpc.SequencerServiceStub(channel), channel


def receipt_when(stub: Any, tx_hash: str, pred: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    r = None
    while True:
        try:
            r = stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=tx_hash), timeout=5).receipt
        except grpc.RpcError as exc:  # a forced transaction is unknown until its block
            assert exc.code() == grpc.StatusCode.NOT_FOUND
        if r is not None and pred(r):
            return r
        assert time.monotonic() < deadline, f"receipt stuck: {r}"
        time.sleep(0.05)


def test_a_batch_removed_by_an_l1_reorg_is_posted_again(tmp_path: pathlib.Path, l1: Anvil) -> None:
    proc, stub, channel = start_sequencer(tmp_path, l1)
    try:
        sent = stub.SendRawTransaction(pb.SendRawTransactionRequest(
            raw_transaction=sign(DEV_KEYS[0], 0, "0x000000000000000000000000000000000000dEaD", 1)), timeout=10)
        posted = receipt_when(stub, sent.tx_hash, lambda r: r.l1_tx_hash != "")
        l1_tx = l1.rpc("eth_getTransactionByHash", posted.l1_tx_hash)
        depth = int(l1.rpc("eth_blockNumber"), 16) - int(l1_tx["blockNumber"], 16) + 1
        l1.rpc("anvil_reorg", depth, [])  # the batch's L1 block is replaced: the batch is gone
        assert l1.rpc("eth_getTransactionReceipt", posted.l1_tx_hash) is None
        again = receipt_when(stub, sent.tx_hash, lambda r: r.l1_tx_hash != "" and
                             l1.rpc("eth_getTransactionReceipt", r.l1_tx_hash) is not None)
        l1.rpc("anvil_mine", 4)  # two confirmations make it safe; anvil's finalized tag is 64 back
        safe = receipt_when(stub, sent.tx_hash, lambda r: r.status == pb.RECEIPT_STATUS_SAFE)
        assert safe.l1_tx_hash == again.l1_tx_hash
        info = stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5)
        assert info.safe_block >= safe.block_number
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        channel.close()


def test_forced_transactions_from_l1_are_included_and_garbage_is_skipped(tmp_path: pathlib.Path, l1: Anvil) -> None:
    from services.l1 import Artifact, Contract

    proc, stub, channel = start_sequencer(tmp_path, l1)
    try:
        inbox_address = json.loads((tmp_path / "l1" / "contracts.json").read_text())["contracts"]["BatchInbox"]
        inbox = Contract(Artifact.load("BatchInbox"))
        anyone = l1.rpc("eth_accounts")[5]  # an L1 user the sequencer may be ignoring
        from eth_account import Account

        payee = Account.create().address
        valid = sign(DEV_KEYS[2], 0, payee, 42)
        for raw in (b"\x02 not a transaction", valid):
            l1.rpc("eth_sendTransaction", {"from": anyone, "to": inbox_address,
                                           "data": "0x" + inbox.encode_call("forceInclude", raw).hex()})
        l1.rpc("anvil_mine", 4)  # past the confirmation depth: the queue entries are safe
        from protocol._keccak import keccak256

        tx_hash = "0x" + keccak256(valid).hex()
        sealed = receipt_when(stub, tx_hash, lambda r: r.status >= pb.RECEIPT_STATUS_SEALED)
        block = stub.GetBlock(pb.GetBlockRequest(number=sealed.block_number), timeout=5).block
        assert block.transaction_hashes[0] == tx_hash  # forced transactions lead their block
        assert block.l1_origin_number > 0
        account = stub.GetAccount(pb.GetAccountRequest(address=payee), timeout=5)
        assert int(account.balance) == 42
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        channel.close()
    import sqlite3

    db = sqlite3.connect(tmp_path / "seq" / "sequencer.db")
    states = db.execute("SELECT inbox_index, state, note FROM forced ORDER BY inbox_index").fetchall()
    assert [(i, s) for i, s, _ in states] == [(0, 2), (1, 1)] and states[0][2] == "MALFORMED_RLP"


async def test_send_seal_and_post_are_spans_with_l1_client_spans_under_the_post(
        tmp_path: pathlib.Path, collector: Collector) -> None:
    anvil = Anvil()
    await asyncio.to_thread(anvil.start)
    proc, stub, channel = await asyncio.to_thread(start_sequencer, tmp_path, anvil, otel_env(collector))
    try:
        raws = [sign(DEV_KEYS[1], n, "0x000000000000000000000000000000000000dEaD", 1) for n in range(3)]
        reply = await asyncio.to_thread(
            stub.SendRawTransactions, pb.SendRawTransactionsRequest(raw_transactions=raws), timeout=10)
        tx_hash = reply.results[0].tx_hash
        await asyncio.to_thread(receipt_when, stub, tx_hash, lambda r: r.l1_tx_hash != "")
        call = await collector.wait_for(lambda s: s["name"].endswith("SequencerService/SendRawTransactions"))
        accept = await collector.wait_for(lambda s: s["name"] == "accept_transactions")
        assert accept["parent_id"] == call["span_id"] and accept["service"] == "sequencer"
        assert accept["attributes"]["l2.transactions"] == 3
        seal = await collector.wait_for(lambda s: s["name"] == "seal_block" and s["links"])
        assert (accept["trace_id"], accept["span_id"]) in seal["links"]  # the block leads back to the call
        post = await collector.wait_for(lambda s: s["name"] == "post_batch")
        send = await collector.wait_for(lambda s: s["name"] == "eth_sendRawTransaction"
                                        and s["trace_id"] == post["trace_id"])
        assert send["parent_id"] == post["span_id"] and send["kind"] == 3  # SPAN_KIND_CLIENT
        assert send["attributes"]["rpc.system"] == "jsonrpc"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        channel.close()
        anvil.stop()


def test_a_deposit_on_l1_is_minted_on_l2_once(tmp_path: pathlib.Path, l1: Anvil) -> None:
    from eth_account import Account

    from services.l1 import Artifact, Contract

    proc, stub, channel = start_sequencer(tmp_path, l1)
    try:
        portal_address = json.loads((tmp_path / "l1" / "contracts.json").read_text())["contracts"]["DepositPortal"]
        portal = Contract(Artifact.load("DepositPortal"))
        to = Account.create().address
        depositor = l1.rpc("eth_accounts")[6]
        l1_tx = l1.rpc("eth_sendTransaction", {"from": depositor, "to": portal_address, "value": hex(3 * 10**18),
                                               "data": "0x" + portal.encode_call("depositTransaction",
                                                                                 bytes.fromhex(to[2:])).hex()})
        (log,) = l1.receipt(l1_tx)["logs"]
        source = bytes.fromhex(log["data"][2:])[64:96]  # data: mint, l1Block, sourceHash
        l1.rpc("anvil_mine", 4)
        deadline = time.monotonic() + 30
        while int(stub.GetAccount(pb.GetAccountRequest(address=to), timeout=5).balance) != 3 * 10**18:
            assert time.monotonic() < deadline, "deposit not minted"
            time.sleep(0.05)
        l1.rpc("anvil_mine", 4)
        time.sleep(0.5)  # more L1 blocks, more polls: the deposit must not be minted twice
        assert int(stub.GetAccount(pb.GetAccountRequest(address=to), timeout=5).balance) == 3 * 10**18
        from protocol._execution import Deposit

        deposit_hash = "0x" + Deposit(source, bytes.fromhex(to[2:]), 3 * 10**18).hash().hex()
        receipt = stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=deposit_hash), timeout=5).receipt
        assert receipt.status >= pb.RECEIPT_STATUS_SEALED and receipt.to == to.lower() and receipt.index == 0
        # The block that minted it: first in it, on an L1 origin at or after the deposit's L1 block.
        block = stub.GetBlock(pb.GetBlockRequest(number=receipt.block_number), timeout=5).block
        assert block.transaction_hashes[0] == deposit_hash
        assert block.l1_origin_number >= int(l1.receipt(l1_tx)["blockNumber"], 16) > 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        channel.close()
