"""Two nodes' channels workers on one real anvil, for the channels tests: the contracts deployed
as `l2node up` does (the ChannelAdjudicator with a 20 s challenge period), each worker its own
process with its own data dir, port and channel key (anvil dev accounts 2 and 3). ``Pair.node``
starts a third one (a watchtower's node) on the same contracts."""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_DEPLOYER_KEY, RollupParams, deploy_contracts
from protocol import DEV_PRIVATE_KEYS
from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc as pb_grpc
from services.l1 import Artifact, Contract, LocalSigner, address
from tests.bridge._cluster import Process, worker
from tests.l1.anvil import Anvil
from tests.ports import free_port

T = TypeVar("T")
PERIOD = 20
ETHER = 10**18
#: ChannelAdjudicator.Status.
L1_OPEN, L1_CLOSING, L1_CONCLUDED = 2, 3, 4


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Node:
    """One node's channels worker; restartable on its port and data dir."""

    def __init__(self, tmp_path: pathlib.Path, name: str, key_index: int, settings: dict[str, Any],
                 port: int | None = None) -> None:
        self.key = DEV_PRIVATE_KEYS[key_index]
        self.address = LocalSigner(self.key).address
        key_file = tmp_path / f"{name}.key"
        key_file.write_text("0x" + self.key.hex())
        self.tmp_path, self.name, self.port = tmp_path, name, port or free_port()
        self.settings = {**settings, "channels_key_file": str(key_file)}
        self.proc: Process | None = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = worker(self.tmp_path, "services.channels:WORKER", self.name, self.settings, port=self.port)
        self.stub = pb_grpc.ChannelsServiceStub(self.proc.channel)
        self.peer_stub = pb_grpc.PeerServiceStub(self.proc.channel)
        self.tower_stub = pb_grpc.TowerServiceStub(self.proc.channel)

    @property
    def log(self) -> str:
        """Everything the worker logged so far (its restarts append)."""
        return (self.tmp_path / f"{self.name}.log").read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.stop(sig)

    def channel(self, channel_id: str) -> pb.Channel:
        return self.stub.GetChannel(pb.GetChannelRequest(channel_id=channel_id), timeout=10).channel

    def status(self, channel_id: str) -> int:
        return self.channel(channel_id).status

    def pay(self, to: Node, amount: int) -> pb.PayResponse:
        return self.stub.Pay(pb.PayRequest(address="0x" + to.address.hex(), amount=str(amount)), timeout=20)


def deploy(tmp_path: pathlib.Path, l1: Anvil) -> tuple[pathlib.Path, Contract]:
    """The contracts on ``l1`` as `l2node up` deploys them (a PERIOD challenge period): the
    contracts.json written under ``tmp_path`` and the ChannelAdjudicator."""
    params = RollupParams(channel_challenge_period_s=PERIOD)
    asyncio.run(deploy_contracts(l1.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path, params=params))
    contracts = tmp_path / "l1" / "contracts.json"
    doc = json.loads(contracts.read_text())
    return contracts, Contract(Artifact.load("ChannelAdjudicator"), address(doc["contracts"]["ChannelAdjudicator"]))


class Pair:
    """The contracts on ``l1`` and two nodes, A and B."""

    def __init__(self, tmp_path: pathlib.Path, l1: Anvil, a: dict[str, Any] | None = None,
                 b: dict[str, Any] | None = None) -> None:
        self.l1, self.tmp_path = l1, tmp_path
        contracts, self.adjudicator = deploy(tmp_path, l1)
        self.settings: dict[str, Any] = {"l1": {"rpc": l1.url, "contracts": str(contracts)}, "poll_interval_s": 0.1,
                                         "peer_deadline_s": 2.0}
        self.a = Node(tmp_path, "alice", 2, {**self.settings, **(a or {})})
        self.b = Node(tmp_path, "bob", 3, {**self.settings, **(b or {})})

    def node(self, name: str, key_index: int, settings: dict[str, Any] | None = None, port: int | None = None) -> Node:
        """Another node's channels worker on the same contracts (stop it yourself)."""
        return Node(self.tmp_path, name, key_index, {**self.settings, **(settings or {})}, port)

    def close(self) -> None:
        self.a.stop()
        self.b.stop()

    def open(self, amount: int, peer_amount: int = 0) -> str:
        """A opens a channel with B; its id once both see it OPEN."""
        opened = self.a.stub.OpenChannel(pb.OpenChannelRequest(peer=self.b.endpoint, amount=str(amount),
                                                               peer_amount=str(peer_amount)), timeout=60).channel
        assert opened.status == pb.CHANNEL_STATUS_OPEN, opened
        wait_for(lambda: self.b.status(opened.channel_id) == pb.CHANNEL_STATUS_OPEN, 20, "B sees the channel OPEN")
        return opened.channel_id

    # --- L1 --------------------------------------------------------------------------------------

    def balance(self, who: bytes) -> int:
        return int(self.l1.rpc("eth_getBalance", "0x" + who.hex(), "latest"), 16)

    def on_chain(self, channel_id: str) -> tuple[Any, ...]:
        return adjudicator_view(self.l1, self.adjudicator, channel_id)

    def send(self, sender: bytes, function: str, *args: Any) -> Any:
        """``function`` of the adjudicator sent from the dev account ``sender`` (anvil holds its
        key); its receipt, whatever its outcome."""
        data = self.adjudicator.encode_call(function, *args)
        tx = self.l1.rpc("eth_sendTransaction", {"from": "0x" + sender.hex(), "data": "0x" + data.hex(),
                                                 "to": "0x" + (self.adjudicator.address or b"").hex()})
        return self.l1.receipt(tx)

    def pass_time(self, seconds: int) -> None:
        self.l1.rpc("evm_increaseTime", seconds)
        self.l1.rpc("anvil_mine", "0x1")


class JsonRpc(Protocol):
    """An L1 to read: an Anvil, or the anvil trees share (tests/channels/_trees.py's Trees)."""

    def rpc(self, method: str, *params: Any) -> Any: ...


def adjudicator_read(l1: JsonRpc, adjudicator: Contract, function: str, *args: Any) -> tuple[Any, ...]:
    """A view of the ChannelAdjudicator on ``l1`` (eth_call at the latest block)."""
    data = adjudicator.encode_call(function, *args)
    raw = l1.rpc("eth_call", {"to": "0x" + (adjudicator.address or b"").hex(), "data": "0x" + data.hex()}, "latest")
    return adjudicator.decode_output(function, bytes.fromhex(raw[2:]))


def adjudicator_view(l1: JsonRpc, adjudicator: Contract, channel_id: str) -> tuple[Any, ...]:
    """ChannelAdjudicator.channel's ChannelView of a channel."""
    (view,) = adjudicator_read(l1, adjudicator, "channel", bytes.fromhex(channel_id[2:]))
    return tuple(view)


def reason_of(exc: grpc.RpcError) -> str:
    """The ErrorInfo reason of a refused call."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError("no ErrorInfo")
