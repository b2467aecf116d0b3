"""L2 -> L1 messages (withdrawals) as the sequencer lists them (ListMessages, Block.message_count):
a real worker process for the wire, its restart and its traces; the in-process chain for a rewind."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
from typing import Any

import grpc
import pytest
from eth_account import Account
from grpc_status import rpc_status

from protocol import (
    DEFAULT_CHAIN_ID,
    DEV_PRIVATE_KEYS,
    MESSAGE_PASSER,
    WithdrawalMessage,
    decode_transaction,
    encode_withdrawal_call,
)
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from tests.conftest import Collector, otel_env
from tests.ports import free_port
from tests.sequencer.test_chain import Sequencer as InProcess
from tests.sequencer.test_service import DEV_KEYS, GWEI, ROOT, wait_status
from tests.sequencer.test_service import node as node  # the fixture that starts a worker
from tests.serving import wait_serving

PASSER = "0x" + MESSAGE_PASSER.hex()


def withdrawal(key: str, nonce: int, value: int, target: bytes, data: bytes = b"", gas_limit: int = 150_000) -> bytes:
    """An L2 transaction to MESSAGE_PASSER sending ``value`` to ``target`` on L1 with ``data``."""
    tx = {"type": 2, "chainId": DEFAULT_CHAIN_ID, "nonce": nonce, "to": PASSER, "value": value, "gas": 100_000,
          "maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI,
          "data": encode_withdrawal_call(target, gas_limit, data)}
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


def listed(stub: Any, from_nonce: int = 0, page_size: int = 0) -> Any:
    return stub.ListMessages(pb.ListMessagesRequest(from_nonce=from_nonce, page_size=page_size), timeout=5)


def test_a_withdrawal_is_listed_with_every_field_and_counted_by_its_block(node: Any) -> None:
    seq = node()
    target = bytes.fromhex("00000000000000000000000000000000000000b0")
    assert (listed(seq.stub).message_count, list(listed(seq.stub).messages)) == (0, [])
    raw = withdrawal(DEV_KEYS[0], 0, 7 * 10**17, target, b"\x01\x02call")
    sent = seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=raw), timeout=10)
    receipt = wait_status(seq.stub, sent.tx_hash, pb.RECEIPT_STATUS_SEALED)
    reply = listed(seq.stub)
    (m,) = reply.messages
    sender = bytes.fromhex(Account.from_key(DEV_KEYS[0]).address[2:])
    expected = WithdrawalMessage(0, sender, target, 7 * 10**17, 150_000, b"\x01\x02call")
    assert (m.nonce, m.sender, m.target, int(m.value), m.gas_limit, m.data) == (
        0, "0x" + sender.hex(), "0x" + target.hex(), 7 * 10**17, 150_000, "0x01026361" + "6c6c")
    assert m.hash == "0x" + expected.hash().hex()
    assert (m.block_number, m.block_hash, m.tx_hash) == (receipt.block_number, receipt.block_hash, sent.tx_hash)
    assert reply.message_count == 1 and reply.block_number >= receipt.block_number
    block = seq.stub.GetBlock(pb.GetBlockRequest(number=receipt.block_number), timeout=5).block
    before = seq.stub.GetBlock(pb.GetBlockRequest(number=receipt.block_number - 1), timeout=5).block
    assert (before.message_count, block.message_count) == (0, 1)
    stream = seq.stub.SubscribeBlocks(pb.SubscribeBlocksRequest(from_number=0), timeout=5)
    counts = {}
    for item in stream:
        counts[item.block.number] = item.block.message_count
        if item.block.number == receipt.block_number:
            stream.cancel()
            break
    assert counts[receipt.block_number] == 1 and counts[receipt.block_number - 1] == 0
    # The newest block, served from memory as sealed, counts as the stored ones do.
    more = seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(
        raw_transaction=withdrawal(DEV_KEYS[0], 1, 1, target)), timeout=10)
    newest = wait_status(seq.stub, more.tx_hash, pb.RECEIPT_STATUS_SEALED)
    assert seq.stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block.message_count == 2
    assert seq.stub.GetBlock(pb.GetBlockRequest(number=newest.block_number), timeout=5).block.message_count == 2


def test_messages_page_in_nonce_order_and_survive_a_kill(node: Any) -> None:
    seq = node()
    target = bytes.fromhex("00000000000000000000000000000000000000b1")
    raws = [withdrawal(DEV_KEYS[i % 2], i // 2, 1000 + i, target) for i in range(5)]
    reply = seq.stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=raws), timeout=10)
    for r in reply.results:
        wait_status(seq.stub, r.tx_hash, pb.RECEIPT_STATUS_SEALED)
    whole = listed(seq.stub)
    assert [m.nonce for m in whole.messages] == [0, 1, 2, 3, 4] and whole.message_count == 5
    assert sorted(m.tx_hash for m in whole.messages) == sorted(r.tx_hash for r in reply.results)
    pages, start = [], 0
    while True:
        page = listed(seq.stub, start, 2)
        if not page.messages:
            break
        pages.append([m.nonce for m in page.messages])
        start = page.messages[-1].nonce + 1
    assert pages == [[0, 1], [2, 3], [4]]
    assert list(listed(seq.stub, 4, 4096).messages) == [whole.messages[4]]
    with pytest.raises(grpc.RpcError) as refused:
        listed(seq.stub, 0, 4097)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(refused.value)
    assert status is not None and "PAGE_SIZE_TOO_LARGE" in str(status.details)
    seq.stop(signal.SIGKILL)
    again = node()
    after = listed(again.stub)
    assert [(m.nonce, m.hash, m.block_hash, m.tx_hash) for m in after.messages] == [
        (m.nonce, m.hash, m.block_hash, m.tx_hash) for m in whole.messages]
    assert after.message_count == 5 and all(m.traceparent == "" for m in after.messages)  # memory is gone
    head = again.stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block
    assert head.message_count == 5


async def test_a_traced_single_transaction_call_is_the_messages_traceparent(
        tmp_path: pathlib.Path, collector: Collector) -> None:
    address = f"127.0.0.1:{free_port()}"
    config = {"service": "sequencer", "address": address, "data_dir": str(tmp_path / "seq"),
              "settings": {"block_time_s": 0.05}}
    with (tmp_path / "sequencer.log").open("ab") as log:
        proc = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-m", "services.runtime", "services.sequencer:WORKER",
                               "--config-json", json.dumps(config)], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=log, env={**os.environ, **otel_env(collector)})
    channel = grpc.insecure_channel(address)
    try:
        await asyncio.to_thread(wait_serving, channel)
        stub = pb_grpc.SequencerServiceStub(channel)
        raw = withdrawal(DEV_KEYS[3], 0, 5, b"\xb2" * 20)
        sent = await asyncio.to_thread(stub.SendRawTransaction, pb.SendRawTransactionRequest(raw_transaction=raw),
                                       timeout=10)
        await asyncio.to_thread(wait_status, stub, sent.tx_hash, pb.RECEIPT_STATUS_SEALED)
        (m,) = (await asyncio.to_thread(listed, stub)).messages
        accept = await collector.wait_for(lambda s: s["name"] == "accept_transactions"
                                          and s["attributes"].get("l2.tx.hash") == sent.tx_hash)
        version, trace_id, span_id, flags = m.traceparent.split("-")
        assert (version, trace_id, span_id) == ("00", accept["trace_id"], accept["span_id"])
        assert int(flags, 16) & 1  # sampled, as the accept span was
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        channel.close()


async def test_a_rewind_takes_the_messages_of_the_dropped_blocks_and_the_new_blocks_record_them_again(
        tmp_path: pathlib.Path) -> None:
    s = InProcess(tmp_path)
    await s.open()
    try:
        target = b"\xb3" * 20
        first = decode_transaction(withdrawal(DEV_PRIVATE_KEYS[0], 0, 11, target), DEFAULT_CHAIN_ID)
        second = decode_transaction(withdrawal(DEV_PRIVATE_KEYS[1], 0, 22, target), DEFAULT_CHAIN_ID)
        await s.intake.submit([first.raw])
        one = await s.chain.seal()
        await s.intake.submit([second.raw])
        two = await s.chain.seal()
        assert one is not None and two is not None and (one.message_count, two.message_count) == (1, 2)
        assert [(m.block_number, m.tx_hash) for m in s.store.messages(0, 10).messages] == [
            (1, first.hash), (2, second.hash)]
        await s.chain.rewind(1)  # what _follow does when derivation disagrees from block 2 on
        page = s.store.messages(0, 10)
        assert [m.tx_hash for m in page.messages] == [first.hash]
        assert (page.message_count, page.head, s.store.message_count(2)) == (1, 1, 1)
        assert s.chain.state.message_count == 1
        again = await s.chain.seal()  # the dropped block's withdrawal is pending again: sealed anew
        assert again is not None and again.header.number == 2
        page = s.store.messages(0, 10)
        assert [(m.message.nonce, m.block_number, m.block_hash, m.tx_hash) for m in page.messages] == [
            (0, 1, one.hash, first.hash), (1, 2, again.hash, second.hash)]
        assert page.message_count == 2 and again.message_count == 2
        assert s.chain.block(2) == again
    finally:
        await s.close()
