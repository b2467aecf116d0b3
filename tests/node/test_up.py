"""`l2node up` end to end: a real tree with a real anvil and real workers, driven through the CLI
and the control plane exactly as an operator or another program would."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import grpc
import pytest

from protos.l2node.supervisor.v1 import supervisor_pb2 as pb
from protos.l2node.supervisor.v1 import supervisor_pb2_grpc as pb_grpc
from tests.conftest import pid_alive
from tests.ports import free_base_port

L2NODE = [sys.executable, "-m", "l2node.cli"]


def cli(data_dir: pathlib.Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*L2NODE, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=90)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def status(data_dir: pathlib.Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli(data_dir, "status", "--json").stdout)
    return doc


def children(data_dir: pathlib.Path) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in status(data_dir)["children"]}


def wait_for(pred: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = pred()
            if value:
                return value
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


class Node:
    def __init__(self, tmp: pathlib.Path, extra: str = "", node_extra: str = "") -> None:
        self.data_dir = tmp / "data"
        self.base_port = free_base_port(10)  # control, 7 workers, metrics
        self.config = tmp / "l2node.toml"
        self.config.write_text(
            f"[node]\nbase_port = {self.base_port}\nperiod_s = 5.0\nintensity = 20\n{node_extra}"
            "[l1]\nport = 0\n"  # any free port: trees of tests running at once do not race for 8545
            "[jsonrpc]\nport = 0\n"  # nor for 8547
            '[workers.echo]\ndefinition = "tests.workers.echo:WORKER"\n'
            '[workers.echo2]\ndefinition = "tests.workers.echo:WORKER"\n' + extra
        )
        self.log = open(tmp / "up.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen([*L2NODE, "up", "--data-dir", str(self.data_dir), "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.endpoints = self.data_dir / "run" / "endpoints.json"
        try:
            wait_for(self._up, 60, "tree up")
        except BaseException:
            self.close()  # a tree that never came up must not outlive its test
            raise

    def _up(self) -> bool:
        assert self.proc.poll() is None, (self.data_dir.parent / "up.log").read_text()
        rows = self.doc()["children"]
        return len(rows) == 9 and all(c["state"] == "running" for c in rows)

    def doc(self) -> dict[str, Any]:
        d: dict[str, Any] = json.loads(self.endpoints.read_text())
        return d

    def control(self) -> pb_grpc.SupervisorServiceStub:
        return pb_grpc.SupervisorServiceStub(grpc.insecure_channel(self.doc()["control"]))

    def pids(self) -> list[int]:
        return [c["pid"] for c in self.doc()["children"] if c["pid"]]

    def close(self) -> None:
        stop_tree(self.proc)
        self.log.close()


def stop_tree(proc: subprocess.Popen[bytes]) -> None:
    """An `l2node up` started in its own session: SIGTERM to its process group, SIGKILL if it is
    not gone in 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_up_writes_endpoints_and_status_shows_the_tree(node: Node) -> None:
    doc = node.doc()
    assert doc["control"] == f"127.0.0.1:{node.base_port}"
    kinds = {c["id"]: c["kind"] for c in doc["children"]}
    assert kinds == {"zygote": "zygote", "l1": "external", "sequencer": "worker", "rollups": "worker",
                     "bridge": "worker", "channels": "worker", "jsonrpc": "worker", "echo": "worker",
                     "echo2": "worker"}
    l1 = next(c for c in doc["children"] if c["id"] == "l1")
    assert l1["address"].startswith("http://127.0.0.1:")
    rows = children(node.data_dir)
    for row in rows.values():
        assert {"id", "kind", "state", "pid", "restarts", "uptime_s", "address", "breakers"} <= set(row)
        assert row["state"] == "running" and row["pid"] > 0
    assert rows["sequencer"]["address"] == f"127.0.0.1:{node.base_port + 1}"  # built-in services first
    assert rows["rollups"]["address"] == f"127.0.0.1:{node.base_port + 2}"
    assert rows["bridge"]["address"] == f"127.0.0.1:{node.base_port + 3}"
    assert rows["channels"]["address"] == f"127.0.0.1:{node.base_port + 4}"
    assert rows["jsonrpc"]["address"] == f"127.0.0.1:{node.base_port + 5}"
    assert rows["echo"]["address"] == f"127.0.0.1:{node.base_port + 6}"
    drawn = cli(node.data_dir, "status").stdout
    assert "echo2" in drawn and "external" in drawn and "l2node tree" in drawn


def test_the_l1_child_is_a_real_anvil(node: Node) -> None:
    import urllib.request

    url = node.doc()["l1_rpc"]
    req = urllib.request.Request(url, data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                                       "params": []}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["result"] == hex(31337)
    assert (node.data_dir / "l1" / "anvil.log").exists()


@pytest.mark.parametrize("victim", ["sequencer", "echo", "l1", "zygote"])
def test_killing_any_child_brings_it_back(node: Node, victim: str) -> None:
    before = children(node.data_dir)[victim]
    os.kill(before["pid"], signal.SIGKILL)

    last: dict[str, Any] = {}

    def back() -> bool:
        row = last[victim] = children(node.data_dir)[victim]
        return row["state"] == "running" and row["pid"] not in (0, before["pid"]) and row["restarts"] == 1

    try:
        wait_for(back, 30, f"{victim} restarted")
    except AssertionError as exc:  # (seen once in CI, not reproduced: what the tree said, for the next time)
        said = [line for line in (node.data_dir.parent / "up.log").read_text().splitlines()
                if f'"{victim}"' in line and ('"supervisor"' in line or "ERROR" in line or "Traceback" in line)]
        raise AssertionError(f"{exc}; its row last seen: {last.get(victim)}; the log:\n" + "\n".join(said[-30:])) \
            from None
    after = children(node.data_dir)
    assert after[victim]["address"] == before["address"]
    assert "SIGKILL" in after[victim]["last_exit_reason"]
    others = [cid for cid in after if cid != victim]
    assert all(after[c]["restarts"] == 0 for c in others)  # one_for_one


def test_killing_the_supervisor_leaves_no_process_behind(node: Node) -> None:
    pids = node.pids()
    assert len(pids) == 9
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait()
    deadline = time.monotonic() + 2.0  # the bound: every worker exits within 2 s
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [p for p in pids if pid_alive(p)] == []


def test_cli_restart_and_stop(node: Node) -> None:
    before = children(node.data_dir)["echo2"]["pid"]
    out = cli(node.data_dir, "restart", "echo2").stdout
    assert "echo2 restarted" in out
    assert children(node.data_dir)["echo2"]["pid"] != before
    bad = cli(node.data_dir, "restart", "nope", check=False)
    assert bad.returncode == 1 and "NOT_FOUND" in bad.stderr
    pids = node.pids()
    assert "stopped tree" in cli(node.data_dir, "stop").stdout
    assert node.proc.wait(10) == 0
    assert not node.endpoints.exists()
    assert [p for p in pids if pid_alive(p)] == []


def test_control_plane_api_and_events(node: Node) -> None:
    stub = node.control()
    events = stub.WatchEvents(pb.WatchEventsRequest(prefix="echo"), timeout=30)
    counts = stub.CountChildren(pb.CountChildrenRequest(), timeout=5)
    assert (counts.specs, counts.active) == (9, 9)
    stub.TerminateChild(pb.TerminateChildRequest(id="echo", request_id="t-1"), timeout=30)
    again = stub.TerminateChild(pb.TerminateChildRequest(id="echo", request_id="t-1"), timeout=30)
    assert again.child.state == pb.CHILD_STATE_TERMINATED  # the retried request applied once
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteChild(pb.DeleteChildRequest(id="echo2"), timeout=5)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "running" in err.value.details()
    stub.RestartChild(pb.RestartChildRequest(id="echo"), timeout=30)
    seen = []
    for reply in events:
        seen.append((pb.EventType.Name(reply.event.type), reply.event.child_id))
        if len(seen) == 3:
            break
    events.cancel()
    assert seen == [("EVENT_TYPE_EXITED", "echo"), ("EVENT_TYPE_TERMINATED", "echo"), ("EVENT_TYPE_STARTED", "echo")]


def test_start_child_over_the_control_plane(node: Node) -> None:
    stub = node.control()
    port = free_base_port(1)
    spec = pb.ChildSpec(id="extra", restart=pb.RESTART_TYPE_TRANSIENT,
                        worker=pb.WorkerStart(definition="tests.workers.echo:WORKER", address=f"127.0.0.1:{port}"))
    reply = stub.StartChild(pb.StartChildRequest(spec=spec, request_id="s-1"), timeout=30)
    assert reply.child.state == pb.CHILD_STATE_RUNNING and reply.child.pid > 0
    assert stub.StartChild(pb.StartChildRequest(spec=spec, request_id="s-1"), timeout=30).child.pid == reply.child.pid
    with pytest.raises(grpc.RpcError) as err:
        stub.StartChild(pb.StartChildRequest(spec=spec), timeout=30)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as err:
        stub.StartChild(pb.StartChildRequest(spec=pb.ChildSpec(id="x")), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    wait_for(lambda: "extra" in {c["id"] for c in node.doc()["children"]}, 5, "endpoints updated")


def test_cli_sends_a_transfer_from_a_dev_account_and_follows_it(node: Node) -> None:
    to = "0x000000000000000000000000000000000000dEaD"
    out = cli(node.data_dir, "tx", "send", "--to", to, "--value", "777", "--dev", "3", "--wait", "sealed").stdout
    lines = out.splitlines()
    assert lines[0].startswith("sent 0x") and lines[-1].startswith("sealed in block")
    tx_hash = lines[0].split()[1]
    status = json.loads(cli(node.data_dir, "tx", "status", tx_hash).stdout)
    # Sealed, or already SAFE or FINALIZED when the next command got to ask (a loaded machine starts it
    # slowly: the devnet L1 makes a block a second).
    assert status["status"] in ("sealed", "safe", "finalized")
    assert status["to"] == to.lower() and status["gas_used"] == 21_000
    assert json.loads(cli(node.data_dir, "account", to).stdout)["balance"] == "777"
    blocks = cli(node.data_dir, "blocks", "--last", "50").stdout
    assert f"block {status['block_number']:>8}" in blocks
    bad = cli(node.data_dir, "account", "0x12", check=False)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr


def test_up_refuses_a_node_whose_services_would_disagree_and_says_why(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "l2node.toml"
    config.write_text("[workers.sequencer.settings]\nchain_id = 901\n[workers.rollups.settings]\nchain_id = 902\n")
    r = cli(tmp_path / "data", "up", "--config", str(config), check=False)
    assert r.returncode != 0 and "would not build on the same chain" in r.stderr
    assert not (tmp_path / "data" / "run" / "endpoints.json").exists()  # nothing started
    config.write_text('[workers.sequencer.settings]\ngenesis = "genesis.json"\n')  # the old spelling
    r = cli(tmp_path / "data", "up", "--config", str(config), check=False)
    assert r.returncode != 0 and '[node] genesis = "path"' in r.stderr


def test_up_refuses_to_start_when_a_worker_port_is_taken_and_names_it(tmp_path: pathlib.Path) -> None:
    base = free_base_port(10)
    config = tmp_path / "l2node.toml"
    config.write_text(f"[node]\nbase_port = {base}\nmetrics_port = {free_base_port(1)}\n")
    with socket.socket() as squatter:  # another program on the rollups worker's port (base + 2)
        squatter.bind(("127.0.0.1", base + 2))
        squatter.listen()
        r = cli(tmp_path / "data", "up", "--config", str(config), check=False)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"rollups 127.0.0.1:{base + 2}" in r.stderr and "base_port moves the tree" in r.stderr
    assert '"child": "l1"' not in r.stderr  # refused before anything started: no anvil, no worker
    assert not (tmp_path / "data" / "run" / "endpoints.json").exists()
