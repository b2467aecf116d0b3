"""The stored account tree's cost per block and per cold read, A/B between source trees in one run.

What a sealed block pays for the persisted tree (protocol.StoredAccountTree): its ``update`` (reads
the siblings it lacks, rehashes the paths), ``take_writes`` and the durable SQLite commit of the
block's account rows and tree rows; and what a restart pays: the top node, then a cold proof. Each
tree under test runs in its own process with its own database (a tree's schema is its own), rounds
alternating, so one run compares them on the same machine at the same time::

    python bench/stored_tree.py --ab . /tmp/base-tree --accounts 1000000 --blocks 30 --rounds 2

``--ab`` takes source trees (a checkout, or ``git archive`` of a commit with protocol/_native*.so
copied in); a tree alone: ``--tree DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One tree's figures (runs with that tree first on sys.path)."""
    from protocol import ZERO_ADDRESS, Account, AccountTree, StoredAccountTree
    from services.runtime._storage import Storage
    from services.sequencer._store import AccountRow, BlockWrite, SequencerStore

    rng = random.Random(args.seed)
    by_address = "Mapping" in str(BlockWrite.__dataclass_fields__["changed_accounts"].type)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="stored_tree_", dir=args.dir))
    storage = Storage(workdir / "sequencer.db")
    store = SequencerStore(storage.connection, storage.path)
    addresses = [ZERO_ADDRESS, *(rng.randbytes(20) for _ in range(args.accounts - 1))]
    accounts = {a: Account(1, 10**18) for a in addresses}
    t0 = time.perf_counter()
    reference = AccountTree(list(accounts.items())[1:])
    rows = [AccountRow(a, slot, accounts[a]) for slot, a in enumerate(addresses)]
    genesis = BlockWrite(0, bytes(32), "{}", new_accounts=rows, nodes=dict(reference.nodes()))
    asyncio.run(store.run(functools.partial(store.seal_block, block=genesis)))
    build_s = time.perf_counter() - t0
    del reference, genesis, rows

    def reopen() -> StoredAccountTree:
        return StoredAccountTree(store, store.account_count())

    tree = reopen()
    update_ms: list[float] = []
    write_ms: list[float] = []
    counts: list[int] = []
    nbytes: list[int] = []
    for number in range(1, args.blocks + 1):
        changes: dict[bytes, Account] = {}
        for _ in range(args.touched):
            a = rng.choice(addresses)
            changes[a] = Account(number + 1, rng.randrange(10**18))
        for _ in range(args.new):
            changes[rng.randbytes(20)] = Account(0, rng.randrange(10**18))
        before = tree.count
        t0 = time.perf_counter()
        tree.update(changes.items())
        nodes = tree.take_writes()
        t1 = time.perf_counter()
        new = [AccountRow(a, slot, acct) for a, acct in changes.items()
               if (slot := tree.index_of(a)) is not None and slot >= before]
        created = {row.address for row in new}
        changed = {a: v for a, v in changes.items() if a not in created}
        block = BlockWrite(number, number.to_bytes(32, "big"), "{}", new_accounts=new, nodes=nodes,
                           changed_accounts=changed if by_address else  # a tree before 2026-12-07: by address
                           [AccountRow(a, s, v) for a, v in changed.items() if (s := tree.index_of(a)) is not None])
        t2 = time.perf_counter()
        asyncio.run(store.run(functools.partial(store.seal_block, block=block)))
        t3 = time.perf_counter()
        addresses += [row.address for row in new]
        tree.evict(1 << 18, 1 << 17)
        update_ms.append((t1 - t0) * 1e3)
        write_ms.append((t3 - t2) * 1e3)
        counts.append(len(nodes))
        nbytes.append(sum(len(v) for v in nodes.values()))
    # a restart: the top node, then cold proofs (one path's siblings each)
    t0 = time.perf_counter()
    tree = reopen()
    tree.root()
    open_ms = (time.perf_counter() - t0) * 1e3
    proof_ms = []
    for a in rng.sample(addresses, 20):
        t0 = time.perf_counter()
        tree.prove(a)
        proof_ms.append((time.perf_counter() - t0) * 1e3)
    db_mb = sum(f.stat().st_size for f in workdir.iterdir()) / 1e6
    store.close()
    storage.close()
    for f in workdir.iterdir():
        f.unlink()
    workdir.rmdir()
    return {"build_s": build_s, "update_ms": update_ms, "write_ms": write_ms, "rows": counts, "bytes": nbytes,
            "open_ms": open_ms, "proof_ms": proof_ms, "db_mb": db_mb}


def summary(tree: str, r: dict[str, Any]) -> str:
    def med(xs: list[float]) -> str:
        return f"{statistics.median(xs):.1f}"

    commit = [u + w for u, w in zip(r["update_ms"], r["write_ms"], strict=True)]
    return (f"{tree}: update+take_writes {med(r['update_ms'])} ms, durable write {med(r['write_ms'])} ms, "
            f"both {med(commit)} ms (p90 {statistics.quantiles(commit, n=10)[-1]:.1f}) | tree rows/block "
            f"{statistics.median(r['rows']):.0f}, {statistics.median(r['bytes']) / 1e3:.0f} KB | reopen+root "
            f"{r['open_ms']:.2f} ms, cold proof {med(r['proof_ms'])} ms | db {r['db_mb']:.0f} MB "
            f"(built in {r['build_s']:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ab", nargs="+", metavar="TREE", help="source trees to compare, alternating")
    parser.add_argument("--tree", help="measure this source tree alone (JSON on stdout)")
    parser.add_argument("--accounts", type=int, default=200_000)
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--touched", type=int, default=8_000, help="existing accounts a block changes")
    parser.add_argument("--new", type=int, default=200, help="accounts a block creates")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where the databases go (default: the temp dir)")
    args = parser.parse_args()
    if args.tree:
        print(json.dumps(measure(args)))
        return
    trees = args.ab or ["."]
    print("$ python " + " ".join(sys.argv), flush=True)
    passthrough = [f"--{k}={v}" for k, v in vars(args).items() if k in ("accounts", "blocks", "touched", "new", "seed")]
    if args.dir:
        passthrough.append(f"--dir={args.dir}")
    for round_ in range(1, args.rounds + 1):
        for tree in trees:
            root = str(pathlib.Path(tree).resolve())
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--tree", root, *passthrough],
                                 cwd=root, env={**os.environ, "PYTHONPATH": root}, check=True,
                                 capture_output=True, text=True).stdout
            load = os.getloadavg()[0]
            print(f"round {round_}, load {load:.1f}, " + summary(tree, json.loads(out.splitlines()[-1])), flush=True)


if __name__ == "__main__":
    main()
