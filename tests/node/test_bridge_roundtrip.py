"""The bridge's round trip from the CLI, on a real `l2node up` (the default tree: anvil, sequencer,
rollups, bridge with the devnet relayer): deposit 1 ETH on L1 and see it credited on L2, withdraw
part of it and see it FINALIZED on L1 by the relayer, and see the L1 balance change by exactly
that amount. What the README's bridge section shows. Traced, as with Jaeger (tests.conftest's
OTLP collector): each crossing is one trace, from the command to the bridge's last span."""

from __future__ import annotations

import asyncio
import json
import pathlib
import secrets
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from protocol import DEV_ACCOUNTS
from services.l1 import LocalSigner
from tests.conftest import Collector, otel_env
from tests.node.test_up import L2NODE, stop_tree, wait_for
from tests.ports import free_base_port

ETHER = 10**18
#: The devnet relayer (l2node/node/deploy.py DEVNET_RELAYER_KEY): anvil's dev account 7.
RELAYER = "0x" + DEV_ACCOUNTS[7].hex()
#: The devnet's withdrawal takes an output (~5 s), its challenge window (20 s) and the proof's
#: maturity (10 s), plus L1 blocks for each step; the CLI's own --timeout fails first, saying where it stands.
WITHDRAW_TIMEOUT_S = 240
pytestmark = pytest.mark.timeout(WITHDRAW_TIMEOUT_S + 180)
#: The order a withdrawal's statuses come in (the README lists them).
WITHDRAWAL_STATUSES = ("INITIATED", "IN_OUTPUT", "PROVEN", "READY", "FINALIZED")


class Tree:
    """`l2node up` with the built-in services only, on free ports."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.data_dir = tmp / "data"
        config = tmp / "l2node.toml"
        config.write_text(f"[node]\nbase_port = {free_base_port()}\n[l1]\nport = 0\n[jsonrpc]\nport = 0\n")
        self.log_path = tmp / "up.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen([*L2NODE, "up", "--data-dir", str(self.data_dir), "--config", str(config)],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(self._ready, 120, "tree up and ready")
        except BaseException:
            self.close()
            raise

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text()[-5000:]
        if not (self.data_dir / "run" / "endpoints.json").exists():
            return False
        r = self.cli("status", "--json", check=False)
        if r.returncode:
            return False
        doc = json.loads(r.stdout)
        return doc["ready"] and {"sequencer", "rollups", "bridge"} <= {c["id"] for c in doc["children"]}

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*L2NODE, *args, "--data-dir", str(self.data_dir)], capture_output=True, text=True,
                           timeout=timeout)
        if check:
            assert r.returncode == 0, f"l2node {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r

    def l1_balance(self, address: str) -> int:
        url = json.loads((self.data_dir / "run" / "endpoints.json").read_text())["l1_rpc"]
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [address, "latest"]}
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(json.loads(resp.read())["result"], 16)

    def l2_balance(self, address: str) -> int:
        return int(json.loads(self.cli("account", address).stdout)["balance"])

    def close(self) -> None:
        stop_tree(self.proc)


@pytest.fixture
async def tree(tmp_path: pathlib.Path, collector: Collector, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Tree]:
    for key, value in otel_env(collector).items():  # the tree and every command export spans to it
        monkeypatch.setenv(key, value)
    t = await asyncio.to_thread(Tree, tmp_path)
    try:
        yield t
    finally:
        await asyncio.to_thread(t.close)


async def _in_one_trace(collector: Collector, command: str, key: str, value: str, names: tuple[str, ...]) -> None:
    """The command's span carries ``key`` = ``value`` and roots a trace holding a span of each of
    ``names`` about the same hash."""
    root = await collector.wait_for(lambda s: s["name"] == command and s["attributes"].get(key) == value, 30)
    assert root["service"] == "l2node-cli" and root["parent_id"] == ""
    for name in names:
        span = await collector.wait_for(lambda s, n=name: s["name"] == n and s["attributes"].get(key) == value, 30)
        assert span["trace_id"] == root["trace_id"], f"{name} is not in the trace of {command}"
        assert span["service"] == "bridge"


def _statuses(output: str, kind: str) -> list[str]:
    """The statuses ``kind`` lines show, in order, each once."""
    seen: list[str] = []
    for line in output.splitlines():
        words = line.split()
        status = words[2].rstrip(",") if len(words) > 2 and words[0] == kind else None
        if status and status not in seen:
            seen.append(status)
    return seen


async def test_deposit_then_withdraw_part_of_it_round_trip_from_the_cli(tree: Tree, tmp_path: pathlib.Path,
                                                                      collector: Collector) -> None:
    def run(*args: str, timeout: float = 60, check: bool = True) -> Any:
        return asyncio.to_thread(tree.cli, *args, timeout=timeout, check=check)

    async def l2_balance(address: str) -> int:
        return await asyncio.to_thread(tree.l2_balance, address)

    async def l1_balance(address: str) -> int:
        return await asyncio.to_thread(tree.l1_balance, address)

    # A fresh account: nothing on L1, nothing on L2; dev account 5 deposits to it on L1.
    key = secrets.token_bytes(32)
    user = "0x" + LocalSigner(key).address.hex()
    key_file = tmp_path / "user.key"
    key_file.write_text("0x" + key.hex() + "\n")
    assert await l1_balance(user) == 0 and await l2_balance(user) == 0

    deposit = await run("deposit", "--dev", "5", "--to", user, "--value", "1ether", "--wait", "credited", timeout=180)
    out = deposit.stdout
    assert "sent L1 tx 0x" in out and "waiting up to 120s for deposit 0x" in out
    assert _statuses(out, "deposit")[-1] == "CREDITED", out
    assert f"l2 balance of {user}: 1 eth ({ETHER} wei)" in out.lower(), out
    assert await l2_balance(user) == ETHER

    # Withdraw a quarter to the same address on L1, signed by the new key; the relayer proves and
    # finalizes. Meanwhile (the same outputs and windows), dev account 6 withdraws to a contract that
    # takes no ETH (the BatchInbox): its target call fails, the command exits 1 and says what is left.
    inbox = json.loads((tree.data_dir / "l1" / "contracts.json").read_text())["contracts"]["BatchInbox"]
    wait = ("--wait", "finalized", "--timeout", str(WITHDRAW_TIMEOUT_S))
    withdraw, failed = await asyncio.gather(
        run("withdraw", "--key-file", str(key_file), "--value", "0.25ether", *wait, timeout=WITHDRAW_TIMEOUT_S + 30),
        run("withdraw", "--dev", "6", "--value", "5gwei", "--to", inbox, *wait, timeout=WITHDRAW_TIMEOUT_S + 30,
            check=False))
    assert failed.returncode == 1 and _statuses(failed.stdout, "withdrawal")[-1] == "FINALIZED", failed
    assert "target call FAILED" in failed.stdout and "value waits in DepositPortal" in failed.stdout
    assert "retryWithdrawal" in failed.stdout and "refundWithdrawal" in failed.stdout
    out = withdraw.stdout
    assert f"withdraw 0.25 ETH ({ETHER // 4} wei) to {user} on L1" in out, out
    assert f"waiting up to {WITHDRAW_TIMEOUT_S}s for the withdrawal of L2 tx 0x" in out
    assert "to be FINALIZED on L1" in out
    shown = _statuses(out, "withdrawal")
    assert shown[0] == "INITIATED" and shown[-1] == "FINALIZED", out
    assert shown == [s for s in WITHDRAWAL_STATUSES if s in shown], f"out of order: {shown}"
    assert "target call SUCCEEDED" in out and f"by {RELAYER}" in out.lower(), out

    # L1: the target got exactly the value (the relayer paid the gas); L2: the value and the fee left.
    assert await l1_balance(user) == ETHER // 4
    assert f"l1 balance of {user}: 0 eth (0 wei) -> 0.25 eth ({ETHER // 4} wei)" in out.lower(), out
    left = await l2_balance(user)
    assert left < ETHER - ETHER // 4 and ETHER - left - ETHER // 4 < 10**15  # the L2 fee, well under 0.001 ETH

    # The bridge lists it, by address and by hash, finalized and succeeded.
    (line,) = (await run("withdrawals", "--address", user, "--json")).stdout.splitlines()
    doc: dict[str, Any] = json.loads(line)
    assert (doc["status"], doc["outcome"]) == ("WITHDRAWAL_STATUS_FINALIZED", "WITHDRAWAL_OUTCOME_SUCCEEDED")
    assert doc["sender"].lower() == doc["target"].lower() == user and doc["value"] == str(ETHER // 4)
    assert doc["prover"].lower() == RELAYER
    one = (await run("withdrawals", doc["withdrawal_hash"])).stdout
    assert one.startswith(f"withdrawal {doc['withdrawal_hash']} FINALIZED") and "target call SUCCEEDED" in one

    # Each crossing is one trace: the command's span roots the bridge's spans about its hash.
    deposit_hash = next(line.split()[1] for line in deposit.stdout.splitlines() if line.startswith("deposit 0x"))
    await _in_one_trace(collector, "l2node deposit", "l2.deposit.hash", deposit_hash,
                        ("bridge.deposit.confirmed", "bridge.deposit.credited"))
    await _in_one_trace(collector, "l2node withdraw", "l2.withdrawal.hash", doc["withdrawal_hash"],
                        ("bridge.withdrawal.initiated", "bridge.withdrawal.proven", "relay.prove",
                         "relay.finalize", "bridge.withdrawal.finalized"))
