"""Several nodes' channels workers on one real anvil (bare worker processes, each its own data dir,
port and channel key), for the multi-hop tests: the contracts deployed as `l2node up` does, then
channels opened between any two of them."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator
from typing import Any

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._nodes import Node, adjudicator_read, adjudicator_view, deploy, wait_for
from tests.l1.anvil import Anvil


class Network:
    """The contracts on ``l1`` and one node per name (anvil dev accounts 2, 3, 4, ...)."""

    def __init__(self, tmp_path: pathlib.Path, l1: Anvil, names: tuple[str, ...], **settings: Any) -> None:
        self.l1 = l1
        contracts, self.adjudicator = deploy(tmp_path, l1)
        base = {"l1": {"rpc": l1.url, "contracts": str(contracts)}, "poll_interval_s": 0.1, "peer_deadline_s": 2.0,
                "gossip_interval_s": 0.2, **settings}
        self.nodes = {name: Node(tmp_path, name, 2 + i, base) for i, name in enumerate(names)}

    @classmethod
    @contextlib.contextmanager
    def on_own_anvil(cls, tmp_path: pathlib.Path, names: tuple[str, ...], **settings: Any) -> Iterator[Network]:
        """A network on an anvil of its own, both stopped at the end (a test module's fixture)."""
        l1 = Anvil()
        l1.start()
        try:
            network = cls(tmp_path, l1, names, **settings)
            try:
                yield network
            finally:
                network.close()
        finally:
            l1.stop()

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def open(self, opener: str, peer: str, amount: int, peer_amount: int = 0) -> str:
        """``opener`` opens a channel with ``peer``; its id once both see it OPEN."""
        a, b = self.nodes[opener], self.nodes[peer]
        opened = a.stub.OpenChannel(pb.OpenChannelRequest(peer=b.endpoint, amount=str(amount),
                                                          peer_amount=str(peer_amount)), timeout=60).channel
        assert opened.status == pb.CHANNEL_STATUS_OPEN, opened
        wait_for(lambda: b.status(opened.channel_id) == pb.CHANNEL_STATUS_OPEN, 20, f"{peer} sees the channel OPEN")
        return opened.channel_id

    def wait_known(self, node: str, channel_id: str, directions: int = 2) -> None:
        """Until ``node``'s graph holds ``directions`` directions of the channel (gossip)."""
        def known() -> bool:
            found = self.nodes[node].stub.ListKnownChannels(pb.ListKnownChannelsRequest(), timeout=10).channels
            return sum(1 for c in found if c.channel_id == channel_id) >= directions
        wait_for(known, 30, f"{node} learns channel {channel_id} by gossip")

    def balance(self, who: bytes) -> int:
        return int(self.l1.rpc("eth_getBalance", "0x" + who.hex(), "latest"), 16)

    def now(self) -> int:
        """L1's latest block timestamp."""
        return int(self.l1.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def on_chain(self, channel_id: str) -> tuple[Any, ...]:
        """The adjudicator's ChannelView of a channel."""
        return adjudicator_view(self.l1, self.adjudicator, channel_id)

    def revealed_at(self, channel_id: str, payment_hash: str) -> int:
        (at,) = adjudicator_read(self.l1, self.adjudicator, "revealedAt", bytes.fromhex(channel_id[2:]),
                                 bytes.fromhex(payment_hash[2:]))
        return int(at)

    def pass_time(self, seconds: int) -> None:
        self.l1.rpc("evm_increaseTime", seconds)
        self.l1.rpc("anvil_mine", "0x1")
