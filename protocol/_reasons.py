"""Why a transaction or a channel update is refused or dropped: one vocabulary, and the gRPC
status each refusal maps to.

Every rule that can turn a transaction away names its reason here: the stateless decoder
(``_tx``), the state transition (``_execution``), the sequencer's pool admission and what the
pool lets go; and every rule of a payment channel's state and of who may propose it
(``_channel``'s C0-C10 and P0-P6), which reuses the decoder's FIELD_OUT_OF_RANGE,
INVALID_SIGNATURE and HIGH_S and the execution's INSUFFICIENT_FUNDS for what they already mean.
A reason's value is stable: it is the wire's ``google.rpc.ErrorInfo.reason``, a dropped
transaction's ``Receipt.drop_reason`` (stored as text) and a skipped forced transaction's note.
The gRPC status of a refusal follows from its reason, in ``_ERRORS`` only.

``contracts/L2Transaction.sol`` returns the decoder's reasons as ``uint8`` codes: those are
``L2_TRANSACTION_CODES``, written out, so that adding a reason here cannot renumber them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

import grpc

from services.runtime import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
)


class Reason(StrEnum):
    """A stable, machine-readable reason a transaction was refused or dropped."""

    # The stateless decoder (_tx.decode_transaction): the transaction can never become valid.
    OVERSIZED = "OVERSIZED"
    MALFORMED_RLP = "MALFORMED_RLP"
    TX_TYPE_NOT_SUPPORTED = "TX_TYPE_NOT_SUPPORTED"
    WRONG_CHAIN_ID = "WRONG_CHAIN_ID"
    FIELD_OUT_OF_RANGE = "FIELD_OUT_OF_RANGE"
    INVALID_ADDRESS = "INVALID_ADDRESS"
    CONTRACT_CREATION_NOT_SUPPORTED = "CONTRACT_CREATION_NOT_SUPPORTED"
    TIP_ABOVE_FEE_CAP = "TIP_ABOVE_FEE_CAP"
    GAS_LIMIT_TOO_HIGH = "GAS_LIMIT_TOO_HIGH"
    INTRINSIC_GAS_TOO_LOW = "INTRINSIC_GAS_TOO_LOW"
    MALFORMED_WITHDRAWAL = "MALFORMED_WITHDRAWAL"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    HIGH_S = "HIGH_S"
    # The state transition (_execution.apply_transaction): well-formed, but not against this state.
    #: Also the pool's, refused or dropped when a block moved the account's nonce past it.
    NONCE_TOO_LOW = "NONCE_TOO_LOW"
    NONCE_TOO_HIGH = "NONCE_TOO_HIGH"
    #: Also the pool's: the balance does not cover this and the sender's earlier pooled transactions.
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    #: Also the pool's: why a pending transaction waits, and why it is dropped after its lifetime.
    FEE_CAP_BELOW_BASE_FEE = "FEE_CAP_BELOW_BASE_FEE"
    #: The block has no room left for the transaction's gas limit: it waits for the next one.
    BLOCK_GAS_LIMIT_REACHED = "BLOCK_GAS_LIMIT_REACHED"
    #: Its gas limit is above the chain's block gas limit: no block can ever hold it (a forced one is dropped).
    GAS_LIMIT_ABOVE_BLOCK = "GAS_LIMIT_ABOVE_BLOCK"
    # The sequencer's pool admission (services.sequencer's Mempool): its own limits and prices.
    ALREADY_KNOWN = "ALREADY_KNOWN"
    NONCE_GAP_TOO_LARGE = "NONCE_GAP_TOO_LARGE"
    UNDERPRICED = "UNDERPRICED"
    REPLACEMENT_UNDERPRICED = "REPLACEMENT_UNDERPRICED"
    #: Refused, or dropped (highest nonces first) when a demotion overflowed the sender's queue.
    ACCOUNT_LIMIT = "ACCOUNT_LIMIT"
    POOL_FULL = "POOL_FULL"
    # Drops only, never a refusal: why an acknowledged transaction left the pool unsealed.
    #: Another transaction with the same sender and nonce, paying more, took its place.
    REPLACED = "REPLACED"
    #: Another sender's transaction, paying more, took its place in a full pool.
    EVICTED = "EVICTED"
    #: Queued longer than the pool's lifetime, waiting for room (a slot of its sender's or the pool's).
    EXPIRED = "EXPIRED"
    #: Waited its lifetime behind a missing nonce (pending: why it waits): the gap was never filled.
    NONCE_GAP = "NONCE_GAP"
    # A channel state or update (_channel's rules, cited by number; C0 and C8 reuse the decoder's).
    #: C1: the state names another channel.
    CHANNEL_MISMATCH = "CHANNEL_MISMATCH"
    #: C2: the sequence does not exceed the last co-signed state's.
    STALE_SEQUENCE = "STALE_SEQUENCE"
    #: C3: balances and HTLCs do not add up to the channel's funding.
    FUNDS_NOT_CONSERVED = "FUNDS_NOT_CONSERVED"
    #: C4: an HTLC of amount zero.
    HTLC_AMOUNT_ZERO = "HTLC_AMOUNT_ZERO"
    #: C5: more than MAX_HTLCS in flight: the channel's slots are full until some settle.
    TOO_MANY_HTLCS = "TOO_MANY_HTLCS"
    #: C6: two HTLCs with one payment hash in one direction.
    DUPLICATE_HTLC = "DUPLICATE_HTLC"
    #: C7: an added HTLC expires sooner than the safety delta from now.
    HTLC_EXPIRY_TOO_SOON = "HTLC_EXPIRY_TOO_SOON"
    #: C9: the signature recovers to neither participant (a stranger, or a replay from elsewhere).
    NOT_A_PARTICIPANT = "NOT_A_PARTICIPANT"
    #: C9: the signature is the other participant's, not the one it claims.
    SIGNER_MISMATCH = "SIGNER_MISMATCH"
    #: An update settles or fails an HTLC the channel's state does not hold (INSUFFICIENT_FUNDS
    #: is an update's too: a payment or an HTLC above its payer's balance).
    UNKNOWN_HTLC = "UNKNOWN_HTLC"
    #: C10: a final state with HTLCs in flight (they are settled or failed first).
    HTLCS_PENDING = "HTLCS_PENDING"
    #: P1: an update that changes nothing, or more than one thing, or an HTLC in place.
    UPDATE_NOT_ONE_CHANGE = "UPDATE_NOT_ONE_CHANGE"
    #: P2, P3: a payment or an HTLC proposed from the other side's balance.
    PROPOSER_NOT_PAYER = "PROPOSER_NOT_PAYER"
    #: P4: an HTLC settled by its offerer: only its receiver, holding the preimage, settles it.
    PROPOSER_NOT_RECEIVER = "PROPOSER_NOT_RECEIVER"
    #: P4: a settle without a preimage that hashes to the HTLC's payment hash.
    PREIMAGE_MISSING = "PREIMAGE_MISSING"
    #: P5: an HTLC failed by its offerer before its expiry, while its receiver may still settle it.
    HTLC_NOT_EXPIRED = "HTLC_NOT_EXPIRED"
    #: P7: a chain's signed state is not the one its changes make, or a change is malformed.
    CHAIN_MISMATCH = "CHAIN_MISMATCH"

    @property
    def error(self) -> type[DomainError]:
        """The error a refusal for this reason is answered with (KeyError for a drop-only reason)."""
        return _ERRORS[self]

    @property
    def status(self) -> grpc.StatusCode:
        """The gRPC status code a refusal for this reason carries."""
        return _ERRORS[self].code


#: The reasons only a channel update is refused for: no transaction ever carries one (the
#: sequencer's per-reason metrics leave them out).
CHANNEL_REASONS: Final[frozenset[Reason]] = frozenset({
    Reason.CHANNEL_MISMATCH, Reason.STALE_SEQUENCE, Reason.FUNDS_NOT_CONSERVED, Reason.HTLC_AMOUNT_ZERO,
    Reason.TOO_MANY_HTLCS, Reason.DUPLICATE_HTLC, Reason.HTLC_EXPIRY_TOO_SOON, Reason.NOT_A_PARTICIPANT,
    Reason.SIGNER_MISMATCH, Reason.UNKNOWN_HTLC, Reason.HTLCS_PENDING, Reason.UPDATE_NOT_ONE_CHANGE,
    Reason.PROPOSER_NOT_PAYER, Reason.PROPOSER_NOT_RECEIVER, Reason.PREIMAGE_MISSING, Reason.HTLC_NOT_EXPIRED,
    Reason.CHAIN_MISMATCH,
})


#: contracts/L2Transaction.sol's rejection codes (its ``uint8 reason``), one per decoder reason.
#: A hard fork to change: the one-step proof on L1 decodes with them.
L2_TRANSACTION_CODES: Final[Mapping[Reason, int]] = MappingProxyType({
    Reason.OVERSIZED: 0,
    Reason.MALFORMED_RLP: 1,
    Reason.TX_TYPE_NOT_SUPPORTED: 2,
    Reason.WRONG_CHAIN_ID: 3,
    Reason.FIELD_OUT_OF_RANGE: 4,
    Reason.INVALID_ADDRESS: 5,
    Reason.CONTRACT_CREATION_NOT_SUPPORTED: 6,
    Reason.TIP_ABOVE_FEE_CAP: 7,
    Reason.GAS_LIMIT_TOO_HIGH: 8,
    Reason.INTRINSIC_GAS_TOO_LOW: 9,
    Reason.MALFORMED_WITHDRAWAL: 10,
    Reason.INVALID_SIGNATURE: 11,
    Reason.HIGH_S: 12,
})

#: The refusal's error, hence its gRPC status: the one place a reason's status is decided.
_ERRORS: Final[Mapping[Reason, type[DomainError]]] = MappingProxyType({
    # The decoder's, every one of which L2Transaction.sol returns too: never valid.
    **dict.fromkeys(L2_TRANSACTION_CODES, InvalidArgument),
    Reason.NONCE_TOO_LOW: FailedPrecondition,
    Reason.NONCE_TOO_HIGH: FailedPrecondition,
    Reason.INSUFFICIENT_FUNDS: FailedPrecondition,
    Reason.FEE_CAP_BELOW_BASE_FEE: FailedPrecondition,
    Reason.BLOCK_GAS_LIMIT_REACHED: FailedPrecondition,
    # Never valid on this chain (its block gas limit is the genesis's), as GAS_LIMIT_TOO_HIGH is on any.
    Reason.GAS_LIMIT_ABOVE_BLOCK: InvalidArgument,
    Reason.ALREADY_KNOWN: AlreadyExists,
    Reason.UNDERPRICED: FailedPrecondition,
    Reason.REPLACEMENT_UNDERPRICED: FailedPrecondition,
    # A bounded queue is full: retry later.
    Reason.NONCE_GAP_TOO_LARGE: ResourceExhausted,
    Reason.ACCOUNT_LIMIT: ResourceExhausted,
    Reason.POOL_FULL: ResourceExhausted,
    # A channel update: malformed for this channel whatever its state, never valid.
    Reason.CHANNEL_MISMATCH: InvalidArgument,
    Reason.FUNDS_NOT_CONSERVED: InvalidArgument,
    Reason.HTLC_AMOUNT_ZERO: InvalidArgument,
    Reason.DUPLICATE_HTLC: InvalidArgument,
    Reason.UPDATE_NOT_ONE_CHANGE: InvalidArgument,
    Reason.CHAIN_MISMATCH: InvalidArgument,
    #: A settle as sent never passes: the preimage is the proposal's to carry.
    Reason.PREIMAGE_MISSING: InvalidArgument,
    # Against the channel's last state or the clock: a fresh proposal may pass.
    Reason.STALE_SEQUENCE: FailedPrecondition,
    Reason.HTLC_EXPIRY_TOO_SOON: FailedPrecondition,
    Reason.UNKNOWN_HTLC: FailedPrecondition,
    Reason.HTLCS_PENDING: FailedPrecondition,
    Reason.HTLC_NOT_EXPIRED: FailedPrecondition,
    # The channel's HTLC slots are full: retry once some settle.
    Reason.TOO_MANY_HTLCS: ResourceExhausted,
    # Signed by someone without the right to speak for this participant.
    Reason.NOT_A_PARTICIPANT: PermissionDenied,
    Reason.SIGNER_MISMATCH: PermissionDenied,
    # A participant proposing what only the other may: spend its balance, settle its HTLC.
    Reason.PROPOSER_NOT_PAYER: PermissionDenied,
    Reason.PROPOSER_NOT_RECEIVER: PermissionDenied,
})
