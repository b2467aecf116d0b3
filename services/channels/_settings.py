"""The channels worker's settings (the worker config's ``settings`` table), each with its default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.l1 import Deployment, needed_files, read_key
from services.runtime import settings_from


def _adjudicator_of(contracts: str) -> bytes:
    return Deployment.load(contracts).address_of("ChannelAdjudicator")


@dataclass(frozen=True, slots=True)
class ChannelsSettings:
    #: {"rpc", "contracts", "channels_key_file"}, as `l2node up` fills them; contracts.json names
    #: the ChannelAdjudicator. No rpc: the worker serves its store and opens nothing.
    l1: Mapping[str, Any] = field(default_factory=dict)
    #: Hex private key file of this node's channel key (`l2node up`: dev key 6); empty: the ``l1``
    #: table's. It signs every state and every peer message, and sends this node's L1 calls.
    channels_key_file: str = ""
    #: The host:port peers reach this worker at (what the opener hands the peer); empty: the
    #: worker's own listening address.
    endpoint: str = ""
    #: The call policy around each peer: an attempt's deadline (a payment is one round trip).
    peer_deadline_s: float = 5.0
    #: The shortest adjudicator challenge period this node accepts: a forced close by the peer with
    #: a stale state must be answerable while this node may be offline for a while. Refused at start
    #: (not ready) when the deployed adjudicator's is shorter.
    min_challenge_period_s: int = 1
    #: How often L1 is looked at while a close waits for its challenge period.
    poll_interval_s: float = 0.5
    #: An L1 transaction of an open or a close waits this long for its receipt.
    l1_timeout_s: float = 60.0
    #: Routing terms this node announces for the channels it forwards over (services/channels/
    #: _routing.py R5, _payments.py H1-H6): a base fee in wei plus parts per million of the amount.
    fee_base_wei: int = 1_000
    fee_ppm: int = 1_000
    #: How much earlier than the incoming HTLC the outgoing one must expire (BOLT's
    #: cltv_expiry_delta, L1 seconds): time to claim upstream on L1 after learning a preimage at the
    #: last moment. 0: twice the adjudicator's challenge period.
    expiry_delta_s: int = 0
    #: How long the payee's HTLC has left when a route is built. 0: twice the challenge period.
    final_expiry_delta_s: int = 0
    #: The smallest HTLC this node takes (H1): a slot costs something.
    htlc_min_wei: int = 1_000
    #: HTLCs a peer may have in flight towards this node in one channel (H2, BOLT 2's
    #: max_accepted_htlcs; C5's 483 bounds both directions together).
    max_accepted_htlcs: int = 240
    #: The furthest expiry of an HTLC this node takes (H3). 0: 40 challenge periods (at least 600 s).
    max_htlc_expiry_s: int = 0
    #: How long before an HTLC's expiry this node goes to L1 to claim it when its peer withholds the
    #: settle (_enforce.py E1): time to close and reveal the preimage. 0: half the challenge period
    #: (at least 5 s).
    onchain_margin_s: int = 0
    #: A routed Pay answers PAYMENT_IN_FLIGHT if the payment is still unresolved after this long.
    payment_timeout_s: float = 60.0
    #: How often the gossip task looks for channels to announce again (and peers' breakers).
    gossip_interval_s: float = 2.0
    #: Host a watchtower for other nodes' channels (``TowerService`` on this worker's port; its
    #: appointments in ``tower.db`` beside the worker's database). Its challenges are sent from the
    #: channel key, through the worker's one sender of that key (no nonce is taken twice), which
    #: needs ETH on L1 for the gas. Needs an L1 and a channel key (else Appoint is UNAVAILABLE).
    tower_enabled: bool = True
    #: How often the hosted tower asks L1 for new closes of the adjudicator's channels (its log
    #: follower's poll; idle, it backs off to four times this). A close is answered within about
    #: this long of its block, far inside any challenge period this node accepts.
    tower_poll_s: float = 2.0
    #: Another node's channels address (host:port, as its endpoints.json lists it) whose tower
    #: this node hands the newest co-signed state of each of its channels; "" = no tower.
    tower: str = ""
    #: A changed channel is appointed this long after its change, with the newest state then: a
    #: burst of payments is one Appoint, and a payment never waits for the tower. The tower holds
    #: a state at most about this old (plus an outage of the tower's) while this node is online.
    tower_delay_s: float = 1.0
    #: An Appoint that failed for want of an answer (the tower down, its breaker open) is tried
    #: again after this long, until delivered.
    tower_retry_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("peer_deadline_s", "poll_interval_s", "l1_timeout_s", "payment_timeout_s", "gossip_interval_s",
                     "tower_poll_s", "tower_delay_s", "tower_retry_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 600:
                raise ValueError(f"{name} {value!r} must be seconds in (0, 600]")
        if isinstance(self.min_challenge_period_s, bool) or not isinstance(self.min_challenge_period_s, int) \
                or self.min_challenge_period_s < 0:
            raise ValueError(f"min_challenge_period_s {self.min_challenge_period_s!r} must be whole seconds >= 0")
        for name in ("fee_base_wei", "fee_ppm", "expiry_delta_s", "final_expiry_delta_s", "max_htlc_expiry_s",
                     "onchain_margin_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
                raise ValueError(f"{name} {value!r} must be a whole number >= 0")
        if isinstance(self.htlc_min_wei, bool) or not isinstance(self.htlc_min_wei, int) or self.htlc_min_wei < 1:
            raise ValueError(f"htlc_min_wei {self.htlc_min_wei!r} must be wei >= 1")
        if isinstance(self.max_accepted_htlcs, bool) or not isinstance(self.max_accepted_htlcs, int) \
                or not 1 <= self.max_accepted_htlcs <= 483:
            raise ValueError(f"max_accepted_htlcs {self.max_accepted_htlcs!r} must be in [1, 483]")
        for name in ("endpoint", "tower"):
            value = getattr(self, name)
            if not isinstance(value, str) or (value and ":" not in value):
                raise ValueError(f"{name} {value!r} must be a gRPC address (host:port), or empty")
        if not isinstance(self.tower_enabled, bool):
            raise ValueError(f"tower_enabled {self.tower_enabled!r} must be true or false")

    @property
    def key_file(self) -> str:
        """The channel key's file: this table's, else the node's ``l1`` one; "" = none."""
        return self.channels_key_file or str(self.l1.get("channels_key_file") or "")

    def missing(self) -> list[str]:
        """What the worker needs and cannot have, each named; empty without an L1 or a channel key
        (a node without channels: the worker serves its empty store)."""
        if not self.l1.get("rpc") or not self.key_file:
            return []
        needs: dict[str, tuple[str, Any]] = {
            "l1.contracts": (str(self.l1.get("contracts", "")), _adjudicator_of),
            "channels_key_file": (self.key_file, read_key)}
        return needed_files("the channels worker", needs)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ChannelsSettings:
        return settings_from(cls, data, "channels")
