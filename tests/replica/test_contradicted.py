"""A replica never serves as SAFE, and stops serving, a block derivation from L1 contradicts. Its
upstream here is a rogue sequencer worker: the same genesis and rules, so its blocks re-execute to
what they claim, but no L1 (it posts nothing): the real sequencer's batches on L1 say otherwise."""

from __future__ import annotations

import time

import grpc
import pytest

from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from tests.node.test_up import wait_for
from tests.ports import free_port
from tests.replica.conftest import Tree, Trees, replica_tree
from tests.replica.test_replicas import dev, sealed, send_stream, signed
from tests.sequencer.test_service import Sequencer


def test_blocks_derivation_contradicts_are_dropped_and_never_safe(
        trees: Trees, tmp_path_factory: pytest.TempPathFactory) -> None:
    seq = trees.sequencer
    real = send_stream(seq, dev(8), 3, per_call=1)  # a real chain on L1, blocks 1.. at least
    wait_for(lambda: sealed(seq, real[-1]), 30, "the real transfers sealed")
    tmp = tmp_path_factory.mktemp("rogue")
    rogue = Sequencer(tmp / "rogue", free_port(), tmp / "rogue.log", {})
    try:
        sender = dev(7)
        for nonce in range(3):  # blocks of its own, valid by the rules, on no L1
            rogue.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=signed(sender, nonce, 99)),
                                          timeout=10)
            time.sleep(0.1)
        wait_for(lambda: rogue.stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5).unsafe_block >= 2, 30, "rogue")
        rogue_hashes = {n: rogue.stub.GetBlock(pb.GetBlockRequest(number=n), timeout=5).block.hash
                        for n in range(1, 3)}
        port = int(rogue.address.rsplit(":", 1)[1])
        proxy = Tree("rogue", tmp, seq.data_dir, tmp, port - 1, 0, 0)  # its blocks, the real L1 deployment
        replica = replica_tree(tmp, "misled", proxy, trees.l1)
        replica.start()
        try:
            safe_seen: set[int] = set()
            real_head = seq.head()

            def on_the_real_chain() -> bool:
                info = replica.stub().GetChainInfo(pb.GetChainInfoRequest(), timeout=5)
                if info.safe_block:  # whatever it calls SAFE is the real chain's
                    assert replica.block(info.safe_block).hash == seq.block(info.safe_block).hash
                    safe_seen.add(info.safe_block)
                return info.safe_block >= real_head

            wait_for(on_the_real_chain, 120, "the replica SAFE up to the real head")
            for n, rogue_hash in rogue_hashes.items():  # the rogue's blocks are gone for good
                try:
                    ours = replica.block(n).hash
                except grpc.RpcError as exc:  # past the real chain's head: no block at all
                    assert n > real_head and exc.code() == grpc.StatusCode.OUT_OF_RANGE, exc
                    continue
                assert ours == seq.block(n).hash != rogue_hash
            assert safe_seen
            rogue_tx = rogue.stub.GetBlock(pb.GetBlockRequest(number=1), timeout=5).block.transaction_hashes[0]
            with pytest.raises(grpc.RpcError) as missing:  # and the rogue's transactions are in no block of it
                replica.stub().GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=rogue_tx), timeout=5)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND, missing.value
            assert "not this chain's" in str(missing.value.details())
        finally:
            replica.stop()
    finally:
        rogue.stop()
