"""Three real `l2node up` trees on one anvil (separate data dirs, ports and channel keys), as three
operators run them: A pays C's invoices through B (issue 14's multi-node faults, each on the real
trees and anvil):

- kill -9 of the channels worker of A (the payer), B (the hop) or C (the payee) the moment it
  holds the HTLC: its own supervisor restarts it, the payment ends (paid, or failed cleanly and
  then paid by a retried Pay, never twice), no HTLC is left on either side of either channel, both
  sides hold the same state, and every wei is where it should be, fees included;
- B's whole tree goes offline holding A's HTLC (C unreachable, so B cannot have settled): A fails
  it off chain if it can, else closes on L1 and is refunded after the expiry (_enforce.py E2, E4):
  its funds come back through L1, to the wei less its gas; B, back, loses nothing in B-C;
- A closes A-B with a stale state while B is offline (the fire drill ``stale_sequence``): C's
  watchtower, which B hands its newest states (B's setting ``tower``), answers with the newest
  one, and the conclude pays B its newest balance.

The trees are shared by the module (starting them is most of its time), the channels are each
test's own; a test leaves its channels unable to carry another test's payment (``retire``), so
every route goes over the channels its test opened.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
import pytest

from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc as pb_grpc
from tests.channels._nodes import ETHER, L1_CLOSING, L1_CONCLUDED, reason_of, wait_for
from tests.channels._trees import CHANNELS_SETTINGS, PERIOD, Tree, Trees

T = TypeVar("T")
#: A payment A -> B -> C of the kill tests; B's fee for forwarding it (the default terms: 1,000 wei + 1,000 ppm).
AMOUNT = 100_000
FEE = 1_000 + AMOUNT * 1_000 // 1_000_000
#: What the hop-offline test's B-C can carry: less than AMOUNT, so no other test's route takes it.
SMALL = 80_000
FINNEY = 10**15


def _settings_of(index: int, trees: Sequence[Tree]) -> dict[str, Any]:
    """B hands its newest states to C's watchtower, as in the README's walk-through."""
    return {"tower": trees[2].channels} if index == 1 else {}


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trees]:
    # A Pay answers PAYMENT_IN_FLIGHT soon; states reach the tower at once, and it looks at L1 often.
    settings = {**CHANNELS_SETTINGS, "payment_timeout_s": 3.0, "tower_delay_s": 0.1, "tower_retry_s": 0.2,
                "tower_poll_s": 0.2}
    with Trees(pathlib.Path(tmp_path_factory.mktemp("three")), 3, settings, _settings_of,
               channels_only=True) as running:
        yield running


def stub(tree: Tree) -> pb_grpc.ChannelsServiceStub:
    # A new connection per call: one to a worker killed a moment ago would be in its reconnect backoff.
    return pb_grpc.ChannelsServiceStub(grpc.insecure_channel(tree.channels))


def channel(tree: Tree, channel_id: str) -> pb.Channel:
    return stub(tree).GetChannel(pb.GetChannelRequest(channel_id=channel_id), timeout=10).channel


def payment(tree: Tree, payment_hash: str) -> pb.Payment:
    return stub(tree).GetPayment(pb.GetPaymentRequest(payment_hash=payment_hash), timeout=10).payment


def answered(ask: Callable[[], T]) -> T | None:
    """``ask()``, or None while the worker asked is down (being restarted)."""
    try:
        return ask()
    except grpc.RpcError:
        return None


def ended(payer: Tree, payment_hash: str) -> pb.Payment | None:
    """The payment, once it is no longer in flight."""
    found = answered(lambda: payment(payer, payment_hash))
    return found if found is not None and found.status != pb.PAYMENT_STATUS_IN_FLIGHT else None


def open_channel(opener: Tree, peer: Tree, amount: int) -> str:
    """``opener`` opens a channel with ``peer``, locking ``amount``; its id once both see it OPEN."""
    opened = stub(opener).OpenChannel(pb.OpenChannelRequest(peer=peer.channels, amount=str(amount)), timeout=60)
    assert opened.channel.status == pb.CHANNEL_STATUS_OPEN, opened
    cid = opened.channel.channel_id
    wait_for(lambda: channel(peer, cid).status == pb.CHANNEL_STATUS_OPEN, 20, f"{peer.name} sees {cid} OPEN")
    return cid


def wait_known(tree: Tree, channel_id: str, sender: Tree, capacity: int) -> None:
    """Until ``tree``'s graph holds ``sender``'s direction of the channel with ``capacity`` (gossip)."""
    def known() -> bool:
        found = stub(tree).ListKnownChannels(pb.ListKnownChannelsRequest(), timeout=10).channels
        return any(k.channel_id == channel_id and k.node == sender.address and k.capacity == str(capacity)
                   for k in found)
    wait_for(known, 30, f"{tree.name} learns {sender.name}'s side of {channel_id} carries {capacity} wei")


def route(trees: Trees, amount_bc: int = ETHER) -> tuple[str, str]:
    """A new A-B (A locks an ether) and B-C (B locks ``amount_bc``), and A knows the way to C."""
    a, b, c = trees
    ab, bc = open_channel(a, b, ETHER), open_channel(b, c, amount_bc)
    wait_known(a, bc, b, amount_bc)
    return ab, bc


def settled(x: Tree, y: Tree, channel_id: str) -> pb.Channel:
    """Until both sides hold the same co-signed state of the channel, no HTLC in it; x's view of it."""
    def agreed() -> pb.Channel | None:
        ours, theirs = answered(lambda: channel(x, channel_id)), answered(lambda: channel(y, channel_id))
        if ours is None or theirs is None or ours.state.htlcs or ours.state != theirs.state:
            return None
        assert (ours.signature_a, ours.signature_b) == (theirs.signature_a, theirs.signature_b)
        return ours
    return wait_for(agreed, 60, f"{channel_id} settled on both {x.name} and {y.name}")


def pay_quietly(tree: Tree, invoice: str) -> pb.PayResponse | None:
    """A Pay whose answer may not come (its worker killed) or say PAYMENT_IN_FLIGHT: how it ends is
    what GetPayment says."""
    try:
        return stub(tree).Pay(pb.PayRequest(invoice=invoice), timeout=60)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE and "PAYMENT_IN_FLIGHT" in str(exc.details()):
            return None
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc  # the worker asked was killed
        return None


def retire(trees: Trees, ab: str, bc: str) -> None:
    """This test's channels carry nothing more from A towards C (drained: A's side of A-B to B, B's
    side of B-C to C), and A's graph says so: another test's route goes over its own channels.
    After a kill -9 of B, this is where B's announcements must still count (a restarted node's
    stamps: services/channels/_gossip.py)."""
    a, b, c = trees
    rest_bc = int(channel(b, bc).local_balance)
    if rest_bc:
        stub(b).Pay(pb.PayRequest(address=c.address, amount=str(rest_bc)), timeout=20)
        wait_known(a, bc, b, 0)
    rest_ab = int(channel(a, ab).local_balance)
    if rest_ab:
        stub(a).Pay(pb.PayRequest(address=b.address, amount=str(rest_ab)), timeout=20)


# --- kill -9 of a channels worker holding the HTLC, on each of the three trees -----------------------

#: Per victim (A, B, C): the event of its own that says it holds the HTLC, and in which channel.
_HOLDS = {0: ("HTLC_OFFERED", 0), 1: ("HTLC_RECEIVED", 0), 2: ("HTLC_RECEIVED", 1)}


@pytest.mark.parametrize("victim", [0, 1, 2], ids=["payer", "hop", "payee"])
def test_kill_9_of_a_channels_worker_holding_the_htlc_mid_payment(trees: Trees, victim: int) -> None:
    a, b, c = trees
    ab, bc = route(trees)
    invoice = stub(c).CreateInvoice(pb.CreateInvoiceRequest(amount=str(AMOUNT)), timeout=10).invoice
    dying = trees[victim]
    kind, in_channel = _HOLDS[victim][0], (ab, bc)[_HOLDS[victim][1]]
    # The channel's events from its first (none of this payment is missed), on the victim itself.
    events = stub(dying).SubscribeEvents(pb.SubscribeEventsRequest(from_sequence=0, channel_id=in_channel),
                                         timeout=120)
    pid = dying.pid_and_address("channels")[0]
    killed = threading.Event()

    def kill_when_held() -> None:
        with contextlib.suppress(grpc.RpcError):
            for event in events:
                if event.kind == kind and event.payment_hash == invoice.payment_hash:
                    os.kill(pid, signal.SIGKILL)
                    killed.set()
                    return

    killer = threading.Thread(target=kill_when_held, daemon=True)
    killer.start()
    pay_quietly(a, invoice.encoded)
    assert killed.wait(30), f"{dying.name} never held the HTLC"
    events.cancel()
    wait_for(lambda: dying.pid_and_address("channels")[0] not in (pid, 0), 30, f"{dying.name}'s supervisor restarts it")
    dying.wait_ready()

    # Pay again at once (H8): it waits for the payment in flight, or says it is still in flight.
    pay_quietly(a, invoice.encoded)
    first = wait_for(lambda: ended(a, invoice.payment_hash), 60, "the payment ends")
    assert first.status in (pb.PAYMENT_STATUS_SUCCEEDED, pb.PAYMENT_STATUS_FAILED), first
    # A payment that failed cleanly is paid by the next Pay; a paid one is answered, not paid again.
    paid = stub(a).Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60).payment
    assert paid.status == pb.PAYMENT_STATUS_SUCCEEDED, paid
    assert [h.channel_id for h in paid.route] == [ab, bc] and int(paid.fee) == FEE
    if first.status == pb.PAYMENT_STATUS_SUCCEEDED:
        assert (paid.preimage, paid.attempts) == (first.preimage, first.attempts)

    # No HTLC left, both sides agree, and every wei is where it should be: C got the amount once, B
    # its fee, A paid both.
    on_ab, on_bc = settled(a, b, ab), settled(b, c, bc)
    assert (int(on_ab.local_balance), int(on_ab.remote_balance)) == (ETHER - AMOUNT - FEE, AMOUNT + FEE)
    assert (int(on_bc.local_balance), int(on_bc.remote_balance)) == (ETHER - AMOUNT, AMOUNT)
    again = stub(a).Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60).payment
    assert (again.status, again.preimage) == (pb.PAYMENT_STATUS_SUCCEEDED, paid.preimage)
    assert channel(b, bc).state == on_bc.state and channel(a, ab).state == on_ab.state  # not paid twice
    retire(trees, ab, bc)


# --- a hop offline holding the HTLC: the payer's funds come back through L1 --------------------------


def test_a_hop_offline_holding_the_htlc_the_payer_is_refunded_through_l1(trees: Trees) -> None:
    a, b, c = trees
    ab, bc = route(trees, SMALL)
    invoice = stub(c).CreateInvoice(pb.CreateInvoiceRequest(amount="50000"), timeout=10).invoice
    # C is unreachable: B's HTLC to it stays unanswered (B cannot settle), then B's tree goes down.
    with c.frozen():
        with pytest.raises(grpc.RpcError) as in_flight:
            stub(a).Pay(pb.PayRequest(invoice=invoice.encoded), timeout=60)
        assert reason_of(in_flight.value) == "PAYMENT_IN_FLIGHT"
        held = channel(b, ab).state.htlcs
        assert len(held) == 1 and held[0].payment_hash == invoice.payment_hash  # B accepted A's HTLC
        with b.offline():
            first_hop = payment(a, invoice.payment_hash).route[0]
            assert first_hop.channel_id == ab and len(channel(a, ab).state.htlcs) == 1
            start, a_before, b_before = trees.block(), trees.balance(a.address), trees.balance(b.address)

            # Past the HTLC's expiry: A cannot fail it off chain (B is gone), so it closes on L1 (E2) ...
            trees.pass_time(first_hop.expiry - trees.now() + 3)
            wait_for(lambda: channel(a, ab).status == pb.CHANNEL_STATUS_DISPUTED, 30, "A closes A-B on L1")
            # ... and once the challenge period is over, concludes and takes the HTLC back (E4).
            trees.pass_time(PERIOD + 1)
            wait_for(lambda: channel(a, ab).status == pb.CHANNEL_STATUS_CLOSED, 30, "A concludes and is refunded")
            failed = payment(a, invoice.payment_hash)
            assert (failed.status, failed.reason) == (pb.PAYMENT_STATUS_FAILED, "REFUNDED_ON_L1")
            assert trees.on_chain(ab)[4] == L1_CONCLUDED
            # Every wei of A's side came back on L1: its balance moved by the ether less its own gas.
            assert trees.balance(a.address) - a_before == ETHER - trees.gas_spent(a.address, start)
        # B back, then C: B learns A-B was concluded, and the HTLC it offered C fails; nothing is lost.
    wait_for(lambda: channel(b, ab).status == pb.CHANNEL_STATUS_CLOSED, 30, "B sees A-B concluded")
    on_bc = settled(b, c, bc)
    assert (int(on_bc.local_balance), int(on_bc.remote_balance)) == (SMALL, 0)
    assert trees.balance(b.address) == b_before - trees.gas_spent(b.address, start)  # B took nothing on L1
    # B-C still carries payments (B's side of it stays below what another test routes: see SMALL).
    stub(b).Pay(pb.PayRequest(address=c.address, amount="1000"), timeout=20)
    assert int(settled(b, c, bc).remote_balance) == 1000


# --- a stale close answered by the offline node's watchtower -----------------------------------------


def test_a_stale_close_while_b_is_offline_is_answered_by_c_s_watchtower(trees: Trees) -> None:
    a, b, c = trees
    ab = open_channel(a, b, ETHER)
    for sequence in (1, 2, 3):
        paid = stub(a).Pay(pb.PayRequest(address=b.address, amount=str(100 * FINNEY)), timeout=20)
        assert (paid.channel_id, paid.sequence) == (ab, sequence)
    wait_for(lambda: trees.held_by_tower(c, b, ab) == 3, 20, "B's newest state (3) at C's tower")
    with b.offline():
        start, a_before, b_before, c_nonce = (trees.block(), trees.balance(a.address), trees.balance(b.address),
                                              trees.nonce(c.address))
        # A closes with sequence 1 (when it still held 900 finney), as a cheater would.
        closed = stub(a).CloseChannel(pb.CloseChannelRequest(channel_id=ab, force=True, stale_sequence=1),
                                      timeout=60)
        assert closed.channel.status == pb.CHANNEL_STATUS_DISPUTED
        assert trees.on_chain(ab)[4:6] == (L1_CLOSING, 1)
        wait_for(lambda: trees.on_chain(ab)[5] == 3, 20, "C's tower challenges with the newest state (3)")
        assert trees.nonce(c.address) == c_nonce + 1  # the challenge is the tower's (B is down; A leaves its drill)

        trees.pass_time(PERIOD + 1)
        wait_for(lambda: channel(a, ab).status == pb.CHANNEL_STATUS_CLOSED, 30, "A concludes after the period")
        assert trees.on_chain(ab)[4] == L1_CONCLUDED
        # The newest state paid out: B its 300 finney although offline; A the rest, less its gas.
        assert trees.balance(b.address) - b_before == 300 * FINNEY
        assert trees.balance(a.address) - a_before == 700 * FINNEY - trees.gas_spent(a.address, start)
    wait_for(lambda: channel(b, ab).status == pb.CHANNEL_STATUS_CLOSED, 30, "B, back, sees it closed")
