"""Attack (issue 12, item 3): roll back honest outputs by throwing a game.

Before: only an output's proposer could defend it, and a challenger's win invalidated every later
output. A rogue proposed a *correct* output, the honest proposer built on it, an accomplice
challenged the rogue's output and the rogue never answered: both outputs fell, the colluders got
their bonds back, and could repeat it for gas.

Now outputs are independent (each from the latest finalized output): the thrown game invalidates
the rogue's own output and nothing else. The honest outputs, proposed by the real Proposer beside
it, finalize; the colluders only move the rogue's bond to the accomplice (gas is all they spend
and all they get is nothing). An accomplice who challenges an honest output instead meets the
rollups worker's automatic defence and loses its bond.
"""

from __future__ import annotations

import asyncio

from services.l1 import TxSender
from services.rollups._contracts import GameStatus, OutputStatus, Side
from services.rollups._proposer import Proposer
from tests.rollups._rollup import Rollup


async def test_a_thrown_game_takes_down_only_the_throwers_output(
        r: Rollup, rogue: TxSender, accomplice: TxSender) -> None:
    p = r.params
    await r.extend(2)
    # The rogue proposes the correct output at block 2; the honest proposer proposes its own.
    block2 = r.derived(2)
    assert await r.propose(rogue, block2.snapshot, block2.step) == 1
    assert await r.proposer.propose_once() == 2
    await r.extend(2)
    assert await r.proposer.propose_once() == 3  # block 4: in the old registry, built on output 1
    honest = [await r.registry.output(i) for i in (2, 3)]
    assert [o.l2_block for o in honest] == [2, 4] and all(o.start_index == 0 for o in honest)

    # The accomplice challenges the rogue's output; the rogue never answers.
    await r.registry.challenge(accomplice, 1)
    thrown = await r.registry.game_address(0)
    # The honest challenger finds every output right and challenges none.
    assert await r.challenger.check() == [] and r.challenger.challenged == []
    await r.pass_time(p.max_clock_s + 1)
    await r.registry.move(accomplice, thrown, "claimTimeout")
    assert (await r.registry.game_state(thrown)).status == GameStatus.CHALLENGER_WON
    assert await r.statuses() == [OutputStatus.FINALIZED, OutputStatus.INVALIDATED, OutputStatus.PROPOSED,
                                  OutputStatus.PROPOSED]

    # The honest outputs finalize (their windows passed during the game), untouched.
    assert await r.proposer.finalize_ready() == [2, 3]
    assert await r.registry.latest_finalized() == 3
    assert await r.credit(r.proposer.sender) == 2 * p.proposal_bond
    # The colluders: the rogue's bond went to the accomplice, with the challenge bond back from
    # the game. Together they hold exactly what they put in: the attack bought nothing.
    (pot,) = await r.registry.game(thrown).read(r.l1, "credit", accomplice.address)
    assert (await r.credit(rogue), await r.credit(accomplice), pot) == (0, p.proposal_bond, p.challenge_bond)
    # The next honest output starts from the honest finalized one.
    await r.extend(1)
    index = await r.proposer.propose_once()
    assert index == 4 and (await r.registry.output(4)).start_index == 3
    # A restarted proposer reads its latest output back from L1 and does not propose it again.
    restarted = Proposer(r.proposer.chain, r.registry, r.proposer.sender, r.proposer.settings)
    assert await restarted.propose_once() is None and await r.registry.output_count() == 5


async def test_an_accomplice_challenging_an_honest_output_meets_its_defence(r: Rollup, accomplice: TxSender) -> None:
    """The other half of a collusion: challenge the honest output itself. The honest node's
    challenger defends its proposer's outputs automatically, and the accomplice, who cannot
    disprove a right output, loses its bonds."""
    p = r.params
    await r.extend(2)
    assert await r.proposer.propose_once() == 1
    await r.registry.challenge(accomplice, 1)
    ((game_id, side, out),) = await r.challenger.check()
    assert side == Side.DEFENDER and r.challenger.challenged == []
    game = await r.registry.game_address(game_id)
    # The accomplice disagrees with every claim (the most it can do against a right trace).
    claims = await r.honest_claims(out)
    lies = [claims[0], *(b"\x01" * 32 for _ in claims[1:])]
    results = await asyncio.gather(r.challenger.play(game_id, Side.DEFENDER, out),
                                   r.attack(accomplice, game, lies))
    assert results == [GameStatus.DEFENDER_WON] * 2
    assert (await r.registry.output(1)).status == OutputStatus.PROPOSED
    await r.pass_time(p.challenge_window_s + 1)
    assert await r.proposer.finalize_ready() == [1]
    (pot,) = await r.registry.game(game).read(r.l1, "credit", r.proposer.sender.address)
    assert pot >= p.challenge_bond and await r.credit(r.proposer.sender) == p.proposal_bond

