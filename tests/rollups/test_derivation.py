"""Derivation from L1 data alone: hostile batches are skipped by rule, and it agrees with the sequencer."""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import time

from eth_account import Account

from protocol import BatchBlock, L1InputReader, QueuedForced, batch_leaves, devnet_genesis, input_root
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from services.l1 import Artifact, Contract, L1Client, UnsignedTransaction, address, sign_transaction
from services.rollups._derivation import Deriver, read_l1
from tests.l1.anvil import Anvil
from tests.sequencer.test_batcher import receipt_when, start_sequencer
from tests.sequencer.test_service import DEV_KEYS, sign

KEY = bytes.fromhex(DEV_KEYS[0][2:])
TO = b"\x22" * 20


def transfer(nonce: int, value: int = 1, *, key: bytes = KEY) -> bytes:
    return sign_transaction(UnsignedTransaction(901, nonce, 10**9, 10 * 10**9, 21_000, TO, value), key)


def post(deriver: Deriver, blocks: list[BatchBlock], l1_block: int = 4) -> None:
    """Put a batch of these blocks on deriver's L1, as the inbox would hold it."""
    leaves = tuple(batch_leaves(blocks))
    deriver.inputs.add_batch(len(deriver.inputs.batches), l1_block, input_root(leaves), leaves)


def test_a_hostile_batch_derives_only_what_the_rules_allow() -> None:
    good0, good1 = transfer(0, 5), transfer(1, 7)
    bad_signature = bytearray(transfer(2))
    bad_signature[-5] ^= 0xFF  # a different s: recovers another sender, or none
    gap = transfer(9)  # nonce 9 while the account is at 2
    deriver = Deriver(devnet_genesis())
    deriver.inputs.add_forced(QueuedForced(0, 3, b"\x02garbage"))
    block = BatchBlock(1, 100, 3, b"\x33" * 32, (b"\x02\xff\xff", good0, bytes(bad_signature), gap, good1, good0))
    post(deriver, [block])
    assert deriver.advance() == 1
    reasons = [(s.source, s.reason) for s in deriver.skipped]
    assert reasons[0] == ("forced", "MALFORMED_RLP") and reasons[1] == ("batch", "MALFORMED_RLP")
    assert ("batch", "NONCE_TOO_HIGH") in reasons and reasons[-1] == ("batch", "NONCE_TOO_LOW")  # the replay
    assert len(deriver.head.tx_hashes) == 2
    assert deriver.state.get(TO).balance == 12
    # A duplicate of the same batch derives nothing more; a batch that skips a block is ignored.
    post(deriver, [block])
    post(deriver, [BatchBlock(3, 101, 3, b"\x33" * 32, (transfer(2),))])
    assert deriver.advance() == 0
    assert deriver.head.header.number == 1


def test_derivation_from_l1_alone_agrees_with_the_sequencer(tmp_path: pathlib.Path) -> None:
    l1 = Anvil()
    l1.start()
    proc, stub, channel = start_sequencer(tmp_path, l1)
    try:
        contracts = json.loads((tmp_path / "l1" / "contracts.json").read_text())
        inbox_address, portal_address = contracts["contracts"]["BatchInbox"], contracts["contracts"]["DepositPortal"]
        inbox, portal = Contract(Artifact.load("BatchInbox")), Contract(Artifact.load("DepositPortal"))
        someone = l1.rpc("eth_accounts")[7]
        payee = Account.create().address
        l1.rpc("eth_sendTransaction", {"from": someone, "to": portal_address, "value": hex(10**18),
                                       "data": "0x" + portal.encode_call("depositTransaction",
                                                                         bytes.fromhex(payee[2:])).hex()})
        for raw in (b"\x02 garbage", sign(DEV_KEYS[2], 0, payee, 3)):
            l1.rpc("eth_sendTransaction", {"from": someone, "to": inbox_address,
                                           "data": "0x" + inbox.encode_call("forceInclude", raw).hex()})
        last = None
        for n in range(6):
            last = stub.SendRawTransaction(pb.SendRawTransactionRequest(
                raw_transaction=sign(DEV_KEYS[1], n, payee, 10 + n)), timeout=10).tx_hash
            l1.rpc("anvil_mine", 1)
            time.sleep(0.15)  # separate blocks
        l1.rpc("anvil_mine", 4)
        receipt_when(stub, last, lambda r: r.l1_tx_hash != "")
        deadline = time.monotonic() + 30
        while int(stub.GetAccount(pb.GetAccountRequest(address=payee), timeout=5).balance) < 10**18:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        head = stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block.number
        while stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5).safe_block < head:  # all of it on L1
            assert time.monotonic() < deadline, "the sequencer's blocks did not all reach L1"
            l1.rpc("anvil_mine", 1)
            time.sleep(0.1)
        assert stub.GetBlock(pb.GetBlockRequest(latest=True), timeout=5).block.number == head  # nothing new

        async def derive() -> Deriver:
            deriver = Deriver(devnet_genesis())
            bound_inbox = Contract(inbox.artifact, address(inbox_address))
            bound_portal = Contract(portal.artifact, address(portal_address))
            async with L1Client(l1.url) as client:
                latest = await client.block_number()
                await read_l1(L1InputReader(client, bound_inbox, bound_portal), deriver.inputs,
                              int(contracts["block_number"]), latest)
            deriver.advance()
            return deriver

        deriver = asyncio.run(derive())
        assert deriver.head.header.number == head >= 2
        for block in deriver.blocks:
            ours = stub.GetBlock(pb.GetBlockRequest(number=block.header.number), timeout=5).block
            assert ours.hash == "0x" + block.hash.hex(), f"block {block.header.number} differs"
        # The garbage forced transaction only: the batch leaves out the forced ones (derivation takes
        # them from the inbox's queue), so no copy is left for the nonce rule to skip.
        assert [(s.source, s.reason) for s in deriver.skipped] == [("forced", "MALFORMED_RLP")]
        assert deriver.state.get(bytes.fromhex(payee[2:])).balance == \
            int(stub.GetAccount(pb.GetAccountRequest(address=payee), timeout=5).balance)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        channel.close()
        l1.stop()
