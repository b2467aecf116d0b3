"""Withdrawals through the bridge worker on a real anvil with a real sequencer and rollups worker:
INITIATED, IN_OUTPUT, proven on L1 by a wallet with nothing but GetWithdrawalProof's calldata
(the proof is self-sufficient: checked here from the response alone, then by the portal),
PROVEN, READY once matured and the output final, FINALIZED (the target call fails while the
portal holds no ETH: FAILED, then a retry after a deposit pays it: SUCCEEDED); listing by
address, the events' replay, refusals, and a kill -9 of the worker that loses nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import grpc
import pytest
from eth_account import Account

from l2node.node.deploy import RollupParams
from protocol import DEFAULT_CHAIN_ID, MESSAGE_PASSER, WithdrawalMessage, encode_withdrawal_call
from protos.l2node.bridge.v1 import bridge_pb2 as bpb
from protos.l2node.rollups.v1 import rollups_pb2 as rpb
from protos.l2node.rollups.v1 import rollups_pb2_grpc as rpb_grpc
from protos.l2node.sequencer.v1 import sequencer_pb2 as spb
from services.bridge import withdrawal_tuple
from services.l1 import L1Client, keccak
from services.rollups._contracts import Registry
from tests.bridge._cluster import Cluster, wait_for, withdrawal_status
from tests.bridge.test_deposits import refused
from tests.l1.anvil import DEV_ADDRESSES, DEV_KEYS, Anvil
from tests.sequencer.test_service import sign

GWEI = 10**9
ALICE_KEY, ALICE, CAROL = DEV_KEYS[2], DEV_ADDRESSES[2], DEV_ADDRESSES[3]
TARGET = bytes.fromhex("00000000000000000000000000000000000be7a1")
VALUE = 5 * 10**17
#: Short windows, skipped with evm_increaseTime.
PARAMS = RollupParams(challenge_window_s=12, max_clock_s=40)


@pytest.fixture
def cluster_options() -> dict[str, Any]:
    return {"params": PARAMS, "rollups": {"propose": False}}  # no output yet: started below


def withdraw(c: Cluster, key: str, nonce: int, value: int, target: bytes, gas_limit: int = 100_000) -> str:
    """An L2 transaction to the message passer; its hash."""
    tx = {"type": 2, "chainId": DEFAULT_CHAIN_ID, "nonce": nonce, "to": "0x" + MESSAGE_PASSER.hex(), "value": value,
          "gas": 100_000, "maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI,
          "data": encode_withdrawal_call(target, gas_limit)}
    raw = bytes(Account.sign_transaction(tx, key).raw_transaction)
    return str(c.seq.SendRawTransaction(spb.SendRawTransactionRequest(raw_transaction=raw), timeout=10).tx_hash)


def verifies(leaf: bytes, index: int, count: int, siblings: list[bytes], root: bytes) -> bool:
    """protocol/_commitment.py's Merkle proof check, as a wallet (or the portal) does it."""
    node, i = leaf, index
    for level in range(16):
        s = siblings[3 * level: 3 * level + 3]
        node = keccak(b"".join([*s[: i % 4], node, *s[i % 4:]]))
        i //= 4
    return index < count and keccak(node + count.to_bytes(32, "big")) == root


def b(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def status_is(c: Cluster, h: str, status: str) -> Any:
    w = c.withdrawal(h)
    return w if withdrawal_status(w) == status else None


def test_a_withdrawal_from_initiated_to_finalized_proven_by_a_wallet(cluster: Cluster, l1: Anvil) -> None:
    c = cluster
    l2_tx = withdraw(c, ALICE_KEY, 0, VALUE, TARGET)
    key = bpb.GetWithdrawalRequest(l2_tx_hash=l2_tx)
    w = wait_for("the withdrawal INITIATED", lambda: c.stub.GetWithdrawal(key, timeout=5).withdrawal)
    assert (withdrawal_status(w), w.nonce, w.value, w.gas_limit) == ("INITIATED", 0, str(VALUE), 100_000)
    assert (w.sender.lower(), b(w.target), w.l2_tx_hash) == (ALICE.lower(), TARGET, l2_tx)
    h = w.withdrawal_hash
    assert refused(c.stub.GetWithdrawalProof, bpb.GetWithdrawalProofRequest(withdrawal_hash=h)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "NO_OUTPUT_YET")

    c.start_rollups()  # the proposer now: an output covers the withdrawal's block
    w = wait_for("the withdrawal IN_OUTPUT", lambda: status_is(c, h, "IN_OUTPUT"), timeout=90)
    assert w.HasField("output_index") and w.output_index > 0
    assert refused(c.stub.GetWithdrawalProof, bpb.GetWithdrawalProofRequest(withdrawal_hash=h, output_index=0)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "OUTPUT_DOES_NOT_COVER")
    assert refused(c.stub.GetWithdrawalProof, bpb.GetWithdrawalProofRequest(withdrawal_hash=h, output_index=999)) \
        == (grpc.StatusCode.NOT_FOUND, "OUTPUT_NOT_FOUND")

    # The wallet's path: everything from the response, checked without trusting the node.
    proof = c.stub.GetWithdrawalProof(bpb.GetWithdrawalProofRequest(withdrawal_hash=h), timeout=10)
    assert proof.output_index == w.output_index and proof.output_status in ("PROPOSED", "CHALLENGED")
    o = proof.output_root_proof
    assert keccak(b"".join(b(x) for x in (o.version, o.state_root, o.message_passer_root, o.block_hash))) \
        == b(proof.output_root)
    assert output_root_on_l1(c, proof.output_index) == b(proof.output_root)
    p = proof.message_proof
    assert verifies(b(h), p.index, p.count, [b(s) for s in p.siblings], b(o.message_passer_root))
    assert b(proof.portal) == c.portal.address and proof.finalize_calldata == ""
    assert proof.proof_maturity_delay_s > 0
    proven = c.send(ALICE, b(proof.portal), b(proof.prove_calldata))
    assert int(proven["status"], 16) == 1

    w = wait_for("the withdrawal PROVEN", lambda: status_is(c, h, "PROVEN"))
    assert (w.prover.lower(), w.proven_l1_tx_hash) == (ALICE.lower(), proven["transactionHash"])
    assert w.matures_at == w.proven_at + proof.proof_maturity_delay_s

    # Time passes on L1: the output's window and the proof's maturity.
    l1.rpc("evm_increaseTime", PARAMS.challenge_window_s + proof.proof_maturity_delay_s + 1)
    l1.rpc("evm_mine")
    w = wait_for("the withdrawal READY", lambda: status_is(c, h, "READY"), timeout=90)
    again = c.stub.GetWithdrawalProof(bpb.GetWithdrawalProofRequest(withdrawal_hash=h), timeout=10)
    assert again.output_status == "FINALIZED" and again.finalize_calldata
    # The portal holds no ETH yet (nobody deposited): the target call fails, the value waits.
    finalized = c.send(CAROL, b(again.portal), b(again.finalize_calldata))  # anyone may finalize
    assert int(finalized["status"], 16) == 1
    w = wait_for("the withdrawal FINALIZED", lambda: status_is(c, h, "FINALIZED"))
    assert (w.outcome, w.finalized_l1_tx_hash) == (bpb.WITHDRAWAL_OUTCOME_FAILED, finalized["transactionHash"])
    # A deposit funds the portal; a retry (by anyone) pays the target.
    c.deposit(ALICE, ALICE, 10**18)
    message = WithdrawalMessage(w.nonce, b(w.sender), b(w.target), int(w.value), w.gas_limit, b(w.data))
    retried = c.send(CAROL, b(again.portal), c.portal.encode_call("retryWithdrawal", withdrawal_tuple(message)))
    assert int(retried["status"], 16) == 1
    assert int(l1.rpc("eth_getBalance", "0x" + TARGET.hex(), "latest"), 16) == VALUE
    w = wait_for("the retry SUCCEEDED", lambda: (x := c.withdrawal(h)).outcome == bpb.WITHDRAWAL_OUTCOME_SUCCEEDED
                 and x)
    assert (withdrawal_status(w), w.finalized_l1_tx_hash) == ("FINALIZED", retried["transactionHash"])

    # Listed under both parties; its whole life replays in order.
    for who in (ALICE, "0x" + TARGET.hex()):
        listed = c.stub.ListWithdrawals(bpb.ListWithdrawalsRequest(address=who), timeout=5).withdrawals
        assert [x.withdrawal_hash for x in listed] == [h]
    replay = c.stub.SubscribeEvents(bpb.SubscribeEventsRequest(from_sequence=0, hash=h), timeout=10)
    life = [next(replay).withdrawal for _ in range(6)]
    replay.cancel()
    assert [withdrawal_status(x) for x in life] == ["INITIATED", "IN_OUTPUT", "PROVEN", "READY", "FINALIZED",
                                                    "FINALIZED"]
    assert [x.outcome for x in life[-2:]] == [bpb.WITHDRAWAL_OUTCOME_FAILED, bpb.WITHDRAWAL_OUTCOME_SUCCEEDED]

    # kill -9 of the bridge: the record is as it was.
    c.restart_bridge(signal.SIGKILL)
    assert c.withdrawal(h) == w


def output_root_on_l1(c: Cluster, index: int) -> bytes:
    """What the OutputRegistry holds for output ``index``, read from L1 directly."""

    async def read() -> bytes:
        async with L1Client(c.l1.url) as l1:
            return (await Registry(l1, c.addresses["OutputRegistry"]).output(index)).output_root

    return asyncio.run(read())


def test_an_output_that_is_not_this_nodes_chain_is_never_proven_against(cluster: Cluster) -> None:
    c = cluster
    l2_tx = withdraw(c, ALICE_KEY, 0, 1, TARGET)
    w = wait_for("the withdrawal", lambda: c.stub.GetWithdrawal(bpb.GetWithdrawalRequest(l2_tx_hash=l2_tx),
                                                                timeout=5).withdrawal)
    # A faulty proposer: output 1 (which covers the withdrawal) has a wrong state root; nobody challenges it.
    c.start_rollups("tests.workers.faulty_rollups:WORKER", faulty_output=1, challenge=False)
    assert c.rollups is not None
    outputs = rpb_grpc.RollupsServiceStub(c.rollups.channel)
    for n in range(12):  # more L2 blocks, for a second output
        c.seq.SendRawTransaction(spb.SendRawTransactionRequest(raw_transaction=sign(DEV_KEYS[1], n, CAROL, 1)),
                                 timeout=10)
        time.sleep(0.1)
    wait_for("outputs 1 and 2", lambda: len(outputs.ListOutputs(rpb.ListOutputsRequest(), timeout=10).outputs) >= 3,
             timeout=90)
    assert outputs.GetOutput(rpb.GetOutputRequest(index=1), timeout=10).output.l2_block >= w.l2_block
    w = wait_for("the withdrawal IN_OUTPUT", lambda: status_is(c, w.withdrawal_hash, "IN_OUTPUT"), timeout=60)
    assert w.output_index >= 2  # never the faulty output 1
    assert refused(c.stub.GetWithdrawalProof, bpb.GetWithdrawalProofRequest(
        withdrawal_hash=w.withdrawal_hash, output_index=1)) == (grpc.StatusCode.FAILED_PRECONDITION, "OUTPUT_MISMATCH")
    proof = c.stub.GetWithdrawalProof(bpb.GetWithdrawalProofRequest(withdrawal_hash=w.withdrawal_hash), timeout=10)
    assert proof.output_index == w.output_index
    assert int(c.send(CAROL, b(proof.portal), b(proof.prove_calldata))["status"], 16) == 1
