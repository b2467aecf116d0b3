"""The one reader of L1 inputs, over a stub L1: each kind of log decoded into its record, in L1
order, a batch's bytes taken from its transaction's calldata. (On a real anvil, following L1
through reorgs: tests/sequencer/test_batcher.py; deriving from it: tests/rollups/test_derivation.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode

from protocol import Deposit, L1InputReader, PostedBatch, QueuedDeposit, QueuedForced
from services.l1 import Artifact, Contract, Log, Transaction, keccak

INBOX = Contract(Artifact.load("BatchInbox"), b"\x01" * 20)
PORTAL = Contract(Artifact.load("DepositPortal"), b"\x02" * 20)
ROOT = b"\x11" * 32


def word(value: int | bytes) -> bytes:
    return value.rjust(32, b"\0") if isinstance(value, bytes) else value.to_bytes(32, "big")


def log(block: int, index: int, contract: Contract, event: str, indexed: Sequence[int | bytes], data: bytes,
        tx_hash: bytes) -> Log:
    assert contract.address is not None
    return Log(block, index, keccak(b"block %d" % block), tx_hash, 0, contract.address,
               (contract.topic(event), *map(word, indexed)), data)


class StubL1:
    """What the reader asks of an L1 client: logs, and transactions by hash."""

    def __init__(self, logs: list[Log], txs: dict[bytes, bytes]) -> None:
        self.logs, self.txs = logs, txs

    async def get_logs(self, from_block: int, to_block: int, **_: Any) -> list[Log]:
        return [x for x in self.logs if from_block <= x.block_number <= to_block]

    async def get_transaction(self, tx_hash: bytes) -> Transaction | None:
        data = self.txs.get(tx_hash)
        return None if data is None else Transaction(tx_hash, b"\x03" * 20, INBOX.address, 0, 0, data, 1, b"")


def test_each_input_is_read_into_its_record_in_l1_order() -> None:
    raw, sender, to = b"\x02 a signed tx", b"\x04" * 20, b"\x05" * 20
    posted, not_a_call, gone = keccak(b"posted"), keccak(b"not appendBatch"), keccak(b"reorged out")
    logs = [  # as a node may return them: the reader orders them
        log(7, 1, INBOX, "BatchAppended", [1], keccak(b"x") + ROOT + word(7), not_a_call),
        log(7, 0, PORTAL, "DepositQueued", [0, sender, to], word(5) + word(7) + keccak(b"source"), keccak(b"d")),
        log(5, 3, INBOX, "BatchAppended", [0], keccak(b"batch") + ROOT + word(5), posted),
        log(6, 0, INBOX, "ForcedTransaction", [0], encode(["bytes32", "bytes", "uint256"], [keccak(raw), raw, 6]),
            keccak(b"f")),
        log(8, 0, INBOX, "BatchAppended", [2], keccak(b"y") + ROOT + word(8), gone),
    ]
    txs = {posted: INBOX.encode_call("appendBatch", b"batch", ROOT), not_a_call: b"\xde\xad\xbe\xef"}
    reader = L1InputReader(StubL1(logs, txs), INBOX, PORTAL)  # type: ignore[arg-type]
    assert asyncio.run(reader.read(0, 10)) == [
        PostedBatch(0, 5, keccak(b"block 5"), posted, ROOT, b"batch"),
        QueuedForced(0, 6, raw),
        QueuedDeposit(0, 7, sender, Deposit(keccak(b"source"), to, 5)),
        PostedBatch(1, 7, keccak(b"block 7"), not_a_call, ROOT, b""),  # no batch data: derivation stops there
    ]  # and the batch whose transaction is gone is not there
    assert asyncio.run(reader.read(6, 6)) == [QueuedForced(0, 6, raw)]
