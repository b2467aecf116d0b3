"""A real gRPC server in a test, standing in for a replica's upstream sequencer: it relays the real
sequencer (its chain info, its blocks fetched one by one), and a subclass changes what it relays
(forges a block, withholds the stream). ``relayed_replica`` starts a replica tree on it."""

from __future__ import annotations

import contextlib
import itertools
import pathlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from tests.replica.conftest import Tree, Trees, replica_tree


class Relay(pb_grpc.SequencerServiceServicer):  # type: ignore[misc]
    """The real sequencer's GetChainInfo and SubscribeBlocks, relayed as they are."""

    def __init__(self, real: Tree) -> None:
        self._real = real.stub()

    def GetChainInfo(self, request: pb.GetChainInfoRequest, context: Any) -> pb.GetChainInfoResponse:
        return self._real.GetChainInfo(request, timeout=5)

    def real_block(self, number: int, context: Any) -> pb.Block | None:
        """The real block ``number`` once the sequencer has it; None if the stream ended first."""
        while context.is_active():
            try:
                return self._real.GetBlock(pb.GetBlockRequest(number=number, include_transactions=True),
                                           timeout=5).block
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.OUT_OF_RANGE:
                    raise
            time.sleep(0.1)
        return None

    def relayed(self, block: pb.Block, context: Any) -> pb.Block | None:
        """What is sent for the real ``block`` (None: the stream ends); a subclass's to change."""
        return block

    def SubscribeBlocks(self, request: pb.SubscribeBlocksRequest, context: Any) -> Iterator[pb.SubscribeBlocksResponse]:
        for number in itertools.count(request.from_number):
            block = self.real_block(number, context)
            sent = None if block is None else self.relayed(block, context)
            if sent is None:
                return
            yield pb.SubscribeBlocksResponse(block=sent)


@contextlib.contextmanager
def relayed_replica(trees: Trees, tmp: pathlib.Path, name: str, relay: Relay, config: str = "") -> Iterator[Tree]:
    """A replica tree whose upstream is ``relay`` (served here), started; stopped after."""
    seq = trees.sequencer
    server = grpc.server(ThreadPoolExecutor(8))
    pb_grpc.add_SequencerServiceServicer_to_server(relay, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    proxy = Tree(seq.name, seq.tmp, seq.data_dir, seq.config, port - 1, seq.jsonrpc_port, seq.workers)
    replica = replica_tree(tmp, name, proxy, trees.l1, config)
    try:
        replica.start()
        yield replica
    finally:
        replica.stop()
        server.stop(0)
