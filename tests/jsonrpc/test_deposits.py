"""A deposit as Ethereum tools see it: an L1 DepositPortal deposit, minted on L2 by a `l2node up`
tree, read back through the JSON-RPC endpoint in OP Stack's deposit shape (type 0x7e, ``mint``, no
signature) and parsed by web3.py like any block and receipt."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

from eth_account import Account
from web3 import Web3

from protocol import Deposit
from services.l1 import Artifact, Contract
from tests.conftest import json_rpc
from tests.jsonrpc.conftest import Tree, receipt
from tests.node.test_up import wait_for

DEPOSIT_TYPE = "0x7e"
CLIENTS = pathlib.Path(__file__).resolve().parent / "clients"


def test_a_deposit_reads_back_in_op_stacks_shape_and_web3py_parses_its_block(tree: Tree) -> None:
    doc = json.loads((tree.data_dir / "run" / "endpoints.json").read_text())
    l1 = str(doc["l1_rpc"])
    portal_address = json.loads((tree.data_dir / "l1" / "contracts.json").read_text())["contracts"]["DepositPortal"]
    portal = Contract(Artifact.load("DepositPortal"))
    to, mint = Account.create().address, 2 * 10**18
    depositor = json_rpc(l1, "eth_accounts")[7]
    l1_tx = json_rpc(l1, "eth_sendTransaction", {
        "from": depositor, "to": portal_address, "value": hex(mint),
        "data": "0x" + portal.encode_call("depositTransaction", bytes.fromhex(to[2:])).hex()})
    logs = wait_for(lambda: json_rpc(l1, "eth_getTransactionReceipt", l1_tx), 15, "the L1 receipt")["logs"]
    (log,) = logs
    source = bytes.fromhex(log["data"][2:])[64:96]  # data: mint, l1Block, sourceHash
    deposit_hash = "0x" + Deposit(source, bytes.fromhex(to[2:]), mint).hash().hex()

    # Minted once L1 has the deposit at the depth the sequencer waits for (anvil mines every second).
    wait_for(lambda: int(tree.call("eth_getBalance", to, "latest"), 16) == mint, 60, "the deposit minted")
    tx = tree.call("eth_getTransactionByHash", deposit_hash)
    assert tx["type"] == DEPOSIT_TYPE and tx["hash"] == deposit_hash and tx["sourceHash"] == "0x" + source.hex()
    assert Web3.to_checksum_address(tx["to"]) == to and int(tx["mint"], 16) == int(tx["value"], 16) == mint
    assert tx["blockHash"] is not None and tx["transactionIndex"] == "0x0"  # deposits lead their block
    r = receipt(tree, deposit_hash)
    assert (r["type"], r["status"], r["blockHash"], r["blockNumber"]) == (
        DEPOSIT_TYPE, "0x1", tx["blockHash"], tx["blockNumber"])
    assert int(r["gasUsed"], 16) == 0 and r["logs"] == []

    block = tree.call("eth_getBlockByNumber", tx["blockNumber"], True)
    assert block["transactions"][0] == tx
    assert tree.call("eth_getBlockByNumber", tx["blockNumber"], False)["transactions"][0] == deposit_hash

    # web3.py, as a wallet backend would: the block with full transactions, the transaction, its receipt.
    w3 = Web3(Web3.HTTPProvider(tree.url))
    full = w3.eth.get_block(int(tx["blockNumber"], 16), full_transactions=True)
    first = full["transactions"][0]
    assert first["hash"].to_0x_hex() == deposit_hash and first["type"] == int(DEPOSIT_TYPE, 16)
    assert w3.eth.get_transaction_receipt(deposit_hash)["status"] == 1
    assert w3.eth.get_balance(to) == mint

    # viem and ethers v6 read the block, the deposit and (ethers) its receipt without choking on 0x7e.
    node = shutil.which("node")
    assert node is not None
    out = subprocess.run([node, str(CLIENTS / "blocks.mjs"), tree.url, str(int(tx["blockNumber"], 16)), deposit_hash],
                         capture_output=True, text=True, timeout=60, cwd=CLIENTS.parents[2])
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    count = len(block["transactions"])
    assert seen["viem"] == {"first": deposit_hash, "count": count, "to": to.lower(), "value": str(mint),
                            "typeHex": DEPOSIT_TYPE}
    assert seen["ethers"] == {"first": deposit_hash, "count": count, "to": to, "value": str(mint),
                              "type": 126, "status": 1}
