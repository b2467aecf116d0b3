"""What `l2node up` runs and where: every setting once, with its default, read from TOML.

    # l2node.toml (every key optional)
    [node]
    host = "127.0.0.1"
    base_port = 50050        # control plane = base_port; worker i listens on base_port + 1 + i
    metrics_port = 0         # Prometheus /metrics of the whole tree; 0 = base_port + 1 + number of workers
    monitor_base_port = 0    # aiomonitor per worker on 127.0.0.1 (services.runtime.monitor_port_for); 0 = off
    intensity = 3            # root restart intensity ...
    period_s = 5.0           # ... within this window
    genesis = ""             # the L2 genesis JSON every service builds on (l2node/node/genesis.py); "" = devnet's
    role = "sequencer"       # or "replica": a read replica of [replica] upstream (no keys, no sequencing)
    [l1]
    rpc = ""                 # an Ethereum JSON-RPC URL; empty = start a local anvil
    port = 8545              # the local anvil's port (another free one, said so, if busy); 0 = any free port
XX         # with rpc: the contracts.json of that chain (`l2node deploy` writes it;
                             # local anvil: deployed by up)
    batcher_key_file = ""    # with rpc: hex key the sequencer posts batches with (local: a dev key)
    proposer_key_file = ""   # with rpc: hex key the rollups proposer bonds outputs with
    challenger_key_file = "" # with rpc: hex key the rollups challenger disputes with
    relayer_key_file = ""    # with rpc: hex key the bridge's relayer proves and finalizes withdrawals
                             # with ("" = no relayer; the bridge still follows and serves proofs)
    channels_key_file = ""   # with rpc: hex key of this node's payment channels (signs states, opens and
                             # closes channels on the ChannelAdjudicator; local: a dev key)
                             # (with rpc, a file an enabled role needs and lacks: that worker is not
                             # ready, and `l2node status` names it)
    [jsonrpc]                # Ethereum's JSON-RPC (HTTP and WebSocket, one port): services/jsonrpc
    host = ""                # "" = [node] host
    port = 8547              # (another free one, said so, if busy); 0 = any free port. 8545 is L1's.
    [replica]                # with role = "replica" (README "Read replicas"): its own sequencer worker
    upstream = ""            # follows this sequencer's blocks (gRPC host:port, required), re-executes and
                             # stores them, follows derivation from the same L1 (--l1-rpc and [l1] contracts
                             # required, no key files), forwards sends there. Runs only the sequencer and
                             # jsonrpc workers (no rollups, bridge, channels: they need keys or are the
                             # sequencer tree's own jobs).
    max_lag_blocks = 20      # not ready (l2node.ready: out of the Service) while more blocks behind the upstream
    [rollups]                # the rollup's L1 contracts' constants: l2node/node/params.py
    challenge_window_s = 20  # (bonds, window, chess clocks, sequencer window; devnet defaults)
    [workers.NAME]           # a built-in service (sequencer, rollups, bridge, channels, jsonrpc) or an extra worker
    definition = "module:ATTR" # required for extra workers
    enabled = true           # false leaves a built-in service out
    settings = { ... }       # the service's own settings (e.g. services.sequencer.SequencerSettings)
"""

from __future__ import annotations

import os
import pathlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from l2node.node import genesis
from l2node.node.l1 import DEVNET_BLOCK_TIME_S
from l2node.node.params import RollupParams
from services.runtime import monitor_port_for

DEFAULT_BASE_PORT = 50050
#: The local anvil's port unless configured: the usual JSON-RPC one, so the L1 URL stays the same.
DEFAULT_L1_PORT = 8545
#: Ethereum JSON-RPC's port unless configured (services.jsonrpc.DEFAULT_PORT, the same): clear of
#: L1's 8545 and geth's WebSocket 8546.
DEFAULT_JSONRPC_PORT = 8547

#: The services every tree runs unless a config says `enabled = false`, in start order.
BUILTIN_WORKERS: dict[str, str] = {
    "sequencer": "services.sequencer:WORKER",
    "rollups": "services.rollups:WORKER",
    "bridge": "services.bridge:WORKER",
    "channels": "services.channels:WORKER",
    # Last: it serves what the others hold, so it starts once they answer.
    "jsonrpc": "services.jsonrpc:WORKER",
}
DEFAULT_HOST = "127.0.0.1"
#: Where a container finds its files (what `l2node deploy` writes into the config unless told
#: otherwise): the config, contracts.json and genesis.json from a ConfigMap at NODE_CONFIG_DIR, the
#: node's key files (batcher.key, proposer.key, challenger.key, relayer.key, channels.key) from a Secret at
#: NODE_KEYS_DIR.
NODE_CONFIG_DIR = "/etc/l2node"
#: ``[node] role``: the tree that sequences (the default), or a read replica of another's sequencer.
ROLES = ("sequencer", "replica")
#: The built-in services a read replica runs: its follower sequencer, and JSON-RPC over it.
REPLICA_WORKERS = frozenset({"sequencer", "jsonrpc"})
NODE_KEYS_DIR = "/etc/l2node/keys"


def default_data_dir() -> pathlib.Path:
    """The one default every command shares: $L2NODE_DATA_DIR, else the XDG data home."""
    if os.environ.get("L2NODE_DATA_DIR"):
        return pathlib.Path(os.environ["L2NODE_DATA_DIR"])
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return pathlib.Path(xdg) / "l2node"


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class WorkerEntry:
    """One worker process of the tree."""

    id: str
    #: "module:ATTR" naming a services.runtime.WorkerDefinition.
    definition: str
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    data_dir: pathlib.Path
    host: str = DEFAULT_HOST
    base_port: int = DEFAULT_BASE_PORT
    #: The tree's one Prometheus endpoint; 0 = the port after the last worker's (l2node/node/metrics.py).
    metrics_port: int = 0
    monitor_base_port: int = 0
    intensity: int = 3
    period_s: float = 5.0
    #: External L1 JSON-RPC URL; None starts a local anvil child.
    l1_rpc: str | None = None
    l1_port: int = DEFAULT_L1_PORT
    chain_id: int = 31337
    #: The local anvil's block time (seconds) and block gas limit (0 = anvil's default, 30M): devnet
    #: tuning knobs (issue 15), unused with an external L1.
    l1_block_time_s: float = DEVNET_BLOCK_TIME_S
    l1_gas_limit: int = 0
    #: With an external L1: its contracts.json and the batcher's key file ("" = no batcher).
    l1_contracts: str = ""
    batcher_key_file: str = ""
    proposer_key_file: str = ""
    challenger_key_file: str = ""
    #: The bridge's relayer ("" = none: withdrawals are proven and finalized by their owners).
    relayer_key_file: str = ""
    #: The channels worker's channel key ("" = none: it serves its store and opens nothing).
    channels_key_file: str = ""
    #: What the local L1's rollup contracts are deployed with.
    rollups: RollupParams = field(default_factory=RollupParams)
    #: The L2 genesis file (absolute), handed to every service that builds on it; "" = the devnet's.
    genesis: str = ""
    #: Where the jsonrpc worker serves Ethereum's JSON-RPC ("" = ``host``); port 0 = any free one.
    jsonrpc_host: str = ""
    jsonrpc_port: int = DEFAULT_JSONRPC_PORT
    workers: tuple[WorkerEntry, ...] = ()
    #: "sequencer", or "replica": no keys, no blocks of its own; ``upstream``'s blocks, checked.
    role: str = "sequencer"
    #: With role "replica": the upstream sequencer's gRPC address (host:port).
    upstream: str = ""
    #: With role "replica": not ready while more than this many blocks behind the upstream.
    replica_max_lag_blocks: int = 20

    @property
    def replica(self) -> bool:
        return self.role == "replica"

    @property
    def control_address(self) -> str:
        return f"{self.host}:{self.base_port}"

    def worker_address(self, index: int) -> str:
        return f"{self.host}:{self.base_port + 1 + index}"

    @property
    def metrics_listen_port(self) -> int:
        return self.metrics_port or self.base_port + 1 + len(self.workers)

    def monitor_port(self, index: int) -> int:
        """aiomonitor's port for worker ``index``; 0 (off) unless monitor_base_port is set."""
        return monitor_port_for(index, self.monitor_base_port) if self.monitor_base_port else 0

    @property
    def jsonrpc_url(self) -> str | None:
        """The JSON-RPC endpoint's URL; None without a jsonrpc worker."""
        if not any(w.id == "jsonrpc" for w in self.workers):
            return None
        return f"http://{self.jsonrpc_host or self.host}:{self.jsonrpc_port}"

    @property
    def run_dir(self) -> pathlib.Path:
        return self.data_dir / "run"


def _section(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _workers(tables: Mapping[str, Any]) -> tuple[WorkerEntry, ...]:
    """Built-in services first (overridable), then the config's extra workers, in file order."""
    entries: list[WorkerEntry] = []
    for name in [*BUILTIN_WORKERS, *(n for n in tables if n not in BUILTIN_WORKERS)]:
        table = tables.get(name, {})
        if not isinstance(table, Mapping):
            raise ConfigError(f"[workers.{name}] must be a table")
        if not table.get("enabled", True):
            continue
        definition = table.get("definition") or BUILTIN_WORKERS.get(name)
        if not definition:
            raise ConfigError(f"[workers.{name}] needs a definition = \"module:ATTR\"")
        settings = dict(table.get("settings", {}))
        if name in genesis.USERS:
            genesis.refuse_worker_genesis(name, settings)
        entries.append(WorkerEntry(id=name, definition=str(definition), settings=settings))
    ids = {e.id for e in entries}
    # JSON-RPC serves a sequencer's chain: a tree without one (channels only, ...) has none to serve,
    # unless the worker's settings name another's.
    return tuple(e for e in entries if e.id != "jsonrpc" or "sequencer" in ids or e.settings.get("sequencer"))


def _replica(cfg: NodeConfig, keys: set[str]) -> NodeConfig:
    """A read replica's tree: its sequencer follows ``upstream``; only the workers it can run (no
    keys: the rollups proposer and challenger, the bridge's relayer and channels are the sequencer
    tree's). ConfigError for what cannot be a replica."""
    if keys - _REPLICA_KEYS:
        raise ConfigError(f"unknown [replica] keys: {sorted(keys - _REPLICA_KEYS)}")
    if cfg.role not in ROLES:
        raise ConfigError(f"[node] role {cfg.role!r} must be one of {', '.join(ROLES)}")
    if not cfg.replica:
        if cfg.upstream:
            raise ConfigError("[replica] upstream is set but [node] role is not \"replica\"")
        return cfg
    if ":" not in cfg.upstream:
        raise ConfigError(f"a replica needs [replica] upstream = \"host:port\" (the sequencer's "
                          f"gRPC address), got {cfg.upstream!r}")
    workers = tuple(w for w in cfg.workers if w.id in REPLICA_WORKERS or w.id not in BUILTIN_WORKERS)
    if not any(w.id == "sequencer" for w in workers):
        raise ConfigError("a replica runs its own (follower) sequencer worker: do not disable it")
    return replace(cfg, workers=tuple(
        replace(w, settings={**w.settings, "upstream": cfg.upstream, "max_lag_blocks": cfg.replica_max_lag_blocks})
        if w.id == "sequencer" else w for w in workers))


_REPLICA_KEYS: Final = {"upstream", "max_lag_blocks"}


def _one_genesis(cfg: NodeConfig, params_chain_id_set: bool) -> NodeConfig:
    """Every user of the genesis given the node's one (l2node/node/genesis.py); ValueError if they
    would disagree."""
    users = {w.id: w.settings for w in cfg.workers if w.id in genesis.USERS}
    filled, params = genesis.one_genesis(cfg.genesis, users, cfg.rollups, params_chain_id_set)
    return replace(cfg, rollups=params,
                   workers=tuple(replace(w, settings=filled[w.id]) if w.id in filled else w for w in cfg.workers))


def load(path: pathlib.Path | None, data_dir: pathlib.Path | None = None, l1_rpc: str | None = None
         ) -> NodeConfig:
    """Defaults, overridden by the TOML file, overridden by command-line flags."""
    doc: Mapping[str, Any] = {}
    if path is not None:
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config {path}: {exc}") from None
    node, l1, workers = _section(doc, "node"), _section(doc, "l1"), _section(doc, "workers")
    jsonrpc, replica = _section(doc, "jsonrpc"), _section(doc, "replica")
    unknown = set(doc) - {"node", "l1", "workers", "rollups", "jsonrpc", "replica", "data_dir"}
    if unknown:
        raise ConfigError(f"unknown config sections: {sorted(unknown)}")
    cfg = NodeConfig(data_dir=pathlib.Path(doc.get("data_dir") or default_data_dir()))
    try:
        cfg = replace(
            cfg,
            host=str(node.get("host", cfg.host)),
            base_port=int(node.get("base_port", cfg.base_port)),
            metrics_port=int(node.get("metrics_port", cfg.metrics_port)),
            monitor_base_port=int(node.get("monitor_base_port", cfg.monitor_base_port)),
            intensity=int(node.get("intensity", cfg.intensity)),
            period_s=float(node.get("period_s", cfg.period_s)),
            l1_rpc=str(l1["rpc"]) if l1.get("rpc") else None,
            l1_port=int(l1.get("port", cfg.l1_port)),
            chain_id=int(l1.get("chain_id", cfg.chain_id)),
            l1_block_time_s=float(l1.get("block_time_s", cfg.l1_block_time_s)),
            l1_gas_limit=int(l1.get("gas_limit", cfg.l1_gas_limit)),
            l1_contracts=str(l1.get("contracts", "")),
            batcher_key_file=str(l1.get("batcher_key_file", "")),
            proposer_key_file=str(l1.get("proposer_key_file", "")),
            challenger_key_file=str(l1.get("challenger_key_file", "")),
            relayer_key_file=str(l1.get("relayer_key_file", "")),
            channels_key_file=str(l1.get("channels_key_file", "")),
            workers=_workers(workers),
            rollups=RollupParams.from_mapping(_section(doc, "rollups")),
            genesis=genesis.resolve(node.get("genesis", "")),
            jsonrpc_host=str(jsonrpc.get("host", cfg.jsonrpc_host)),
            jsonrpc_port=int(jsonrpc.get("port", cfg.jsonrpc_port)),
            role=str(node.get("role", cfg.role)),
            upstream=str(replica.get("upstream", "")),
            replica_max_lag_blocks=int(replica.get("max_lag_blocks", cfg.replica_max_lag_blocks)),
        )
        cfg = _replica(cfg, set(replica))
        cfg = _one_genesis(cfg, "chain_id" in _section(doc, "rollups"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"config {path}: {exc}") from None
    if not 0 < cfg.l1_block_time_s <= 60 or cfg.l1_gas_limit < 0:
        raise ConfigError(f"config {path}: [l1] block_time_s must be in (0, 60] and gas_limit at least 0 "
                          f"(got {cfg.l1_block_time_s}, {cfg.l1_gas_limit})")
    if data_dir is not None:
        cfg = replace(cfg, data_dir=data_dir)
    if l1_rpc:
        cfg = replace(cfg, l1_rpc=l1_rpc)
    if cfg.replica and (cfg.l1_rpc is None or not cfg.l1_contracts):
        raise ConfigError(f"config {path}: a replica follows its sequencer's L1: give --l1-rpc URL (or [l1] rpc) "
                          "and [l1] contracts = that deployment's contracts.json (a local anvil would be another L1)")
    if not 0 < cfg.base_port < 65536 - 1 - len(cfg.workers):
        raise ConfigError(f"base_port {cfg.base_port} leaves no room for {len(cfg.workers)} workers")
    taken = range(cfg.base_port, cfg.base_port + 1 + len(cfg.workers))
    if not 0 < cfg.metrics_listen_port < 65536 or cfg.metrics_listen_port in taken:
        raise ConfigError(f"metrics_port {cfg.metrics_listen_port} must be a port outside the control plane's and "
                          f"the workers' ({taken.start}-{taken.stop - 1})")
    if set(jsonrpc) - {"host", "port"}:
        raise ConfigError(f"config {path}: unknown [jsonrpc] keys: {sorted(set(jsonrpc) - {'host', 'port'})}")
    l1_port = cfg.l1_port if cfg.l1_rpc is None else 0
    if not 0 <= cfg.jsonrpc_port < 65536 or cfg.jsonrpc_port in taken \
            or cfg.jsonrpc_port in (cfg.metrics_listen_port, l1_port or -1):
        raise ConfigError(f"[jsonrpc] port {cfg.jsonrpc_port} must be a port outside the control plane's, the "
                          f"workers' ({taken.start}-{taken.stop - 1}), metrics' ({cfg.metrics_listen_port}) "
                          "and the local L1's")
    return replace(cfg, data_dir=cfg.data_dir.resolve())
