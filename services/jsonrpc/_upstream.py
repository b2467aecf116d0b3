"""The JSON-RPC server's gRPC neighbours: the sequencer (state, blocks, receipts, sends) and the
rollups worker (outputs), every unary call through its target's call policy (deadline, retry,
breaker), and the sequencer's block stream kept as the head in memory.

:class:`Head` follows ``SubscribeBlocks`` and keeps the newest blocks (headers and hashes, no
transactions), so the hot reads (eth_blockNumber, the latest block, eth_gasPrice, eth_feeHistory
over recent blocks, newHeads) cost no call at all. A stream that breaks (the sequencer restarted)
is opened again after a short backoff, from the block after the last one kept; a block that
comes again with another hash (the sequencer rewound) drops what was kept above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

import grpc

from protos.l2node.rollups.v1 import rollups_pb2, rollups_pb2_grpc
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from services.runtime import BreakerOpen, CallPolicy, DeadlineExceeded, call_unary, quiet

_DEADLINE_S: Final = 5.0
#: What the head follower waits out before opening the stream again.
_TRANSIENT: Final = (grpc.aio.AioRpcError, BreakerOpen, DeadlineExceeded)
_BACKOFF_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0)


class Sequencer:
    """SequencerService, each call through the "sequencer" call policy."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = pb_grpc.SequencerServiceStub(channel)
        self.policy = CallPolicy.for_target("sequencer")
        self._chain_id: int | None = None

    async def chain_info(self, include_l1: bool = False) -> pb.GetChainInfoResponse:
        reply: pb.GetChainInfoResponse = await call_unary(self.policy, self.stub.GetChainInfo,
                                                          pb.GetChainInfoRequest(include_l1=include_l1),
                                                          deadline_s=_DEADLINE_S)
        return reply

    async def chain_id(self) -> int:
        """The L2 chain id (asked once: it never changes)."""
        if self._chain_id is None:
            self._chain_id = (await self.chain_info()).chain_id
        return self._chain_id

    async def account(self, address: str, *, pending: bool = False) -> pb.GetAccountResponse:
        reply: pb.GetAccountResponse = await call_unary(
            self.policy, self.stub.GetAccount, pb.GetAccountRequest(address=address, pending=pending),
            deadline_s=_DEADLINE_S)
        return reply

    async def block(self, request: pb.GetBlockRequest) -> pb.Block | None:
        """The block asked for; None if there is none (not sealed yet, no such hash)."""
        try:
            reply: pb.GetBlockResponse = await call_unary(self.policy, self.stub.GetBlock, request,
                                                          deadline_s=_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE):
                return None
            raise
        return reply.block

    async def receipt(self, tx_hash: str, *, include_raw: bool = False) -> pb.Receipt | None:
        try:
            reply: pb.GetTransactionReceiptResponse = await call_unary(
                self.policy, self.stub.GetTransactionReceipt,
                pb.GetTransactionReceiptRequest(tx_hash=tx_hash, include_raw=include_raw), deadline_s=_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return reply.receipt

    async def send(self, raws: list[bytes]) -> list[pb.SendResult]:
        """One SendRawTransactions call: one result per raw transaction, in order. Mutating: every
        attempt carries the same request id, so a retry after a lost answer applies nothing twice."""
        reply: pb.SendRawTransactionsResponse = await call_unary(
            self.policy, self.stub.SendRawTransactions, pb.SendRawTransactionsRequest(raw_transactions=raws),
            deadline_s=_DEADLINE_S, mutating=True)
        return list(reply.results)


class Rollups:
    """RollupsService, through the "rollups" call policy (optimism_* methods)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = rollups_pb2_grpc.RollupsServiceStub(channel)
        self.policy = CallPolicy.for_target("rollups")

    async def output_at(self, l2_block: int) -> rollups_pb2.GetOutputAtBlockResponse | None:
        try:
            reply: rollups_pb2.GetOutputAtBlockResponse = await call_unary(
                self.policy, self.stub.GetOutputAtBlock, rollups_pb2.GetOutputAtBlockRequest(l2_block=l2_block),
                deadline_s=_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.OUT_OF_RANGE,
                              grpc.StatusCode.FAILED_PRECONDITION):
                return None
            raise
        return reply


class Head:
    """The sequencer's newest blocks, followed over its block stream."""

    def __init__(self, sequencer: Sequencer, logger: logging.Logger, keep: int) -> None:
        self._sequencer = sequencer
        self._log = logger
        self._keep = keep
        self._blocks: OrderedDict[int, pb.Block] = OrderedDict()
        self._by_hash: dict[str, int] = {}
        self._moved = asyncio.Condition()
        self._listeners: list[Callable[[pb.Block], None]] = []
        self.ready = asyncio.Event()

    @property
    def block(self) -> pb.Block:
        """The newest block (call after :attr:`ready`)."""
        return next(reversed(self._blocks.values()))

    @property
    def number(self) -> int:
        return self.block.number

    def get(self, number: int) -> pb.Block | None:
        return self._blocks.get(number)

    def number_of(self, block_hash: str) -> int | None:
        return self._by_hash.get(block_hash)

    def listen(self, fn: Callable[[pb.Block], None]) -> Callable[[], None]:
        """Call ``fn`` with each new head; returns what stops it."""
        self._listeners.append(fn)
        return lambda: self._listeners.remove(fn) if fn in self._listeners else None

    async def reach(self, number: int, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the head to be at ``number`` or above: a receipt is served only
        once the block it names is this server's too (a client that reads the receipt and then
        eth_blockNumber never sees the number go back)."""
        if self.ready.is_set() and self.number >= number:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s), self._moved:
                await self._moved.wait_for(lambda: self.ready.is_set() and self.number >= number)
        return self.ready.is_set() and self.number >= number

    def _add(self, block: pb.Block) -> None:
        blocks = self._blocks
        stale = [n for n in blocks if n >= block.number]
        for n in stale:  # a rewind: what was kept from this number on is gone
            self._by_hash.pop(blocks.pop(n).hash, None)
        blocks[block.number] = block
        self._by_hash[block.hash] = block.number
        while len(blocks) > self._keep:
            _, old = blocks.popitem(last=False)
            self._by_hash.pop(old.hash, None)

    async def _moved_to(self, block: pb.Block) -> None:
        self._add(block)
        self.ready.set()
        async with self._moved:
            self._moved.notify_all()
        for fn in list(self._listeners):
            fn(block)

    async def follow(self) -> None:
        """Never returns: the head from the sequencer's stream, reopened after each break."""
        failures = 0
        while True:
            try:
                with quiet():  # following is no one's request: no trace per block
                    if not self.ready.is_set():
                        latest = await self._sequencer.block(pb.GetBlockRequest(latest=True))
                        if latest is not None:
                            await self._moved_to(latest)
                    start = self.number + 1 if self.ready.is_set() else 0
                    stream = self._sequencer.stub.SubscribeBlocks(pb.SubscribeBlocksRequest(from_number=start))
                    async for reply in stream:
                        failures = 0
                        await self._moved_to(reply.block)
                await asyncio.sleep(_BACKOFF_S[0])  # the stream ended (the sequencer stopping): reopen
            except _TRANSIENT as exc:
                if failures == 0:
                    self._log.warning("sequencer block stream broke; reopening", extra={"error": str(exc)})
                await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1


class Accounts:
    """Accounts as of the head, each read from the sequencer once per block: a read is kept while
    the head stays at the block it was read at (the state changes only when a block is sealed), and
    reads of one address while its call is out wait for that call. A wallet polling its balance, or
    many asking for one contract-less hot address, costs a call per block, not per request; what it
    answers is never newer or older than this server's eth_blockNumber."""

    def __init__(self, sequencer: Sequencer, head: Head, size: int) -> None:
        self._sequencer = sequencer
        self._head = head
        self._size = size
        self._kept: dict[str, pb.GetAccountResponse] = {}
        self._kept_at = -1
        self._flights: dict[str, asyncio.Future[pb.GetAccountResponse]] = {}

    def _current(self) -> int:
        at = self._head.number if self._head.ready.is_set() else -1
        if at != self._kept_at:
            self._kept.clear()
            self._kept_at = at
        return at

    async def latest(self, address: str) -> pb.GetAccountResponse:
        self._current()
        kept = self._kept.get(address)
        if kept is not None:
            return kept
        flight = self._flights.get(address)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[address] = flight
        try:
            reply = await self._sequencer.account(address)
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: whoever waits on it gets it, nobody else logs it
            raise
        finally:
            self._flights.pop(address, None)
        flight.set_result(reply)
        if reply.block_number == self._current() and len(self._kept) < self._size:
            self._kept[address] = reply
        return reply
