"""Direct payments between two real channels workers (two processes, their own data dirs and
keys) on one real anvil: open (both fund on L1), pay both ways, close cooperatively or by force."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from protocol import FINAL_SEQUENCE
from protos.l2node.channels.v1 import channels_pb2 as pb
from tests.channels._nodes import ETHER, L1_CLOSING, L1_CONCLUDED, L1_OPEN, PERIOD, Pair, reason_of, wait_for


def latest(channel: pb.Channel) -> tuple[int, int, int]:
    """(sequence, balance A, balance B) of the latest state both signed."""
    return channel.state.sequence, int(channel.state.balance_a), int(channel.state.balance_b)


def test_open_pay_a_hundred_times_both_ways_and_close_cooperatively(pair: Pair) -> None:
    a, b = pair.a, pair.b
    cid = pair.open(3 * ETHER, 2 * ETHER)
    view = pair.on_chain(cid)
    assert (view[0], view[1], view[2], view[3], view[4]) == (a.address, b.address, 3 * ETHER, 2 * ETHER, L1_OPEN)
    balance_a, balance_b = 3 * ETHER, 2 * ETHER
    for i in range(50):
        # A pays B's address; B pays A's invoice (its preimage comes back: the proof of payment).
        paid = a.pay(b, 1000 + i)
        balance_a, balance_b = balance_a - (1000 + i), balance_b + 1000 + i
        assert (paid.channel_id, paid.sequence, paid.preimage) == (cid, 2 * i + 1, "")
        invoice = a.stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(700 + i), memo=f"#{i}"), timeout=10).invoice
        assert invoice.payee == "0x" + a.address.hex() and invoice.status == pb.INVOICE_STATUS_OPEN
        paid = b.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=20)
        balance_a, balance_b = balance_a + 700 + i, balance_b - (700 + i)
        assert paid.sequence == 2 * i + 2
        assert "0x" + hashlib.sha256(bytes.fromhex(paid.preimage[2:])).hexdigest() == invoice.payment_hash
    # Both sides hold the same co-signed state, with both signatures.
    for node, local, remote in ((a, balance_a, balance_b), (b, balance_b, balance_a)):
        channel = node.channel(cid)
        assert latest(channel) == (100, balance_a, balance_b)
        assert (int(channel.local_balance), int(channel.remote_balance)) == (local, remote)
        assert channel.signature_a and channel.signature_b
    assert a.channel(cid).signature_b == b.channel(cid).signature_b
    # Paying a paid invoice again is answered with the payment made (its preimage), never twice.
    again = b.stub.Pay(pb.PayRequest(invoice=invoice.encoded), timeout=20)
    assert (again.sequence, again.preimage) == (100, paid.preimage)
    assert latest(b.channel(cid))[0] == 100 and latest(a.channel(cid))[0] == 100

    # Cooperative close: both sign the final state; A sends it; both are paid at once.
    before_b = pair.balance(b.address)
    closed = a.stub.CloseChannel(pb.CloseChannelRequest(channel_id=cid), timeout=60)
    assert closed.channel.status == pb.CHANNEL_STATUS_CLOSED and closed.l1_tx_hash
    assert latest(closed.channel) == (FINAL_SEQUENCE, balance_a, balance_b)
    view = pair.on_chain(cid)
    assert (view[4], view[5], view[8], view[9]) == (L1_CONCLUDED, FINAL_SEQUENCE, balance_a, balance_b)
    assert pair.balance(b.address) == before_b + balance_b  # B sent nothing: paid exactly its balance
    wait_for(lambda: b.status(cid) == pb.CHANNEL_STATUS_CLOSED, 20, "B sees the channel closed")
    with pytest.raises(grpc.RpcError) as refused:
        a.pay(b, 1)
    assert reason_of(refused.value) == "NO_ROUTE"  # its only channel with B is closed


def test_a_forced_close_is_concluded_after_the_challenge_period(pair: Pair) -> None:
    a, b = pair.a, pair.b
    cid = pair.open(ETHER)  # single-funded: OPEN at once
    for _ in range(3):
        assert a.pay(b, 10**15).channel_id == cid
    before_b = pair.balance(b.address)
    forced = b.stub.CloseChannel(pb.CloseChannelRequest(channel_id=cid, force=True), timeout=60)
    assert forced.channel.status == pb.CHANNEL_STATUS_DISPUTED and forced.channel.closes_at > 0
    gas = pair.l1.receipt(forced.l1_tx_hash)
    spent = int(gas["gasUsed"], 16) * int(gas["effectiveGasPrice"], 16)
    view = pair.on_chain(cid)
    assert (view[4], view[5], view[7]) == (L1_CLOSING, 3, forced.channel.closes_at)
    wait_for(lambda: a.status(cid) == pb.CHANNEL_STATUS_DISPUTED, 20, "A sees the dispute")
    assert b.status(cid) == pb.CHANNEL_STATUS_DISPUTED  # nothing is paid within the period
    pair.pass_time(PERIOD + 1)
    wait_for(lambda: pair.on_chain(cid)[4] == L1_CONCLUDED, 30, "conclude after the period")
    wait_for(lambda: a.status(cid) == b.status(cid) == pb.CHANNEL_STATUS_CLOSED, 20, "both see it closed")
    # B got its 3 * 10**15 wei; it paid the close's gas, and maybe the conclude's (whoever sent it).
    concluded = [node for node in (a, b) if node.channel(cid).close_l1_tx_hash != forced.l1_tx_hash]
    got = pair.balance(b.address) - before_b + spent
    if b in concluded:
        tx = pair.l1.receipt(b.channel(cid).close_l1_tx_hash)
        got += int(tx["gasUsed"], 16) * int(tx["effectiveGasPrice"], 16)
    assert got == 3 * 10**15
