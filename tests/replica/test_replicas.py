"""Read replicas against a real sequencer tree and a real anvil (tests/replica/conftest.py): they
agree with the sequencer block for block, catch up after a kill, forward sends exactly once, and
say clearly what they do not have yet."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import grpc
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from protocol import DEV_PRIVATE_KEYS
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from tests.node.test_up import cli, wait_for
from tests.replica.conftest import Tree, Trees

DEAD = "0x000000000000000000000000000000000000dEaD"


def dev(index: int) -> LocalAccount:
    account: LocalAccount = Account.from_key(DEV_PRIVATE_KEYS[index])
    return account


def signed(sender: LocalAccount, nonce: int, value: int = 1000) -> bytes:
    tx = {"type": 2, "chainId": 901, "nonce": nonce, "to": DEAD, "value": value, "gas": 21000,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**6}
    return bytes(sender.sign_transaction(tx).raw_transaction)


def next_nonce(tree: Tree, sender: LocalAccount) -> int:
    return int(tree.stub().GetAccount(pb.GetAccountRequest(address=sender.address.lower(), pending=True),
                                      timeout=5).nonce)


def send_stream(tree: Tree, sender: LocalAccount, count: int, per_call: int = 5) -> list[str]:
    """``count`` transfers from ``sender`` in calls of ``per_call``, through ``tree``'s gRPC."""
    nonce = next_nonce(tree, sender)
    hashes: list[str] = []
    for start in range(0, count, per_call):
        raws = [signed(sender, nonce + i) for i in range(start, min(count, start + per_call))]
        reply = tree.stub().SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=raws), timeout=10)
        assert all(r.HasField("tx_hash") for r in reply.results), reply
        hashes += [r.tx_hash for r in reply.results]
        time.sleep(0.05)
    return hashes


def sealed(tree: Tree, tx_hash: str) -> pb.Receipt | None:
    try:
        receipt = tree.stub().GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=tx_hash), timeout=5).receipt
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return receipt if receipt.HasField("block_number") else None


def agree(replica: Tree, sequencer: Tree, upto: int) -> None:
    """Block for block, 0..upto: the same hash and state root over gRPC, and over JSON-RPC."""
    wait_for(lambda: replica.head() >= upto, 60, f"{replica.name} at block {upto}")
    # Its JSON-RPC follows its sequencer worker's block stream: a moment later.
    wait_for(lambda: int(replica.rpc("eth_blockNumber"), 16) >= upto, 30, f"{replica.name}'s JSON-RPC at {upto}")
    for n in range(upto + 1):
        ours, theirs = replica.block(n), sequencer.block(n)
        assert (ours.hash, ours.state_root, ours.transaction_hashes) == \
            (theirs.hash, theirs.state_root, theirs.transaction_hashes), n
    for n in {0, upto // 2, upto}:
        mine = replica.rpc("eth_getBlockByNumber", hex(n), False)
        seq = sequencer.rpc("eth_getBlockByNumber", hex(n), False)
        assert (mine["hash"], mine["stateRoot"], mine["transactions"]) == \
            (seq["hash"], seq["stateRoot"], seq["transactions"]), n


def test_replicas_agree_with_the_sequencer_block_for_block(trees: Trees) -> None:
    seq = trees.sequencer
    hashes = send_stream(seq, dev(1), 40)
    last = wait_for(lambda: sealed(seq, hashes[-1]), 30, "the stream sealed")
    for replica in trees.replicas:
        agree(replica, seq, last.block_number)
        balance = replica.rpc("eth_getBalance", DEAD, hex(last.block_number))
        assert balance == seq.rpc("eth_getBalance", DEAD, hex(last.block_number))
        receipt = wait_for(lambda r=replica: r.rpc("eth_getTransactionReceipt", hashes[-1]), 30, "receipt")
        assert receipt["blockHash"] == seq.rpc("eth_getTransactionReceipt", hashes[-1])["blockHash"]


def test_replicas_mark_blocks_safe_by_their_own_derivation(trees: Trees) -> None:
    seq = trees.sequencer
    (tx_hash,) = send_stream(seq, dev(2), 1)
    block = wait_for(lambda: sealed(seq, tx_hash), 30, "sealed").block_number
    for replica in trees.replicas:
        info = wait_for(lambda r=replica: (i := r.stub().GetChainInfo(pb.GetChainInfoRequest(), timeout=5))
                        .safe_block >= block and i, 90, f"{replica.name} safe at {block}")
        assert replica.block(info.safe_block).hash == seq.block(info.safe_block).hash
        assert replica.rpc("eth_getBlockByNumber", "safe", False)["number"] is not None


def log_lines(tree: Tree, child: str, message: str) -> list[dict[str, object]]:
    path = tree.data_dir / "logs" / f"{child}.log"
    lines = [json.loads(line) for line in path.read_text().splitlines() if message in line]
    return [line for line in lines if line.get("message") == message]


def test_a_replica_killed_mid_stream_catches_up(trees: Trees) -> None:
    seq = trees.sequencer
    one, two = trees.replicas
    sent: list[str] = []
    stream = threading.Thread(target=lambda: sent.extend(send_stream(seq, dev(3), 60)))
    stream.start()
    killed = 0
    try:
        wait_for(lambda: len(sent) >= 10 or not stream.is_alive(), 30, "the stream under way")
        killed = one.children()["sequencer"]["pid"]
        os.kill(killed, signal.SIGKILL)  # its worker: its supervisor restarts it
        two.kill()  # the whole tree, supervisor and all
    finally:
        stream.join(60)
    assert len(sent) == 60
    opened_before = len(log_lines(two, "sequencer", "chain opened"))
    (two.data_dir / "run" / "endpoints.json").unlink(missing_ok=True)
    two.start()
    last = wait_for(lambda: sealed(seq, sent[-1]), 30, "the stream sealed")
    for replica in (one, two):
        agree(replica, seq, last.block_number)
    reopened = log_lines(two, "sequencer", "chain opened")[opened_before:]
    assert reopened and int(str(reopened[0]["head"])) > 0  # from its own store, not from genesis
    assert one.children()["sequencer"]["pid"] != killed


def test_a_send_to_a_replica_reaches_the_sequencer_once(trees: Trees) -> None:
    seq = trees.sequencer
    replica = trees.replicas[0]
    sender = dev(4)
    nonce = next_nonce(replica, sender)  # the pending nonce: the upstream's, forwarded
    assert nonce == next_nonce(seq, sender)
    raw = signed(sender, nonce)
    request = pb.SendRawTransactionRequest(raw_transaction=raw, request_id="replica-once-1")
    tx_hash = replica.stub().SendRawTransaction(request, timeout=10).tx_hash
    # The same request again (a client's retry): the same answer, nothing applied twice.
    assert replica.stub().SendRawTransaction(request, timeout=10).tx_hash == tx_hash
    # The same transaction in a new request, over gRPC and over JSON-RPC: the sequencer knows it.
    with pytest.raises(grpc.RpcError) as again:
        replica.stub().SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=raw), timeout=10)
    assert again.value.code() in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION), again.value
    reply = json_rpc_error(replica, "eth_sendRawTransaction", "0x" + raw.hex())
    assert reply["message"] in ("already known", "nonce too low"), reply
    on_sequencer = wait_for(lambda: sealed(seq, tx_hash), 30, "sealed on the sequencer")
    assert next_nonce(seq, sender) == nonce + 1
    head = seq.head()
    assert [n for n in range(head + 1) for h in seq.block(n).transaction_hashes if h == tx_hash] == \
        [on_sequencer.block_number]
    # And the replica serves it too, once its block is there; JSON-RPC sends go the same way.
    wait_for(lambda: sealed(replica, tx_hash), 30, "sealed on the replica")
    via_json = replica.rpc("eth_sendRawTransaction", "0x" + signed(sender, nonce + 1).hex())
    assert wait_for(lambda: sealed(seq, via_json), 30, "the JSON-RPC send sealed on the sequencer")
    assert next_nonce(seq, sender) == nonce + 2


def json_rpc_error(tree: Tree, method: str, *params: object) -> dict[str, object]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    req = urllib.request.Request(tree.url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        reply = json.loads(resp.read())
    assert "error" in reply, reply
    error: dict[str, object] = reply["error"]
    return error


def test_reads_a_replica_cannot_answer_yet_say_so(trees: Trees) -> None:
    replica = trees.replicas[0]
    far = replica.head() + 10_000
    with pytest.raises(grpc.RpcError) as block:
        replica.block(far)
    assert block.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "read replica" in str(block.value.details()) and "upstream" in str(block.value.details())
    unknown = "0x" + "ab" * 32
    with pytest.raises(grpc.RpcError) as tx:
        replica.stub().GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=unknown), timeout=5)
    assert tx.value.code() == grpc.StatusCode.NOT_FOUND and "read replica" in str(tx.value.details())
    with pytest.raises(grpc.RpcError) as by_hash:
        replica.stub().GetBlock(pb.GetBlockRequest(hash=unknown), timeout=5)
    assert by_hash.value.code() == grpc.StatusCode.NOT_FOUND
    # JSON-RPC answers as Ethereum nodes do for what they do not have: null.
    assert replica.rpc("eth_getBlockByNumber", hex(far), False) is None
    assert replica.rpc("eth_getTransactionReceipt", unknown) is None
    assert replica.rpc("eth_getTransactionByHash", unknown) is None


def test_the_cli_sends_through_a_replica_and_waits_on_it(trees: Trees) -> None:
    replica = trees.replicas[1]
    out = cli(replica.data_dir, "tx", "send", "--dev", "6", "--to", DEAD, "--value", "1000", "--wait", "sealed")
    tx_hash = out.stdout.split()[1]
    assert "sealed in block" in out.stdout, out.stdout
    on_sequencer = wait_for(lambda: sealed(trees.sequencer, tx_hash), 30, "sealed on the sequencer")
    assert sealed(replica, tx_hash).block_hash == on_sequencer.block_hash  # type: ignore[union-attr]
