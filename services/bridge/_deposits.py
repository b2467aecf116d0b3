"""Deposits: DepositPortal's ``DepositQueued`` logs followed on L1, reorg-aware, to their credit on L2.

A deposit is SEEN when its log is in the latest L1 chain, CONFIRMED once ``confirmation_depth``
blocks deep (the depth the sequencer mints from: nothing irreversible happens before it), and
CREDITED when the sequencer has a receipt for its L2 transaction (the deposit hash) in a block.
A deposit whose L1 block leaves the canonical chain before it is credited is REORGED: it never
happened (if the same deposit lands in another block, that is another deposit hash: its source
hash commits to the L1 block number).

The logs come from services.l1's LogFollower (the one reorg-aware reader every service uses),
shared with the withdrawal events of the same portal (``_bridge``).
"""

from __future__ import annotations

import dataclasses
import logging

from opentelemetry import trace

from protocol import Deposit
from services.l1 import Contract, FollowerUpdate, Heads, Log

from ._clients import SequencerClient
from ._records import DepositRecord, DepositStatus
from ._spans import record_change
from ._store import BridgeStore

#: Statuses a deposit can still leave.
OPEN = (DepositStatus.SEEN, DepositStatus.CONFIRMED)


class Deposits:
    """Applies the portal's deposit logs to the store, and credits confirmed deposits."""

    def __init__(self, portal: Contract, store: BridgeStore, sequencer: SequencerClient | None, depth: int,
                 start_block: int, tracer: trace.Tracer, logger: logging.Logger) -> None:
        self._portal = portal
        self._topic = portal.topic("DepositQueued")
        self._store = store
        self._sequencer = sequencer
        self._depth = depth
        self._start = start_block
        self._tracer = tracer
        self._log = logger
        #: Open deposits stored before this run, not delivered again yet: the follower restarts at the
        #: last finalized block, so one it passes without delivering was reorged out while we were down.
        self._unconfirmed_since_start = {d.deposit_hash for d in store.deposits_in(OPEN) if d.l1_block >= start_block}

    def apply(self, update: FollowerUpdate) -> None:
        """One follower update: removed logs undone, new ones SEEN, deep enough ones CONFIRMED."""
        changes: dict[bytes, DepositRecord] = {}

        def current(h: bytes) -> DepositRecord | None:
            return changes.get(h) or self._store.deposit(h)

        for log in self._mine(update.removed):
            seen = self._record_of(log)
            if seen is None:
                continue
            old = current(seen.deposit_hash)
            if old is not None and old.status in OPEN:
                changes[old.deposit_hash] = dataclasses.replace(old, status=DepositStatus.REORGED)
        for log in self._mine(update.added):
            seen = self._record_of(log)
            if seen is None:
                continue
            self._unconfirmed_since_start.discard(seen.deposit_hash)
            old = current(seen.deposit_hash)
            if old is None or old.status == DepositStatus.REORGED:  # a block reorged out, then back in
                changes[seen.deposit_hash] = seen
        for log in self._mine(update.safe):
            seen = self._record_of(log)
            if seen is None:
                continue
            old = current(seen.deposit_hash) or seen
            if old.status in (DepositStatus.SEEN, DepositStatus.REORGED):
                changes[old.deposit_hash] = dataclasses.replace(old, status=DepositStatus.CONFIRMED)
        changes.update(self._gone_while_down(update.heads, changes))
        self._write(list(changes.values()))

    def _gone_while_down(self, heads: Heads, changes: dict[bytes, DepositRecord]) -> dict[bytes, DepositRecord]:
        gone: dict[bytes, DepositRecord] = {}
        for h in list(self._unconfirmed_since_start):
            old = changes.get(h) or self._store.deposit(h)
            if old is None or old.status not in OPEN:
                self._unconfirmed_since_start.discard(h)
            elif old.l1_block <= heads.unsafe:
                self._unconfirmed_since_start.discard(h)
                gone[h] = dataclasses.replace(old, status=DepositStatus.REORGED)
        return gone

    async def credit_round(self) -> int:
        """Ask the sequencer about every CONFIRMED deposit; those in a block become CREDITED. How
        many are still waiting for it."""
        if self._sequencer is None:
            return 0
        waiting = self._store.deposits_in((DepositStatus.CONFIRMED,))
        credited = []
        for d in waiting:
            block = await self._sequencer.credited_in(d.deposit_hash)
            if block is not None:
                credited.append(dataclasses.replace(d, status=DepositStatus.CREDITED, l2_block=block))
        self._write(credited)
        return len(waiting) - len(credited)

    def _write(self, records: list[DepositRecord]) -> None:
        for record in self._store.put(records):
            assert isinstance(record, DepositRecord)
            record_change(self._tracer, record)
            self._log.info("deposit %s", record.status.name, extra={
                "deposit_hash": "0x" + record.deposit_hash.hex(), "l1_block": record.l1_block,
                "l2_block": record.l2_block})

    def _mine(self, logs: tuple[Log, ...]) -> list[Log]:
        return [log for log in logs if log.topics and log.topics[0] == self._topic]

    def _record_of(self, log: Log) -> DepositRecord | None:
        event = self._portal.decode_log(log)
        if event is None:
            return None
        a = event.args
        deposit = Deposit(bytes(a["sourceHash"]), bytes(a["to"]), int(a["mint"]))
        l1_block = int(a["l1Block"])
        return DepositRecord(
            deposit_hash=deposit.hash(), source_hash=deposit.source_hash, portal_index=int(a["index"]),
            sender=bytes(a["from"]), to=deposit.to, value=deposit.mint, status=DepositStatus.SEEN, l1_block=l1_block,
            l1_block_hash=log.block_hash, l1_tx_hash=log.tx_hash, confirmed_at_l1_block=l1_block + self._depth,
            traceparent=self._store.tracked(log.tx_hash))
