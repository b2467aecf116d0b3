"""The sequencer window: when derivation makes a block itself, and which posted block it accepts.

W is the deployment's sequencer window in L1 blocks. A block the sequencer seals must reach L1
(its batch's L1 block) no later than its parent's L1 origin + W. When the next input derivation
would read (the next batch's L1 block, or past its horizon h: h + 1) is later than that, the
window has lapsed and derivation makes the next block itself (Optimism's forced empty batches):
origin = the parent's origin + 1, origin hash zero (such a block is never posted), the parent's
timestamp, only the deposits and forced transactions due at that origin. One block per L1 block
of lapse, so the derived chain is a function of L1 alone and a larger horizon only extends it.

A posted BLOCK leaf that is next in number is accepted only if ``leaf_acceptable``: its timestamp
does not go back (and fits a snapshot), its origin neither goes back nor is in the future of its
batch's L1 block, and its batch landed within W of its origin.

services.rollups' machine (rule F, rule 5c) and the sequencer (which follows what derivation
makes: services.sequencer._follow) both decide with these functions, so they cannot disagree.
"""

from __future__ import annotations

from typing import Final

from ._commitment import ZERO_HASH

#: Optimism's default sequencer window: 3,600 L1 blocks (12 h at 12 s); a deployment records its own.
DEFAULT_SEQUENCER_WINDOW: Final = 3_600
#: The origin hash of a block derivation makes itself: no L1 block has it, and the batcher never
#: posts such a block.
DERIVED_ORIGIN_HASH: Final = ZERO_HASH
#: Block timestamps stay below this (a snapshot's range check refuses larger ones).
MAX_TIMESTAMP: Final = 2**64


def window_lapsed(parent_origin: int, next_input_l1_block: int, window: int) -> bool:
    """Rule F's trigger: the next input derivation reads is in an L1 block past the parent's
    origin + ``window``, so no block posted in time remains to be read."""
    return next_input_l1_block > parent_origin + window


def derived_origin(parent_origin: int) -> int:
    """The L1 origin of the block derivation makes after a parent with origin ``parent_origin``."""
    return parent_origin + 1


def leaf_acceptable(parent_timestamp: int, parent_origin: int, timestamp: int, origin: int, batch_l1_block: int,
                    window: int) -> bool:
    """Whether a posted block, next in number, is accepted (rule 5c's opposite)."""
    return (parent_timestamp <= timestamp < MAX_TIMESTAMP and parent_origin <= origin <= batch_l1_block
            and batch_l1_block <= origin + window)


def heartbeat_due(tip_origin: int, l1_head: int, window: int) -> bool:
    """Whether the sequencer should seal a block (empty if nothing waits) to move its origin on:
    its tip's origin is more than half a window behind the L1 head it follows. Half a window
    leaves the other half for the batch to reach L1, so an idle chain never lapses."""
    return l1_head - tip_origin > window // 2
