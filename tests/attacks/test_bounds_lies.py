"""Attack (found while closing issue 12's items 3, 4, 8): lie about an output's bounds.

An output now carries its L1 horizon and its batch limit, and its games replay derivation over
exactly those batches (and, with the sequencer window rule, that horizon). If the proposer chose
the limit freely it could hide a batch L1 included by its horizon (derivation would then see the
sequencer's window lapse and derive other blocks: a different chain, "right" within the lied
bounds) or count a batch from after it (a block from the future). The registry checks, on the
inbox the verifier reads, that the limit is exactly the batches by the horizon, that the horizon
is in the past and not before the start's; each lie is refused with a named error.
"""

from __future__ import annotations

from services.l1 import TxSender
from tests.rollups._rollup import Rollup


async def test_a_batch_limit_or_horizon_that_is_not_l1s_is_refused(r: Rollup, rogue: TxSender) -> None:
    await r.extend(2)
    first = (await r.inbox.read(r.l1, "batch", 0))[1]
    await r.extend(2)
    second = (await r.inbox.read(r.l1, "batch", 1))[1]
    block4 = r.derived(4)
    now = await r.l1.block_number()
    lies = [
        ((1, now), "BatchWithinHorizon", (1, second, now)),  # hides batch 1
        ((2, second - 1), "BatchAfterHorizon", (1, second, second - 1)),  # counts batch 1 before its block
        ((3, now), "BatchLimitAboveCount", (3, 2)),
        ((0, first), "BatchWithinHorizon", (0, first, first)),
        ((2, now + 1), "L1HorizonOutOfRange", (now + 1, 0, now + 1)),  # a horizon not yet past
    ]
    for (limit, horizon), name, args in lies:
        error = await r.refusal(rogue, block4.snapshot, block4.step, limit, horizon)
        assert (error.name, error.args) == (name, args), (limit, horizon)
    # The honest bounds: the proposer's own, and the same block at an earlier horizon.
    assert await r.proposer.propose_once() == 1
    out = await r.registry.output(1)
    assert (out.batch_limit, out.l1_horizon) == (2, r.proposer.chain.horizon)
    await r.registry.propose(rogue, r.derived(2).snapshot, r.derived(2).step, 1, second - 1)
    assert await r.challenger.check() == []  # both right: nothing to challenge
    # Once output 1 is final, no output may read L1 less far than it did.
    await r.pass_time(r.params.challenge_window_s + 1)
    assert await r.proposer.finalize_ready() == [1, 2]
    assert await r.registry.latest_finalized() == 1
    await r.extend(1)
    block5 = r.derived(5)
    error = await r.refusal(rogue, block5.snapshot, block5.step - block4.step, 2, out.l1_horizon - 1)
    assert (error.name, error.args[:2]) == ("L1HorizonOutOfRange", (out.l1_horizon - 1, out.l1_horizon))

