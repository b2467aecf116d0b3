"""Attack (issue 12, item 9): break the one-step proof with an absurd snapshot.

Before: an unchallenged wrong snapshot with absurd fields (a base fee that overflows, say) became
the parent of later outputs, and the one-step proof from it reverted: nothing built on it could be
challenged.

Now every proposal (and the anchor) passes the snapshot range check (Snapshots.checkRange, and
check_range in Python, which names the same field), and a game's trace starts from a finalized
output, never from a pending claim: an absurd snapshot is refused at propose, naming the field,
and a wrong snapshot at the very edges of the range is an ordinary lie that the real Challenger
disproves on L1.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from services.l1 import TxSender
from services.rollups._contracts import OutputStatus, Side
from services.rollups._snapshot import MAX_BASE_FEE, Phase, SnapshotRangeError, check_range
from tests.rollups._rollup import Rollup

ABSURD: list[tuple[str, Any, str]] = [
    ("base_fee", 2**256 - 1, "baseFee"),  # the issue's: next_base_fee would overflow
    ("base_fee", MAX_BASE_FEE + 1, "baseFee"),
    ("number", 2**64, "number"),
    ("timestamp", 2**255, "timestamp"),
    ("gas_limit", 0, "gasLimit"),
    ("gas_used", 30_000_001, "gasUsed"),  # above the devnet genesis gas limit
    ("l1_origin_number", 2**64, "l1OriginNumber"),
    ("phase", Phase.BATCH, "phase"),
    ("tx_left", 7, "txLeft"),
    ("block_base_fee", 2**256 - 1, "blockBaseFee"),
    ("forced_index", 2**255, "forcedIndex"),
]


async def test_absurd_snapshots_are_refused_at_propose_naming_the_field(r: Rollup, rogue: TxSender) -> None:
    await r.extend(2)
    block2 = r.derived(2)
    for name, value, field in ABSURD:
        absurd = dataclasses.replace(block2.snapshot, **{name: value})
        with pytest.raises(SnapshotRangeError) as caught:
            check_range(absurd)
        assert caught.value.field == field
        error = await r.refusal(rogue, absurd, block2.step)
        assert (error.name, error.args) == ("SnapshotFieldOutOfRange", (field, int(value))), name
    assert await r.registry.output_count() == 1


async def test_a_wrong_snapshot_at_the_edges_of_the_range_is_disproven(r: Rollup, rogue: TxSender) -> None:
    await r.extend(2)
    block2 = r.derived(2)
    edge = dataclasses.replace(block2.snapshot, base_fee=MAX_BASE_FEE, timestamp=2**64 - 1,
                               gas_used=block2.snapshot.gas_limit, forced_index=2**64 - 1)
    check_range(edge)
    assert await r.propose(rogue, edge, block2.step) == 1
    ((game_id, side, out),) = await r.challenger.check()
    assert side == Side.CHALLENGER
    # The rogue defends its claim with the honest trace up to its absurd end: the last step,
    # from a snapshot both agree on, is L1's to execute.
    game = await r.lie_to_the_step(rogue, game_id, out)
    assert (game.lo, game.hi) == (out.trace_length - 1, out.trace_length)
    assert (await r.registry.output(1)).status == OutputStatus.INVALIDATED
    assert (await r.credit(r.challenger.sender), await r.credit(rogue)) == (r.params.proposal_bond, 0)
