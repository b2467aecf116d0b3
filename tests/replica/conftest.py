"""One sequencer tree (`l2node up`, local anvil) and two read-replica trees of it on the same L1,
shared by this folder's modules (each tree takes seconds to start). Each replica is a whole
`l2node up` with ``[node] role = "replica"``: its own data dir, ports, sequencer (follower) and
jsonrpc workers."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from tests.conftest import json_rpc
from tests.node.test_up import L2NODE, stop_tree, wait_for
from tests.ports import free_base_port, free_port


@dataclass
class Tree:
    """One `l2node up` tree: its gRPC sequencer address and JSON-RPC URL."""

    name: str
    tmp: pathlib.Path
    data_dir: pathlib.Path
    config: pathlib.Path
    base_port: int
    jsonrpc_port: int
    workers: int
    proc: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = ()

    @property
    def sequencer(self) -> str:
        return f"127.0.0.1:{self.base_port + 1}"  # worker 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.jsonrpc_port}"

    def start(self) -> None:
        log = open(self.tmp / "up.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen([*L2NODE, "up", "--data-dir", str(self.data_dir), "--config", str(self.config),
                                      *self.args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ))
        log.close()
        wait_for(self._up, 90, f"{self.name} tree up")

    def _up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, (self.tmp / "up.log").read_text()[-4000:]
        rows = self.children()
        return len(rows) == self.workers and all(c["state"] == "running" for c in rows.values())

    def children(self) -> dict[str, dict[str, Any]]:
        doc = json.loads((self.data_dir / "run" / "endpoints.json").read_text())
        return {c["id"]: c for c in doc["children"]}

    def stop(self) -> None:
        if self.proc is not None:
            stop_tree(self.proc)

    def kill(self) -> None:
        """SIGKILL the whole tree (its process group: supervisor, zygote, workers)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, 9)
        self.proc.wait()

    def stub(self) -> pb_grpc.SequencerServiceStub:
        return pb_grpc.SequencerServiceStub(grpc.insecure_channel(self.sequencer))

    def head(self) -> int:
        return int(self.stub().GetChainInfo(pb.GetChainInfoRequest(), timeout=5).unsafe_block)

    def block(self, number: int) -> pb.Block:
        return self.stub().GetBlock(pb.GetBlockRequest(number=number), timeout=5).block

    def rpc(self, method: str, *params: Any) -> Any:
        return json_rpc(self.url, method, *params)


def _tree(tmp: pathlib.Path, name: str, text: str, workers: int, args: tuple[str, ...] = (), node: str = "") -> Tree:
    base, port = free_base_port(8), free_port()
    config = tmp / "l2node.toml"
    config.write_text(f"[node]\nbase_port = {base}\n{node}[jsonrpc]\nport = {port}\n" + text)
    return Tree(name, tmp, tmp / "data", config, base, port, workers, args=args)


@dataclass(frozen=True)
class Trees:
    sequencer: Tree
    replicas: tuple[Tree, ...]
    l1: str


def replica_tree(tmp: pathlib.Path, name: str, sequencer: Tree, l1: str, replica: str = "") -> Tree:
    """``replica``: more of its [replica] section's lines."""
    contracts = sequencer.data_dir / "l1" / "contracts.json"
    return _tree(tmp, name, f'[l1]\ncontracts = "{contracts}"\n[replica]\nupstream = "{sequencer.sequencer}"\n'
                 + replica,
                 workers=3, args=("--l1-rpc", l1), node='role = "replica"\n')


@pytest.fixture(scope="package")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trees]:
    seq = _tree(tmp_path_factory.mktemp("sequencer"), "sequencer",
                "[l1]\nport = 0\n[workers.bridge]\nenabled = false\n[workers.channels]\nenabled = false\n", workers=5)
    started: list[Tree] = []
    try:
        seq.start()
        started.append(seq)
        l1 = seq.children()["l1"]["address"]
        replicas = tuple(replica_tree(tmp_path_factory.mktemp(f"replica{i}"), f"replica{i}", seq, l1)
                         for i in (1, 2))
        for r in replicas:
            r.start()
            started.append(r)
        yield Trees(seq, replicas, l1)
    finally:
        for t in reversed(started):
            t.stop()
