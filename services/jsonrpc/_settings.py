"""The JSON-RPC worker's settings (the worker config's ``settings`` table), each with its default.

`l2node up` fills ``host`` and ``port`` from the node config's ``[jsonrpc]`` table and
``sequencer`` / ``rollups`` with this tree's gRPC addresses (l2node/node/tree.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from services.runtime import settings_from

#: The JSON-RPC port unless configured: clear of L1's 8545 (anvil, geth) and of 8546 (geth's
#: WebSocket); 8547 is what Arbitrum Nitro serves its L2 JSON-RPC on.
DEFAULT_PORT: Final = 8547


@dataclass(frozen=True, slots=True)
class JsonRpcSettings:
    #: Where HTTP and WebSocket JSON-RPC are served (one port, both: a WebSocket upgrade on GET).
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    #: host:port of this node's sequencer (everything) and rollups worker (optional).
    sequencer: str = ""
    rollups: str = ""
    #: The deployment's contracts.json (`l2node up` fills it): optimism_rollupConfig's addresses, L1
    #: chain id and rollup parameters. Empty: those fields are left out.
    contracts: str = ""
    #: Requests in one JSON-RPC batch (geth's BatchRequestLimit is 1000).
    max_batch: int = 1000
    #: Largest request body, bytes (geth's 5 MiB).
    max_body_bytes: int = 5 * 1024 * 1024
    #: Raw transactions per SendRawTransactions call (the sequencer's own bound is 4096).
    send_batch: int = 1024
    #: eth_maxPriorityFeePerGas, and the tip in eth_gasPrice: op-geth's default least suggested
    #: priority fee (0.001 gwei). The sequencer's pool takes 1 wei and up.
    suggested_tip_wei: int = 1_000_000
    #: Recent blocks kept in memory from the sequencer's stream (eth_feeHistory's reach without calls).
    recent_blocks: int = 1024
    #: Accounts read at the head block kept until the next block (``_upstream.Accounts``).
    cached_accounts: int = 65_536
    #: How far back eth_getBalance / eth_getTransactionCount go (``_history``): the latest state
    #: taken back through at most this many blocks ("safe" is a few blocks behind, "finalized" more).
    history_blocks: int = 128
    #: The share of reads (every method but eth_sendRawTransaction) traced when the caller sent no
    #: sampled traceparent: 0..1. Wallets poll, and a recorded span costs ~30 us of a ~70 us read.
    #: A read whose caller's trace is sampled is always traced, and so is every failed one; every
    #: call is counted in the metrics whatever this says.
    read_trace_ratio: float = 0.01

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise ValueError(f"host {self.host!r} must be an interface address")
        for name, lo, hi in (("port", 0, 65535), ("max_batch", 1, 100_000), ("max_body_bytes", 1024, 2**30),
                             ("send_batch", 1, 4096), ("suggested_tip_wei", 0, 2**128), ("recent_blocks", 1, 100_000),
                             ("cached_accounts", 0, 10**7), ("history_blocks", 0, 10_000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name} {value!r} must be a whole number in {lo}..{hi}")
        ratio = self.read_trace_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise ValueError(f"read_trace_ratio {ratio!r} must be a number in 0..1")
        if not isinstance(self.contracts, str):
            raise ValueError(f"contracts {self.contracts!r} must be a path to contracts.json, or empty")
        for name in ("sequencer", "rollups"):
            value = getattr(self, name)
            if not isinstance(value, str) or (value and ":" not in value):
                raise ValueError(f"{name} {value!r} must be a gRPC address (host:port), or empty")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JsonRpcSettings:
        return settings_from(cls, data, "jsonrpc")
