"""`l2node deploy` against an L1 the node does not run, then the container's own command against it.

The anvil here is started by the test, as an operator's L1 would be: the node only gets its URL
(with credentials in it, which nothing may print). The container's command is read from the
Dockerfile's ENTRYPOINT and the Kubernetes base's container args, with the container's paths
(/etc/l2node, /data) mapped to the test's directories.
"""

from __future__ import annotations

import json
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from l2node.node.l1 import anvil_binary
from l2node.node.readiness import READY
from protocol import DEV_PRIVATE_KEYS
from services.l1 import Deployment, LocalSigner, checksum
from tests.node.test_up import stop_tree, wait_for
from tests.ops.support import OPS, dockerfile, render
from tests.ports import free_base_port, free_port

L2NODE = [sys.executable, "-m", "l2node.cli"]
SECRET = "s3cret-api-key"
#: The node's own keys: anvil's funded dev accounts 1 (batcher), 8, 9, 7 (relayer) and 6 (channels); the
#: deployer is 0.
KEYS = {"deployer": 0, "batcher": 1, "proposer": 8, "challenger": 9, "relayer": 7, "channels": 6}


@pytest.fixture(scope="module")
def l1() -> Iterator[str]:
    """An L1 of its own, moving like a real one (a block a second; finalized 8 blocks back). Its
    URL carries credentials (anvil ignores them), as a provider's does."""
    port = free_port()
    proc = subprocess.Popen([anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--quiet",
                             "--block-time", "1", "--slots-in-an-epoch", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://operator:{SECRET}@127.0.0.1:{port}"
    try:
        wait_for(lambda: _listening(port), 10, "anvil up")
        yield url
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*L2NODE, *args], capture_output=True, text=True, timeout=timeout, check=False)


def write_key(path: pathlib.Path, dev_index: int) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("0x" + DEV_PRIVATE_KEYS[dev_index].hex() + "\n")
    return path


def container_argv() -> list[str]:
    """ENTRYPOINT + the args the Kubernetes base passes to the node's container."""
    entrypoint = next(i for i in reversed(dockerfile()) if i.keyword == "ENTRYPOINT").exec_form()
    workloads = [o for o in render("base") if o["kind"] in ("Deployment", "StatefulSet")]
    # The node's own workload (the sequencer's tree), not the read replicas' (l2node-replica).
    (pod,) = [w["spec"]["template"]["spec"] for w in workloads if w["metadata"]["name"] == "l2node"]
    (c,) = [c for c in pod["containers"] if c["name"] == "l2node"]
    return [*entrypoint, *c.get("args", [])]


class Site:
    """The operator's side of one deployment: keys, `l2node deploy`'s output, the node's dirs."""

    def __init__(self, tmp: pathlib.Path, l1_url: str) -> None:
        self.tmp, self.l1_url = tmp, l1_url
        self.etc, self.keys, self.data = tmp / "etc", tmp / "secrets", tmp / "data"
        self.deployer_key = write_key(tmp / "deployer" / "deployer.key", KEYS["deployer"])
        # The operator's config: the Kubernetes base's, on ports of its own for this test (a tree on
        # the default ports, e.g. ../shared/checks/interface-contract's, must not collide with it).
        self.base_port = free_base_port()
        base = (OPS / "k8s" / "base" / "l2node.toml").read_text()
        self.source = tmp / "source.toml"
        text, count = re.subn(r"(?m)^base_port = 50050$", f"base_port = {self.base_port}", base)
        text, metrics = re.subn(r"(?m)^metrics_port = \d+$", f"metrics_port = {self.base_port + 7}", text)
        text, jsonrpc = re.subn(r"(?m)^port = 8547$", f"port = {free_port()}", text)  # [jsonrpc]'s
        assert count == metrics == jsonrpc == 1
        self.source.write_text(text)

    def deploy(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return run("deploy", "--l1-rpc", self.l1_url, "--key-file", str(self.deployer_key), "--config",
                   str(self.source), "--out", str(self.etc), "--node-config-dir", str(self.etc),
                   "--node-keys-dir", str(self.keys), *extra)

    def up(self) -> subprocess.Popen[bytes]:
        """The container's exact command, its paths mapped here, its L1_RPC the operator's URL."""
        paths = {"/etc/l2node": str(self.etc), "/data": str(self.data)}
        argv = []
        for arg in container_argv():
            for container_path, here in paths.items():
                if arg == container_path or arg.startswith(container_path + "/"):
                    arg = here + arg[len(container_path):]
            argv.append(arg.replace("$(L1_RPC)", self.l1_url))
        assert argv[0] == "l2node"
        argv[0] = str(pathlib.Path(sys.executable).parent / "l2node")
        self.log = open(self.tmp / "up.log", "w")  # noqa: SIM115
        return subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def status(self) -> dict[str, Any]:
        r = run("status", "--json", "--data-dir", str(self.data), timeout=30)
        assert r.returncode == 0, r.stderr
        doc: dict[str, Any] = json.loads(r.stdout)
        return doc

    def ready_health(self) -> int:
        """The control plane's health for READY, as a kubelet's gRPC readinessProbe asks it."""
        with grpc.insecure_channel(f"127.0.0.1:{self.base_port}") as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=READY), timeout=5)
        return int(reply.status)


def tree_running(site: Site, node: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    assert node.poll() is None, (site.tmp / "up.log").read_text()
    if not (site.data / "run" / "endpoints.json").exists():
        return None
    doc = site.status()
    rows = {c["id"]: c for c in doc["children"]}
    return doc if {"sequencer", "rollups"} <= set(rows) and all(c["state"] == "running" for c in rows.values()) \
        else None


def test_deploy_then_the_container_command_finalizes_a_transfer(l1: str, tmp_path: pathlib.Path) -> None:
    site = Site(tmp_path, l1)
    batcher_key = write_key(site.keys / "batcher.key", KEYS["batcher"])
    deployed = site.deploy("--batcher-key-file", str(batcher_key))
    assert deployed.returncode == 0, deployed.stderr
    assert SECRET not in deployed.stdout + deployed.stderr and "operator" not in deployed.stdout
    batcher = checksum(LocalSigner(DEV_PRIVATE_KEYS[KEYS["batcher"]]).address)
    assert f"batcher {batcher}" in deployed.stdout and "deployed and verified" in deployed.stdout

    # What it wrote: the record services read, and a config naming the node's own key files.
    deployment = Deployment.load(site.etc / "contracts.json")
    assert {"BatchInbox", "DepositPortal", "StepVerifier", "OutputRegistry"} <= set(deployment.addresses)
    config = (site.etc / "l2node.toml").read_text()
    assert SECRET not in config and "rpc" not in config.split("[l1]")[1].split("[")[0]
    for role in ("batcher", "proposer", "challenger", "relayer", "channels"):  # the base has both optional roles
        assert f'{role}_key_file = "{site.keys / f"{role}.key"}"' in config
    assert f'contracts = "{site.etc / "contracts.json"}"' in config and 'host = "0.0.0.0"' in config
    for role in ("proposer", "challenger", "relayer", "channels"):
        write_key(site.keys / f"{role}.key", KEYS[role])

    node = site.up()
    try:
        doc = wait_for(lambda: tree_running(site, node), 90, "tree up")
        assert doc["ready"] and all(not c["not_ready"] for c in doc["children"])
        wait_for(lambda: site.ready_health() == health_pb2.HealthCheckResponse.SERVING, 10, "READY serving")
        sent = run("tx", "send", "--data-dir", str(site.data), "--to", "0x000000000000000000000000000000000000dEaD",
                   "--value", "1000", "--wait", "finalized", timeout=180)
        assert sent.returncode == 0, sent.stderr
        assert "FINALIZED" in sent.stdout.upper()
    finally:
        stop_tree(node)
        site.log.close()


def test_a_missing_key_file_makes_the_node_not_ready_and_status_names_it(l1: str, tmp_path: pathlib.Path) -> None:
    site = Site(tmp_path, l1)
    batcher = checksum(LocalSigner(DEV_PRIVATE_KEYS[KEYS["batcher"]]).address)
    deployed = site.deploy("--batcher-address", batcher)
    assert deployed.returncode == 0, deployed.stderr
    write_key(site.keys / "batcher.key", KEYS["batcher"])
    write_key(site.keys / "challenger.key", KEYS["challenger"])  # the proposer's key is not there
    write_key(site.keys / "relayer.key", KEYS["relayer"])
    write_key(site.keys / "channels.key", KEYS["channels"])
    node = site.up()
    try:
        doc = wait_for(lambda: tree_running(site, node), 90, "tree up")
        rows = {c["id"]: c for c in doc["children"]}
        assert not doc["ready"] and rows["sequencer"]["not_ready"] == []
        (reason,) = rows["rollups"]["not_ready"]
        assert reason.startswith("proposer_key_file: key file ") and str(site.keys / "proposer.key") in reason
        text = run("status", "--data-dir", str(site.data), timeout=30).stdout
        assert "NOT READY" in text and f"not ready: {reason}" in text
        assert site.ready_health() == health_pb2.HealthCheckResponse.NOT_SERVING
        # The worker's own health: "" alive (its supervisor keeps it), its service NOT_SERVING.
        with grpc.insecure_channel(rows["rollups"]["address"]) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            assert stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == 1
            service = stub.Check(health_pb2.HealthCheckRequest(service="l2node.rollups.v1.RollupsService"), timeout=5)
            assert service.status == health_pb2.HealthCheckResponse.NOT_SERVING

        # The operator provides the key (a Secret updated in place) and restarts the worker: ready.
        write_key(site.keys / "proposer.key", KEYS["proposer"])
        restarted = run("restart", "rollups", "--data-dir", str(site.data), timeout=60)
        assert restarted.returncode == 0, restarted.stderr
        wait_for(lambda: site.status()["ready"], 30, "ready after the key is there")
        assert site.ready_health() == health_pb2.HealthCheckResponse.SERVING
    finally:
        stop_tree(node)
        site.log.close()


def test_a_node_with_an_l1_and_no_contracts_is_not_ready(l1: str, tmp_path: pathlib.Path) -> None:
    """`up --l1-rpc` without a deployment: the sequencer would seal blocks it never posts."""
    site = Site(tmp_path, l1)
    site.etc.mkdir()
    (site.etc / "l2node.toml").write_text(site.source.read_text())
    node = site.up()
    try:
        doc = wait_for(lambda: tree_running(site, node), 90, "tree up")
        rows = {c["id"]: c for c in doc["children"]}
        assert not doc["ready"]
        # The base config names /etc/l2node/contracts.json, which no deploy wrote: named, with why.
        for worker in ("sequencer", "rollups"):
            assert any(r.startswith("l1.contracts: contracts file /etc/l2node/contracts.json: FileNotFoundError")
                       for r in rows[worker]["not_ready"]), rows[worker]["not_ready"]
    finally:
        stop_tree(node)
        site.log.close()


def test_deploy_to_a_wrong_rpc_fails_with_the_url_redacted_and_writes_nothing(tmp_path: pathlib.Path) -> None:
    site = Site(tmp_path, f"http://operator:{SECRET}@127.0.0.1:{free_port()}/v3/{SECRET}")
    started = time.monotonic()
    r = site.deploy("--batcher-address", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert r.returncode == 1 and time.monotonic() - started < 60
    assert r.stderr.startswith("l2node: deploy: L1 http://***@127.0.0.1:") and "Cannot connect" in r.stderr
    assert SECRET not in r.stdout + r.stderr and "operator" not in r.stdout + r.stderr
    assert not site.etc.exists()


def test_deploy_refuses_bad_input_by_name(l1: str, tmp_path: pathlib.Path) -> None:
    site = Site(tmp_path, l1)
    r = site.deploy("--batcher-address", "0x1234")
    assert r.returncode == 1 and "--batcher-address '0x1234'" in r.stderr
    r = site.deploy("--batcher-key-file", str(tmp_path / "nowhere.key"))
    assert r.returncode == 1 and "nowhere.key" in r.stderr
    r = run("deploy", "--l1-rpc", l1, "--key-file", str(site.deployer_key))
    assert r.returncode == 2 and "--batcher-address" in r.stderr  # argparse: one of the two is required
    # An existing record is never overwritten by accident: it may be a live rollup's.
    site.etc.mkdir()
    (site.etc / "contracts.json").write_text("{}")
    r = site.deploy("--batcher-address", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    assert r.returncode == 1 and "exists" in r.stderr and (site.etc / "contracts.json").read_text() == "{}"
