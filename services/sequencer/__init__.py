"""The sequencer service: signed transactions in, ordered durable blocks out.

Read in this order: ``_tx`` (decoding, where a transaction is validated statelessly),
``_mempool`` (pool rules and ordering), ``_intake`` (acceptance: pool, durability, ack),
``_execution`` (the state transition), ``_chain`` (block production), ``_store`` (what is
durable), ``_service`` (the gRPC API). ``WORKER`` is what the worker runtime runs.
"""

from __future__ import annotations

import asyncio
import time

from l2node.sequencer.v1 import sequencer_pb2_grpc
from services.runtime import WorkerContext, WorkerDefinition
from supervisor import ChildSpec, TaskStatus, task

from ._chain import Chain
from ._execution import State
from ._genesis import devnet_genesis, load_genesis
from ._intake import Intake
from ._mempool import AccountState, Mempool
from ._ordering import FCFS, FeePriority
from ._service import SequencerServicer
from ._settings import SequencerSettings
from ._store import SequencerStore

__all__ = ["WORKER", "SequencerSettings"]


async def _register(ctx: WorkerContext) -> None:
    settings = SequencerSettings.from_mapping(ctx.config.settings)
    genesis = load_genesis(settings.genesis) if settings.genesis else devnet_genesis(settings.chain_id)
    if genesis.chain_id != settings.chain_id:
        raise ValueError(f"genesis chain id {genesis.chain_id} != configured chain id {settings.chain_id}")
    store = SequencerStore(ctx.storage.connection, ctx.storage.path)
    policy = FCFS() if settings.ordering == "fcfs" else FeePriority()
    pool_config = settings.mempool_config()

    def new_pool(state: State, base_fee: int) -> Mempool:
        return Mempool(pool_config, policy=policy, base_fee=base_fee,
                       account_state=lambda address: AccountState(*state.get(address)))

    chain = Chain(store, genesis, new_pool, max_block_txs=settings.max_block_txs)
    await chain.open()
    intake = Intake(store, settings.chain_id, lambda: chain.mempool)
    restored = await intake.restore()
    ctx.logger.info("chain opened", extra={"head": chain.head.number, "pending": len(chain.mempool),
                                           "dropped_on_restore": len(restored)})
    ctx.state.update(chain=chain, intake=intake, store=store, settings=settings)
    servicer = SequencerServicer(chain, intake, store, settings.chain_id, settings.max_batch)
    sequencer_pb2_grpc.add_SequencerServiceServicer_to_server(servicer, ctx.server)


def _tasks(ctx: WorkerContext) -> list[ChildSpec]:
    chain: Chain = ctx.state["chain"]
    settings: SequencerSettings = ctx.state["settings"]

    async def produce_blocks(task_status: TaskStatus) -> None:
        """Seal whenever something is pending, at most one block per block_time."""
        task_status.started()
        while True:
            started = asyncio.get_running_loop().time()
            await chain.seal()
            await chain.expire(time.monotonic())
            elapsed = asyncio.get_running_loop().time() - started
            await asyncio.sleep(max(0.0, settings.block_time_s - elapsed))

    return [ChildSpec(id="block-producer", start=task(produce_blocks))]


async def _on_stop(ctx: WorkerContext) -> None:
    intake: Intake = ctx.state["intake"]
    await intake.close()
    store: SequencerStore = ctx.state["store"]
    store.close()


WORKER = WorkerDefinition(name="sequencer", register=_register, tasks=_tasks, on_stop=_on_stop)
