"""What `l2node up` prints on a terminal once the tree is up: where the CLI is, the dev accounts,
the L1 URL and the next three commands, so that a newcomer reaches a finalized transfer without
reading code. The README's quick tour shows the same commands (a test checks it)."""

from __future__ import annotations

import os
import pathlib
import sys

from l2node.node.config import NodeConfig, default_data_dir
from protocol import DEV_ACCOUNTS
from services.l1 import checksum

#: The first steps after `make up`, in order, as the README's quick tour has them (run with the CLI).
NEXT_STEPS: tuple[str, ...] = (
    "l2node tx send --dev 0 --to 0x000000000000000000000000000000000000dEaD --value 1000 --wait finalized",
    "l2node tx status HASH",
    "l2node outputs",
)


def cli_path() -> str:
    """The `l2node` beside this Python (the venv's), relative to the working directory when inside it."""
    path = pathlib.Path(sys.executable).parent / "l2node"
    if not path.exists():
        return "l2node"
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(pathlib.Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def text(cfg: NodeConfig, l1_rpc: str | None, cli: str | None = None) -> str:
    """The banner. ``l1_rpc`` is the URL the tree uses; a local anvil not on ``cfg.l1_port`` says why."""
    cli = cli or cli_path()
    flags = "" if cfg.data_dir == default_data_dir().resolve() else f" --data-dir {cfg.data_dir}"
    if cfg.l1_rpc is not None:
        l1 = f"{l1_rpc} (external)"
    else:
        l1 = f"{l1_rpc} (local anvil, chain id {cfg.chain_id}"
        port = (l1_rpc or "").rsplit(":", 1)[-1]
        l1 += f"; port {cfg.l1_port} was busy)" if cfg.l1_port and port != str(cfg.l1_port) else ")"
    accounts = [f"--dev {i} {checksum(a)}" for i, a in enumerate(DEV_ACCOUNTS)]
    rows = ["  ".join(accounts[i:i + 2]) for i in range(0, len(accounts), 2)]
    lines = [
        "",
        f"l2node is up (control {cfg.control_address}, data {cfg.data_dir}). Ctrl-C stops it.",
        f"  CLI           {cli}   (`{cli} --help`; `{cli} status` shows the tree)",
        f"  L1            {l1}",
        *([f"  JSON-RPC      {cfg.jsonrpc_url} (Ethereum's: cast, viem, ethers, web3.py, wallets; ws:// too)"]
          if cfg.jsonrpc_url else []),
        f"  L2 chain id   {cfg.rollups.chain_id}; dev accounts (funded by the devnet genesis; sign with --dev N):",
        *(f"                {row}" for row in rows),
        "  Next, in another terminal:",
        *(f"    {cli}{step.removeprefix('l2node')}{flags}" for step in NEXT_STEPS),
        "",
    ]
    return "\n".join(lines)
