"""The running rollups service: what its worker opens at start (the L1 client, the derivation
thread pool, the proposer and the challenger with their derived chains), runs (their loops) and
closes at stop. The worker runtime's ``Service``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import grpc

from protocol import DEFAULT_SEQUENCER_WINDOW, Genesis, check_deployed, keccak256
from protos.l2node.sequencer.v1 import sequencer_pb2, sequencer_pb2_grpc
from services.l1 import Deployment, L1Client, LocalSigner, TxSender, checksum, read_key
from services.runtime import CallPolicy, Storage, call_unary
from supervisor import ChildSpec, task

from ._challenger import Challenger
from ._checkpoints import CheckpointStore
from ._contracts import Registry
from ._machine import Machine, Rules
from ._priority import lower_priority
from ._proposer import Proposer, SequencerBlockHash
from ._settings import RollupsSettings
from ._trace import DerivedChain

#: A traced, shared channel to an address (``WorkerContext.channel``).
ChannelFn = Callable[[str], grpc.aio.Channel]


def step_proof(machine: Machine, target: int) -> bytes:
    """The one-step proof of the step ``machine`` (trace mode) is about to take."""
    from ._witness import step_proof as prove  # the witness builder pulls in the tree proofs

    return prove(machine, target)


def _sequencer_block_hash(channel: grpc.aio.Channel) -> SequencerBlockHash:
    """GetBlock on the sequencer, through the "sequencer" call policy (deadline, retry, breaker)."""
    stub = sequencer_pb2_grpc.SequencerServiceStub(channel)
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


def _identity(deployment: Deployment, genesis: Genesis, rules: Rules) -> bytes:
    """What checkpoints are valid for: the inbox and the portal, where they were deployed, the
    genesis block and the derivation rules."""
    parts = (deployment.address_of("BatchInbox"), deployment.address_of("DepositPortal"),
             deployment.block_number.to_bytes(32, "big"), repr(genesis).encode(),
             rules.chain_id.to_bytes(32, "big"), rules.sequencer_window.to_bytes(32, "big"))
    return keccak256(b"".join(parts))


class Roles(NamedTuple):
    """The classes that play the proposer and the challenger (a test worker gives faulty ones)."""

    proposer: type[Proposer] = Proposer
    challenger: type[Challenger] = Challenger


class Rollups:
    """Owns everything below; built by :meth:`open`. Without an output registry configured it
    owns nothing and runs nothing (``registry`` is None)."""

    def __init__(self, registry: Registry | None, from_block: int, l1: L1Client | None,
                 pool: ThreadPoolExecutor | None, proposer: Proposer | None, challenger: Challenger | None,
                 not_ready: Sequence[str] = (), store: CheckpointStore | None = None) -> None:
        #: The OutputRegistry on L1, and the L1 block it was deployed in (what the API reads).
        self.registry = registry
        self.from_block = from_block
        self._l1 = l1
        self._pool = pool
        self._proposer = proposer
        self._challenger = challenger
        self._store = store
        #: Why the roles cannot run (a file they need is missing); empty when ready.
        self.not_ready = tuple(not_ready)

    @classmethod
    async def open(cls, settings: RollupsSettings, genesis: Genesis, logger: logging.Logger,
                   channel: ChannelFn, roles: Roles, storage: Storage | None = None) -> Rollups:
        rpc, contracts = settings.l1.get("rpc", ""), settings.l1.get("contracts", "")
        missing = settings.missing()
        if missing or not rpc:
            # Up and serving what it can, saying why it cannot do its job; not ready if an L1 is
            # configured but a file its roles need is not there.
            logger.warning("no output registry or role keys: no proposer, no challenger", extra={"missing": missing})
            return cls(None, 0, None, None, None, None, missing)
        deployment = Deployment.load(contracts)
        client = L1Client(rpc)
        registry = Registry(client, deployment.address_of("OutputRegistry"))
        rules = settings.rules(int(deployment.rollups.get("sequencer_window", DEFAULT_SEQUENCER_WINDOW)))
        inbox, portal = deployment.contract("BatchInbox"), deployment.contract("DepositPortal")
        from_block = deployment.block_number

        lower_priority(settings.nice)  # before the pool: its threads inherit it
        # Sender recovery runs in libsecp256k1 without the GIL: one thread per CPU by default.
        pool = ThreadPoolExecutor(settings.derive_threads, thread_name_prefix="derive")
        # One derivation for both roles (each sync reads L1 and derives for both), resumed from the
        # checkpoints in the worker's database at its first sync (after SERVING: see _checkpoints).
        store = None if storage is None else CheckpointStore(storage, _identity(deployment, genesis, rules))
        chain = DerivedChain(client, inbox, portal, genesis, rules, from_block, settings.confirmation_depth, pool,
                             store=store, checkpoint_interval_s=settings.checkpoint_interval_s)

        proposer: Proposer | None = None
        challenger: Challenger | None = None
        try:
            # Refuses (off a local devnet) values unsafe on this L1 (item 7 of issue 12). The start's
            # L1 round trips (that check's, the chain id for both senders) go at once: they are on
            # the way to SERVING.
            _, chain_id = await asyncio.gather(
                check_deployed(client, registry.address, deployment.address_of("StepVerifier"),
                               genesis_origin=genesis.l1_origin_number, deploy_block=from_block,
                               confirmation_depth=settings.confirmation_depth),
                client.chain_id())
            proposer_sender = None
            if settings.propose:
                key = read_key(settings.key_file("proposer"))
                proposer_sender = TxSender(client, LocalSigner(key), chain_id)
                check = _sequencer_block_hash(channel(settings.sequencer)) if settings.sequencer else None
                proposer = roles.proposer(chain, registry, proposer_sender, settings, check)
            if settings.challenge or proposer_sender is not None:  # a proposer must defend its outputs
                sender = TxSender(client, LocalSigner(read_key(settings.key_file("challenger"))), chain_id) \
                    if settings.challenge else proposer_sender
                assert sender is not None
                challenger = roles.challenger(chain, registry, sender, settings, step_proof,
                                              defender=proposer_sender)
        except BaseException:
            await cls(registry, from_block, client, pool, None, None, store=store).aclose()  # L1 unreachable...
            raise
        logger.info("rollups ready", extra={"registry": checksum(registry.address), "propose": settings.propose,
                                            "challenge": settings.challenge})
        return cls(registry, from_block, client, pool, proposer, challenger, store=store)

    def tasks(self) -> Sequence[ChildSpec]:
        children = []
        if self._proposer is not None:
            children.append(ChildSpec(id="proposer", start=task(self._proposer.run)))
        if self._challenger is not None:
            children.append(ChildSpec(id="challenger", start=task(self._challenger.run)))
        return children

    async def aclose(self) -> None:
        # The proposer and the challenger hold nothing of their own: their loops stopped with the
        # task tree; what they used (the pool, the L1 client) closes here.
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._l1 is not None:
            await self._l1.aclose()
        if self._store is not None:
            self._store.close()
