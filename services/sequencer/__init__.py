"""The sequencer service: signed transactions in, ordered durable blocks out.

Read in this order: ``_mempool`` (pool rules and ordering), ``_intake`` (where a decoded transaction is
accepted: pool, durability, ack) and ``_pending_log`` (what is acknowledged and
not yet sealed), ``_chain`` (where a block is built), ``_producer`` (when blocks are sealed),
``_store`` (blocks, receipts, the account snapshot), ``_batcher`` (batches to L1 and their L1
fate), ``_follow`` (the chain follows derivation when the sequencer window lapsed),
``_sequencer`` (what the worker opens, runs and closes), ``_service`` (the gRPC API).
The rules themselves (decoding, the state transition: ``protocol._tx``, ``protocol._execution``)
are the ``protocol`` package's.
``WORKER`` is what the worker runtime runs.
"""

from __future__ import annotations

import gc

from protocol import devnet_genesis, load_genesis
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc
from services.runtime import Service, WorkerContext, WorkerDefinition, collect_young_rarely

from ._replica import Upstream
from ._sequencer import Sequencer
from ._service import SequencerServicer
from ._settings import SequencerSettings

__all__ = ["WORKER", "SequencerSettings"]


async def _register(ctx: WorkerContext) -> Service:
    settings = SequencerSettings.from_mapping(ctx.config.settings)
    genesis = load_genesis(settings.genesis_file) if settings.genesis_file else devnet_genesis(settings.chain_id)
    if genesis.chain_id != settings.chain_id:
        raise ValueError(f"genesis chain id {genesis.chain_id} != configured chain id {settings.chain_id}")
    # A read replica (``settings.upstream``): follows that sequencer, seals nothing itself (_replica).
    upstream = Upstream(ctx.channel(settings.upstream), settings.upstream) if settings.upstream else None
    sequencer = await Sequencer.open(ctx.storage, settings, genesis, ctx.logger, upstream)
    for reason in sequencer.not_ready:
        ctx.not_ready(reason)
    if sequencer.replica is not None:
        ctx.not_ready_while(sequencer.replica.lagging)
    servicer = SequencerServicer(sequencer.chain, sequencer.intake, sequencer.store, settings.chain_id,
                                 settings.max_batch, upstream, sequencer.l1_heads)
    sequencer_pb2_grpc.add_SequencerServiceServicer_to_server(servicer, ctx.server)
    # Everything alive now (imported modules, the loaded chain: ~180k objects) lives as long as
    # the process: out of the cyclic collector's sight. Otherwise every full collection under
    # load walks all of it again, holding the GIL (in-process, 100k transfers: 13.8 -> 0.4 us a
    # transaction spent in full collections).
    gc.freeze()
    collect_young_rarely()  # (why: services.runtime._gc)
    return sequencer


WORKER = WorkerDefinition(name="sequencer", register=_register)
