"""The bridge's records: what crosses module boundaries inside the worker (and what its store
holds). Frozen; ``dataclasses.replace`` makes the next version of one.

Statuses are the proto's enum values (``l2node.bridge.v1``), kept as ints so storage, service
and relayer share one vocabulary without importing protobuf types into every module.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol import WithdrawalMessage


class DepositStatus(IntEnum):
    """``l2node.bridge.v1.DepositStatus``."""

    SEEN = 1
    CONFIRMED = 2
    CREDITED = 3
    REORGED = 4


class WithdrawalStatus(IntEnum):
    """``l2node.bridge.v1.WithdrawalStatus``."""

    INITIATED = 1
    IN_OUTPUT = 2
    PROVEN = 3
    READY = 4
    FINALIZED = 5


class WithdrawalOutcome(IntEnum):
    """``l2node.bridge.v1.WithdrawalOutcome`` (0: not finalized)."""

    NONE = 0
    SUCCEEDED = 1
    FAILED = 2
    REFUNDED = 3


@dataclass(frozen=True, slots=True)
class DepositRecord:
    """One deposit's life: seen on L1, at depth, minted on L2."""

    deposit_hash: bytes  # its L2 transaction hash (protocol.Deposit.hash())
    source_hash: bytes
    portal_index: int
    sender: bytes  # `from` on L1
    to: bytes
    value: int
    status: DepositStatus
    l1_block: int
    l1_block_hash: bytes
    l1_tx_hash: bytes
    confirmed_at_l1_block: int  # l1_block + depth
    l2_block: int | None = None
    updated_at: int = 0
    traceparent: str = ""  # the trace a client handed over (TrackDeposit), else ""


@dataclass(frozen=True, slots=True)
class WithdrawalRecord:
    """One withdrawal's life, from its L2 block to its finalization on L1."""

    message: WithdrawalMessage
    withdrawal_hash: bytes  # message.hash()
    status: WithdrawalStatus
    l2_block: int
    l2_tx_hash: bytes
    output_index: int | None = None
    proven_l1_tx_hash: bytes = b""
    prover: bytes = b""
    proven_at: int = 0
    matures_at: int = 0
    finalized_l1_tx_hash: bytes = b""
    outcome: WithdrawalOutcome = WithdrawalOutcome.NONE
    updated_at: int = 0
    traceparent: str = ""  # the sending call's, from the sequencer, else ""


@dataclass(frozen=True, slots=True)
class OutputRootProof:
    """The preimage of an output root (protocol.output_root)."""

    version: bytes
    state_root: bytes
    message_passer_root: bytes
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class WithdrawalProof:
    """What proveWithdrawal takes besides the withdrawal: the output and the inclusion path."""

    withdrawal: WithdrawalRecord
    output_index: int
    output_root: bytes
    output_l2_block: int
    output_status: str  # PROPOSED, CHALLENGED or FINALIZED
    root_proof: OutputRootProof
    index: int  # the message's slot (== its nonce)
    count: int  # messages in the output's tree
    siblings: tuple[bytes, ...]  # 48
