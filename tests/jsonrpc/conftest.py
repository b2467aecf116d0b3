"""One `l2node up` tree for this folder, shared by its modules (starting one costs seconds): its
Ethereum JSON-RPC URL, and raw JSON-RPC helpers. The bridge and channels workers are left out (nothing here uses
them, and the tree is up sooner); the rollups worker stays (optimism_*)."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from protocol import DEV_PRIVATE_KEYS
from tests.conftest import Collector, otel_env
from tests.node.test_up import L2NODE, stop_tree, wait_for
from tests.ports import free_base_port, free_port

DEAD = "0x000000000000000000000000000000000000dEaD"


class ThreadedCollector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """tests.conftest's OTLP collector, served from a thread (the tree here outlives any one test's
    event loop)."""

    def __init__(self) -> None:
        self.sink = Collector()
        self._server = grpc.server(ThreadPoolExecutor(2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.sink.address = f"http://127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def Export(self, request: Any, context: Any) -> Any:
        return asyncio.run(self.sink.Export(request, context))

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], limit_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for span in list(self.sink.spans):
                if predicate(span):
                    return span
            time.sleep(0.02)
        raise AssertionError(f"no matching span in {len(self.sink.spans)}")

    def stop(self) -> None:
        self._server.stop(0)


@dataclass(frozen=True)
class Tree:
    url: str
    data_dir: pathlib.Path
    proc: subprocess.Popen[bytes]
    spans: ThreadedCollector

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def post(self, body: bytes | str | Any, headers: dict[str, str] | None = None) -> Any:
        """POST ``body`` (encoded as JSON unless bytes/str); the decoded answer, None if empty."""
        raw = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        sent = {"content-type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.url, data=raw, headers=sent)
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def call(self, method: str, *params: Any) -> Any:
        """The result; AssertionError with the error if there is one."""
        reply = self.post({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        assert "error" not in reply, reply
        return reply["result"]

    def error(self, method: str, *params: Any) -> dict[str, Any]:
        reply = self.post({"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)})
        assert "error" in reply and reply["id"] == 7, reply
        error: dict[str, Any] = reply["error"]
        return error


def dev(index: int) -> LocalAccount:
    account: LocalAccount = Account.from_key(DEV_PRIVATE_KEYS[index])
    return account


def transfer(tree: Tree, sender: LocalAccount, *, nonce: int | None = None, value: int = 1000, to: str = DEAD,
             fee_cap: int = 10**10, tip: int = 10**6) -> str:
    """A signed transfer, 0x hex."""
    if nonce is None:
        nonce = int(tree.call("eth_getTransactionCount", sender.address, "pending"), 16)
    tx = {"type": 2, "chainId": int(tree.call("eth_chainId"), 16), "nonce": nonce, "to": to, "value": value,
          "gas": 21000, "maxFeePerGas": fee_cap, "maxPriorityFeePerGas": tip}
    return "0x" + sender.sign_transaction(tx).raw_transaction.hex()


def receipt(tree: Tree, tx_hash: str, timeout: float = 15.0) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(lambda: tree.call("eth_getTransactionReceipt", tx_hash), timeout, "receipt")
    return found


@pytest.fixture(scope="package")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    tmp = tmp_path_factory.mktemp("jsonrpc")
    data_dir = tmp / "data"
    port = free_port()
    config = tmp / "l2node.toml"
    config.write_text(f"[node]\nbase_port = {free_base_port()}\n[l1]\nport = 0\n[jsonrpc]\nport = {port}\n"
                      "[workers.bridge]\nenabled = false\n[workers.channels]\nenabled = false\n"
                      # Reads traced only when asked (the default traces 1 in 100 as well): the tests
                      # know which of them are recorded.
                      "[workers.jsonrpc]\nsettings = { read_trace_ratio = 0.0 }\n")
    log = open(tmp / "up.log", "w")  # noqa: SIM115
    spans = ThreadedCollector()
    proc = subprocess.Popen([*L2NODE, "up", "--data-dir", str(data_dir), "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **otel_env(spans.sink)})
    t = Tree(f"http://127.0.0.1:{port}", data_dir, proc, spans)

    def up() -> bool:
        assert proc.poll() is None, (tmp / "up.log").read_text()
        try:
            rows = json.loads((data_dir / "run" / "endpoints.json").read_text())["children"]
        except (OSError, ValueError):
            return False
        return len(rows) == 5 and all(c["state"] == "running" for c in rows)

    try:
        wait_for(up, 60, "tree up")
        yield t
    finally:
        stop_tree(proc)
        spans.stop()
        log.close()
