"""The sequencer as a real worker process, driven over gRPC with transactions signed by eth-account."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from eth_account import Account
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from protocol import (
    DEFAULT_CHAIN_ID,
    FEE_VAULT,
    BlockEnv,
    BlockHeader,
    apply_transaction,
    decode_transaction,
    devnet_genesis,
)
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from services.sequencer._chain import header_from_json
from services.sequencer._store import _decode_raws
from tests.l1.anvil import DEV_KEYS
from tests.ports import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
GWEI = 10**9


def sign(key: str, nonce: int, to: str, value: int, *, chain_id: int = DEFAULT_CHAIN_ID,
         max_fee: int = 10 * GWEI, tip: int = GWEI, gas: int = 21_000) -> bytes:
    tx = {"type": 2, "chainId": chain_id, "nonce": nonce, "to": to, "value": value, "gas": gas,
          "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip, "data": b""}
    return bytes(Account.sign_transaction(tx, key).raw_transaction)


class Sequencer:
    def __init__(self, data: pathlib.Path, port: int, log: pathlib.Path, settings: dict[str, Any]) -> None:
        self.address = f"127.0.0.1:{port}"
        config = {"service": "sequencer", "address": self.address, "data_dir": str(data),
                  "settings": {"block_time_s": 0.05, **settings}}
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.runtime", "services.sequencer:WORKER",
             "--config-json", json.dumps(config)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log,
        )
        self.channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.SequencerServiceStub(self.channel)
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, log.read_text()
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    break
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, "sequencer not SERVING"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self.channel.close()
        self._log.close()
        return code


@pytest.fixture
def node(tmp_path: pathlib.Path) -> Iterator[Any]:
    port = free_port()
    started: list[Sequencer] = []

    def start(**settings: Any) -> Sequencer:
        s = Sequencer(tmp_path / "data", port, tmp_path / "sequencer.log", settings)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop(signal.SIGKILL)


def wait_status(stub: Any, tx_hash: str, status: int, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=tx_hash), timeout=5).receipt
        if r.status == status:
            return r
        assert time.monotonic() < deadline, f"receipt stuck at {pb.ReceiptStatus.Name(r.status)}"
        time.sleep(0.02)


def test_a_wallet_signed_transfer_is_sealed(node: Any) -> None:
    seq = node()
    alice, bob = Account.from_key(DEV_KEYS[0]), Account.create()
    raw = sign(DEV_KEYS[0], 0, bob.address, 12345)
    reply = seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=raw), timeout=10)
    fields = {"type": 2, "chainId": DEFAULT_CHAIN_ID, "nonce": 0, "to": bob.address, "value": 12345, "gas": 21_000,
              "maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI, "data": b""}
    assert reply.tx_hash == "0x" + Account.sign_transaction(fields, DEV_KEYS[0]).hash.hex().removeprefix("0x")
    receipt = wait_status(seq.stub, reply.tx_hash, pb.RECEIPT_STATUS_SEALED)
    assert receipt.gas_used == 21_000 and getattr(receipt, "from") == alice.address.lower()
    assert receipt.to == bob.address.lower() and receipt.block_number >= 1
    price = int(receipt.effective_gas_price)
    got = seq.stub.GetAccount(pb.GetAccountRequest(address=bob.address), timeout=5)
    assert int(got.balance) == 12345
    me = seq.stub.GetAccount(pb.GetAccountRequest(address=alice.address), timeout=5)
    assert me.nonce == 1 and int(me.balance) == 10_000 * 10**18 - 12345 - 21_000 * price
    vault = seq.stub.GetAccount(pb.GetAccountRequest(address="0x" + FEE_VAULT.hex()), timeout=5)
    block = seq.stub.GetBlock(pb.GetBlockRequest(number=receipt.block_number), timeout=5).block
    assert int(vault.balance) == 21_000 * (price - int(block.base_fee))  # the tip; the base fee is burned
    assert reply.tx_hash in block.transaction_hashes and block.hash == receipt.block_hash
    info = seq.stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5)
    assert info.chain_id == DEFAULT_CHAIN_ID and info.unsafe_block >= receipt.block_number


def test_batch_results_in_order_with_reasons(node: Any) -> None:
    seq = node()
    to = Account.create().address
    raws = [
        sign(DEV_KEYS[1], 0, to, 1),
        b"\x02garbage",
        sign(DEV_KEYS[1], 1, to, 1, chain_id=1),       # signed for mainnet
        sign(DEV_KEYS[1], 1, to, 1),
        sign(DEV_KEYS[1], 1, to, 1),                    # duplicate
        sign(DEV_KEYS[1], 1, to, 1, max_fee=10 * GWEI + 1, tip=GWEI + 1),  # a 0% bump replacement
    ]
    results = seq.stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=raws), timeout=10).results
    kinds = [r.WhichOneof("outcome") for r in results]
    assert kinds == ["tx_hash", "error", "error", "tx_hash", "error", "error"]
    assert (results[1].error.code, results[1].error.reason) == (grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                                                "MALFORMED_RLP")
    assert results[2].error.reason == "WRONG_CHAIN_ID"
    assert (results[4].error.code, results[4].error.reason) == (grpc.StatusCode.ALREADY_EXISTS.value[0],
                                                                "ALREADY_KNOWN")
    assert results[5].error.reason == "REPLACEMENT_UNDERPRICED"
    wait_status(seq.stub, results[3].tx_hash, pb.RECEIPT_STATUS_SEALED)


@pytest.mark.parametrize(
    ("raw", "code", "reason"),
    [
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_TRANSACTION"),
        (b"\x01\xc0", grpc.StatusCode.INVALID_ARGUMENT, "TX_TYPE_NOT_SUPPORTED"),
        (b"\x02\xff\xff", grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_RLP"),
    ],
)
def test_bad_input_gets_a_clear_status(node: Any, raw: bytes, code: grpc.StatusCode, reason: str) -> None:
    seq = node()
    with pytest.raises(grpc.RpcError) as err:
        seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=raw), timeout=5)
    assert err.value.code() == code
    status = rpc_status.from_call(err.value)
    assert status is not None
    from google.rpc import error_details_pb2

    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details) and info.reason == reason
    with pytest.raises(grpc.RpcError) as err:
        seq.stub.SendRawTransactions(pb.SendRawTransactionsRequest(), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        seq.stub.GetAccount(pb.GetAccountRequest(address="0x1234"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        seq.stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash="0x" + "00" * 32), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_transaction_no_block_of_this_chain_can_hold_is_refused_at_once(node: Any, tmp_path: pathlib.Path) -> None:
    """Under the protocol's 30M cap but over the genesis's gas limit: refused with its reason, not
    held in the pool until it expires (no block would ever select it)."""
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps({"chain_id": DEFAULT_CHAIN_ID, "base_fee": GWEI, "gas_limit": 1_000_000,
                                   "alloc": {Account.from_key(DEV_KEYS[0]).address: str(10**21)}}))
    seq = node(genesis_file=str(genesis))
    bob = Account.create().address
    with pytest.raises(grpc.RpcError) as err:
        seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(
            raw_transaction=sign(DEV_KEYS[0], 0, bob, 1, gas=1_000_001)), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(err.value)
    assert status is not None
    from google.rpc import error_details_pb2

    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in status.details) and info.reason == "GAS_LIMIT_ABOVE_BLOCK"
    fits = seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(
        raw_transaction=sign(DEV_KEYS[0], 0, bob, 1, gas=1_000_000)), timeout=5).tx_hash
    wait_status(seq.stub, fits, pb.RECEIPT_STATUS_SEALED)


def test_subscribe_blocks_streams_new_blocks(node: Any) -> None:
    seq = node()
    stream = seq.stub.SubscribeBlocks(pb.SubscribeBlocksRequest(from_number=0), timeout=20)
    first = next(stream).block
    assert first.number == 0 and first.parent_hash == "0x" + "00" * 32
    reply = seq.stub.SendRawTransaction(
        pb.SendRawTransactionRequest(raw_transaction=sign(DEV_KEYS[2], 0, Account.create().address, 5)), timeout=10)
    for item in stream:
        if reply.tx_hash in item.block.transaction_hashes:
            assert item.block.parent_hash != ""
            break
    stream.cancel()


def test_nothing_acknowledged_is_lost_after_kill_9_under_load(node: Any, tmp_path: pathlib.Path) -> None:
    import threading

    seq = node()
    keys = [Account.create() for _ in range(8)]
    fund = [sign(DEV_KEYS[0], i, k.address, 10**18) for i, k in enumerate(keys)]
    seq.stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=fund), timeout=10)
    for k in keys:
        deadline = time.monotonic() + 10
        while int(seq.stub.GetAccount(pb.GetAccountRequest(address=k.address), timeout=5).balance) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    sink = Account.create().address
    batches = [[sign(k.key.hex(), n, sink, 1) for k in keys for n in range(start, start + 4)]
               for start in range(0, 64, 4)]  # 16 batches of 32, each sender's nonces in order
    acked: list[str] = []
    stop = threading.Event()

    def pump() -> None:
        channel = grpc.insecure_channel(seq.address)
        stub = pb_grpc.SequencerServiceStub(channel)
        for batch in batches:
            if stop.is_set():
                break
            try:
                results = stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=batch), timeout=5)
            except grpc.RpcError:
                break  # the worker died mid-call: nothing of this batch was acknowledged
            acked.extend(r.tx_hash for r in results.results if r.WhichOneof("outcome") == "tx_hash")
        channel.close()

    sender = threading.Thread(target=pump)
    sender.start()
    while len(acked) < 5 * 32 and sender.is_alive():
        time.sleep(0.001)
    os.kill(seq.proc.pid, signal.SIGKILL)  # while batches are still arriving
    stop.set()
    sender.join(30)
    seq.proc.wait()
    assert len(acked) >= 5 * 32
    seq = node()
    for tx_hash in acked:
        r = seq.stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=tx_hash), timeout=5).receipt
        assert r.status in (pb.RECEIPT_STATUS_PENDING, pb.RECEIPT_STATUS_SEALED)
    for tx_hash in acked:
        wait_status(seq.stub, tx_hash, pb.RECEIPT_STATUS_SEALED)
    assert seq.stop() == 0
    replay_matches_stored_roots(tmp_path / "data" / "sequencer.db")


def replay_matches_stored_roots(db_path: pathlib.Path) -> None:
    """Re-execute every stored block from genesis: each state root must come out the same."""
    import sqlite3

    db = sqlite3.connect(db_path)
    genesis = devnet_genesis()
    state = genesis.state()
    rows = db.execute("SELECT header FROM blocks ORDER BY number")
    headers: list[BlockHeader] = [header_from_json(h) for (h,) in rows]
    assert headers[0].hash() == genesis.header().hash()
    for header in headers[1:]:
        (blob,) = db.execute("SELECT raws FROM block_txs WHERE number = ?", (header.number,)).fetchone()
        raws = _decode_raws(blob)
        env = BlockEnv(header.number, header.timestamp, header.base_fee, header.gas_limit)
        gas = 0
        for raw in raws:
            gas += apply_transaction(state, decode_transaction(raw, DEFAULT_CHAIN_ID), env, gas).gas_used
        assert state.commit().state_root == header.state_root, f"block {header.number}"
        assert gas == header.gas_used
    db.close()


def test_random_bytes_and_mutations_never_hurt_the_worker(node: Any) -> None:
    """Property test over the wire: garbage and mutated valid transactions at both send RPCs
    get a clear status (never UNKNOWN or INTERNAL), and the worker keeps serving everyone."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seq = node()
    valid = sign(DEV_KEYS[2], 0, Account.create().address, 1)
    allowed = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
               grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.RESOURCE_EXHAUSTED}

    mutation = st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
        lambda m: valid[: m[0]] + bytes([m[1]]) + valid[m[0] + 1:])
    payload = st.one_of(st.binary(min_size=1, max_size=300), mutation)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(single=payload, batch=st.lists(payload, min_size=1, max_size=8))
    def check(single: bytes, batch: list[bytes]) -> None:
        try:
            seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=single), timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() in allowed, (exc.code(), exc.details())
        results = seq.stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=batch), timeout=10)
        assert len(results.results) == len(batch)
        for r in results.results:
            if r.WhichOneof("outcome") == "error":
                assert grpc.StatusCode.INTERNAL.value[0] != r.error.code and r.error.reason

    check()
    assert seq.proc.poll() is None
    # ...and an honest client is still served.
    reply = seq.stub.SendRawTransaction(
        pb.SendRawTransactionRequest(raw_transaction=sign(DEV_KEYS[0], 0, Account.create().address, 2)), timeout=10)
    wait_status(seq.stub, reply.tx_hash, pb.RECEIPT_STATUS_SEALED)


def test_restart_reloads_the_snapshot_including_the_zero_address(node: Any) -> None:
    seq = node()
    zero = "0x" + "00" * 20
    reply = seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=sign(DEV_KEYS[1], 0, zero, 9)),
                                        timeout=10)
    sealed = wait_status(seq.stub, reply.tx_hash, pb.RECEIPT_STATUS_SEALED)
    assert seq.stop() == 0
    seq = node()  # reopening checks the snapshot reproduces the head's state root
    assert int(seq.stub.GetAccount(pb.GetAccountRequest(address=zero), timeout=5).balance) == 9
    head = seq.stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block
    assert head.number == sealed.block_number and head.hash == sealed.block_hash


def test_a_block_is_sealed_by_size_before_its_timer(node: Any) -> None:
    seq = node(block_time_s=30, max_block_txs=4)  # the timer alone would take 30 s
    to = Account.create().address
    raws = [sign(DEV_KEYS[0], n, to, 1) for n in range(4)]
    results = seq.stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=raws), timeout=10).results
    receipt = wait_status(seq.stub, results[-1].tx_hash, pb.RECEIPT_STATUS_SEALED, timeout=10)
    assert receipt.index == 3


def test_a_replaced_transaction_is_dropped_for_good_across_a_restart(node: Any) -> None:
    seq = node(block_time_s=30, max_block_txs=100)  # nothing sealed by time while we look
    to = Account.create().address
    old = sign(DEV_KEYS[1], 0, to, 1, max_fee=10 * GWEI, tip=GWEI)
    new = sign(DEV_KEYS[1], 0, to, 2, max_fee=20 * GWEI, tip=2 * GWEI)  # a 100% bump
    old_hash = seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=old), timeout=10).tx_hash
    pending = seq.stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=old_hash), timeout=5).receipt
    assert (pending.status, pending.nonce, getattr(pending, "from").lower(), pending.to.lower()) == (
        pb.RECEIPT_STATUS_PENDING, 0, Account.from_key(DEV_KEYS[1]).address.lower(), to.lower())
    new_hash = seq.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=new), timeout=10).tx_hash
    dropped = wait_status(seq.stub, old_hash, pb.RECEIPT_STATUS_DROPPED)
    assert dropped.drop_reason == "REPLACED" and dropped.nonce == 0
    assert seq.stop() == 0
    seq = node(block_time_s=0.05)
    # both entries were in the pending log: the replacement comes back, the replaced one stays dropped
    wait_status(seq.stub, new_hash, pb.RECEIPT_STATUS_SEALED)
    again = seq.stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=old_hash), timeout=5).receipt
    assert (again.status, again.drop_reason) == (pb.RECEIPT_STATUS_DROPPED, "REPLACED")


def test_pending_rows_of_an_older_version_are_sealed_after_an_upgrade(node: Any, tmp_path: pathlib.Path) -> None:
    """Before the pending log, acknowledged transactions were PENDING rows of the store's txs table
    (and before tx_index, sealed ones were rows of it too: see test_store for their migration)."""
    import sqlite3

    seq = node()
    assert seq.stop() == 0
    raws = [sign(DEV_KEYS[2], n, Account.create().address, 7) for n in range(3)]
    txs = [decode_transaction(raw, DEFAULT_CHAIN_ID) for raw in raws]
    db = sqlite3.connect(tmp_path / "data" / "sequencer.db")
    db.execute("CREATE TABLE txs (hash BLOB PRIMARY KEY, raw BLOB NOT NULL, sender BLOB NOT NULL, "
               "nonce INTEGER NOT NULL, status INTEGER NOT NULL, seq INTEGER NOT NULL, block_number INTEGER, "
               "idx INTEGER, gas_used INTEGER, price TEXT, drop_reason TEXT)")
    db.executemany("INSERT INTO txs (hash, raw, sender, nonce, status, seq) VALUES (?, ?, ?, ?, 1, ?)",
                   [(tx.hash, tx.raw, tx.sender, tx.nonce, 10 + i) for i, tx in enumerate(txs)])
    db.commit()
    db.close()
    seq = node()
    for tx in txs:
        receipt = wait_status(seq.stub, "0x" + tx.hash.hex(), pb.RECEIPT_STATUS_SEALED)
        assert receipt.nonce == tx.nonce
    assert seq.stop() == 0
    db = sqlite3.connect(tmp_path / "data" / "sequencer.db")
    assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'txs'").fetchone()[0] == 0  # all moved
    db.close()
