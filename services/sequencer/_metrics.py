"""The sequencer's Prometheus metrics (declared through services.runtime; served by the tree)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from protocol import CHANNEL_REASONS, Reason
from services.runtime import counter, gauge, histogram

if TYPE_CHECKING:
    from ._chain import Chain

ACCEPTED: Final = counter("l2node_transactions_accepted_total", "Transactions acknowledged (durable in the pool)")
REFUSED: Final = counter("l2node_transactions_refused_total", "Transactions refused at submission, by "
                         "protocol.Reason", ("reason",))
DROPPED: Final = counter("l2node_transactions_dropped_total", "Acknowledged transactions later dropped, by "
                         "protocol.Reason", ("reason",))
POOL: Final = gauge("l2node_pool_transactions", "Transactions in the mempool: pending (executable) and queued "
                    "(behind a nonce gap)", ("pool",))
SEAL_SECONDS: Final = histogram("l2node_seal_duration_seconds", "Time to build and persist one L2 block",
                                (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
HEAD: Final = gauge("l2node_l2_head_block", "L2 head block number by status: sealed, safe, finalized", ("status",))
LAG: Final = gauge("l2node_l2_head_lag_blocks", "How many blocks the safe and finalized heads are behind the "
                   "sealed head", ("status",))
BATCHES: Final = counter("l2node_batches_posted_total", "Batches posted to the L1 inbox and mined")
BATCH_BYTES: Final = counter("l2node_batch_posted_bytes_total", "Compressed batch bytes posted to L1")
REWINDS: Final = counter("l2node_sequencer_rewinds_total", "Times the sequencer dropped blocks to follow what "
                         "derivation made (a lapsed sequencer window; services/sequencer/_follow.py)")
REWOUND_BLOCKS: Final = counter("l2node_sequencer_rewound_blocks_total", "Sealed blocks dropped to follow derivation")
FOLLOWED_BLOCKS: Final = counter("l2node_sequencer_followed_blocks_total", "Blocks sealed as derivation made them "
                                 "(at a lapsed sequencer window, or from a batch of dropped blocks)")
REPLICA_BLOCKS: Final = counter("l2node_replica_blocks_total", "A read replica: upstream blocks re-executed to "
                                "their claimed hash and stored (services/sequencer/_replica.py)")
REPLICA_REFUSED: Final = counter("l2node_replica_refused_blocks_total", "A read replica: upstream blocks refused "
                                 "(not re-executing to their claim, or contradicting derivation)")

# Every series exists from the start (at zero), so dashboards and alerts see it before it moves.
for _reason in set(Reason) - CHANNEL_REASONS:  # a transaction is never refused for a channel's reason
    REFUSED.labels(_reason.value)
    DROPPED.labels(_reason.value)
for _status in ("sealed", "safe", "finalized"):
    HEAD.labels(_status)
for _pool in ("pending", "queued"):
    POOL.labels(_pool)
LAG.labels("safe")
LAG.labels("finalized")


class Heads:
    """The sealed, safe and finalized heads, and the lag of the latter two behind the first."""

    def __init__(self) -> None:
        self._heads = {"sealed": 0, "safe": 0, "finalized": 0}

    def set(self, status: str, number: int) -> None:
        heads = self._heads
        if heads[status] == number:
            return
        heads[status] = number
        HEAD.labels(status).set(number)
        for behind in ("safe", "finalized"):
            LAG.labels(behind).set(max(0, heads["sealed"] - heads[behind]))


HEADS: Final = Heads()


def observe_chain(chain: Chain) -> None:
    """The pool sizes and the sealed head, once per producer round (a few times a second)."""
    stats = chain.mempool.statistics()
    POOL.labels("pending").set(stats.pending)
    POOL.labels("queued").set(stats.queued)
    HEADS.set("sealed", chain.head.number)


def count_refusals(reasons: Iterable[Reason]) -> None:
    """One update per reason, not per transaction: a flood of bad transactions stays cheap."""
    for reason, n in Counter(reasons).items():
        REFUSED.labels(reason.value).inc(n)
