"""The challenger: every output on L1 checked against its own derivation; a wrong one disputed.

It also defends: games opened against this node's own proposals are played from here, so a
node that only proposes (``challenge`` off) still runs it, in defend-only mode.

It trusts nothing but L1. Outputs are independent claims (see OutputRegistry): output B says
that derivation from its start output A's snapshot (the latest finalized output when B was
proposed), over what L1 held up to B's L1 horizon (B's batch limit: the batches included by
then), reaches B's snapshot at trace position B.traceLength. That is what B's dispute
re-executes, so that is what it judges (``DerivedChain.judge``), each output on its own: once
its derivation has read L1 past B's horizon it compares; until then it waits on B and goes on
with the others. It challenges every wrong output (each loses its own bond), plays each game to
the end, and, as the defender, answers every game opened against its own node's proposals. A
start it disagrees with is a finalized wrong output: nothing can be judged from it, and it says so.
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
        self._verdicts: dict[int, bool] = {}
        self._wrong_starts: set[int] = set()

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
            honest = await self._judge(out)
            if honest is None:
                continue  # our derivation is not there yet (for this one: outputs are independent)
            wrong = not honest or self.challenges_honest(out)
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

    async def _judge(self, out: OutputRecord) -> bool | None:
        """Whether ``out`` is right (its judgment never changes: an output's fields are fixed); None
        while we cannot tell, or when its start is a finalized output we find wrong."""
        known = self._verdicts.get(out.index)
        if known is not None:
            return known
        start = await self.registry.output(out.start_index)
        base = self.chain.block(start.l2_block)
        if base is None:
            return None  # not derived that far yet
        if base.snapshot.commitment() != start.snapshot_hash:
            if out.start_index not in self._wrong_starts:
                self._wrong_starts.add(out.start_index)
                _log.error("a finalized output is not what L1 derives: outputs starting from it cannot be judged",
                           extra={"index": out.start_index, "l2_block": start.l2_block})
            return None
        verdict = self.chain.judge(out, base)
        if verdict is not None:
            self._verdicts[out.index] = verdict
        return verdict

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
        start = await self.registry.output(out.start_index)
        # The trace L1 checks: from the start, within the output's bounds, padded with no-ops.
        traces = await self.chain.dispute_traces(out.batch_limit, out.l1_horizon, start.l2_block)
        snapshots = await asyncio.to_thread(traces.snapshots, start.l2_block, out.l2_block, out.trace_length)
        claims = [s.commitment() for s in snapshots]
        if side == Side.DEFENDER:
            claims[-1] = out.snapshot_hash  # what we claimed, right or not: defend it to the end
        sender = self.sender if side == Side.CHALLENGER or self.defender is None else self.defender
        player = self.player_type(side)(self.registry, sender, traces, self.prover, start.l2_block, claims, side)
        address = await self.registry.game_address(game_id)
        with metrics.DISPUTES_OPEN.track_inprogress():
            result = await player.play(address)
        metrics.DISPUTES.labels(result.name.lower()).inc()
        _log.info("dispute over", extra={"game": game_id, "output": out.index, "side": side.name,
                                         "result": result.name})
        return result
