"""A bridge with an L1 and a relayer key but no sequencer (a node whose sequencer is disabled, or
one that runs the bridge alone) follows deposits and keeps its loops up: it has no withdrawals to
prove, so the relayer gets none. It used to fail an assertion in every withdrawal round, exhaust
its task tree's restart intensity, and be restarted by its supervisor twice a second."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Iterator

import pytest

from protos.l2node.worker.v1 import worker_pb2, worker_pb2_grpc
from tests.bridge._cluster import Cluster
from tests.l1.anvil import DEV_PRIVATE_KEYS, Anvil

OBSERVE_S = 3.0  # the withdrawal loop runs every 0.1 s here: ~30 rounds


@pytest.fixture
def cluster(tmp_path: pathlib.Path, l1: Anvil) -> Iterator[Cluster]:
    key = tmp_path / "relayer.key"
    key.write_text("0x" + DEV_PRIVATE_KEYS[7].hex())
    c = Cluster(tmp_path, l1, bridge={"sequencer": "", "relayer_key_file": str(key)})
    try:
        yield c
    finally:
        c.close()


def test_a_bridge_without_a_sequencer_keeps_its_withdrawal_loop_and_relayer_up(cluster: Cluster) -> None:
    status = worker_pb2_grpc.WorkerServiceStub(cluster.bridge_proc.channel)
    pid = status.GetWorkerStatus(worker_pb2.GetWorkerStatusRequest(), timeout=10).pid
    end = time.monotonic() + OBSERVE_S
    while time.monotonic() < end:
        assert cluster.bridge_proc.proc.poll() is None, "the bridge worker exited"
        reply = status.GetWorkerStatus(worker_pb2.GetWorkerStatusRequest(), timeout=10)
        assert reply.pid == pid
        tasks = {t.id: (t.state, t.restarts) for t in reply.tasks}
        assert tasks["withdrawals"] == ("running", 0) and tasks["relayer"] == ("running", 0), tasks
        time.sleep(0.2)
