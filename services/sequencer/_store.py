"""The sequencer's durable state: what it acknowledged, what it sealed, and the account snapshot.

Everything is written by one thread (a single-worker executor) through one connection, in
grouped transactions: a commit costs an fsync (~0.1-4 ms here), so acknowledgements wait for
the next group commit instead of paying one each. Reads that must not wait behind a commit
(receipts, blocks) use a second connection; WAL lets it read while the writer writes.

The account snapshot of the last sealed block is its rows (``accounts``, each with its leaf hash)
and its Merkle tree's inner nodes (``account_nodes``), written in the block's transaction: a restart
reads the tree's top node and the head, nothing per account (protocol.StoredAccountTree reads the
rest on demand; this store is its AccountSource). Never a replay of the chain. Acknowledged
transactions not yet sealed are not here but in the pending log (``_pending_log``); a transaction
gets its row here when it is sealed or dropped.

Sealed transactions are written for the least work per transaction, since the writer thread is
on the sequencer's critical path: per block one row holding the raw transactions, their hashes and
their senders (``block_txs``, sequential pages), and where each hash is (block, position) in
:class:`TxIndex` (``_tx_index``: recent blocks' in memory, older ones in runs sorted by hash, written
once every 32,768 transactions; no random-keyed B-tree). Nothing per transaction is ever
rewritten: a sealed transaction's SAFE or FINALIZED is its block's batch's status (``batches``),
and its gas used and price follow from its raw bytes and the block's base fee. Dropped
transactions, fewer, keep a whole row (``dropped``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import accumulate, chain, groupby, pairwise
from operator import itemgetter
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

from protocol import (
    MESSAGE_PASSER,
    Account,
    Deposit,
    QueuedDeposit,
    QueuedForced,
    Reason,
    Transaction,
    WithdrawalMessage,
    gas_and_price,
    node_key,
    recipient,
    sealed_transaction,
)

from ._tx_index import LEGACY_SCHEMA, TxIndex

T = TypeVar("T")


class ReceiptStatus(IntEnum):
    """A transaction's status; the numbers are l2node.sequencer.v1.ReceiptStatus's, and stored as a
    batch's status (SEALED = on L1, SAFE, FINALIZED), which its blocks' transactions take."""

    PENDING = 1
    SEALED = 2
    SAFE = 3
    FINALIZED = 4
    DROPPED = 5


class ForcedState(IntEnum):
    """The fate of a forced transaction (the forced table's state column)."""

    WAITING = 0
    INCLUDED = 1
    SKIPPED = 2


# The members by their short names, as the SQL and the callers spell them.
PENDING: Final = ReceiptStatus.PENDING
SEALED: Final = ReceiptStatus.SEALED
SAFE: Final = ReceiptStatus.SAFE
FINALIZED: Final = ReceiptStatus.FINALIZED
DROPPED: Final = ReceiptStatus.DROPPED
FORCED_WAITING: Final = ForcedState.WAITING
FORCED_INCLUDED: Final = ForcedState.INCLUDED
FORCED_SKIPPED: Final = ForcedState.SKIPPED

#: WAL pages between automatic checkpoints (SQLite's default: 1,000).
WAL_CHECKPOINT_PAGES: Final = 10_000

#: The accounts table (also what _migrate_accounts rebuilds an older one into).
_ACCOUNTS = """accounts (
    -- Creation order = the account tree's leaf order; the rowid, so a leaf read by slot (a path's
    -- siblings) is one B-tree seek, and rows are stored in slot order (a leaf's siblings share a page).
    slot INTEGER PRIMARY KEY,
    address BLOB NOT NULL UNIQUE,
    nonce INTEGER NOT NULL,
    balance TEXT NOT NULL,             -- decimal wei: balances exceed SQLite's 64-bit integers
    -- Its account tree leaf (protocol.account_leaf_hash; node_key(0, slot) of the tree): kept in the
    -- row a block writes anyway, not as a row of account_nodes of its own (~3/4 of a dense block's
    -- node rows). NULL only in a database from before the tree was stored (rebuilt at start).
    leaf BLOB
)"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    header TEXT NOT NULL               -- canonical JSON of the header fields
);
-- Where each sealed transaction is: _tx_index (tx_runs, tx_run_rows), from these rows' hashes.
CREATE TABLE IF NOT EXISTS block_txs (  -- one row per block: its signed transactions, in order
    number INTEGER PRIMARY KEY,
    raws BLOB NOT NULL,                -- _encode_raws: O(1) access by position
    hashes BLOB NOT NULL,              -- their 32-byte hashes, concatenated
    senders BLOB NOT NULL              -- their 20-byte senders, concatenated (receipts: no recovery)
);
-- WITHOUT ROWID as well: one B-tree to insert into. Rows are mostly a transfer's ~200 bytes; a rare
-- large one spills to overflow pages.
CREATE TABLE IF NOT EXISTS dropped (
    hash BLOB PRIMARY KEY,
    raw BLOB NOT NULL,
    sender BLOB NOT NULL,              -- empty if the raw transaction no longer decodes
    nonce INTEGER NOT NULL,
    seq INTEGER NOT NULL,              -- the pending log entry dropped (see SequencerStore.max_seq)
    reason TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS """ + _ACCOUNTS + """;
-- The account tree's inner nodes (protocol.StoredAccountTree; its leaves are the accounts' rows): a
-- restart reads the top one, not every account. Key: protocol.node_key(height >= 1, index); empty
-- subtrees are not stored.
CREATE TABLE IF NOT EXISTS account_nodes (key INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS batches (    -- batches seen on L1 (the inbox follower's record)
    l1_tx_hash BLOB PRIMARY KEY,
    inbox_index INTEGER NOT NULL,
    first_block INTEGER NOT NULL,
    last_block INTEGER NOT NULL,
    l1_block INTEGER NOT NULL,
    l1_block_hash BLOB NOT NULL,
    status INTEGER NOT NULL            -- SEALED (= on L1, unsafe), SAFE or FINALIZED
);
CREATE INDEX IF NOT EXISTS batches_by_block ON batches (first_block, last_block);
-- Batches whose blocks the sequencer dropped to follow derivation (_follow): never recorded again.
CREATE TABLE IF NOT EXISTS stale_batches (l1_tx_hash BLOB PRIMARY KEY) WITHOUT ROWID;
-- Blob batches the poster sent (before it sent them), by keccak256 of their versioned hashes (the
-- inbox's dataHash): a restart rebuilds a pooled one's blobs from these blocks (the pool has none).
CREATE TABLE IF NOT EXISTS blob_posts (
    data_hash BLOB PRIMARY KEY,
    first_block INTEGER NOT NULL,
    last_block INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS forced (     -- the inbox's forced-inclusion queue, as seen at safe depth
    inbox_index INTEGER PRIMARY KEY,
    raw BLOB NOT NULL,
    l1_block INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,  -- 0 waiting, 1 included, 2 skipped by rule
    block_number INTEGER,
    note TEXT
);
CREATE INDEX IF NOT EXISTS forced_by_block ON forced (block_number) WHERE block_number IS NOT NULL;
CREATE TABLE IF NOT EXISTS deposits (   -- deposits from the L1 portal, as seen at safe depth
    portal_index INTEGER PRIMARY KEY,
    source_hash BLOB NOT NULL UNIQUE,
    tx_hash BLOB NOT NULL UNIQUE,      -- its L2 transaction hash (protocol._execution.Deposit.hash)
    recipient BLOB NOT NULL,
    mint TEXT NOT NULL,                -- decimal wei
    l1_block INTEGER NOT NULL,
    block_number INTEGER               -- the L2 block that minted it; NULL while due
);
-- L2->L1 messages (withdrawals), written with their block and deleted with it on a rewind. body:
-- WithdrawalMessage.encode(), the hash preimage (every field); tx_hash: the transaction that sent it
-- (_migrate_messages fills an older version's rows).
CREATE TABLE IF NOT EXISTS messages (
    nonce INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    body BLOB NOT NULL,
    tx_hash BLOB NOT NULL DEFAULT x''
);
"""


class DropRow(NamedTuple):
    """A dropped transaction's row: its receipt says DROPPED with ``reason``."""

    hash: bytes
    raw: bytes
    sender: bytes
    nonce: int
    #: The pending log entry it was (a later entry with the same hash was sent again).
    seq: int
    reason: Reason


class AccountRow(NamedTuple):
    """An account of the snapshot: its slot is its creation order, the account tree's leaf order."""

    address: bytes
    slot: int
    account: Account


class SentMessage(NamedTuple):
    """An L2->L1 message and the hash of the transaction that recorded it."""

    tx_hash: bytes
    message: WithdrawalMessage


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """An L2->L1 message as the sealed chain recorded it: the message, its block, its transaction."""

    message: WithdrawalMessage
    hash: bytes
    block_number: int
    block_hash: bytes
    tx_hash: bytes


class MessagePage(NamedTuple):
    """Messages from some nonce on, with the count the sealed chain had recorded as of ``head``
    (one read snapshot: the messages, the count and the head agree)."""

    messages: list[StoredMessage]
    message_count: int
    head: int


@dataclass(frozen=True, slots=True)
class BlockWrite:
    """Everything sealing one block writes, all or nothing (:meth:`SequencerStore.seal_block`)."""

    number: int
    hash: bytes
    #: Canonical JSON of the header fields.
    header_json: str
    #: The block's signed transactions in block order; their rows are built on the writer thread.
    txs: Sequence[Transaction] = ()
    #: The position of ``txs[0]`` in the block: after the block's deposits.
    first_index: int = 0
    #: Accounts the block created.
    new_accounts: Sequence[AccountRow] = ()
    #: Accounts already in the snapshot that the block changed (their slots find their leaves in ``nodes``).
    changed_accounts: Sequence[AccountRow] = ()
    #: The L2->L1 messages it recorded, in nonce order, each with the transaction that sent it.
    messages: Sequence[SentMessage] = ()
    #: The account tree's nodes the block changed (node_key -> hash).
    nodes: Mapping[int, bytes] = field(default_factory=dict)


class ForcedOutcome(NamedTuple):
    """What a block decided for a forced transaction: included (note: its hash) or skipped (note: why)."""

    inbox_index: int
    state: ForcedState
    note: str


class ForcedTx(NamedTuple):
    """A forced transaction waiting in the inbox's queue: its place there, and its raw bytes."""

    inbox_index: int
    raw: bytes


class DueDeposit(NamedTuple):
    """A deposit seen on L1 and not yet minted: its place in the portal's order, and the deposit."""

    portal_index: int
    deposit: Deposit


@dataclass(frozen=True, slots=True)
class StoredDeposit:
    """What a receipt says of a deposit."""

    to: bytes
    mint: int
    #: The L2 block that minted it; None while it is due.
    block_number: int | None
    #: Its position in that block (deposits lead it, in portal order); 0 while it is due.
    index: int
    #: The portal's source hash of it (what makes its L2 hash unique: protocol.Deposit).
    source_hash: bytes


class BlockSpan(NamedTuple):
    """The L2 blocks a batch carried, first to last."""

    first: int
    last: int


class Settled(NamedTuple):
    """How the store settled a transaction: (DROPPED, the seq of the entry dropped), or (SEALED, 0)."""

    status: ReceiptStatus
    seq: int


_SLOT: Final = itemgetter(1)
#: The smallest inner node's key (node_key(1, 0)): below it, a key is a leaf's slot.
_INNER: Final = node_key(1, 0)


def _split_nodes(nodes: Iterable[tuple[int, bytes]]) -> tuple[dict[int, bytes], list[tuple[int, bytes]]]:
    """Account tree nodes as (slot -> leaf, [(key, inner node)])."""
    leaves: dict[int, bytes] = {}
    inner: list[tuple[int, bytes]] = []
    for key, node in nodes:
        if key < _INNER:
            leaves[key] = node
        else:
            inner.append((key, node))
    return leaves, inner


@dataclass(frozen=True, slots=True)
class BatchRow:
    l1_tx_hash: bytes
    inbox_index: int
    first_block: int
    last_block: int
    l1_block: int
    l1_block_hash: bytes
    status: ReceiptStatus = SEALED


@dataclass(frozen=True, slots=True)
class StoredTx:
    """What a receipt says of a sealed or dropped transaction."""

    hash: bytes
    raw: bytes
    sender: bytes
    nonce: int
    #: SEALED, SAFE or FINALIZED (what its block's batch reached), or DROPPED.
    status: ReceiptStatus
    #: The pending log entry it was, if dropped (0 if sealed: a sealed one's is not kept).
    seq: int
    block_number: int | None
    index: int | None
    gas_used: int | None
    effective_gas_price: int | None
    #: As stored: a Reason's value (or whatever an older version wrote).
    drop_reason: str | None

    @property
    def to(self) -> bytes | None:
        """The recipient, read from ``raw`` (None: a creation, or a raw that no longer decodes)."""
        return recipient(self.raw)


#: The inbox index of a followed block's row in ``batches`` (SequencerStore.record_followed).
FOLLOWED_INDEX: Final = -1


def _followed_key(number: int) -> bytes:
    """The batches key of followed block ``number``: no L1 transaction hash begins with 24 zero bytes."""
    return bytes(24) + number.to_bytes(8, "big")


#: The meta key holding the highest seq a row here was written with (see SequencerStore.max_seq).
_MAX_SEQ: Final = "max_seq"


class SequencerStore:
    def __init__(self, writer: sqlite3.Connection, path: Path) -> None:
        self._db = writer
        self._db.executescript(_SCHEMA)
        # Checkpoint the WAL every ~40 MB rather than SQLite's ~4 MB: random writes (account rows,
        # tree nodes; the transactions' hash index was measured so, before its runs) dirty the
        # same pages again across commits, and a rarer checkpoint copies each of them once instead
        # of once per 4 MB (~2 us less writer CPU per transaction then). Durability is the same;
        # a crash leaves at most that much WAL to read.
        self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        _migrate_txs(self._db)
        _migrate_messages(self._db)
        _migrate_accounts(self._db)
        self._index = TxIndex(self._db)
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA query_only=ON")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sequencer-store")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer thread, inside one transaction."""

        def in_txn() -> T:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                self._index.rolled_back()
                raise
            self._db.execute("COMMIT")
            self._index.committed()
            return result

        return await asyncio.get_running_loop().run_in_executor(self._executor, in_txn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._reader.close()

    # -- writes (called through run) ----------------------------------------------------------

    def seal_block(self, db: sqlite3.Connection, block: BlockWrite) -> None:
        """The block, its signed transactions, and the account snapshot: all or nothing.

        The per-transaction and per-account rows are built here, on the writer thread, not by the
        sealing event loop.
        """
        number = block.number
        txs = block.txs
        db.execute("INSERT INTO blocks (number, hash, header) VALUES (?, ?, ?)",
                   (number, block.hash, block.header_json))
        hashes = [tx.hash for tx in txs]
        db.execute("INSERT INTO block_txs (number, raws, hashes, senders) VALUES (?, ?, ?, ?)",
                   (number, _encode_raws([tx.raw for tx in txs]), b"".join(hashes), b"".join(tx.sender for tx in txs)))
        # In memory until a run takes them (see _tx_index). A hash already sealed would be the same
        # signed transaction (sender and nonce) executed twice: the block fails whole.
        self._index.add(db, number, block.first_index, hashes)
        # Each account row carries its new leaf; the leaves left (low leaves whose next address moved)
        # and the inner nodes are written by write_nodes.
        leaves, inner = _split_nodes(block.nodes.items())
        take = leaves.pop
        write_rows(db, "INSERT INTO accounts (address, slot, nonce, balance, leaf) VALUES ", "(?, ?, ?, ?, ?)",
                   " ON CONFLICT(address) DO UPDATE SET nonce = excluded.nonce, balance = excluded.balance, "
                   "leaf = excluded.leaf",
                   [(a, slot, nonce, str(balance), take(slot, None))
                    for a, slot, (nonce, balance) in block.new_accounts])
        # By slot, the rowid: one seek, not the address index's and then the rowid's (~0.6 us less
        # a row at 4,000 accounts, ~1.3 at 100,000; bench/account_update.py). The slot is the
        # account tree's, by which the leaves below are written already.
        changed = [(nonce, str(balance), take(slot, None), slot)
                   for _, slot, (nonce, balance) in block.changed_accounts]
        if write_rows(db, "UPDATE accounts SET nonce = v.column1, balance = v.column2, "
                      "leaf = v.column3 FROM (VALUES ", "(?, ?, ?, ?)",
                      ") AS v WHERE accounts.slot = v.column4", changed) != len(changed):
            raise RuntimeError("an account the snapshot should hold is missing")
        db.executemany(
            "INSERT INTO messages (nonce, hash, block_number, body, tx_hash) VALUES (?, ?, ?, ?, ?)",
            [(m.nonce, m.hash(), number, m.encode(), tx_hash) for tx_hash, m in block.messages],
        )
        SequencerStore._write_split(db, leaves, inner)

    @staticmethod
    def write_nodes(db: sqlite3.Connection, nodes: Iterable[tuple[int, bytes]], *, replace_all: bool = False) -> None:
        """Account tree nodes (node_key, hash): leaves into their accounts' rows (which exist),
        inner nodes into account_nodes; ``replace_all``: they are the whole tree (a rebuilt snapshot)."""
        if replace_all:
            db.execute("DELETE FROM account_nodes")
        SequencerStore._write_split(db, *_split_nodes(nodes))

    @staticmethod
    def _write_split(db: sqlite3.Connection, leaves: Mapping[int, bytes], inner: Sequence[tuple[int, bytes]]) -> None:
        """Leaves (slot -> hash) into their accounts' rows; inner nodes, in key order (neighbouring pages)."""
        if write_rows(db, "UPDATE accounts SET leaf = v.column1 FROM (VALUES ", "(?, ?)",
                      ") AS v WHERE accounts.slot = v.column2",
                      sorted([(leaf, slot) for slot, leaf in leaves.items()], key=_SLOT)) != len(leaves):
            raise RuntimeError("a leaf of a slot the snapshot does not hold")
        write_rows(db, "INSERT INTO account_nodes (key, hash) VALUES ", "(?, ?)",
                   " ON CONFLICT(key) DO UPDATE SET hash = excluded.hash", sorted(inner))

    @staticmethod
    def drop(db: sqlite3.Connection, dropped: Sequence[DropRow]) -> None:
        """Receipts that say DROPPED, with the reason; dropped again (sent again in between), the
        newer entry and reason. A sealed transaction is never demoted: its TxIndex entry wins every
        lookup, so a drop of one (were there any) is written but never read."""
        if not dropped:
            return
        write_rows(db, "INSERT INTO dropped (hash, raw, sender, nonce, seq, reason) VALUES ", "(?, ?, ?, ?, ?, ?)",
                   " ON CONFLICT(hash) DO UPDATE SET seq = excluded.seq, reason = excluded.reason", dropped)
        _raise_max_seq(db, max(row.seq for row in dropped))

    @staticmethod
    def delete_pending(db: sqlite3.Connection) -> None:
        """Forget the PENDING rows an older version kept here (they are in the pending log now):
        after the migration they are all the legacy txs table holds, so it goes whole."""
        db.execute("DROP TABLE IF EXISTS txs")

    @staticmethod
    def record_batch(db: sqlite3.Connection, batch: BatchRow) -> None:
        """A batch seen on L1, unless it carries blocks the sequencer dropped (stale_batches)."""
        db.execute(
            "INSERT INTO batches (l1_tx_hash, inbox_index, first_block, last_block, l1_block, l1_block_hash, status) "
            "SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM stale_batches WHERE l1_tx_hash = ?) "
            "ON CONFLICT(l1_tx_hash) DO UPDATE SET inbox_index = excluded.inbox_index, "
            "l1_block = excluded.l1_block, l1_block_hash = excluded.l1_block_hash, "
            # Seen again after a restart (the follower resumes at the finalized head): never demote.
            "status = MAX(batches.status, excluded.status)",
            (batch.l1_tx_hash, batch.inbox_index, batch.first_block, batch.last_block, batch.l1_block,
             batch.l1_block_hash, SEALED, batch.l1_tx_hash),
        )

    @staticmethod
    def take_batch(db: sqlite3.Connection, batch: BatchRow) -> None:
        """Derivation at safe depth took blocks ``first`` to ``last`` of the chain from the batch."""
        db.execute("DELETE FROM stale_batches WHERE l1_tx_hash = ?", (batch.l1_tx_hash,))
        db.execute(
            "INSERT INTO batches (l1_tx_hash, inbox_index, first_block, last_block, l1_block, l1_block_hash, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(l1_tx_hash) DO UPDATE SET first_block = excluded.first_block, "
            "last_block = excluded.last_block, status = MAX(batches.status, excluded.status)",
            (batch.l1_tx_hash, batch.inbox_index, batch.first_block, batch.last_block, batch.l1_block,
             batch.l1_block_hash, batch.status))

    @staticmethod
    def stale_batch(db: sqlite3.Connection, l1_tx_hash: bytes) -> None:
        """The batch gave derivation none of the blocks it says: forget it, and never record it again."""
        db.execute("INSERT OR IGNORE INTO stale_batches (l1_tx_hash) VALUES (?)", (l1_tx_hash,))
        db.execute("DELETE FROM batches WHERE l1_tx_hash = ?", (l1_tx_hash,))

    @staticmethod
    def record_blob_post(db: sqlite3.Connection, data_hash: bytes, span: BlockSpan, posted_upto: int) -> None:
        """A blob batch about to be sent carries ``span``; those of blocks L1 holds (up to
        ``posted_upto``) are forgotten: no pooled transaction is left to rebuild for them."""
        db.execute("DELETE FROM blob_posts WHERE last_block <= ?", (posted_upto,))
        db.execute("INSERT OR REPLACE INTO blob_posts (data_hash, first_block, last_block) VALUES (?, ?, ?)",
                   (data_hash, span.first, span.last))

    @staticmethod
    def record_followed(db: sqlite3.Connection, number: int, l1_block: int) -> None:
        """Block ``number`` was made by derivation itself (a lapsed sequencer window): decided at safe
        depth, so SAFE, recorded as a batch of its own that no L1 transaction carries (inbox index -1)."""
        db.execute("INSERT INTO batches (l1_tx_hash, inbox_index, first_block, last_block, l1_block, l1_block_hash, "
                   "status) VALUES (?, ?, ?, ?, ?, x'', ?) ON CONFLICT(l1_tx_hash) DO UPDATE SET "
                   "l1_block = excluded.l1_block, status = MAX(batches.status, excluded.status)",
                   (_followed_key(number), FOLLOWED_INDEX, number, number, l1_block, SAFE))

    @staticmethod
    def finalize_followed(db: sqlite3.Connection, finalized_l1_block: int) -> None:
        """Followed blocks decided at or below L1's finalized head are FINALIZED."""
        db.execute(f"UPDATE batches SET status = {FINALIZED} WHERE inbox_index = {FOLLOWED_INDEX} AND l1_block <= ? "
                   f"AND status < {FINALIZED}", (finalized_l1_block,))

    def rewind(self, db: sqlite3.Connection, number: int, accounts: Sequence[AccountRow], tx_hashes: Sequence[bytes],
               nodes: Iterable[tuple[int, bytes]]) -> list[bytes]:
        """Drop every block after ``number`` (their transactions' rows are ``tx_hashes``) and make
        ``accounts`` (and ``nodes``, their tree) the snapshot: the chain is at block ``number`` again.
        Deposits and forced transactions those blocks took are due again; batches that carried them
        are stale (returned).
        """
        self._index.rewind(db, number, tx_hashes)
        for table in ("blocks", "block_txs"):
            db.execute(f"DELETE FROM {table} WHERE number > ?", (number,))
        db.execute("DELETE FROM messages WHERE block_number > ?", (number,))
        db.execute("UPDATE deposits SET block_number = NULL WHERE block_number > ?", (number,))
        db.execute(f"UPDATE forced SET state = {FORCED_WAITING}, block_number = NULL, note = NULL "
                   "WHERE block_number > ?", (number,))
        stale = [bytes(h) for (h,) in db.execute(
            f"SELECT l1_tx_hash FROM batches WHERE first_block > ? AND inbox_index != {FOLLOWED_INDEX}", (number,))]
        db.executemany("INSERT OR IGNORE INTO stale_batches (l1_tx_hash) VALUES (?)", [(h,) for h in stale])
        db.execute("DELETE FROM batches WHERE first_block > ?", (number,))
        # A batch that carried blocks on both sides keeps those derivation took (a restart's record
        # of it again changes no span).
        db.execute("UPDATE batches SET last_block = ? WHERE last_block > ?", (number, number))
        db.execute("DELETE FROM accounts")
        write_rows(db, "INSERT INTO accounts (address, slot, nonce, balance) VALUES ", "(?, ?, ?, ?)", "",
                   [(a, slot, nonce, str(balance)) for a, slot, (nonce, balance) in accounts])
        SequencerStore.write_nodes(db, nodes, replace_all=True)
        return stale

    @staticmethod
    def remove_batch(db: sqlite3.Connection, l1_tx_hash: bytes) -> BlockSpan | None:
        """An L1 reorg took the batch out: forget it. Its transactions are merely SEALED again
        (their status is their batch's, see block_status): nothing of theirs to rewrite."""
        row = db.execute("SELECT first_block, last_block FROM batches WHERE l1_tx_hash = ?", (l1_tx_hash,)).fetchone()
        if row is None:
            return None
        db.execute("DELETE FROM batches WHERE l1_tx_hash = ?", (l1_tx_hash,))
        return BlockSpan(int(row[0]), int(row[1]))

    @staticmethod
    def promote_batch(db: sqlite3.Connection, l1_tx_hash: bytes, status: ReceiptStatus) -> None:
        """The batch's L1 block reached safe (or finalized) depth; so did its transactions, whose
        status is read from the batch (see block_status)."""
        db.execute("UPDATE batches SET status = ? WHERE l1_tx_hash = ? AND status < ?", (status, l1_tx_hash, status))

    @staticmethod
    def record_forced(db: sqlite3.Connection, queued: Iterable[QueuedForced]) -> None:
        """Forced transactions seen at safe depth (the inbox's queue, as protocol's L1 reader gives it)."""
        db.executemany("INSERT OR IGNORE INTO forced (inbox_index, raw, l1_block) VALUES (?, ?, ?)",
                       [(f.index, f.raw, f.l1_block) for f in queued])

    @staticmethod
    def settle_forced(db: sqlite3.Connection, block_number: int, outcomes: Iterable[ForcedOutcome]) -> None:
        """What block ``block_number`` decided for each forced transaction it took up."""
        db.executemany("UPDATE forced SET state = ?, block_number = ?, note = ? WHERE inbox_index = ?",
                       [(state, block_number, note, index) for index, state, note in outcomes])

    @staticmethod
    def record_deposits(db: sqlite3.Connection, queued: Iterable[QueuedDeposit]) -> None:
        """Deposits seen at safe depth (the portal's queue, as protocol's L1 reader gives it)."""
        db.executemany("INSERT OR IGNORE INTO deposits (portal_index, source_hash, tx_hash, recipient, mint, l1_block) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       [(q.index, d.source_hash, d.hash(), d.to, str(d.mint), q.l1_block)
                        for q in queued for d in (q.deposit,)])

    @staticmethod
    def settle_deposits(db: sqlite3.Connection, block_number: int, indexes: Iterable[int]) -> None:
        db.executemany("UPDATE deposits SET block_number = ? WHERE portal_index = ?",
                       [(block_number, i) for i in indexes])

    @staticmethod
    def set_meta(db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # -- reads (any thread-safe moment; the reader sees committed data only) ------------------

    def meta(self, key: str) -> str | None:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def tx(self, tx_hash: bytes, chain_id: int) -> StoredTx | None:
        """A sealed or dropped transaction, as its receipt needs it; None if neither.

        A sealed one's sender and nonce come from its raw bytes (decoded for ``chain_id``), its gas
        used and price from those and its block's base fee, by the function that charged them
        (gas_and_price), and its status from its block's batch: so sealing writes one small row
        per transaction, and nothing of it is rewritten later. Its sender is read where the
        block recorded it, not recovered again.
        """
        reader = self._reader
        where = self._index.location(reader, tx_hash)
        # (None: a block rewound meanwhile, the map not yet told.)
        header = None if where is None else self.block_header(where[0])
        if header is None:
            row = reader.execute("SELECT raw, sender, nonce, seq, reason FROM dropped WHERE hash = ?",
                                 (tx_hash,)).fetchone()
            if row is None:
                return None
            raw, sender, nonce, seq, reason = row
            return StoredTx(tx_hash, bytes(raw), bytes(sender), int(nonce), DROPPED, int(seq), None, None, None, None,
                            str(reason))
        assert where is not None
        number, index = where
        raw, sender = self._raw_in_block(number, index, tx_hash)
        tx = sealed_transaction(raw, sender, tx_hash)
        gas_used, price = gas_and_price(tx, int(json.loads(header)["base_fee"]))
        return StoredTx(tx_hash, raw, tx.sender, tx.nonce, self.block_status(number), 0, number, index, gas_used,
                        price, None)

    def _raw_in_block(self, number: int, index: int, tx_hash: bytes) -> tuple[bytes, bytes]:
        """The raw bytes and sender of ``tx_hash``, ``index``-th in block ``number``: read in place
        (incremental blob I/O), not whole blobs, which run to megabytes in a full block."""
        with self._reader.blobopen("block_txs", "hashes", number, readonly=True) as hashes:
            # Deposits lead a block and are not in block_txs: its position there is ``index`` less
            # the block's deposits. Look from ``index`` down; blocks mostly have none, so the first
            # look finds it.
            position = min(index, len(hashes) // 32 - 1)
            while position >= 0 and _read(hashes, 32 * position, 32) != tx_hash:
                position -= 1
        if position < 0:
            raise RuntimeError(f"block {number} lacks transaction 0x{tx_hash.hex()} its index points to")
        with self._reader.blobopen("block_txs", "senders", number, readonly=True) as senders:
            sender = _read(senders, 20 * position, 20)
        with self._reader.blobopen("block_txs", "raws", number, readonly=True) as raws:
            return _raw_at(raws, position), sender

    def block_status(self, number: int) -> ReceiptStatus:
        """The status of block ``number``'s transactions: SEALED, or what the most advanced batch
        carrying it reached (SAFE, FINALIZED). (A block posted again after a send that timed out
        may be in two batches.)"""
        row = self._reader.execute("SELECT MAX(status) FROM batches WHERE first_block <= ? AND last_block >= ?",
                                   (number, number)).fetchone()
        return SEALED if row[0] is None else max(SEALED, ReceiptStatus(row[0]))

    def settled(self, hashes: Sequence[bytes]) -> dict[bytes, Settled]:
        """hash -> how the store settled it, for those of ``hashes`` it holds: (DROPPED, the seq of
        the entry dropped), or (SEALED, 0) for a sealed one, whatever its batch reached (callers only
        tell sealed from dropped, and compare seqs of dropped ones)."""
        found: dict[bytes, Settled] = {}
        reader = self._reader
        for start in range(0, len(hashes), _MAX_ROWS):
            chunk = hashes[start : start + _MAX_ROWS]
            marks = ", ".join("?" * len(chunk))
            rows = reader.execute(f"SELECT hash, seq FROM dropped WHERE hash IN ({marks})", chunk)
            found.update((bytes(h), Settled(DROPPED, int(seq))) for h, seq in rows)
        # After: a transaction sealed (even one dropped before) is sealed.
        found.update((h, Settled(SEALED, 0)) for h in self._index.sealed(reader, hashes))
        return found

    def pending(self) -> list[StoredTx]:
        """PENDING rows: only an older version wrote them (in its txs table; now: the pending log),
        moved to the log at start (Intake._migrate_pending_rows), then the table is dropped."""
        if not _has_table(self._reader, "txs"):
            return []
        rows = self._reader.execute(f"SELECT hash, raw, sender, nonce, seq FROM txs WHERE status = {PENDING} "
                                    "ORDER BY seq").fetchall()
        return [StoredTx(bytes(h), bytes(r), bytes(s), int(n), PENDING, int(q), None, None, None, None, None)
                for h, r, s, n, q in rows]

    def max_seq(self) -> int:
        """The highest seq a row here was written with: every dropped row's (and every row's of the
        legacy txs table), kept in meta by the writes themselves, so no table is scanned.

        The intake numbers new pending log entries above it and above the log's own entries, so a
        transaction dropped and then sent again gets an entry newer than its dropped row (that is
        how restore tells the two apart). Sealed transactions' seqs need not count: nothing here
        keeps them, and their log entries, while they last, count in the log's own maximum.
        """
        value = self.meta(_MAX_SEQ)
        return 0 if value is None else int(value)

    def block_header(self, number: int) -> str | None:
        row = self._reader.execute("SELECT header FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def block_number_of(self, block_hash: bytes) -> int | None:
        """The number of the sealed block with hash ``block_hash`` (blocks.hash is indexed)."""
        row = self._reader.execute("SELECT number FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return None if row is None else int(row[0])

    def block_tx_hashes(self, number: int) -> list[bytes]:
        """The hashes of block ``number``'s signed transactions, in order (its deposits are not here)."""
        row = self._reader.execute("SELECT hashes FROM block_txs WHERE number = ?", (number,)).fetchone()
        if row is None:
            return []
        hashes = bytes(row[0])
        return [hashes[i : i + 32] for i in range(0, len(hashes), 32)]

    def block_raw_txs(self, number: int) -> list[bytes]:
        """Block ``number``'s signed transactions, raw, in order."""
        row = self._reader.execute("SELECT raws FROM block_txs WHERE number = ?", (number,)).fetchone()
        return [] if row is None else _decode_raws(bytes(row[0]))

    def block_batch_txs(self, number: int) -> list[bytes]:
        """What block ``number``'s batch carries: its signed transactions without the forced ones.

        Forced transactions lead their block (the chain applies them first) and derivation takes
        them from the inbox's own queue, so a copy in the batch would only cost calldata (and be
        skipped by the nonce rule)."""
        return self.block_raw_txs(number)[self.block_forced_count(number):]

    def batch_of_block(self, number: int) -> BatchRow | None:
        """The L1 batch that carries block ``number`` (None for a followed block: no L1 transaction)."""
        row = self._reader.execute(
            "SELECT l1_tx_hash, inbox_index, first_block, last_block, l1_block, l1_block_hash, status FROM batches "
            f"WHERE first_block <= ? AND last_block >= ? AND inbox_index != {FOLLOWED_INDEX} "
            "ORDER BY l1_block DESC LIMIT 1", (number, number)).fetchone()
        if row is None:
            return None
        return BatchRow(bytes(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), bytes(row[5]),
                        ReceiptStatus(row[6]))

    def block_transactions(self, number: int) -> list[Transaction]:
        """Block ``number``'s signed transactions, in order, rebuilt with the senders it recorded."""
        row = self._reader.execute("SELECT raws, hashes, senders FROM block_txs WHERE number = ?", (number,)).fetchone()
        if row is None:
            return []
        raws, hashes, senders = _decode_raws(bytes(row[0])), bytes(row[1]), bytes(row[2])
        return [sealed_transaction(raw, senders[20 * i : 20 * i + 20], hashes[32 * i : 32 * i + 32])
                for i, raw in enumerate(raws)]

    def block_forced_count(self, number: int) -> int:
        """How many forced transactions block ``number`` included (they lead its signed ones)."""
        (forced,) = self._reader.execute(f"SELECT COUNT(*) FROM forced WHERE block_number = ? "
                                         f"AND state = {FORCED_INCLUDED}", (number,)).fetchone()
        return int(forced)

    def posted_upto(self) -> int:
        """The last L2 block some batch on L1 carries (0: none yet; genesis is never posted)."""
        row = self._reader.execute("SELECT COALESCE(MAX(last_block), 0) FROM batches").fetchone()
        return int(row[0])

    def blob_post(self, data_hash: bytes) -> BlockSpan | None:
        """The blocks of the blob batch sent with this dataHash (``record_blob_post``), if on record."""
        row = self._reader.execute("SELECT first_block, last_block FROM blob_posts WHERE data_hash = ?",
                                   (data_hash,)).fetchone()
        return None if row is None else BlockSpan(int(row[0]), int(row[1]))

    def batch_head(self, status: ReceiptStatus) -> int:
        """The newest L2 block every block up to which is in a batch of at least ``status``."""
        rows = self._reader.execute("SELECT first_block, last_block FROM batches WHERE status >= ? "
                                    "ORDER BY first_block", (status,)).fetchall()
        head = 0
        for first, last in rows:
            if first > head + 1:
                break
            head = max(head, int(last))
        return head

    def deposits_due(self, l1_origin: int) -> list[DueDeposit]:
        """Unminted deposits from L1 blocks up to ``l1_origin``, in portal order."""
        rows = self._reader.execute("SELECT portal_index, source_hash, recipient, mint FROM deposits "
                                    "WHERE block_number IS NULL AND l1_block <= ? ORDER BY portal_index",
                                    (l1_origin,)).fetchall()
        return [DueDeposit(int(i), Deposit(bytes(s), bytes(r), int(m))) for i, s, r, m in rows]

    def block_deposits(self, number: int) -> list[Deposit]:
        """The deposits block ``number`` minted, in order."""
        rows = self._reader.execute("SELECT source_hash, recipient, mint FROM deposits WHERE block_number = ? "
                                    "ORDER BY portal_index", (number,)).fetchall()
        return [Deposit(bytes(s), bytes(r), int(m)) for s, r, m in rows]

    def deposit(self, tx_hash: bytes) -> StoredDeposit | None:
        """A deposit by its L2 hash."""
        row = self._reader.execute("SELECT recipient, mint, block_number, portal_index, source_hash FROM deposits "
                                   "WHERE tx_hash = ?", (tx_hash,)).fetchone()
        if row is None:
            return None
        index = None
        if row[2] is not None:  # deposits lead their block, in portal order
            index = self._reader.execute("SELECT COUNT(*) FROM deposits WHERE block_number = ? AND portal_index < ?",
                                         (row[2], row[3])).fetchone()[0]
        return StoredDeposit(bytes(row[0]), int(row[1]), None if row[2] is None else int(row[2]),
                             0 if index is None else int(index), bytes(row[4]))

    def forced_due(self, l1_origin: int) -> list[ForcedTx]:
        """Waiting forced transactions from L1 blocks up to ``l1_origin``, in queue order."""
        rows = self._reader.execute(f"SELECT inbox_index, raw FROM forced WHERE state = {FORCED_WAITING} "
                                    "AND l1_block <= ? ORDER BY inbox_index", (l1_origin,)).fetchall()
        return [ForcedTx(int(i), bytes(r)) for i, r in rows]

    def latest_block_number(self) -> int | None:
        row = self._reader.execute("SELECT MAX(number) FROM blocks").fetchone()
        return None if row[0] is None else int(row[0])

    def accounts(self) -> list[AccountRow]:
        """Every account of the last sealed block, in creation (slot) order."""
        return [AccountRow(bytes(a), int(slot), Account(int(n), int(b))) for a, slot, n, b in self._reader.execute(
            "SELECT address, slot, nonce, balance FROM accounts ORDER BY slot")]

    # -- the account tree's source (protocol.AccountSource): the last durable state -------------

    def account_count(self) -> int:
        """Accounts in the snapshot (slots 0..count-1 are used)."""
        (top,) = self._reader.execute("SELECT MAX(slot) FROM accounts").fetchone()
        return 0 if top is None else int(top) + 1

    def accounts_at(self, addresses: Sequence[bytes]) -> dict[bytes, tuple[int, Account]]:
        return {bytes(a): (int(slot), Account(int(n), int(b))) for a, slot, n, b in _select_in(
            self._reader, "SELECT address, slot, nonce, balance FROM accounts WHERE address IN (", addresses)}

    def below(self, address: bytes) -> bytes | None:
        row = self._reader.execute("SELECT address FROM accounts WHERE address < ? ORDER BY address DESC LIMIT 1",
                                   (address,)).fetchone()
        return None if row is None else bytes(row[0])

    def above(self, address: bytes) -> bytes | None:
        row = self._reader.execute("SELECT address FROM accounts WHERE address > ? ORDER BY address LIMIT 1",
                                   (address,)).fetchone()
        return None if row is None else bytes(row[0])

    def at_slot(self, slot: int) -> tuple[bytes, Account] | None:
        row = self._reader.execute("SELECT address, nonce, balance FROM accounts WHERE slot = ?", (slot,)).fetchone()
        return None if row is None else (bytes(row[0]), Account(int(row[1]), int(row[2])))

    def nodes(self, keys: Sequence[int]) -> dict[int, bytes]:
        slots = [k for k in keys if k < _INNER]  # node_key(0, slot) is the slot
        found = {int(k): bytes(h) for k, h in _select_in(
            self._reader, "SELECT key, hash FROM account_nodes WHERE key IN (", [k for k in keys if k >= _INNER])}
        if slots:
            found.update((int(s), bytes(h)) for s, h in _select_in(
                self._reader, "SELECT slot, leaf FROM accounts WHERE leaf IS NOT NULL AND slot IN (", slots))
        return found

    def message_hashes(self) -> list[bytes]:
        """The hashes of every L2->L1 message recorded, in nonce order (message nonce i at index i)."""
        return [bytes(h) for (h,) in self._reader.execute("SELECT hash FROM messages ORDER BY nonce")]

    def message_count(self, number: int) -> int:
        """L2->L1 messages recorded by the chain up to and including block ``number``."""
        row = self._reader.execute("SELECT nonce FROM messages WHERE block_number <= ? "
                                   "ORDER BY block_number DESC, nonce DESC LIMIT 1", (number,)).fetchone()
        return 0 if row is None else int(row[0]) + 1

    def messages(self, from_nonce: int, limit: int) -> MessagePage:
        """Up to ``limit`` messages from nonce ``from_nonce`` on, in nonce order, with the count
        and the head block of the same snapshot (a block sealed meanwhile is in all three or none)."""
        reader = self._reader
        reader.execute("BEGIN")  # one read snapshot for the three reads (the reader is autocommit)
        try:
            rows = reader.execute(
                "SELECT m.nonce, m.hash, m.block_number, m.body, m.tx_hash, b.hash FROM messages AS m "
                "JOIN blocks AS b ON b.number = m.block_number WHERE m.nonce >= ? ORDER BY m.nonce LIMIT ?",
                (from_nonce, limit)).fetchall()
            (top,) = reader.execute("SELECT MAX(nonce) FROM messages").fetchone()
            (head,) = reader.execute("SELECT MAX(number) FROM blocks").fetchone()
        finally:
            reader.execute("COMMIT")
        found = [StoredMessage(decode_message(bytes(body)), bytes(h), int(n), bytes(block_hash), bytes(tx_hash))
                 for _, h, n, body, tx_hash, block_hash in rows]
        return MessagePage(found, 0 if top is None else int(top) + 1, 0 if head is None else int(head))


#: Rows per statement, at most (a power of two).
_MAX_ROWS: Final = 256


def write_rows(db: sqlite3.Connection, head: str, row: str, tail: str, rows: Sequence[Sequence[Any]]) -> int:
    """``head row, row, ... tail`` with ``rows`` bound in order, in statements of up to _MAX_ROWS
    rows; the number of rows changed.

    Not executemany: sqlite3 releases the GIL around every step, and executemany steps once per
    row, so under load each row waits to take the GIL back (an executemany of 256 rows took
    3-4x its CPU time in wall time). Statements of power-of-two sizes keep the prepared ones
    few (sqlite3 caches 128 per connection).
    """
    changed = 0
    start, end = 0, len(rows)
    while start < end:
        count = min(_MAX_ROWS, 1 << ((end - start).bit_length() - 1))
        params = list(chain.from_iterable(rows[start : start + count]))
        changed += db.execute(_statement(head, row, tail, count), params).rowcount
        start += count
    return changed


def _select_in(db: sqlite3.Connection, head: str, values: Sequence[Any]) -> list[Any]:
    """``head ?, ?, ...)`` over ``values``, in statements of up to _MAX_ROWS of them: every row."""
    rows: list[Any] = []
    start, end = 0, len(values)
    while start < end:
        count = min(_MAX_ROWS, 1 << ((end - start).bit_length() - 1))
        rows += db.execute(_statement(head, "?", ")", count), values[start : start + count]).fetchall()
        start += count
    return rows


@functools.cache
def _statement(head: str, row: str, tail: str, count: int) -> str:
    return head + ", ".join([row] * count) + tail


# -- a block's raw transactions as one blob ---------------------------------------------------
#
#     u32 n || u32 end[0] || ... || u32 end[n-1] || raw[0] || ... || raw[n-1]
#
# little-endian; end[i] is where raw[i] ends, counted from the first raw byte. raw[i] is
# data[end[i-1]:end[i]] (end[-1] = 0): reading one takes two offsets, never a scan.

_U32: Final = struct.Struct("<I")
_TWO_U32: Final = struct.Struct("<2I")


def _encode_raws(raws: Sequence[bytes]) -> bytes:
    return struct.pack(f"<{len(raws) + 1}I", len(raws), *accumulate(map(len, raws))) + b"".join(raws)


def _decode_raws(blob: bytes) -> list[bytes]:
    (count,) = _U32.unpack_from(blob)
    ends = struct.unpack_from(f"<{count}I", blob, 4)
    base = 4 + 4 * count
    if base + (ends[-1] if ends else 0) != len(blob):
        raise ValueError("not a block's raw transactions")
    return [blob[base + start : base + end] for start, end in pairwise(chain((0,), ends))]


def _raw_at(blob: sqlite3.Blob, position: int) -> bytes:
    """raw[position] of an encoded blob (0 <= position < n), read in place."""
    # At 4 * position: end[position - 1] and end[position]; at 0, n and end[0].
    previous, end = _TWO_U32.unpack(_read(blob, 4 * position, 8))
    count = previous if position == 0 else _U32.unpack(_read(blob, 0, 4))[0]
    base = 4 + 4 * count
    start = 0 if position == 0 else previous
    return _read(blob, base + start, end - start)


def _read(blob: sqlite3.Blob, offset: int, length: int) -> bytes:
    blob.seek(offset)
    return blob.read(length)


# -- the rest -----------------------------------------------------------------------------------


def decode_message(body: bytes) -> WithdrawalMessage:
    """The message whose ``encode()`` is ``body`` (abi.encode(nonce, sender, target, value,
    gasLimit, data), as the store wrote it)."""
    word = functools.partial(int.from_bytes, byteorder="big")
    length = word(body[192:224])
    return WithdrawalMessage(word(body[0:32]), body[44:64], body[76:96], word(body[96:128]), word(body[128:160]),
                             body[224 : 224 + length])


def _migrate_messages(db: sqlite3.Connection) -> None:
    """Messages an older version stored without the hash of the transaction that sent it get it:
    a block's messages are, in nonce order, its transactions to MESSAGE_PASSER in block order
    (every sealed one recorded exactly one, protocol._withdrawal). Once, in one transaction; and
    the index that finds a block's messages (message counts, rewinds)."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(messages)")]
    db.execute("BEGIN IMMEDIATE")
    try:
        if "tx_hash" not in columns:
            db.execute("ALTER TABLE messages ADD COLUMN tx_hash BLOB NOT NULL DEFAULT x''")
            blocks = [int(n) for (n,) in db.execute("SELECT DISTINCT block_number FROM messages ORDER BY block_number")]
            for number in blocks:
                row = db.execute("SELECT raws, hashes, senders FROM block_txs WHERE number = ?", (number,)).fetchone()
                raws, hashes, senders = _decode_raws(bytes(row[0])), bytes(row[1]), bytes(row[2])
                sent = [hashes[32 * i : 32 * i + 32] for i, raw in enumerate(raws)
                        if sealed_transaction(raw, senders[20 * i : 20 * i + 20], hashes[32 * i : 32 * i + 32]).to
                        == MESSAGE_PASSER]
                nonces = [int(n) for (n,) in db.execute("SELECT nonce FROM messages WHERE block_number = ? "
                                                        "ORDER BY nonce", (number,))]
                db.executemany("UPDATE messages SET tx_hash = ? WHERE nonce = ?", list(zip(sent, nonces, strict=True)))
        db.execute("CREATE INDEX IF NOT EXISTS messages_by_block ON messages (block_number, nonce)")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _migrate_accounts(db: sqlite3.Connection) -> None:
    """An older accounts table (keyed by address, no leaf column; the tree's leaves rows of
    account_nodes) is rebuilt as _ACCOUNTS with the leaves moved into it, once, in one transaction
    (a few seconds at a million accounts); without stored nodes the leaves stay NULL (the chain
    rebuilds its tree at start)."""
    columns = {row[1]: row[5] for row in db.execute("PRAGMA table_info(accounts)")}  # name -> pk position
    if columns.get("slot") == 1:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(f"CREATE TABLE new_{_ACCOUNTS}")
        db.execute("INSERT INTO new_accounts (slot, address, nonce, balance, leaf) SELECT a.slot, a.address, "
                   "a.nonce, a.balance, n.hash FROM accounts AS a LEFT JOIN account_nodes AS n ON n.key = a.slot "
                   "ORDER BY a.slot")
        db.execute("DROP TABLE accounts")
        db.execute("ALTER TABLE new_accounts RENAME TO accounts")
        db.execute("DELETE FROM account_nodes WHERE key < ?", (_INNER,))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _raise_max_seq(db: sqlite3.Connection, seq: int) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
               "value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))", (_MAX_SEQ, seq))


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _migrate_txs(db: sqlite3.Connection) -> None:
    """An older version's ``txs`` table (a whole row per transaction, status rewritten as its batch
    advanced) moves to (the legacy) tx_index, block_txs and dropped, once, in one transaction: a crash leaves
    the old table whole and the next start migrates again.

    Its PENDING rows stay: ``pending()`` reads them and the intake moves them to the pending log
    (Intake._migrate_pending_rows), then ``delete_pending`` drops the table. Without any, it goes
    here. SAFE/FINALIZED need no moving: the batches table already says them.
    """
    if not _has_table(db, "txs"):
        return
    sealed = f"block_number IS NOT NULL AND status IN ({SEALED}, {SAFE}, {FINALIZED})"
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(LEGACY_SCHEMA)  # TxIndex moves it to a run next
        db.execute(f"INSERT OR IGNORE INTO tx_index (hash, block_number, idx) "
                   f"SELECT hash, block_number, idx FROM txs WHERE {sealed}")
        rows = db.execute(f"SELECT block_number, hash, raw, sender FROM txs WHERE {sealed} "
                          "ORDER BY block_number, idx")
        for number, group in groupby(rows, key=itemgetter(0)):
            block = list(group)
            db.execute("INSERT OR IGNORE INTO block_txs (number, raws, hashes, senders) VALUES (?, ?, ?, ?)",
                       (number, _encode_raws([bytes(raw) for _, _, raw, _ in block]),
                        b"".join(bytes(h) for _, h, _, _ in block), b"".join(bytes(a) for *_, a in block)))
        # Blocks without a signed transaction get their (empty) row too: one row per block.
        db.execute("INSERT OR IGNORE INTO block_txs (number, raws, hashes, senders) "
                   "SELECT number, ?, x'', x'' FROM blocks", (_encode_raws(()),))
        db.execute("INSERT OR IGNORE INTO dropped (hash, raw, sender, nonce, seq, reason) "
                   f"SELECT hash, raw, sender, nonce, seq, COALESCE(drop_reason, '') FROM txs WHERE status = {DROPPED}")
        # Every seq it held, PENDING ones included: the intake numbers new entries above them
        # before it has moved those to the log.
        top = db.execute("SELECT MAX(seq) FROM txs").fetchone()[0]
        if top is not None:
            _raise_max_seq(db, int(top))
        if db.execute(f"SELECT 1 FROM txs WHERE status = {PENDING} LIMIT 1").fetchone() is None:
            db.execute("DROP TABLE txs")
        else:
            db.execute(f"DELETE FROM txs WHERE status != {PENDING}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
