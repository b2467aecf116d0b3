"""Issue item 2: a sequencer that goes silent cannot keep forced transactions and deposits out of L2.

The attack: the sequencer (here: its whole worker) stops posting; an L1 user queues a forced
transaction and a deposit; nobody posts. Once the sequencer window (8 L1 blocks here) lapses,
derivation makes the L2 blocks itself (rule F: origin + 1 each, deposits and forced transactions
first), so both are on L2 from L1 data alone. When the sequencer comes back it follows that chain
(same block hashes, balances, the forced transaction's receipt) and produces on top of it.
A real anvil; L1 time moves by anvil_mine only.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from eth_account import Account

from l2node.node.deploy import RollupParams
from protocol import DERIVED_ORIGIN_HASH, BlockLeaf, Deposit, L1InputReader, devnet_genesis, keccak256
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from services.l1 import Artifact, Contract, L1Client, address
from services.rollups._derivation import Deriver, read_l1
from services.rollups._machine import Rules
from tests.l1.anvil import Anvil
from tests.sequencer.test_batcher import receipt_when, start_sequencer
from tests.sequencer.test_service import DEV_KEYS, sign

WINDOW = 8
PARAMS = RollupParams(sequencer_window=WINDOW)


@pytest.fixture
def l1() -> Iterator[Anvil]:
    anvil = Anvil()
    anvil.start()
    try:
        yield anvil
    finally:
        anvil.stop()


def stop(proc: Any, channel: grpc.Channel) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    channel.close()


def mine_until(l1: Anvil, done: Callable[[], bool], what: str, timeout: float = 60,
               pace: Callable[[], bool] | None = None) -> None:
    """One L1 block at a time, slowly enough for the sequencer to keep its origin fresh; with
    ``pace``, each block waits (up to 10 s) until ``pace()`` holds: on a loaded machine the
    sequencer's reaction, not the L1's 12-second blocks, would otherwise set what the test sees."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        waited = time.monotonic() + 10
        while pace is not None and not pace() and time.monotonic() < waited:
            time.sleep(0.05)
        l1.rpc("anvil_mine", 1)
        time.sleep(0.25)


def l1_number(l1: Anvil) -> int:
    return int(l1.rpc("eth_blockNumber"), 16)


def derive(l1: Anvil, contracts: dict[str, Any]) -> tuple[Deriver, int]:
    """The chain from L1 data alone, up to L1's latest block (the horizon)."""

    async def run() -> tuple[Deriver, int]:
        deriver = Deriver(devnet_genesis(), Rules(sequencer_window=WINDOW))
        inbox = Contract(Artifact.load("BatchInbox"), address(contracts["contracts"]["BatchInbox"]))
        portal = Contract(Artifact.load("DepositPortal"), address(contracts["contracts"]["DepositPortal"]))
        async with L1Client(l1.url) as client:
            horizon = await client.block_number()
            # Derivation following L1 reads up to the horizon (spec B: L1Inputs.l1_horizon).
            deriver.inputs.l1_horizon = horizon  # type: ignore[attr-defined, unused-ignore]
            await read_l1(L1InputReader(client, inbox, portal), deriver.inputs, int(contracts["block_number"]), horizon)
        deriver.advance()
        return deriver, horizon

    return asyncio.run(run())


def test_a_silent_sequencer_cannot_keep_forced_transactions_and_deposits_out(
        tmp_path: pathlib.Path, l1: Anvil) -> None:
    proc, stub, channel = start_sequencer(tmp_path, l1, params=PARAMS)
    contracts = json.loads((tmp_path / "l1" / "contracts.json").read_text())
    assert contracts["rollups"]["sequencer_window"] == WINDOW
    payee = Account.create().address
    try:
        first = stub.SendRawTransaction(pb.SendRawTransactionRequest(
            raw_transaction=sign(DEV_KEYS[0], 0, payee, 7)), timeout=10).tx_hash
        mine_until(l1, lambda: receipt_when(stub, first, lambda r: True).status == pb.RECEIPT_STATUS_SAFE,
                   "the first transfer SAFE")
    finally:
        stop(proc, channel)  # the sequencer goes silent: nothing is posted from here on

    # An L1 user forces a transaction in and deposits; then the window lapses.
    user = l1.rpc("eth_accounts")[7]
    inbox, portal = Contract(Artifact.load("BatchInbox")), Contract(Artifact.load("DepositPortal"))
    forced = sign(DEV_KEYS[2], 0, payee, 3)
    depositee = Account.create().address
    l1.rpc("evm_setAutomine", False)  # both in one L1 block: the first derived block at its origin takes both
    l1.rpc("eth_sendTransaction", {"from": user, "to": contracts["contracts"]["BatchInbox"],
                                   "data": "0x" + inbox.encode_call("forceInclude", forced).hex()})
    deposit_tx = l1.rpc("eth_sendTransaction", {
        "from": user, "to": contracts["contracts"]["DepositPortal"], "value": hex(10**18),
        "data": "0x" + portal.encode_call("depositTransaction", bytes.fromhex(depositee[2:])).hex()})
    l1.rpc("anvil_mine", 1)
    l1.rpc("evm_setAutomine", True)
    (log,) = l1.receipt(deposit_tx)["logs"]
    deposit = Deposit(bytes.fromhex(log["data"][2:])[64:96], bytes.fromhex(depositee[2:]), 10**18)
    forced_hash, deposit_hash = keccak256(forced), deposit.hash()
    l1.rpc("anvil_mine", 3 * WINDOW)

    # Derivation alone puts both on L2, in a block it made itself.
    deriver, _ = derive(l1, contracts)
    holding = [b for b in deriver.blocks if deposit_hash in b.tx_hashes]
    assert len(holding) == 1 and holding[0].tx_hashes == (deposit_hash, forced_hash)
    assert holding[0].header.l1_origin_hash == DERIVED_ORIGIN_HASH
    assert deriver.state.get(bytes.fromhex(depositee[2:])).balance == 10**18
    assert deriver.state.get(bytes.fromhex(payee[2:])).balance == 7 + 3

    # The sequencer comes back: it follows the derived chain, then produces on top of it.
    proc, stub, channel = start_sequencer(tmp_path, l1, params=PARAMS)
    try:
        receipt = receipt_when(stub, "0x" + forced_hash.hex(), lambda r: r.status >= pb.RECEIPT_STATUS_SAFE)
        block = stub.GetBlock(pb.GetBlockRequest(number=receipt.block_number), timeout=5).block
        assert block.transaction_hashes == ["0x" + deposit_hash.hex(), "0x" + forced_hash.hex()]
        assert block.l1_origin_hash == "0x" + DERIVED_ORIGIN_HASH.hex() and receipt.l1_tx_hash == ""
        assert int(stub.GetAccount(pb.GetAccountRequest(address=depositee), timeout=5).balance) == 10**18

        after = stub.SendRawTransaction(pb.SendRawTransactionRequest(
            raw_transaction=sign(DEV_KEYS[1], 0, payee, 11)), timeout=10).tx_hash
        mine_until(l1, lambda: receipt_when(stub, after, lambda r: True).status == pb.RECEIPT_STATUS_SAFE,
                   "a transfer after the outage SAFE")
        sealed = receipt_when(stub, after, lambda r: True)
        assert sealed.l1_tx_hash != "" and sealed.block_number > receipt.block_number  # on top, posted
        mine_until(l1, lambda: stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5).safe_block
                   >= stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block.number,
                   "every block SAFE")
        head = stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block.number

        # Derivation from L1 alone and the sequencer agree on every block, and on the balances.
        deriver, _ = derive(l1, contracts)
        assert deriver.head.header.number >= head
        for derived in deriver.blocks[: head + 1]:
            ours = stub.GetBlock(pb.GetBlockRequest(number=derived.header.number), timeout=5).block
            assert ours.hash == "0x" + derived.hash.hex(), f"block {derived.header.number} differs"
        for who in (payee, depositee):
            assert deriver.state.get(bytes.fromhex(who[2:])).balance == \
                int(stub.GetAccount(pb.GetAccountRequest(address=who), timeout=5).balance)
        assert int(stub.GetAccount(pb.GetAccountRequest(address=payee), timeout=5).balance) == 7 + 3 + 11
        assert not posted_derived_blocks(deriver)
    finally:
        stop(proc, channel)
    log_text = (tmp_path / "sequencer.log").read_text()
    assert REWIND in log_text  # said loudly


REWIND = "derivation made other blocks than the sequencer's"


def settled(stub: Any) -> bool:
    """Every block SAFE, the newest one the sequencer's own (posted, not derivation's)."""
    head = stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block
    return (head.l1_origin_hash != "0x" + DERIVED_ORIGIN_HASH.hex()
            and stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5).safe_block >= head.number >= 1)


def posted_derived_blocks(deriver: Deriver) -> list[int]:
    """Blocks with a zero origin hash in the inbox's batches: the batcher must never post one."""
    return [leaf.number for batch in deriver.inputs.batches for leaf in batch.leaves
            if isinstance(leaf, BlockLeaf) and leaf.l1_origin_hash == DERIVED_ORIGIN_HASH]


def test_an_idle_sequencer_keeps_its_window_open_with_heartbeats(tmp_path: pathlib.Path, l1: Anvil) -> None:
    """No transactions for several windows: the sequencer seals and posts empty blocks often enough
    that derivation never makes a block itself, and it never drops one of its own."""
    proc, stub, channel = start_sequencer(tmp_path, l1, params=PARAMS)
    contracts = json.loads((tmp_path / "l1" / "contracts.json").read_text())
    try:
        # Settled first: a block of its own SAFE and nothing unposted. (If deploying took more L1
        # blocks than the window, derivation made the first blocks and the sequencer followed.)
        mine_until(l1, lambda: settled(stub), "a first block of the sequencer's own SAFE")
        start = stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block.number
        log_before = (tmp_path / "sequencer.log").read_text().count(REWIND)
        target = l1_number(l1) + 4 * WINDOW
        log = tmp_path / "sequencer.log"

        def kept_up() -> bool:
            """Every block the sequencer sealed is posted, and the next L1 block leaves its newest
            one short of the window's end: it is due a heartbeat once its view of L1 (its depth
            behind the head) is past half a window (protocol.heartbeat_due), which here is one L1
            block before the end; so the test mines no further until that heartbeat is posted, as
            12-second L1 blocks would let it."""
            head = stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block
            posted = [json.loads(line).get("last", 0) for line in log.read_text().splitlines()
                      if '"batch posted"' in line]
            return l1_number(l1) + 1 - head.l1_origin_number < WINDOW and max(posted, default=0) >= head.number

        mine_until(l1, lambda: l1_number(l1) >= target, "four windows of L1 blocks", pace=kept_up)
        mine_until(l1, lambda: settled(stub), "every block SAFE")
        head = stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block
        assert head.number > start + 4  # heartbeats: about one per half window
        assert head.l1_origin_number + WINDOW > l1_number(l1)
        deriver, _ = derive(l1, contracts)
        assert deriver.head.header.number == head.number and deriver.head.hash.hex() == head.hash[2:]
        assert all(b.header.l1_origin_hash != DERIVED_ORIGIN_HASH for b in deriver.blocks[start + 1:])
        assert not posted_derived_blocks(deriver)
    finally:
        stop(proc, channel)
    assert (tmp_path / "sequencer.log").read_text().count(REWIND) == log_before
