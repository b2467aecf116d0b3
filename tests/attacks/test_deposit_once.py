"""Attack: a deposit credited twice across a sequencer kill -9 and an L1 reorg.

A real anvil of its own (the reorg would break the session anvil's snapshots), the real contracts,
and a real sequencer worker process, killed with SIGKILL around its mints and restarted on the same
data directory. A restarted sequencer reads L1 again from its finalized head (anvil's is far
behind here), so every deposit it already minted comes to it again: a store that takes a deposit
seen again as new mints it twice. A deposit whose L1 block is reorged out before depth, and made
again in another block (another source hash), must be minted only as the canonical one.

Amounts are 1, 2 and 4 ether: the recipient's balance tells which deposit was credited how often.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import grpc
import pytest
from eth_account import Account

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_BATCHER_KEY, DEVNET_DEPLOYER_KEY, deploy_contracts
from protocol import Deposit
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from services.l1 import Artifact, Contract
from tests.l1.anvil import Anvil
from tests.ports import free_port
from tests.sequencer.test_batcher import l1 as l1  # an anvil of its own
from tests.sequencer.test_service import DEV_KEYS, ROOT, sign
from tests.serving import wait_serving

ETHER = 10**18
DEPTH = 3


class L1Deposit(NamedTuple):
    l1_block: int
    l1_tx: str
    #: Its L2 transaction hash (protocol Deposit.hash).
    l2_hash: str


class Node:
    """One L1, its contracts, and a sequencer worker (re)started over the same data directory."""

    def __init__(self, tmp_path: pathlib.Path, l1: Anvil) -> None:
        asyncio.run(deploy_contracts(l1.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path))
        key_file = tmp_path / "batcher.key"
        key_file.write_text(DEVNET_BATCHER_KEY)
        self.l1 = l1
        self.address = f"127.0.0.1:{free_port()}"
        contracts = tmp_path / "l1" / "contracts.json"
        self._config = {"service": "sequencer", "address": self.address, "data_dir": str(tmp_path / "seq"),
                        "settings": {"block_time_s": 0.05, "l1": {
                            "rpc": l1.url, "contracts": str(contracts), "batcher_key_file": str(key_file),
                            "batch_interval_s": 0.1, "confirmation_depth": DEPTH, "poll_interval_s": 0.05}}}
        self._log = tmp_path / "sequencer.log"
        self.portal_address = json.loads(contracts.read_text())["contracts"]["DepositPortal"]
        self.portal = Contract(Artifact.load("DepositPortal"))
        self.depositor = l1.rpc("eth_accounts")[6]
        # Blocks only when the test mines them: the batcher's posts wait in anvil's pool meanwhile,
        # so no deposit reaches depth, and no reorg misses its block, behind the test's back.
        l1.rpc("evm_setAutomine", False)
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        self.stub: Any = None
        self._nonce = 0  # of the L2 account whose transfers make blocks (DEV_KEYS[1])

    def start(self) -> None:
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.runtime", "services.sequencer:WORKER",
                                          "--config-json", json.dumps(self._config)], cwd=ROOT,
                                         stdout=subprocess.DEVNULL, stderr=log)
        self.channel = grpc.insecure_channel(self.address)
        wait_serving(self.channel, proc=self.proc)
        self.stub = pb_grpc.SequencerServiceStub(self.channel)

    def kill(self) -> None:
        assert self.proc is not None and self.channel is not None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(30) == -signal.SIGKILL
        self.channel.close()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.kill()

    def deposit(self, to: str, value: int) -> L1Deposit:
        tx = self.l1.rpc("eth_sendTransaction", {
            "from": self.depositor, "to": self.portal_address, "value": hex(value),
            "data": "0x" + self.portal.encode_call("depositTransaction", bytes.fromhex(to[2:])).hex()})
        self.mine(1)
        receipt = self.l1.receipt(tx)
        (event,) = receipt["logs"]
        source = bytes.fromhex(event["data"][2:])[64:96]  # data: mint, l1Block, sourceHash
        return L1Deposit(int(receipt["blockNumber"], 16), tx,
                         "0x" + Deposit(source, bytes.fromhex(to[2:]), value).hash().hex())

    def mine(self, blocks: int) -> int:
        self.l1.rpc("anvil_mine", blocks)
        return self.head()

    def head(self) -> int:
        return int(self.l1.rpc("eth_blockNumber"), 16)

    def balance(self, address: str) -> int:
        return int(self.stub.GetAccount(pb.GetAccountRequest(address=address), timeout=5).balance)

    def wait_balance(self, address: str, value: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (got := self.balance(address)) != value:
            assert got < value, f"credited {got}, more than the {value} deposited"
            assert time.monotonic() < deadline, f"balance stuck at {got}, not {value}"
            time.sleep(0.01)

    def caught_up(self, l1_block: int, timeout: float = 30) -> None:
        """Wait until the sequencer's chain derives from L1 block ``l1_block`` or later: its follower
        has read L1 up to ``l1_block`` + DEPTH (and the deposits there, at any depth). Made visible
        by sealing L2 transfers until one's block has such an origin."""
        deadline = time.monotonic() + timeout
        while True:
            raw = sign(DEV_KEYS[1], self._nonce, "0x000000000000000000000000000000000000dEaD", 1)
            sent = self.stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=raw), timeout=10)
            self._nonce += 1
            while (r := self.receipt(sent.tx_hash)) is None or r.status < pb.RECEIPT_STATUS_SEALED:
                assert time.monotonic() < deadline, "transfer not sealed"
                time.sleep(0.01)
            block = self.stub.GetBlock(pb.GetBlockRequest(number=r.block_number), timeout=5).block
            if block.l1_origin_number >= l1_block:
                return
            assert time.monotonic() < deadline, f"origin stuck at {block.l1_origin_number}, not {l1_block}"

    def receipt(self, tx_hash: str) -> Any:
        try:
            return self.stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=tx_hash), timeout=5).receipt
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            return None


@pytest.fixture
def node(tmp_path: pathlib.Path, l1: Anvil) -> Iterator[Node]:
    n = Node(tmp_path, l1)
    try:
        yield n
    finally:
        n.stop()


def test_each_canonical_deposit_is_credited_once_across_kills_and_a_reorg(node: Node) -> None:
    to = Account.create().address
    node.start()

    # A: minted, and the sequencer killed the moment the mint shows.
    a = node.deposit(to, 1 * ETHER).l2_hash
    node.mine(DEPTH)
    node.wait_balance(to, 1 * ETHER)
    node.kill()

    # B: reaches depth while the sequencer is down; the restarted one is killed as soon as it
    # serves, around its catching up (B's mint, A seen again), then once more right after B's mint.
    b = node.deposit(to, 2 * ETHER).l2_hash
    node.mine(DEPTH)
    node.start()
    node.kill()
    node.start()
    node.wait_balance(to, 3 * ETHER)
    node.kill()

    # C: seen by a live sequencer, short of depth, then reorged out with its block; made again in
    # a later block (C2, another source hash). The sequencer is killed just after the reorg.
    node.start()
    first_c = node.deposit(to, 4 * ETHER)
    c = first_c.l2_hash
    head = node.mine(DEPTH - 1)  # C is DEPTH - 1 blocks deep: unsafe
    node.caught_up(head - DEPTH)  # the follower read L1 up to the head, C's log included
    node.l1.rpc("anvil_reorg", node.head() - first_c.l1_block + 1, [])  # C's block and those after it replaced
    assert node.l1.rpc("eth_getTransactionReceipt", first_c.l1_tx) is None
    node.kill()
    node.mine(1)
    second_c = node.deposit(to, 4 * ETHER)
    c2 = second_c.l2_hash
    assert second_c.l1_block > first_c.l1_block and c2 != c
    node.start()
    head = node.mine(DEPTH)
    node.wait_balance(to, 7 * ETHER)

    # Long after: more L1 blocks, a restart that reads every deposit again; nothing more is credited.
    head = node.mine(2 * DEPTH)
    node.kill()
    node.start()
    node.caught_up(head - DEPTH)
    assert node.balance(to) == 7 * ETHER
    minted = {name: node.receipt(h) for name, h in (("A", a), ("B", b), ("C2", c2))}
    assert all(r is not None and r.status >= pb.RECEIPT_STATUS_SEALED for r in minted.values()), minted
    assert node.receipt(c) is None  # the deposit reorged out before depth: never minted, not even known
    blocks = [node.stub.GetBlock(pb.GetBlockRequest(number=n), timeout=5).block
              for n in range(1, node.stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block.number + 1)]
    credited = [h for block in blocks for h in block.transaction_hashes if h in (a, b, c, c2)]
    assert sorted(credited) == sorted([a, b, c2])  # each canonical deposit in exactly one block
    count = node.l1.rpc("eth_call", {"to": node.portal_address,
                                     "data": "0x" + node.portal.encode_call("depositCount").hex()}, "latest")
    assert int(count, 16) == 3  # L1 holds A, B and C2: C's reorg took it off the portal's queue
