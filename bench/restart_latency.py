"""Restart latency: SIGKILL a live worker, time kill -> health SERVING from the new process.

    python bench/restart_latency.py [--kills 60]
    python bench/restart_latency.py --services sequencer,rollups [--state N] [--kills 30] [--phases]
    python bench/restart_latency.py --data-of /tmp/long10m_data [--kills 30]

Default mode (an idle worker, ``bench.workers:IDLE``):

(a) l2node: `l2node up` runs the worker; its supervisor notices the exit and has the
    zygote fork a replacement.
(b) baseline: this script re-spawns the same worker with subprocess.Popen the moment
    waitpid returns: no detection delay at all, so the baseline is, if anything, flattered.

Both are measured by the same client, in the same run (see wait_new): poll the worker's port,
then Health.Watch until SERVING, and WorkerService.GetWorkerStatus to see the new pid. This machine
is shared and noisy, so compare the two columns, not absolute numbers across runs.

Real-services mode (``--services``): a whole `l2node up` tree (bench/e2e_throughput.py's Tree: its
own data dir and anvil, ports from tests/ports.py), with the idle worker as one more child of the
same tree. Each named worker, then the idle one, is SIGKILLed ``--kills`` times (its pid from the
control plane, SupervisorService.WhichChildren; the tree healthy again, every child RUNNING,
between kills) and timed by the same client as above. Per service: min/p50/p90/p99/max, the idle
worker beside them, its resident memory before the kills, and its restarts as the tree's logs
tell them (DATA_DIR/logs: the supervisor's "exited"/"started", each line the new process logged
up to "serving"; ms after the kill, p50 and max), and what each start cost whatever the load: the
new process's CPU time (every thread's) and minor page faults from the kill until it was seen
SERVING (a zygote's warm process is there before the kill: what it spent before is taken off).

Large-state mode (``--state N``): first N transfers go through the sequencer's public batch RPC
(bench/sequencer_throughput.py's presign, every transfer to a new account, from ``--senders``
accounts the genesis funds; bench/e2e_throughput.py's send_for), until every sender's nonce says
they are all sealed; so the chain holds senders + N accounts and N transfers. The batcher keeps
posting meanwhile: ``--wait-safe S`` waits up to S seconds for the safe head to reach the sealed
head first (the report says how far behind it still was). ``--phases`` then stops the tree and
times, in a fresh process on a copy of the sequencer's database, the steps of Sequencer.open one
by one (what the restart spends its time on).

Kept-database mode (``--data-of DIR``): a sequencer worker forked by the zygote of a real `l2node up`
tree, as every worker is, on a copy (``cp --reflink=auto``) of DIR's sequencer.db and
sequencer.pending.db (the one bench/long_run.py keeps: 1,000,000 accounts and 10M transactions after
a full run; never opened in place), on the genesis that built it (bench.sequencer_throughput's, for
``--genesis-accounts`` senders). The tree has that worker (child id DATA_CHILD, an extra worker
running services.sequencer:WORKER: a built-in sequencer would get L1 settings, and a batcher would
start posting the whole history), the idle worker, and the tree's own anvil; rollups, bridge,
channels and jsonrpc are off. Before the tree starts, the copy is opened twice in a throwaway
process, each step timed (``--phases``' table: the first open migrates an old transaction index,
once), so the timed kills never pay for a migration; once the tree is up, the restored pending
transfers are sealed before the kills. Then the same kill loop, costs and logs' timeline as above.

Rollups catch-up (``--catchup K``, with ``--state``): before the kills above, the rollups worker
is SIGKILLed K more times, each once its derived head (the tree's l2node_derived_head_block) has
reached the safe head, and timed from the kill until the new process's derived head is back where
the old one's was: a restart re-deriving from the deployment block, or resuming from a checkpoint.

Every figure is printed with the command line and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime
import json
import math
import os
import pathlib
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e_throughput import Tree, node_config, send_for, write_genesis  # noqa: E402
from bench.sequencer_throughput import (  # noqa: E402
    BLOCK_GAS_LIMIT,
    CHAIN_ID,
    GRPC_OPTIONS,
    MEMPOOL,
    address_of,
    bench_key,
    presign,
)
from bench.sequencer_throughput import write_genesis as write_bare_genesis  # noqa: E402
from l2node.node.l1 import free_loopback_port  # noqa: E402
from protos.l2node.sequencer.v1 import sequencer_pb2 as spb  # noqa: E402
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as spb_grpc  # noqa: E402
from protos.l2node.supervisor.v1 import supervisor_pb2 as cpb  # noqa: E402
from protos.l2node.supervisor.v1 import supervisor_pb2_grpc as cpb_grpc  # noqa: E402
from protos.l2node.worker.v1 import worker_pb2, worker_pb2_grpc  # noqa: E402
from tests.ports import free_base_port, free_port  # noqa: E402

DEFINITION = "bench.workers:IDLE"


def wait_new(address: str, old: int | None, timeout: float = 30.0) -> tuple[int, float]:
    """Block until a process other than ``old`` answers SERVING at ``address``; return its pid and
    when (``time.perf_counter()``) its SERVING arrived.

    Poll the port with bare TCP connects (a gRPC channel that failed to connect backs off
    ~100 ms), then watch health with a Health.Watch stream, which reports SERVING the moment
    it is set, and then ask WorkerService for the pid, so an answer from the old process never
    counts. The clock stops at the SERVING reply, not after that question: the question is this
    bench's check, and a client waiting for readiness would not ask it.
    """
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
        except OSError:
            time.sleep(0.0005)
            continue
        with grpc.insecure_channel(address) as ch:
            try:
                watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(),
                                                             timeout=max(0.1, deadline - time.monotonic()))
                for reply in watch:
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        serving_at = time.perf_counter()
                        watch.cancel()
                        break
                else:
                    continue
                st = worker_pb2_grpc.WorkerServiceStub(ch).GetWorkerStatus(worker_pb2.GetWorkerStatusRequest(),
                                                                           timeout=1)
            except grpc.RpcError:
                continue
        if st.pid != old:
            return int(st.pid), serving_at
    raise TimeoutError(f"no new SERVING process at {address}")


#: The tree's own workers, off in the default mode: the idle worker alone, at base_port + 1.
OTHER_WORKERS = ("sequencer", "rollups", "bridge", "channels")


def bench_l2node(kills: int, tmp: pathlib.Path) -> list[float]:
    base = free_loopback_port()
    cfg = tmp / "bench.toml"
    cfg.write_text(f'[node]\nbase_port = {base}\nintensity = 1000\nperiod_s = 1.0\n'
                   + "".join(f"[workers.{name}]\nenabled = false\n" for name in OTHER_WORKERS)
                   + f'[workers.idle]\ndefinition = "{DEFINITION}"\n')
    log = open(tmp / "up.log", "w")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "l2node.cli", "up", "--data-dir", str(tmp / "data"),
                           "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                          start_new_session=True)
    address = f"127.0.0.1:{base + 1}"
    try:
        pid, _ = wait_new(address, None, 120)
        out = []
        for _ in range(kills):
            time.sleep(0.05)  # let the new worker settle, as a real crash would find it
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            pid, serving_at = wait_new(address, pid)
            out.append(serving_at - t0)
        return out
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(60)
        log.close()


def bench_respawn(kills: int, tmp: pathlib.Path) -> list[float]:
    address = f"127.0.0.1:{free_loopback_port()}"
    config = json.dumps({"service": "idle", "address": address, "data_dir": str(tmp / "respawn")})
    argv = [sys.executable, "-m", "services.runtime", DEFINITION, "--config-json", config]

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.DEVNULL)

    proc = spawn()
    try:
        wait_new(address, None, 60)
        out = []
        for _ in range(kills):
            time.sleep(0.05)
            t0 = time.perf_counter()
            old = proc.pid
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = spawn()
            _, serving_at = wait_new(address, old)
            out.append(serving_at - t0)
        return out
    finally:
        proc.kill()
        proc.wait()


# -- real-services mode -----------------------------------------------------------------------

#: The idle worker's child id in the real tree: the runtime alone, for comparison.
IDLE_ID = "idle"
#: Senders the genesis funds in large-state mode (each sends N / senders transfers, nonce-major).
SENDERS = 4000


class Control:
    """The tree's control plane: which process each child is, and whether the tree is whole."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = cpb_grpc.SupervisorServiceStub(self._channel)

    def children(self) -> dict[str, cpb.Child]:
        reply = self._stub.WhichChildren(cpb.WhichChildrenRequest(recursive=True), timeout=5)
        return {c.id: c for c in reply.children}

    def healthy(self, timeout: float = 120.0) -> dict[str, cpb.Child]:
        """Every child RUNNING with a process (tasks have none): the tree as it was before a kill."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                kids = self.children()
            except grpc.RpcError:
                kids = {}
            if kids and all(c.state == cpb.CHILD_STATE_RUNNING and (c.pid or c.kind in (
                    cpb.CHILD_KIND_TASK, cpb.CHILD_KIND_SUPERVISOR)) for c in kids.values()):
                return kids
            if time.monotonic() > deadline:
                raise TimeoutError(f"tree not healthy: {[(c.id, c.state, c.pid) for c in kids.values()]}")
            time.sleep(0.02)

    def close(self) -> None:
        self._channel.close()


def spent(pid: int) -> tuple[float, int]:
    """CPU time (ms, every thread's, from the scheduler's ns counters) and minor page faults of
    ``pid`` so far: what its start cost, whatever the load (a fork starts both from zero)."""
    ns = 0
    for stat in pathlib.Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError):
            ns += int(stat.read_text().split()[0])
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return ns / 1e6, int(fields[7])  # minflt is the stat file's 10th field


def children_of(root: int) -> list[int]:
    """The processes whose parent is ``root`` (the tree's supervisor: its workers, and the zygote's
    warm processes, which it adopts)."""
    out = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == root:
                out.append(int(stat.parent.name))
    return out


def kill_loop(control: Control, child: str, kills: int, timeout: float, root: int,
              killed_at: list[tuple[float, int]], costs: list[tuple[float, int]]) -> list[float]:
    """SIGKILL ``child`` ``kills`` times, the tree healthy before each; kill -> SERVING, seconds.
    Appends (wall-clock time, pid) of each kill to ``killed_at``, for the logs' timeline, and to
    ``costs`` the CPU ms and minor faults the new process spent from the kill until it was seen
    SERVING (it may be a warm process that already was there: what it spent before is taken off)."""
    out: list[float] = []
    killed = 0
    for _ in range(kills):
        kid = control.healthy()[child]
        while kid.pid == killed:  # the control plane has not seen the last exit yet
            time.sleep(0.01)
            kid = control.healthy()[child]
        time.sleep(0.05)  # let the new worker settle, as a real crash would find it
        before = {}
        for pid in children_of(root):
            with contextlib.suppress(OSError):
                before[pid] = spent(pid)
        t0, wall = time.perf_counter(), time.time()
        os.kill(kid.pid, signal.SIGKILL)
        new, serving_at = wait_new(kid.address, kid.pid, timeout)
        out.append(serving_at - t0)
        with contextlib.suppress(OSError):
            (cpu, faults), (cpu0, faults0) = spent(new), before.get(new, (0.0, 0))
            costs.append((cpu - cpu0, faults - faults0))
        killed_at.append((wall, kid.pid))
        killed = kid.pid
    return out


def derived_head(url: str) -> int:
    """The tree's l2node_derived_head_block (0 before a rollups worker has set it)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return max([int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                if line.startswith("l2node_derived_head_block")] or [0])


def catchup_loop(control: Control, metrics: str, sequencer: str, kills: int, timeout: float) -> list[float]:
    """SIGKILL the rollups worker ``kills`` times, each once it has derived the safe head; kill ->
    its replacement's derived head back at the killed one's, seconds."""
    out: list[float] = []
    for _ in range(kills):
        safe, _, _ = asyncio.run(wait_safe(sequencer, 0))
        deadline = time.monotonic() + timeout
        while (head := derived_head(metrics)) < safe:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the rollups worker derived {head}, not the safe head {safe}")
            time.sleep(0.1)
        kid = control.healthy()["rollups"]
        t0 = time.perf_counter()
        os.kill(kid.pid, signal.SIGKILL)
        while control.children()["rollups"].pid in (kid.pid, 0):  # its gauge goes with the exit
            time.sleep(0.005)
        while derived_head(metrics) < head:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"the restarted rollups worker did not derive {head} in {timeout} s")
            time.sleep(0.01)
        out.append(time.perf_counter() - t0)
        print(f"# rollups caught up with block {head:,} {out[-1] * 1000:.0f} ms after the kill", file=sys.stderr)
    return out


def tree_config(genesis: pathlib.Path) -> str:
    """bench/e2e_throughput.py's tree (the devnet defaults, roomy pool limits) plus the idle worker."""
    knobs = argparse.Namespace(l1_block_time=0.0, l1_gas_limit=0, max_tx_bytes=0, batch_max_bytes=0,
                               confirmation_depth=0,
                               extra_toml=f'[workers.{IDLE_ID}]\ndefinition = "{DEFINITION}"\n')
    return node_config(knobs, genesis, free_base_port(8), free_port(), intensity=100_000)


def expected_nonces(n: int, senders: int) -> list[int]:
    """How many of presign(senders, ceil(n / senders))[:n] each sender signed (nonce-major order)."""
    return [n // senders + (a < n % senders) for a in range(senders)]


#: Transfers sent before waiting for them to be sealed: the pool (262,144 slots) never fills, however
#: far sealing falls behind sending as the state grows.
CHUNK = 100_000


async def put_state(address: str, txs: list[bytes], n: int, senders: int) -> dict[str, float]:
    """Send the signed transfers through SendRawTransactions, CHUNK at a time, each chunk sealed
    (every sender's nonce past it) before the next; then wait until every one is sealed."""
    t0 = time.perf_counter()
    accepted = 0
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as ch:
        stub = spb_grpc.SequencerServiceStub(ch)

        async def sealed_upto(count: int) -> None:
            for a, want in enumerate(expected_nonces(count, senders)):
                request = spb.GetAccountRequest(address="0x" + address_of(bench_key(a)).hex())
                while True:
                    if (await stub.GetAccount(request, timeout=10)).nonce >= want:
                        break
                    await asyncio.sleep(0.2)

        for start in range(0, n, CHUNK):
            sent = await send_for(address, txs[start:start + CHUNK], 1e9, 256, 4, 0.0)
            if sent["rejects"]:
                raise RuntimeError(f"refused: {sent['rejects']}")
            accepted += sent["accepted"]
            await sealed_upto(min(n, start + CHUNK))
            print(f"# {min(n, start + CHUNK):,} sealed after {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        sealed = time.perf_counter()
        info = await stub.GetChainInfo(spb.GetChainInfoRequest(), timeout=10)
    return {"accepted": accepted, "sealed_s": sealed - t0, "head": info.unsafe_block}


async def wait_safe(address: str, within_s: float) -> tuple[int, int, float]:
    """Up to ``within_s``, until the safe head reaches the sealed head: (safe, sealed, seconds waited)."""
    t0 = time.perf_counter()
    async with grpc.aio.insecure_channel(address) as ch:
        stub = spb_grpc.SequencerServiceStub(ch)
        while True:
            info = await stub.GetChainInfo(spb.GetChainInfoRequest(), timeout=10)
            waited = time.perf_counter() - t0
            if info.safe_block >= info.unsafe_block or waited >= within_s:
                return int(info.safe_block), int(info.unsafe_block), waited
            await asyncio.sleep(1.0)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid``, MB (VmRSS): what the kernel tears down when it is killed."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def read_log(path: pathlib.Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a traceback's lines
        rec["t"] = datetime.datetime.fromisoformat(rec["ts"].replace("Z", "+00:00")).timestamp()
        out.append(rec)
    return out


def timeline(logs: pathlib.Path, child: str, kills: list[tuple[float, int]]) -> list[tuple[str, float, float]]:
    """The restarts of ``child`` as its logs tell them: for each line of the replacement process up
    to "serving" (and the supervisor's "exited" / "started" of it), ms after the kill: (line, p50, max).
    The log's clock is the wall clock, so is each kill's (time.time() just before os.kill)."""
    sup = [r for r in read_log(logs / "supervisor.log") if r.get("child") == child]
    worker = read_log(logs / f"{child}.log") if (logs / f"{child}.log").exists() else []
    offsets: dict[str, list[float]] = {}
    for wall, pid in kills:
        exited = next((r for r in sup if r["message"] == "exited" and r.get("child_pid") == pid), None)
        if exited is None:
            continue
        started = next((r for r in sup if r["message"] == "started" and r["t"] >= exited["t"]), None)
        if started is None:
            continue
        new = started["child_pid"]
        seen = [("supervisor: exited", exited["t"]), ("supervisor: started", started["t"])]
        for r in worker:
            if r.get("pid") == new:
                seen.append((f"worker: {r['message']}", r["t"]))
                if r["message"] == "serving":
                    break
        for name, t in seen:
            offsets.setdefault(name, []).append((t - wall) * 1000)
    rows = [(name, statistics.median(xs), max(xs)) for name, xs in offsets.items()]
    return sorted(rows, key=lambda r: r[1])


def bench_services(args: argparse.Namespace, tmp: pathlib.Path) -> dict[str, object]:
    """One tree: its state put in (``--state``), then each service killed ``--kills`` times, then idle."""
    services = [s for s in args.services.split(",") if s]
    senders = max(1, min(args.senders, args.state)) if args.state else 1
    genesis = tmp / "genesis.json"
    write_genesis(genesis, senders, BLOCK_GAS_LIMIT)
    out: dict[str, object] = {"senders": senders}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # signs (on every core) while the tree starts
        signing = pool.submit(presign, senders, math.ceil(args.state / senders), True) if args.state else None
        tree = Tree(tmp, tree_config(genesis))
        try:
            tree.wait_up()
            control = Control(str(tree.doc["control"]))
            try:
                kids = control.healthy()
                seq = kids["sequencer"].address
                if signing is not None:
                    t0 = time.perf_counter()
                    txs = signing.result()[:args.state]
                    out["sign_wait_s"] = time.perf_counter() - t0
                    out["state"] = asyncio.run(put_state(seq, txs, args.state, senders))
                    del txs
                if args.wait_safe:
                    out["safe"] = asyncio.run(wait_safe(seq, args.wait_safe))
                if args.catchup:
                    out["catchup"] = catchup_loop(control, str(tree.doc["metrics"]), seq, args.catchup, args.timeout)
                kids = control.healthy()
                out["rss"] = {name: rss_mb(kids[name].pid) for name in [*services, IDLE_ID]}
                out["loadavg_before"] = os.getloadavg()
                times, steps, costs = {}, {}, {}
                for name in [*services, IDLE_ID]:
                    killed_at: list[tuple[float, int]] = []
                    costs[name] = []
                    times[name] = kill_loop(control, name, args.kills, args.timeout, tree.proc.pid, killed_at,
                                            costs[name])
                    steps[name] = killed_at
                    print(f"# {name}: {summary(times[name])}", file=sys.stderr)
                out["loadavg_after"] = os.getloadavg()
                kids = control.healthy()
                out["rss_after"] = {name: rss_mb(kids[name].pid) for name in [*services, IDLE_ID]}
                out["times"] = times
                out["costs"] = costs
                out["chain"] = asyncio.run(wait_safe(seq, 0))
            finally:
                control.close()
        finally:
            tree.close()
            if "times" in out:
                out["timeline"] = {name: timeline(tree.data_dir / "logs", name, kills) for name, kills in steps.items()}
            if args.keep_logs:
                shutil.copytree(tree.data_dir / "logs", args.keep_logs, dirs_exist_ok=True)
    if args.phases:
        out["phases"] = phases_of(tree.data_dir, genesis, tmp)
    return out


# -- kept-database mode ---------------------------------------------------------------------------

#: The kept database's worker in its tree (an extra worker, so that it gets no L1 settings).
DATA_CHILD = "seq-kept"


def data_config(genesis: pathlib.Path) -> str:
    """A tree of the kept database's sequencer (no L1: as bench/long_run.py built it) and the idle worker."""
    mempool = ", ".join(f"{k} = {v}" for k, v in MEMPOOL.items())
    off = "".join(f"[workers.{name}]\nenabled = false\n" for name in ("sequencer", "rollups", "bridge", "channels",
                                                                        "jsonrpc"))
    return (f"[node]\nbase_port = {free_base_port(8)}\nintensity = 100000\nperiod_s = 5.0\n"
            f"[l1]\nport = {free_port()}\n{off}"
            f"[workers.{DATA_CHILD}]\ndefinition = \"services.sequencer:WORKER\"\n"
            f"settings = {{ chain_id = {CHAIN_ID}, genesis_file = \"{genesis}\", mempool = {{ {mempool} }} }}\n"
            f"[workers.{IDLE_ID}]\ndefinition = \"{DEFINITION}\"\n")


def copy_kept(source: pathlib.Path, db: pathlib.Path) -> float:
    """DIR's sequencer.db and sequencer.pending.db copied to ``db`` and its pending log; seconds."""
    t0 = time.perf_counter()
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".db", ".pending.db"):
        subprocess.run(["cp", "--reflink=auto", str(source / f"sequencer{suffix}"), str(db.with_suffix(suffix))],
                       check=True)
    return time.perf_counter() - t0


def chain_settled(address: str, quiet_s: float = 2.0, timeout: float = 600.0) -> int:
    """Wait until the sealed head has not moved for ``quiet_s`` (the restored pool sealed); the head."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as ch:
        stub = spb_grpc.SequencerServiceStub(ch)
        head, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = int(stub.GetChainInfo(spb.GetChainInfoRequest(), timeout=10).unsafe_block)
            if now != head:
                head, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return head
            time.sleep(0.25)
    raise TimeoutError(f"the chain did not settle within {timeout} s")


def bench_data(args: argparse.Namespace, tmp: pathlib.Path) -> dict[str, object]:
    """The kept database's sequencer in a tree, killed ``--kills`` times, then the idle worker."""
    genesis = tmp / "genesis.json"
    write_bare_genesis(genesis, args.genesis_accounts)
    data_dir = tmp / "data"
    db = data_dir / "services" / DATA_CHILD / f"{DATA_CHILD}.db"
    out: dict[str, object] = {"copy_s": copy_kept(pathlib.Path(args.data_of), db)}
    out["phases"] = phases_on(db, genesis)
    tree = Tree(tmp, data_config(genesis))
    steps: dict[str, list[tuple[float, int]]] = {}
    try:
        deadline = time.monotonic() + args.timeout
        while not (data_dir / "run" / "endpoints.json").exists():
            if tree.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"l2node up did not start: {tree.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        control = Control(json.loads((data_dir / "run" / "endpoints.json").read_text())["control"])
        try:
            kids = control.healthy(args.timeout)
            seq = kids[DATA_CHILD].address
            out["head"] = chain_settled(seq)
            kids = control.healthy()
            out["rss"] = {name: rss_mb(kids[name].pid) for name in (DATA_CHILD, IDLE_ID)}
            out["loadavg_before"] = os.getloadavg()
            times, costs = {}, {}
            for name in (DATA_CHILD, IDLE_ID):
                steps[name], costs[name] = [], []
                times[name] = kill_loop(control, name, args.kills, args.timeout, tree.proc.pid, steps[name],
                                        costs[name])
                print(f"# {name}: {summary(times[name])}", file=sys.stderr)
            out["loadavg_after"] = os.getloadavg()
            kids = control.healthy()
            out["rss_after"] = {name: rss_mb(kids[name].pid) for name in (DATA_CHILD, IDLE_ID)}
            out["times"], out["costs"] = times, costs
            out["chain"] = asyncio.run(wait_safe(seq, 0))
        finally:
            control.close()
    finally:
        tree.close()
        if steps:
            out["timeline"] = {name: timeline(data_dir / "logs", name, kills) for name, kills in steps.items()}
        if args.keep_logs:
            shutil.copytree(data_dir / "logs", args.keep_logs, dirs_exist_ok=True)
    return out


# -- where a sequencer restart's time goes ------------------------------------------------------


def phases_of(data_dir: pathlib.Path, genesis: pathlib.Path, tmp: pathlib.Path) -> list[tuple[str, float]]:
    """Sequencer.open's steps timed in a fresh process (--phases-of), on a copy of the stopped
    tree's sequencer database: twice, the first with a cold page cache as far as a copy allows."""
    (db,) = data_dir.rglob("sequencer.db")
    copy = tmp / "phases"
    copy.mkdir()
    for f in db.parent.iterdir():
        if f.name.startswith("sequencer") and f.is_file():
            shutil.copy2(f, copy / f.name)
    return phases_on(copy / db.name, genesis)


def phases_on(db: pathlib.Path, genesis: pathlib.Path) -> list[tuple[str, float]]:
    """Sequencer.open on ``db`` (which it may migrate), twice, each step timed, in a fresh process."""
    result = subprocess.run([sys.executable, __file__, "--phases-of", str(db), "--genesis", str(genesis)],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    return [(str(k), float(v)) for k, v in json.loads(result.stdout)]


#: What time_phases clocks inside Sequencer.open: (module, attribute path, label). Nested calls
#: are clocked too (State.__init__ inside Chain.open), so the rows overlap: read them as a tree.
PHASES = (
    ("services.sequencer._store", "SequencerStore.__init__", "SequencerStore(): schema, migrations, reader"),
    ("services.sequencer._tx_index", "TxIndex.__init__", "  TxIndex(): its tables, a migration (once)"),
    ("services.sequencer._tx_index", "TxIndex._rebuild", "  TxIndex._rebuild(): the recent blocks' hashes"),
    ("services.sequencer._pending_log", "PendingLog.__init__", "PendingLog(): its own sqlite file"),
    ("services.sequencer._intake", "Intake.__init__", "Intake()"),
    ("services.sequencer._chain", "Chain.__init__", "Chain(): genesis state + header, a pool"),
    ("services.sequencer._chain", "Chain.open", "Chain.open(): the head and its state"),
    ("services.sequencer._chain", "Chain._rebuild_tree", "  Chain._rebuild_tree(): nodes from every row (once)"),
    ("services.sequencer._store", "SequencerStore.accounts", "  store.accounts(): every account row"),
    ("services.sequencer._store", "SequencerStore.account_count", "  store.account_count()"),
    ("protocol._commitment", "StoredAccountTree.root", "  StoredAccountTree.root(): the top node"),
    ("services.sequencer._store", "SequencerStore.message_hashes", "  store.message_hashes()"),
    ("protocol._execution", "State.__init__", "  State(): account (before: from every leaf) + message trees"),
    ("protocol._execution", "State.commit", "  State.commit()"),
    ("services.sequencer._chain", "Mempools.renew", "  Mempools.renew(): a new pool"),
    ("services.sequencer._intake", "Intake.restore", "Intake.restore(): the pending log back in the pool"),
    ("services.sequencer._pending_log", "PendingLog.entries", "  pending log read"),
    ("services.sequencer._intake", "decode_transactions", "  decode_transactions(): RLP + sender recovery"),
    ("services.sequencer._store", "SequencerStore.settled", "  store.settled(): which are sealed"),
)


def time_phases(db_path: pathlib.Path, genesis_file: pathlib.Path) -> list[tuple[str, float]]:
    """The real Sequencer.open (no L1: the batcher's set-up is in the logs' timeline) on
    ``db_path``, with a clock around each function of PHASES (wrapped in this throwaway process
    only), twice: the first open on a page cache the copy left warm-ish, the second warm; ms, and
    how many calls. In a forked worker the imports are already done (the zygote preloads them)."""
    import importlib
    import inspect
    import logging

    from bench.sequencer_throughput import MEMPOOL
    from protocol import load_genesis
    from services.runtime import Storage
    from services.sequencer import SequencerSettings
    from services.sequencer._sequencer import Sequencer

    spent: dict[str, list[float]] = {}

    def clock(label: str, fn: Any) -> Any:
        if inspect.iscoroutinefunction(fn):
            async def timed_async(*a: Any, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await fn(*a, **k)
                finally:
                    spent.setdefault(label, []).append(time.perf_counter() - t0)
            return timed_async

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent.setdefault(label, []).append(time.perf_counter() - t0)
        return timed

    for module, path, label in PHASES:
        owner: Any = importlib.import_module(module)
        *outer, name = path.split(".")
        for part in outer:
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, name):  # one PHASES for the trees an A/B compares
            setattr(owner, name, clock(label, getattr(owner, name)))
    settings = SequencerSettings.from_mapping({"chain_id": 901, "genesis_file": str(genesis_file),
                                               "mempool": MEMPOOL})
    pending = pathlib.Path(str(db_path).removesuffix(".db") + ".pending.db")
    with contextlib.closing(sqlite3.connect(f"file:{pending}?mode=ro", uri=True)) as db:
        (entries,) = db.execute("SELECT COUNT(*) FROM pending").fetchone()
    out: list[tuple[str, float]] = [(f"pending log entries at start: {entries:,}", 0.0)]

    async def one(run: str) -> None:
        spent.clear()
        t0 = time.perf_counter()
        storage = Storage(db_path)
        t1 = time.perf_counter()
        genesis = load_genesis(str(genesis_file))
        t2 = time.perf_counter()
        sequencer = await Sequencer.open(storage, settings, genesis, logging.getLogger("phases"))
        t3 = time.perf_counter()
        out.append((f"{run}: Storage(path): open, pragmas", (t1 - t0) * 1000))
        out.append((f"{run}: load_genesis ({len(genesis.alloc):,} accounts)", (t2 - t1) * 1000))
        out.append((f"{run}: **Sequencer.open, whole**", (t3 - t2) * 1000))
        for _, _, label in PHASES:
            if label in spent:
                calls = spent[label]
                times = f" ({len(calls)} calls)" if len(calls) > 1 else ""
                out.append((f"{run}: {label}{times}", sum(calls) * 1000))
        await sequencer.aclose()
        storage.close()

    asyncio.run(one("1st open"))
    asyncio.run(one("2nd open"))
    return out


def summary(xs: list[float]) -> dict[str, float]:
    s = sorted(x * 1000 for x in xs)
    q = statistics.quantiles(s, n=100, method="inclusive")
    return {"min": s[0], "p50": statistics.median(s), "p90": q[89], "p99": q[98], "max": s[-1]}


def row(name: str, s: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{s[k]:.1f}" for k in ("min", "p50", "p90", "p99", "max")) + " |"


def print_services(args: argparse.Namespace, r: dict[str, Any]) -> None:
    cmd = shlex.join(["python", "bench/restart_latency.py", *sys.argv[1:]])
    times: dict[str, list[float]] = r["times"]
    print(f"# restart latency of real workers in one `l2node up` tree, kill -9 -> SERVING from the new process "
          f"({args.kills} kills each)")
    print(f"# command: {cmd}   ({time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} cores)")
    print(f"# load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in r['loadavg_before'])}, "
          f"after {' '.join(f'{x:.2f}' for x in r['loadavg_after'])}")
    if "state" in r:
        st = r["state"]
        print(f"# state: {st['accepted']:,} transfers from {r['senders']:,} senders, each to a new account "
              f"(chain: {r['senders'] + args.state:,} bench accounts + the devnet's), signed while the tree started "
              f"(+{r['sign_wait_s']:.0f} s after it was up), sent {CHUNK:,} at a time, all sealed after "
              f"{st['sealed_s']:.0f} s, head block {st['head']:,}")
    if "copy_s" in r:
        print(f"# kept database: a copy of {args.data_of} (copied in {r['copy_s']:.1f} s), opened twice before the "
              f"tree started (the step table below: the first open's migration, once); the restored pending "
              f"transfers sealed before the kills: head block {r['head']:,}")
    if "safe" in r:
        safe, sealed, waited = r["safe"]
        print(f"# before the kills, waited {waited:.0f} s for SAFE: safe head {safe:,} / sealed head {sealed:,}")
    print("# resident memory before the kills (MB): " + ", ".join(f"{k} {v:,.0f}" for k, v in r["rss"].items()))
    if "rss_after" in r:
        print("# resident memory after the kills, the last restarted process (MB): "
              + ", ".join(f"{k} {v:,.0f}" for k, v in r["rss_after"].items()))
    safe, sealed, _ = r["chain"]
    print(f"# after the kills: safe head {safe:,} / sealed head {sealed:,}")
    print("| ms | min | p50 | p90 | p99 | max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, xs in times.items():
        label = "idle worker (runtime only), same tree" if name == IDLE_ID else name
        print(row(label, summary(xs)))
    if "catchup" in r:
        print(row("rollups: kill -> derived head back (--catchup)", summary(r["catchup"])))
    print()
    print("# what each restart cost, whatever the load: the new process's CPU time (all threads) and minor page "
          "faults from the kill until it was seen SERVING, p50 (min-max); what a warm process did before the kill "
          "(supervisor/_warm_pages.py) not counted")
    print("| worker | CPU ms | minor faults |")
    print("| --- | --- | --- |")
    for name, xs in r["costs"].items():
        cpu, faults = sorted(c for c, _ in xs), sorted(f for _, f in xs)
        label = "idle worker" if name == IDLE_ID else name
        print(f"| {label} | {statistics.median(cpu):.1f} ({cpu[0]:.1f}-{cpu[-1]:.1f}) | "
              f"{statistics.median(faults):,.0f} ({faults[0]:,}-{faults[-1]:,}) |")
    for name, rows in r.get("timeline", {}).items():
        print()
        print(f"# {name}: its restarts as the logs tell them, ms after the kill (log lines are ms-stamped, "
              f"wall clock)")
        print("| log line | p50 | max |")
        print("| --- | --- | --- |")
        for line, p50, most in rows:
            print(f"| {line} | {p50:.1f} | {most:.1f} |")
    if "phases" in r:
        print()
        print("# sequencer start, step by step (a fresh process on a copy of its database; ms):")
        print("| step | ms |")
        print("| --- | --- |")
        for name, ms in r["phases"]:
            print(f"| {name} | {ms:.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=60)
    ap.add_argument("--services", default="", help="real-services mode: these workers of a whole tree "
                    "(e.g. sequencer,rollups), the idle worker beside them")
    ap.add_argument("--state", type=int, default=0, help="large-state mode: this many transfers first, "
                    "each to a new account (implies --services sequencer,rollups if not given)")
    ap.add_argument("--senders", type=int, default=SENDERS, help="accounts the genesis funds to send them")
    ap.add_argument("--wait-safe", type=float, default=0.0, help="before the kills, wait up to this many "
                    "seconds for the safe head to reach the sealed head")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a restart may take")
    ap.add_argument("--phases", action="store_true", help="after the kills, time the sequencer's start step by "
                    "step on a copy of its database")
    ap.add_argument("--catchup", type=int, default=0, help="rollups catch-up mode: SIGKILL the rollups worker "
                    "this many times first, timing kill -> its derived head back where it was")
    ap.add_argument("--data-of", default="", help="kept-database mode: a copy of this directory's sequencer.db "
                    "(bench/long_run.py --keep) in a tree, its sequencer killed --kills times")
    ap.add_argument("--genesis-accounts", type=int, default=SENDERS, help="with --data-of: the senders the "
                    "genesis that built it funded (bench.sequencer_throughput.write_genesis)")
    ap.add_argument("--keep-logs", default="", help="copy the tree's logs (DATA_DIR/logs) into this directory")
    ap.add_argument("--tmp-dir", default="", help="where the temporary data dir goes (default: the system's)")
    ap.add_argument("--phases-of", default="", help=argparse.SUPPRESS)
    ap.add_argument("--genesis", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phases_of:
        print(json.dumps(time_phases(pathlib.Path(args.phases_of), pathlib.Path(args.genesis))))
        return 0
    if args.data_of:
        with tempfile.TemporaryDirectory(prefix="l2bench-", dir=args.tmp_dir or None) as d:
            print_services(args, bench_data(args, pathlib.Path(d)))
        return 0
    if args.state and not args.services:
        args.services = "sequencer,rollups"
    if args.services:
        with tempfile.TemporaryDirectory(prefix="l2bench-") as d:
            print_services(args, bench_services(args, pathlib.Path(d)))
        return 0
    loadavg = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="l2bench-") as d:
        tmp = pathlib.Path(d)
        ours = summary(bench_l2node(args.kills, tmp))
        base = summary(bench_respawn(args.kills, tmp))
    cmd = "python bench/restart_latency.py" + (f" --kills {args.kills}" if args.kills != 60 else "")
    print(f"# restart latency, kill -9 -> SERVING from the new process ({args.kills} kills each)")
    print(f"# command: {cmd}   ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print(f"# load average (1/5/15 min): before {' '.join(f'{x:.2f}' for x in loadavg)}, "
          f"after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| ms | min | p50 | p90 | p99 | max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, s in (("l2node (zygote fork)", ours), ("plain re-spawn (Popen)", base)):
        print(row(name, s))
    print(f"ratio re-spawn / l2node: p50 {base['p50'] / ours['p50']:.1f}x, p99 {base['p99'] / ours['p99']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
