"""A test worker: the rollups worker with a faulty proposer and/or a faulty challenger.

Fault injection stays out of the production service: select this definition in a test's
config, with the fault switches beside the rollups settings (which refuse them):

    [workers.rollups]
    definition = "tests.workers.faulty_rollups:WORKER"
    [workers.rollups.settings]
    faulty_output = 1         # the output proposed with this index gets a corrupted state root
    faulty_challenger = true  # challenge honest outputs and disagree with every claim

Everything else is the rollups worker's (services.rollups.definition).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from protocol import keccak256
from services.rollups import Challenger, Proposer, Roles, definition
from services.rollups._contracts import OutputRecord, Side
from services.rollups._disputes import Player
from services.rollups._snapshot import Snapshot
from services.runtime import Service, WorkerContext, WorkerDefinition

#: This worker's own settings (and their off values); the rest go to the rollups worker.
FAULTS: dict[str, Any] = {"faulty_output": -1, "faulty_challenger": False}


def corrupt(snapshot: Snapshot) -> Snapshot:
    """The faulty proposer's output: the same snapshot with a wrong state root."""
    return dataclasses.replace(snapshot, state_root=keccak256(b"faulty proposer" + snapshot.state_root))


def faulty_proposer(index: int) -> type[Proposer]:
    """A proposer that corrupts the state root of output ``index``."""

    class FaultyProposer(Proposer):
        def claim(self, output_index: int, derived: Snapshot) -> Snapshot:
            return corrupt(derived) if output_index == index else derived

    return FaultyProposer


class DishonestPlayer(Player):
    """Disagrees with every claim, and so has no true step to prove: it must lose."""

    __slots__ = ()

    def _agrees(self, position: int, claim: bytes) -> bool:
        return False


class FaultyChallenger(Challenger):
    """Challenges honest outputs (other nodes'), and plays its games dishonestly."""

    def challenges_honest(self, out: OutputRecord) -> bool:
        return out.proposer != self.sender.address

    def player_type(self, side: Side) -> type[Player]:
        return DishonestPlayer if side == Side.CHALLENGER else Player


async def _register(ctx: WorkerContext) -> Service:
    settings = dict(ctx.config.settings)
    faults = {key: settings.pop(key, off) for key, off in FAULTS.items()}
    roles = Roles(proposer=faulty_proposer(faults["faulty_output"]) if faults["faulty_output"] >= 0 else Proposer,
                  challenger=FaultyChallenger if faults["faulty_challenger"] else Challenger)
    ctx.logger.warning("faults injected (a test worker)", extra=faults)
    return await definition(roles).register(
        dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, settings=settings)))


WORKER = WorkerDefinition(name="rollups", register=_register)
