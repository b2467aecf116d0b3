"""Sequencer throughput: signed transactions in, SEALED-and-durable blocks out, over gRPC.

    .venv/bin/python bench/sequencer_throughput.py [--accounts 4000] [--per-account 25] [--rounds 2]

One run measures, side by side:

1. Sustained throughput, send -> SEALED and durable. The sequencer is a real worker process
   (``python -m services.runtime services.sequencer:WORKER``) on a generated genesis that funds
   ``--accounts`` deterministic keys and lifts the block gas limit to 2,000,000,000 (the default
   30M caps a 250 ms block at 1,428 transfers, ~5.7k tx/s). This process is the load generator:
   accounts x per-account transfers, signed before any clock starts, sent nonce-major through
   SendRawTransactions in batches of ``--batch`` with ``--inflight`` calls outstanding (grpc.aio),
   while a SubscribeBlocks stream counts the sealed ones. A block is written before it is
   published, so its message means durable. tx/s = txs sealed / (arrival of the block that
   completes the set - first send). Tracing off (OTEL_SDK_DISABLED=true) and on (OTLP/gRPC export
   to a collector served by this process, which counts the spans), alternating, ``--rounds`` each.
2. Latency at half load: a fresh sequencer, batches paced at half the best tracing-off figure;
   per transaction, its batch's send -> arrival of the SubscribeBlocks message of its block.
3. The machine's ceiling: this process, no gRPC, no pool, no ordering: decode_transactions
   (RLP, checks, sender recovery) and the sequencer's own pending-log append, committed durably
   (WAL, synchronous=FULL) in one transaction per batch; on one thread, and with as many
   batches as there are cores decoded at once on threads (recovery releases the GIL).

Each load run also reports CPU per sealed transaction: the sequencer process (all threads,
from /proc) and this load generator, and how idle the whole machine was meanwhile.

Per-item refusals are counted and printed: any at all means the setup is wrong (pool limits,
funding), not that the figures should be read around them. The load generator shares this
2-core machine with the sequencer, and the machine is shared and noisy: compare within a run.
``--py-spy FILE`` also records the first tracing-off run's sequencer with py-spy (installed
separately: ``.venv/bin/pip install py-spy``): FILE.svg a flame graph, .json speedscope, else
collapsed stacks.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat

import grpc
from coincurve import PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from l2node.node.l1 import free_loopback_port  # noqa: E402
from protocol import Transaction, decode_transactions, keccak256  # noqa: E402
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb  # noqa: E402
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc  # noqa: E402
from services.l1 import UnsignedTransaction, sign_transaction  # noqa: E402
from services.sequencer._pending_log import PendingLog  # noqa: E402

CHAIN_ID = 901
GWEI = 10**9
BLOCK_GAS_LIMIT = 2_000_000_000
#: Pool limits roomy enough that the pool never refuses the load (geth's 4096 global slots
#: would be full within a third of a second at 15k tx/s).
MEMPOOL = {"account_slots": 64, "account_queue": 64, "global_slots": 262_144, "global_queue": 65_536}
GRPC_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


# -- the load: keys, genesis, pre-signed transactions ----------------------------------------


def bench_key(i: int) -> bytes:
    return keccak256(b"l2node bench key %d" % i)


def address_of(key: bytes) -> bytes:
    return keccak256(PrivateKey(key).public_key.format(compressed=False)[1:])[12:]


def fresh_recipient(i: int) -> bytes:
    """The ``i``-th address that no genesis funds: transfers to these each create an account."""
    return keccak256(b"l2node bench recipient %d" % i)[12:]


def _sign_accounts(first: int, last: int, accounts: int, per_account: int, fresh: bool = False,
                   first_nonce: int = 0, recipients: int = 0) -> list[list[bytes]]:
    """Raw transfers of accounts first..last-1, nonces first_nonce.. (per_account of them), each to
    the next account (``fresh``: each to a new address, fresh_recipient(nonce x accounts + sender),
    modulo ``recipients`` if set: past that many, to those again)."""
    out = []
    for a in range(first, last):
        key, to = PrivateKey(bench_key(a)), address_of(bench_key((a + 1) % accounts))
        txs = []
        for n in range(first_nonce, first_nonce + per_account):
            if fresh:
                i = n * accounts + a
                to = fresh_recipient(i % recipients if recipients else i)
            # sign_transaction(fields, key), without deriving the public key again for every nonce
            fields = UnsignedTransaction(CHAIN_ID, n, GWEI, 10 * GWEI, 21_000, to, 1 + n)
            sig = key.sign_recoverable(fields.signing_hash(), hasher=None)
            r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")
            txs.append(fields.encode_signed(sig[64], r, s))
        out.append(txs)
    return out


def presign(accounts: int, per_account: int, fresh: bool = False) -> list[bytes]:
    """Every transaction, nonce-major (all nonce-0 transfers, then all nonce-1, ...), signed on every core
    (``fresh``: every transfer to a new account, see _sign_accounts)."""
    workers = os.cpu_count() or 1
    step = -(-accounts // (workers * 4))
    starts = range(0, accounts, step)
    with ProcessPoolExecutor(workers) as pool:
        parts = pool.map(_sign_accounts, starts, [min(a + step, accounts) for a in starts], repeat(accounts),
                         repeat(per_account), repeat(fresh))
        by_account = [txs for part in parts for txs in part]
    to = fresh_recipient(0) if fresh else address_of(bench_key(1 % accounts))
    first = UnsignedTransaction(CHAIN_ID, 0, GWEI, 10 * GWEI, 21_000, to, 1)
    assert by_account[0][0] == sign_transaction(first, bench_key(0))  # the same bytes as the sequencer's signer
    return [by_account[a][n] for n in range(per_account) for a in range(accounts)]


def write_genesis(path: pathlib.Path, accounts: int) -> None:
    alloc = {"0x" + address_of(bench_key(a)).hex(): str(10**24) for a in range(accounts)}
    path.write_text(json.dumps({"chain_id": CHAIN_ID, "base_fee": str(GWEI), "gas_limit": BLOCK_GAS_LIMIT,
                                "alloc": alloc}))


# -- an OTLP/gRPC collector that counts spans ------------------------------------------------


class SpanCounter(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.by_name: collections.Counter[str] = collections.Counter()

    async def Export(self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
                     ) -> trace_service_pb2.ExportTraceServiceResponse:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                self.by_name.update(s.name for s in ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


# -- the sequencer process -------------------------------------------------------------------


class Sequencer:
    """One ``python -m services.runtime services.sequencer:WORKER`` on a fresh data dir."""

    def __init__(self, tmp: pathlib.Path, name: str, genesis: pathlib.Path, otlp: str | None) -> None:
        self.address = f"127.0.0.1:{free_loopback_port()}"
        settings = {"chain_id": CHAIN_ID, "genesis_file": str(genesis), "mempool": MEMPOOL}
        config = {"service": "sequencer", "address": self.address, "data_dir": str(tmp / name),
                  "drain_s": 0, "grace_s": 1, "log_level": "WARNING", "settings": settings}
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        if otlp is None:
            env["OTEL_SDK_DISABLED"] = "true"
        else:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp
        self.log_path = tmp / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.runtime", "services.sequencer:WORKER", "--config-json",
             json.dumps(config)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self._log,
            start_new_session=True)

    async def serving(self, within_s: float = 60) -> None:
        deadline = time.monotonic() + within_s
        async with grpc.aio.insecure_channel(self.address) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"sequencer exited: {self.log_path.read_text()[-2000:]}")
                with contextlib.suppress(grpc.RpcError):
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError("sequencer not SERVING")
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (so spans are flushed), SIGKILL if it lingers; never leaves it behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


# -- one load run ----------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    sent: int = 0
    accepted: int = 0
    sealed: int = 0
    blocks: int = 0
    biggest_block: int = 0
    first_send: float = 0.0
    last_block: float = 0.0
    complete: bool = False
    rejects: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)
    spans: collections.Counter[str] = field(default_factory=collections.Counter)
    #: CPU seconds over the load: the sequencer process (all threads), this process, the machine idle.
    cpu_sequencer: float = 0.0
    cpu_client: float = 0.0
    idle: float = 0.0
    wall: float = 0.0

    @property
    def seconds(self) -> float:
        return self.last_block - self.first_send

    @property
    def tps(self) -> float:
        return self.sealed / self.seconds if self.seconds > 0 else 0.0


async def drive(run: Run, address: str, batches: Sequence[Sequence[bytes]], hashes: dict[str, int], batch: int,
                inflight: int, rate: float | None, seal_within_s: float) -> None:
    """Send every batch (paced at ``rate`` tx/s, or as fast as ``inflight`` calls allow) and
    follow SubscribeBlocks until every accepted transaction is sealed."""
    sent_at = [0.0] * len(batches)
    seen = bytearray(len(batches) * batch)
    done = asyncio.Event()
    sending = True
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as ch:
        stub = pb_grpc.SequencerServiceStub(ch)
        head = (await stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=10)).unsafe_block
        stream = stub.SubscribeBlocks(pb.SubscribeBlocksRequest(from_number=head + 1))

        async def follow() -> None:
            async for msg in stream:
                now = time.perf_counter()
                tx_hashes = msg.block.transaction_hashes
                run.blocks += 1
                run.biggest_block = max(run.biggest_block, len(tx_hashes))
                for h in tx_hashes:
                    i = hashes.get(h)
                    if i is None or seen[i]:
                        continue
                    seen[i] = 1
                    run.sealed += 1
                    run.latencies.append(now - sent_at[i // batch])
                run.last_block = now
                if not sending and run.sealed >= run.accepted:
                    done.set()

        async def send(i: int, raws: Sequence[bytes]) -> None:
            try:
                reply = await stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=raws),
                                                       timeout=60)
            except grpc.aio.AioRpcError as e:
                run.rejects[f"rpc {e.code().name}"] += len(raws)
                return
            for r in reply.results:
                if r.HasField("error"):
                    run.rejects[r.error.reason] += 1
                else:
                    run.accepted += 1

        follower = asyncio.create_task(follow())
        slots = asyncio.Semaphore(inflight)
        tasks = []
        run.first_send = start = time.perf_counter()
        for i, raws in enumerate(batches):
            if rate is not None:
                await asyncio.sleep(max(0.0, start + i * batch / rate - time.perf_counter()))
            await slots.acquire()
            sent_at[i] = time.perf_counter()
            run.sent += len(raws)
            task = asyncio.create_task(send(i, raws))
            task.add_done_callback(lambda _: slots.release())
            tasks.append(task)
        await asyncio.gather(*tasks)
        sending = False
        if run.sealed >= run.accepted:
            done.set()
        try:
            await asyncio.wait_for(done.wait(), seal_within_s)
            run.complete = True
        except TimeoutError:
            pass
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await follower


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) ``pid`` has used so far."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_idle() -> float:
    """Idle CPU seconds of the whole machine so far, all cores (the first line of /proc/stat)."""
    fields = pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def start_py_spy(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (on-CPU samples, per thread) until SIGINT; the format follows the
    file name: .svg a flame graph, .json speedscope, anything else collapsed stacks."""
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(pathlib.Path(output).suffix, "raw")
    return subprocess.Popen([str(pathlib.Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
                             "--format", fmt, "--output", output, "--rate", "250", "--threads", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def one_run(name: str, tmp: pathlib.Path, genesis: pathlib.Path, txs: Sequence[bytes],
                  hashes: dict[str, int], args: argparse.Namespace, *, otlp: str | None = None,
                  spans: SpanCounter | None = None, rate: float | None = None,
                  py_spy: str | None = None) -> Run:
    run = Run(name)
    batches = [txs[i:i + args.batch] for i in range(0, len(txs), args.batch)]
    seq = Sequencer(tmp, name.replace(" ", "-"), genesis, otlp)
    spy = None
    try:
        await seq.serving()
        if spans is not None:
            spans.by_name.clear()
        if py_spy:
            spy = start_py_spy(seq.proc.pid, py_spy)
            await asyncio.sleep(1.0)  # py-spy attaches
        cpu0, client0, idle0, wall0 = process_cpu(seq.proc.pid), time.process_time(), machine_idle(), time.monotonic()
        await drive(run, seq.address, batches, hashes, args.batch, args.inflight, rate, seal_within_s=120)
        run.cpu_sequencer = process_cpu(seq.proc.pid) - cpu0
        run.cpu_client = time.process_time() - client0
        run.idle = machine_idle() - idle0
        run.wall = time.monotonic() - wall0
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            await asyncio.to_thread(spy.wait, 60)
        await asyncio.to_thread(seq.stop)
    if spans is not None:
        run.spans = collections.Counter(spans.by_name)
    return run


# -- the ceiling -----------------------------------------------------------------------------


async def ceiling(tmp: pathlib.Path, txs: Sequence[bytes], batch: int, threads: int) -> tuple[float, float, float]:
    """(tx/s, decode us/tx, commit us/tx): decode + durable ``batch``-entry appends to the sequencer's
    own pending log, one process, no gRPC, no pool. ``threads`` > 1: that many batches decoded at
    once on a thread pool (decode_transactions(executor=...)), then appended one by one."""
    log = PendingLog(tmp / f"ceiling-{threads}" / "ceiling.pending.db")
    decode = commit = 0.0
    seq = 0
    step = batch * threads
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        for i in range(0, len(txs), step):
            t0 = time.perf_counter()
            decoded = decode_transactions(txs[i:i + step], CHAIN_ID, executor=pool)
            entries = []
            for tx in decoded:
                assert isinstance(tx, Transaction), tx
                seq += 1
                entries.append((seq, tx.raw))
            t1 = time.perf_counter()
            for j in range(0, len(entries), batch):
                await log.append(entries[j:j + batch])
            t2 = time.perf_counter()
            decode += t1 - t0
            commit += t2 - t1
    finally:
        if pool is not None:
            pool.shutdown()
        await log.close()
    n = len(txs)
    return n / (decode + commit), decode / n * 1e6, commit / n * 1e6


# -- report ----------------------------------------------------------------------------------


def pct(xs: list[float], p: int) -> float:
    return statistics.quantiles(sorted(xs), n=100, method="inclusive")[p - 1] * 1000


async def bench(args: argparse.Namespace, tmp: pathlib.Path) -> None:
    total = args.accounts * args.per_account
    t0 = time.perf_counter()
    txs = presign(args.accounts, args.per_account)
    hashes = {"0x" + keccak256(raw).hex(): i for i, raw in enumerate(txs)}
    genesis = tmp / "genesis.json"
    write_genesis(genesis, args.accounts)
    print(f"# signed {total:,} transfers from {args.accounts:,} accounts in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)

    counter = SpanCounter()
    collector = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(counter, collector)
    otlp_port = collector.add_insecure_port("127.0.0.1:0")
    await collector.start()
    runs: list[Run] = []
    try:
        for r in range(args.rounds):
            off = await one_run(f"tracing off {r + 1}", tmp, genesis, txs, hashes, args,
                                py_spy=args.py_spy if r == 0 else None)
            on = await one_run(f"tracing on {r + 1}", tmp, genesis, txs, hashes, args,
                               otlp=f"http://127.0.0.1:{otlp_port}", spans=counter)
            runs += [off, on]
            for x in (off, on):
                print(f"# {x.name}: {x.tps:,.0f} tx/s ({x.sealed:,}/{x.sent:,} sealed in {x.seconds:.2f} s, "
                      f"{x.blocks} blocks, rejects {sum(x.rejects.values())}, spans {sum(x.spans.values())})",
                      file=sys.stderr)
        best_off = max((x for x in runs if x.name.startswith("tracing off")), key=lambda x: x.tps)
        best_on = max((x for x in runs if x.name.startswith("tracing on")), key=lambda x: x.tps)
        rate = best_off.tps / 2
        count = min(total, max(args.batch, int(rate * args.latency_s) // args.batch * args.batch))
        half = await one_run("half load", tmp, genesis, txs[:count], hashes, args, rate=rate)
        runs.append(half)
    finally:
        await collector.stop(None)
    ceilings = {n: await ceiling(tmp, txs, args.batch, n) for n in (1, os.cpu_count() or 1)}

    cmd = "python bench/sequencer_throughput.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if v != DEFAULTS[k])
    print(f"**sequencer throughput, send -> SEALED and durable ({total:,} transfers from {args.accounts:,} "
          f"accounts, batches of {args.batch}, {args.inflight} in flight)**")
    print(f"command: `{cmd}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print()
    print("| run | sealed / sent | blocks (largest) | seconds | tx/s | rejects | spans received "
          "| CPU us/tx: sequencer / load gen | machine idle |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    cores = os.cpu_count() or 1
    for x in runs:
        rejects = ", ".join(f"{k} {v}" for k, v in x.rejects.most_common()) or "0"
        spans = f"{sum(x.spans.values()):,}" if x.spans else "-"
        flag = "" if x.complete else " (INCOMPLETE)"
        per_tx = 1e6 / max(1, x.sealed)
        print(f"| {x.name} | {x.sealed:,} / {x.sent:,}{flag} | {x.blocks} ({x.biggest_block:,}) | {x.seconds:.2f} "
              f"| {x.tps:,.0f} | {rejects} | {spans} | {x.cpu_sequencer * per_tx:.0f} / {x.cpu_client * per_tx:.0f} "
              f"| {x.idle / (cores * x.wall):.0%} |")
    print()
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| sustained, tracing off (best of {args.rounds}) | **{best_off.tps:,.0f} tx/s** |")
    print(f"| sustained, tracing on (best of {args.rounds}) | **{best_on.tps:,.0f} tx/s** |")
    print(f"| ratio on / off | {best_on.tps / best_off.tps:.2f} |")
    print(f"| spans received, best tracing-on run | {sum(best_on.spans.values()):,} "
          f"({', '.join(f'{k} {v}' for k, v in best_on.spans.most_common(4))}) |")
    if len(half.latencies) >= 2:
        print(f"| send -> SEALED at half load ({half.sent / half.seconds:,.0f} tx/s offered, "
              f"{half.tps:,.0f} sealed) | p50 {pct(half.latencies, 50):.0f} ms, p99 {pct(half.latencies, 99):.0f} ms |")
    for n, (tps, dec, com) in ceilings.items():
        how = "1 thread" if n == 1 else f"decoding on {n} threads"
        print(f"| ceiling: decode + recover + durable {args.batch}-entry pending-log appends, 1 process ({how}), "
              f"no gRPC, no pool | **{tps:,.0f} tx/s** ({dec:.1f} us decode + {com:.1f} us commit per tx) |")
    print(f"| sustained (tracing off) / ceiling, 1 thread | {best_off.tps / ceilings[1][0]:.2f} |")


DEFAULTS = {"accounts": 4000, "per_account": 25, "batch": 256, "inflight": 4, "rounds": 2, "latency_s": 6.0,
            "py_spy": None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=DEFAULTS["accounts"])
    ap.add_argument("--per-account", type=int, default=DEFAULTS["per_account"], help="transfers (nonces) per account")
    ap.add_argument("--batch", type=int, default=DEFAULTS["batch"], help="transactions per SendRawTransactions")
    ap.add_argument("--inflight", type=int, default=DEFAULTS["inflight"], help="batch calls outstanding")
    ap.add_argument("--rounds", type=int, default=DEFAULTS["rounds"], help="tracing off/on pairs")
    ap.add_argument("--latency-s", type=float, default=DEFAULTS["latency_s"], help="length of the half-load run")
    ap.add_argument("--py-spy", default=DEFAULTS["py_spy"],
                    help="py-spy profile of the first tracing-off run (.svg, .json or collapsed stacks)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="l2bench-") as d:
        asyncio.run(bench(args, pathlib.Path(d)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
