"""The rollups service: bonded output proposals, re-derivation from L1, interactive fraud proofs.

Read in this order: ``_snapshot`` (what a dispute bisects over), ``_machine`` (the derivation
rules, one step at a time: where a dispute move is checked, in Python), ``_derivation`` (L1
data in), ``_trace`` (the derived chain and dispute traces), ``_checkpoints`` (where a restart
and a dispute resume: the derived state at an L1 point, in the worker's SQLite), ``_contracts``
(the registry and game on L1), ``_proposer``, ``_challenger`` and ``_disputes`` (the two roles
and the moves),
``_rollups`` (what the worker opens, runs and closes), ``_service`` (the gRPC API). On L1:
contracts/OutputRegistry.sol, DisputeGame.sol and StepVerifier.sol (the one-step proof).
``WORKER`` is what the worker runtime runs.
"""

from __future__ import annotations

import functools

from protocol import devnet_genesis, load_genesis
from protos.l2node.rollups.v1 import rollups_pb2_grpc
from services.runtime import Service, WorkerContext, WorkerDefinition, collect_young_rarely

from ._challenger import Challenger
from ._contracts import snapshot_tuple
from ._machine import genesis_snapshot
from ._proposer import Proposer
from ._rollups import Roles, Rollups, step_proof
from ._service import RollupsServicer
from ._settings import RollupsSettings

__all__ = ["WORKER", "Challenger", "Proposer", "Roles", "RollupsSettings", "definition", "genesis_snapshot",
           "snapshot_tuple", "step_proof"]


async def _register(ctx: WorkerContext, roles: Roles) -> Service:
    settings = RollupsSettings.from_mapping(ctx.config.settings)
    genesis = load_genesis(settings.genesis_file) if settings.genesis_file else devnet_genesis(settings.chain_id)
    rollups = await Rollups.open(settings, genesis, ctx.logger, ctx.channel, roles, ctx.storage)
    for reason in rollups.not_ready:
        ctx.not_ready(reason)
    servicer = RollupsServicer(rollups.registry, rollups.from_block, settings.poll_interval_s)
    rollups_pb2_grpc.add_RollupsServiceServicer_to_server(servicer, ctx.server)
    collect_young_rarely()  # derivation's decoded transactions live for a batch (services.runtime._gc)
    return rollups


def definition(roles: Roles | None = None) -> WorkerDefinition:
    """The rollups worker, its roles played by ``roles`` (default: the honest Proposer and Challenger)."""
    return WorkerDefinition(name="rollups", register=functools.partial(_register, roles=roles or Roles()))


WORKER = definition()
