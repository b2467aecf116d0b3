"""The peer side: signed PeerService messages, and the client this node calls another node's
channels worker with, through that peer's call policy (deadline, retry, breaker: one per peer).

A message's signature is over its content (channels.proto: PeerService): the message serialized
deterministically with ``sender_signature`` empty, under the message's name."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc
from google.protobuf.message import Message

from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc
from services.runtime import CallPolicy, PermissionDenied, PolicyConfig, call_unary

from ._rules import Rules

#: A PeerService message: each has a ``sender_signature`` field.
Signed = Message
M = TypeVar("M", bound=Message)
#: A peer policy's attempts: a proposal is safe to repeat (the same state, the same answer).
_ATTEMPTS: Final = 3
_FIELD: Final = "sender_signature"


def _content(message: Signed) -> bytes:
    saved = _signature(message)
    setattr(message, _FIELD, b"")
    try:
        return message.SerializeToString(deterministic=True)
    finally:
        setattr(message, _FIELD, saved)


def _signature(message: Signed) -> bytes:
    signature: bytes = getattr(message, _FIELD)
    return signature


def seal(rules: Rules, message: M) -> M:
    """``message`` with its sender's signature (this node's channel key) set."""
    setattr(message, _FIELD, rules.sign_message(type(message).__name__, _content(message)))
    return message


def sender_of(message: Signed) -> bytes | None:
    """Who signed ``message`` (None: no valid signature)."""
    return Rules.message_signer(type(message).__name__, _content(message), _signature(message))


def require_sender(message: Signed, expected: bytes, what: str) -> None:
    """PermissionDenied (reason BAD_PEER_SIGNATURE) unless ``message`` is signed by ``expected``."""
    signer = sender_of(message)
    if signer != expected:
        shown = "no valid signature" if signer is None else f"0x{signer.hex()}"
        raise PermissionDenied(f"{what} is signed by {shown}, not by the channel's participant 0x{expected.hex()}",
                               reason="BAD_PEER_SIGNATURE")


class PeerError(Exception):
    """The peer answered, but its answer is not valid (wrong signer, a bad counter-signature)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class PeerClient:
    """Calls to one peer's PeerService; every answer's sender signature is checked by the caller.
    A peer is another node, restarted or back from an outage at any time: a call waits (within its
    deadline) for the connection (wait_for_ready) instead of failing at once while gRPC backs off."""

    def __init__(self, address: str, channel: Callable[[str], grpc.aio.Channel], deadline_s: float,
                 durable: Callable[[], Awaitable[None]]) -> None:
        self.address = address
        #: Every call first awaits this node's writes on disk: nothing it signed leaves before.
        self._durable = durable
        self._stub = channels_pb2_grpc.PeerServiceStub(channel(address))

        self._policy = CallPolicy.for_target(f"peer {address}",
                                             PolicyConfig(deadline_s=deadline_s, max_attempts=_ATTEMPTS))
        # Gossip is best effort and in the background: its failures must not open the breaker
        # payments go through (a peer back from an outage would stay shunned for no payment's sake).
        self._gossip_policy = CallPolicy.for_target(f"peer {address} gossip",
                                                    PolicyConfig(deadline_s=deadline_s, max_attempts=1))
        self._deadline = deadline_s

    async def _call(self, method: Any, request: Any, mutating: bool = False) -> Any:
        await self._durable()
        return await call_unary(self._policy, functools.partial(method, wait_for_ready=True), request,
                                deadline_s=self._deadline, mutating=mutating)

    async def hello(self, request: pb.HelloRequest) -> pb.HelloResponse:
        answer: pb.HelloResponse = await self._call(self._stub.Hello, request)
        return answer

    async def open(self, request: pb.OpenRequest) -> pb.OpenResponse:
        answer: pb.OpenResponse = await self._call(self._stub.Open, request, mutating=True)
        return answer

    @property
    def available(self) -> bool:
        """False while this peer's breaker is open."""
        return str(self._policy.circuit.current_state) != "open"

    async def announce(self, request: pb.AnnounceRequest) -> pb.AnnounceResponse:
        await self._durable()
        return await call_unary(self._gossip_policy, functools.partial(self._stub.Announce, wait_for_ready=True),
                                request, deadline_s=self._deadline)

    async def propose_batch(self, request: pb.ProposeBatchRequest) -> pb.ProposeBatchResponse:
        answer: pb.ProposeBatchResponse = await self._call(self._stub.ProposeBatch, request, mutating=True)
        return answer

    async def request_changes(self, request: pb.RequestChangesRequest) -> pb.RequestChangesResponse:
        answer: pb.RequestChangesResponse = await self._call(self._stub.RequestChanges, request)
        return answer

    async def propose(self, request: pb.ProposeRequest) -> pb.ProposeResponse:
        answer: pb.ProposeResponse = await self._call(self._stub.Propose, request, mutating=True)
        return answer
