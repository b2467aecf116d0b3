"""Deposit latency: from the deposit's L1 block reaching the confirmation depth to its mint on L2.

    python bench/deposit_latency.py [--deposits 20] [--after-idle 3] [--idle-s 30] [--depth 4]
                                    [--settings JSON]

A real anvil as `l2node up` runs it (a block a second, finalized 8 blocks back), the contracts
deployed, and a real sequencer worker (its settings' defaults unless --settings overrides them)
reading L1 through a counting proxy. Deposits are sent at random moments of the L1 block period.
The bench watches both sides itself: it polls anvil's head every 2 ms (the moment block D + depth
is first seen: the deposit of block D is at depth) and follows the sequencer's SubscribeBlocks
stream (the moment the block minting the deposit arrives). The latency is the difference, on one
monotonic clock; each side's observation error is a few ms.

First it leaves the node idle for --idle-s and counts its L1 requests (HTTP requests, and the
JSON-RPC calls in them) over the second half, once its follower has backed off. Then --deposits
deposits 1-2 s apart, then --after-idle more, each after --idle-s of quiet (the first deposit an
idle node sees: its follower was backed off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

import aiohttp
import grpc
from aiohttp import web

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_BATCHER_KEY, DEVNET_DEPLOYER_KEY, deploy_contracts  # noqa: E402
from l2node.node.l1 import free_loopback_port  # noqa: E402
from protocol import Deposit  # noqa: E402
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb  # noqa: E402
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc  # noqa: E402
from services.l1 import Artifact, Contract  # noqa: E402
from tests.l1.anvil import Anvil  # noqa: E402
from tests.serving import wait_serving  # noqa: E402


class CountingProxy:
    """An HTTP JSON-RPC proxy to anvil that counts what passes: HTTP requests and calls. It runs
    on an event loop of its own thread, so the bench's blocking calls never hold it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests = 0
        self.calls = 0
        self.methods: Counter[str] = Counter()
        self.url = f"http://127.0.0.1:{free_loopback_port()}"
        self._session: aiohttp.ClientSession | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True).start()
        self._ready.wait(10)

    async def _serve(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/", self._forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(self.url.rsplit(":", 1)[1])).start()
        self._ready.set()
        await asyncio.Event().wait()  # until the process exits

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        parsed = json.loads(body)
        calls = parsed if isinstance(parsed, list) else [parsed]
        self.calls += len(calls)
        self.methods.update(call["method"] for call in calls)
        assert self._session is not None
        async with self._session.post(self.upstream, data=body, headers={"Content-Type": "application/json"}) as r:
            return web.Response(body=await r.read(), status=r.status, content_type="application/json")


class Watcher:
    """First-seen times of L1 heads (polled) and of L2 blocks' transactions (streamed)."""

    def __init__(self, anvil: Anvil, stub: Any) -> None:
        self.l1_seen: dict[int, float] = {}
        self.l2_seen: dict[str, float] = {}
        self._anvil = anvil
        self._stub = stub
        self._stop = threading.Event()
        self._stream: Any = None

    def start(self) -> None:
        threading.Thread(target=self._heads, daemon=True).start()
        self._stream = self._stub.SubscribeBlocks(pb.SubscribeBlocksRequest())
        threading.Thread(target=self._blocks, daemon=True).start()

    def _heads(self) -> None:
        while not self._stop.is_set():
            number = int(self._anvil.rpc("eth_blockNumber"), 16)
            self.l1_seen.setdefault(number, time.monotonic())
            time.sleep(0.002)

    def _blocks(self) -> None:
        try:
            for item in self._stream:
                now = time.monotonic()
                for tx_hash in item.block.transaction_hashes:
                    self.l2_seen.setdefault(tx_hash, now)
        except grpc.RpcError:
            pass  # cancelled at the end

    def stop(self) -> None:
        self._stop.set()
        self._stream.cancel()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deposits", type=int, default=30)
    parser.add_argument("--depth", type=int, default=4, help="the sequencer's confirmation_depth")
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--after-idle", type=int, default=3,
                        help="then this many deposits, each after --idle-s of quiet (the follower backed off)")
    parser.add_argument("--settings", default="{}", help="JSON merged into the sequencer's [l1] settings")
    args = parser.parse_args()

    anvil = Anvil(args=("--block-time", "1", "--slots-in-an-epoch", "4"))  # l2node up's devnet L1
    anvil.start()
    proxy = CountingProxy(anvil.url)
    proxy.start()
    data = pathlib.Path(tempfile.mkdtemp(prefix="deposit-latency-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(deploy_contracts(anvil.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, data))
        key_file = data / "batcher.key"
        key_file.write_text(DEVNET_BATCHER_KEY)
        address = f"127.0.0.1:{free_loopback_port()}"
        l1 = {"rpc": proxy.url, "contracts": str(data / "l1" / "contracts.json"), "batcher_key_file": str(key_file),
              "confirmation_depth": args.depth, **json.loads(args.settings)}
        config = {"service": "sequencer", "address": address, "data_dir": str(data / "seq"), "settings": {"l1": l1}}
        with (data / "sequencer.log").open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "services.runtime", "services.sequencer:WORKER",
                                     "--config-json", json.dumps(config)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=log, env=dict(os.environ))
        channel = grpc.insecure_channel(address)
        wait_serving(channel, 60)
        stub = pb_grpc.SequencerServiceStub(channel)
        time.sleep(args.idle_s / 2)  # the follower backs off while nothing happens
        requests, calls, started, methods = proxy.requests, proxy.calls, time.monotonic(), proxy.methods.copy()
        time.sleep(args.idle_s / 2)
        elapsed = time.monotonic() - started
        idle_requests, idle_calls = (proxy.requests - requests) / elapsed, (proxy.calls - calls) / elapsed
        idle_methods = proxy.methods - methods
        watcher = Watcher(anvil, stub)
        watcher.start()

        portal_address = json.loads((data / "l1" / "contracts.json").read_text())["contracts"]["DepositPortal"]
        portal = Contract(Artifact.load("DepositPortal"))
        depositor = anvil.rpc("eth_accounts")[6]
        to = bytes.fromhex("00000000000000000000000000000000000d3e05")

        def deposit() -> tuple[int, str]:
            """A deposit: its L1 block and its L2 hash."""
            tx = anvil.rpc("eth_sendTransaction", {"from": depositor, "to": portal_address, "value": hex(10**15),
                                                   "data": "0x" + portal.encode_call("depositTransaction", to).hex()})
            receipt = anvil.receipt(tx)
            (event,) = receipt["logs"]
            source = bytes.fromhex(event["data"][2:])[64:96]  # data: mint, l1Block, sourceHash
            return int(receipt["blockNumber"], 16), "0x" + Deposit(source, to, 10**15).hash().hex()

        def latency(sent: list[tuple[int, str]]) -> list[float]:
            deadline = time.monotonic() + 30
            while any(h not in watcher.l2_seen for _, h in sent):
                assert time.monotonic() < deadline, "deposits not minted"
                time.sleep(0.1)
            return [1000 * (watcher.l2_seen[h] - watcher.l1_seen[block + args.depth]) for block, h in sent]

        sent = []
        for _ in range(args.deposits):  # (none: only the idle rate)
            time.sleep(random.uniform(1.0, 2.0))  # a random moment of the block period
            sent.append(deposit())
        latencies = latency(sent)
        after_idle = []
        for _ in range(args.after_idle):
            time.sleep(args.idle_s + random.uniform(0, 1))
            after_idle += latency([deposit()])

        watcher.stop()
        channel.close()

        print(f"deposits: {len(latencies)}, confirmation depth {args.depth}, L1 block time 1 s, "
              f"settings {args.settings}")
        if latencies:
            print(f"latency (depth reached -> minted on L2), ms: p50 {statistics.median(latencies):.0f}, "
                  f"p90 {percentile(latencies, 0.9):.0f}, p99 {percentile(latencies, 0.99):.0f}, "
                  f"min {min(latencies):.0f}, max {max(latencies):.0f}")
            print("each, ms, in order:", " ".join(f"{x:.0f}" for x in latencies))
        print("after idle, ms:", " ".join(f"{x:.0f}" for x in after_idle))
        print(f"idle sequencer, L1 requests/s: {idle_requests:.2f} HTTP ({idle_calls:.2f} JSON-RPC calls: "
              + ", ".join(f"{m} {n / elapsed:.2f}" for m, n in idle_methods.most_common()) + ")")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        anvil.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
