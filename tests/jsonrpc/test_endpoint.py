"""Ethereum's JSON-RPC against a real `l2node up` tree: real clients (web3.py, cast) send a transfer,
wait for its receipt, read balances and blocks; and the protocol's edges (batches, notifications,
-32700 / -32600 / -32601 / -32602, geth's error messages, newHeads over WebSocket).

Each test signs with a dev account of its own, so their nonces never meet."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
from typing import Any

import aiohttp
from eth_account import Account
from web3 import Web3

from protocol import (
    DEV_PRIVATE_KEYS,
    MESSAGE_PASSER,
    TX_BASE_GAS,
    encode_withdrawal_call,
    intrinsic_gas,
    keccak256,
)
from tests.conftest import json_rpc
from tests.jsonrpc.conftest import DEAD, Tree, dev, receipt, transfer
from tests.node.test_metrics import scrape, value
from tests.node.test_up import cli, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: What MetaMask asks of a network it adds and uses (its network controller, balances, send flow, activity).
METAMASK: tuple[tuple[str, list[Any]], ...] = (
    ("eth_chainId", []), ("net_version", []), ("eth_blockNumber", []), ("web3_clientVersion", []),
    ("eth_getBlockByNumber", ["latest", False]), ("eth_getBalance", [DEAD, "latest"]),
    ("eth_getTransactionCount", [DEAD, "pending"]), ("eth_getCode", [DEAD, "latest"]), ("eth_gasPrice", []),
    ("eth_maxPriorityFeePerGas", []), ("eth_feeHistory", ["0xa", "latest", [10, 50, 90]]),
    ("eth_estimateGas", [{"from": DEAD, "to": DEAD, "value": "0x0"}]), ("eth_call", [{"to": DEAD, "data": "0x"}]),
    ("eth_getTransactionReceipt", ["0x" + "11" * 32]), ("eth_getTransactionByHash", ["0x" + "11" * 32]),
    ("eth_getBlockByHash", ["0x" + "11" * 32, False]), ("eth_syncing", []), ("net_listening", []),
)


def test_endpoints_json_and_status_list_the_url(tree: Tree) -> None:
    doc = json.loads((tree.data_dir / "run" / "endpoints.json").read_text())
    assert doc["jsonrpc"] == tree.url
    assert {"control", "pid", "l1_rpc", "metrics", "children"} <= set(doc)  # the agreed keys stay
    status = json.loads(cli(tree.data_dir, "status", "--json").stdout)
    assert status["jsonrpc"] == tree.url and "jsonrpc" in {c["id"] for c in status["children"]}
    assert f"Ethereum JSON-RPC: {tree.url}" in cli(tree.data_dir, "status").stdout


def test_web3py_sends_a_transfer_waits_for_its_receipt_and_reads_balance_and_blocks(tree: Tree) -> None:
    w3 = Web3(Web3.HTTPProvider(tree.url))
    sender = dev(0)
    assert w3.is_connected() and w3.eth.chain_id == 901 and w3.net.version == "901"
    assert w3.client_version.startswith("l2node/v")
    before, start = w3.eth.get_balance(DEAD), w3.eth.block_number
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    tx = {"type": 2, "chainId": w3.eth.chain_id, "nonce": nonce, "to": DEAD, "value": 12345,
          "gas": w3.eth.estimate_gas({"from": sender.address, "to": DEAD, "value": 12345}),
          "maxFeePerGas": 2 * w3.eth.gas_price, "maxPriorityFeePerGas": w3.eth.max_priority_fee}
    assert tx["gas"] == TX_BASE_GAS
    tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
    r = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=15, poll_latency=0.05)
    assert r["status"] == 1 and r["type"] == 2 and r["gasUsed"] == TX_BASE_GAS
    assert r["cumulativeGasUsed"] >= TX_BASE_GAS and r["effectiveGasPrice"] > 0
    assert r["from"] == sender.address and r["to"] == DEAD and r["logs"] == [] and r["contractAddress"] is None
    assert r["logsBloom"] == bytes(256) and r["transactionHash"] == tx_hash
    assert w3.eth.get_balance(DEAD) == before + 12345
    assert w3.eth.block_number >= r["blockNumber"] > start  # never behind a receipt it served
    assert w3.eth.get_transaction_count(sender.address) == nonce + 1

    got = w3.eth.get_transaction(tx_hash)
    assert (got["from"], got["to"], got["value"], got["nonce"]) == (sender.address, DEAD, 12345, nonce)
    assert (got["blockHash"], got["blockNumber"], got["transactionIndex"]) == (
        r["blockHash"], r["blockNumber"], r["transactionIndex"])
    assert got["gasPrice"] == r["effectiveGasPrice"] and got["type"] == 2

    block = w3.eth.get_block(r["blockNumber"], full_transactions=True)
    assert block["hash"] == r["blockHash"] and block["transactions"][r["transactionIndex"]]["hash"] == tx_hash
    by_hash = w3.eth.get_block(r["blockHash"])
    assert by_hash["number"] == r["blockNumber"] and tx_hash in by_hash["transactions"]
    count = len(by_hash["transactions"])
    assert w3.eth.get_block_transaction_count(r["blockNumber"]) == count
    assert w3.eth.get_block_transaction_count(r["blockHash"]) == count
    assert by_hash["gasUsed"] == block["gasUsed"] >= r["cumulativeGasUsed"]
    latest = w3.eth.get_block("latest")
    assert latest["number"] >= r["blockNumber"] and latest["baseFeePerGas"] > 0


def _cast() -> str:
    """cast from @foundry-rs/cast in node_modules (package.json); L2NODE_CAST names another."""
    found = os.environ.get("L2NODE_CAST") or shutil.which("cast", path=str(ROOT / "node_modules" / ".bin"))
    assert found, "cast is missing: package.json's @foundry-rs/cast (npm ci), or L2NODE_CAST=/path/to/cast"
    return found


def test_cast_sends_a_transfer_and_follows_the_block(tree: Tree) -> None:
    cast, key = _cast(), "0x" + DEV_PRIVATE_KEYS[1].hex()
    to = Account.create().address

    def run(*args: str) -> str:
        r = subprocess.run([cast, *args, "--rpc-url", tree.url], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert run("chain-id") == "901"
    sent = json.loads(run("send", "--private-key", key, to, "--value", "4321", "--json"))
    assert sent["status"] == "0x1" and sent["to"].lower() == to.lower()
    assert run("balance", to) == "4321"
    number = int(sent["blockNumber"], 16)
    assert int(run("block-number")) >= number
    block = json.loads(run("block", str(number), "--json"))
    assert block["hash"] == sent["blockHash"] and sent["transactionHash"] in block["transactions"]
    assert run("block", str(number), "--field", "number") == str(number)
    assert json.loads(run("receipt", sent["transactionHash"], "--json"))["gasUsed"] == hex(TX_BASE_GAS)


def test_batches_notifications_and_malformed_requests_are_answered_as_json_rpc_says(tree: Tree) -> None:
    assert tree.post(b"{not json")["error"]["code"] == -32700
    assert tree.post([])["error"]["code"] == -32600
    assert tree.post({"jsonrpc": "2.0", "id": 1, "method": "eth_nope"})["error"] == {
        "code": -32601, "message": "the method eth_nope does not exist/is not available"}
    answers = tree.post([
        {"jsonrpc": "2.0", "id": "a", "method": "eth_chainId"},
        {"jsonrpc": "2.0", "method": "eth_blockNumber"},  # a notification: no answer
        5,
        {"jsonrpc": "2.0", "id": 3, "method": "eth_getBalance", "params": ["0x1234", "latest"]},
        {"jsonrpc": "2.0", "id": 4, "method": "eth_getBalance", "params": [DEAD, "lastest"]},
        {"jsonrpc": "2.0", "id": 5, "method": "eth_getBalance", "params": []},
        {"jsonrpc": "2.0", "id": 6, "method": "eth_getBlockByNumber", "params": ["0xffffff", False]},
    ])
    assert [a["id"] for a in answers] == ["a", None, 3, 4, 5, 6]  # request order, the notification left out
    assert answers[0]["result"] == hex(901)
    assert answers[1]["error"]["code"] == -32600
    assert [a["error"]["code"] for a in answers[2:5]] == [-32602] * 3
    assert answers[5]["result"] is None  # a block not sealed yet
    assert tree.post({"jsonrpc": "2.0", "method": "eth_chainId"}) is None
    assert tree.error("eth_subscribe", "newHeads")["message"] == "notifications not supported"  # HTTP
    assert tree.call("eth_getCode", DEAD, "latest") == "0x" and tree.call("eth_syncing") is False
    latest = int(tree.call("eth_getBlockByNumber", "latest", False)["number"], 16)
    safe = int(tree.call("eth_getBlockByNumber", "safe", False)["number"], 16)
    assert latest >= safe >= int(tree.call("eth_getBlockByNumber", "finalized", False)["number"], 16) >= 0
    assert tree.call("eth_getBlockByNumber", "earliest", False)["number"] == "0x0"
    for method, params in METAMASK:  # MetaMask's checklist: every method it uses is here
        reply = tree.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert "result" in reply, (method, reply)


def test_each_single_call_counts_answered_or_not_and_its_span_ends(tree: Tree) -> None:
    url = json.loads((tree.data_dir / "run" / "endpoints.json").read_text())["metrics"]

    def counts() -> tuple[float, ...]:
        samples, _ = scrape(url)
        return tuple(value(samples, name, **labels) or 0 for name, labels in (
            ("l2node_jsonrpc_calls_total", {"method": "net_listening"}),
            ("l2node_jsonrpc_call_duration_seconds_count", {"method": "net_listening"}),
            ("l2node_jsonrpc_calls_total", {"method": "other"}),
            ("l2node_jsonrpc_errors_total", {"method": "other", "code": "-32601"}),
            ("l2node_jsonrpc_calls_total", {"method": "eth_getCode"}),
            ("l2node_jsonrpc_errors_total", {"method": "eth_getCode", "code": "-32602"})))

    before = counts()
    assert tree.call("net_listening") is True
    assert tree.post({"jsonrpc": "2.0", "method": "net_listening"}) is None  # a notification: no answer
    assert tree.post({"jsonrpc": "2.0", "method": "eth_unheard_of"}) is None  # not even an error
    assert tree.error("eth_getCode", "0x12", "latest")["code"] == -32602
    assert tuple(b - a for a, b in zip(before, counts(), strict=True)) == (2, 2, 1, 1, 1, 1)
    failed = tree.spans.wait_for(lambda s: s["name"] == "eth_unheard_of")  # exported: ended
    assert failed["status"] == 2 and failed["attributes"]["rpc.jsonrpc.error_code"] == -32601
    assert tree.spans.wait_for(lambda s: s["name"] == "eth_getCode" and s["status"] == 2)["parent_id"] == ""


def test_a_read_is_recorded_when_its_caller_records_its_trace_and_when_it_fails(tree: Tree) -> None:
    """Reads are polled: one that succeeds is recorded only if the caller's traceparent is sampled
    (or at read_trace_ratio, 0 here); a failed one always is, from when it began."""
    quiet = [f"00-{i + 1:032x}-00f067aa0ba902b7-00" for i in range(5)]  # unsampled: flag 00
    for parent in quiet:
        tree.post({"jsonrpc": "2.0", "id": 1, "method": "eth_syncing", "params": []}, headers={"traceparent": parent})
    tree.post({"jsonrpc": "2.0", "id": 1, "method": "eth_syncing", "params": []})  # no traceparent
    recorded = "5" * 32
    tree.post({"jsonrpc": "2.0", "id": 1, "method": "eth_syncing", "params": []},
              headers={"traceparent": f"00-{recorded}-00f067aa0ba902b7-01"})
    span = tree.spans.wait_for(lambda s: s["trace_id"] == recorded and s["name"] == "eth_syncing")
    assert (span["name"], span["parent_id"]) == ("eth_syncing", "00f067aa0ba902b7")
    # One exporter queue, in order: had any of the others been recorded, it would be here by now.
    assert [s for s in tree.spans.sink.spans if s["name"] == "eth_syncing"] == [span]

    failing = "6" * 32
    tree.post({"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": ["0x12", "latest"]},
              headers={"traceparent": f"00-{failing}-00f067aa0ba902b7-00"})
    failed = tree.spans.wait_for(lambda s: s["name"] == "eth_getBalance" and s["trace_id"] == failing)
    assert failed["status"] == 2 and failed["attributes"]["rpc.jsonrpc.error_code"] == -32602


def test_refusals_carry_geths_messages(tree: Tree) -> None:
    sender = dev(2)
    first = transfer(tree, sender)
    replaced = transfer(tree, sender, nonce=int(tree.call("eth_getTransactionCount", sender.address, "pending"), 16),
                        value=2)
    answers = tree.post([{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]}
                         for i, raw in enumerate([first, first, replaced])])
    assert answers[0]["result"] == "0x" + keccak256(bytes.fromhex(first[2:])).hex()
    assert answers[1]["error"]["message"] == "already known"
    assert answers[2]["error"]["message"] == "replacement transaction underpriced"
    receipt(tree, answers[0]["result"])
    error = tree.error("eth_sendRawTransaction", first)
    assert (error["code"], error["message"], error["data"]["reason"]) == (-32000, "nonce too low", "NONCE_TOO_LOW")
    poor = Account.create()
    assert tree.error("eth_sendRawTransaction", transfer(tree, poor))["message"] == (
        "insufficient funds for gas * price + value")
    assert tree.error("eth_sendRawTransaction", "0x02")["message"].startswith("rlp:")
    assert tree.error("eth_sendRawTransaction", "0xzz")["code"] == -32602
    assert tree.error("eth_estimateGas", {"from": poor.address, "to": DEAD, "value": "0x1"})["message"] == (
        "insufficient funds for transfer")


def test_a_batch_of_sends_is_one_call_and_every_one_lands(tree: Tree) -> None:
    senders = [dev(i) for i in range(4, 10)]
    raws, nonces = [], []
    for sender in senders:  # 16 a sender: the pool's executable slots per account
        nonces.append(nonce := int(tree.call("eth_getTransactionCount", sender.address, "pending"), 16))
        raws += [transfer(tree, sender, nonce=nonce + k, value=1 + k) for k in range(16)]
    answers = tree.post([{"jsonrpc": "2.0", "id": i, "method": "eth_sendRawTransaction", "params": [raw]}
                         for i, raw in enumerate(raws)])
    assert [a["result"] for a in answers] == ["0x" + keccak256(bytes.fromhex(r[2:])).hex() for r in raws]
    for sender, nonce in zip(senders, nonces, strict=True):  # pooled or sealed by now: either way counted
        assert int(tree.call("eth_getTransactionCount", sender.address, "pending"), 16) == nonce + 16
    for k in range(15, len(raws), 16):  # each sender's last
        assert receipt(tree, answers[k]["result"])["status"] == "0x1"
    assert int(tree.call("eth_getTransactionCount", senders[-1].address, "latest"), 16) >= 16


def test_accounts_at_older_blocks_are_the_state_taken_back_through_the_blocks_since(tree: Tree) -> None:
    sender, to = dev(3), Account.create().address
    first = receipt(tree, tree.call("eth_sendRawTransaction", transfer(tree, sender, to=to, value=1000)))
    second = receipt(tree, tree.call("eth_sendRawTransaction", transfer(tree, sender, to=to, value=2000)))
    n1, n2 = int(first["blockNumber"], 16), int(second["blockNumber"], 16)
    assert n2 > n1

    def at(address: str, block: Any, method: str = "eth_getBalance") -> int:
        return int(tree.call(method, address, block), 16)

    assert [at(to, hex(n)) for n in (n1 - 1, n1, n2)] == [0, 1000, 3000] == [0, 1000, at(to, "latest")]
    assert at(to, {"blockHash": first["blockHash"]}) == 1000
    nonce = at(sender.address, hex(n1 - 1), "eth_getTransactionCount")
    assert [at(sender.address, hex(n), "eth_getTransactionCount") for n in (n1, n2)] == [nonce + 1, nonce + 2]
    fee = int(first["gasUsed"], 16) * int(first["effectiveGasPrice"], 16)
    assert at(sender.address, hex(n1 - 1)) - at(sender.address, hex(n1)) == 1000 + fee
    for tag in ("safe", "finalized", "earliest"):  # behind the head, within the kept blocks on this young chain
        assert at(to, tag) in (0, 1000, 3000)
    assert at(to, "earliest") == 0
    assert tree.error("eth_getTransactionCount", sender.address, hex(10**9))["message"] == "header not found"


def test_estimate_gas_for_a_withdrawal_is_what_the_sequencer_charges_and_a_malformed_one_reverts(tree: Tree
                                                                                                 ) -> None:
    sender = dev(0)
    calldata = encode_withdrawal_call(bytes.fromhex(DEAD[2:]), 100_000, b"\x01\x02")
    gas = tree.call("eth_estimateGas", {"from": sender.address, "to": "0x" + MESSAGE_PASSER.hex(),
                                        "value": "0x10", "data": "0x" + calldata.hex()})
    assert int(gas, 16) == intrinsic_gas(calldata, ()) > TX_BASE_GAS
    bad = tree.error("eth_estimateGas", {"to": "0x" + MESSAGE_PASSER.hex(), "data": "0xdeadbeef"})
    assert bad["code"] == 3 and bad["message"].startswith("execution reverted")
    assert tree.call("eth_call", {"to": DEAD, "data": "0x1234"}, "latest") == "0x"
    history = tree.call("eth_feeHistory", "0x4", "latest", [25, 75])
    assert len(history["baseFeePerGas"]) == len(history["gasUsedRatio"]) + 1 == len(history["reward"]) + 1
    assert int(tree.call("eth_gasPrice"), 16) > int(tree.call("eth_maxPriorityFeePerGas"), 16) > 0


def test_optimism_output_at_block_is_the_output_root_of_that_block(tree: Tree) -> None:
    block = tree.call("eth_getBlockByNumber", "latest", False)
    output = tree.call("optimism_outputAtBlock", block["number"])
    preimage = bytes(32) + bytes.fromhex(block["stateRoot"][2:]) + bytes.fromhex(
        output["withdrawalStorageRoot"][2:]) + bytes.fromhex(block["hash"][2:])
    assert output["outputRoot"] == "0x" + keccak256(preimage).hex()
    assert output["blockRef"]["hash"] == block["hash"]
    status = tree.call("optimism_syncStatus")
    assert status["unsafe_l2"]["number"] >= status["safe_l2"]["number"] >= status["finalized_l2"]["number"]


def test_optimism_sync_status_names_the_l1_blocks_the_node_stands_at(tree: Tree) -> None:
    """OP's L1 refs: L1's head and where the node's reading of L1 stands (current, safe, finalized),
    each the very block L1 has at that number (hash, parent hash, timestamp), in order."""
    l1 = next(c["address"] for c in json.loads((tree.data_dir / "run" / "endpoints.json").read_text())
              ["children"] if c["id"] == "l1")
    wait_for(lambda: tree.call("optimism_syncStatus")["finalized_l1"]["number"] > 0, 30, "an L1 block finalized")
    status = tree.call("optimism_syncStatus")
    refs = [status[name] for name in ("head_l1", "current_l1", "safe_l1", "finalized_l1")]
    assert [r["number"] for r in refs] == sorted((r["number"] for r in refs), reverse=True)
    assert status["current_l1_finalized"] == status["finalized_l1"]
    for ref in refs:
        block = json_rpc(l1, "eth_getBlockByNumber", hex(ref["number"]), False)
        assert (ref["hash"], ref["parentHash"], ref["timestamp"]) == \
            (block["hash"], block["parentHash"], int(block["timestamp"], 16))
    # The safe L2 head's origin is at or below the L1 block SAFE is decided on.
    assert status["safe_l2"]["l1origin"]["number"] <= status["safe_l1"]["number"]


def test_optimism_rollup_config_names_the_deployment(tree: Tree) -> None:
    """OP's rollupConfig fields where l2node has the thing, from the deployment's record and the
    chain itself; the addresses are those the tree's contracts.json holds."""
    recorded = json.loads((tree.data_dir / "l1" / "contracts.json").read_text())
    config = tree.call("optimism_rollupConfig")
    assert config["l2_chain_id"] == int(tree.call("eth_chainId"), 16)
    assert config["l1_chain_id"] == recorded["chain_id"]
    assert config["seq_window_size"] == recorded["rollups"]["sequencer_window"]
    assert config["batch_inbox_address"] == recorded["contracts"]["BatchInbox"]
    assert config["deposit_contract_address"] == recorded["contracts"]["DepositPortal"]
    assert config["output_registry_address"] == recorded["contracts"]["OutputRegistry"]
    assert config["deployment_l1_block"] == recorded["block_number"]
    genesis = tree.call("eth_getBlockByNumber", "0x0", False)
    assert config["genesis"]["l2"] == {"hash": genesis["hash"], "number": 0}


async def test_new_heads_arrive_over_websocket_until_unsubscribed(tree: Tree) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(tree.ws_url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]})
        sub_id = (await ws.receive_json(timeout=5))["result"]
        await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction",
                            "params": [transfer(tree, dev(3), to=Account.create().address)]})
        heads = []
        while len(heads) < 1:
            note = await ws.receive_json(timeout=10)
            if note.get("method") == "eth_subscription":
                assert note["params"]["subscription"] == sub_id
                heads.append(note["params"]["result"])
        assert {"number", "hash", "parentHash", "baseFeePerGas", "timestamp"} <= set(heads[0])
        assert tree.call("eth_getBlockByNumber", heads[0]["number"], False)["hash"] == heads[0]["hash"]
        await ws.send_json({"jsonrpc": "2.0", "id": 3, "method": "eth_unsubscribe", "params": [sub_id]})
        while (answer := await ws.receive_json(timeout=5)).get("id") != 3:
            pass
        assert answer["result"] is True
        bad = {"jsonrpc": "2.0", "id": 4, "method": "eth_subscribe", "params": ["logs", {}]}
        await ws.send_json(bad)
        while (answer := await ws.receive_json(timeout=5)).get("id") != 4:
            pass
        assert answer["error"]["code"] == -32602


def test_every_call_is_a_span_and_a_send_carries_its_hash_into_the_sequencer(tree: Tree) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    raw = transfer(tree, dev(0), to=Account.create().address)  # others read DEAD's balance
    reply = tree.post({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]},
                      headers={"traceparent": parent})
    tx_hash = reply["result"]
    span = tree.spans.wait_for(lambda s: s["service"] == "jsonrpc" and s["name"] == "eth_sendRawTransaction"
                               and s["attributes"].get("l2.tx.hash") == tx_hash)
    assert span["trace_id"] == trace_id and span["parent_id"] == "00f067aa0ba902b7"  # the caller's trace goes on
    attributes = span["attributes"]
    assert attributes["rpc.system"] == "jsonrpc" and attributes["rpc.method"] == "eth_sendRawTransaction"
    tree.spans.wait_for(lambda s: s["service"] == "sequencer" and s["trace_id"] == trace_id
                        and s["name"].endswith("SendRawTransactions"))
    tree.post({"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": ["0x12", "latest"]})
    failed = tree.spans.wait_for(lambda s: s["name"] == "eth_getBalance" and s["status"] == 2)
    assert failed["attributes"]["rpc.jsonrpc.error_code"] == -32602
    receipt(tree, tx_hash)  # settled before the next test reads dev 0's nonce


def test_a_restarted_sequencer_is_followed_again_and_calls_meanwhile_get_answers(tree: Tree) -> None:
    before = int(tree.call("eth_blockNumber"), 16)
    cli(tree.data_dir, "restart", "sequencer")
    answers = tree.post([{"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [DEAD, "latest"]},
                         {"jsonrpc": "2.0", "id": 2, "method": "eth_chainId"}])
    assert all("result" in a or a["error"]["code"] == -32603 for a in answers)  # an answer, never a dropped call
    sender = dev(1)

    def sent() -> str | None:  # while it is down (the policy's circuit opens): an error answer, then a hash
        raw = transfer(tree, sender, nonce=int(tree.call("eth_getTransactionCount", sender.address, "pending"), 16))
        reply = tree.post({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]})
        assert "result" in reply or reply["error"]["code"] == -32603, reply
        return reply.get("result")

    def sent_quietly() -> str | None:
        try:
            return sent()
        except AssertionError as exc:  # tree.call's own: the sequencer still down
            assert "-32603" in str(exc), exc
            return None

    tx_hash = wait_for(sent_quietly, 20, "a send once the sequencer is back")
    number = int(receipt(tree, tx_hash)["blockNumber"], 16)
    assert int(tree.call("eth_blockNumber"), 16) >= number > before  # the block stream was opened again
