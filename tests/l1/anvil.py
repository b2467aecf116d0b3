"""A real anvil for the L1 and contract tests: one per session, shared by both test packages,
with evm_snapshot / evm_revert around each test; plus dedicated ones for kill/restart tests and
for workers that follow a chain mining on its own (mining_anvil)."""

from __future__ import annotations

import contextlib
import json
import pathlib
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from l2node.node.l1 import anvil_binary
from protocol import DEV_PRIVATE_KEYS
from services.l1 import LocalSigner, checksum
from tests.ports import free_port

#: The standard dev mnemonic's first accounts (protocol's DEV_PRIVATE_KEYS), as 0x-hex.
DEV_KEYS = tuple("0x" + key.hex() for key in DEV_PRIVATE_KEYS[:4])
DEV_ADDRESSES = tuple(checksum(LocalSigner(key).address) for key in DEV_KEYS)  # checked in test_deploy


class Anvil:
    """anvil on 127.0.0.1:port; restartable on the same port."""

    def __init__(self, port: int | None = None, *, state: pathlib.Path | None = None, args: Sequence[str] = ()
                 ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._state = state
        self._args = tuple(args)  # more of anvil's flags, e.g. ("--chain-id", "1")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        argv = [anvil_binary(), "--host", "127.0.0.1", "--port", str(self.port), "--quiet", *self._args]
        if self._state is not None:
            argv += ["--state", str(self._state)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.rpc("eth_chainId")
                return
            except (OSError, urllib.error.URLError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"anvil did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def receipt(self, tx_hash: str, timeout_s: float = 10.0) -> Any:
        """The receipt of a sent transaction, once anvil has one (with automine it can lag the
        eth_sendTransaction answer by a moment while other senders' transactions are mined)."""
        deadline = time.monotonic() + timeout_s
        while (receipt := self.rpc("eth_getTransactionReceipt", tx_hash)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no receipt for {tx_hash} within {timeout_s}s")
            time.sleep(0.02)
        return receipt

    def rpc(self, method: str, *params: Any) -> Any:
        """A synchronous call, for fixtures (no event loop needed)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Whatever the body does to the chain is undone afterwards."""
        snap = self.rpc("evm_snapshot")
        try:
            yield
        finally:
            self.rpc("evm_setAutomine", True)
            if not self.rpc("evm_revert", snap):
                raise RuntimeError("evm_revert failed")


@contextlib.contextmanager
def mining_anvil() -> Iterator[Anvil]:
    """An anvil of the test's own that mines a block a second, as `l2node up`'s L1 does: for workers
    that follow its head and wait for depth (the shared one is reverted under them, and never moves)."""
    node = Anvil()
    node.start()
    try:
        node.rpc("evm_setIntervalMining", 1)
        yield node
    finally:
        node.stop()


_shared: Anvil | None = None
_users = 0


@contextlib.contextmanager
def shared_anvil() -> Iterator[Anvil]:
    """The session's one anvil, started by its first user and stopped after its last."""
    global _shared, _users
    if _shared is None:
        _shared = Anvil()
        _shared.start()
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0:
            _shared.stop()
            _shared = None
