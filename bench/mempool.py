"""Mempool throughput: add_many, select and on_block, in this process, one core.

    python bench/mempool.py [--rounds 5]

(a) add_many, no limit hit: 100,000 transactions (6,250 senders x 16 nonces, fee-varied) in
    batches of 500, as SendRawTransactions hands them over, into a pool sized to hold them all.
(b) add_many overloaded: the same into the default limits (4,096 pending / 1,024 queued): most
    are refused POOL_FULL or evict a cheaper tail; shows the refusal and eviction paths' cost.
(c) block cycle at the default limits: per 250 ms block, add 3,750 transactions (15,000 tx/s)
    from rotating senders, select(max_count=3,750) and on_block() the selection; reports the
    pool's own ceiling in tx/s through all three, and select / on_block ms per block.

Transactions are built directly (the pool does not check signatures); no wall clock enters the
pool: `now` is a counter. The per-block max figures include CPython's generation-2 garbage
collections over the bench's live objects. This machine is shared and noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protocol import Transaction  # noqa: E402
from services.sequencer._mempool import (  # noqa: E402
    AccountState,
    AddResult,
    Mempool,
    MempoolConfig,
)

RICH = 10**30
GAS = 21_000
BASE_FEE = 10**8
BATCH = 500
TO = bytes.fromhex("ee" * 20)


def make_tx(sender: int, nonce: int) -> Transaction:
    tip = 1 + (sender * 7 + nonce * 13) % 50  # deterministic spread of prices, for eviction
    return Transaction(
        chain_id=901,
        nonce=nonce,
        max_priority_fee_per_gas=tip * 10**6,
        max_fee_per_gas=BASE_FEE * 2 + tip * 10**6,
        gas_limit=GAS,
        to=TO,
        value=1,
        data=b"",
        access_list=(),
        y_parity=0,
        r=1,
        s=1,
        sender=sender.to_bytes(20, "big"),
        hash=hashlib.sha256(b"%d/%d" % (sender, nonce)).digest(),
        raw=bytes(110),
    )


def funded(_sender: bytes) -> AccountState:
    return AccountState(0, RICH)


def timed_adds(pool: Mempool, txs: list[Transaction]) -> tuple[float, int, int]:
    """Seconds for add_many over ``txs`` in batches; (seconds, accepted, refused)."""
    accepted = refused = 0
    start = time.perf_counter()
    for i in range(0, len(txs), BATCH):
        for outcome in pool.add_many(txs[i : i + BATCH], float(i)):
            if isinstance(outcome, AddResult):
                accepted += 1
            else:
                refused += 1
    return time.perf_counter() - start, accepted, refused


def bench_adds(rounds: int, config: MempoolConfig) -> tuple[list[float], Mempool, int, int]:
    txs = [make_tx(s, n) for n in range(16) for s in range(6_250)]
    rates: list[float] = []
    pool = Mempool(config)
    accepted = refused = 0
    for _ in range(rounds):
        pool = Mempool(config, account_state=funded)
        seconds, accepted, refused = timed_adds(pool, txs)
        rates.append(len(txs) / seconds)
    return rates, pool, accepted, refused


def bench_cycle(blocks: int, per_block: int, senders: int) -> tuple[float, list[float], list[float], int]:
    """Steady state: (tx/s through add+select+on_block, select ms, on_block ms, txs sealed)."""
    accounts: dict[bytes, AccountState] = {}

    def lookup(sender: bytes) -> AccountState:
        return accounts.get(sender, AccountState(0, RICH))

    pool = Mempool(account_state=lookup, base_fee=BASE_FEE)
    next_nonce = [0] * senders
    batches: list[list[Transaction]] = []
    for b in range(blocks):
        batch = []
        for j in range(per_block):
            s = (b * per_block + j) % senders
            batch.append(make_tx(s, next_nonce[s]))
            next_nonce[s] += 1
        batches.append(batch)
    select_ms: list[float] = []
    block_ms: list[float] = []
    sealed = 0
    start = time.perf_counter()
    for b, batch in enumerate(batches):
        for i in range(0, len(batch), BATCH):
            pool.add_many(batch[i : i + BATCH], b * 0.25)
        t0 = time.perf_counter()
        chosen = pool.select(BASE_FEE, per_block * GAS, per_block)
        t1 = time.perf_counter()
        changed: dict[bytes, AccountState] = {}
        for tx in chosen:
            state = lookup(tx.sender)
            changed[tx.sender] = accounts[tx.sender] = AccountState(state.nonce + 1, state.balance - 10**15)
        t2 = time.perf_counter()
        pool.on_block(chosen, changed, BASE_FEE)
        t3 = time.perf_counter()
        select_ms.append((t1 - t0) * 1000)
        block_ms.append((t3 - t2) * 1000)
        sealed += len(chosen)
    elapsed = time.perf_counter() - start
    return blocks * per_block / elapsed, select_ms, block_ms, sealed


def fmt(rates: list[float]) -> str:
    return f"median {statistics.median(rates):>9,.0f}/s  best {max(rates):>9,.0f}/s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    cmd = "python bench/mempool.py" + (f" --rounds {args.rounds}" if args.rounds != 5 else "")
    print(f"# mempool, one core, {args.rounds} rounds of 100,000 adds each")
    print(f"# command: {cmd}   ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")

    roomy: Callable[[], MempoolConfig] = lambda: MempoolConfig(global_slots=100_000, global_queue=100_000)  # noqa: E731
    rates, pool, accepted, refused = bench_adds(args.rounds, roomy())
    print(f"(a) add_many, no limit hit:       {fmt(rates)}  ({accepted:,} pending+queued)")
    rates, pool, accepted, refused = bench_adds(args.rounds, MempoolConfig())
    stats = pool.statistics()
    print(
        f"(b) add_many, default limits:     {fmt(rates)}  ({accepted:,} accepted, {refused:,} refused, "
        f"{stats.evictions:,} evictions; pool {stats.pending:,} pending / {stats.queued:,} queued)"
    )
    tps, select_ms, block_ms, sealed = bench_cycle(blocks=40, per_block=3_750, senders=20_000)
    print(
        f"(c) block cycle, 3,750 tx/block:  {tps:>9,.0f} tx/s through add+select+on_block "
        f"({sealed:,} sealed); per block: select p50 {statistics.median(select_ms):.1f} ms "
        f"max {max(select_ms):.1f} ms, on_block p50 {statistics.median(block_ms):.1f} ms max {max(block_ms):.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
