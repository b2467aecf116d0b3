"""Derivation: rebuild the L2 chain from L1 data alone, with the sequencer's own state transition.

Nothing here asks the sequencer anything. ``read_l1`` collects what the inbox and the portal
hold (batches with their input roots, forced transactions, deposits) into ``L1Inputs``;
``Deriver`` runs the derivation machine (see _machine, where every rule is written down) over
them as far as they go. What a challenger compares is the snapshot at each sealed block: its
output root commits to the state root, the message-passer root and the block hash.
"""

from __future__ import annotations

from concurrent.futures import Executor

from protocol import BatchFormatError, Deposit, Genesis, Leaf, State, batch_leaves, decode_batch
from services.l1 import Contract, L1Client

from ._machine import (
    DEFAULT_RULES,
    DerivedBlock,
    L1Inputs,
    Machine,
    QueuedDeposit,
    QueuedForced,
    Rules,
    Skipped,
    genesis_snapshot,
)


class Deriver:
    """The derived chain: feed ``inputs`` (or use ``read_l1``), then ``advance``."""

    def __init__(self, genesis: Genesis, rules: Rules = DEFAULT_RULES, executor: Executor | None = None) -> None:
        self.genesis = genesis
        self.inputs = L1Inputs()
        state = genesis.state()
        anchor = genesis_snapshot(genesis, state)
        header = genesis.header(state)
        self.machine = Machine(anchor, state, self.inputs, rules, executor=executor)
        #: Every derived block from genesis on; ``blocks[n]`` is block n.
        self.blocks: list[DerivedBlock] = [DerivedBlock(header, header.hash(), (), anchor, 0)]

    @property
    def head(self) -> DerivedBlock:
        return self.blocks[-1]

    @property
    def skipped(self) -> list[Skipped]:
        return self.machine.skipped

    @property
    def state(self) -> State:
        return self.machine.state

    def advance(self) -> int:
        """Derive as far as L1's inputs allow; how many blocks that added."""
        before = len(self.machine.sealed)
        self.machine.run()
        new = self.machine.sealed[before:]
        self.blocks.extend(new)
        return len(new)


def leaves_of(data: bytes) -> tuple[Leaf, ...] | None:
    """A batch's leaves from its calldata; None when the data does not decode."""
    try:
        blocks = decode_batch(data)
    except BatchFormatError:
        return None
    return tuple(batch_leaves([(b.number, b.timestamp, b.l1_origin_number, b.l1_origin_hash, b.transactions)
                               for b in blocks]))


async def read_l1(l1: L1Client, inbox: Contract, portal: Contract, inputs: L1Inputs, from_block: int,
                  to_block: int) -> None:
    """Add to ``inputs`` what the inbox and the portal hold in L1 blocks [from, to], in L1 order."""
    assert inbox.address is not None and portal.address is not None
    batch, forced, deposit = inbox.topic("BatchAppended"), inbox.topic("ForcedTransaction"), \
        portal.topic("DepositQueued")
    logs = await l1.get_logs(from_block, to_block, address=[inbox.address, portal.address],
                             topics=[[batch, forced, deposit]])
    for log in sorted(logs, key=lambda x: (x.block_number, x.log_index)):
        if log.topics[0] == deposit:
            event = portal.decode_log(log)
            if event is not None:
                a = event.args
                inputs.add_deposit(QueuedDeposit(int(a["index"]), int(a["l1Block"]), bytes(a["from"]),
                                                 Deposit(bytes(a["sourceHash"]), bytes(a["to"]), int(a["mint"]))))
        elif log.topics[0] == forced:
            event = inbox.decode_log(log)
            if event is not None:
                a = event.args
                inputs.add_forced(QueuedForced(int(a["index"]), int(a["l1Block"]), bytes(a["data"])))
        else:
            event = inbox.decode_log(log)
            tx = await l1.get_transaction(log.tx_hash)
            if event is None or tx is None:
                continue
            a = event.args
            try:
                data = bytes(inbox.decode_input("appendBatch", tx.input)[0])
            except ValueError:
                data = b""
            inputs.add_batch(int(a["index"]), int(a["l1Block"]), bytes(a["inputRoot"]), leaves_of(data))
