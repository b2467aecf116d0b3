"""The watchtower live, on three real channels workers and a real anvil: A and B have a channel,
T only hosts a tower, and B hands T its newest co-signed states (B's setting ``tower``). When B is
offline and A closes with an old state, T answers with the newest within the challenge period;
T keeps only what a participant appoints, never an older or half-signed state; B's payments go on
while T is down, and T gets the newest state when it is back."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from protocol import DEV_PRIVATE_KEYS
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.channels import ChannelsSettings, Rules, StateRecord, seal, state_pb
from services.l1 import LocalSigner
from tests.channels._nodes import ETHER, L1_CLOSING, L1_CONCLUDED, PERIOD, Node, Pair, reason_of, wait_for
from tests.l1.anvil import Anvil
from tests.ports import free_port

TOWER_KEY_INDEX, MALLORY_KEY, ANYONE = 4, DEV_PRIVATE_KEYS[5], LocalSigner(DEV_PRIVATE_KEYS[7]).address
FINNEY = 10**15


@dataclass
class Net:
    pair: Pair
    t: Node
    chain_id: int

    @property
    def a(self) -> Node:
        return self.pair.a

    @property
    def b(self) -> Node:
        return self.pair.b

    def rules(self, key: bytes) -> Rules:
        assert self.pair.adjudicator.address is not None
        return Rules(self.chain_id, self.pair.adjudicator.address, key)

    def held(self, node: Node, channel_id: str) -> int:
        """The sequence the tower holds for the channel (-1: none), asked as ``node``."""
        answer = self.t.tower_stub.GetAppointment(seal(self.rules(node.key), pb.GetAppointmentRequest(
            channel_id=channel_id)), timeout=10)
        return answer.state.sequence if answer.held else -1

    def signed(self, channel_id: str, sequence: int, balance_a: int, balance_b: int) -> StateRecord:
        """A state of the channel signed by both A and B (they signed it in the channel's past)."""
        state = StateRecord(bytes.fromhex(channel_id[2:]), sequence, balance_a, balance_b)
        return StateRecord(state.channel_id, sequence, balance_a, balance_b, (),
                           self.rules(self.a.key).sign(state), self.rules(self.b.key).sign(state))

    def appointment(self, channel: pb.Channel, state: StateRecord | None = None) -> pb.AppointRequest:
        """An appointment of ``state`` (default: the channel's newest co-signed one), unsigned."""
        shown, sig_a, sig_b = (channel.state, bytes.fromhex(channel.signature_a[2:]),
                               bytes.fromhex(channel.signature_b[2:])) if state is None else \
            (state_pb(state), state.sig_a, state.sig_b)
        return pb.AppointRequest(adjudicator="0x" + (self.pair.adjudicator.address or b"").hex(), a=channel.a,
                                 b=channel.b, nonce=channel.nonce, state=shown, signature_a=sig_a, signature_b=sig_b)

    def appoint(self, request: pb.AppointRequest, key: bytes) -> pb.AppointResponse:
        return self.t.tower_stub.Appoint(seal(self.rules(key), request), timeout=10)

    def close(self, channel_id: str) -> None:
        """Closed cooperatively: the next test's payments go over its own channel."""
        closed = self.a.stub.CloseChannel(pb.CloseChannelRequest(channel_id=channel_id), timeout=60)
        assert closed.channel.status == pb.CHANNEL_STATUS_CLOSED

    def kept(self, channel_id: str) -> int:
        """How many appointments of the channel T's tower has kept (its log: restarts append)."""
        return sum(1 for line in self.t.log.splitlines() if "appointment kept" in line and channel_id in line)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    node = Anvil()
    node.start()
    port = free_port()
    fast = {"tower_delay_s": 0.1, "tower_retry_s": 0.2}
    pair = Pair(tmp_path_factory.mktemp("watchtower"), node, b={"tower": f"127.0.0.1:{port}", **fast})
    t = pair.node("tower", TOWER_KEY_INDEX, {"tower_poll_s": 0.1}, port=port)
    try:
        yield Net(pair, t, int(node.rpc("eth_chainId"), 16))
    finally:
        t.stop()
        pair.close()
        node.stop()


def refusal(call: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    return call.code(), reason_of(call)  # type: ignore[attr-defined]


def test_the_tower_keeps_only_the_newest_co_signed_state_a_participant_appoints(net: Net) -> None:
    a, b = net.a, net.b
    cid = net.pair.open(ETHER)
    for _ in range(3):
        a.pay(b, FINNEY)
    wait_for(lambda: net.held(b, cid) == 3, 20, "B's newest state (3) at the tower")
    newest = b.channel(cid)
    assert net.held(a, cid) == 3  # A is a participant too: it may read it

    # A stranger appoints a state both signed: refused by name, whoever's state it carries.
    with pytest.raises(grpc.RpcError) as stranger:
        net.appoint(net.appointment(newest), MALLORY_KEY)
    assert refusal(stranger.value) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_A_PARTICIPANT")
    # ...and naming itself a participant does not help: a, b and nonce no longer hash to the id.
    forged = net.appointment(newest)
    forged.b = "0x" + LocalSigner(MALLORY_KEY).address.hex()
    with pytest.raises(grpc.RpcError) as named:
        net.appoint(forged, MALLORY_KEY)
    assert refusal(named.value) == (grpc.StatusCode.INVALID_ARGUMENT, "CHANNEL_MISMATCH")
    # A stranger cannot read it either.
    with pytest.raises(grpc.RpcError) as read:
        net.t.tower_stub.GetAppointment(seal(net.rules(MALLORY_KEY), pb.GetAppointmentRequest(channel_id=cid)),
                                        timeout=10)
    assert refusal(read.value) == (grpc.StatusCode.PERMISSION_DENIED, "NOT_A_PARTICIPANT")

    # An older state both signed (A's best, sequence 1) does not replace the newest.
    old = net.signed(cid, 1, ETHER - FINNEY, FINNEY)
    with pytest.raises(grpc.RpcError) as stale:
        net.appoint(net.appointment(newest, old), a.key)
    assert refusal(stale.value) == (grpc.StatusCode.FAILED_PRECONDITION, "STALE_SEQUENCE")

    # A newer state only A signed (B never did): refused, with B's signature missing or A's twice.
    mine = net.signed(cid, 4, 0, ETHER)  # all to B: a state B would sign at once, if asked
    for sig_b, why in ((b"", (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SIGNATURE")),
                       (mine.sig_a, (grpc.StatusCode.PERMISSION_DENIED, "SIGNER_MISMATCH"))):
        half = net.appointment(newest, StateRecord(mine.channel_id, 4, 0, ETHER, (), mine.sig_a, sig_b))
        with pytest.raises(grpc.RpcError) as unsigned:
            net.appoint(half, a.key)
        assert refusal(unsigned.value) == why
    assert net.held(b, cid) == 3  # nothing above was kept

    # The newest again, by either participant: acknowledged, the one held stays.
    assert net.appoint(net.appointment(newest), a.key).sequence == 3
    assert net.held(b, cid) == 3
    net.close(cid)


def test_payments_go_on_while_the_tower_is_down_and_it_gets_the_newest_state_when_back(net: Net) -> None:
    a, b, t = net.a, net.b, net.t
    cid = net.pair.open(ETHER)
    a.pay(b, 100 * FINNEY)
    wait_for(lambda: net.held(b, cid) == 1, 20, "B's first state at the tower")
    t.stop(signal.SIGKILL)
    for i in range(20):  # none of them waits for the tower
        assert b.pay(a, FINNEY).sequence == 2 + i
    b.stop(signal.SIGKILL)  # B restarts before the tower is back: it remembers what T holds
    b.start()
    kept = net.kept(cid)
    t.start()
    wait_for(lambda: net.held(b, cid) == 21, 30, "B's newest state (21) at the tower")
    assert net.kept(cid) == kept + 1  # latest wins: one appointment for the twenty payments
    net.close(cid)


def test_a_stale_close_while_b_is_offline_is_answered_by_the_tower_and_b_gets_its_newest_balance(
        net: Net) -> None:
    a, b, pair = net.a, net.b, net.pair
    cid = pair.open(ETHER)
    for _ in range(4):
        a.pay(b, 100 * FINNEY)
    wait_for(lambda: net.held(b, cid) == 4, 20, "B's newest state (4) at the tower")
    b.stop(signal.SIGKILL)
    # A cheats by hand (its own worker would challenge its own stale close: it is stopped).
    a.stop()
    old = net.signed(cid, 1, 900 * FINNEY, 100 * FINNEY)
    tower = LocalSigner(DEV_PRIVATE_KEYS[TOWER_KEY_INDEX]).address
    nonce = int(pair.l1.rpc("eth_getTransactionCount", "0x" + tower.hex(), "latest"), 16)
    closed = pair.send(a.address, "closeUnilateral", (old.channel_id, 1, old.balance_a, old.balance_b, []),
                       old.sig_a, old.sig_b)
    assert closed["status"] == "0x1"
    # Closing on state 1; the tower may already have answered by the time this reads it (state 4).
    assert pair.on_chain(cid)[4] == L1_CLOSING and pair.on_chain(cid)[5] in (1, 4)
    wait_for(lambda: pair.on_chain(cid)[5] == 4, 20, "the tower's challenge with the newest state (4)")
    assert int(pair.l1.rpc("eth_getTransactionCount", "0x" + tower.hex(), "latest"), 16) == nonce + 1
    pair.pass_time(PERIOD + 1)
    before_a, before_b = pair.balance(a.address), pair.balance(b.address)
    assert pair.send(ANYONE, "conclude", old.channel_id, [])["status"] == "0x1"
    assert pair.on_chain(cid)[4] == L1_CONCLUDED
    assert pair.balance(b.address) - before_b == 400 * FINNEY  # the newest state's, not the stale 100
    assert pair.balance(a.address) - before_a == 600 * FINNEY
    a.start()
    b.start()


def test_the_tower_settings_are_checked_where_they_are_read() -> None:
    assert ChannelsSettings.from_mapping({"tower": "127.0.0.1:7000"}).tower_enabled  # hosting is the default
    for bad in ({"tower": "nowhere"}, {"tower_enabled": "yes"}, {"tower_delay_s": 0}, {"tower_retry_s": -1},
                {"tower_poll_s": 601}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ChannelsSettings.from_mapping(bad)
