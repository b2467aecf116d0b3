"""The local L1: anvil from the `@foundry-rs/anvil` npm package, run as an external child, and
the JSON-RPC probe that tells the supervisor an L1 node is up."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import shutil
import socket
from dataclasses import dataclass

import aiohttp
from yarl import URL

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_DEPLOYER_KEY, deploy_contracts
from l2node.node.params import RollupParams
from protocol import load_genesis
from services.runtime import redact_url
from supervisor import (
    ChildKind,
    ChildSpec,
    ExternalStarter,
    LaunchContext,
    Liveness,
    ProbeFailed,
    Restart,
    Running,
    Zygote,
    external,
    port_still_taken,
)

#: anvil's default chain id, which wallets and the dev accounts expect.
DEVNET_CHAIN_ID = 31337
#: Seconds between the local L1's blocks.
DEVNET_BLOCK_TIME_S = 1
#: The local L1's hang probe (an eth_chainId each time): every 5 s rather than every second, so
#: that an idle node stays under 2 L1 requests a second; a hung anvil is killed within ~15 s.
L1_LIVENESS = Liveness(interval_s=5.0)

_REPO = pathlib.Path(__file__).resolve().parents[2]


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system(), platform.system().lower())
    machine = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine(), platform.machine())
    return f"anvil-{system}-{machine}"


def anvil_binary() -> str:
    """The anvil executable: $L2NODE_ANVIL, the npm package's native binary, or anvil on PATH.

    The native binary is used rather than the package's node wrapper so that signals reach
    anvil itself and no node process sits in between.
    """
    if os.environ.get("L2NODE_ANVIL"):
        return os.environ["L2NODE_ANVIL"]
    for root in (pathlib.Path.cwd(), _REPO):
        candidate = root / "node_modules" / "@foundry-rs" / _platform_package() / "bin" / "anvil"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    raise FileNotFoundError("anvil not found: run `npm ci` in the project root, or set L2NODE_ANVIL")


class JsonRpcProbe:
    """A supervisor probe for an L1 node: a JSON-RPC call (``eth_chainId``) must return a result."""

    def __init__(self, url: str, method: str = "eth_chainId") -> None:
        self.url = url
        self.method = method
        self._session: aiohttp.ClientSession | None = None

    async def preflight(self) -> None:
        url = URL(self.url)
        if url.host and url.port and await port_still_taken(url.host, url.port):
            raise ProbeFailed(f"{redact_url(self.url)} is already in use by another process")

    async def check(self, timeout_s: float) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = {"jsonrpc": "2.0", "id": 1, "method": self.method, "params": []}
        try:
            async with self._session.post(
                self.url, json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as resp:
                reply = json.loads(await resp.text())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ProbeFailed(f"{self.method}: {type(exc).__name__}: {exc}") from None
        if "result" not in reply:
            raise ProbeFailed(f"{self.method}: {reply.get('error')}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def anvil_child(zygote: Zygote, data_dir: pathlib.Path, port: int, *, chain_id: int = DEVNET_CHAIN_ID,
                liveness: Liveness | None = None, params: RollupParams | None = None,
                genesis_file: str = "", block_time_s: float = DEVNET_BLOCK_TIME_S, gas_limit: int = 0) -> ChildSpec:
    """The `l1` child: anvil on 127.0.0.1:port, its state kept under DATA_DIR/l1, with the contracts
    deployed and the output registry anchored at the node's L2 genesis (``genesis_file``; "" = devnet's).
    ``block_time_s`` and ``gas_limit`` (0: anvil's default, 30M) tune the devnet's L1 (``[l1]``'s keys)."""
    l1_dir = data_dir / "l1"
    l1_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
        # The chain survives restarts: loaded at start, dumped every few seconds and at exit.
        "--state", str(l1_dir / "state.json"), "--state-interval", "5",
        # A chain that moves on its own, like a real one, so that batches reach safe and finalized
        # depth without more traffic: a block a second; "safe" is 4 blocks back, "finalized" 8.
        "--block-time", f"{block_time_s:g}", "--slots-in-an-epoch", "4",
        # No log of every request and block (~30 lines a second, unrotated): anvil.log keeps what
        # anvil still prints (its startup failure, a panic), which is what an operator needs.
        "--quiet",
    ]
    if gas_limit:
        argv += ["--gas-limit", str(gas_limit)]
    start = external(zygote, argv, f"http://127.0.0.1:{port}", JsonRpcProbe, output=str(l1_dir / "anvil.log"),
                     liveness=liveness if liveness is not None else L1_LIVENESS)
    deployed = _WithContracts(start, data_dir, params or RollupParams(), genesis_file)
    return ChildSpec(id="l1", start=deployed, restart=Restart.PERMANENT, shutdown=5000)


@dataclass(frozen=True, slots=True)
class _WithContracts:
    """anvil, started only once the L1 contracts are deployed on it (or found there).

    The workers start after the l1 child, in order, so they always find contracts.json.
    """

    inner: ExternalStarter
    data_dir: pathlib.Path
    params: RollupParams
    genesis_file: str = ""

    @property
    def kind(self) -> ChildKind:
        return self.inner.kind

    @property
    def address(self) -> str:
        return self.inner.address

    async def launch(self, ctx: LaunchContext) -> Running:
        running = await self.inner.launch(ctx)
        try:
            genesis = load_genesis(self.genesis_file) if self.genesis_file else None
            await deploy_contracts(self.inner.address, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, self.data_dir,
                                   params=self.params, genesis=genesis)
        except BaseException:
            await running.stop(5000)  # a starter that raises leaves nothing running
            raise
        return running
