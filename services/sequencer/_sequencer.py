"""The running sequencer: what its worker opens at start (store, pending log, pool, chain,
intake, and with L1 configured the batcher and its L1 client), runs (the block producer, the
batch poster and the inbox follower) and closes at stop. The worker runtime's ``Service``.

A read replica (``settings.upstream``, ``_replica``) opens the same, and runs the upstream
follower instead of the producer, and the inbox follower without a poster (no key)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import replace

from protocol import DEFAULT_SEQUENCER_WINDOW, Genesis, State
from services.l1 import (
    Deployment,
    FollowerConfig,
    L1Client,
    LocalSigner,
    SenderConfig,
    TxSender,
    checksum,
    read_key,
)
from services.runtime import Storage, redact_url
from supervisor import ChildSpec, TaskStatus, task

from ._batcher import Batcher, BatcherSettings, L1Heads, block_room
from ._chain import BlockRoom, Chain, Mempools
from ._intake import Intake
from ._mempool import Mempool
from ._ordering import FCFS, FeePriority
from ._pending_log import PendingLog
from ._producer import BlockProducer
from ._replica import Follower, Upstream, UpstreamFollower
from ._settings import L1Settings, SequencerSettings
from ._store import SequencerStore


class Sequencer:
    """Owns everything below; built by :meth:`open`."""

    def __init__(self, store: SequencerStore, chain: Chain, intake: Intake, producer: BlockProducer,
                 batcher: Batcher | None, l1: L1Client | None, not_ready: Sequence[str] = (),
                 upstream: Upstream | None = None, max_lag_blocks: int = 20) -> None:
        self.store = store
        self.chain = chain
        self.intake = intake
        self._producer = producer
        self._batcher = batcher
        self._l1 = l1
        #: Why the sequencer cannot do its whole job (no batcher although an L1 is configured).
        self.not_ready = tuple(not_ready)
        #: A read replica's upstream (sends go there) and its block follower; None on the sequencer.
        self.upstream = upstream
        self.replica = (UpstreamFollower(chain, upstream, batcher.follow if batcher is not None else None,
                                         l1.activity.notify if l1 is not None else None, max_lag_blocks)
                        if upstream is not None else None)

    @classmethod
    async def open(cls, storage: Storage, settings: SequencerSettings, genesis: Genesis,
                   logger: logging.Logger, upstream: Upstream | None = None) -> Sequencer:
        """Load the chain (or write genesis), put the pending log's transactions back in the pool,
        and with L1 configured, get the batcher ready (a replica's: ``upstream`` given, no poster)."""
        store = SequencerStore(storage.connection, storage.path)
        policy = FCFS() if settings.ordering == "fcfs" else FeePriority()
        # No block of this chain holds more gas than the genesis's limit: refuse such a transaction
        # at once (GAS_LIMIT_ABOVE_BLOCK) rather than hold it until it expires.
        pool_config = settings.mempool_config()
        pool_config = replace(pool_config, block_gas_limit=min(pool_config.block_gas_limit, genesis.gas_limit))

        def new_pool(state: State, base_fee: int) -> Mempool:
            return Mempool(pool_config, policy=policy, base_fee=base_fee, account_state=state.get)

        pools = Mempools(new_pool)
        l1 = settings.l1_settings()
        room: BlockRoom | None = functools.partial(block_room, l1.block_data) if l1.enabled else None
        log = PendingLog(PendingLog.beside(storage.path))
        intake = Intake(store, log, settings.chain_id, pools.current, block_txs=settings.max_block_txs,
                        decode_threads=settings.decode_threads, decode_nice=settings.decode_nice)
        chain = Chain(store, genesis, pools, intake if upstream is None else Follower(),
                      max_block_txs=settings.max_block_txs, block_room=room,
                      empty_block_time_s=settings.empty_block_time_s)
        await chain.open()
        restored = await intake.restore()
        logger.info("chain opened", extra={"head": chain.head.number, "pending": len(chain.mempool),
                                           "dropped_on_restore": len(restored)})
        producer = BlockProducer(chain, intake, max_block_txs=settings.max_block_txs,
                                 block_time_s=settings.block_time_s)
        replica = upstream is not None
        missing = l1.missing(posts=not replica)
        if replica and not l1.rpc:  # its deposits, forced transactions and SAFE come from L1
            missing = ["l1.rpc is not set: a read replica follows derivation from L1 and needs it"]
        if missing or not l1.rpc:
            logger.warning("no L1 batcher: blocks are sealed but never posted (no SAFE/FINALIZED)",
                           extra={"missing": missing})
            return cls(store, chain, intake, producer, None, None, missing, upstream, settings.max_lag_blocks)
        client = L1Client(l1.rpc)
        try:
            batcher = await _batcher(logger, l1, client, store, chain, posts=not replica)
        except BaseException:
            await cls(store, chain, intake, producer, None, client).aclose()  # L1 unreachable, a bad key...
            raise
        if replica:
            logger.info("read replica: following the upstream sequencer", extra={"upstream": settings.upstream})
        return cls(store, chain, intake, producer, batcher, client, upstream=upstream,
                   max_lag_blocks=settings.max_lag_blocks)

    async def l1_heads(self) -> L1Heads | None:
        """Where this node's reading of L1 stands (``Batcher.l1_heads``); None without an L1."""
        return await self._batcher.l1_heads() if self._batcher is not None else None

    def tasks(self) -> Sequence[ChildSpec]:
        if self.replica is not None:  # no blocks of its own, no batches: the upstream's, checked
            children = [ChildSpec(id="upstream-follower", start=task(self.replica.run)),
                        ChildSpec(id="upstream-head", start=task(self.replica.watch_head))]
            if self._batcher is not None:
                children.append(ChildSpec(id="inbox-follower", start=task(self._batcher.run_follower)))
            return children
        children = [ChildSpec(id="block-producer", start=task(self._produce))]
        if self._batcher is not None:
            children += [ChildSpec(id="batch-poster", start=task(self._batcher.run_poster)),
                         ChildSpec(id="inbox-follower", start=task(self._batcher.run_follower))]
        return children

    async def _produce(self) -> None:
        # No task_status: started at once, run from the loop's next turn (supervisor._task), so the
        # origin below runs after SERVING. (Awaiting a started() inside the task tree's start let its
        # first L1 request run there: ~3 ms of CPU on a restart's way to SERVING.)
        if self._batcher is not None:
            # Before any block is sealed: the inbox checks every block's origin (its L1 round trips
            # only while the chain has none: a no-op once a block has one).
            await self._batcher.attest_origin()
        await self._producer.run(TaskStatus())

    async def aclose(self) -> None:
        await self.intake.close()
        self.store.close()
        if self._l1 is not None:
            await self._l1.aclose()


async def _batcher(logger: logging.Logger, l1: L1Settings, client: L1Client, store: SequencerStore,
                   chain: Chain, *, posts: bool = True) -> Batcher:
    deployment = Deployment.load(l1.contracts)
    inbox, portal = deployment.contract("BatchInbox"), deployment.contract("DepositPortal")
    # Its chain id is asked at its first batch, after SERVING: nothing here waits for L1.
    sender = (TxSender(client, LocalSigner(read_key(l1.batcher_key_file)), None,
                       SenderConfig(max_gas=l1.max_tx_gas, blob_cell_proofs=l1.blob_cell_proofs))
              if posts else None)
    follower = FollowerConfig(confirmation_depth=l1.confirmation_depth, poll_interval_s=l1.poll_interval_s,
                              idle_poll_s=l1.idle_poll_for(None))

    async def idle_poll() -> float:
        return l1.idle_poll_for(await _block_time(client))

    settings = BatcherSettings(interval_s=l1.batch_interval_s, max_bytes=l1.batch_max_bytes,
                               max_in_flight=l1.max_in_flight, max_frame_bytes=l1.frame_bytes,
                               batch_data=l1.batch_data, max_blobs=l1.max_blobs)
    logger.info("batcher ready", extra={"inbox": checksum(inbox.address or b""), "l1": redact_url(l1.rpc),
                                        "batcher": "0x" + sender.address.hex() if sender else "none (replica)"})
    window = int(deployment.rollups.get("sequencer_window", DEFAULT_SEQUENCER_WINDOW))
    batcher = Batcher(store, chain, client, sender, inbox, portal, settings, follower, deployment.block_number,
                      window, idle_poll=None if l1.idle_poll_s else idle_poll)
    return batcher


#: L1 blocks the block time is measured over.
_BLOCK_TIME_SPAN = 16


async def _block_time(client: L1Client) -> float | None:
    """L1's mean block time over its last blocks (seconds), from their timestamps; None while it
    has too few blocks, or mines them within the same second (an L1 mining on demand)."""
    head = await client.block_number()
    span = min(_BLOCK_TIME_SPAN, head)
    if span < 2:
        return None
    newest, oldest = await client.get_blocks([head, head - span])
    if newest is None or oldest is None or newest.timestamp <= oldest.timestamp:
        return None
    return (newest.timestamp - oldest.timestamp) / span
