"""The sequencer's own settings (the worker config's ``settings`` table), each with its default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from services.runtime import settings_from

from ._mempool import MempoolConfig
from ._rules import DEFAULT_CHAIN_ID

#: Most transactions one SendRawTransactions call may carry: bigger batches should be split
#: (the response must stay well under gRPC's 4 MiB default message size).
DEFAULT_MAX_BATCH: Final = 4096


@dataclass(frozen=True, slots=True)
class L1Settings:
    """Where L1 is and how batches go there. Empty rpc/contracts/key: no batcher (blocks stay SEALED)."""

    rpc: str = ""
    #: contracts.json of the L1 chain (written by `l2node up` on a local anvil).
    contracts: str = ""
    #: A file holding the hex private key batches are posted with.
    batcher_key_file: str = ""
    #: Post at least this often while blocks wait (seconds) ...
    batch_interval_s: float = 1.0
    #: ... or as soon as a batch would be this large (compressed, bytes; L1 txs cap near 128 KiB).
    batch_max_bytes: int = 100_000
    #: L1 blocks on top of a batch's before its transactions count as SAFE.
    confirmation_depth: int = 4
    #: How often the inbox follower asks L1 for news (seconds).
    poll_interval_s: float = 0.5

    @property
    def enabled(self) -> bool:
        return bool(self.rpc and self.contracts and self.batcher_key_file)


@dataclass(frozen=True, slots=True)
class SequencerSettings:
    #: The L2 chain id; transactions signed for any other chain are refused (replay protection).
    chain_id: int = DEFAULT_CHAIN_ID
    #: Seal a block at least this often while transactions wait (seconds).
    block_time_s: float = 0.25
    #: ... or as soon as this many are pending.
    max_block_txs: int = 10_000
    #: "fee" (effective tip, ties by arrival) or "fcfs" (arrival order).
    ordering: str = "fee"
    #: A genesis JSON file; empty: the devnet genesis (the anvil/hardhat dev accounts funded).
    genesis: str = ""
    max_batch: int = DEFAULT_MAX_BATCH
    #: Pool limits, as services.sequencer._mempool.MempoolConfig fields (geth's defaults otherwise).
    mempool: Mapping[str, Any] = field(default_factory=dict)
    #: L1Settings fields (`l2node up` fills rpc, contracts and batcher_key_file).
    l1: Mapping[str, Any] = field(default_factory=dict)

    def l1_settings(self) -> L1Settings:
        try:
            return L1Settings(**self.l1)
        except TypeError as exc:
            raise ValueError(f"l1 settings: {exc}") from None

    def mempool_config(self) -> MempoolConfig:
        try:
            return MempoolConfig(**self.mempool)
        except TypeError as exc:
            raise ValueError(f"mempool settings: {exc}") from None

    def __post_init__(self) -> None:
        if self.ordering not in ("fee", "fcfs"):
            raise ValueError(f"ordering {self.ordering!r} must be 'fee' or 'fcfs'")
        if not 0 < self.block_time_s <= 60:
            raise ValueError(f"block_time_s {self.block_time_s} must be in (0, 60]")
        if self.max_block_txs < 1 or self.max_batch < 1:
            raise ValueError("max_block_txs and max_batch must be at least 1")
        self.mempool_config()  # fail at start, with the reason, not at the first transaction
        self.l1_settings()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SequencerSettings:
        return settings_from(cls, data, "sequencer")
