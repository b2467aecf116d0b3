"""The sequencer service: signed transactions in, ordered durable blocks out.

Read in this order: ``_tx`` (decoding, where a transaction is validated statelessly),
``_mempool`` (pool rules and ordering), ``_intake`` (acceptance: pool, durability, ack) and
``_pending_log`` (what is acknowledged and not yet sealed), ``_execution`` (the state
transition), ``_chain`` (block production), ``_store`` (blocks, receipts, the account
snapshot), ``_service`` (the gRPC API). ``WORKER`` is what the worker runtime runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import pathlib
import time
from typing import Any

from protocol import State, devnet_genesis, load_genesis
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc
from services.l1 import Artifact, Contract, FollowerConfig, L1Client, LocalSigner, TxSender, address
from services.runtime import WorkerContext, WorkerDefinition
from supervisor import ChildSpec, TaskStatus, task

from ._batcher import Batcher, BatcherSettings, block_room
from ._chain import Chain
from ._intake import Intake
from ._mempool import Mempool
from ._ordering import FCFS, FeePriority
from ._pending_log import PendingLog
from ._service import SequencerServicer
from ._settings import L1Settings, SequencerSettings
from ._store import SequencerStore

__all__ = ["WORKER", "SequencerSettings"]


async def _register(ctx: WorkerContext) -> None:
    settings = SequencerSettings.from_mapping(ctx.config.settings)
    genesis = load_genesis(settings.genesis_file) if settings.genesis_file else devnet_genesis(settings.chain_id)
    if genesis.chain_id != settings.chain_id:
        raise ValueError(f"genesis chain id {genesis.chain_id} != configured chain id {settings.chain_id}")
    store = SequencerStore(ctx.storage.connection, ctx.storage.path)
    policy = FCFS() if settings.ordering == "fcfs" else FeePriority()
    pool_config = settings.mempool_config()

    def new_pool(state: State, base_fee: int) -> Mempool:
        return Mempool(pool_config, policy=policy, base_fee=base_fee, account_state=state.get)

    chain = Chain(store, genesis, new_pool, max_block_txs=settings.max_block_txs)
    await chain.open()
    log = PendingLog(PendingLog.beside(ctx.storage.path))
    intake = Intake(store, log, settings.chain_id, lambda: chain.mempool, block_txs=settings.max_block_txs,
                    decode_threads=settings.decode_threads)
    chain.origins = intake.accepted_in.get
    chain.on_sealed = intake.sealed
    chain.on_dropped = intake.record_drops
    chain.on_repool = intake.repool
    restored = await intake.restore()
    ctx.logger.info("chain opened", extra={"head": chain.head.number, "pending": len(chain.mempool),
                                           "dropped_on_restore": len(restored)})
    ctx.state.update(chain=chain, intake=intake, store=store, settings=settings)
    l1 = settings.l1_settings()
    if l1.enabled:
        ctx.state["batcher"] = await _batcher(ctx, l1, store, chain)
        chain.block_room = functools.partial(block_room, l1.max_batch_data)
    else:
        ctx.logger.warning("no L1 batcher configured: blocks are sealed but never posted (no SAFE/FINALIZED)")
    servicer = SequencerServicer(chain, intake, store, settings.chain_id, settings.max_batch)
    sequencer_pb2_grpc.add_SequencerServiceServicer_to_server(servicer, ctx.server)
    # Everything alive now (imported modules, the loaded chain: ~180k objects) lives as long as
    # the process: out of the cyclic collector's sight. Otherwise every full collection under
    # load walks all of it again, holding the GIL (in-process, 100k transfers: 13.8 -> 0.4 us a
    # transaction spent in full collections).
    gc.freeze()


def _l1_files(l1: L1Settings) -> tuple[dict[str, Any], bytes]:
    """contracts.json and the batcher key (read once, at start)."""
    doc: dict[str, Any] = json.loads(pathlib.Path(l1.contracts).read_text())
    key = bytes.fromhex(pathlib.Path(l1.batcher_key_file).read_text().strip().removeprefix("0x"))
    return doc, key


async def _batcher(ctx: WorkerContext, l1: L1Settings, store: SequencerStore, chain: Chain) -> Batcher:
    doc, key = _l1_files(l1)
    client = L1Client(l1.rpc)
    ctx.state["l1"] = client
    sender = await TxSender.create(client, LocalSigner(key))
    inbox = Contract(Artifact.load("BatchInbox"), address(doc["contracts"]["BatchInbox"]))
    portal = Contract(Artifact.load("DepositPortal"), address(doc["contracts"]["DepositPortal"]))
    follower = FollowerConfig(confirmation_depth=l1.confirmation_depth, poll_interval_s=l1.poll_interval_s)
    settings = BatcherSettings(interval_s=l1.batch_interval_s, max_bytes=l1.batch_max_bytes)
    ctx.logger.info("batcher ready", extra={"inbox": doc["contracts"]["BatchInbox"], "l1": l1.rpc,
                                            "batcher": "0x" + sender.address.hex()})
    return Batcher(store, chain, client, sender, inbox, portal, settings, follower, int(doc["block_number"]))


def _tasks(ctx: WorkerContext) -> list[ChildSpec]:
    chain: Chain = ctx.state["chain"]
    settings: SequencerSettings = ctx.state["settings"]

    intake: Intake = ctx.state["intake"]

    async def produce_blocks(task_status: TaskStatus) -> None:
        """Seal every block_time while something is pending, or at once when a block's worth is."""
        task_status.started()
        while True:
            started = asyncio.get_running_loop().time()
            await chain.seal()
            await chain.expire(time.monotonic())
            elapsed = asyncio.get_running_loop().time() - started
            intake.block_full.clear()
            if len(chain.mempool) < settings.max_block_txs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(intake.block_full.wait(), max(0.0, settings.block_time_s - elapsed))

    children = [ChildSpec(id="block-producer", start=task(produce_blocks))]
    batcher: Batcher | None = ctx.state.get("batcher")
    if batcher is not None:
        children += [ChildSpec(id="batch-poster", start=task(batcher.run_poster)),
                     ChildSpec(id="inbox-follower", start=task(batcher.run_follower))]
    return children


async def _on_stop(ctx: WorkerContext) -> None:
    intake: Intake = ctx.state["intake"]
    await intake.close()
    store: SequencerStore = ctx.state["store"]
    store.close()
    client: L1Client | None = ctx.state.get("l1")
    if client is not None:
        await client.aclose()


WORKER = WorkerDefinition(name="sequencer", register=_register, tasks=_tasks, on_stop=_on_stop)
