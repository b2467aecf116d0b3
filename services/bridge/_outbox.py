"""The relayer's outbox: each action's L1 transaction exactly once, across kill -9 at any point.

An action is (withdrawal hash, "prove" | "finalize"). The outbox signs its transaction, stores
the signed bytes durably (its own tables in the bridge's SQLite file, committed with
synchronous=FULL), and only THEN broadcasts them. Whatever dies when, what L1 may have is a
transaction the outbox has on disk, so it can always finish the job with the same bytes:

- killed before the store: nothing signed is anywhere; the next call starts afresh.
- killed after the store, before or during the broadcast: ``resume`` sends the stored bytes.
- killed after the broadcast, before or after the receipt: ``resume`` finds the receipt, or
  sends the same bytes again, which L1 takes for what they are (the same hash: "already
  known", or mined once); never a second transaction.

At most one intent is open per action (a partial unique index says so in the schema too). A
mined transaction closes it: CONFIRMED, or REVERTED, which is recorded and not resent blindly:
only the caller may start another attempt, after a fresh simulation (``eth_estimateGas``) passes.

**Versions.** A transaction not mined within ``replace_after_s`` is re-signed at the same nonce
with bumped fees; the new version is stored before it is sent, and every version is watched
(any one may be the one mined: they share the nonce, so at most one is).

**No nonce gaps, the argument.** The relayer's key is used by one outbox (one process) only.
Invariant: every nonce the outbox has ever stored is either consumed on L1 or belongs to an
intent that is still open, and an open intent is re-sent until its nonce is consumed.

1. A new intent takes nonce ``max(L1 pending count, highest stored nonce + 1)``, under the
   outbox's lock and in the same commit as its signed bytes. The stored part covers a crash
   between store and broadcast (L1's count does not know the nonce yet, the table does); L1's
   part covers a key that sent elsewhere before (or a fresh database). Every nonce below it is
   consumed or open: no hole is created.
2. An open intent is never abandoned with its nonce unconsumed. When the action turns out to be
   done by someone else (the portal's state says so) the intent is not simply forgotten (a later
   nonce would wait behind the hole forever): its nonce is filled by a cancel, a 0-value transfer
   to itself at the same nonce with bumped fees (replacing the original if a node holds it),
   stored as one more version first. The intent is DROPPED once a version is mined.
3. ``resume`` (and every check) re-sends the newest stored version of an open intent that L1
   neither mined nor holds (lost from a node's pool, a restarted L1, a crash before the send).
   An answer that leaves a nonce unused (insufficient funds, fee cap) leaves the intent open:
   it stalls the nonces behind it until it goes through, which is a stall, not a hole.
4. If L1's latest count passes an open intent's nonce and none of its versions has a receipt,
   another transaction took the nonce (the key was used elsewhere: a misconfiguration); the
   intent is closed DROPPED and logged, so it cannot hold later ones hostage. A receipt can also
   vanish in an L1 reorg; nodes put such transactions back in their pool, and the bridge follows
   the portal's events, not the outbox, for what is proven and finalized.

Fault points (``checkpoint``): ``sign`` (before signing and storing), ``stored`` (stored, not
sent), ``broadcast`` (sent, no receipt read), ``receipt`` (receipt read, not recorded) and
``bumped`` (a new version stored, not sent). The kill -9 tests (tests/bridge/relay_driver.py)
stop the process at each.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from services.l1 import (
    ALREADY_KNOWN,
    NONCE_TOO_LOW,
    FeeCapExceeded,
    Fees,
    L1Client,
    LocalSigner,
    Receipt,
    RpcError,
    SenderConfig,
    SignedTransaction,
    UnsignedTransaction,
    bumped,
    current_fees,
)
from services.runtime import Storage

#: A node that holds a newer version of the nonce refuses an older, cheaper one: sent already.
_UNDERPRICED: Final = ("underpriced", "replacement transaction")

#: What a cancel costs: a plain transfer.
_CANCEL_GAS: Final = 21_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS relay_intents (
    withdrawal_hash BLOB NOT NULL,
    action TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    sender BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    target BLOB NOT NULL,
    data BLOB NOT NULL,
    value TEXT NOT NULL,
    gas INTEGER NOT NULL,
    tag TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    mined_tx_hash BLOB NOT NULL DEFAULT x'',
    l1_block INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (withdrawal_hash, action, attempt),
    UNIQUE (sender, nonce)
);
CREATE UNIQUE INDEX IF NOT EXISTS relay_intents_open ON relay_intents (withdrawal_hash, action)
    WHERE state IN ('open', 'cancelling');
CREATE TABLE IF NOT EXISTS relay_txs (
    sender BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    version INTEGER NOT NULL,
    raw BLOB NOT NULL,
    tx_hash BLOB NOT NULL UNIQUE,
    max_fee INTEGER NOT NULL,
    tip INTEGER NOT NULL,
    cancel INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (sender, nonce, version)
);
"""

#: (withdrawal hash, action): what is done exactly once.
Key = tuple[bytes, str]


class IntentState(StrEnum):
    OPEN = "open"  # signed and stored; sent, or to be sent
    CANCELLING = "cancelling"  # done by someone else: its nonce is being filled by a cancel
    CONFIRMED = "confirmed"  # mined and succeeded
    REVERTED = "reverted"  # mined and reverted
    DROPPED = "dropped"  # its nonce went to a cancel (or to someone else's transaction)


OPEN_STATES: Final = (IntentState.OPEN, IntentState.CANCELLING)


@dataclass(frozen=True, slots=True)
class TxVersion:
    """One signed transaction of an intent's nonce."""

    raw: bytes
    tx_hash: bytes
    fees: Fees
    cancel: bool
    created: float


@dataclass(frozen=True, slots=True)
class Intent:
    """One attempt at one action: its nonce, its call and every version signed for it."""

    withdrawal_hash: bytes
    action: str
    attempt: int
    sender: bytes
    nonce: int
    to: bytes
    data: bytes
    value: int
    gas: int
    tag: str  # what the attempt is about (prove: the output; finalize: the prover)
    state: IntentState
    created: float
    versions: tuple[TxVersion, ...]  # oldest first
    mined_tx_hash: bytes = b""
    l1_block: int = 0

    @property
    def key(self) -> Key:
        return (self.withdrawal_hash, self.action)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def tx_hash(self) -> bytes:
        """The mined version's hash once mined, else the newest version's."""
        return self.mined_tx_hash or self.versions[-1].tx_hash


@dataclass(frozen=True, slots=True)
class OutboxStatistics:
    """Intents by outcome (from the table: lifetime totals), and re-sends since this start."""

    sent: int
    confirmed: int
    reverted: int
    dropped: int
    rebroadcast: int
    outstanding: int


#: Whether an intent's action is done on L1 by anyone (the portal's state), its transaction aside.
DoneCheck = Callable[[Intent], Awaitable[bool]]


def _no_checkpoint(point: str) -> None:
    del point


class Outbox:
    """The exactly-once sender of one key, backed by ``db_path`` (tables ``relay_*``)."""

    def __init__(self, l1: L1Client, signer: LocalSigner, db_path: Path, done: DoneCheck, *,
                 config: SenderConfig | None = None, logger: logging.Logger | None = None,
                 checkpoint: Callable[[str], None] | None = None) -> None:
        self.l1, self.signer, self.done = l1, signer, done
        self.config: Final = config or SenderConfig()
        self.log = logger or logging.getLogger("l2node.bridge.relayer")
        self.checkpoint = checkpoint or _no_checkpoint
        self.rebroadcasts = 0
        self._chain_id: int | None = None
        self._lock = asyncio.Lock()  # one writer of nonces and intents at a time
        self._storage = Storage(db_path)  # its own connection to the bridge's file (WAL: readers never wait)
        self._db = self._storage.connection
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._storage.close()

    @property
    def address(self) -> bytes:
        return self.signer.address

    # --- reading ---------------------------------------------------------------------------------

    def latest(self, key: Key) -> Intent | None:
        """The action's newest attempt, open or closed."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM relay_intents WHERE withdrawal_hash = ? AND action = ? "
                               "ORDER BY attempt DESC LIMIT 1", key).fetchone()
        return None if row is None else self._intent(row)

    def attempts(self, key: Key) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM relay_intents WHERE withdrawal_hash = ? AND action = ?",
                                    key).fetchone()
        return int(count)

    def open_intents(self) -> list[Intent]:
        """Open intents of this key, by nonce."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM relay_intents WHERE sender = ? AND state IN (?, ?) "
                                "ORDER BY nonce", (self.address, *OPEN_STATES)).fetchall()
        return [self._intent(row) for row in rows]

    def statistics(self) -> OutboxStatistics:
        counts = dict(self._db.execute("SELECT state, COUNT(*) FROM relay_intents WHERE sender = ? GROUP BY state",
                                       (self.address,)).fetchall())
        return OutboxStatistics(
            sent=sum(counts.values()), confirmed=counts.get(IntentState.CONFIRMED, 0),
            reverted=counts.get(IntentState.REVERTED, 0), dropped=counts.get(IntentState.DROPPED, 0),
            rebroadcast=self.rebroadcasts,
            outstanding=counts.get(IntentState.OPEN, 0) + counts.get(IntentState.CANCELLING, 0))

    # --- the work --------------------------------------------------------------------------------

    async def resume(self) -> list[Intent]:
        """After a start: settle every open intent (receipt → closed; done by anyone → cancelled;
        else the same bytes re-sent). The intents, as they are now. L1 errors propagate (a
        caller waiting out an outage calls again: nothing is lost meanwhile)."""
        async with self._lock:
            return [await self._check(intent, ask_done=True) for intent in self.open_intents()]

    async def submit(self, key: Key, to: bytes, data: bytes, *, value: int = 0, tag: str = "",
                     again: bool = False) -> Intent:
        """The action's latest intent if there is one (open or closed: asking again sends
        nothing), else a new one: simulated (a revert raises RpcError and stores nothing), signed,
        stored, then sent. ``again``: a new attempt if the latest is closed (the caller's decision
        after looking at L1: a revert, a proof voided by its output's invalidation). A send that
        fails for want of L1 leaves it stored: :meth:`check` or :meth:`resume` sends it later."""
        async with self._lock:
            current = self.latest(key)
            if current is not None and (current.is_open or not again):
                return current
            self.checkpoint("sign")
            estimate = await self.l1.estimate_gas(to, data, sender=self.address, value=value)
            gas = estimate * (100 + self.config.gas_margin_percent) // 100
            fees = await current_fees(self.l1, self.config)
            nonce = max(await self.l1.get_transaction_count(self.address, "pending"), self._next_stored_nonce())
            intent = Intent(key[0], key[1], current.attempt + 1 if current else 0, self.address, nonce, to, data,
                            value, gas, tag, IntentState.OPEN, time.time(), ())
            version = await self._sign(intent, fees, cancel=False)
            intent = replace(intent, versions=(version,))
            with self._storage.transaction() as db:
                db.execute(f"INSERT INTO relay_intents ({_COLUMNS}) VALUES ({', '.join('?' * _NCOLUMNS)})",
                           self._row(intent))
                self._insert_version(db, intent, 0, version)
            self.checkpoint("stored")
            self.log.info("relay %s signed", key[1], extra={
                "withdrawal_hash": "0x" + key[0].hex(), "nonce": nonce, "l1_tx_hash": "0x" + version.tx_hash.hex()})
            await self._send(intent, version)
            self.checkpoint("broadcast")
            return intent

    async def check(self, intent: Intent) -> Intent:
        """One look at an intent: recorded if mined, re-sent if L1 lost it, fee-bumped (or
        cancelled, if done by someone else meanwhile) if stuck. The intent as it is now."""
        async with self._lock:
            fresh = self.latest(intent.key)
            if fresh is None or fresh.attempt != intent.attempt or not fresh.is_open:
                return fresh or intent
            return await self._check(fresh, ask_done=False)

    async def sweep(self) -> list[Intent]:
        """:meth:`check` every open intent."""
        return [await self.check(intent) for intent in self.open_intents()]

    # --- internals -------------------------------------------------------------------------------

    async def _check(self, intent: Intent, *, ask_done: bool) -> Intent:
        receipt = await self._first_receipt(intent.versions)
        if receipt is None and await self.l1.get_transaction_count(self.address, "latest") > intent.nonce:
            # Consumed: by one of ours mined just now, or by a transaction this outbox never signed.
            receipt = await self._first_receipt(intent.versions)
            if receipt is None:
                self.log.error("the relayer's nonce was used by a transaction it did not sign: is its key used "
                               "elsewhere?", extra={"nonce": intent.nonce, "withdrawal_hash": _hex(intent.key[0])})
                return self._close(intent, IntentState.DROPPED, None)
        if receipt is not None:
            self.checkpoint("receipt")
            return self._record(intent, receipt)
        if intent.state is IntentState.OPEN and ask_done and await self.done(intent):
            return await self._cancel(intent)
        newest = intent.versions[-1]
        # Stuck: bumped, but not at a resume, which sends the stored bytes first as they are.
        if not ask_done and time.time() - newest.created >= self.config.replace_after_s:
            if intent.state is IntentState.OPEN and await self.done(intent):
                return await self._cancel(intent)
            return await self._bump(intent)
        if await self.l1.get_transaction(newest.tx_hash) is None:  # never sent, or L1 lost it
            self.rebroadcasts += 1
            self.log.info("relay %s re-sent", intent.action, extra={
                "withdrawal_hash": _hex(intent.key[0]), "nonce": intent.nonce, "l1_tx_hash": _hex(newest.tx_hash)})
            await self._send(intent, newest)
        return intent

    def _record(self, intent: Intent, receipt: Receipt) -> Intent:
        cancel = next(v.cancel for v in intent.versions if v.tx_hash == receipt.tx_hash)
        state = (IntentState.DROPPED if cancel else IntentState.CONFIRMED if receipt.success
                 else IntentState.REVERTED)
        if state is IntentState.REVERTED:
            self.log.warning("relay %s reverted on L1", intent.action, extra={
                "withdrawal_hash": _hex(intent.key[0]), "l1_tx_hash": _hex(receipt.tx_hash)})
        return self._close(intent, state, receipt)

    def _close(self, intent: Intent, state: IntentState, receipt: Receipt | None) -> Intent:
        mined = receipt.tx_hash if receipt else b""
        block = receipt.block_number if receipt else 0
        with self._storage.transaction() as db:
            db.execute("UPDATE relay_intents SET state = ?, mined_tx_hash = ?, l1_block = ? WHERE withdrawal_hash = ? "
                       "AND action = ? AND attempt = ?", (state, mined, block, *intent.key, intent.attempt))
        return replace(intent, state=state, mined_tx_hash=mined, l1_block=block)

    async def _cancel(self, intent: Intent) -> Intent:
        """Done by someone else: fill the nonce with a 0-value transfer to self (argument, 2.)."""
        self.log.info("relay %s done by someone else; cancelling nonce %d", intent.action, intent.nonce,
                      extra={"withdrawal_hash": _hex(intent.key[0])})
        return await self._new_version(replace(intent, state=IntentState.CANCELLING), cancel=True)

    async def _bump(self, intent: Intent) -> Intent:
        try:
            return await self._new_version(intent, cancel=intent.state is IntentState.CANCELLING)
        except (FeeCapExceeded, RpcError) as exc:  # over the cap, out of funds: wait, try again later
            self.log.warning("relay transaction stuck and not replaced: %s", exc, extra={"nonce": intent.nonce})
            return intent

    async def _new_version(self, intent: Intent, *, cancel: bool) -> Intent:
        """Re-sign the nonce with fees bumped over the newest version's; stored, then sent."""
        fees = bumped(intent.versions[-1].fees, await current_fees(self.l1, self.config), self.config)
        version = await self._sign(intent, fees, cancel=cancel)
        with self._storage.transaction() as db:
            db.execute("UPDATE relay_intents SET state = ? WHERE withdrawal_hash = ? AND action = ? AND attempt = ?",
                       (intent.state, *intent.key, intent.attempt))
            self._insert_version(db, intent, len(intent.versions), version)
        intent = replace(intent, versions=(*intent.versions, version))
        self.checkpoint("bumped")
        await self._send(intent, version)
        return intent

    async def _sign(self, intent: Intent, fees: Fees, *, cancel: bool) -> TxVersion:
        if self._chain_id is None:
            self._chain_id = await self.l1.chain_id()
        to, value, data, gas = ((self.address, 0, b"", _CANCEL_GAS) if cancel
                                else (intent.to, intent.value, intent.data, intent.gas))
        signed: SignedTransaction = self.signer.sign(UnsignedTransaction(
            chain_id=self._chain_id, nonce=intent.nonce, max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            max_fee_per_gas=fees.max_fee_per_gas, gas_limit=gas, to=to, value=value, data=data))
        return TxVersion(signed.raw, signed.hash, fees, cancel, time.time())

    async def _send(self, intent: Intent, version: TxVersion) -> None:
        """eth_sendRawTransaction; an answer that means L1 has it (or had it) is success."""
        try:
            await self.l1.send_raw_transaction(version.raw)
        except RpcError as exc:
            if exc.mentions(*ALREADY_KNOWN, *NONCE_TOO_LOW, *_UNDERPRICED):
                return  # the same bytes, the nonce used (the next check says by what), or a newer version held
            self.log.warning("relay transaction not accepted: %s", exc.message, extra={
                "nonce": intent.nonce, "l1_tx_hash": _hex(version.tx_hash)})  # funds, fees: later checks re-send

    async def _first_receipt(self, versions: Iterable[TxVersion]) -> Receipt | None:
        for version in reversed(tuple(versions)):  # the newest is the likeliest
            receipt = await self.l1.get_receipt(version.tx_hash)
            if receipt is not None:
                return receipt
        return None

    def _next_stored_nonce(self) -> int:
        (highest,) = self._db.execute("SELECT MAX(nonce) FROM relay_intents WHERE sender = ?",
                                      (self.address,)).fetchone()
        return 0 if highest is None else int(highest) + 1

    @staticmethod
    def _insert_version(db: sqlite3.Connection, intent: Intent, number: int, version: TxVersion) -> None:
        db.execute("INSERT INTO relay_txs (sender, nonce, version, raw, tx_hash, max_fee, tip, cancel, created) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (intent.sender, intent.nonce, number, version.raw, version.tx_hash, version.fees.max_fee_per_gas,
                    version.fees.max_priority_fee_per_gas, int(version.cancel), version.created))

    @staticmethod
    def _row(intent: Intent) -> tuple[object, ...]:
        return (intent.withdrawal_hash, intent.action, intent.attempt, intent.sender, intent.nonce, intent.to,
                intent.data, str(intent.value), intent.gas, intent.tag, str(intent.state), intent.created,
                intent.mined_tx_hash, intent.l1_block)

    def _intent(self, row: Any) -> Intent:
        (withdrawal_hash, action, attempt, sender, nonce, to, data, value, gas, tag, state, created, mined,
         block) = row
        versions = self._db.execute(
            "SELECT raw, tx_hash, max_fee, tip, cancel, created FROM relay_txs WHERE sender = ? AND nonce = ? "
            "ORDER BY version", (sender, nonce)).fetchall()
        return Intent(bytes(withdrawal_hash), action, attempt, bytes(sender), nonce, bytes(to), bytes(data), int(value),
                      gas, tag, IntentState(state), created,
                      tuple(TxVersion(bytes(raw), bytes(tx_hash), Fees(fee, tip), bool(cancel), at)
                            for raw, tx_hash, fee, tip, cancel, at in versions),
                      bytes(mined), block)


_COLUMNS: Final = ("withdrawal_hash, action, attempt, sender, nonce, target, data, value, gas, tag, state, created, "
                   "mined_tx_hash, l1_block")
_NCOLUMNS: Final = _COLUMNS.count(",") + 1


def _hex(data: bytes) -> str:
    return "0x" + data.hex()
