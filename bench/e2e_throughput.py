"""End-to-end throughput of a whole `l2node up` tree: sealed, SAFE, and what it costs on L1.

    .venv/bin/python bench/e2e_throughput.py [--duration 60] [--l2-gas-limit N] [--l1-gas-limit N]
        [--l1-block-time S] [--max-tx-bytes N] [--batch-max-bytes N] [--max-in-flight N] [--max-tx-gas N]
        [--batch-data calldata|blobs|auto] [--extra-toml TEXT]

``bench/sequencer_throughput.py`` measures a bare sequencer; a user runs the tree: its own anvil
(L1, contracts deployed), the sequencer with its batcher posting to the BatchInbox, the rollups
worker deriving the chain from L1 alone, the bridge, the channels worker. This script starts that
tree (``python -m l2node.cli up``, a data dir of its own, ports from tests/ports.py, everything
else as configured by default unless a flag says otherwise) on a genesis that funds
``--accounts`` bench keys (the devnet's 10 dev accounts too; gas limit the devnet's 30M unless
``--l2-gas-limit``), with pool limits roomy enough that the pool never refuses the load. The
transfers cap their fee at 10 gwei (presign's): on the devnet's 30M gas limit, blocks past the 15M
target push the base fee up to that cap, and sealing then falls to the target (714 transfers a
block); the report shows the base fee over the window.

The load generator is a separate process (``multiprocessing``, spawned): it signs every transfer
before the window opens (bench/sequencer_throughput.py's presign: each account to the next,
nonce-major), then for ``--duration`` seconds sends them through the public API
(SequencerService.SendRawTransactions, ``--batch`` a call, ``--inflight`` calls outstanding,
``--rate`` tx/s if paced), as fast as the sequencer acknowledges. This process watches:

- every sealed block (SubscribeBlocks: its arrival time is the time it was sealed and durable);
- the sequencer's safe head (GetChainInfo, every 0.1 s): a block is SAFE when its batch's L1 block
  is at the confirmation depth; SAFE lag = the first poll that shows it safe - its arrival;
- the rollups worker's derived head (the tree's Prometheus endpoint, l2node_derived_head_block,
  every ``--metrics-poll-s``, 0.5 s): derivation lag, in seconds (the same way) and in blocks
  behind the sealed head. A scrape costs the supervisor ~15-20 ms of CPU (it reads every process's
  multiprocess metrics files): at 0.5 s ~0.03 of a core taken from the tree (at 2 s ~0.01, but the
  derivation lag then read ~2x higher in bench/RESULTS.md's session 17 runs, not understood);
- CPU seconds of every process of the tree (/proc), of the load generator, and of this watcher.

After the window the load stops and the watch goes on for up to ``--drain-s`` so that the blocks
sealed in the window get their SAFE time (the ones still not SAFE count with the lag they had
when the watch ended, marked >=). Then it reads L1 (anvil): every block mined during the window,
its BatchInbox transactions (calldata, receipt gasUsed, the batch decoded: transfers and L2
blocks each carries), the block gas limit, and the hardfork (anvil_nodeInfo), for:

- L1 bytes and gas per transfer;
- the L1's data capacity: calldata bytes/s at the gas limit, at EIP-7623's floor (40 gas a
  non-zero byte) and the L1 block time; blob bytes/s (128 KiB a blob, the hardfork's maximum
  blobs a block: 6 Cancun, 9 Prague/Osaka, 15 BPO1, 21 BPO2); and the share of each the window used.

Every figure is printed with the command line and the machine's load average (before and after).
Devnet knobs: ``--l1-block-time`` / ``--l1-gas-limit`` are ``[l1] block_time_s`` / ``gas_limit``,
``--max-tx-bytes`` / ``--batch-max-bytes`` / ``--confirmation-depth`` / ``--max-in-flight`` /
``--max-tx-gas`` / ``--batch-interval`` / ``--max-frame-bytes`` / ``--batch-data`` the sequencer's
``l1.max_tx_bytes`` / ``l1.batch_max_bytes`` / ``l1.confirmation_depth`` / ``l1.max_in_flight`` /
``l1.max_tx_gas`` / ``l1.batch_interval_s`` (a partly full batch waits at most this long) /
``l1.max_frame_bytes`` (a batch over ``batch_max_bytes`` larger than one L1 transaction goes in
frames, each counted as a batch transaction) / ``l1.batch_data`` (blob batches: their blobs are read
back with anvil_getBlobsByTransactionHash; bytes per transfer are then the blob stream's used bytes,
and their blob gas is reported per transfer too), ``--l2-gas-limit`` the
genesis's ``gas_limit``; ``--extra-toml`` is appended to the node's config as is (other tables).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sequencer_throughput import (  # noqa: E402
    GRPC_OPTIONS,
    MEMPOOL,
    address_of,
    bench_key,
    machine_idle,
    presign,
    start_py_spy,
)
from bench.sequencer_throughput import process_cpu as _process_cpu  # noqa: E402
from l2node.node.l1 import anvil_binary  # noqa: E402
from protocol import (  # noqa: E402
    BLOCK_GAS_LIMIT,
    DEV_ACCOUNTS,
    DEV_BALANCE,
    INITIAL_BASE_FEE,
    BlockLeaf,
    TxLeaf,
    blob_stream,
    decode_batch,
    decode_blob_leaves,
    leaf_count,
)
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb  # noqa: E402
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc  # noqa: E402
from supervisor import die_with_parent  # noqa: E402
from tests.node.test_up import stop_tree  # noqa: E402
from tests.ports import free_base_port, free_port  # noqa: E402

CHAIN_ID = 901
GWEI = 10**9
#: EIP-7623: a transaction pays at least 10 gas a calldata token, 4 tokens a non-zero byte.
FLOOR_GAS_PER_BYTE = 40
BLOB_BYTES = 128 * 1024
#: Most blobs an L1 block carries, by hardfork (anvil_nodeInfo's hardFork, lower case).
MAX_BLOBS = {"cancun": 6, "prague": 9, "osaka": 9, "bpo1": 15, "bpo2": 21}
SAFE_POLL_S = 0.1


# -- the load generator (its own process) -----------------------------------------------------


def load_process(conn: multiprocessing.connection.Connection, accounts: int, per_account: int) -> None:
    """Sign, say so, wait for ("go", address, duration, batch, inflight, rate), send, report."""
    t0 = time.perf_counter()
    txs = presign(accounts, per_account)
    conn.send(("signed", len(txs), time.perf_counter() - t0))
    msg = conn.recv()
    if msg[0] != "go":
        return
    _, address, duration, batch, inflight, rate = msg
    cpu0 = time.process_time()
    stats = asyncio.run(send_for(address, txs, duration, batch, inflight, rate))
    stats["cpu_s"] = time.process_time() - cpu0
    conn.send(("done", stats))


async def send_for(address: str, txs: Sequence[bytes], duration: float, batch: int, inflight: int,
                   rate: float) -> dict[str, Any]:
    """SendRawTransactions of ``txs`` in order, ``inflight`` calls outstanding, until ``duration``
    has passed (or the transfers run out): what was sent, acknowledged and refused."""
    rejects: collections.Counter[str] = collections.Counter()
    counts = {"sent": 0, "accepted": 0}
    latency: list[float] = []
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as ch:
        stub = pb_grpc.SequencerServiceStub(ch)

        async def send(raws: Sequence[bytes]) -> None:
            t0 = time.perf_counter()
            try:
                reply = await stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=raws),
                                                       timeout=60)
            except grpc.aio.AioRpcError as e:
                rejects[f"rpc {e.code().name}"] += len(raws)
                return
            latency.append(time.perf_counter() - t0)
            for r in reply.results:
                if r.HasField("error"):
                    rejects[r.error.reason] += 1
                else:
                    counts["accepted"] += 1

        slots = asyncio.Semaphore(inflight)
        tasks = []
        start = time.perf_counter()
        end = start + duration
        exhausted = True
        for i in range(0, len(txs), batch):
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            await slots.acquire()
            if time.perf_counter() >= end:
                slots.release()
                exhausted = False
                break
            counts["sent"] += len(txs[i:i + batch])
            task = asyncio.create_task(send(txs[i:i + batch]))
            task.add_done_callback(lambda _: slots.release())
            tasks.append(task)
        await asyncio.gather(*tasks)
        return {**counts, "rejects": dict(rejects), "exhausted": exhausted,
                "seconds": time.perf_counter() - start, "latency": latency}


# -- the tree ---------------------------------------------------------------------------------


def write_genesis(path: pathlib.Path, accounts: int, gas_limit: int) -> None:
    """The devnet's genesis (its chain id, base fee and dev accounts) plus ``accounts`` funded bench
    keys, with block gas limit ``gas_limit``."""
    alloc = {"0x" + a.hex(): str(DEV_BALANCE) for a in DEV_ACCOUNTS}
    alloc |= {"0x" + address_of(bench_key(a)).hex(): str(10**24) for a in range(accounts)}
    path.write_text(json.dumps({"chain_id": CHAIN_ID, "base_fee": str(INITIAL_BASE_FEE), "gas_limit": gas_limit,
                                "alloc": alloc}))


def node_config(args: argparse.Namespace, genesis: pathlib.Path, base_port: int, l1_port: int,
                intensity: int = 50) -> str:
    """The tree's l2node.toml: ports, the bench genesis, roomy pool limits, and the flags' knobs
    (``intensity``: restarts the root allows in 5 s; the restart bench kills far more often)."""
    mempool = ", ".join(f"{k} = {v}" for k, v in MEMPOOL.items())
    lines = ["[node]", f"base_port = {base_port}", f"genesis = \"{genesis}\"", f"intensity = {intensity}",
             "period_s = 5.0",
             "[l1]", f"port = {l1_port}"]
    if args.l1_block_time:
        lines.append(f"block_time_s = {args.l1_block_time}")
    if args.l1_gas_limit:
        lines.append(f"gas_limit = {args.l1_gas_limit}")
    lines += ["[workers.sequencer.settings]", f"mempool = {{ {mempool} }}"]
    # (getattr: bench/restart_latency.py's knobs lack the newer ones)
    seq_l1 = {"max_tx_bytes": args.max_tx_bytes, "batch_max_bytes": args.batch_max_bytes,
              "confirmation_depth": args.confirmation_depth,
              "max_in_flight": getattr(args, "max_in_flight", 0), "max_tx_gas": getattr(args, "max_tx_gas", 0),
              "max_frame_bytes": getattr(args, "max_frame_bytes", 0),
              "batch_interval_s": getattr(args, "batch_interval", 0),
              "batch_data": json.dumps(getattr(args, "batch_data", "")) if getattr(args, "batch_data", "") else ""}
    if any(seq_l1.values()):
        lines.append("[workers.sequencer.settings.l1]")
        lines += [f"{k} = {v}" for k, v in seq_l1.items() if v]
    return "\n".join(lines) + "\n" + args.extra_toml + "\n"


class Tree:
    """``python -m l2node.cli up`` in ``tmp``; stopped (SIGTERM to its group, then SIGKILL) by close()."""

    def __init__(self, tmp: pathlib.Path, config: str, root: pathlib.Path = ROOT) -> None:
        """``root``: the source tree to run (another one for an A/B, e.g. a ``git archive``: its
        packages first on the path, for the tree and the workers it starts; its native module built
        in place if it has none; this checkout's anvil, as it has no node_modules of its own)."""
        self.data_dir = tmp / "data"
        path = tmp / "l2node.toml"
        path.write_text(config)
        self.log_path = tmp / "up.log"
        self._log = self.log_path.open("w")
        env = None
        if root != ROOT:
            if not any((root / "protocol").glob("_native*.so")):
                subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=root, check=True,
                               stdout=subprocess.DEVNULL)
            env = {**os.environ, "PYTHONPATH": str(root), "L2NODE_ANVIL": anvil_binary()}
        # SIGTERM to the tree's supervisor if this process dies, however (a bench killed mid-run left
        # its tree running, reparented to init; the supervisor's own workers die with it).
        stop_with_us = functools.partial(die_with_parent, os.getpid(), signal.SIGTERM)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "l2node.cli", "up", "--data-dir", str(self.data_dir), "--config", str(path)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, cwd=root, env=env,
            preexec_fn=stop_with_us)
        self.doc: dict[str, Any] = {}

    def wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"l2node up exited: {self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                doc = json.loads((self.data_dir / "run" / "endpoints.json").read_text())
                rows = doc["children"]
                if "channels" in {c["id"] for c in rows} and all(c["state"] == "running" for c in rows):
                    self.doc = doc
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"tree not up within {timeout} s: {self.log_path}")
            time.sleep(0.1)

    @property
    def pids(self) -> dict[str, int]:
        out = {c["id"]: int(c["pid"]) for c in self.doc["children"] if c["pid"]}
        out["supervisor"] = self.proc.pid
        return out

    def address(self, child: str) -> str:
        return next(str(c["address"]) for c in self.doc["children"] if c["id"] == child)

    def close(self) -> None:
        stop_tree(self.proc)
        self._log.close()


def rpc(url: str, method: str, *params: Any) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def process_cpu(pid: int) -> float:
    try:
        return _process_cpu(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0


def thread_times(pid: int) -> dict[int, tuple[float, float]]:
    """Per thread of ``pid``: (seconds on a CPU, seconds runnable but waiting for one), from
    /proc/<pid>/task/<tid>/schedstat (the scheduler's own nanosecond counts)."""
    out = {}
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            run_ns, wait_ns, _ = (task / "schedstat").read_text().split()
            out[int(task.name)] = (int(run_ns) / 1e9, int(wait_ns) / 1e9)
    return out


def thread_names(pid: int) -> dict[int, str]:
    """tid -> the Python thread's name, from ``py-spy dump`` (Python 3.11 does not name OS threads);
    empty without py-spy."""
    spy = pathlib.Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return {}
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        text = subprocess.run([str(spy), "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True,
                              timeout=30).stdout
        return {int(m[0]): m[1] for m in re.findall(r'^Thread (\d+) \([^)]*\): "([^"]*)"', text, re.MULTILINE)}
    return {}


def thread_use(before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]],
               names: dict[int, str], seconds: float) -> list[tuple[str, float, float]]:
    """(name, cores on a CPU, cores' worth runnable and waiting for one) per thread over the
    window, busiest first; threads py-spy did not name (gRPC's C threads) summed as "other"."""
    use: dict[str, list[float]] = {}
    for tid, (run, wait) in after.items():
        run0, wait0 = before.get(tid, (0.0, 0.0))
        row = use.setdefault(names.get(tid, "other"), [0.0, 0.0])
        row[0] += (run - run0) / seconds
        row[1] += (wait - wait0) / seconds
    return sorted(((k, r, w) for k, (r, w) in use.items()), key=lambda t: -t[1])


# -- the watch --------------------------------------------------------------------------------


@dataclass
class Watch:
    """What this process saw of the chain, by L2 block: when sealed, safe, derived (perf_counter)."""

    sealed_at: dict[int, float] = field(default_factory=dict)
    txs: dict[int, int] = field(default_factory=dict)
    safe_at: dict[int, float] = field(default_factory=dict)
    derived_at: dict[int, float] = field(default_factory=dict)
    #: When each L1 block was first seen (an eth_blockNumber poll each SAFE_POLL_S).
    l1_seen: dict[int, float] = field(default_factory=dict)
    safe_head: int = 0
    derived_head: int = 0
    sealed_head: int = 0
    #: (time, sealed head - derived head) at each metrics scrape.
    derived_gap: list[tuple[float, int]] = field(default_factory=list)
    #: (time, sealed head - safe head) at each safe poll.
    safe_gap: list[tuple[float, int]] = field(default_factory=list)
    #: (time, the next block's base fee) at each safe poll: past the L2 gas target, it climbs.
    base_fee: list[tuple[float, int]] = field(default_factory=list)

    #: Set once the safe and the derived heads both reach ``target`` (the window's last block).
    target: int | None = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    def mark(self, marks: dict[int, float], old: int, new: int, now: float) -> None:
        for n in range(old + 1, new + 1):
            marks.setdefault(n, now)
        if self.target is not None and min(self.safe_head, self.derived_head, new) >= self.target:
            self.caught_up.set()

    def wait_for(self, target: int) -> asyncio.Event:
        self.target = target
        if min(self.safe_head, self.derived_head) >= target:
            self.caught_up.set()
        return self.caught_up


async def follow_blocks(watch: Watch, stub: pb_grpc.SequencerServiceStub, from_number: int) -> None:
    async for msg in stub.SubscribeBlocks(pb.SubscribeBlocksRequest(from_number=from_number)):
        now = time.perf_counter()
        b = msg.block
        watch.sealed_at[b.number] = now
        watch.txs[b.number] = len(b.transaction_hashes)
        watch.sealed_head = max(watch.sealed_head, b.number)


async def poll_safe(watch: Watch, stub: pb_grpc.SequencerServiceStub) -> None:
    while True:
        with contextlib.suppress(grpc.aio.AioRpcError):
            info = await stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5)
            now = time.perf_counter()
            if info.safe_block > watch.safe_head:
                old, watch.safe_head = watch.safe_head, info.safe_block
                watch.mark(watch.safe_at, old, info.safe_block, now)
            watch.safe_gap.append((now, max(0, info.unsafe_block - info.safe_block)))
            watch.base_fee.append((now, int(info.base_fee)))
        await asyncio.sleep(SAFE_POLL_S)


async def poll_l1(watch: Watch, url: str) -> None:
    while True:
        with contextlib.suppress(OSError, ValueError):
            head = int(await asyncio.to_thread(rpc, url, "eth_blockNumber"), 16)
            now = time.perf_counter()
            for n in range(max(watch.l1_seen, default=head - 1) + 1, head + 1):
                watch.l1_seen[n] = now
        await asyncio.sleep(SAFE_POLL_S)


def scrape_derived_head(url: str) -> int | None:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("l2node_derived_head_block")]
    return int(max(values)) if values else None


async def poll_derived(watch: Watch, url: str, every_s: float) -> None:
    while True:
        with contextlib.suppress(OSError, ValueError):
            head = await asyncio.to_thread(scrape_derived_head, url)
            now = time.perf_counter()
            if head is not None:
                if head > watch.derived_head:
                    old, watch.derived_head = watch.derived_head, head
                    watch.mark(watch.derived_at, old, head, now)
                watch.derived_gap.append((now, max(0, watch.sealed_head - head)))
        await asyncio.sleep(every_s)


# -- L1 ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    calldata: int
    data: int
    gas: int
    transfers: int
    l2_blocks: int
    blob_gas: int = 0
    #: The numbers of the L2 blocks whose leaf it carries.
    numbers: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class L1Block:
    number: int
    timestamp: int
    gas_limit: int
    gas_used: int
    blob_gas_used: int
    batches: tuple[Batch, ...]


@dataclass
class L1Window:
    """L1 blocks summed: their gas and the batches they carry."""

    blocks: int = 0
    seconds: float = 0.0
    gas_limit: int = 0
    gas_used: int = 0
    blob_gas_used: int = 0
    hardfork: str = ""
    batches: int = 0
    batch_calldata: int = 0
    batch_data: int = 0
    batch_gas: int = 0
    batch_blob_gas: int = 0
    transfers: int = 0
    l2_blocks: int = 0
    #: How many batch transactions each L1 block held.
    batches_per_block: collections.Counter[int] = field(default_factory=collections.Counter)
    biggest_batch: int = 0

    @classmethod
    def of(cls, blocks: Sequence[L1Block], before: int, hardfork: str) -> L1Window:
        """``blocks`` (consecutive), ``before`` the timestamp of the block before the first."""
        w = cls(hardfork=hardfork, blocks=len(blocks))
        w.seconds = float(blocks[-1].timestamp - before) if blocks else 0.0
        for b in blocks:
            w.gas_limit = b.gas_limit
            w.gas_used += b.gas_used
            w.blob_gas_used += b.blob_gas_used
            w.batches_per_block[len(b.batches)] += 1
            for batch in b.batches:
                w.batches += 1
                w.batch_calldata += batch.calldata
                w.batch_data += batch.data
                w.batch_gas += batch.gas
                w.batch_blob_gas += batch.blob_gas
                w.transfers += batch.transfers
                w.l2_blocks += batch.l2_blocks
                w.biggest_batch = max(w.biggest_batch, batch.data)
        return w


def read_l1(url: str, inbox: str, first: int, last: int) -> list[L1Block]:
    """The L1 blocks first..last: their gas, and the batch transactions they carry, decoded."""
    out = []
    for n in range(first, last + 1):
        block = rpc(url, "eth_getBlockByNumber", hex(n), True)
        batches = []
        for tx in block["transactions"]:
            if (tx.get("to") or "").lower() != inbox:
                continue
            receipt = rpc(url, "eth_getTransactionReceipt", tx["hash"])
            if receipt["status"] != "0x1":
                continue
            calldata = bytes.fromhex(tx["input"][2:])
            blob_gas = int(receipt.get("blobGasUsed") or "0x0", 16)
            if tx.get("blobVersionedHashes"):  # appendBlobBatch: the leaves are in the blobs
                stream = blob_stream([bytes.fromhex(b[2:]) for b in rpc(url, "anvil_getBlobsByTransactionHash",
                                                                        tx["hash"])])
                leaves = decode_blob_leaves(stream)
                count = leaf_count(stream)
                at = 4 + 4 * count  # the last offset: where the leaves end (the bytes used)
                size = int.from_bytes(stream[at : at + 4], "big") if count else 0
            else:
                # appendBatch(bytes) or appendFrame(bytes, uint256, bool): the data where its offset says
                start = 4 + int.from_bytes(calldata[4:36], "big")
                size = int.from_bytes(calldata[start:start + 32], "big")
                leaves = decode_batch(calldata[start + 32:start + 32 + size])
            txs = sum(isinstance(leaf, TxLeaf) for leaf in leaves)
            numbers = tuple(leaf.number for leaf in leaves if isinstance(leaf, BlockLeaf))
            batches.append(Batch(len(calldata), size, int(receipt["gasUsed"], 16), txs, len(leaves) - txs, blob_gas,
                                 numbers))
        out.append(L1Block(n, int(block["timestamp"], 16), int(block["gasLimit"], 16), int(block["gasUsed"], 16),
                           int(block.get("blobGasUsed") or "0x0", 16), tuple(batches)))
    return out


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Report:
    command: str
    loadavg_before: tuple[float, float, float]
    loadavg_after: tuple[float, float, float]
    duration: float
    signed: int
    load: dict[str, Any]
    sealed_txs: int
    safe_txs: int
    #: The same over the window's second half (past the start, when nothing is SAFE yet for a while).
    sealed_txs_late: int
    safe_txs_late: int
    safe_lags: list[tuple[float, int]]
    safe_censored: int
    #: SAFE lag in two: sealed -> its batch's L1 block seen (the post and the inclusion), and that ->
    #: SAFE (the confirmation depth, the follower's poll), per transfer of those with both.
    included_lags: list[tuple[float, int]]
    depth_lags: list[tuple[float, int]]
    derived_lags: list[tuple[float, int]]
    derived_censored: int
    derived_gap: list[int]
    safe_gap: list[int]
    base_fee: list[int]
    #: The L1 blocks mined during the window (capacity and its share).
    l1: L1Window
    #: ... and those until the watch ended: the batches of the window's transfers (cost per transfer).
    l1_all: L1Window
    l1_block_time: float
    cpu: dict[str, float]
    idle: float
    drained_s: float
    sealed_blocks: int
    biggest_block: int
    #: The sequencer's l1.batch_data.
    batch_data: str = "calldata"
    #: The rollups worker's CPU seconds over the window and the drain, and the transfers it derived.
    derived: tuple[float, int] = (0.0, 0)
    #: How often the derived head was scraped (--metrics-poll-s).
    metrics_poll_s: float = 0.5
    #: The sequencer's threads over the window: (name, cores on a CPU, cores waiting for one).
    threads: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def sealed_tps(self) -> float:
        return self.sealed_txs / self.duration

    @property
    def safe_tps(self) -> float:
        return self.safe_txs / self.duration


def weighted_pct(samples: Sequence[tuple[float, int]], p: float) -> float:
    """The p-th percentile of values weighted by counts (transfers per block)."""
    items = sorted((v, w) for v, w in samples if w > 0)
    total = sum(w for _, w in items)
    if not total:
        return math.nan
    rank, seen = p / 100 * total, 0
    for v, w in items:
        seen += w
        if seen >= rank:
            return v
    return items[-1][0]


def lags(watch: Watch, marks: dict[int, float], blocks: Sequence[int], end: float) -> tuple[list[tuple[float, int]],
                                                                                              int]:
    """(lag, transfers) per block of ``blocks`` with transfers; a block never marked counts with the
    lag it had at ``end`` (a lower bound); and how many transfers those were."""
    out, censored = [], 0
    for n in blocks:
        count = watch.txs.get(n, 0)
        if not count:
            continue
        at = marks.get(n)
        if at is None:
            censored += count
            at = end
        out.append((at - watch.sealed_at[n], count))
    return out, censored


def split_lags(watch: Watch, window: Sequence[int], blocks: Sequence[L1Block]) -> tuple[list[tuple[float, int]],
                                                                                        list[tuple[float, int]]]:
    """(sealed -> its L1 block seen, that -> SAFE) per block of ``window`` with transfers, SAFE, and
    in a batch seen mined: its first (a block posted again counts where it landed first; a block in
    frames, where its leaf's frame landed)."""
    landed: dict[int, int] = {}
    for block in blocks:
        for batch in block.batches:
            for n in batch.numbers:
                landed.setdefault(n, block.number)
    included, depth = [], []
    for n in window:
        count, l1 = watch.txs.get(n, 0), landed.get(n)
        seen = None if l1 is None else watch.l1_seen.get(l1)
        if count and seen is not None and n in watch.safe_at:
            included.append((seen - watch.sealed_at[n], count))
            depth.append((watch.safe_at[n] - seen, count))
    return included, depth


async def run(args: argparse.Namespace, tmp: pathlib.Path, command: str) -> Report:
    """One tree, one window: the figures (``command`` is how this run was asked for)."""
    per_account = max(1, math.ceil(args.duration * args.max_rate / args.accounts))
    genesis = tmp / "genesis.json"
    write_genesis(genesis, args.accounts, args.l2_gas_limit or BLOCK_GAS_LIMIT)
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    loader = ctx.Process(target=load_process, args=(theirs, args.accounts, per_account), name="e2e-load")
    loader.start()  # signs while the tree starts
    tree = Tree(tmp, node_config(args, genesis, free_base_port(8), free_port()))
    try:
        await asyncio.to_thread(tree.wait_up)
        l1_url = str(tree.doc["l1_rpc"])
        contracts = json.loads((tree.data_dir / "l1" / "contracts.json").read_text())["contracts"]
        inbox = contracts["BatchInbox"].lower()
        _, signed, sign_s = await asyncio.to_thread(ours.recv)
        print(f"# tree up; {signed:,} transfers signed in {sign_s:.1f} s", file=sys.stderr)
        watch = Watch()
        async with grpc.aio.insecure_channel(tree.address("sequencer"), options=GRPC_OPTIONS) as ch:
            stub = pb_grpc.SequencerServiceStub(ch)
            head = (await stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=10)).unsafe_block
            watch.safe_head = watch.derived_head = watch.sealed_head = head
            tasks = [asyncio.create_task(follow_blocks(watch, stub, head + 1)),
                     asyncio.create_task(poll_safe(watch, stub)),
                     asyncio.create_task(poll_derived(watch, str(tree.doc["metrics"]), args.metrics_poll_s)),
                     asyncio.create_task(poll_l1(watch, l1_url))]
            pids = tree.pids
            loadavg_before = os.getloadavg()
            cpu0 = {k: process_cpu(p) for k, p in pids.items()} | {"load generator": 0.0}
            threads0 = thread_times(pids["sequencer"])
            watcher0 = time.process_time()
            idle0 = machine_idle()
            l1_first = int(rpc(l1_url, "eth_blockNumber"), 16) + 1
            spies = [start_py_spy(pids[child], out) for child, out in
                     (("sequencer", args.py_spy), ("rollups", args.py_spy_rollups)) if out]
            start = time.perf_counter()
            ours.send(("go", tree.address("sequencer"), args.duration, args.batch, args.inflight, args.rate))
            await asyncio.sleep(args.duration)
            end = time.perf_counter()
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            l1_last = int(rpc(l1_url, "eth_blockNumber"), 16)
            cpu = {k: process_cpu(p) - cpu0[k] for k, p in pids.items()}
            threads = thread_use(threads0, thread_times(pids["sequencer"]),
                                 await asyncio.to_thread(thread_names, pids["sequencer"]), end - start)
            cpu["bench watcher"] = time.process_time() - watcher0
            idle = machine_idle() - idle0
            loadavg_after = os.getloadavg()
            _, load = await asyncio.to_thread(ours.recv)
            cpu["load generator"] = load["cpu_s"]
            window = [n for n, at in watch.sealed_at.items() if start <= at <= end]
            half = (start + end) / 2
            last = max(window, default=head)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.wait_for(last).wait(), args.drain_s)
            drained = time.perf_counter()
            l1_drained = int(rpc(l1_url, "eth_blockNumber"), 16)
            # Derivation lags under load and catches up in the drain: its cost per transfer counts both.
            derived = (process_cpu(pids["rollups"]) - cpu0["rollups"] if "rollups" in pids else 0.0,
                       sum(watch.txs.get(n, 0) for n in watch.derived_at if n > head))
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await t
        safe_lags, safe_censored = lags(watch, watch.safe_at, window, drained)
        derived_lags, derived_censored = lags(watch, watch.derived_at, window, drained)
        hardfork = str(rpc(l1_url, "anvil_nodeInfo").get("hardFork", ""))
        before = int(rpc(l1_url, "eth_getBlockByNumber", hex(l1_first - 1), False)["timestamp"], 16)
        blocks = await asyncio.to_thread(read_l1, l1_url, inbox, l1_first, l1_drained)
        l1 = L1Window.of([b for b in blocks if b.number <= l1_last], before, hardfork)
        l1_all = L1Window.of(blocks, before, hardfork)
        included_lags, depth_lags = split_lags(watch, window, blocks)
    finally:
        loader.join(30)
        if loader.is_alive():
            loader.kill()
        await asyncio.to_thread(tree.close)
        if args.keep_logs:
            shutil.copytree(tree.data_dir / "logs", args.keep_logs, dirs_exist_ok=True)
    return Report(
        command=command,
        loadavg_before=loadavg_before, loadavg_after=loadavg_after, duration=args.duration, signed=signed,
        load=load, sealed_txs=sum(watch.txs[n] for n in window),
        safe_txs=sum(watch.txs.get(n, 0) for n, at in watch.safe_at.items() if start <= at <= end),
        sealed_txs_late=sum(watch.txs[n] for n in window if watch.sealed_at[n] >= half),
        safe_txs_late=sum(watch.txs.get(n, 0) for n, at in watch.safe_at.items() if half <= at <= end),
        safe_lags=safe_lags, safe_censored=safe_censored, included_lags=included_lags, depth_lags=depth_lags,
        derived_lags=derived_lags,
        derived_censored=derived_censored,
        derived_gap=[g for t, g in watch.derived_gap if start <= t <= end],
        safe_gap=[g for t, g in watch.safe_gap if start <= t <= end],
        base_fee=[f for t, f in watch.base_fee if start <= t <= end],
        l1=l1, l1_all=l1_all, l1_block_time=args.l1_block_time or 1.0, cpu=cpu, idle=idle, drained_s=drained - end,
        sealed_blocks=len(window), biggest_block=max((watch.txs[n] for n in window), default=0),
        batch_data=getattr(args, "batch_data", "") or "calldata", derived=derived, metrics_poll_s=args.metrics_poll_s,
        threads=threads)


# -- the report -------------------------------------------------------------------------------


def lag_text(samples: Sequence[tuple[float, int]], censored: int) -> str:
    if not samples:
        return "-"
    most = max(v for v, _ in samples)
    mark = ">=" if censored else ""
    extra = f" ({censored:,} transfers not there when the watch ended: their lag so far)" if censored else ""
    return f"p50 {weighted_pct(samples, 50):.1f} s, max {mark}{most:.1f} s{extra}"


def print_report(r: Report) -> None:
    l1, every = r.l1, r.l1_all
    per = max(1, every.transfers)
    block_time = l1.seconds / l1.blocks if l1.blocks and l1.seconds else r.l1_block_time
    calldata_cap = l1.gas_limit / FLOOR_GAS_PER_BYTE / block_time if block_time else 0.0
    blobs = MAX_BLOBS.get(l1.hardfork.lower())
    blob_cap = (blobs or 0) * BLOB_BYTES / block_time if block_time else 0.0
    span = l1.seconds or r.duration
    rejects = ", ".join(f"{k} {v}" for k, v in sorted(r.load["rejects"].items())) or "0"
    print(f"**end to end, `l2node up` ({time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} cores)**")
    print(f"command: `{r.command}`")
    print(f"load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in r.loadavg_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in r.loadavg_after)}")
    print()
    print("| figure | value |")
    print("| --- | --- |")
    print(f"| window | {r.duration:.0f} s; {r.load['sent']:,} sent, {r.load['accepted']:,} acknowledged "
          f"({r.load['accepted'] / r.duration:,.0f} tx/s), refused {rejects}"
          f"{'; the signed transfers ran out' if r.load['exhausted'] else ''} |")
    print(f"| **sealed** | **{r.sealed_tps:,.0f} tx/s** ({r.sealed_txs:,} in {r.sealed_blocks} blocks, "
          f"largest {r.biggest_block:,}); second half {r.sealed_txs_late / (r.duration / 2):,.0f} tx/s |")
    print(f"| **SAFE** (sequencer's safe head) | **{r.safe_tps:,.0f} tx/s** ({r.safe_txs:,} became SAFE in the "
          f"window); "
          f"second half **{r.safe_txs_late / (r.duration / 2):,.0f} tx/s** |")
    print(f"| SAFE lag, sealed -> SAFE, per transfer sealed in the window | {lag_text(r.safe_lags, r.safe_censored)}; "
          f"watched {r.drained_s:.0f} s past the window |")
    if r.included_lags:
        print(f"| SAFE lag in two: sealed -> its batch's L1 block seen; that -> SAFE (depth, follower) | "
              f"p50 {weighted_pct(r.included_lags, 50):.2f} s, max {max(v for v, _ in r.included_lags):.2f} s; "
              f"p50 {weighted_pct(r.depth_lags, 50):.2f} s, max {max(v for v, _ in r.depth_lags):.2f} s |")
    gap = r.safe_gap
    if gap:
        print(f"| safe head behind sealed (blocks, sampled each {SAFE_POLL_S} s) | p50 {statistics.median(gap):.0f}, "
              f"max {max(gap)}, at the window's end {gap[-1]} |")
    if r.base_fee:
        print(f"| L2 base fee (gwei; the load's fee cap is 10) | start {r.base_fee[0] / GWEI:.2f}, "
              f"max {max(r.base_fee) / GWEI:.2f}, end {r.base_fee[-1] / GWEI:.2f} |")
    print(f"| rollups derivation lag, sealed -> derived, per transfer | "
          f"{lag_text(r.derived_lags, r.derived_censored)} |")
    if r.derived_gap:
        dg = r.derived_gap
        print(f"| derived head behind sealed (blocks, sampled each {r.metrics_poll_s:g} s) | "
              f"p50 {statistics.median(dg):.0f}, max {max(dg)}, at the window's end {dg[-1]} |")
    print(f"| L1 blocks in the window | {l1.blocks} over {l1.seconds:.0f} s; gas limit {l1.gas_limit:,}; "
          f"hardfork {l1.hardfork}; batch transactions per block: "
          f"{', '.join(f'{k}: {v}' for k, v in sorted(l1.batches_per_block.items()))} |")
    print(f"| batches mined in the window | {l1.batches} carrying {l1.transfers:,} transfers in {l1.l2_blocks} L2 "
          f"blocks; largest {l1.biggest_batch:,} B of batch data |")
    print(f"| **L1 bytes per transfer** (every batch until the watch ended: {every.batches}, {every.transfers:,} "
          f"transfers) | **{every.batch_calldata / per:.1f}** calldata ({every.batch_data / per:.1f} of batch data) |")
    print(f"| **L1 gas per transfer** | **{every.batch_gas / per:,.0f}**"
          f"{f' + {every.batch_blob_gas / per:,.0f} blob gas' if every.batch_blob_gas else ''} |")
    print(f"| L1 calldata capacity (gas limit / {FLOOR_GAS_PER_BYTE} gas a byte / {block_time:.2f} s) | "
          f"{calldata_cap / 1e3:,.0f} KB/s; used {l1.batch_calldata / span / 1e3:,.1f} KB/s = "
          f"**{l1.batch_calldata / span / calldata_cap:.1%}** |" if calldata_cap else "| L1 calldata capacity | - |")
    l1_gas = max(1, l1.gas_limit * l1.blocks)
    print(f"| L1 gas used by batches / all L1 gas of the window's blocks | "
          f"{l1.batch_gas / l1_gas:.1%} / {l1.gas_used / l1_gas:.1%} |")
    print(f"| L1 blob capacity ({blobs if blobs else '?'} x 128 KiB a block, {l1.hardfork}) | "
          f"{blob_cap / 1e3:,.0f} KB/s; used {l1.blob_gas_used / span / 1e3:,.1f} KB/s "
          f"(batch data: {r.batch_data}) |")
    cores = os.cpu_count() or 1
    busy = ", ".join(f"{k} {v / r.duration:.2f}" for k, v in sorted(r.cpu.items(), key=lambda kv: -kv[1]) if v > 0)
    print(f"| CPU (cores busy over the window) | {busy}; machine idle {r.idle / (cores * r.duration):.0%} |")
    if r.threads:
        print("| sequencer threads: cores on a CPU / waiting for one (runnable) | "
              + ", ".join(f"{name} {run:.2f} / {wait:.2f}" for name, run, wait in r.threads if run + wait >= 0.005)
              + " |")
    latency = sorted(r.load.get("latency", []))
    if latency:
        pct = {p: latency[min(len(latency) - 1, int(p / 100 * len(latency)))] * 1e3 for p in (50, 90, 99)}
        print(f"| SendRawTransactions latency at the load generator ({len(latency):,} calls) | "
              f"p50 {pct[50]:.1f} ms, p90 {pct[90]:.1f}, p99 {pct[99]:.1f}, max {latency[-1] * 1e3:.1f}; "
              f"mean {statistics.fmean(latency) * 1e3:.1f} ms |")
    if r.sealed_txs:
        us = {k: r.cpu.get(k, 0) / r.sealed_txs * 1e6 for k in ("sequencer", "rollups", "l1")}
        print(f"| CPU per sealed transfer: sequencer / rollups / anvil | "
              f"{us['sequencer']:.0f} / {us['rollups']:.0f} / {us['l1']:.0f} us |")
    cpu_s, derived = r.derived
    if derived:
        print(f"| rollups CPU per derived transfer (window + drain) | {cpu_s / derived * 1e6:.0f} us "
              f"({derived:,} derived) |")


DEFAULTS: dict[str, Any] = {"duration": 60.0, "accounts": 4000, "max_rate": 15_000.0, "batch": 256, "inflight": 4,
                            "rate": 0.0, "drain_s": 30.0}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=DEFAULTS["duration"], help="seconds of load (the window)")
    ap.add_argument("--accounts", type=int, default=DEFAULTS["accounts"], help="senders (funded by the genesis)")
    ap.add_argument("--max-rate", type=float, default=DEFAULTS["max_rate"],
                    help="transfers signed = duration x this (tx/s): the load cannot outrun it")
    ap.add_argument("--batch", type=int, default=DEFAULTS["batch"], help="transfers per SendRawTransactions")
    ap.add_argument("--inflight", type=int, default=DEFAULTS["inflight"], help="calls outstanding")
    ap.add_argument("--rate", type=float, default=DEFAULTS["rate"], help="pace the load at this tx/s (0: flat out)")
    ap.add_argument("--drain-s", type=float, default=DEFAULTS["drain_s"],
                    help="after the window, follow SAFE and derivation at most this long")
    ap.add_argument("--l2-gas-limit", type=int, default=0, help="the genesis's block gas limit (0: the devnet's 30M)")
    ap.add_argument("--l1-block-time", type=float, default=0.0, help="[l1] block_time_s (0: the default, 1 s)")
    ap.add_argument("--l1-gas-limit", type=int, default=0, help="[l1] gas_limit (0: anvil's default, 30M)")
    ap.add_argument("--max-tx-bytes", type=int, default=0, help="sequencer l1.max_tx_bytes (0: default, 128 KiB)")
    ap.add_argument("--batch-max-bytes", type=int, default=0, help="sequencer l1.batch_max_bytes (0: default 100 kB)")
    ap.add_argument("--confirmation-depth", type=int, default=0, help="sequencer l1.confirmation_depth (0: default 4)")
    ap.add_argument("--max-in-flight", type=int, default=0,
                    help="sequencer l1.max_in_flight: batch transactions not yet mined, at most (0: default 8)")
    ap.add_argument("--max-tx-gas", type=int, default=0,
                    help="sequencer l1.max_tx_gas: an L1 transaction's gas cap (0: default, EIP-7825's 2**24)")
    ap.add_argument("--max-frame-bytes", type=int, default=0,
                    help="sequencer l1.max_frame_bytes: a batch larger goes in frames (0: what one L1 tx carries)")
    ap.add_argument("--batch-interval", type=float, default=0,
                    help="sequencer l1.batch_interval_s: post at least this often while blocks wait (0: default 1 s)")
    ap.add_argument("--batch-data", default="", choices=["", "calldata", "blobs", "auto"],
                    help="sequencer l1.batch_data (empty: the default, calldata)")
    ap.add_argument("--metrics-poll-s", type=float, default=0.5,
                    help="scrape the tree's metrics (the derived head) this often; each scrape costs the "
                    "supervisor ~15-20 ms of CPU")
    ap.add_argument("--py-spy", default="", help="py-spy profile of the sequencer process over the window "
                    "(.svg, .json or collapsed stacks; bench/sequencer_throughput.py's start_py_spy)")
    ap.add_argument("--py-spy-rollups", default="", help="the same of the rollups worker (its derivation)")
    ap.add_argument("--keep-logs", default="", help="copy the tree's logs (DATA_DIR/logs) into this directory")
    ap.add_argument("--extra-toml", default="", help="appended to the node's config (tables other than [node], "
                    "[l1], [workers.sequencer.settings])")
    return ap


def main() -> int:
    args = parser().parse_args()
    command = shlex.join(["python", "bench/e2e_throughput.py", *sys.argv[1:]])
    with tempfile.TemporaryDirectory(prefix="l2e2e-") as d:
        report = asyncio.run(run(args, pathlib.Path(d), command))
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
