"""The one vocabulary of refusals and drops: stable wire strings, one gRPC status each, and the
Solidity decoder's codes written out."""

from __future__ import annotations

import grpc
import pytest

from protocol import CHANNEL_REASONS, L2_TRANSACTION_CODES, Reason
from services.runtime import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied, ResourceExhausted

DECODER = ["OVERSIZED", "MALFORMED_RLP", "TX_TYPE_NOT_SUPPORTED", "WRONG_CHAIN_ID", "FIELD_OUT_OF_RANGE",
           "INVALID_ADDRESS", "CONTRACT_CREATION_NOT_SUPPORTED", "TIP_ABOVE_FEE_CAP", "GAS_LIMIT_TOO_HIGH",
           "INTRINSIC_GAS_TOO_LOW", "MALFORMED_WITHDRAWAL", "INVALID_SIGNATURE", "HIGH_S"]
PRECONDITIONS = ["NONCE_TOO_LOW", "NONCE_TOO_HIGH", "INSUFFICIENT_FUNDS", "FEE_CAP_BELOW_BASE_FEE",
                 "BLOCK_GAS_LIMIT_REACHED", "UNDERPRICED", "REPLACEMENT_UNDERPRICED"]
#: Not the decoder's (the chain's block gas limit decides it) but as final: no block can hold it.
CHAIN_INVALID = ["GAS_LIMIT_ABOVE_BLOCK"]
EXHAUSTED = ["NONCE_GAP_TOO_LARGE", "ACCOUNT_LIMIT", "POOL_FULL"]
DROPS_ONLY = ["REPLACED", "EVICTED", "EXPIRED", "NONCE_GAP"]
#: A channel update's (protocol._channel, rules C1-C10 and P0-P6).
CHANNEL_INVALID = ["CHANNEL_MISMATCH", "FUNDS_NOT_CONSERVED", "HTLC_AMOUNT_ZERO", "DUPLICATE_HTLC",
                   "UPDATE_NOT_ONE_CHANGE", "PREIMAGE_MISSING", "CHAIN_MISMATCH"]
CHANNEL_PRECONDITIONS = ["STALE_SEQUENCE", "HTLC_EXPIRY_TOO_SOON", "UNKNOWN_HTLC", "HTLCS_PENDING",
                         "HTLC_NOT_EXPIRED"]
CHANNEL_SIGNERS = ["NOT_A_PARTICIPANT", "SIGNER_MISMATCH", "PROPOSER_NOT_PAYER", "PROPOSER_NOT_RECEIVER"]


def test_the_wire_strings_are_the_names_and_none_is_lost() -> None:
    assert all(r.value == r.name for r in Reason)
    assert sorted(Reason) == sorted(
        [*DECODER, *CHAIN_INVALID, *PRECONDITIONS, "ALREADY_KNOWN", *EXHAUSTED, *DROPS_ONLY,
         *CHANNEL_INVALID, *CHANNEL_PRECONDITIONS, "TOO_MANY_HTLCS", *CHANNEL_SIGNERS])


def test_the_channel_reasons_are_the_channel_rules_and_only_theirs() -> None:
    """The sequencer's metrics skip exactly these: a reason a transaction can carry must not be one."""
    assert sorted(CHANNEL_REASONS) == sorted(
        [*CHANNEL_INVALID, *CHANNEL_PRECONDITIONS, "TOO_MANY_HTLCS", *CHANNEL_SIGNERS])


@pytest.mark.parametrize(
    ("names", "error", "code"),
    [
        (DECODER, InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (CHAIN_INVALID, InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (PRECONDITIONS, FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
        (["ALREADY_KNOWN"], AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
        (EXHAUSTED, ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (CHANNEL_INVALID, InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        (CHANNEL_PRECONDITIONS, FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
        (["TOO_MANY_HTLCS"], ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (CHANNEL_SIGNERS, PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_each_refusal_has_one_status(names: list[str], error: type, code: grpc.StatusCode) -> None:
    for name in names:
        assert (Reason(name).error, Reason(name).status) == (error, code)


@pytest.mark.parametrize("name", DROPS_ONLY)
def test_a_drop_only_reason_is_never_a_refusal(name: str) -> None:
    with pytest.raises(KeyError):
        Reason(name).status  # noqa: B018


def test_the_solidity_codes_are_the_decoder_s_reasons_numbered_in_declaration_order() -> None:
    assert [r.value for r in L2_TRANSACTION_CODES] == DECODER
    assert list(L2_TRANSACTION_CODES.values()) == list(range(len(DECODER)))
    assert list(Reason)[: len(DECODER)] == list(L2_TRANSACTION_CODES)  # so a reason's index still is its code
