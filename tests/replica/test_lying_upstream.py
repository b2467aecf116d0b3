"""Attack: a replica whose upstream lies. A real gRPC server in this test stands in for the
sequencer: it relays the real sequencer's blocks, except one, which it forges three ways (a state
root that credits nobody knows whom, with the hash made to match; other transactions under the
real header; fields that do not hash to the hash claimed). The replica re-executes each, refuses
all three, never serves the forged block, and gets the real one from L1 by its own derivation."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from protocol import BlockHeader, keccak256
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from tests.node.test_up import wait_for
from tests.replica._relay import Relay, relayed_replica
from tests.replica.conftest import Tree, Trees
from tests.replica.test_replicas import agree, dev, next_nonce, sealed, signed


def _b(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def rehash(block: pb.Block) -> None:
    """Make ``block.hash`` the hash of its fields (a forgery that is at least consistent)."""
    header = BlockHeader(
        number=block.number, parent_hash=_b(block.parent_hash), timestamp=block.timestamp,
        state_root=_b(block.state_root), transactions_root=_b(block.transactions_root),
        message_root=_b(block.message_passer_root), base_fee=int(block.base_fee), gas_used=block.gas_used,
        gas_limit=block.gas_limit, l1_origin_number=block.l1_origin_number, l1_origin_hash=_b(block.l1_origin_hash))
    block.hash = "0x" + header.hash().hex()


class LyingUpstream(Relay):
    """The real sequencer relayed; the block carrying ``target`` (once set) forged, a new way on each
    stream. (By content, not by number: the replica must meet it from the upstream before its own
    derivation from L1 gets there.)"""

    def __init__(self, real: Tree) -> None:
        super().__init__(real)
        self.target = ""
        self.other_tx = b""
        self.forge_at = 0
        self._ways = itertools.cycle(("state_root", "transactions", "hash"))
        self.forged: list[str] = []

    def relayed(self, block: pb.Block, context: Any) -> pb.Block | None:
        if self.target and self.target in block.transaction_hashes:
            self.forge_at = block.number
            way = next(self._ways)
            if way == "state_root":  # credits someone: a root no execution gives, the hash made to match
                block.state_root = "0x" + keccak256(b"forged").hex()
                rehash(block)
            elif way == "transactions":  # the real header over other transactions
                del block.raw_transactions[:]
                block.raw_transactions.append(self.other_tx)
            else:  # a field changed under the real hash
                block.gas_used += 1
            self.forged.append(block.hash)
        return block


@pytest.fixture
def lying(trees: Trees, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tree, LyingUpstream]]:
    seq = trees.sequencer
    fake = LyingUpstream(seq)
    with relayed_replica(trees, tmp_path_factory.mktemp("lied_to"), "lied_to", fake) as replica:
        wait_for(lambda: replica.head() >= seq.head(), 60, "the replica caught up")
        sender = dev(5)
        nonce = next_nonce(seq, sender)
        raw = signed(sender, nonce)
        fake.other_tx = signed(sender, nonce, value=7)
        fake.target = "0x" + keccak256(raw).hex()
        seq.stub().SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=raw), timeout=10)
        wait_for(lambda: fake.forge_at, 30, "the transfer's block forged")
        yield replica, fake


def refusals(tree: Tree) -> list[str]:
    path = tree.data_dir / "logs" / "sequencer.log"
    return [str(json.loads(line)["reason"]) for line in path.read_text().splitlines()
            if "refused a block from the upstream sequencer" in line]


def test_a_replica_refuses_forged_blocks_and_takes_the_real_one_from_l1(
        trees: Trees, lying: tuple[Tree, LyingUpstream]) -> None:
    replica, fake = lying
    seq = trees.sequencer
    real = seq.block(fake.forge_at)
    wait_for(lambda: len(refusals(replica)) >= 3, 30, "three forgeries refused")
    reasons = refusals(replica)
    assert any("re-executes to hash" in r for r in reasons), reasons  # the state root, the transactions
    assert any("do not hash to its claimed hash" in r for r in reasons), reasons
    assert len(fake.forged) >= 3  # (two of the ways claim the real hash: only re-execution tells them apart)

    def served() -> str | None:
        try:
            return str(replica.block(fake.forge_at).hash)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.OUT_OF_RANGE
            return None

    # Never the forged block; the real one once derivation from L1 reached it (its batch at safe depth).
    deadline = time.monotonic() + 90
    while (hash_ := served()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hash_ == real.hash
    ours = replica.stub().GetBlock(pb.GetBlockRequest(number=fake.forge_at, include_transactions=True), timeout=5).block
    truth = seq.stub().GetBlock(pb.GetBlockRequest(number=fake.forge_at, include_transactions=True), timeout=5).block
    assert (ours.state_root, ours.gas_used, list(ours.raw_transactions)) == \
        (truth.state_root, truth.gas_used, list(truth.raw_transactions))
    # And it follows the (relayed) upstream again after it.
    sender = dev(5)
    after = seq.stub().SendRawTransaction(pb.SendRawTransactionRequest(
        raw_transaction=signed(sender, next_nonce(seq, sender))), timeout=10).tx_hash
    agree(replica, seq, wait_for(lambda: sealed(seq, after), 30, "sealed").block_number)
