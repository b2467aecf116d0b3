"""The bridge's settings (the worker config's ``settings`` table), each with its default, in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from protocol import DEFAULT_CHAIN_ID
from services.l1 import Deployment, address, needed_files, read_key
from services.runtime import settings_from

#: relay_for's wildcard: serve every withdrawal.
EVERYONE: Final = "*"


def _portal_of(contracts: str) -> bytes:
    return Deployment.load(contracts).address_of("DepositPortal")


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    #: {"rpc", "contracts", "relayer_key_file"}, as `l2node up` fills them; contracts.json names
    #: the DepositPortal. No rpc: the worker serves its (empty) store and follows nothing.
    l1: Mapping[str, Any] = field(default_factory=dict)
    #: host:port of this node's sequencer (deposits credited, L2->L1 messages, block preimages)
    #: and of its rollups worker (outputs); `l2node up` wires both.
    sequencer: str = ""
    rollups: str = ""
    #: A deposit is CONFIRMED this many L1 blocks deep: the sequencer's own depth (it mints from there).
    confirmation_depth: int = 4
    #: How often the sequencer, the rollups worker and L1 are looked at while something is in flight.
    poll_interval_s: float = 0.25
    #: The relayer proves and finalizes the withdrawals whose sender or target is one of these
    #: addresses; "*" serves everyone. Only with a relayer key file.
    relay_for: Sequence[str] = (EVERYONE,)
    #: The relayer serves only withdrawals of at least this many wei. Each costs it ~180,000 L1 gas
    #: (prove + finalize), and a dust withdrawal costs its sender only an L2 fee: on a paid L1 an
    #: open relayer (relay_for = ["*"]) with 0 here can be drained by griefers (warned at start).
    relay_min_value_wei: int = 0
    #: Hex private key file of the relayer (`l2node up`: dev key 7); empty: this table's ``l1`` one.
    relayer_key_file: str = ""
    #: The L2 chain (for the record; the bridge re-executes nothing).
    chain_id: int = DEFAULT_CHAIN_ID
    genesis_file: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.confirmation_depth, bool) or not isinstance(self.confirmation_depth, int) \
                or not 0 <= self.confirmation_depth <= 64:
            raise ValueError(f"confirmation_depth {self.confirmation_depth!r} must be a whole number of L1 "
                             "blocks in 0..64")
        if isinstance(self.poll_interval_s, bool) or not isinstance(self.poll_interval_s, int | float) \
                or not 0 < self.poll_interval_s <= 60:
            raise ValueError(f"poll_interval_s {self.poll_interval_s!r} must be seconds in (0, 60]")
        if isinstance(self.relay_for, str) or not isinstance(self.relay_for, Sequence) or not self.relay_for:
            raise ValueError(f"relay_for {self.relay_for!r} must be a non-empty list of addresses, or [\"*\"]")
        for entry in self.relay_for:
            if entry != EVERYONE:
                try:
                    address(entry)
                except (ValueError, TypeError):
                    raise ValueError(f"relay_for entry {entry!r} is neither an 0x address nor \"*\"") from None
        object.__setattr__(self, "relay_for", tuple(self.relay_for))
        if isinstance(self.relay_min_value_wei, bool) or not isinstance(self.relay_min_value_wei, int) \
                or not 0 <= self.relay_min_value_wei < 2**256:
            raise ValueError(f"relay_min_value_wei {self.relay_min_value_wei!r} must be wei: a whole number >= 0")
        for name in ("sequencer", "rollups"):
            value = getattr(self, name)
            if not isinstance(value, str) or (value and ":" not in value):
                raise ValueError(f"{name} {value!r} must be a gRPC address (host:port), or empty")

    @property
    def relayer_key(self) -> str:
        """The relayer's key file: this table's, else the node's ``l1`` one; "" = no relayer."""
        return self.relayer_key_file or str(self.l1.get("relayer_key_file") or "")

    def relays_for(self) -> frozenset[bytes] | None:
        """The served addresses; None = everyone."""
        if EVERYONE in self.relay_for:
            return None
        return frozenset(address(a) for a in self.relay_for)

    def missing(self) -> list[str]:
        """What the worker needs and cannot have, each named with what is wrong; empty without an L1."""
        if not self.l1.get("rpc"):
            return []
        needs: dict[str, tuple[str, Any]] = {"l1.contracts": (str(self.l1.get("contracts", "")), _portal_of)}
        if self.relayer_key:
            needs["relayer_key_file"] = (self.relayer_key, read_key)
        return needed_files("the bridge worker", needs)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BridgeSettings:
        return settings_from(cls, data, "bridge")
