"""An idle node is quiet: a real `l2node up` (sequencer + rollups) against a real anvil mining a
block a second, seen through a counting JSON-RPC proxy, makes at most 2 L1 requests a second
(each element of a batch counted as one request). The same run's L1 URL carries credentials as a
paid provider's does: none of them shows in the logs, endpoints.json or `status --json`."""

from __future__ import annotations

import asyncio
import collections
import json
import pathlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from l2node.node.deploy import (
    DEVNET_BATCHER,
    DEVNET_BATCHER_KEY,
    DEVNET_CHALLENGER_KEY,
    DEVNET_DEPLOYER_KEY,
    DEVNET_PROPOSER_KEY,
    deploy_contracts,
)
from l2node.node.l1 import anvil_binary
from tests.node.test_up import L2NODE, cli, wait_for
from tests.ports import free_base_port, free_port

#: The issue's bound for an idle node, per node.
MAX_IDLE_RATE = 2.0
OBSERVE_S = 24.0
#: Idle long enough for every poller's backoff to reach its ceiling (services.l1.Pacer).
SETTLE_S = 20.0
#: What a provider URL hides: userinfo, a key in the path, a key in the query.
SECRETS = ("s3cretpass", "9aa3d95b3bc440fa88ea12eaa4456161", "Qz7apikeyvalue")


class CountingProxy:
    """An HTTP JSON-RPC proxy on its own thread and loop; counts every call by method."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def snapshot(self) -> collections.Counter[str]:
        with self._lock:
            return collections.Counter(self.counts)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        async with aiohttp.ClientSession() as session:
            async def forward(request: web.Request) -> web.Response:
                body = await request.read()
                doc = json.loads(body)
                with self._lock:
                    for call in doc if isinstance(doc, list) else [doc]:
                        self.counts[call.get("method", "?")] += 1
                async with session.post(self.upstream, data=body,
                                        headers={"content-type": "application/json"}) as answer:
                    return web.Response(body=await answer.read(), content_type="application/json")

            app = web.Application()
            app.router.add_post("/{tail:.*}", forward)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            await asyncio.Event().wait()


@pytest.fixture(scope="module")
def anvil() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--quiet",
                             "--block-time", "1", "--slots-in-an-epoch", "4"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _chain_id(url), 10, "anvil up")
        yield url
    finally:
        proc.kill()
        proc.wait()


def _chain_id(url: str) -> Any:
    import urllib.request

    req = urllib.request.Request(url, data=b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}',
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return json.loads(resp.read())["result"]
    except OSError:
        return None


@dataclass
class IdleRun:
    data_dir: pathlib.Path
    seen: collections.Counter[str]
    elapsed_s: float
    status_json: str
    endpoints_json: str
    output: str  # what `l2node up` printed


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory, anvil: str) -> IdleRun:
    tmp_path = tmp_path_factory.mktemp("quiet")
    data_dir = tmp_path / "data"
    asyncio.run(deploy_contracts(anvil, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path))
    keys = {}
    for role, key in (("batcher", DEVNET_BATCHER_KEY), ("proposer", DEVNET_PROPOSER_KEY),
                      ("challenger", DEVNET_CHALLENGER_KEY)):
        keys[role] = tmp_path / f"{role}.key"
        keys[role].write_text(key + "\n")
    proxy = CountingProxy(anvil)
    user, key, apikey = SECRETS
    secret_url = f"http://operator:{user}@127.0.0.1:{proxy.port}/v3/{key}?apikey={apikey}"
    config = tmp_path / "l2node.toml"
    config.write_text(
        f"[node]\nbase_port = {free_base_port()}\n[jsonrpc]\nport = 0\n"  # trees of tests at once: not 8547
        f'[l1]\nrpc = "{secret_url}"\ncontracts = "{tmp_path / "l1" / "contracts.json"}"\n'
        + "".join(f'{role}_key_file = "{path}"\n' for role, path in keys.items()))
    log = open(tmp_path / "up.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([*L2NODE, "up", "--data-dir", str(data_dir), "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        endpoints = data_dir / "run" / "endpoints.json"

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            rows = json.loads(endpoints.read_text())["children"]
            return len(rows) == 6 and all(c["state"] == "running" for c in rows)

        wait_for(up, 60, "tree up")
        time.sleep(SETTLE_S)  # catching up on the chain is work, not idleness
        before, start = proxy.snapshot(), time.monotonic()
        time.sleep(OBSERVE_S)
        seen, elapsed = proxy.snapshot() - before, time.monotonic() - start
        status_json = cli(data_dir, "status", "--json").stdout
        endpoints_json = endpoints.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return IdleRun(data_dir, seen, elapsed, status_json, endpoints_json, (tmp_path / "up.log").read_text())


def test_an_idle_node_makes_at_most_two_l1_requests_a_second(idle: IdleRun) -> None:
    rate = sum(idle.seen.values()) / idle.elapsed_s
    assert rate <= MAX_IDLE_RATE, f"{rate:.1f} L1 requests/s while idle: {dict(idle.seen.most_common())}"


def test_the_l1_url_credentials_are_shown_nowhere(idle: IdleRun) -> None:
    status = json.loads(idle.status_json)
    assert status["l1_rpc"].startswith("http://***@127.0.0.1:") and "/v3/***?apikey=***" in status["l1_rpc"]
    assert json.loads(idle.endpoints_json)["l1_rpc"] == status["l1_rpc"]
    files = sorted((idle.data_dir / "logs").glob("*.log"))
    assert {p.stem for p in files} >= {"supervisor", "sequencer", "rollups"}
    assert "batcher ready" in idle.output  # the sequencer does log its L1 endpoint...
    shown = {"status --json": idle.status_json, "endpoints.json": idle.endpoints_json, "stderr": idle.output,
             **{p.name: p.read_text() for p in files}}
    for where, text in shown.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {where}"  # ...redacted
