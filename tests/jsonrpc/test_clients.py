"""viem and ethers v6, the JavaScript clients people use, against a real `l2node up` tree: each
script (tests/jsonrpc/clients/) sends an EIP-1559 transfer with nothing but the endpoint to go on
(chain id, nonce, fees and gas all asked of it), waits for the receipt, reads the balance, the block
number and the receipt's block, and follows new heads over WebSocket. What each one printed is then
checked against the sequencer itself, over gRPC: not the endpoint checking its own answers."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from eth_account import Account

from protocol import DEV_PRIVATE_KEYS, TX_BASE_GAS
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from tests.jsonrpc.conftest import Tree, dev

CLIENTS = pathlib.Path(__file__).resolve().parent / "clients"
ROOT = CLIENTS.parents[2]
#: Each script signs with a dev account of its own: their nonces never meet.
SIGNERS = {"viem.mjs": 5, "ethers.mjs": 6}


@pytest.fixture(scope="module")
def sequencer(tree: Tree) -> Iterator[pb_grpc.SequencerServiceStub]:
    doc = json.loads((tree.data_dir / "run" / "endpoints.json").read_text())
    address = next(c["address"] for c in doc["children"] if c["id"] == "sequencer")
    with grpc.insecure_channel(address) as channel:
        yield pb_grpc.SequencerServiceStub(channel)


def run_client(script: str, tree: Tree, key: bytes, to: str, value: int) -> dict[str, Any]:
    """What the script printed; AssertionError with its stderr if it failed."""
    node = shutil.which("node")
    assert node is not None, "node is installed with the npm packages (see README)"
    out = subprocess.run([node, str(CLIENTS / script), tree.url, tree.ws_url, "0x" + key.hex(), to, str(value)],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    seen: dict[str, Any] = json.loads(out.stdout)
    return seen


def balance(sequencer: pb_grpc.SequencerServiceStub, address: str) -> int:
    return int(sequencer.GetAccount(pb.GetAccountRequest(address=address), timeout=5).balance)


def block(sequencer: pb_grpc.SequencerServiceStub, number: int) -> pb.Block:
    found: pb.Block = sequencer.GetBlock(pb.GetBlockRequest(number=number), timeout=5).block
    return found


@pytest.mark.parametrize("script", sorted(SIGNERS))
def test_a_javascript_client_sends_a_transfer_reads_it_back_and_follows_new_heads(
        tree: Tree, sequencer: pb_grpc.SequencerServiceStub, script: str) -> None:
    index, to, value = SIGNERS[script], Account.create().address, 123_456_789
    start = balance(sequencer, to)
    seen = run_client(script, tree, DEV_PRIVATE_KEYS[index], to, value)

    assert seen["chainId"] == int(tree.call("eth_chainId"), 16) == 901
    assert seen["from"] == dev(index).address and seen["to"] == to
    assert int(seen["gas"]) == TX_BASE_GAS == int(seen["gasUsed"])
    assert int(seen["maxFeePerGas"]) > int(seen["maxPriorityFeePerGas"]) > 0 and seen["feeHistoryBlocks"] >= 1
    assert seen["status"] in ("success", 1) and seen["type"] in ("eip1559", 2)

    # The transfer, as the sequencer sealed it.
    r = sequencer.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=seen["hash"]), timeout=5).receipt
    assert r.status == pb.RECEIPT_STATUS_SEALED and r.gas_used == TX_BASE_GAS
    assert (seen["receiptBlockNumber"], seen["receiptBlockHash"]) == (r.block_number, r.block_hash)
    assert seen["txBlockHash"] == r.block_hash and int(seen["txValue"]) == value
    sealed = block(sequencer, r.block_number)
    assert seen["block"]["number"] == sealed.number and seen["block"]["hash"] == sealed.hash
    assert seen["block"]["transactions"] == list(sealed.transaction_hashes) == seen["byHashTransactions"]
    assert int(seen["block"]["baseFeePerGas"]) == int(sealed.base_fee)
    assert seen["blockNumber"] >= r.block_number

    # The balance moved by exactly the amount: read before, by the client, and after, over gRPC.
    assert int(seen["balanceBefore"]) == start and int(seen["balance"]) == start + value == balance(sequencer, to)

    # New heads: consecutive, each the sealed block of its number, each on top of the one before.
    heads = seen["heads"]
    assert len(heads) >= 2
    assert [h["number"] for h in heads] == list(range(r.block_number + 1, r.block_number + 1 + len(heads)))
    parent = sealed.hash
    for head in heads:
        b = block(sequencer, head["number"])
        assert (head["hash"], head["parentHash"], int(head["baseFeePerGas"])) == (b.hash, parent, int(b.base_fee))
        parent = b.hash
