"""What a sealed block's transaction rows cost as the chain grows, A/B between source trees.

    python bench/tx_index.py --ab /tmp/base-tree . --transactions 5000000 [--block-txs 4000]
        [--set RUN_TXS=8192 --set FILTER_WORDS=32768]

The sequencer's durable block write (``SequencerStore.seal_block`` in ``store.run``: one SQLite
transaction, WAL, synchronous=FULL) of blocks of ``--block-txs`` transactions with random 32-byte
hashes (what a keccak gives; the rows are what a sealed transfer writes: ``tx_index`` and
``block_txs``, no account rows), on a fresh database, until ``--transactions``. Every ``--window``
transactions one line: the write's wall time per transaction and its longest block write (wall,
and the writer thread's CPU: what a stall is when the machine is loaded), the
writer thread's CPU per transaction, the
database's bytes (with its WAL) per transaction, the index's runs (``tx_runs``), and the CPU a
lookup by hash costs then (``SequencerStore.settled``, one hash a call: 1,000 sealed ones, one
from each of 1,000 evenly spread blocks, and 1,000 unknown ones); at the end, the longest and the 99th
percentile block write of the whole run, and the CPU of opening the store again and of its first
lookup (an unknown hash: every run's filter read). Each tree in its own process and database, one
after the other per round; ``--tree DIR`` runs one (JSON lines on stdout). ``--set NAME=VALUE`` sets a constant of
``services.sequencer._tx_index`` in a tree that has it (smaller runs: as many runs at 2-3M
transactions as at 10M with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time
from typing import Any


def measure(args: argparse.Namespace) -> None:
    """One tree's lines (runs with that tree first on sys.path)."""
    from protocol import Transaction
    from services.runtime._storage import Storage
    from services.sequencer import _tx_index
    from services.sequencer._store import BlockWrite, SequencerStore

    for setting in args.set:
        name, value = setting.split("=")
        if hasattr(_tx_index, name):
            setattr(_tx_index, name, int(value))
    rng = random.Random(args.seed)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="tx_index_", dir=args.dir))
    storage = Storage(workdir / "sequencer.db")
    store = SequencerStore(storage.connection, storage.path)
    sender, raw = bytes(20), bytes(110)  # a transfer's raw size; its content is never read here
    asyncio.run(store.run(functools.partial(store.seal_block, block=BlockWrite(0, bytes(32), "{}"))))
    number = done = 0
    wall = cpu = longest = longest_cpu = 0.0
    blocks: list[tuple[float, float]] = []  # every block write: (wall, writer CPU)
    sealed: list[bytes] = []  # the first transaction of every block
    while done < args.transactions:
        number += 1
        txs = [Transaction(901, 0, 0, 0, 21_000, sender, 0, b"", (), 0, 0, 0, sender, rng.randbytes(32), raw)
               for _ in range(args.block_txs)]
        block = BlockWrite(number, number.to_bytes(32, "big"), "{}", txs=txs)

        def write(db: Any, block: BlockWrite = block) -> float:
            t = time.thread_time()
            store.seal_block(db, block)
            return t

        t0 = time.perf_counter()
        c0 = asyncio.run(store.run(write))
        took = time.perf_counter() - t0
        wall += took
        longest = max(longest, took)
        block_cpu = asyncio.run(store.run(lambda _: time.thread_time())) - c0  # the writer thread's clock, after COMMIT
        cpu += block_cpu
        longest_cpu = max(longest_cpu, block_cpu)
        blocks.append((took, block_cpu))
        done += len(txs)
        sealed.append(txs[0].hash)
        if done % args.window < args.block_txs:
            size = sum(f.stat().st_size for f in workdir.iterdir())
            runs = store._reader.execute("SELECT COUNT(*) FROM tx_runs").fetchone()[0] if store._reader.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'tx_runs'").fetchone() else 0
            known = [sealed[i * len(sealed) // 1000] for i in range(1000)]
            print(json.dumps({"rows": done, "wall_us": wall / args.window * 1e6, "cpu_us": cpu / args.window * 1e6,
                              "bytes": size / done, "load": os.getloadavg()[0], "max_ms": longest * 1e3,
                              "max_cpu_ms": longest_cpu * 1e3, "runs": runs,
                              "known_us": lookup(store, known),
                              "unknown_us": lookup(store, [rng.randbytes(32) for _ in range(1000)])}), flush=True)
            wall = cpu = longest = longest_cpu = 0.0
    store.close()
    storage.close()
    t0 = time.thread_time()
    storage = Storage(workdir / "sequencer.db")
    store = SequencerStore(storage.connection, storage.path)
    opened = time.thread_time() - t0
    first = lookup(store, [rng.randbytes(32)]) / 1e3
    walls, cpus = sorted(b[0] for b in blocks), sorted(b[1] for b in blocks)
    p99 = len(blocks) * 99 // 100
    print(json.dumps({"worst_ms": walls[-1] * 1e3, "worst_cpu_ms": cpus[-1] * 1e3, "p99_ms": walls[p99] * 1e3,
                      "p99_cpu_ms": cpus[p99] * 1e3, "open_ms": opened * 1e3, "first_lookup_ms": first}),
          flush=True)
    store.close()
    storage.close()
    for f in workdir.iterdir():
        f.unlink()
    workdir.rmdir()


def lookup(store: Any, hashes: list[bytes]) -> float:
    """Microseconds of CPU a hash (this thread's: the reader runs in it), each its own ``settled``
    call (as a receipt asks)."""
    t0 = time.thread_time()
    for h in hashes:
        store.settled([h])
    return (time.thread_time() - t0) / len(hashes) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ab", nargs="+", metavar="TREE", help="source trees to compare, one after the other")
    parser.add_argument("--tree", help="measure this source tree alone (JSON lines on stdout)")
    parser.add_argument("--transactions", type=int, default=2_000_000)
    parser.add_argument("--block-txs", type=int, default=4000)
    parser.add_argument("--window", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where the databases go (default: the temp dir)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a services.sequencer._tx_index constant, where the tree has it")
    args = parser.parse_args()
    if args.tree:
        measure(args)
        return
    print("$ python " + " ".join(sys.argv), flush=True)
    passthrough = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                   if k in ("transactions", "block_txs", "window", "seed")]
    if args.dir:
        passthrough.append(f"--dir={args.dir}")
    passthrough += [f"--set={s}" for s in args.set]
    print("| round | tree | rows | runs | write wall us/tx | longest block write ms: wall / writer CPU "
          "| writer CPU us/tx | db bytes/tx | lookup CPU us: sealed / unknown | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for round_ in range(1, args.rounds + 1):
        for tree in args.ab or ["."]:
            root = str(pathlib.Path(tree).resolve())
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--tree", root, *passthrough],
                                    cwd=root, env={**os.environ, "PYTHONPATH": root}, stdout=subprocess.PIPE,
                                    text=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                r = json.loads(line)
                if "worst_ms" in r:
                    print(f"| {round_} | {tree} | the run's block writes: longest {r['worst_ms']:.0f} ms wall / "
                          f"{r['worst_cpu_ms']:.0f} ms writer CPU, p99 {r['p99_ms']:.0f} / {r['p99_cpu_ms']:.0f}; "
                          f"open again {r['open_ms']:.1f} ms CPU, its first lookup {r['first_lookup_ms']:.1f} ms "
                          "| | | | | | | |", flush=True)
                    continue
                print(f"| {round_} | {tree} | {r['rows']:,} | {r['runs']} | {r['wall_us']:.1f} "
                      f"| {r['max_ms']:.0f} / {r['max_cpu_ms']:.0f} | {r['cpu_us']:.1f} "
                      f"| {r['bytes']:.0f} | {r['known_us']:.1f} / {r['unknown_us']:.1f} | {r['load']:.1f} |",
                      flush=True)
            if proc.wait():
                raise SystemExit(f"{tree}: exit {proc.returncode}")


if __name__ == "__main__":
    main()
