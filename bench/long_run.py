"""A long run: does the sequencer's sealed rate hold as the chain grows? (issue 15 item 4)

    .venv/bin/python bench/long_run.py --transfers 10000000 [--window 250000] [--accounts 4000]
        [--recipients 1000000]

A real sequencer worker (bench/sequencer_throughput.py's ``Sequencer``: no batcher, tracing off,
a fresh data dir) takes ``--transfers`` transfers from ``--accounts`` funded senders through
SendRawTransactions (``--batch`` a call, ``--inflight`` outstanding, as fast as it acknowledges, and
at most ``--backlog`` sent and not yet sealed: a flat-out load filled the 262k-transaction pool, stalled
its calls past two minutes, and made RSS the pool's).
Transfer i goes to the fresh address number i mod ``--recipients``: the first ``--recipients``
transfers each create an account (so the state reaches that many accounts), the rest pay
accounts that exist, scattered over the tree. Every transfer is signed before the clock starts,
on every core, into a file (``--signed``, reused when it already holds them: ~110 bytes a
transfer), which the load then streams: signing does not share the machine with the run.

Every ``--window`` sealed transfers it prints one line, so the curve is visible: transfers sealed,
the window's sealed tx/s, the sequencer's CPU per transfer over the window (all its threads,
/proc), its RSS, the accounts, sequencer.db's bytes (with its WAL, up to ~40 MB) and per sealed
transfer, the pending log's, and the machine's load average. At the end, each table's and index's
bytes (SQLite's dbstat) per transfer. ``--keep DIR`` keeps the data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import pathlib
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator

import grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.restart_latency import rss_mb
from bench.sequencer_throughput import (
    GRPC_OPTIONS,
    Sequencer,
    _sign_accounts,
    process_cpu,
    write_genesis,
)
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc


def sign_chunk(accounts: int, first_nonce: int, nonces: int, recipients: int) -> bytes:
    """Nonces first_nonce.. of every sender, nonce-major, each to a fresh address mod ``recipients``:
    each raw transfer after its 2-byte length."""
    by_account = _sign_accounts(0, accounts, accounts, nonces, fresh=True, first_nonce=first_nonce,
                                recipients=recipients)
    return b"".join(len(raw).to_bytes(2, "big") + raw for n in range(nonces) for a in range(accounts)
                    for raw in (by_account[a][n],))


def sign_all(path: pathlib.Path, args: argparse.Namespace) -> None:
    """Every transfer of the run into ``path`` (in send order), unless it is there already."""
    stamp = path.with_suffix(".done")  # "transfers accounts recipients" of what the file holds
    rounds = -(-args.transfers // args.accounts)  # nonces per sender
    if stamp.exists():
        held, accounts, recipients = map(int, stamp.read_text().split())
        if held >= rounds * args.accounts and (accounts, recipients) == (args.accounts, args.recipients):
            return  # a longer run's file starts with this run's transfers
    step = 8
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(os.cpu_count()) as pool, path.open("wb") as out:
        firsts = range(0, rounds, step)
        for blob in pool.map(sign_chunk, [args.accounts] * len(firsts), firsts,
                             [min(step, rounds - f) for f in firsts], [args.recipients] * len(firsts)):
            out.write(blob)
    stamp.write_text(f"{rounds * args.accounts} {args.accounts} {args.recipients}")
    print(f"# signed {rounds * args.accounts:,} transfers in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def read_signed(path: pathlib.Path, count: int, batch: int) -> Iterator[list[bytes]]:
    """The first ``count`` transfers of ``path``, ``batch`` at a time."""
    with path.open("rb") as f:
        data = memoryview(f.read())  # ~110 bytes a transfer: 1.1 GB at 10M; read once, sliced
    pos = 0
    out: list[bytes] = []
    for _ in range(count):
        n = int.from_bytes(data[pos : pos + 2], "big")
        out.append(bytes(data[pos + 2 : pos + 2 + n]))
        pos += 2 + n
        if len(out) == batch:
            yield out
            out = []
    if out:
        yield out


def data_bytes(path: pathlib.Path) -> tuple[int, int]:
    """(sequencer.db with its WAL, the pending log with its WAL)."""
    files = [f for f in path.rglob("*") if f.is_file()]
    pending = sum(f.stat().st_size for f in files if ".pending." in f.name)
    return sum(f.stat().st_size for f in files) - pending, pending


def table_bytes(db_path: pathlib.Path) -> list[tuple[str, int]]:
    """Bytes of each table and index of the (stopped) sequencer's database, largest first (dbstat)."""
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return [(str(n), int(b)) for n, b in db.execute(
            "SELECT name, SUM(pgsize) AS b FROM dbstat GROUP BY name ORDER BY b DESC")]
    finally:
        db.close()


async def run(args: argparse.Namespace, tmp: pathlib.Path) -> None:
    genesis = tmp / "genesis.json"
    write_genesis(genesis, args.accounts)
    signed = pathlib.Path(args.signed)
    await asyncio.to_thread(sign_all, signed, args)
    seq = Sequencer(tmp, "long", genesis, None)
    data_dir = tmp / "long"
    sealed = sent = refused = 0
    try:
        await seq.serving()
        pid = seq.proc.pid

        async with grpc.aio.insecure_channel(seq.address, options=GRPC_OPTIONS) as ch:
            stub = pb_grpc.SequencerServiceStub(ch)
            head = (await stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=10)).unsafe_block
            stream = stub.SubscribeBlocks(pb.SubscribeBlocksRequest(from_number=head + 1))
            start = time.perf_counter()
            mark = (start, process_cpu(pid), 0)
            print(f"$ {shlex.join(['python', 'bench/long_run.py', *sys.argv[1:]])}", flush=True)
            print("| sealed | window s | window tx/s | total tx/s | seq CPU us/tx | RSS MB | accounts "
                  "| sequencer.db + WAL MB | B/transfer | pending log MB | load |", flush=True)
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)

            async def follow() -> None:
                nonlocal sealed, mark
                async for msg in stream:
                    sealed += len(msg.block.transaction_hashes)
                    progress.set()
                    while sealed - mark[2] >= args.window or (sealed >= args.transfers - refused and sealed > mark[2]):
                        now, cpu = time.perf_counter(), process_cpu(pid)
                        n = sealed - mark[2]
                        size, other = data_bytes(data_dir)
                        accounts = args.accounts + 1 + min(sealed, args.recipients)
                        print(f"| {sealed:,} | {now - mark[0]:.1f} | {n / (now - mark[0]):,.0f} "
                              f"| {sealed / (now - start):,.0f} | {(cpu - mark[1]) / n * 1e6:.0f} | {rss_mb(pid):.0f} "
                              f"| {accounts:,} | {size / 1e6:,.0f} | {size / sealed:.0f} | {other / 1e6:,.0f} "
                              f"| {os.getloadavg()[0]:.1f} |", flush=True)
                        mark = (now, cpu, sealed)
                    if sealed >= args.transfers - refused:
                        return

            async def send(raws: list[bytes]) -> None:
                nonlocal refused
                reply = await stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=raws),
                                                       timeout=120)
                refused += sum(1 for r in reply.results if r.HasField("error"))

            progress = asyncio.Event()
            follower = asyncio.create_task(follow())
            slots = asyncio.Semaphore(args.inflight)

            def done(task: asyncio.Task[None]) -> None:
                slots.release()
                tasks.discard(task)
            tasks: set[asyncio.Task[None]] = set()
            for raws in read_signed(signed, args.transfers, args.batch):
                while sent - sealed >= args.backlog:  # the pool holds the load, not a run's backlog
                    progress.clear()
                    await progress.wait()
                await slots.acquire()
                task = asyncio.create_task(send(raws))
                task.add_done_callback(done)
                tasks.add(task)
                sent += len(raws)
            await asyncio.gather(*tasks)
            await follower
        elapsed = time.perf_counter() - start
        print(f"\n{sealed:,} sealed of {sent:,} sent ({refused:,} refused) in {elapsed:.0f} s: "
              f"{sealed / elapsed:,.0f} tx/s overall", flush=True)
    finally:
        seq.stop()  # blocking, not awaited: an interrupted run (Ctrl-C cancels this task) stops it too
        if sealed:
            for name, size in table_bytes(data_dir / "sequencer.db")[:8]:
                print(f"# {name}: {size / 1e6:,.1f} MB, {size / sealed:.1f} B a transfer")
        if args.keep:
            shutil.copytree(data_dir, args.keep, dirs_exist_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--transfers", type=int, default=10_000_000)
    ap.add_argument("--window", type=int, default=250_000, help="sealed transfers a line")
    ap.add_argument("--accounts", type=int, default=4000, help="senders (funded by the genesis)")
    ap.add_argument("--recipients", type=int, default=1_000_000, help="distinct recipients (accounts created)")
    ap.add_argument("--batch", type=int, default=256, help="transfers per SendRawTransactions")
    ap.add_argument("--inflight", type=int, default=4, help="calls outstanding")
    ap.add_argument("--backlog", type=int, default=65_536,
                    help="sent and not yet sealed, at most: sealing sets the pace, and RSS is not a full pool's")
    ap.add_argument("--signed", default="/tmp/l2long-signed.bin", help="the signed transfers' file (kept, reused)")
    ap.add_argument("--keep", default="", help="copy the sequencer's data dir here at the end")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="l2long-") as d, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args, pathlib.Path(d)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
