"""The rollups service: bonded output proposals, re-derivation from L1, interactive fraud proofs.

Read in this order: ``_snapshot`` (what a dispute bisects over), ``_machine`` (the derivation
rules, one step at a time: where a dispute move is checked, in Python), ``_derivation`` (L1
data in), ``_trace`` (the derived chain and dispute traces), ``_contracts`` (the registry and
game on L1), ``_proposer``, ``_challenger`` and ``_disputes`` (the two roles and the moves),
``_service`` (the gRPC API). On L1: contracts/OutputRegistry.sol, DisputeGame.sol and
StepVerifier.sol (the one-step proof). ``WORKER`` is what the worker runtime runs.
"""

from __future__ import annotations

import functools
import json
import pathlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import grpc

from protocol import devnet_genesis, load_genesis
from protos.l2node.rollups.v1 import rollups_pb2_grpc
from protos.l2node.sequencer.v1 import sequencer_pb2, sequencer_pb2_grpc
from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender, address
from services.runtime import CallPolicy, WorkerContext, WorkerDefinition, call_unary
from supervisor import ChildSpec, task

from ._challenger import Challenger
from ._contracts import Registry, snapshot_tuple
from ._machine import DEFAULT_SEQUENCER_WINDOW, Machine, genesis_snapshot
from ._proposer import Proposer, SequencerBlockHash
from ._service import RollupsServicer
from ._settings import RollupsSettings
from ._trace import DerivedChain

__all__ = ["WORKER", "Challenger", "Proposer", "Roles", "RollupsSettings", "definition", "genesis_snapshot",
           "snapshot_tuple"]


class Roles(NamedTuple):
    """The classes that play the proposer and the challenger (a test worker gives faulty ones)."""

    proposer: type[Proposer] = Proposer
    challenger: type[Challenger] = Challenger


def _key(path: str) -> bytes:
    return bytes.fromhex(pathlib.Path(path).read_text().strip().removeprefix("0x"))


def _contracts_doc(path: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(pathlib.Path(path).read_text())
    return doc


def step_proof(machine: Machine, target: int) -> bytes:
    """The one-step proof of the step ``machine`` (trace mode) is about to take."""
    from ._witness import step_proof as prove  # the witness builder pulls in the tree proofs

    return prove(machine, target)


def _sequencer_block_hash(ctx: WorkerContext, address_: str) -> SequencerBlockHash:
    """GetBlock on the sequencer, through the "sequencer" call policy (deadline, retry, breaker)."""
    stub = sequencer_pb2_grpc.SequencerServiceStub(ctx.channel(address_))
    policy = CallPolicy.for_target("sequencer")

    async def block_hash(number: int) -> bytes | None:
        try:
            reply = await call_unary(policy, stub.GetBlock, sequencer_pb2.GetBlockRequest(number=number),
                                     deadline_s=5.0)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return bytes.fromhex(reply.block.hash.removeprefix("0x"))

    return block_hash


async def _register(ctx: WorkerContext, roles: Roles) -> None:
    settings = RollupsSettings.from_mapping(ctx.config.settings)
    genesis = load_genesis(settings.genesis_file) if settings.genesis_file else devnet_genesis(settings.chain_id)
    rpc, contracts = settings.l1.get("rpc", ""), settings.l1.get("contracts", "")
    named = _contracts_doc(contracts)["contracts"] if rpc and contracts else {}
    if "OutputRegistry" not in named:
        # Like a sequencer without a batcher: up and healthy, saying why it cannot do its job.
        ctx.logger.warning("no output registry configured (l1.rpc, l1.contracts): no proposer, no challenger")
        rollups_pb2_grpc.add_RollupsServiceServicer_to_server(RollupsServicer(None, 0, settings.poll_interval_s),
                                                              ctx.server)
        return
    doc = _contracts_doc(contracts)
    client = L1Client(rpc)
    registry = Registry(client, address(named["OutputRegistry"]))
    rules = settings.rules(int(doc.get("rollups", {}).get("sequencer_window", DEFAULT_SEQUENCER_WINDOW)))
    inbox = Contract(Artifact.load("BatchInbox"), address(named["BatchInbox"]))
    portal = Contract(Artifact.load("DepositPortal"), address(named["DepositPortal"]))
    from_block = int(doc["block_number"])

    pool = ctx.state["pool"] = ThreadPoolExecutor(settings.derive_threads, thread_name_prefix="derive")

    def derived_chain() -> DerivedChain:  # one per role: each syncs at its own pace
        return DerivedChain(client, inbox, portal, genesis, rules, from_block, settings.confirmation_depth, pool)

    proposer_sender = None
    if settings.propose:
        key_file = settings.proposer_key_file or settings.l1.get("proposer_key_file", "")
        proposer_sender = await TxSender.create(client, LocalSigner(_key(key_file)))
        check = _sequencer_block_hash(ctx, settings.sequencer) if settings.sequencer else None
        ctx.state["proposer"] = roles.proposer(derived_chain(), registry, proposer_sender, settings, check)
    if settings.challenge or proposer_sender is not None:  # a proposer must defend its outputs
        key_file = settings.challenger_key_file or settings.l1.get("challenger_key_file", "")
        sender = await TxSender.create(client, LocalSigner(_key(key_file))) if settings.challenge else \
            proposer_sender
        assert sender is not None
        ctx.state["challenger"] = roles.challenger(derived_chain(), registry, sender, settings, step_proof,
                                                   defender=proposer_sender)
    ctx.state["l1"] = client
    ctx.logger.info("rollups ready", extra={"registry": named["OutputRegistry"], "propose": settings.propose,
                                            "challenge": settings.challenge})
    servicer = RollupsServicer(registry, from_block, settings.poll_interval_s)
    rollups_pb2_grpc.add_RollupsServiceServicer_to_server(servicer, ctx.server)


def _tasks(ctx: WorkerContext) -> list[ChildSpec]:
    children = []
    proposer: Proposer | None = ctx.state.get("proposer")
    if proposer is not None:
        children.append(ChildSpec(id="proposer", start=task(proposer.run)))
    challenger: Challenger | None = ctx.state.get("challenger")
    if challenger is not None:
        children.append(ChildSpec(id="challenger", start=task(challenger.run)))
    return children


async def _on_stop(ctx: WorkerContext) -> None:
    pool: ThreadPoolExecutor | None = ctx.state.get("pool")
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    client: L1Client | None = ctx.state.get("l1")
    if client is not None:
        await client.aclose()


def definition(roles: Roles | None = None) -> WorkerDefinition:
    """The rollups worker, its roles played by ``roles`` (default: the honest Proposer and Challenger)."""
    return WorkerDefinition(name="rollups", register=functools.partial(_register, roles=roles or Roles()), tasks=_tasks,
                            on_stop=_on_stop)


WORKER = definition()
