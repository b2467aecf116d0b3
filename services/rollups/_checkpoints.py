"""Derivation checkpoints: where a restarted rollups worker, and a dispute, resume deriving.

Without them a restarted worker re-derives the whole chain from the deployment block, and every
dispute re-derives its start state from genesis. A checkpoint is a derived block H, the state
after it and the L1 read position at the time:

    l1_block      the L1 horizon h: every input in L1 blocks <= h was read (a SAFE block: the
                  follower reads ``confirmation_depth`` blocks back), and l1_hash, its hash
    reread_from   the first L1 block to read again to hold every input H's snapshot has not
                  consumed yet (the batch it was reading, its next deposit and forced entry:
                  each at or above H's L1 origin), or h + 1 if it had read none of them
    l2_block      H; account_count, message_count: the sizes of the state after it

It is written in one transaction with what it covers, in the worker's own SQLite (``rollups.db``):

    derived_blocks    every derived block up to H (header, hash, snapshot, step, and whether rule F
                      made it): outputs are compared with these and traces are counted from them
    account_versions  (slot, the checkpoint's l1_block) -> account, for each account the blocks
                      since the previous checkpoint wrote (every account at the first): the state
                      at checkpoint c is, per slot, the latest version at or below c
    messages          the message-passer hashes, by nonce

A resumed derivation goes on from H's snapshot (steps taken again from H's seal on, with its
inputs re-read from ``reread_from``), so it derives exactly what it derived before. Restoring the
state costs O(accounts) (the rows read, the account tree rebuilt: ``State`` keeps it in memory),
so it is done lazily, at the first step that reads an account (see ``Machine.state``): a worker
restarted with nothing new on L1 never loads it. Reorgs: on restart, a checkpoint whose L1 block
is no longer canonical is dropped with everything only it covers, and the next older one is tried
(``DerivedChain.resume``). A database written for another deployment or genesis is emptied.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from protocol import ZERO_HASH, Account, BlockHeader, State
from services.runtime import Storage

from ._machine import DerivedBlock
from ._snapshot import Snapshot

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS derivation_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    l1_block INTEGER PRIMARY KEY, l1_hash BLOB NOT NULL, reread_from INTEGER NOT NULL,
    l2_block INTEGER NOT NULL, account_count INTEGER NOT NULL, message_count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS derived_blocks (
    number INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL, snapshot BLOB NOT NULL,
    step INTEGER NOT NULL, made_by_derivation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS derived_blocks_by_kind ON derived_blocks (made_by_derivation, number);
CREATE TABLE IF NOT EXISTS account_versions (
    slot INTEGER NOT NULL, l1_block INTEGER NOT NULL, address BLOB NOT NULL, nonce INTEGER NOT NULL,
    balance BLOB NOT NULL, PRIMARY KEY (slot, l1_block)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (nonce INTEGER PRIMARY KEY, hash BLOB NOT NULL);
"""
_TABLES: Final = ("checkpoints", "derived_blocks", "account_versions", "messages")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """See the module notes."""

    l1_block: int
    l1_hash: bytes
    reread_from: int
    l2_block: int
    account_count: int
    message_count: int


def decode_header(data: bytes) -> BlockHeader:
    """The inverse of ``BlockHeader.encode`` (11 words)."""
    w = [data[i : i + 32] for i in range(0, 352, 32)]
    n = [int.from_bytes(x, "big") for x in w]
    return BlockHeader(number=n[0], parent_hash=w[1], timestamp=n[2], state_root=w[3], transactions_root=w[4],
                       message_root=w[5], base_fee=n[6], gas_used=n[7], gas_limit=n[8], l1_origin_number=n[9],
                       l1_origin_hash=w[10])


def _block(row: tuple[bytes, bytes, bytes, int]) -> DerivedBlock:
    block_hash, header, snapshot, step = row
    return DerivedBlock(decode_header(header), block_hash, (), Snapshot.decode(snapshot), step)


class CheckpointStore:
    """The checkpoints of one derivation (deployment and genesis: ``identity``) in ``storage``.

    Writes go through ``storage``'s connection, from one thread at a time (the derivation's
    sync, which holds its lock); reads through a connection of their own, so that looking up a
    block on the event loop never waits for a write in progress (WAL: readers see the last commit).
    """

    def __init__(self, storage: Storage, identity: bytes) -> None:
        self._storage = storage
        self.path: Path = storage.path
        storage.connection.executescript(_SCHEMA)
        with storage.transaction() as db:
            row = db.execute("SELECT value FROM derivation_meta WHERE key = 'identity'").fetchone()
            if row is None or bytes(row[0]) != identity:
                for table in _TABLES:  # another deployment's or genesis's: nothing in it applies
                    db.execute(f"DELETE FROM {table}")  # table names: constants
                db.execute("INSERT OR REPLACE INTO derivation_meta VALUES ('identity', ?)", (identity,))
        self._reader = sqlite3.connect(self.path, check_same_thread=False)
        self._read_lock = threading.Lock()

    def close(self) -> None:
        self._reader.close()

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
        with self._read_lock:
            return self._reader.execute(sql, args).fetchall()

    # -- reading -------------------------------------------------------------------------------

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first."""
        rows = self._read("SELECT l1_block, l1_hash, reread_from, l2_block, account_count, message_count "
                          "FROM checkpoints ORDER BY l1_block")
        return [Checkpoint(int(a), bytes(b), int(c), int(d), int(e), int(f))
                for a, b, c, d, e, f in rows]

    def at_or_below(self, l2_block: int) -> Checkpoint | None:
        """The latest checkpoint whose block is ``l2_block`` or an earlier one (a dispute's start)."""
        below = [c for c in self.checkpoints() if c.l2_block <= l2_block]
        return below[-1] if below else None

    def block(self, number: int) -> DerivedBlock | None:
        rows = self._read("SELECT hash, header, snapshot, step FROM derived_blocks WHERE number = ?", (number,))
        return _block(rows[0]) if rows else None

    def last_block(self, number: int, *, made_by_derivation: bool) -> DerivedBlock | None:
        """The last block in 1..``number`` that derivation made itself (rule F), or the last from a batch."""
        rows = self._read("SELECT hash, header, snapshot, step FROM derived_blocks WHERE made_by_derivation = ? "
                          "AND number BETWEEN 1 AND ? ORDER BY number DESC LIMIT 1", (int(made_by_derivation), number))
        return _block(rows[0]) if rows else None

    def state_at(self, checkpoint: Checkpoint) -> State:
        """The state after the checkpoint's block, checked against that block's state root.
        O(accounts): the rows read, the trees rebuilt. Opens its own connection (it may run in
        any thread, for seconds, while blocks are looked up)."""
        connection = sqlite3.connect(self.path)
        try:
            accounts = connection.execute(
                "SELECT address, nonce, balance, max(l1_block) FROM account_versions WHERE l1_block <= ? "
                "GROUP BY slot ORDER BY slot", (checkpoint.l1_block,)).fetchall()
            messages = connection.execute("SELECT hash FROM messages WHERE nonce < ? ORDER BY nonce",
                                          (checkpoint.message_count,)).fetchall()
        finally:
            connection.close()
        if len(accounts) != checkpoint.account_count or len(messages) != checkpoint.message_count:
            raise RuntimeError(f"checkpoint at L1 block {checkpoint.l1_block}: {len(accounts)} accounts and "
                               f"{len(messages)} messages stored, not {checkpoint.account_count} and "
                               f"{checkpoint.message_count}")
        state = State(((bytes(a), Account(n, int.from_bytes(b, "big"))) for a, n, b, _ in accounts),
                      [bytes(h) for (h,) in messages])
        block = self.block(checkpoint.l2_block)
        roots = state.commit()
        if block is None or (roots.state_root, roots.message_root) != (block.header.state_root,
                                                                       block.header.message_root):
            raise RuntimeError(f"checkpoint at L1 block {checkpoint.l1_block}: the stored state is not "
                               f"L2 block {checkpoint.l2_block}'s")
        return state

    # -- writing (one thread at a time) --------------------------------------------------------

    def save(self, checkpoint: Checkpoint, blocks: Sequence[DerivedBlock],
             accounts: Iterable[tuple[int, bytes, Account]], messages: Iterable[tuple[int, bytes]]) -> None:
        """One transaction: the blocks since the last checkpoint, the accounts they wrote (slot,
        address, account), the new messages (nonce, hash), and the checkpoint that covers them."""
        with self._storage.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO derived_blocks VALUES (?, ?, ?, ?, ?, ?)",
                           [(b.header.number, b.hash, b.header.encode(), b.snapshot.encode(), b.step,
                             int(b.header.l1_origin_hash == ZERO_HASH)) for b in blocks])
            db.executemany("INSERT OR REPLACE INTO account_versions VALUES (?, ?, ?, ?, ?)",
                           [(slot, checkpoint.l1_block, address, account.nonce, account.balance.to_bytes(32, "big"))
                            for slot, address, account in accounts])
            db.executemany("INSERT OR REPLACE INTO messages VALUES (?, ?)", messages)
            db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
                       (checkpoint.l1_block, checkpoint.l1_hash, checkpoint.reread_from, checkpoint.l2_block,
                        checkpoint.account_count, checkpoint.message_count))

    def drop_above(self, keep: Checkpoint | None) -> None:
        """Drop every checkpoint above ``keep`` (all of them if None) and what only they cover."""
        with self._storage.transaction() as db:
            if keep is None:
                for table in _TABLES:
                    db.execute(f"DELETE FROM {table}")
                return
            db.execute("DELETE FROM checkpoints WHERE l1_block > ?", (keep.l1_block,))
            db.execute("DELETE FROM account_versions WHERE l1_block > ?", (keep.l1_block,))
            db.execute("DELETE FROM messages WHERE nonce >= ?", (keep.message_count,))
            db.execute("DELETE FROM derived_blocks WHERE number > ?", (keep.l2_block,))

