"""Domain errors: what a handler raises when a request cannot be honoured.

Each class fixes one gRPC status code; the server interceptor turns the error into that code
plus a ``google.rpc.Status`` carrying an ``ErrorInfo`` (reason, domain, metadata) and, when
given, ``BadRequest`` field violations and ``RetryInfo``. Clients read them with
``grpc_status.rpc_status.from_call``. Reasons are UPPER_SNAKE_CASE, stable, and meant for
programs; the message is for people (AIP-193).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.runtime._redact import redact

#: ErrorInfo.domain of every error this node raises.
DOMAIN: Final = "l2node"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request (google.rpc.BadRequest.FieldViolation)."""

    #: Path to the field, e.g. ``"transactions[3].nonce"``.
    field: str
    description: str
    #: Optional UPPER_SNAKE_CASE reason for this field alone.
    reason: str = ""


class DomainError(Exception):
    """Base class. Raised as is it means FAILED_PRECONDITION: a rule of the domain forbids
    the request in the current state; prefer the specific subclasses."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[FieldViolation] = (),
        retry_delay_s: float | None = None,
    ) -> None:
        """``reason`` defaults to the code's name; ``retry_delay_s`` adds a RetryInfo that
        tells a well-behaved client how long to back off (only meaningful for retryable codes)."""
        super().__init__(message)
        self.message = message
        self.reason = reason or self.code.name
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations = tuple(field_violations)
        self.retry_delay_s = retry_delay_s

    def to_status_proto(self) -> status_pb2.Status:
        # A message may quote an endpoint (say, the L1 RPC a call failed on): never its credentials.
        status = status_pb2.Status(code=self.code.value[0], message=redact(self.message))
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        status.details.add().Pack(info)
        if self.field_violations:
            bad = error_details_pb2.BadRequest()
            for v in self.field_violations:
                bad.field_violations.add(field=v.field, description=redact(v.description), reason=v.reason)
            status.details.add().Pack(bad)
        if self.retry_delay_s is not None:
            retry = error_details_pb2.RetryInfo()
            retry.retry_delay.FromNanoseconds(int(self.retry_delay_s * 1e9))
            status.details.add().Pack(retry)
        return status

    def to_grpc_status(self) -> grpc.Status:
        """What ``context.abort_with_status`` takes."""
        return rpc_status.to_status(self.to_status_proto())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class InvalidArgument(DomainError):
    """The request is malformed whatever the state: bad encoding, out-of-range field, bad signature."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(DomainError):
    """Well-formed, but the current state forbids it (nonce too low, channel already closed)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(DomainError):
    """Asks past the end of something that grows (a block number not produced yet)."""

    code = grpc.StatusCode.OUT_OF_RANGE


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    """The thing the request would create exists (a duplicate transaction, a reused request_id
    with a different body)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(DomainError):
    """A quota or bounded queue is full (mempool, per-sender limit); retry after a delay."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(DomainError):
    """Lost a race with a concurrent change (optimistic concurrency); retry the whole operation."""

    code = grpc.StatusCode.ABORTED


class Unavailable(DomainError):
    """A dependency is down or this worker is not ready; safe to retry."""

    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(DomainError):
    code = grpc.StatusCode.UNIMPLEMENTED


def internal_status(message: str, metadata: Mapping[str, str] | None = None) -> grpc.Status:
    """INTERNAL with ErrorInfo reason "INTERNAL": what an uncaught exception becomes."""
    status = status_pb2.Status(code=code_pb2.INTERNAL, message=message)
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN, metadata=metadata or {})
    status.details.add().Pack(info)
    return rpc_status.to_status(status)
