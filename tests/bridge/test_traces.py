"""One trace per crossing: the bridge's spans for a deposit join the trace its client handed over
with TrackDeposit, and a withdrawal's join the trace of the call that sent its L2 transaction (the
sequencer's ListMessages carries it); each carries the deposit's or the withdrawal's hash."""

from __future__ import annotations

import asyncio
import os
import pathlib

from eth_account import Account

from protocol import DEFAULT_CHAIN_ID, MESSAGE_PASSER, encode_withdrawal_call
from protos.l2node.bridge.v1 import bridge_pb2 as bpb
from protos.l2node.sequencer.v1 import sequencer_pb2 as spb
from tests.bridge._cluster import Cluster, wait_for
from tests.bridge.test_withdrawals import ALICE_KEY, GWEI, TARGET
from tests.conftest import Collector, otel_env
from tests.l1.anvil import DEV_ADDRESSES, Anvil

ALICE = DEV_ADDRESSES[2]


def traceparent() -> tuple[str, str]:
    """A client's own trace: (its trace id, the traceparent header of one of its spans)."""
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


async def test_a_deposit_and_a_withdrawal_each_make_one_trace(tmp_path: pathlib.Path, l1: Anvil,
                                                              collector: Collector) -> None:
    c = await asyncio.to_thread(Cluster, tmp_path, l1, None, None, otel_env(collector))
    try:
        deposit_trace, header = traceparent()
        l1_tx = c.deposit(ALICE, ALICE, 10**15)
        seen = await asyncio.to_thread(c.stub.TrackDeposit, bpb.TrackDepositRequest(l1_tx_hash=l1_tx), timeout=30,
                                       metadata=[("traceparent", header)])
        h = seen.deposits[0].deposit_hash
        for name in ("bridge.deposit.confirmed", "bridge.deposit.credited"):
            span = await collector.wait_for(lambda s, n=name: s["name"] == n
                                            and s["attributes"].get("l2.deposit.hash") == h, limit_s=60)
            assert span["trace_id"] == deposit_trace and span["service"] == "bridge"
            assert span["attributes"]["l1.tx.hash"] == l1_tx

        withdrawal_trace, header = traceparent()
        tx = {"type": 2, "chainId": DEFAULT_CHAIN_ID, "nonce": 0, "to": "0x" + MESSAGE_PASSER.hex(),
              "value": 7, "gas": 100_000, "maxFeePerGas": 10 * GWEI, "maxPriorityFeePerGas": GWEI,
              "data": encode_withdrawal_call(TARGET, 100_000)}
        raw = bytes(Account.sign_transaction(tx, ALICE_KEY).raw_transaction)
        sent = await asyncio.to_thread(c.seq.SendRawTransaction, spb.SendRawTransactionRequest(raw_transaction=raw),
                                       timeout=10, metadata=[("traceparent", header)])
        w = await asyncio.to_thread(wait_for, "the withdrawal", lambda: c.stub.GetWithdrawal(
            bpb.GetWithdrawalRequest(l2_tx_hash=sent.tx_hash), timeout=5).withdrawal)
        span = await collector.wait_for(lambda s: s["name"] == "bridge.withdrawal.initiated"
                                        and s["attributes"].get("l2.withdrawal.hash") == w.withdrawal_hash)
        assert span["trace_id"] == withdrawal_trace
    finally:
        await asyncio.to_thread(c.close)
