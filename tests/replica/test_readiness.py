"""A replica's readiness follows its lag (issue 16): an upstream that withholds its blocks (a real
gRPC server here relays the real sequencer's chain info but holds its block stream) leaves the
replica behind; it says so in `l2node status`, its node's ``l2node.ready`` (a Kubernetes
readinessProbe's) turns NOT_SERVING, and eth_syncing gives geth's progress object. Blocks flowing
again, it catches up and is ready again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from tests.node.test_up import status, wait_for
from tests.replica._relay import Relay, relayed_replica
from tests.replica.conftest import Tree, Trees
from tests.replica.test_replicas import agree, dev, next_nonce, signed

MAX_LAG = 3


class Withholding(Relay):
    """Relays the blocks, except while ``held`` is set: then the stream stays open and silent."""

    def __init__(self, real: Tree) -> None:
        super().__init__(real)
        self.held = threading.Event()

    def relayed(self, block: pb.Block, context: Any) -> pb.Block | None:
        while self.held.is_set() and context.is_active():
            time.sleep(0.05)
        return block if context.is_active() else None


def ready(tree: Tree) -> bool:
    """What the node's readinessProbe gets (the control plane's ``l2node.ready``)."""
    with grpc.insecure_channel(f"127.0.0.1:{tree.base_port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="l2node.ready"),
                                                          timeout=5)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def reasons(tree: Tree) -> list[str]:
    children = {c["id"]: c for c in status(tree.data_dir)["children"]}
    return list(children["sequencer"]["not_ready"])


@pytest.fixture
def withheld(trees: Trees, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tree, Withholding]]:
    relay = Withholding(trees.sequencer)
    with relayed_replica(trees, tmp_path_factory.mktemp("withheld"), "withheld", relay,
                         f"max_lag_blocks = {MAX_LAG}\n") as replica:
        yield replica, relay


def test_a_replica_behind_its_upstream_is_not_ready_until_it_caught_up(
        trees: Trees, withheld: tuple[Tree, Withholding]) -> None:
    replica, relay = withheld
    seq = trees.sequencer
    wait_for(lambda: replica.head() >= seq.head() and ready(replica), 60, "the replica caught up and ready")
    assert reasons(replica) == [] and replica.rpc("eth_syncing") is False

    relay.held.set()
    sender, stop = dev(6), threading.Event()

    def make_blocks() -> None:  # a transfer a block, until told: the sequencer moves on without the replica
        nonce = next_nonce(seq, sender)
        while not stop.is_set():
            seq.stub().SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=signed(sender, nonce)),
                                          timeout=10)
            nonce += 1
            time.sleep(0.3)

    maker = threading.Thread(target=make_blocks)
    maker.start()
    try:
        wait_for(lambda: not ready(replica), 30, "the replica out of readiness")
        why = reasons(replica)
        assert len(why) == 1 and "blocks behind its upstream" in why[0] and f"ready within {MAX_LAG}" in why[0], why
        assert status(replica.data_dir)["ready"] is False
        syncing = replica.rpc("eth_syncing")
        assert int(syncing["highestBlock"], 16) > int(syncing["currentBlock"], 16) + MAX_LAG, syncing
        assert int(syncing["startingBlock"], 16) <= int(syncing["currentBlock"], 16)
    finally:
        stop.set()
        maker.join(30)
        relay.held.clear()
    wait_for(lambda: ready(replica), 30, "the replica ready again")
    assert reasons(replica) == []
    agree(replica, seq, seq.head())
    wait_for(lambda: replica.rpc("eth_syncing") is False, 10, "eth_syncing false again")
