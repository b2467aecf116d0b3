"""The bridge service: ETH crossing between L1 and L2, followed across both layers.

Read in this order: ``_records`` (what a deposit's and a withdrawal's life is), ``_store`` (the
records and the events of their changes, in SQLite), ``_deposits`` (DepositPortal's deposits,
reorg-aware, to their credit on L2), ``_withdrawals`` (L2->L1 messages to their finalization on
L1), ``_proofs`` (which output a withdrawal is proven against, and the proof, checked against
this node's chain), ``_calls`` (the portal's withdrawal calldata), ``_relayer`` and ``_outbox``
(proving and finalizing for the served addresses, exactly once), ``_clients`` (the sequencer and
the rollups worker), ``_spans`` (one trace per crossing), ``_bridge`` (what the worker opens, runs
and closes), ``_service`` (the gRPC API). On L1: contracts/DepositPortal.sol.
``WORKER`` is what the worker runtime runs.
"""

from __future__ import annotations

from protos.l2node.bridge.v1 import bridge_pb2_grpc
from services.runtime import Service, WorkerContext, WorkerDefinition

from ._bridge import Bridge
from ._calls import finalize_calldata, prove_calldata, root_proof_tuple, withdrawal_tuple
from ._records import (
    DepositRecord,
    DepositStatus,
    OutputRootProof,
    WithdrawalOutcome,
    WithdrawalProof,
    WithdrawalRecord,
    WithdrawalStatus,
)
from ._service import BridgeServicer
from ._settings import BridgeSettings
from ._store import BridgeStore

__all__ = ["WORKER", "Bridge", "BridgeSettings", "DepositRecord", "DepositStatus", "OutputRootProof",
           "WithdrawalOutcome", "WithdrawalProof", "WithdrawalRecord", "WithdrawalStatus", "definition",
           "finalize_calldata", "prove_calldata", "root_proof_tuple", "withdrawal_tuple"]


async def _register(ctx: WorkerContext) -> Service:
    settings = BridgeSettings.from_mapping(ctx.config.settings)
    store = BridgeStore(ctx.storage)
    bridge = await Bridge.open(settings, store, ctx.logger, ctx.tracer, ctx.channel, ctx.config.data_dir)
    for reason in settings.missing():
        ctx.not_ready(reason)
    servicer = BridgeServicer(store, bridge.withdrawals, bridge.portal, bridge.wake_l1)
    bridge_pb2_grpc.add_BridgeServiceServicer_to_server(servicer, ctx.server)
    return bridge


def definition() -> WorkerDefinition:
    """The bridge worker."""
    return WorkerDefinition(name="bridge", register=_register)


WORKER = definition()
