"""The challenger: every output on L1 checked against its own derivation; a wrong one disputed.

It also defends: games opened against this node's own proposals are played from here, so a
node that only proposes (``challenge`` off) still runs it, in defend-only mode.

It trusts nothing but L1. An output is right iff the batches L1 held when it was proposed (its
batch limit) derive its L2 block with its snapshot: that is what its dispute re-executes (see
_machine's Inputs notes). Once its derivation has reached the block from those batches, it
compares the output's snapshot commitment with its own; once it has read and derived every
batch below the limit without reaching the block (a block from the future, or invented), the
output is wrong too, even if later batches derive it. Until then it waits. It challenges the
first wrong output on the chain (one resting on a wrong parent falls with it), plays the game
to the end, and, as the defender, answers every game opened against its own node's proposals.
"""

from __future__ import annotations

import asyncio
import logging

from opentelemetry import trace

from services.l1 import OUTAGE, L1Error, Pacer, TxSender

from . import _metrics as metrics
from ._contracts import ContractFailed, GameState, GameStatus, OutputRecord, OutputStatus, Registry, Side
from ._disputes import Player, Prover
from ._settings import RollupsSettings
from ._trace import DerivedChain

_log = logging.getLogger("l2node.rollups.challenger")
_tracer = trace.get_tracer("l2node.rollups")


class Challenger:
    def __init__(self, chain: DerivedChain, registry: Registry, sender: TxSender, settings: RollupsSettings,
                 prover: Prover, defender: TxSender | None = None) -> None:
        self.chain, self.registry, self.sender, self.settings = chain, registry, sender, settings
        self.prover = prover
        #: This node's proposer key, if it proposes: games against its outputs are defended with it.
        self.defender = defender
        self._checked = 0
        #: (game id, side) being played: one node may play both sides of a game (its challenger
        #: against its own proposer, when that proposer is faulty).
        self._playing: set[tuple[int, Side]] = set()
        self.challenged: list[int] = []

    async def run(self) -> None:
        pacer = Pacer(self.settings.poll_interval_s, self.settings.idle_poll_s, self.registry.l1.activity)
        async with asyncio.TaskGroup() as games:  # no game outlives the challenger
            while True:
                active = False
                try:
                    active = await self.chain.sync() > 0
                    for game_id, side, output in await self.check():
                        games.create_task(self.play(game_id, side, output))
                        active = True
                except (*OUTAGE, L1Error, ContractFailed) as exc:
                    _log.warning("challenger round failed", extra={"error": str(exc)})
                # Idle, a new output is seen within idle_poll_s: far inside any challenge window.
                await pacer.sleep(active)

    async def check(self) -> list[tuple[int, Side, OutputRecord]]:
        """Challenge what is wrong; the games (new ones, and ones against us) to play."""
        to_play: list[tuple[int, Side, OutputRecord]] = []
        count = await self.registry.output_count()
        for index in range(self._checked + 1, count):
            out = await self.registry.output(index)
            if out.status in (OutputStatus.FINALIZED, OutputStatus.INVALIDATED):
                if index == self._checked + 1:
                    self._checked = index
                continue
            honest = self.chain.judge(out.l2_block, out.snapshot_hash, out.batch_limit)
            if honest is None:
                break  # our derivation is not there yet
            parent = await self.registry.output(out.parent_index)
            parent_honest = self.chain.judge(parent.l2_block, parent.snapshot_hash, parent.batch_limit) is True
            wrong = (not honest and parent_honest) or (honest and self.challenges_honest(out))
            games = await self._games(index)
            # Ours already on L1 (say, opened before a restart): play it rather than pay for a second.
            ours = any(state.challenger == self.sender.address for _, state in games)
            if self.settings.challenge and wrong and index not in self.challenged and not ours:
                self.challenged.append(index)
                with _tracer.start_as_current_span("challenge_output") as span:
                    span.set_attribute("l2.output.index", index)
                    receipt = await self.registry.challenge(self.sender, index)
                    metrics.DISPUTES.labels("opened").inc()
                    span.set_attribute("l1.block", receipt.block_number)
                _log.warning("output challenged", extra={"index": index, "l2_block": out.l2_block,
                                                         "honest_output": honest})
                games = await self._games(index)
            for game_id, state in games:
                sides = []
                if self.settings.challenge and state.challenger == self.sender.address:
                    sides.append(Side.CHALLENGER)
                if self.defender is not None and state.defender == self.defender.address:
                    sides.append(Side.DEFENDER)
                for side in sides:
                    if (game_id, side) not in self._playing:
                        self._playing.add((game_id, side))
                        to_play.append((game_id, side, out))
        return to_play

    def challenges_honest(self, out: OutputRecord) -> bool:
        """Whether to challenge ``out`` though it is right: never. (A test's faulty challenger,
        tests/workers/faulty_rollups.py, says yes here.)"""
        return False

    def player_type(self, side: Side) -> type[Player]:
        """How our ``side`` of a game is played: honestly. (A test's faulty challenger plays a
        Player that disagrees with every claim.)"""
        return Player

    async def _games(self, index: int) -> list[tuple[int, GameState]]:
        return [(game_id, await self.registry.game_state(await self.registry.game_address(game_id)))
                for game_id in await self.registry.games_of(index)]

    async def play(self, game_id: int, side: Side, out: OutputRecord) -> GameStatus:
        """Play our ``side`` of game ``game_id`` over ``out`` to its end; its result."""
        parent = await self.registry.output(out.parent_index)
        # The trace L1 checks: bounded, padded with no-ops. Horizon 0 as DisputeGame passes it until
        # outputs record theirs (issue 12 section D).
        traces = self.chain.traces(out.batch_limit, 0)
        snapshots = await asyncio.to_thread(traces.snapshots, parent.l2_block, out.l2_block, out.trace_length)
        claims = [s.commitment() for s in snapshots]
        if side == Side.DEFENDER:
            claims[-1] = out.snapshot_hash  # what we claimed, right or not: defend it to the end
        sender = self.sender if side == Side.CHALLENGER or self.defender is None else self.defender
        player = self.player_type(side)(self.registry, sender, traces, self.prover, parent.l2_block, claims, side)
        address = await self.registry.game_address(game_id)
        with metrics.DISPUTES_OPEN.track_inprogress():
            result = await player.play(address)
        metrics.DISPUTES.labels(result.name.lower()).inc()
        _log.info("dispute over", extra={"game": game_id, "output": out.index, "side": side.name,
                                         "result": result.name})
        return result
