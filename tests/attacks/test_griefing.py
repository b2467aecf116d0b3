"""Griefing an honest output for the price of bonds: several challengers at once.

Anyone may challenge an output, each in its own game against the proposer. Two griefers challenge
the same right output at once and play against it to the end; the rollups worker defends both
games at the same time, wins both, collects both challenge bonds, and the output finalizes once
both games are over. What the griefers bought: a delay of the output's finality bounded by the
chess clocks, paid with their bonds; no other output is delayed.
"""

from __future__ import annotations

import asyncio

from services.l1 import TxSender
from services.rollups._contracts import GameStatus, OutputStatus, Side
from tests.rollups._rollup import Rollup


async def test_two_griefers_lose_both_bonds_to_the_automatic_defence(
        r: Rollup, rogue: TxSender, accomplice: TxSender) -> None:
    p = r.params
    await r.extend(2)
    assert await r.proposer.propose_once() == 1
    for griefer in (rogue, accomplice):
        await r.registry.challenge(griefer, 1)
    plays = await r.challenger.check()
    assert sorted((side, out.index) for _, side, out in plays) == [(Side.DEFENDER, 1)] * 2
    # Meanwhile the honest proposer's next output is proposed as if nothing happened.
    await r.extend(1)
    assert await r.proposer.propose_once() == 2

    claims = await r.honest_claims(plays[0][2])
    lies = [claims[0], *(b"\x02" * 32 for _ in claims[1:])]
    games = [await r.registry.game_address(game_id) for game_id, _, _ in plays]
    results = await asyncio.gather(*(r.challenger.play(game_id, side, out) for game_id, side, out in plays),
                                   *(r.attack(griefer, game, lies)
                                     for griefer, game in zip((rogue, accomplice), games, strict=True)))
    assert results == [GameStatus.DEFENDER_WON] * 4
    assert (await r.registry.output(1)).status == OutputStatus.PROPOSED
    await r.pass_time(p.challenge_window_s + 1)
    assert await r.proposer.finalize_ready() == [1, 2]
    pots = [(await r.registry.game(game).read(r.l1, "credit", r.proposer.sender.address))[0] for game in games]
    assert all(pot >= p.challenge_bond for pot in pots)
    assert await r.credit(rogue) == await r.credit(accomplice) == 0
