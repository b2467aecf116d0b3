"""The channels service: payment channels between l2node nodes, value locked in the
ChannelAdjudicator on L1, moved by states both participants sign (protocol's channel rules, C1..,
who may propose what, P0-P6, and chains of HTLC changes, P7).

Read in this order: ``_records`` (a channel, its states, invoices, forwards, payments, events),
``_store`` (SQLite: a state durable before its signature leaves, never two states at one
sequence; a forward's or payment's status committed with the state that moves it), ``_rules``
(the door to protocol's channel rules and signatures), ``_peer`` (signed PeerService messages,
the client and its call policy per peer), ``_proposal`` (what an update carries beside its
state), ``_updates`` (**where an update is proposed, checked, counter-signed and stored**, both
sides: U1-U5), ``_channels`` (open, direct payments, close, the L1 watcher),
``_payments`` (**where an HTLC is offered, forwarded, settled and failed**: H1-H8), ``_routing``
(announcements and the cheapest route: R1-R10), ``_gossip`` (the graph's upkeep), ``_enforce``
(**where an HTLC is enforced on L1** when a peer withholds its answer: E1-E4), ``_tower`` (the
watchtower: T1-T8), ``_tower_host`` (the tower this worker hosts, and TowerService), ``_appoint``
(this node handing its newest states to another node's tower), ``_adjudicator`` (this node's L1
calls), ``_wire`` (proto shapes), ``_service`` (the gRPC APIs). On L1:
contracts/ChannelAdjudicator.sol (A1-A17). ``WORKER`` is what the worker runtime runs.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

from protos.l2node.channels.v1 import channels_pb2_grpc
from services.runtime import Service, WorkerContext, WorkerDefinition, collect_young_rarely
from supervisor import ChildSpec

from ._appoint import Appointer
from ._channels import Channels
from ._peer import seal, sender_of
from ._records import ChannelRecord, ChannelStatus, InvoiceRecord, InvoiceStatus, StateRecord
from ._rules import Rules
from ._service import ChannelsServicer, PeerServicer
from ._settings import ChannelsSettings
from ._store import ChannelsStore, SequenceTaken
from ._tower_host import HostedTower, TowerServicer
from ._wire import change_pb, state_of_pb, state_pb

__all__ = [
    "WORKER",
    "ChannelRecord",
    "ChannelStatus",
    "Channels",
    "ChannelsSettings",
    "ChannelsStore",
    "InvoiceRecord",
    "InvoiceStatus",
    "Rules",
    "SequenceTaken",
    "StateRecord",
    "change_pb",
    "definition",
    "seal",
    "sender_of",
    "state_of_pb",
    "state_pb",
]


class _Worker:
    """The worker's Service: the channels, the tower it hosts, the appointer of its own states."""

    def __init__(self, channels: Channels, tower: HostedTower | None, appointer: Appointer | None) -> None:
        self.channels, self.tower, self.appointer = channels, tower, appointer

    def tasks(self) -> Sequence[ChildSpec]:
        return [*self.channels.tasks(), *(self.tower.tasks() if self.tower else ()),
                *(self.appointer.tasks() if self.appointer else ())]

    async def aclose(self) -> None:
        if self.tower is not None:
            self.tower.close()
        await self.channels.aclose()


async def _register(ctx: WorkerContext) -> Service:
    settings = ChannelsSettings.from_mapping(ctx.config.settings)
    ctx.storage.sync_in_groups()  # commits fsync'd in groups: what leaves awaits store.durable()
    store = ChannelsStore(ctx.storage)
    endpoint = settings.endpoint or ctx.config.address
    channels = await Channels.open(settings, store, ctx.logger, ctx.tracer, ctx.channel, endpoint)
    for reason in settings.missing():
        ctx.not_ready(reason)
    try:
        tower = HostedTower.open(settings, channels, ctx.config.database_path.with_suffix(".tower.db"), ctx.logger)
    except BaseException:
        await channels.aclose()
        raise
    appointer = None
    if settings.tower and channels.rules is not None:
        appointer = Appointer(settings, store, ctx.storage, channels.rules, ctx.channel, ctx.logger)
    elif settings.tower:
        ctx.logger.warning("tower is set, but this node has no channel key: nothing to appoint")
    channels_pb2_grpc.add_ChannelsServiceServicer_to_server(ChannelsServicer(channels), ctx.server)
    channels_pb2_grpc.add_PeerServiceServicer_to_server(PeerServicer(channels), ctx.server)
    if settings.tower_enabled:
        channels_pb2_grpc.add_TowerServiceServicer_to_server(TowerServicer(tower), ctx.server)
    # Everything alive now (imported modules, protos, OpenTelemetry, the graph) lives as long as the
    # process: out of the cyclic collector's sight, as the sequencer's. Under load a full collection
    # walked all of it again (~50 ms each, holding the loop); and a payment's records, protos and
    # futures live for a round trip or two, so most are freed by their refcount before a young
    # collection would walk them (services.runtime._gc). In the two-hop bench the collector took
    # 13% of the payer's and the hop's CPU (~70 us a payment at the hop), now ~1%.
    gc.freeze()
    collect_young_rarely()
    return _Worker(channels, tower, appointer)


def definition() -> WorkerDefinition:
    """The channels worker."""
    return WorkerDefinition(name="channels", register=_register)


WORKER = definition()
