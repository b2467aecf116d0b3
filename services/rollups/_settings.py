"""The rollups service's settings (the worker config's ``settings`` table), each with its default."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocol import DEFAULT_CHAIN_ID, DEFAULT_SEQUENCER_WINDOW
from services.l1 import Deployment, needed_files, read_key
from services.runtime import check_nice, check_threads, cpu_count, settings_from

from ._machine import Rules


def _registry_of(contracts: str) -> bytes:
    return Deployment.load(contracts).address_of("OutputRegistry")


@dataclass(frozen=True, slots=True)
class RollupsSettings:
    #: The L2 chain id and genesis file: the sequencer's (derivation re-executes its rules), both
    #: set by the node from its one ``[node] genesis`` (l2node/node/genesis.py); empty: the devnet genesis.
    chain_id: int = DEFAULT_CHAIN_ID
    genesis_file: str = ""
    #: Run the proposer (bonded outputs) and/or the challenger (checks every output against
    #: its own derivation, challenges a wrong one, defends its own). Either can run alone.
    propose: bool = True
    challenge: bool = True
    #: Propose an output once this many L2 blocks were derived since the last one ...
    output_interval_blocks: int = 10
    #: ... or this many seconds passed with at least one new block.
    output_interval_s: float = 5.0
    #: How often L1 is read and outputs and games are looked at (seconds).
    poll_interval_s: float = 0.5
    #: Rounds that find nothing back off up to this (an idle node stays quiet on L1); news, a
    #: pending proposal or finalization, or a transaction this worker sends snaps back.
    idle_poll_s: float = 12.0
    #: Derive only from L1 blocks this deep: a reorg above it cannot change a proposal.
    confirmation_depth: int = 4
    #: Hex private key files of the proposer and the challenger (`l2node up`: dev keys 8 and 9).
    proposer_key_file: str = ""
    challenger_key_file: str = ""
    #: host:port of this node's sequencer: the proposer compares each output's block with the
    #: sequencer's (through the "sequencer" call policy) and logs a divergence loudly. It still
    #: proposes what L1 says: L1 is the truth. Empty: no comparison (`l2node up` fills it).
    sequencer: str = ""
    #: {"rpc", "contracts", "proposer_key_file", "challenger_key_file"}, as `l2node up` fills
    #: them (the key files above, when set, win); contracts.json names the registry.
    l1: Mapping[str, Any] = field(default_factory=dict)
    #: A derivation checkpoint (the derived state at the L1 horizon, in the worker's database:
    #: where a restart and a dispute resume) is written at most this often (seconds; 0: every sync).
    checkpoint_interval_s: float = 2.0
    #: Threads re-deriving blocks (shared by the proposer's and the challenger's derivations).
    #: Sender recovery runs in libsecp256k1 without the GIL; default: one per CPU.
    derive_threads: int = field(default_factory=cpu_count)
    #: Added to the worker's CPU niceness at start (0-19; 0: the node's). Derivation is off the
    #: sealed and SAFE paths: on a machine shared with the sequencer, 10 lets sealing have a busy
    #: CPU first, at the cost of derivation lag while it is busy (see _priority).
    nice: int = 0

    def __post_init__(self) -> None:
        if self.output_interval_blocks < 1 or self.output_interval_s <= 0:
            raise ValueError("output_interval_blocks must be >= 1 and output_interval_s > 0")
        if not 0 < self.poll_interval_s <= 60:
            raise ValueError(f"poll_interval_s {self.poll_interval_s} must be in (0, 60]")
        if not 0 < self.idle_poll_s <= 600:
            raise ValueError(f"idle_poll_s {self.idle_poll_s} must be in (0, 600]")
        if self.checkpoint_interval_s < 0:
            raise ValueError("checkpoint_interval_s must be >= 0")
        if self.confirmation_depth < 0:
            raise ValueError("confirmation_depth must be >= 0")
        check_threads("derive_threads", self.derive_threads)
        check_nice("nice", self.nice)

    def key_file(self, role: str) -> str:
        """``proposer`` or ``challenger``'s key file: this table's, else the node's ``l1`` one."""
        own: str = getattr(self, f"{role}_key_file")
        return own or str(self.l1.get(f"{role}_key_file", ""))

    def missing(self) -> list[str]:
        """What the enabled roles need and cannot have (the contracts file with an OutputRegistry,
        the proposer's and the challenger's key files), each named with what is wrong; empty when
        all is there, or when there is no L1 (nothing to propose to or challenge on)."""
        if not self.l1.get("rpc"):
            return []
        needs: dict[str, tuple[str, Callable[[str], object]]] = {
            "l1.contracts": (str(self.l1.get("contracts", "")), _registry_of)}
        if self.propose:
            needs["proposer_key_file"] = (self.key_file("proposer"), read_key)
        if self.challenge:
            needs["challenger_key_file"] = (self.key_file("challenger"), read_key)
        return needed_files("the rollups worker (proposer, challenger)", needs)

    def rules(self, sequencer_window: int = DEFAULT_SEQUENCER_WINDOW) -> Rules:
        return Rules(chain_id=self.chain_id, sequencer_window=sequencer_window)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RollupsSettings:
        return settings_from(cls, data, "rollups")
