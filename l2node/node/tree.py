"""The shape of `l2node up`: which children the root supervisor runs, in which order.

    root (one_for_one)
    ├── zygote       forks every other process; first, so that it is up before them
    ├── l1           local anvil, unless an external L1 RPC is configured
    └── <workers>    one gRPC worker process per service, each on its fixed port
                     (sequencer, rollups, bridge, channels, jsonrpc, then the config's extra
                     workers); jsonrpc also serves Ethereum's JSON-RPC on [jsonrpc] port
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import replace
from typing import Any

from l2node.node.config import BUILTIN_WORKERS, NodeConfig, WorkerEntry
from l2node.node.deploy import (
    DEVNET_BATCHER_KEY,
    DEVNET_CHALLENGER_KEY,
    DEVNET_CHANNELS_KEY,
    DEVNET_PROPOSER_KEY,
    DEVNET_RELAYER_KEY,
    contracts_path,
)
from l2node.node.l1 import anvil_child, free_loopback_port
from services.runtime import MONITOR_PRELOAD, ZYGOTE_PRELOAD, ZYGOTE_WARM
from supervisor import ChildSpec, SupervisorFlags, SupervisorSpec, Zygote, forked

_log = logging.getLogger("l2node.supervisor")

#: `ps` shows the tree's processes as "l2node: supervisor", "l2node: zygote", "l2node: sequencer"...
PROCESS_TITLE = "l2node"
#: What a forked worker runs; the definition to serve is in its payload.
WORKER_ENTRY = "services.runtime:zygote_entry"
#: Which L1 keys each built-in service is given: a key goes only where it signs.
KEYS_OF: dict[str, tuple[str, ...]] = {
    "sequencer": ("batcher_key_file",),
    "rollups": ("proposer_key_file", "challenger_key_file"),
    "bridge": ("relayer_key_file",),
    "channels": ("channels_key_file",),
}
#: Which other built-in services' gRPC addresses a service is given, as settings of the same name:
#: the rollups proposer cross-checks outputs with this tree's sequencer; the bridge follows the
#: sequencer's messages and deposits' credits and the rollups' outputs.
PEERS_OF: dict[str, tuple[str, ...]] = {
    "rollups": ("sequencer",),
    "bridge": ("sequencer", "rollups"),
    "jsonrpc": ("sequencer", "rollups"),
}
#: Built-in services that never talk to L1 (they get no ``l1`` settings, so no L1 key either).
NO_L1: frozenset[str] = frozenset({"jsonrpc"})


def worker_payload(cfg: NodeConfig, entry: WorkerEntry, index: int, l1: dict[str, str] | None = None
                   ) -> dict[str, Any]:
    """What the zygote's child gets; built-in services also get ``settings["l1"]`` (with their keys)."""
    settings = dict(entry.settings)
    addresses = {w.id: cfg.worker_address(i) for i, w in enumerate(cfg.workers)}
    for peer in PEERS_OF.get(entry.id, ()):
        if peer in addresses:  # a disabled peer: the service's own setting (or its absence) stands
            settings.setdefault(peer, addresses[peer])
    if entry.id == "jsonrpc":  # its JSON-RPC listener (settle_ports chose a free port for 0 or a busy one)
        settings.setdefault("host", cfg.jsonrpc_host or cfg.host)
        settings.setdefault("port", cfg.jsonrpc_port)
        if l1 is not None and l1.get("contracts"):  # the deployment, for optimism_rollupConfig (read, no L1 calls)
            settings.setdefault("contracts", l1["contracts"])
    if l1 is not None and entry.id in BUILTIN_WORKERS and entry.id not in NO_L1:
        keys = () if cfg.replica else KEYS_OF.get(entry.id, ())  # a read replica signs nothing
        own = {k: v for k, v in l1.items() if not k.endswith("_key_file") or k in keys}
        settings["l1"] = {**own, **settings.get("l1", {})}
    return {
        "definition": entry.definition,
        "config": {
            "service": entry.id,
            "address": cfg.worker_address(index),
            "data_dir": str(cfg.data_dir / "services" / entry.id),
            "index": index,
            "monitor_port": cfg.monitor_port(index),
            "settings": settings,
        },
    }


def worker_child(cfg: NodeConfig, zygote: Zygote, entry: WorkerEntry, index: int,
                 l1: dict[str, str] | None = None) -> ChildSpec:
    address = cfg.worker_address(index)
    return ChildSpec(id=entry.id, start=forked(zygote, WORKER_ENTRY, address,
                                               payload=worker_payload(cfg, entry, index, l1)))


def l1_settings(cfg: NodeConfig, rpc: str) -> dict[str, str]:
    """How services reach L1: its URL, the contracts file, and the key files of the roles that
    send L1 transactions (batcher, proposer, challenger, relayer, channels)."""
    if cfg.l1_rpc is not None:
        return {"rpc": rpc, "contracts": cfg.l1_contracts, "batcher_key_file": cfg.batcher_key_file,
                "proposer_key_file": cfg.proposer_key_file, "challenger_key_file": cfg.challenger_key_file,
                "relayer_key_file": cfg.relayer_key_file, "channels_key_file": cfg.channels_key_file}
    keys = {"batcher": DEVNET_BATCHER_KEY, "proposer": DEVNET_PROPOSER_KEY, "challenger": DEVNET_CHALLENGER_KEY,
            "relayer": DEVNET_RELAYER_KEY, "channels": DEVNET_CHANNELS_KEY}
    settings = {"rpc": rpc, "contracts": str(contracts_path(cfg.data_dir))}
    for role, key in keys.items():  # the devnet's: anvil dev accounts, written once, owner-only
        key_file = cfg.data_dir / "l1" / f"{role}.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key + "\n")
        settings[f"{role}_key_file"] = str(key_file)
    return settings


def settle_ports(cfg: NodeConfig) -> NodeConfig:
    """``cfg`` with the JSON-RPC port it will really have: the configured one if free; 0 or a busy
    one (another tree on this machine): a free one, logged (endpoints.json and the banner say
    which), as the local anvil's."""
    if cfg.jsonrpc_url is None:
        return cfg
    port = _free_or_other(cfg.jsonrpc_host or cfg.host, cfg.jsonrpc_port)
    if cfg.jsonrpc_port and port != cfg.jsonrpc_port:
        _log.warning("JSON-RPC port busy: serving on another", extra={"busy": cfg.jsonrpc_port, "port": port})
    return replace(cfg, jsonrpc_port=port)


def _free_or_other(host: str, wanted: int) -> int:
    return wanted if wanted and _bindable(host, wanted) else free_loopback_port()


def _bindable(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` now, bound as aiohttp, anvil and gRPC bind
    (SO_REUSEADDR: a port in TIME_WAIT is no obstacle)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def busy_worker_ports(cfg: NodeConfig) -> list[tuple[str, str]]:
    """The workers whose fixed address another program already listens on, with that address.

    Checked before anything starts: a worker that cannot bind would otherwise fail its start after
    the L1 and every worker before it came up, and say so only as its traceback in the log."""
    busy = []
    for index, worker in enumerate(cfg.workers):
        address = cfg.worker_address(index)
        host, _, port = address.rpartition(":")
        if not _bindable(host, int(port)):
            busy.append((worker.id, address))
    return busy


def local_l1_port(wanted: int) -> int:
    """The local anvil's port: ``wanted`` if free; if busy (another anvil, another tree), a free
    one, logged (the banner says so too); 0 = any free port."""
    if wanted and _bindable("127.0.0.1", wanted):
        return wanted
    port = free_loopback_port()
    if wanted:
        _log.warning("L1 port busy: the local anvil listens on another", extra={"busy": wanted, "port": port})
    return port


def build(cfg: NodeConfig) -> tuple[SupervisorSpec, Zygote, str | None]:
    """The root spec, the zygote it forks through, and the L1 URL (None until configured)."""
    # The contracts' artifacts too: the L1 workers read several on their way to SERVING.
    preload = [*ZYGOTE_PRELOAD, "services.l1:preload_artifacts", *(MONITOR_PRELOAD if cfg.monitor_base_port else ())]
    zygote = Zygote(preload=[*preload, *sorted({w.definition.partition(":")[0] for w in cfg.workers})],
                    title=PROCESS_TITLE, warm=ZYGOTE_WARM)
    children = [ChildSpec(id="zygote", start=zygote.starter())]
    l1_url = cfg.l1_rpc
    if l1_url is None:
        port = local_l1_port(cfg.l1_port)
        children.append(anvil_child(zygote, cfg.data_dir, port, chain_id=cfg.chain_id, params=cfg.rollups,
                                    genesis_file=cfg.genesis, block_time_s=cfg.l1_block_time_s,
                                    gas_limit=cfg.l1_gas_limit))
        l1_url = f"http://127.0.0.1:{port}"
    l1 = l1_settings(cfg, l1_url)
    children += [worker_child(cfg, zygote, w, i, l1) for i, w in enumerate(cfg.workers)]
    flags = SupervisorFlags(intensity=cfg.intensity, period_s=cfg.period_s)
    return SupervisorSpec(flags=flags, children=children), zygote, l1_url
