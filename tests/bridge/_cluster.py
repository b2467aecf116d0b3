"""A node's bridge on a real anvil, for the bridge's tests: the contracts deployed as `l2node deploy`
does, a real sequencer worker (batcher on, following L1 deposits), optionally a real rollups
worker (proposer and challenger), and the bridge worker under test, each its own process."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import grpc

from l2node.node.deploy import (
    DEVNET_BATCHER,
    DEVNET_BATCHER_KEY,
    DEVNET_CHALLENGER_KEY,
    DEVNET_DEPLOYER_KEY,
    DEVNET_PROPOSER_KEY,
    RollupParams,
    deploy_contracts,
)
from protos.l2node.bridge.v1 import bridge_pb2 as bpb
from protos.l2node.bridge.v1 import bridge_pb2_grpc as bpb_grpc
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as spb_grpc
from services.l1 import Artifact, Contract, address
from tests.l1.anvil import Anvil
from tests.ports import free_port
from tests.serving import wait_serving

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Both the sequencer and the bridge call a deposit confirmed this deep.
DEPTH = 2


class Process:
    """A worker process and a channel to it."""

    def __init__(self, argv: list[str], address: str, log: pathlib.Path, env: dict[str, str] | None = None) -> None:
        self.address = address
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
                                     env={**os.environ, **(env or {})})
        self.channel = grpc.insecure_channel(address)
        wait_serving(self.channel, proc=self.proc)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.channel.close()


def worker(tmp_path: pathlib.Path, definition: str, name: str, settings: dict[str, Any],
           env: dict[str, str] | None = None, port: int | None = None) -> Process:
    addr = f"127.0.0.1:{port or free_port()}"
    config = {"service": name, "address": addr, "data_dir": str(tmp_path / name), "settings": settings}
    argv = [sys.executable, "-m", "services.runtime", definition, "--config-json", json.dumps(config)]
    return Process(argv, addr, tmp_path / f"{name}.log", env)


class Cluster:
    """Contracts on ``l1``, a sequencer, maybe a rollups worker, and the bridge."""

    def __init__(self, tmp_path: pathlib.Path, l1: Anvil, params: RollupParams | None = None,
                 rollups: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 bridge: dict[str, Any] | None = None) -> None:
        self.tmp_path, self.l1, self.env = tmp_path, l1, env
        asyncio.run(deploy_contracts(l1.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path, params=params))
        self.contracts = tmp_path / "l1" / "contracts.json"
        doc = json.loads(self.contracts.read_text())
        self.portal = Contract(Artifact.load("DepositPortal"), address(doc["contracts"]["DepositPortal"]))
        self.addresses = {name: address(at) for name, at in doc["contracts"].items()}
        key_file = tmp_path / "batcher.key"
        key_file.write_text(DEVNET_BATCHER_KEY)
        self.sequencer = worker(tmp_path, "services.sequencer:WORKER", "sequencer", {
            "block_time_s": 0.05, "l1": {
                "rpc": l1.url, "contracts": str(self.contracts), "batcher_key_file": str(key_file),
                "batch_interval_s": 0.1, "confirmation_depth": DEPTH, "poll_interval_s": 0.05}}, env)
        self.seq = spb_grpc.SequencerServiceStub(self.sequencer.channel)
        self.rollups: Process | None = None
        self._rollups_port = free_port()
        if rollups is not None:
            self.start_rollups(**rollups)
        self.bridge_settings: dict[str, Any] = {
            "l1": {"rpc": l1.url, "contracts": str(self.contracts)}, "sequencer": self.sequencer.address,
            "rollups": f"127.0.0.1:{self._rollups_port}", "confirmation_depth": DEPTH, "poll_interval_s": 0.1,
            **(bridge or {})}
        self._bridge_port = free_port()
        self.bridge = self.start_bridge()

    def start_rollups(self, definition: str = "services.rollups:WORKER", **settings: Any) -> None:
        """The rollups worker (proposer and challenger: dev keys 8 and 9), on its fixed port."""
        if self.rollups is not None:
            self.rollups.stop()
        keys = self.tmp_path / "rollups-keys"
        keys.mkdir(exist_ok=True)
        (keys / "proposer.key").write_text(DEVNET_PROPOSER_KEY)
        (keys / "challenger.key").write_text(DEVNET_CHALLENGER_KEY)
        self.rollups = worker(self.tmp_path, definition, "rollups", {
            "poll_interval_s": 0.2, "confirmation_depth": 1, "output_interval_blocks": 3, "output_interval_s": 1.0,
            "proposer_key_file": str(keys / "proposer.key"), "challenger_key_file": str(keys / "challenger.key"),
            "l1": {"rpc": self.l1.url, "contracts": str(self.contracts)}, **settings}, self.env,
            port=self._rollups_port)

    def start_bridge(self) -> Process:
        self.bridge_proc = worker(self.tmp_path, "services.bridge:WORKER", "bridge", self.bridge_settings, self.env,
                                  port=self._bridge_port)
        self.stub = bpb_grpc.BridgeServiceStub(self.bridge_proc.channel)
        return self.bridge_proc

    def restart_bridge(self, sig: signal.Signals = signal.SIGKILL) -> None:
        self.bridge_proc.stop(sig)
        self.bridge = self.start_bridge()

    def close(self) -> None:
        for p in (self.bridge_proc, self.rollups, self.sequencer):
            if p is not None:
                p.stop()

    # --- L1 ------------------------------------------------------------------------------------

    def deposit(self, sender: str, to: str, value: int) -> str:
        """``sender`` (an anvil dev account, unlocked) deposits ``value`` wei for ``to``; the L1 tx hash."""
        data = self.portal.encode_call("depositTransaction", address(to))
        return str(self.l1.rpc("eth_sendTransaction", {"from": sender, "to": "0x" + (self.portal.address or b"").hex(),
                                                       "value": hex(value), "data": "0x" + data.hex()}))

    def send(self, sender: str, to: bytes, data: bytes, value: int = 0, gas: int | None = None) -> Any:
        """An L1 transaction from an unlocked dev account; its receipt."""
        tx: dict[str, Any] = {"from": sender, "to": "0x" + to.hex(), "data": "0x" + data.hex(), "value": hex(value)}
        if gas is not None:
            tx["gas"] = hex(gas)
        return self.l1.receipt(str(self.l1.rpc("eth_sendTransaction", tx)), timeout_s=30)

    def block_number(self) -> int:
        return int(self.l1.rpc("eth_blockNumber"), 16)

    # --- the bridge ----------------------------------------------------------------------------

    def deposit_record(self, l1_tx_hash: str) -> Any:
        return self.stub.GetDeposit(bpb.GetDepositRequest(l1_tx_hash=l1_tx_hash), timeout=5).deposit

    def withdrawal(self, withdrawal_hash: str) -> Any:
        return self.stub.GetWithdrawal(bpb.GetWithdrawalRequest(withdrawal_hash=withdrawal_hash), timeout=5).withdrawal


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, poll: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            last = None
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {last})"
        time.sleep(poll)


def deposit_status(d: Any) -> str:
    return str(bpb.DepositStatus.Name(d.status)).removeprefix("DEPOSIT_STATUS_")


def withdrawal_status(w: Any) -> str:
    return str(bpb.WithdrawalStatus.Name(w.status)).removeprefix("WITHDRAWAL_STATUS_")
