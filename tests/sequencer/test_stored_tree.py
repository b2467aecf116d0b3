"""The account tree over the sequencer's store (protocol.StoredAccountTree): the same roots and
proofs as the rule's in-memory tree, block for block, across reopenings and evictions; and a real
worker killed with SIGKILL while it seals blocks leaves a tree equal to one rebuilt from scratch."""

from __future__ import annotations

import asyncio
import os
import pathlib
import random
import signal
import sqlite3
import threading
import time
from typing import Any

import grpc
import pytest

from protocol import (
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    DEV_PRIVATE_KEYS,
    MERKLE_DEPTH,
    ZERO_ADDRESS,
    Account,
    AccountTree,
    StoredAccountTree,
    node_key,
)
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from services.l1 import UnsignedTransaction, sign_transaction
from services.runtime._storage import Storage
from services.sequencer._chain import header_from_json
from services.sequencer._store import AccountRow, BlockWrite, SequencerStore
from tests.sequencer.test_service import node, replay_matches_stored_roots

__all__ = ["node"]  # the worker fixture, used below

GWEI = 10**9


def write_block(store: SequencerStore, number: int, tree: StoredAccountTree, before: int,
                changes: dict[bytes, Account]) -> None:
    """What a sealed block writes of the accounts: new rows, changed rows, the tree's nodes."""
    new = [AccountRow(a, slot, acct) for a, acct in changes.items() if (slot := tree.index_of(a)) is not None
           and slot >= before]
    created = {row.address for row in new}
    block = BlockWrite(number, number.to_bytes(32, "big"), "{}", new_accounts=new,
                       changed_accounts=[AccountRow(a, slot, acct) for a, acct in changes.items()
                                         if a not in created and (slot := tree.index_of(a)) is not None],
                       nodes=tree.take_writes())
    asyncio.run(store.run(lambda db: store.seal_block(db, block)))


def test_stored_tree_matches_the_rule_block_for_block(tmp_path: pathlib.Path) -> None:
    rng = random.Random(7)
    storage = Storage(tmp_path / "sequencer.db")
    store = SequencerStore(storage.connection, storage.path)
    reference = AccountTree()
    genesis = {ZERO_ADDRESS: Account(0, 5)}  # the zero address holds something too
    reference.update(genesis.items())
    block = BlockWrite(0, bytes(32), "{}", new_accounts=[AccountRow(ZERO_ADDRESS, 0, genesis[ZERO_ADDRESS])],
                       nodes=dict(reference.nodes()))
    asyncio.run(store.run(lambda db: store.seal_block(db, block)))
    tree = StoredAccountTree(store, store.account_count())
    assert tree.root() == reference.root()
    addresses = [ZERO_ADDRESS]
    for number in range(1, 40):
        changes: dict[bytes, Account] = {}
        for _ in range(rng.choice((1, 5, 60))):
            if rng.random() < 0.5:  # a new address, anywhere in the order (the low leaf moves)
                address = rng.choice((rng.randbytes(20), b"\xff" * 19 + rng.randbytes(1),
                                      b"\x00" * 19 + rng.randbytes(1)))
            else:
                address = rng.choice(addresses)
            changes[address] = Account(rng.randrange(2**63), rng.randrange(2**256))  # the store: int64 nonces
        before = tree.count
        tree.update(changes.items())
        reference.update(changes.items())
        assert tree.count == reference.count
        assert tree.root() == reference.root(), f"block {number}"
        addresses += [a for a in changes if a not in addresses]
        write_block(store, number, tree, before, changes)
        if number % 7 == 0:  # a restart: nothing cached
            tree = StoredAccountTree(store, store.account_count())
        elif number % 3 == 0:
            tree.evict(max_nodes=10, max_addresses=3)
        assert tree.root() == reference.root()
        for address in [*rng.sample(addresses, min(5, len(addresses))), rng.randbytes(20)]:
            assert tree.prove(address) == reference.prove(address)
            assert tree.index_of(address) == reference.index_of(address)
        assert tree.prove_slot(tree.count) == reference.prove_slot(reference.count)
    tree.update([])  # an empty block changes no node: nothing to write
    assert tree.take_writes() == {}
    # the store holds exactly the rule's nodes: nothing stale, nothing missing
    assert stored_nodes(storage.connection) == dict(reference.nodes())
    # a store that lacks a node says so (the chain then rebuilds the tree from the account rows)
    storage.connection.execute("UPDATE accounts SET leaf = NULL WHERE slot = 1")  # node_key(0, 1)
    storage.connection.commit()
    with pytest.raises(LookupError):
        StoredAccountTree(store, store.account_count()).prove_slot(0)  # slot 1 is a sibling
    storage.connection.execute("DELETE FROM account_nodes WHERE key = ?", (node_key(MERKLE_DEPTH, 0),))
    storage.connection.commit()
    with pytest.raises(LookupError):
        StoredAccountTree(store, store.account_count()).root()
    store.close()
    storage.close()


def stored_nodes(db: sqlite3.Connection) -> dict[int, bytes]:
    """The stored tree's nodes by node_key: the inner ones, and the leaves in the accounts' rows."""
    nodes = dict(db.execute("SELECT key, hash FROM account_nodes"))
    leaves = {node_key(0, slot): leaf for slot, leaf in db.execute("SELECT slot, leaf FROM accounts")}
    assert not nodes.keys() & leaves.keys()  # no leaf stored twice
    return {**nodes, **leaves}


def stored_tree_is_rebuilt_tree(db_path: pathlib.Path) -> int:
    """The account rows, rebuilt from scratch into the rule's tree, give the head's state root, and
    the stored nodes are exactly that tree's: the number of accounts."""
    db = sqlite3.connect(db_path)
    (text,) = db.execute("SELECT header FROM blocks ORDER BY number DESC LIMIT 1").fetchone()
    rows = db.execute("SELECT address, nonce, balance FROM accounts ORDER BY slot").fetchall()
    rebuilt = AccountTree([(bytes(a), Account(int(n), int(b))) for a, n, b in rows])
    assert rebuilt.root() == header_from_json(text).state_root
    assert stored_nodes(db) == dict(rebuilt.nodes())
    db.close()
    return len(rows)


def test_kill_9_while_sealing_leaves_the_tree_a_rebuild_gives(node: Any, tmp_path: pathlib.Path) -> None:
    """Transfers to fresh addresses (every block grows the tree and moves low leaves) while the worker
    is killed three times; each restart checks the stored root against the head's (or is not
    SERVING), after each kill the stored nodes are those a rebuild from the account rows gives, and at the end
    the stored nodes equal a from-scratch rebuild and every block replays to its root."""
    rng = random.Random(3)
    nonces = dict.fromkeys(range(4), 0)

    def batch(size: int) -> list[bytes]:
        raws = []
        for _ in range(size):
            sender = rng.randrange(4)
            fields = UnsignedTransaction(DEFAULT_CHAIN_ID, nonces[sender], GWEI, 10 * GWEI, 21_000,
                                         rng.randbytes(20), 1 + rng.randrange(1000))
            raws.append(sign_transaction(fields, DEV_PRIVATE_KEYS[sender]))
            nonces[sender] += 1
        return raws

    seq = node()
    for _ in range(3):
        stop = threading.Event()
        acked = [0]

        def pump(address: str = seq.address, stop: threading.Event = stop, acked: list[int] = acked) -> None:
            channel = grpc.insecure_channel(address)
            stub = pb_grpc.SequencerServiceStub(channel)
            while not stop.is_set():
                try:
                    stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=batch(50)), timeout=5)
                except grpc.RpcError:
                    break  # killed mid-call
                acked[0] += 50
            channel.close()

        sender = threading.Thread(target=pump)
        sender.start()
        deadline = time.monotonic() + 30
        while acked[0] < 400 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.random() * 0.05)  # somewhere in a block's seal or write
        os.kill(seq.proc.pid, signal.SIGKILL)
        stop.set()
        sender.join(30)
        seq.proc.wait()
        seq.channel.close()
        stored_tree_is_rebuilt_tree(tmp_path / "data" / "sequencer.db")
        seq = node()
        # the batch in flight at the kill may not have been acknowledged: go on from the nonces the
        # chain reaches once the pending log's transactions are sealed again
        settled = {s: -1 for s in nonces}
        while any(settled[s] != nonces[s] for s in nonces):
            settled = nonces.copy()
            time.sleep(0.3)
            for s in nonces:
                reply = seq.stub.GetAccount(pb.GetAccountRequest(address="0x" + DEV_ACCOUNTS[s].hex()), timeout=5)
                nonces[s] = int(reply.nonce)
    assert seq.stop() == 0
    assert stored_tree_is_rebuilt_tree(tmp_path / "data" / "sequencer.db") > 1_000
    replay_matches_stored_roots(tmp_path / "data" / "sequencer.db")


def test_a_store_with_leaves_in_account_nodes_moves_them_to_the_accounts_rows(tmp_path: pathlib.Path) -> None:
    """A database from before the leaves moved into the accounts' rows (every node a row of
    account_nodes, no leaf column) opens with them moved, once, and its tree gives the same root."""
    rng = random.Random(11)
    path = tmp_path / "sequencer.db"
    storage = Storage(path)
    store = SequencerStore(storage.connection, storage.path)
    accounts = [(rng.randbytes(20), Account(rng.randrange(100), rng.randrange(10**20))) for _ in range(300)]
    reference = AccountTree(accounts)
    rows = [AccountRow(a, slot, acct) for slot, (a, acct) in enumerate(reference.items())]
    genesis = BlockWrite(0, bytes(32), "{}", new_accounts=rows, nodes=dict(reference.nodes()))
    asyncio.run(store.run(lambda db: store.seal_block(db, genesis)))
    store.close()
    db = storage.connection  # the old layout: the leaves back in account_nodes, no leaf column
    db.execute("INSERT INTO account_nodes (key, hash) SELECT slot, leaf FROM accounts")
    db.execute("CREATE TABLE old (address BLOB PRIMARY KEY, slot INTEGER NOT NULL UNIQUE, nonce INTEGER NOT NULL, "
               "balance TEXT NOT NULL)")
    db.execute("INSERT INTO old SELECT address, slot, nonce, balance FROM accounts")
    db.execute("DROP TABLE accounts")
    db.execute("ALTER TABLE old RENAME TO accounts")
    storage.close()
    for _ in range(2):  # the second open finds nothing to move
        storage = Storage(path)
        store = SequencerStore(storage.connection, storage.path)
        assert stored_nodes(storage.connection) == dict(reference.nodes())
        tree = StoredAccountTree(store, store.account_count())
        assert tree.root() == reference.root()
        assert tree.prove(accounts[7][0]) == reference.prove(accounts[7][0])
        store.close()
        storage.close()
