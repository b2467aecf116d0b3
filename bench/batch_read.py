"""What reading a posted batch back costs a verifier, per transfer, besides sender recovery.

    .venv/bin/python bench/batch_read.py [--txs 3400] [--blocks 4] [--repeat 15]

A batch of ``--txs`` signed transfers in ``--blocks`` blocks (~390 kB: the size the e2e bench posts) is
decoded into its leaves (``decode_batch``), its input root computed (``input_root``: what the inbox
stored, checked by protocol's L1InputReader and again by the rollups worker's Machine.add_batch), the
leaves' hashes alone (``leaf_hash`` each, the rule), and ``_native``'s keccak-256 (the one the decode,
the recovery and the Merkle levels use) of a transfer's size and of the whole batch. Thread CPU time
per transfer, best of ``--repeat``: the machine is shared, and the best run is the one least
disturbed. In-process, no I/O.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sequencer_throughput import presign

from protocol import BatchBlock, _native, decode_batch, encode_batch, input_root
from protocol._batch_input import leaf_hash


def best_us(fn: Callable[[], object], repeat: int, per: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best / per * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, default=3400)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    raws = presign(args.txs, 1)
    per_block = -(-args.txs // args.blocks)
    blocks = [
        BatchBlock(i + 1, 1_700_000_000 + i, 5, bytes(range(32)), tuple(raws[i * per_block : (i + 1) * per_block]))
        for i in range(args.blocks)
    ]
    data = encode_batch(blocks)
    leaves = decode_batch(data)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.txs} transfers, {len(data):,} bytes, {len(leaves)} leaves")
    print(f"decode_batch: {best_us(lambda: decode_batch(data), args.repeat, args.txs):.3f} us a transfer")
    print(f"input_root: {best_us(lambda: input_root(leaves), args.repeat, args.txs):.3f} us a transfer")
    print(
        f"leaf hashes, leaf_hash each: {best_us(lambda: [leaf_hash(x) for x in leaves], args.repeat, args.txs):.3f}"
        " us a transfer"
    )
    one = raws[0]
    small = best_us(lambda: [_native.keccak256(one) for _ in range(10_000)], args.repeat, 10_000)
    large = best_us(lambda: _native.keccak256(data), args.repeat, 1)
    print(f"_native.keccak256, {len(one)} bytes: {small:.3f} us; {len(data):,} bytes: {large:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
