"""The rollups worker's Prometheus metrics (declared through services.runtime; served by the tree)."""

from __future__ import annotations

from typing import Final

from services.runtime import counter, gauge

OUTPUTS: Final = counter("l2node_outputs_total", "Outputs this node proposed or finalized on L1, by status",
                         ("status",))
DISPUTES: Final = counter("l2node_disputes_total", "Dispute games: opened by this node's challenger, and ended "
                          "games it played, by status (opened, or the game's result)", ("status",))
DISPUTES_OPEN: Final = gauge("l2node_disputes_open", "Dispute games this node is playing now (either side)")
DERIVED_HEAD: Final = gauge("l2node_derived_head_block", "The L2 head derived from L1 data alone")
DERIVATION_LAG: Final = gauge("l2node_derivation_lag_blocks", "L1 blocks not yet derived: the L1 head minus the "
                              "last L1 block read (at least the confirmation depth)")
L1_BLOCKS_READ: Final = counter("l2node_derivation_l1_blocks_read_total", "L1 blocks derivation read since the "
                                "worker started (from its checkpoint on after a restart)")
CHECKPOINT_L1_BLOCK: Final = gauge("l2node_derivation_checkpoint_l1_block", "The L1 block of the latest derivation "
                                   "checkpoint written or resumed from")
RESUMED_FROM: Final = gauge("l2node_derivation_resumed_l1_block", "The L1 block of the checkpoint this worker's "
                            "derivation resumed from (0: it started from genesis)")

# Every series exists from the start (at zero), so dashboards and alerts see it before it moves.
OUTPUTS.labels("proposed")
OUTPUTS.labels("finalized")
DISPUTES.labels("opened")
