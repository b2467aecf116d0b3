"""Derivation: rebuild the L2 chain from L1 data alone, with the sequencer's own state transition.

Nothing here asks the sequencer anything. The inputs are what L1 holds: the batches in the
inbox (``appendBatch`` calldata), the forced-inclusion queue and the deposits, and the rules
are the ones ``services.sequencer._chain`` documents, applied here independently:

* L2 blocks come from batches, in block-number order. A block already derived (a batch posted
  twice, say after an outage) is skipped; a batch that does not continue the chain where it
  stands is ignored whole.
* Each block starts with the deposits from L1 blocks up to its L1 origin that are not minted
  yet (portal order), then the forced transactions from L1 blocks up to its origin that are
  not settled yet (queue order: one the rules refuse is skipped for good; only a full block
  defers the rest), then the batch's transactions, each skipped if the rules refuse it
  (garbage, a bad signature, a nonce gap, no funds) or if it was already included as a forced
  transaction.
* The header is computed, never copied: base fee from the parent, roots from the state.

What a challenger compares is the header hash of each block (it commits to every root).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from services.l1 import Contract, L1Client
from services.sequencer._basefee import next_base_fee
from services.sequencer._batcher import BatchBlock, BatchFormatError, decode_batch
from services.sequencer._block import BlockHeader, transactions_root
from services.sequencer._execution import BlockEnv, Deposit, State, apply_deposit, apply_transaction
from services.sequencer._genesis import Genesis
from services.sequencer._rules import DEFAULT_CHAIN_ID
from services.sequencer._tx import Reason, TxRejected, decode_transaction


@dataclass(frozen=True, slots=True)
class QueuedDeposit:
    index: int
    l1_block: int
    deposit: Deposit


@dataclass(frozen=True, slots=True)
class QueuedForced:
    index: int
    l1_block: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Skipped:
    """A transaction the rules refused: where it was and why."""

    block: int
    source: str  # "batch" or "forced"
    reason: str


@dataclass(frozen=True, slots=True)
class DerivedBlock:
    header: BlockHeader
    hash: bytes
    tx_hashes: tuple[bytes, ...]


@dataclass
class Deriver:
    """Feed it L1's contents in L1 order; it extends the derived L2 chain as far as they allow."""

    genesis: Genesis
    chain_id: int = DEFAULT_CHAIN_ID
    state: State = field(init=False)
    blocks: list[DerivedBlock] = field(init=False, default_factory=list)
    skipped: list[Skipped] = field(init=False, default_factory=list)
    _deposits: list[QueuedDeposit] = field(init=False, default_factory=list)
    _forced: list[QueuedForced] = field(init=False, default_factory=list)
    _next_deposit: int = field(init=False, default=0)
    _next_forced: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.state = self.genesis.state()
        header = self.genesis.header(self.state)
        self.blocks.append(DerivedBlock(header, header.hash(), ()))

    @property
    def head(self) -> DerivedBlock:
        return self.blocks[-1]

    def add_deposits(self, deposits: Iterable[QueuedDeposit]) -> None:
        for d in deposits:
            if d.index == len(self._deposits):  # the portal's order; a repeat is ignored
                self._deposits.append(d)

    def add_forced(self, forced: Iterable[QueuedForced]) -> None:
        for f in forced:
            if f.index == len(self._forced):
                self._forced.append(f)

    def add_batch(self, blocks: Sequence[BatchBlock]) -> int:
        """Derive the batch's blocks that extend the chain; returns how many did."""
        derived = 0
        for block in blocks:
            if block.number <= self.head.header.number:
                continue  # already derived: a duplicate batch
            if block.number != self.head.header.number + 1:
                break  # does not continue the chain: ignored
            self._derive(block)
            derived += 1
        return derived

    def _due(self, queue: Sequence[QueuedDeposit] | Sequence[QueuedForced], start: int, origin: int) -> int:
        blocks = [q.l1_block for q in queue[start:]]
        return start + bisect.bisect_right(blocks, origin)

    def _derive(self, block: BatchBlock) -> None:
        parent = self.head.header
        base_fee = next_base_fee(parent.base_fee, parent.gas_used, parent.gas_limit)
        env = BlockEnv(block.number, block.timestamp, base_fee, parent.gas_limit)
        state = self.state
        hashes: list[bytes] = []
        end = self._due(self._deposits, self._next_deposit, block.l1_origin_number)
        for due in self._deposits[self._next_deposit:end]:
            apply_deposit(state, due.deposit)
            hashes.append(due.deposit.hash())
        self._next_deposit = end
        gas = 0
        end = self._due(self._forced, self._next_forced, block.l1_origin_number)
        included: set[bytes] = set()
        position = self._next_forced
        for queued in self._forced[self._next_forced:end]:
            try:
                tx = decode_transaction(queued.raw, self.chain_id)
                gas += apply_transaction(state, tx, env, gas).gas_used
            except TxRejected as e:
                if e.reason == Reason.BLOCK_GAS_LIMIT_REACHED:
                    break  # it leads the next block
                self.skipped.append(Skipped(block.number, "forced", e.reason))
                position += 1
                continue
            hashes.append(tx.hash)
            included.add(tx.hash)
            position += 1
        self._next_forced = position
        for raw in block.transactions:
            try:
                tx = decode_transaction(raw, self.chain_id)
                if tx.hash in included:
                    continue
                gas += apply_transaction(state, tx, env, gas).gas_used
            except TxRejected as e:
                self.skipped.append(Skipped(block.number, "batch", e.reason))
                continue
            hashes.append(tx.hash)
        roots = state.commit()
        header = BlockHeader(
            number=block.number, parent_hash=self.head.hash, timestamp=block.timestamp, state_root=roots.state_root,
            transactions_root=transactions_root(hashes), message_root=roots.message_root, base_fee=base_fee,
            gas_used=gas, gas_limit=env.gas_limit, l1_origin_number=block.l1_origin_number,
            l1_origin_hash=block.l1_origin_hash,
        )
        self.blocks.append(DerivedBlock(header, header.hash(), tuple(hashes)))


async def read_l1(l1: L1Client, inbox: Contract, portal: Contract, deriver: Deriver, from_block: int,
                  to_block: int) -> None:
    """Feed ``deriver`` everything the inbox and the portal hold in L1 blocks [from, to], in L1 order."""
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
                deriver.add_deposits([QueuedDeposit(int(a["index"]), int(a["l1Block"]),
                                                    Deposit(bytes(a["sourceHash"]), bytes(a["to"]), int(a["mint"])))])
        elif log.topics[0] == forced:
            event = inbox.decode_log(log)
            if event is not None:
                a = event.args
                deriver.add_forced([QueuedForced(int(a["index"]), int(a["l1Block"]), bytes(a["data"]))])
        else:
            tx = await l1.get_transaction(log.tx_hash)
            if tx is None:
                continue
            try:
                blocks = decode_batch(bytes(inbox.decode_input("appendBatch", tx.input)[0]))
            except (BatchFormatError, ValueError):
                continue  # garbage in the inbox derives nothing
            deriver.add_batch(blocks)
