"""Ethereum JSON-RPC throughput of a `l2node up` tree, side by side with anvil's in the same run.

    .venv/bin/python bench/jsonrpc.py [--duration 5] [--connections 32] [--accounts 512]
        [--per-account 48] [--batch 256] [--inflight 4] [--old DIR] [--replicas 0|1|2]

Starts a tree (bench/e2e_throughput.py's: its own anvil, a genesis funding ``--accounts`` bench
keys, roomy pool limits; the bridge and channels workers left out), then, each for ``--duration``
seconds, from a load generator in a separate process (so that its CPU is not the server's):

- reads with keep-alive, ``--connections`` HTTP/1.1 connections each with one request
  outstanding: ``eth_blockNumber`` and ``eth_getBalance`` against the tree's JSON-RPC, then the
  same against its anvil (the L1: native code, the yardstick);
- sends: every transfer pre-signed (nonce-major: each account's nonce 0, then 1, ...), posted as
  JSON-RPC batches of ``--batch`` eth_sendRawTransaction, ``--inflight`` batches outstanding; and
  for comparison the same kind of transfers straight to the sequencer's gRPC SendRawTransactions
  (what the JSON-RPC layer costs on top).
- with ``--replicas N``: N read-replica trees of it (``[node] role = "replica"``, the same anvil
  and genesis) are started too, and the same reads run against one replica, then against N at
  once (the connections split between them), in the same run as the sequencer tree's own.

Prints the command, the load average before and after, and per row: requests (or transactions)
per second, p50 and p99 latency, and the CPU seconds per 1,000 of the JSON-RPC worker, the
sequencer and the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import shlex
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e_throughput import Tree, process_cpu, rpc, write_genesis  # noqa: E402
from bench.sequencer_throughput import GRPC_OPTIONS, MEMPOOL, address_of, bench_key, presign  # noqa: E402
from protocol import BLOCK_GAS_LIMIT  # noqa: E402
from tests.ports import free_base_port, free_port  # noqa: E402


def config(genesis: pathlib.Path, base_port: int, l1_port: int, rpc_port: int) -> str:
    mempool = ", ".join(f"{k} = {v}" for k, v in MEMPOOL.items())
    return (f"[node]\nbase_port = {base_port}\ngenesis = \"{genesis}\"\n[l1]\nport = {l1_port}\n"
            f"[jsonrpc]\nport = {rpc_port}\n[workers.sequencer.settings]\nmempool = {{ {mempool} }}\n"
            "[workers.bridge]\nenabled = false\n[workers.channels]\nenabled = false\n")


def replica_config(genesis: pathlib.Path, base_port: int, rpc_port: int, l1: str, contracts: pathlib.Path,
                   upstream: str) -> str:
    return (f"[node]\nbase_port = {base_port}\ngenesis = \"{genesis}\"\nrole = \"replica\"\n"
            f"[l1]\nrpc = \"{l1}\"\ncontracts = \"{contracts}\"\n[replica]\nupstream = \"{upstream}\"\n"
            f"[jsonrpc]\nport = {rpc_port}\n")


def wait_up(tree: Tree, url: str, timeout: float = 120, children: int = 5) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if tree.proc.poll() is not None:
            raise RuntimeError(f"l2node up exited: {tree.log_path.read_text()[-3000:]}")
        try:
            doc = json.loads((tree.data_dir / "run" / "endpoints.json").read_text())
            if all(c["state"] == "running" for c in doc["children"]) and len(doc["children"]) == children:
                rpc(url, "eth_chainId")
                tree.doc = doc
                return
        except (OSError, ValueError, RuntimeError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"tree not up within {timeout} s: {tree.log_path}")
        time.sleep(0.2)


# -- the load generator (its own process) -------------------------------------------------------


async def _keep_alive(url: str, body: bytes, duration: float, connections: int) -> dict[str, Any]:
    """``connections`` HTTP/1.1 keep-alive connections, each posting ``body`` again as soon as the
    answer is in, for ``duration`` s: raw asyncio streams, so the client costs little per request."""
    parts = urllib.parse.urlsplit(url)
    head = (f"POST / HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + duration

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while (t0 := time.perf_counter()) < end:
                writer.write(head)
                header = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in header.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if b'"error"' in answer or not header.startswith(b"HTTP/1.1 200"):
                    errors += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return {"count": len(latencies), "seconds": time.perf_counter() - start, "latencies": latencies,
            "errors": errors}


async def _batches(url: str, txs: Sequence[bytes], batch: int, inflight: int, duration: float) -> dict[str, Any]:
    """JSON-RPC batches of eth_sendRawTransaction, ``inflight`` outstanding, until ``duration`` or the
    transfers run out."""
    import aiohttp

    latencies: list[float] = []
    counts = {"sent": 0, "accepted": 0, "refused": 0}
    bodies = [json.dumps([{"jsonrpc": "2.0", "id": k, "method": "eth_sendRawTransaction", "params": ["0x" + r.hex()]}
                          for k, r in enumerate(txs[i:i + batch])]).encode() for i in range(0, len(txs), batch)]
    queue = iter(bodies)
    end = time.perf_counter() + duration
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=inflight)) as session:
        async def worker() -> None:
            for body in queue:
                if time.perf_counter() >= end:
                    return
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    answers = await resp.json()
                latencies.append(time.perf_counter() - t0)
                counts["sent"] += len(answers)
                refused = sum(1 for a in answers if "error" in a)
                counts["refused"] += refused
                counts["accepted"] += len(answers) - refused

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
    return {**counts, "seconds": time.perf_counter() - start, "latencies": latencies}


async def _grpc_batches(address: str, txs: Sequence[bytes], batch: int, inflight: int, duration: float
                        ) -> dict[str, Any]:
    import grpc

    from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
    from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc

    latencies: list[float] = []
    counts = {"sent": 0, "accepted": 0, "refused": 0}
    queue = iter(range(0, len(txs), batch))
    end = time.perf_counter() + duration
    async with grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) as channel:
        stub = pb_grpc.SequencerServiceStub(channel)

        async def worker() -> None:
            for i in queue:
                if time.perf_counter() >= end:
                    return
                t0 = time.perf_counter()
                reply = await stub.SendRawTransactions(pb.SendRawTransactionsRequest(raw_transactions=txs[i:i + batch]),
                                                       timeout=60)
                latencies.append(time.perf_counter() - t0)
                refused = sum(1 for r in reply.results if r.HasField("error"))
                counts["sent"] += len(reply.results)
                counts["refused"] += refused
                counts["accepted"] += len(reply.results) - refused

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
    return {**counts, "seconds": time.perf_counter() - start, "latencies": latencies}


async def _keep_alive_many(urls: Sequence[str], body: bytes, duration: float, connections: int) -> dict[str, Any]:
    """``_keep_alive`` against each of ``urls`` at once, the connections split between them."""
    parts = await asyncio.gather(*(_keep_alive(u, body, duration, max(1, connections // len(urls))) for u in urls))
    return {"count": sum(p["count"] for p in parts), "seconds": max(p["seconds"] for p in parts),
            "latencies": [t for p in parts for t in p["latencies"]], "errors": sum(p["errors"] for p in parts)}


def load_process(conn: multiprocessing.connection.Connection, accounts: int, per_account: int) -> None:
    """Sign everything, say so; then run each job it is sent, answering with its figures and CPU."""
    txs = presign(accounts, per_account)
    conn.send(("signed", len(txs)))
    while True:
        job = conn.recv()
        if job[0] == "stop":
            return
        cpu0 = time.process_time()
        kind, args = job[0], job[1:]
        if kind == "reads":
            stats = asyncio.run(_keep_alive(*args))
        elif kind == "reads_many":
            stats = asyncio.run(_keep_alive_many(*args))
        elif kind == "sends":
            first, count, url, batch, inflight, duration = args
            stats = asyncio.run(_batches(url, txs[first:first + count], batch, inflight, duration))
        else:
            first, count, address, batch, inflight, duration = args
            stats = asyncio.run(_grpc_batches(address, txs[first:first + count], batch, inflight, duration))
        stats["cpu_s"] = time.process_time() - cpu0
        conn.send(stats)


# -- the report -------------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--accounts", type=int, default=512)
    parser.add_argument("--per-account", type=int, default=48)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--old", type=pathlib.Path, help="another source tree: its reads, side by side")
    parser.add_argument("--replicas", type=int, choices=(0, 1, 2), default=0,
                        help="read replicas of the tree to start and read from too")
    args = parser.parse_args()
    print("command:", shlex.join([".venv/bin/python", "bench/jsonrpc.py", *sys.argv[1:]]))
    print(f"load average before: {os.getloadavg()}  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")

    parent, child = multiprocessing.get_context("spawn").Pipe()
    loader = multiprocessing.get_context("spawn").Process(target=load_process,
                                                          args=(child, args.accounts, args.per_account))
    loader.start()
    with tempfile.TemporaryDirectory(prefix="l2bench-rpc-") as tmp_dir:
        tmp = pathlib.Path(tmp_dir)
        genesis = tmp / "genesis.json"
        write_genesis(genesis, args.accounts, BLOCK_GAS_LIMIT)
        rpc_port = free_port()
        url = f"http://127.0.0.1:{rpc_port}"
        tree = Tree(tmp, config(genesis, free_base_port(), free_port(), rpc_port))
        old_url, old_tree = "", None
        if args.old is not None:
            (tmp / "old").mkdir()
            old_port = free_port()
            old_url = f"http://127.0.0.1:{old_port}"
            old_tree = Tree(tmp / "old", config(genesis, free_base_port(), free_port(), old_port), args.old.resolve())
        replicas: list[tuple[Tree, str]] = []
        try:
            wait_up(tree, url)
            if old_tree is not None:
                wait_up(old_tree, old_url)
            anvil = str(tree.doc["l1_rpc"])
            pids = {c["id"]: int(c["pid"]) for c in tree.doc["children"] if c["pid"]}
            old_pids = {c["id"]: int(c["pid"]) for c in old_tree.doc["children"] if c["pid"]} if old_tree else {}
            replicas = start_replicas(tmp, genesis, tree, anvil, url, args.replicas)
            signed = parent.recv()
            print(f"signed {signed[1]} transfers ({args.accounts} accounts x {args.per_account})")
            someone = "0x" + address_of(bench_key(0)).hex()
            rows = []

            def run(label: str, job: tuple[Any, ...], unit: str,
                    which: dict[str, int] | Sequence[dict[str, int]] = pids) -> None:
                procs = [which] if isinstance(which, dict) else list(which)  # whose workers' CPU the row counts
                cpu0 = {k: sum(process_cpu(p[k]) for p in procs) for k in ("jsonrpc", "sequencer")}
                parent.send(job)
                stats = parent.recv()
                cpu = {k: sum(process_cpu(p[k]) for p in procs) - v for k, v in cpu0.items()}
                n = stats.get("accepted", stats.get("count", 0))
                rate = n / stats["seconds"] if stats["seconds"] else 0.0
                per = 1000 / n if n else 0.0
                extra = f", {stats['refused']} refused" if stats.get("refused") else ""
                extra += f", {stats['errors']} errors" if stats.get("errors") else ""
                lat = stats["latencies"]
                rows.append(f"| {label} | {rate:,.0f} {unit}/s | {_ms(lat, 0.5)} | {_ms(lat, 0.99)} | "
                            f"{cpu['jsonrpc'] * per:.2f} / {cpu['sequencer'] * per:.2f} / {stats['cpu_s'] * per:.2f} | "
                            f"{n:,}{extra} |")
                print(rows[-1], flush=True)

            print("| what | rate | p50 | p99 | CPU s per 1,000: jsonrpc / sequencer / client | done |")
            print("| --- | --- | --- | --- | --- | --- |")
            targets = [(url, "l2node", pids), (anvil, "anvil", pids)]
            if old_tree is not None:
                targets.insert(1, (old_url, f"l2node {args.old}", old_pids))
            for method, params in (("eth_blockNumber", []), ("eth_getBalance", [someone, "latest"])):
                body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
                for target, where, which in targets:
                    run(f"{where} {method}, {args.connections} connections", ("reads", target, body, args.duration,
                                                                              args.connections), "req", which)
            for n in range(1, len(replicas) + 1):  # one replica, then all of them at once
                urls = [u for _, u in replicas[:n]]
                for method, params in (("eth_blockNumber", []), ("eth_getBalance", [someone, "latest"])):
                    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
                    run(f"{n} replica{'s' * (n > 1)} {method}, {args.connections} connections",
                        ("reads_many", urls, body, args.duration, args.connections), "req",
                        [t.pids for t, _ in replicas[:n]])
            half = signed[1] // 2
            run(f"l2node eth_sendRawTransaction, batches of {args.batch}, {args.inflight} in flight",
                ("sends", 0, half, url, args.batch, args.inflight, args.duration), "tx")
            sequencer = next(str(c["address"]) for c in tree.doc["children"] if c["id"] == "sequencer")
            run(f"sequencer gRPC SendRawTransactions, {args.batch} a call, {args.inflight} in flight",
                ("grpc", half, signed[1] - half, sequencer, args.batch, args.inflight, args.duration), "tx")
            if replicas:  # they re-executed every block of the sends meanwhile: how far behind are they left?
                head, started = int(rpc(url, "eth_blockNumber"), 16), time.monotonic()
                for replica_url in (u for _, u in replicas):
                    while int(rpc(replica_url, "eth_blockNumber"), 16) < head and time.monotonic() < started + 120:
                        time.sleep(0.05)
                print(f"replicas at the sequencer's head (block {head}) {time.monotonic() - started:.2f} s after "
                      f"the sends; the replicas' sequencer workers' CPU: "
                      f"{sum(process_cpu(t.pids['sequencer']) for t, _ in replicas):.1f} s in all", flush=True)
        finally:
            parent.send(("stop",))
            loader.join(30)
            for replica, _ in replicas:
                replica.close()
            tree.close()
            if old_tree is not None:
                old_tree.close()
    print(f"load average after: {os.getloadavg()}")


def start_replicas(tmp: pathlib.Path, genesis: pathlib.Path, tree: Tree, anvil: str, url: str, count: int
                   ) -> list[tuple[Tree, str]]:
    """``count`` read-replica trees of ``tree``, up and at its head: each with its JSON-RPC URL."""
    replicas: list[tuple[Tree, str]] = []
    upstream = next(str(c["address"]) for c in tree.doc["children"] if c["id"] == "sequencer")
    for i in range(count):
        port = free_port()
        where = tmp / f"replica{i + 1}"
        where.mkdir()
        replica = Tree(where, replica_config(genesis, free_base_port(), port, anvil,
                                             tree.data_dir / "l1" / "contracts.json", upstream))
        replicas.append((replica, f"http://127.0.0.1:{port}"))
        wait_up(replica, replicas[-1][1], children=3)
    for _, replica_url in replicas:
        head = int(rpc(url, "eth_blockNumber"), 16)
        deadline = time.monotonic() + 60
        while int(rpc(replica_url, "eth_blockNumber"), 16) < head and time.monotonic() < deadline:
            time.sleep(0.1)
    return replicas


if __name__ == "__main__":
    main()
