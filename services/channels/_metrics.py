"""The channels worker's Prometheus metrics (declared through services.runtime; served by the tree)."""

from __future__ import annotations

from typing import Final

from services.runtime import counter

ROUND_TRIPS: Final = counter("l2node_channel_round_trips_total", "Update round trips this node proposed, by "
                             "outcome: accepted, or the refusal reason of the round trip's last signed state "
                             "(PEER_PENDING and SEQUENCE_CONFLICT are races: services/channels/_updates.py U3, U6)",
                             ("outcome",))
TURN_WAITS: Final = counter("l2node_channel_turn_waits_total", "Round trips that first let the peer's update go "
                            "(U6), by how the wait ended: landed (the peer's update came) or timed_out",
                            ("ended",))

REQUESTS: Final = counter("l2node_channel_requests_total", "Settles and fails this node asked of the HTLC's "
                          "offerer instead of proposing them (services/channels/_updates.py U7), by outcome: taken, "
                          "refused, unanswered, unsupported (the peer takes none), or bound (taken, not proposed "
                          "in time: proposed here)", ("outcome",))

for _outcome in ("accepted", "PEER_PENDING", "SEQUENCE_CONFLICT", "STALE_SEQUENCE"):
    ROUND_TRIPS.labels(_outcome)
for _ended in ("landed", "timed_out"):
    TURN_WAITS.labels(_ended)
for _asked in ("taken", "refused", "unanswered", "unsupported", "bound"):
    REQUESTS.labels(_asked)
