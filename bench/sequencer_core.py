"""Throughput of the sequencer's deterministic core, one core, no gRPC, no I/O.

    .venv/bin/python bench/sequencer_core.py [--txs 20000] [--accounts 10000,100000] [--repeat 5]

Prints figures only (no assertions): decode_transactions (RLP + checks + sender recovery, the
common shape all in one C call), hashing and recovery alone (its floor), the Python decoder's
parse and checks (the path of refusals and uncommon shapes), apply_transaction, and the
per-block account-tree update for 7,500 touched accounts, 4-ary (the rule) against binary.
This machine is shared and noisy: each figure is the best of --repeat runs, with the median.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol import Account, AccountTree, BlockEnv, MerkleTree, State, apply_transaction, keccak256, recover_senders
from protocol._tx import (
    Transaction,
    _check,
    decode_transaction,
    decode_transactions,
)
from services.l1 import UnsignedTransaction, sign_transaction

CHAIN = 901
TOUCHED = 7_500  # accounts one 250 ms block touches at 15k tx/s (sender + recipient each)


def timed(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) seconds of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def line(label: str, best: float, median: float, per: int, unit: str = "tx") -> None:
    print(
        f"  {label:<46} {per / best:>10,.0f} {unit}/s  ({best / per * 1e6:6.1f} us/{unit} best,"
        f" {median / per * 1e6:6.1f} median)"
    )


def bench_decode(n: int, repeat: int) -> list[Transaction]:
    keys = [keccak256(b"bench key %d" % i) for i in range(200)]
    raws = [
        sign_transaction(
            UnsignedTransaction(CHAIN, i // 200, 10**9, 2 * 10**9, 21_000, keccak256(b"to %d" % i)[:20], 10**15 + i),
            keys[i % 200],
        )
        for i in range(n)
    ]
    gc.collect()
    gc.freeze()
    print(f"decode ({n:,} signed EIP-1559 transfers from 200 keys, {len(raws[0])} bytes each)")
    best, median = timed(lambda: decode_transactions(raws, CHAIN), repeat)
    line("decode_transactions (batch)", best, median, n)
    best, median = timed(lambda: [decode_transaction(r, CHAIN) for r in raws], repeat)
    line("decode_transaction (one call each)", best, median, n)

    # the floor: hashing and recovery alone (one C call), and everything else (the Python checks)
    txs = decode_transactions(raws, CHAIN)
    decoded = [t for t in txs if isinstance(t, Transaction)]
    jobs = []
    for raw in raws:
        fields = _check(raw, CHAIN, 1 << 17)
        jobs.append((raw, fields[12], fields[13]))
    best, median = timed(lambda: recover_senders(jobs), repeat)
    line("  its floor: hashing and sender recovery (C, no GIL)", best, median, n)
    best, median = timed(lambda: [_check(r, CHAIN, 1 << 17) for r in raws], repeat)
    line("  the Python path's parse and checks (not taken here)", best, median, n)

    # recovery releases the GIL: two threads on this 2-core machine
    pool = ThreadPoolExecutor(2)

    def two_threads() -> None:
        decode_transactions(raws, CHAIN, executor=pool)

    best, median = timed(two_threads, repeat)
    line("decode_transactions(executor=2 threads)", best, median, n)
    pool.shutdown()
    gc.unfreeze()
    return decoded


def bench_execution(decoded: list[Transaction], repeat: int) -> None:
    print(f"execution ({len(decoded):,} transfers, 200 senders, all-new recipients)")
    senders = {t.sender for t in decoded}
    env = BlockEnv(1, 0, 10**9)

    def run() -> None:
        state = State((s, Account(0, 10**24)) for s in sorted(senders))
        state.commit()
        used = 0
        for t in decoded:
            used += apply_transaction(state, t, env, 0).gas_used

    best, median = timed(run, repeat)
    line("apply_transaction", best, median, len(decoded))
    block = decoded[: TOUCHED // 2]
    state = State((s, Account(0, 10**24)) for s in sorted(senders))
    state.commit()
    for t in block:
        apply_transaction(state, t, env)
    start = time.perf_counter()
    state.commit()
    elapsed = time.perf_counter() - start
    print(
        f"  commit after a block of {len(block):,} transfers ({len(block) + 200:,} accounts written):"
        f" {elapsed * 1e3:.1f} ms"
    )


def bench_commitment(sizes: list[int], repeat: int) -> None:
    print(f"commitment: one batch update of {TOUCHED:,} touched accounts (root included)")
    rng = random.Random(1)
    for n in sizes:
        update_existing, insert_new, build = _account_tree_runs(n, rng)
        best_u, median_u = timed(update_existing, repeat)
        best_i, median_i = timed(insert_new, repeat)
        gc.unfreeze()
        print(
            f"  {n:>9,} accounts: build {build * 1e3:7.0f} ms | update existing {best_u * 1e3:5.1f} ms best,"
            f" {median_u * 1e3:5.1f} median | insert new {best_i * 1e3:5.1f} ms best, {median_i * 1e3:5.1f} median"
        )

    print(f"  the tree alone (leaf hashes given), {TOUCHED:,} random slots rehashed:")
    for n in sizes:
        leaves = [os.urandom(32) for _ in range(n)]
        fresh = [os.urandom(32) for _ in range(TOUCHED)]
        for arity, depth in ((4, 16), (2, 32)):
            merkle = MerkleTree(leaves, arity=arity, depth=depth)
            batches = iter([dict(zip(rng.sample(range(n), TOUCHED), fresh, strict=True)) for _ in range(repeat)])
            best, median = timed(partial(_update_next, merkle, batches), repeat)
            print(
                f"    {n:>9,} leaves, arity {arity}, depth {depth}:"
                f" {best * 1e3:5.1f} ms best, {median * 1e3:5.1f} median"
            )

    # a plain sparse Merkle tree keyed by keccak(address): depth 256, paths share only their
    # top ~log2(7500) levels. Count its node hashes; cost them at this machine's per-node price.
    nodes = sum(min(TOUCHED, 2**level) for level in range(256))
    data = [os.urandom(64) for _ in range(100_000)]
    best, _ = timed(lambda: [keccak256(d) for d in data], repeat)
    per_hash = best / len(data)
    print(
        f"  plain SMT (depth 256): {nodes:,} node hashes for {TOUCHED:,} accounts x {per_hash * 1e6:.2f} us"
        f" (bare keccak of 64 B) >= {nodes * per_hash * 1e3:,.0f} ms"
    )


def _update_next(tree: MerkleTree, batches: Iterator[dict[int, bytes]]) -> None:
    tree.update(next(batches))


def _account_tree_runs(n: int, rng: random.Random) -> tuple[Callable[[], None], Callable[[], None], float]:
    """A tree of n accounts; (update 7,500 of them, insert 7,500 new ones, build seconds)."""
    addresses = [os.urandom(20) for _ in range(n)]
    start = time.perf_counter()
    tree = AccountTree((a, Account(1, 10**18)) for a in addresses)
    tree.root()
    build = time.perf_counter() - start
    changes = iter([[(a, Account(2 + k, 10**18 - k)) for a in rng.sample(addresses, TOUCHED)] for k in range(50)])
    fresh = iter([[(os.urandom(20), Account(0, 5)) for _ in range(TOUCHED)] for _ in range(50)])
    gc.collect()
    gc.freeze()

    def update_existing() -> None:
        tree.update(next(changes))
        tree.root()

    def insert_new() -> None:
        tree.update(next(fresh))
        tree.root()

    return update_existing, insert_new, build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--txs", type=int, default=20_000)
    parser.add_argument("--accounts", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"$ .venv/bin/python bench/sequencer_core.py --txs {args.txs} --accounts {args.accounts} --repeat {args.repeat}"
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus\n")
    decoded = bench_decode(args.txs, args.repeat)
    print()
    bench_execution(decoded, args.repeat)
    print()
    bench_commitment([int(x) for x in args.accounts.split(",")], args.repeat)


if __name__ == "__main__":
    main()
