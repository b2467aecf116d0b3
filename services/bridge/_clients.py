"""The bridge's two gRPC neighbours, each call through its target's call policy (deadline, retry,
breaker): the sequencer (receipts, blocks, L2->L1 messages) and the rollups worker (outputs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import grpc

from protos.l2node.rollups.v1 import rollups_pb2, rollups_pb2_grpc
from protos.l2node.sequencer.v1 import sequencer_pb2, sequencer_pb2_grpc
from services.runtime import CallPolicy, call_unary

_DEADLINE_S: Final = 5.0
#: OUTPUT_STATUS_* of l2node.rollups.v1 as words (GetWithdrawalProof's output_status).
OUTPUT_WORDS: Final[dict[int, str]] = {rollups_pb2.OUTPUT_STATUS_PROPOSED: "PROPOSED",
                       rollups_pb2.OUTPUT_STATUS_CHALLENGED: "CHALLENGED",
                       rollups_pb2.OUTPUT_STATUS_FINALIZED: "FINALIZED",
                       rollups_pb2.OUTPUT_STATUS_INVALIDATED: "INVALIDATED"}


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


@dataclass(frozen=True, slots=True)
class L2Block:
    """What a proof needs of a sealed L2 block: the output root's preimage and the message count."""

    number: int
    hash: bytes
    state_root: bytes
    message_passer_root: bytes
    message_count: int


@dataclass(frozen=True, slots=True)
class Output:
    """An output as the rollups worker reports it (from L1)."""

    index: int
    output_root: bytes
    l2_block: int
    status: int  # rollups_pb2.OUTPUT_STATUS_*

    @property
    def word(self) -> str:
        return OUTPUT_WORDS.get(self.status, "UNSPECIFIED")

    @property
    def finalized(self) -> bool:
        return self.status == rollups_pb2.OUTPUT_STATUS_FINALIZED

    @property
    def invalidated(self) -> bool:
        return self.status == rollups_pb2.OUTPUT_STATUS_INVALIDATED


class SequencerClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = sequencer_pb2_grpc.SequencerServiceStub(channel)
        self._policy = CallPolicy.for_target("sequencer")

    async def credited_in(self, tx_hash: bytes) -> int | None:
        """The L2 block holding transaction ``tx_hash`` (a deposit's), None while not in one."""
        try:
            reply = await call_unary(self._policy, self._stub.GetTransactionReceipt,
                                     sequencer_pb2.GetTransactionReceiptRequest(tx_hash="0x" + tx_hash.hex()),
                                     deadline_s=_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        r = reply.receipt
        return r.block_number if r.HasField("block_number") else None

    async def block(self, number: int) -> L2Block | None:
        try:
            reply = await call_unary(self._policy, self._stub.GetBlock, sequencer_pb2.GetBlockRequest(number=number),
                                     deadline_s=_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE):
                return None
            raise
        b = reply.block
        return L2Block(b.number, _bytes(b.hash), _bytes(b.state_root), _bytes(b.message_passer_root), b.message_count)

    async def messages(self, from_nonce: int, page_size: int = 256) -> sequencer_pb2.ListMessagesResponse:
        reply: sequencer_pb2.ListMessagesResponse = await call_unary(
            self._policy, self._stub.ListMessages,
            sequencer_pb2.ListMessagesRequest(from_nonce=from_nonce, page_size=page_size), deadline_s=_DEADLINE_S)
        return reply


class RollupsClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = rollups_pb2_grpc.RollupsServiceStub(channel)
        self._policy = CallPolicy.for_target("rollups")

    async def outputs(self, from_index: int) -> list[Output]:
        """Every output from ``from_index`` on, in index order."""
        found: list[Output] = []
        token = str(from_index) if from_index else ""
        while True:
            try:
                reply = await call_unary(self._policy, self._stub.ListOutputs,
                                         rollups_pb2.ListOutputsRequest(page_size=500, page_token=token),
                                         deadline_s=_DEADLINE_S)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # no registry on that node
                    return found
                raise
            found += [Output(o.index, _bytes(o.output_root), o.l2_block, o.status) for o in reply.outputs]
            if not reply.next_page_token:
                return found
            token = reply.next_page_token
