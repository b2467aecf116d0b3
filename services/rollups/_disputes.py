"""Playing dispute games: the honest move at each turn, from the trace L1 data defines.

That trace starts at the disputed output's start (the latest finalized output when it was
proposed) and reads only what L1 held up to its L1 horizon (its batch limit: the batches
included by then): ``traces`` must be the game's, ``DerivedChain.traces(output.batch_limit,
output.l1_horizon)``, as L1's step is (DisputeGame passes both to the StepVerifier).

One ``play`` call follows one game to its end, as the defender (the output's proposer) or the
challenger. Each move is a span ("dispute_move") with the game, round and move in its
attributes, and the L1 calls under it.

Defender: bisect with its own trace's claim at the middle position. When the range is one step
wide and its claim at ``hi`` is what L1 will compute, it proves the step itself rather than
wait for the challenger's clock (the one-step proof is deterministic; whoever submits it).
Challenger: agree with a middle claim iff it equals its own trace there, then prove the step.
Either side claims a timeout as soon as the other's clock has run out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from opentelemetry import trace

from services.l1 import OUTAGE, L1Error, TxSender

from ._contracts import ContractFailed, GameState, GameStatus, Move, Registry, Side, snapshot_tuple
from ._machine import Machine
from ._snapshot import Snapshot
from ._trace import Traces

_log = logging.getLogger("l2node.rollups.disputes")
_tracer = trace.get_tracer("l2node.rollups")
#: Held while a step is replayed and proven (in a thread: see ``Player._step``).
_PROVING: Final = threading.Lock()

#: How often a player looks at the game while the other side thinks (seconds).
POLL_S: Final = 0.5

#: Builds the one-step proof for the step a trace-mode machine is about to take towards ``target``.
Prover = Callable[[Machine, int], bytes]


@dataclass(frozen=True, slots=True)
class Player:
    registry: Registry
    sender: TxSender
    #: Bounded by the disputed output's batch limit and L1 horizon (the step proofs come from its machines).
    traces: Traces
    prover: Prover
    #: The L2 block of the disputed output's start output (where the trace starts).
    start_block: int
    #: Our own trace claims (positions 0..traceLength); the defender's end claim may be its own.
    claims: list[bytes]
    side: Side

    async def play(self, game: bytes) -> GameStatus:
        while True:
            state = await self.registry.game_state(game)
            if state.status != GameStatus.IN_PROGRESS:
                return state.status
            try:
                moved = await self._turn(state)
            except (*OUTAGE, ContractFailed, L1Error) as exc:  # raced by the other side or a timeout: look again
                error = self.registry.game(game).decode_error(getattr(exc, "revert_data", None))
                _log.warning("dispute move failed", extra={
                    "game": "0x" + game.hex(), "error": f"{error.name}{error.args}" if error else str(exc)})
                moved = False
            if not moved:
                await asyncio.sleep(POLL_S)

    async def _turn(self, g: GameState) -> bool:
        ours = g.turn == self.side
        if not ours:
            other_clock = g.defender_clock if g.turn == Side.DEFENDER else g.challenger_clock
            if other_clock == 0:
                return await self._move(g, "claimTimeout")
            if g.next_move == Move.STEP and self.side == Side.DEFENDER and self._agrees(g.lo, g.lo_hash) \
                    and self._agrees(g.hi, g.hi_hash):
                return await self._step(g)  # our claim holds: prove it now rather than wait
            return False
        if g.next_move == Move.BISECT:
            mid = (g.lo + g.hi) // 2
            return await self._move(g, "bisect", self.claims[mid], bond=True)
        if g.next_move == Move.CHOOSE:
            mid = (g.lo + g.hi) // 2
            agree = self._agrees(mid, g.mid_claim)
            return await self._move(g, "choose", agree, bond=True)
        if g.next_move == Move.STEP:
            if not self._agrees(g.lo, g.lo_hash):
                return False  # nothing true to prove: our clock runs out
            return await self._step(g)
        return False

    def _agrees(self, position: int, claim: bytes) -> bool:
        return 0 <= position < len(self.claims) and self.claims[position] == claim

    async def _step(self, g: GameState) -> bool:
        def prove() -> tuple[Snapshot, bytes]:
            with _PROVING:  # one at a time: games run at once, and the witness keeps caches of its own
                machine = self.traces.machine_before(self.start_block, g.target, g.lo,
                                                     check=lambda s: s.commitment() == g.lo_hash)
                return machine.snapshot, self.prover(machine, g.target)

        # Off the loop: the replay to the step and its proof take long (a blob leaf's opening is a
        # KZG proof per field element, ~40 ms each with the GIL held: seconds for a 4 KB leaf). On
        # the loop they would stall the worker's health answers, and the supervisor kills a worker
        # that stops answering: a leaf made long on purpose would then keep the honest side from
        # ever stepping. In a thread, the loop runs between those calls.
        pre, proof = await asyncio.to_thread(prove)
        return await self._move(g, "step", snapshot_tuple(pre), proof)

    async def _move(self, g: GameState, function: str, *args: object, bond: bool = False) -> bool:
        with _tracer.start_as_current_span("dispute_move") as span:
            span.set_attribute("l2.dispute.game", "0x" + g.address.hex())
            span.set_attribute("l2.dispute.output", g.output_index)
            span.set_attribute("l2.dispute.round", g.round)
            span.set_attribute("l2.dispute.move", function)
            span.set_attribute("l2.dispute.side", self.side.name)
            value = await self.registry.move_bond(g.address, g.round) if bond else 0
            receipt = await self.registry.move(self.sender, g.address, function, *args, value=value)
            span.set_attribute("l1.block", receipt.block_number)
        _log.info("dispute move", extra={"game": "0x" + g.address.hex(), "move": function, "round": g.round,
                                         "side": self.side.name, "l1_tx": "0x" + receipt.tx_hash.hex()})
        return True
