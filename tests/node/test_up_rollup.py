"""`l2node up`'s rollup on its own L1, end to end, each test a tree of its own: a transfer through
to finalized with its batch and its output on L1, a faulty proposer losing to the tree's own
challenger, one custom genesis for every part of the node, and a transfer stuck under the base fee
that empty blocks let in. (Apart from test_up.py's tree tests only so that the suite's parallel
workers, which take a module at a time, can share the two out: these wait on L1 for most of a minute.)"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import grpc

from protocol import devnet_genesis, load_genesis
from services.rollups import genesis_snapshot
from tests.node.test_up import Node, children, cli, wait_for


def test_a_transfer_goes_pending_sealed_safe_finalized_with_its_batch_on_l1(node: Node) -> None:
    import urllib.request

    to = "0x000000000000000000000000000000000000bEEF"
    out = cli(node.data_dir, "tx", "send", "--to", to, "--value", "5", "--dev", "4", "--wait", "finalized").stdout
    states = [line.split()[0] for line in out.splitlines()[1:]]
    assert states[-1] == "finalized" and "sealed" in out
    tx_hash = out.splitlines()[0].split()[1]
    status = json.loads(cli(node.data_dir, "tx", "status", tx_hash).stdout)
    assert status["status"] == "finalized" and status["batch_index"] is not None
    # The batch is really on L1: its transaction calls appendBatch on the inbox.
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionByHash",
                       "params": [status["l1_tx_hash"]]}).encode()
    req = urllib.request.Request(node.doc()["l1_rpc"], data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        l1_tx = json.loads(resp.read())["result"]
    contracts = json.loads((node.data_dir / "l1" / "contracts.json").read_text())
    assert l1_tx["to"].lower() == contracts["contracts"]["BatchInbox"].lower()
    from protocol import TxLeaf, decode_batch, keccak256
    from services.l1 import Artifact, Contract

    inbox = Contract(Artifact.load("BatchInbox"))
    leaves = decode_batch(bytes(inbox.decode_input("appendBatch", bytes.fromhex(l1_tx["input"][2:]))[0]))
    assert bytes.fromhex(tx_hash[2:]) in {keccak256(leaf.raw) for leaf in leaves if isinstance(leaf, TxLeaf)}
    info = children(node.data_dir)["sequencer"]
    assert any(b["target"] == "l1" and b["state"] == "closed" for b in info["breakers"])
    # The rollups service proposes an output covering that block, on L1, which finalizes after
    # the devnet's challenge window; `l2node outputs` and `l2node disputes` show them.
    block = status["block_number"]

    def finalized_output() -> dict[str, Any] | None:
        rows = [json.loads(line) for line in cli(node.data_dir, "outputs", "--json").stdout.splitlines()]
        return next((o for o in rows if int(o["l2_block"]) >= block and o["status"] == "OUTPUT_STATUS_FINALIZED"),
                    None)

    output = wait_for(finalized_output, 90, "an output covering the transfer's block to finalize")
    assert int(output["index"]) >= 1 and output["output_root"].startswith("0x")
    shown = cli(node.data_dir, "outputs").stdout
    assert f"output {int(output['index']):>5}" in shown and "finalized" in shown
    assert cli(node.data_dir, "disputes").returncode == 0
    # The proposer compared each output's block with this tree's sequencer: they agree.
    log = (node.data_dir.parent / "up.log").read_text()
    assert '"sequencer_agrees": true' in log and "differs from the one L1 defines" not in log
    assert "not reachable for the output cross-check" not in log


def test_a_faulty_proposer_makes_the_challenger_win_on_l1(tmp_path: pathlib.Path) -> None:
    """One `l2node up`, its rollups worker the test one whose proposer corrupts output 1: its own
    challenger disputes it (and its proposer defends, as a faulty proposer would), and L1 decides
    for the challenger."""
    node = Node(tmp_path, '[workers.rollups]\ndefinition = "tests.workers.faulty_rollups:WORKER"\n'
                          "[workers.rollups.settings]\nfaulty_output = 1\n")
    try:
        cli(node.data_dir, "tx", "send", "--to", "0x000000000000000000000000000000000000bEEF", "--value", "5",
            "--dev", "5", "--wait", "sealed")

        def output(index: int) -> dict[str, Any] | None:
            rows = [json.loads(line) for line in cli(node.data_dir, "outputs", "--json").stdout.splitlines()]
            return next((o for o in rows if int(o["index"]) == index), None)

        bad = wait_for(lambda: (o := output(1)) and o["status"] == "OUTPUT_STATUS_INVALIDATED" and o, 120,
                       "output 1 invalidated")
        disputes = [json.loads(line) for line in cli(node.data_dir, "disputes", "--json").stdout.splitlines()]
        (game,) = [d for d in disputes if int(d["output_index"]) == 1]
        assert game["status"] == "DISPUTE_STATUS_CHALLENGER_WON" and game["moves"][-1]["kind"] == "MOVE_KIND_STEP"
        shown = cli(node.data_dir, "disputes", str(game["id"])).stdout
        assert "challenger_won" in shown and "step" in shown
        assert bad["dispute_ids"] == [game["id"]]
    finally:
        node.close()


def test_one_custom_genesis_is_what_every_part_of_the_node_builds_on(tmp_path: pathlib.Path) -> None:
    """`[node] genesis`: the sequencer executes from it, the L1 registry is anchored at it, and the
    rollups worker derives from it, so outputs over a transfer finalize undisputed."""
    rich = "0x00000000000000000000000000000000C0FFEE00"
    genesis = devnet_genesis(timestamp=1_700_000_000)
    doc = {"chain_id": genesis.chain_id, "base_fee": genesis.base_fee, "timestamp": genesis.timestamp,
           "alloc": {**{"0x" + a.hex(): str(b) for a, b in genesis.alloc}, rich: "123456789"}}
    (tmp_path / "genesis.json").write_text(json.dumps(doc))
    custom = load_genesis(tmp_path / "genesis.json")
    node = Node(tmp_path, node_extra=f'genesis = "{tmp_path / "genesis.json"}"\n')
    try:
        assert json.loads(cli(node.data_dir, "account", rich).stdout)["balance"] == "123456789"
        contracts = json.loads((node.data_dir / "l1" / "contracts.json").read_text())
        assert contracts["anchor"] == "0x" + genesis_snapshot(custom).commitment().hex()
        cli(node.data_dir, "tx", "send", "--to", rich, "--value", "1", "--dev", "4", "--wait", "sealed")

        def finalized() -> list[dict[str, Any]]:
            rows = [json.loads(line) for line in cli(node.data_dir, "outputs", "--json").stdout.splitlines()]
            return [o for o in rows if int(o["index"]) >= 1 and o["status"] == "OUTPUT_STATUS_FINALIZED"]

        wait_for(finalized, 120, "an output over the custom genesis to finalize")
        assert cli(node.data_dir, "disputes", "--json").stdout.strip() == ""  # nobody disagreed
    finally:
        node.close()


def test_a_stuck_transfer_says_why_it_waits_and_wait_times_out_then_empty_blocks_let_it_in(node: Node) -> None:
    base_fee = _base_fee(node)
    # A quarter of the base fee: ~11 empty blocks (one a second) to reach, so it is still pending
    # when the next command asks, however slowly a loaded machine starts it.
    under = f"{base_fee / 4 / 10**9:.9f}"
    to = "0x000000000000000000000000000000000000dEaD"
    r = cli(node.data_dir, "tx", "send", "--to", to, "--value", "1", "--dev", "6", "--max-fee-gwei", under,
            "--tip-gwei", under, "--wait", "sealed", "--timeout", "0.3", check=False)
    assert r.returncode == 1 and "timed out after 0.3s waiting for" in r.stderr, r.stderr
    assert "pending: fee cap " in r.stdout and " under base fee " in r.stdout
    tx_hash = r.stdout.splitlines()[0].split()[1]
    status = json.loads(cli(node.data_dir, "tx", "status", tx_hash).stdout)
    assert status["status"] == "pending" and status["wait_reason"] == "FEE_CAP_BELOW_BASE_FEE"
    # Nothing else is sent: empty blocks lower the base fee until the fee cap covers it.
    out = cli(node.data_dir, "tx", "status", tx_hash, "--wait", "sealed", "--timeout", "60").stdout
    assert out.splitlines()[-1].startswith("sealed in block")
    block = json.loads(cli(node.data_dir, "tx", "status", tx_hash).stdout)["block_number"]
    assert block >= 2  # after empty blocks
    # Derivation re-executes the empty blocks from L1 as any block: the output over them agrees.
    wait_for(lambda: any(int(json.loads(line)["l2_block"]) >= block
                         for line in cli(node.data_dir, "outputs", "--json").stdout.splitlines()), 60,
             "an output over the empty blocks")
    log = (node.data_dir.parent / "up.log").read_text()
    assert '"sequencer_agrees": true' in log and "differs from the one L1 defines" not in log

    nonce = json.loads(cli(node.data_dir, "account", _dev_address(7)).stdout)["nonce"]
    r = cli(node.data_dir, "tx", "send", "--to", to, "--value", "1", "--dev", "7", "--nonce", str(nonce + 1),
            "--wait", "sealed", "--timeout", "0.3", check=False)
    assert r.returncode == 1 and f"pending: nonce gap: account nonce {nonce}, waiting for nonce {nonce}" in r.stdout
    bad = cli(node.data_dir, "tx", "status", tx_hash, "--wait", "sealed", "--timeout", "0", check=False)
    assert bad.returncode == 2 and "positive number of seconds" in bad.stderr


def _base_fee(node: Node) -> int:
    from protos.l2node.sequencer.v1 import sequencer_pb2 as spb
    from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as spb_grpc

    address = next(c["address"] for c in node.doc()["children"] if c["id"] == "sequencer")
    with grpc.insecure_channel(address) as channel:
        info = spb_grpc.SequencerServiceStub(channel).GetChainInfo(spb.GetChainInfoRequest(), timeout=5)
    return int(info.base_fee)


def _dev_address(index: int) -> str:
    from protocol import DEV_ACCOUNTS

    return "0x" + DEV_ACCOUNTS[index].hex()
