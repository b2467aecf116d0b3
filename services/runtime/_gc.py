"""The cyclic collector's pace for a worker that holds many transactions' objects under load."""

from __future__ import annotations

import gc
from typing import Final

#: Net allocations of tracked objects between young collections (Python's default is 700).
YOUNG_THRESHOLD: Final = 50_000


def collect_young_rarely() -> None:
    """Young collections every ``YOUNG_THRESHOLD`` net allocations instead of 700.

    Under load a worker's per-transaction objects (the sequencer's pool entries and add results,
    derivation's decoded transactions) live for a block or a batch, then their refcount frees
    them. At 700 each was traversed by a young collection and again by the middle one before that:
    in the sequencer ~4 us of a transfer's CPU (bench/e2e_throughput.py: 3,500 young, 320 middle
    and 30 full collections for 210k transfers). At 50,000 most are gone before any collection
    sees them: ~0.3 us (5 young collections of 15-20 ms for 330k transfers). Cyclic garbage
    (asyncio's, gRPC's) is still found by the young collections: at most 50,000 objects more wait
    for one, a few MB.
    """
    _, middle, full = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, full)
