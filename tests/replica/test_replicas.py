"""Read replicas against a real sequencer tree and a real anvil (tests/replica/conftest.py): they
agree with the sequencer block for block, catch up after a kill, forward sends exactly once, and
say clearly what they do not have yet."""

from __future__ import annotations

import time

import grpc
from eth_account import Account
from eth_account.signers.local import LocalAccount

from protocol import DEV_PRIVATE_KEYS
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from tests.node.test_up import wait_for
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
