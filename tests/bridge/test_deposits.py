"""Deposits through the bridge worker on a real anvil with a real sequencer: SEEN, CONFIRMED at
depth, CREDITED on L2 (block and transaction), one REORGED by an L1 reorg before depth; listing
by address with paging, SubscribeEvents replay then follow, refusals with their reasons, and a
kill -9 of the worker that loses nothing."""

from __future__ import annotations

import signal
import threading
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from protos.l2node.bridge.v1 import bridge_pb2 as bpb
from protos.l2node.sequencer.v1 import sequencer_pb2 as spb
from tests.bridge._cluster import DEPTH, Cluster, deposit_status, wait_for
from tests.l1.anvil import DEV_ADDRESSES, Anvil

ALICE, CAROL = DEV_ADDRESSES[2], DEV_ADDRESSES[3]
BOB = "0x00000000000000000000000000000000000b0b00"
ETHER = 10**18


def credited(c: Cluster, l1_tx: str) -> Any:
    return wait_for("the deposit credited", lambda: (d := c.deposit_record(l1_tx)).status ==
                    bpb.DEPOSIT_STATUS_CREDITED and d)


def reason_of(exc: grpc.RpcError) -> str:
    status = rpc_status.from_call(exc)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError("no ErrorInfo")


def refused(call: Any, request: Any, **kwargs: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(request, timeout=kwargs.pop("timeout", 5), **kwargs)
        if hasattr(result, "__iter__"):
            next(iter(result))
    return caught.value.code(), reason_of(caught.value)


def drain(stream: Any, into: list[Any]) -> None:
    """Collect a response stream's items until it is cancelled."""
    try:
        for item in stream:
            into.append(item)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.CANCELLED


def test_a_deposit_is_seen_confirmed_and_credited_and_its_events_replay_then_follow(cluster: Cluster) -> None:
    c = cluster
    follower = c.stub.SubscribeEvents(bpb.SubscribeEventsRequest(address=BOB), timeout=60)  # new changes only
    got: list[Any] = []
    threading.Thread(target=drain, args=(follower, got), daemon=True).start()

    l1_tx = c.deposit(ALICE, BOB, ETHER)
    seen = c.stub.TrackDeposit(bpb.TrackDepositRequest(l1_tx_hash=l1_tx), timeout=30).deposits
    assert len(seen) == 1 and seen[0].l1_tx_hash == l1_tx and seen[0].value == str(ETHER)
    assert seen[0].to.lower() == BOB and getattr(seen[0], "from").lower() == ALICE.lower()
    d = credited(c, l1_tx)
    assert d.l2_tx_hash == d.deposit_hash and d.HasField("l2_block")
    assert d.confirmed_at_l1_block == d.l1_block + DEPTH
    receipt = c.seq.GetTransactionReceipt(spb.GetTransactionReceiptRequest(tx_hash=d.deposit_hash), timeout=5).receipt
    assert receipt.block_number == d.l2_block
    assert c.seq.GetAccount(spb.GetAccountRequest(address=BOB), timeout=5).balance == str(ETHER)

    # Replay from the start: the deposit's three changes in order, then the stream follows.
    replay = c.stub.SubscribeEvents(bpb.SubscribeEventsRequest(from_sequence=0, hash=d.deposit_hash), timeout=10)
    events = [next(replay) for _ in range(3)]
    replay.cancel()
    assert [deposit_status(e.deposit) for e in events] == ["SEEN", "CONFIRMED", "CREDITED"]
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    wait_for("the live stream to follow", lambda: len(got) >= 3)
    follower.cancel()
    assert [deposit_status(e.deposit) for e in got[:3]] == ["SEEN", "CONFIRMED", "CREDITED"]
    assert [e.sequence for e in got[:3]] == [e.sequence for e in events]


def test_a_reorged_deposit_paging_refusals_and_a_killed_worker(cluster: Cluster, l1: Anvil) -> None:
    c = cluster
    # A deposit whose block L1 replaces before it is deep enough never happened.
    l1.rpc("evm_setIntervalMining", 0)
    doomed_tx = c.deposit(ALICE, CAROL, 7)
    l1.rpc("anvil_mine", 1)
    doomed = c.stub.TrackDeposit(bpb.TrackDepositRequest(l1_tx_hash=doomed_tx), timeout=30).deposits[0]
    assert deposit_status(doomed) == "SEEN"
    l1.rpc("anvil_reorg", 1, [])
    l1.rpc("anvil_mine", DEPTH + 2)
    key = bpb.GetDepositRequest(deposit_hash=doomed.deposit_hash)
    wait_for("the deposit REORGED", lambda: c.stub.GetDeposit(key, timeout=5).deposit.status ==
             bpb.DEPOSIT_STATUS_REORGED)
    # The same while the worker is down: killed with the deposit SEEN, it finds it gone at restart.
    lost_tx = c.deposit(ALICE, CAROL, 8)
    l1.rpc("anvil_mine", 1)
    lost = c.stub.TrackDeposit(bpb.TrackDepositRequest(l1_tx_hash=lost_tx), timeout=30).deposits[0]
    c.bridge_proc.stop(signal.SIGKILL)
    l1.rpc("anvil_reorg", 1, [])
    l1.rpc("anvil_mine", DEPTH + 2)
    c.restart_bridge()
    key = bpb.GetDepositRequest(deposit_hash=lost.deposit_hash)
    wait_for("the deposit REORGED after a restart", lambda: c.stub.GetDeposit(key, timeout=5).deposit.status ==
             bpb.DEPOSIT_STATUS_REORGED)
    l1.rpc("evm_setIntervalMining", 1)

    # Three deposits of Alice's, listed newest first, two to a page.
    sent = [c.deposit(ALICE, ALICE, n + 1) for n in range(3)]
    for tx in sent:
        credited(c, tx)
    pages, token = [], ""
    while True:
        page = c.stub.ListDeposits(bpb.ListDepositsRequest(address=ALICE, page_size=2, page_token=token), timeout=5)
        pages.append(list(page.deposits))
        if not (token := page.next_page_token):
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [d for p in pages for d in p]
    assert [d.l1_tx_hash for d in listed] == [*sent[::-1], lost_tx, doomed_tx]  # newest first
    carols = c.stub.ListDeposits(bpb.ListDepositsRequest(address=CAROL.lower()), timeout=5).deposits
    assert [d.deposit_hash for d in carols] == [lost.deposit_hash, doomed.deposit_hash]

    # Refusals, each with its code and reason.
    s = c.stub
    assert refused(s.GetDeposit, bpb.GetDepositRequest(deposit_hash="0x12")) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                                  "MALFORMED_HASH")
    assert refused(s.GetDeposit, bpb.GetDepositRequest()) == (grpc.StatusCode.INVALID_ARGUMENT, "MISSING_KEY")
    assert refused(s.GetDeposit, bpb.GetDepositRequest(l1_tx_hash="0x" + "ab" * 32)) == (
        grpc.StatusCode.NOT_FOUND, "DEPOSIT_NOT_FOUND")
    assert refused(s.ListDeposits, bpb.ListDepositsRequest(address="0xzz")) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                                 "MALFORMED_ADDRESS")
    assert refused(s.ListDeposits, bpb.ListDepositsRequest(address=ALICE, page_size=501)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "PAGE_SIZE_TOO_LARGE")
    assert refused(s.ListDeposits, bpb.ListDepositsRequest(address=ALICE, page_token="x")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "BAD_PAGE_TOKEN")
    assert refused(s.TrackDeposit, bpb.TrackDepositRequest(l1_tx_hash="0x" + "cd" * 32), timeout=1.5) == (
        grpc.StatusCode.NOT_FOUND, "DEPOSIT_NOT_FOUND")
    assert refused(s.GetWithdrawal, bpb.GetWithdrawalRequest(withdrawal_hash="0x" + "ef" * 32)) == (
        grpc.StatusCode.NOT_FOUND, "WITHDRAWAL_NOT_FOUND")
    assert refused(s.GetWithdrawalProof, bpb.GetWithdrawalProofRequest(withdrawal_hash="nothex")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_HASH")
    assert refused(s.SubscribeEvents, bpb.SubscribeEventsRequest(address="0x01")) == (
        grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_ADDRESS")

    # kill -9: everything recorded stays, the event log continues, and following goes on.
    before = {d.deposit_hash: (d.status, d.l2_block) for d in listed}
    c.restart_bridge(signal.SIGKILL)
    after = c.stub.ListDeposits(bpb.ListDepositsRequest(address=ALICE, page_size=10), timeout=5).deposits
    assert {d.deposit_hash: (d.status, d.l2_block) for d in after} == before
    again = c.deposit(ALICE, ALICE, 99)
    assert credited(c, again).portal_index == max(d.portal_index for d in after) + 1
    log = c.stub.SubscribeEvents(bpb.SubscribeEventsRequest(from_sequence=0), timeout=10)
    statuses: dict[str, list[str]] = {}
    for event in log:
        statuses.setdefault(event.deposit.deposit_hash, []).append(deposit_status(event.deposit))
        if event.deposit.l1_tx_hash == again and event.deposit.status == bpb.DEPOSIT_STATUS_CREDITED:
            break
    log.cancel()
    assert statuses[doomed.deposit_hash] == statuses[lost.deposit_hash] == ["SEEN", "REORGED"]
    assert all(v == ["SEEN", "CONFIRMED", "CREDITED"] for h, v in statuses.items()
               if h not in (doomed.deposit_hash, lost.deposit_hash))
