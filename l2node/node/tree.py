"""The shape of `l2node up`: which children the root supervisor runs, in which order.

    root (one_for_one)
    ├── zygote       forks every other process; first, so that it is up before them
    ├── l1           local anvil, unless an external L1 RPC is configured
    └── <workers>    one gRPC worker process per service, each on its fixed port
"""

from __future__ import annotations

from typing import Any

from l2node.node.config import NodeConfig, WorkerEntry
from l2node.node.l1 import anvil_child, free_loopback_port
from services.runtime import MONITOR_PRELOAD, ZYGOTE_PRELOAD
from supervisor import ChildSpec, SupervisorFlags, SupervisorSpec
from supervisor._process import forked
from supervisor._zygote_client import Zygote

#: What a forked worker runs; the definition to serve is in its payload.
WORKER_ENTRY = "services.runtime:zygote_entry"


def worker_payload(cfg: NodeConfig, entry: WorkerEntry, index: int) -> dict[str, Any]:
    return {
        "definition": entry.definition,
        "config": {
            "service": entry.id,
            "address": cfg.worker_address(index),
            "data_dir": str(cfg.data_dir / "services" / entry.id),
            "index": index,
            "monitor_port": cfg.monitor_port(index),
            "settings": dict(entry.settings),
        },
    }


def worker_child(cfg: NodeConfig, zygote: Zygote, entry: WorkerEntry, index: int) -> ChildSpec:
    address = cfg.worker_address(index)
    return ChildSpec(id=entry.id, start=forked(zygote, WORKER_ENTRY, address,
                                               payload=worker_payload(cfg, entry, index)))


def build(cfg: NodeConfig) -> tuple[SupervisorSpec, Zygote, str | None]:
    """The root spec, the zygote it forks through, and the L1 URL (None until configured)."""
    preload = [*ZYGOTE_PRELOAD, *(MONITOR_PRELOAD if cfg.monitor_base_port else ())]
    zygote = Zygote(preload=[*preload, *sorted({w.definition.partition(":")[0] for w in cfg.workers})])
    children = [ChildSpec(id="zygote", start=zygote.starter())]
    l1_url = cfg.l1_rpc
    if l1_url is None:
        port = cfg.l1_port or free_loopback_port()
        children.append(anvil_child(zygote, cfg.data_dir, port, chain_id=cfg.chain_id))
        l1_url = f"http://127.0.0.1:{port}"
    children += [worker_child(cfg, zygote, w, i) for i, w in enumerate(cfg.workers)]
    flags = SupervisorFlags(intensity=cfg.intensity, period_s=cfg.period_s)
    return SupervisorSpec(flags=flags, children=children), zygote, l1_url
