"""A node's announcements after a restart are newer than every one it made before (R4: the newest
per direction wins), so its peers take them: the stamps of a running node must not run ahead of
the clock, and a restarted node starts above its last stored one. (Once they ran ahead, one per
look at each channel, and a node killed and restarted was ignored by its peers until the clock
caught up: routes over it kept a stale capacity.)"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._network import Network
from tests.channels._nodes import ETHER, Node, wait_for


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with Network.on_own_anvil(tmp_path_factory.mktemp("gossip"), ("alice", "bob")) as network:
        yield network


def direction(viewer: Node, channel_id: str, sender: Node) -> pb.KnownChannel | None:
    known = viewer.stub.ListKnownChannels(pb.ListKnownChannelsRequest(), timeout=10).channels
    return next((k for k in known if k.channel_id == channel_id and k.node == "0x" + sender.address.hex()), None)


def test_a_restarted_node_is_heard_again_at_once(net: Network) -> None:
    alice, bob = net["alice"], net["bob"]
    ab = net.open("alice", "bob", ETHER)

    def hears(capacity: int) -> pb.KnownChannel:
        return wait_for(lambda: (d := direction(bob, ab, alice)) is not None and int(d.capacity) == capacity and d,
                        20, f"bob hears alice's side carry {capacity} wei")

    hears(ETHER)
    time.sleep(3)  # alice's gossip looks at the channel every 0.2 s meanwhile: no stamp each time
    alice.pay(bob, ETHER // 4)  # her side moves by a quarter: announced again
    before = hears(ETHER - ETHER // 4)
    assert before.timestamp <= time.time() + 1, "a stamp ahead of the clock"
    alice.stop(signal.SIGKILL)
    alice.start()
    wait_for(lambda: alice.status(ab) == pb.CHANNEL_STATUS_OPEN, 20, "alice is back")
    alice.pay(bob, ETHER // 4)
    assert hears(ETHER // 2).timestamp > before.timestamp
