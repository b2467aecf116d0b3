"""Where the sequencer's CPU goes, thread by thread: its pipeline in one process, no gRPC.

    .venv/bin/python bench/sequencer_threads.py [--accounts 4000] [--per-account 25] [--runs 2]

The sequencer's own parts, wired as the worker wires them (services.sequencer): the intake (its
decode threads), the chain (the event loop's pool, execution, roots and seal), the store (its
writer thread) and the pending log (its writer thread), over a fresh data directory and the
throughput bench's genesis. The load is bench/sequencer_throughput.py's: transfers pre-signed
before any clock starts, handed to ``Intake.submit`` 256 at a time with 4 in flight, as
SendRawTransactions would, while blocks are sealed every 250 ms or at once when a block's
worth waits. Prints, per run, the CPU each thread spent per transaction (from /proc, so C time
without the GIL counts) and the rate everything was sealed at. No figure here is the
throughput bench's: gRPC and the load generator's process are not in it. Use it to see which
thread a change moves time off, run against run; compare within one invocation, this machine
is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import pathlib
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sequencer_throughput import CHAIN_ID, MEMPOOL, presign, write_genesis  # noqa: E402

from protocol import State, load_genesis  # noqa: E402
from services.runtime import open_database  # noqa: E402
from services.sequencer._chain import Chain, Mempools  # noqa: E402
from services.sequencer._intake import Intake  # noqa: E402
from services.sequencer._mempool import Mempool  # noqa: E402
from services.sequencer._ordering import FeePriority  # noqa: E402
from services.sequencer._pending_log import PendingLog  # noqa: E402
from services.sequencer._settings import SequencerSettings  # noqa: E402
from services.sequencer._store import SequencerStore  # noqa: E402

BATCH = 256
IN_FLIGHT = 4


def thread_ticks() -> dict[int, int]:
    """CPU clock ticks (user + system) of each thread of this process, by native thread id."""
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        fields = pathlib.Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks[int(tid)] = int(fields[11]) + int(fields[12])
    return ticks


async def one_run(raws: list[bytes], genesis_file: pathlib.Path, data: pathlib.Path) -> None:
    settings = SequencerSettings.from_mapping({"chain_id": CHAIN_ID, "mempool": MEMPOOL})
    store = SequencerStore(open_database(data / "sequencer.db"), data / "sequencer.db")
    config = settings.mempool_config()

    def new_pool(state: State, base_fee: int) -> Mempool:
        return Mempool(config, policy=FeePriority(), base_fee=base_fee, account_state=state.get)

    pools = Mempools(new_pool)
    log = PendingLog(PendingLog.beside(data / "sequencer.db"))
    intake = Intake(store, log, CHAIN_ID, pools.current, block_txs=settings.max_block_txs,
                    decode_threads=settings.decode_threads)
    chain = Chain(store, load_genesis(genesis_file), pools, intake, max_block_txs=settings.max_block_txs)
    await chain.open()
    gc.freeze()  # as the worker does once started

    slots = asyncio.Semaphore(IN_FLIGHT)
    refused = 0

    async def send(batch: list[bytes]) -> None:
        nonlocal refused
        async with slots:
            refused += sum(not isinstance(o, bytes) for o in await intake.submit(batch))

    async def produce() -> None:
        sealed = 0
        while sealed < len(raws) - refused:
            started = time.monotonic()
            block = await chain.seal()
            sealed += len(block.tx_hashes) if block is not None else 0
            if len(chain.mempool) < settings.max_block_txs:
                await asyncio.sleep(max(0.0, settings.block_time_s - (time.monotonic() - started)))

    before, wall, cpu = thread_ticks(), time.perf_counter(), time.process_time()
    await asyncio.gather(produce(), *(send(raws[i : i + BATCH]) for i in range(0, len(raws), BATCH)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    names = {t.native_id: t.name for t in threading.enumerate()}
    per_tx = 1e6 / os.sysconf("SC_CLK_TCK") / len(raws)
    for tid, ticks in sorted(thread_ticks().items()):
        spent = (ticks - before.get(tid, 0)) * per_tx
        if spent >= 0.05:
            print(f"  {names.get(tid, f'thread {tid}'):<22} {spent:6.1f} us/tx")
    print(f"  {'whole process':<22} {cpu / len(raws) * 1e6:6.1f} us/tx; {len(raws) / wall:,.0f} tx/s sealed, "
          f"{chain.sealed_blocks} blocks, {refused} refused")
    await intake.close()
    store.close()
    gc.unfreeze()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=4000)
    ap.add_argument("--per-account", type=int, default=25)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    raws = presign(args.accounts, args.per_account)
    print(f"$ python bench/sequencer_threads.py --accounts {args.accounts} --per-account {args.per_account} "
          f"--runs {args.runs}")
    print(f"{len(raws):,} transfers from {args.accounts:,} accounts, CPU per transaction by thread:")
    with tempfile.TemporaryDirectory() as tmp:
        genesis = pathlib.Path(tmp) / "genesis.json"
        write_genesis(genesis, args.accounts)
        for run in range(args.runs):
            print(f"run {run + 1}")
            data = pathlib.Path(tmp) / f"run{run}"
            data.mkdir()
            asyncio.run(one_run(raws, genesis, data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
