"""The bridge's spans: one per status change of a deposit or a withdrawal, in the trace of the
call that started the crossing when the record holds that call's traceparent (a deposit's from
TrackDeposit, a withdrawal's from the sequencer's ListMessages), else a new root. So one crossing
is one trace: the user's call, its L2 block, the L1 prove and the finalize. Polls that find
nothing make none (the loops poll under ``quiet``; these spans start from an explicit context)."""

from __future__ import annotations

from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from ._records import DepositRecord, DepositStatus, WithdrawalRecord, WithdrawalStatus

DEPOSIT_SPANS: Final = {DepositStatus.SEEN: "bridge.deposit.seen", DepositStatus.CONFIRMED: "bridge.deposit.confirmed",
                        DepositStatus.CREDITED: "bridge.deposit.credited",
                        DepositStatus.REORGED: "bridge.deposit.reorged"}
WITHDRAWAL_SPANS: Final = {WithdrawalStatus.INITIATED: "bridge.withdrawal.initiated",
                           WithdrawalStatus.IN_OUTPUT: "bridge.withdrawal.in_output",
                           WithdrawalStatus.PROVEN: "bridge.withdrawal.proven",
                           WithdrawalStatus.READY: "bridge.withdrawal.ready",
                           WithdrawalStatus.FINALIZED: "bridge.withdrawal.finalized"}


def parent_of(traceparent: str) -> otel_context.Context:
    """The context a span joins: the stored traceparent's trace, else none (a new root)."""
    if not traceparent:
        return otel_context.Context()
    return propagate.extract({"traceparent": traceparent}, context=otel_context.Context())


def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" outside a recorded one)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def record_change(tracer: trace.Tracer, record: DepositRecord | WithdrawalRecord, **attributes: Any) -> None:
    """A span for ``record``'s new status, parented on its stored trace."""
    if isinstance(record, DepositRecord):
        name = DEPOSIT_SPANS[record.status]
        attrs: dict[str, Any] = {"l2.deposit.hash": "0x" + record.deposit_hash.hex(),
                                 "l1.tx.hash": "0x" + record.l1_tx_hash.hex(), "l1.block": record.l1_block}
        if record.l2_block is not None:
            attrs["l2.block"] = record.l2_block
    else:
        name = WITHDRAWAL_SPANS[record.status]
        attrs = {"l2.withdrawal.hash": "0x" + record.withdrawal_hash.hex(), "l2.block": record.l2_block}
        if record.output_index is not None:
            attrs["l2.output.index"] = record.output_index
        l1_tx = record.finalized_l1_tx_hash or record.proven_l1_tx_hash
        if l1_tx and record.status in (WithdrawalStatus.PROVEN, WithdrawalStatus.FINALIZED):
            attrs["l1.tx.hash"] = "0x" + l1_tx.hex()
    attrs.update({k: v for k, v in attributes.items() if v is not None})
    span = tracer.start_span(name, context=parent_of(record.traceparent), attributes=attrs)
    span.end()
