"""A read replica's sequencer (``settings.upstream``): no blocks of its own, no batches; it follows
an upstream sequencer's blocks and serves the reads from its own store.

Each block the upstream streams (``SubscribeBlocks`` with its signed transactions) is re-executed
by the same code as every block (``Chain.seal_followed``, the path derivation's blocks take too:
the replica's own due deposits and forced transactions at the block's L1 origin, then its
transactions) and stored only if it comes out as the very block claimed (``expect``: its hash,
so every root and field; ``BlockMismatch`` otherwise, nothing written). The deposits and forced
transactions are the replica's own reading of L1 (the batcher's inbox follower, run without a
poster), so a block waits until that reading reached its L1 origin. The same follower runs
derivation (``_follow``) over the inbox: a block derivation contradicts is rewound as on the
sequencer, SAFE is what derivation at safe depth agreed with, and past the upstream's head (it is
down, or lies) derivation's blocks are sealed from L1 alone.

An upstream block at a number the replica already has with another hash is the upstream having
rewound (it follows derivation too): the replica rewinds to it, unless derivation already agreed
with its own block there (then the upstream is the one behind, and its block is refused). A block
that does not re-execute to its claim is refused, logged at ERROR and counted, and the stream is
opened again after a backoff from the replica's head: a lying upstream stalls the replica's
unsafe head, never its store.

Sends are forwarded to the upstream through its call policy (``Upstream``), once: one
request id for every attempt, which the upstream's idempotency keeps to one answer, and its
intake refuses a transaction it already has (ALREADY_KNOWN).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import grpc
from opentelemetry import trace

from protocol import BlockHeader, Transaction
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from services.runtime import (
    BreakerOpen,
    CallPolicy,
    DeadlineExceeded,
    Unavailable,
    call_unary,
    new_request_id,
    quiet,
)
from supervisor import TaskStatus

from . import _metrics as metrics
from ._chain import BlockMismatch, Chain, L1Origin
from ._follow import DerivationFollower
from ._mempool import Dropped

_log = logging.getLogger("l2node.sequencer.replica")

#: The call policy's target: the upstream is another tree's sequencer, not this tree's.
UPSTREAM_TARGET: Final = "upstream"
_DEADLINE_S: Final = 10.0
_TRANSIENT: Final = (grpc.aio.AioRpcError, BreakerOpen, DeadlineExceeded)
_BACKOFF_S: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
#: How often a replica asks its upstream's head (``UpstreamFollower.watch_head``).
_HEAD_POLL_S: Final = 1.0


class Follower:
    """The chain's listener on a read replica (``ChainListener``): it acknowledges no transaction
    of its own (sends go upstream), so a block it drops (a rewind) puts nothing back in a pool or
    a pending log: the upstream holds those transactions, and its next blocks say where they went."""

    def origin(self, tx_hash: bytes) -> trace.SpanContext | None:
        return None

    def sealed(self, tx_hashes: Iterable[bytes]) -> None:
        pass

    async def record_drops(self, dropped: Sequence[Dropped]) -> None:
        pass

    async def repool(self) -> object:
        return None

    async def unseal(self, txs: Sequence[Transaction]) -> None:
        pass


class Refused(ValueError):
    """An upstream block this replica will not store (it names the rule it broke)."""


class _Reopen(Exception):
    """The upstream forked below this replica's head (it rewound while the stream was away): the
    replica went back a block; the stream is opened again from there."""


class Upstream:
    """The upstream sequencer's SequencerService: each unary call through the "upstream" policy."""

    def __init__(self, channel: grpc.aio.Channel, address: str) -> None:
        self.stub = pb_grpc.SequencerServiceStub(channel)
        self.address = address
        self.policy = CallPolicy.for_target(UPSTREAM_TARGET)
        #: The upstream's head as last heard (its chain info, asked every second, and its stream):
        #: how far behind a read is.
        self.head = 0

    async def chain_info(self) -> pb.GetChainInfoResponse:
        """The upstream's heads (one GetChainInfo through the policy); transient errors raise as they are."""
        reply: pb.GetChainInfoResponse = await call_unary(self.policy, self.stub.GetChainInfo,
                                                          pb.GetChainInfoRequest(), deadline_s=_DEADLINE_S)
        return reply

    async def send(self, raws: list[bytes], request_id: str) -> pb.SendRawTransactionsResponse:
        """Forward a send: one SendRawTransactions call, every attempt with ``request_id`` (in the
        message and the metadata), so a retry after a lost answer applies nothing twice."""
        request = pb.SendRawTransactionsRequest(raw_transactions=raws, request_id=request_id or new_request_id())
        try:
            reply: pb.SendRawTransactionsResponse = await call_unary(
                self.policy, self.stub.SendRawTransactions, request, deadline_s=_DEADLINE_S,
                request_id=request.request_id, mutating=True)
        except _TRANSIENT as exc:
            raise Unavailable(f"this node is a read replica and its upstream sequencer {self.address} did not take "
                              f"the transactions: {_words(exc)}", reason="UPSTREAM_UNAVAILABLE") from None
        return reply


    async def account(self, request: pb.GetAccountRequest) -> pb.GetAccountResponse:
        """An account with the upstream's pool counted (``pending``): only the upstream knows what
        waits there, and a wallet takes its next nonce from it."""
        try:
            reply: pb.GetAccountResponse = await call_unary(self.policy, self.stub.GetAccount, request,
                                                            deadline_s=_DEADLINE_S)
        except _TRANSIENT as exc:
            raise Unavailable(f"the upstream sequencer {self.address} did not answer for the pending state: "
                              f"{_words(exc)}", reason="UPSTREAM_UNAVAILABLE") from None
        return reply


    async def receipt(self, request: pb.GetTransactionReceiptRequest) -> pb.Receipt | None:
        """The upstream's receipt of a transaction this replica has no block of (None: it has none
        either): what a sender through this replica asks right after sending."""
        try:
            reply: pb.GetTransactionReceiptResponse = await call_unary(
                self.policy, self.stub.GetTransactionReceipt, request, deadline_s=_DEADLINE_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise Unavailable(f"the upstream sequencer {self.address} did not answer: {_words(exc)}",
                              reason="UPSTREAM_UNAVAILABLE") from None
        except (BreakerOpen, DeadlineExceeded) as exc:
            raise Unavailable(f"the upstream sequencer {self.address} did not answer: {_words(exc)}",
                              reason="UPSTREAM_UNAVAILABLE") from None
        return reply.receipt


def _words(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc) or type(exc).__name__


def header_of(block: pb.Block) -> BlockHeader:
    """The header a streamed block claims, checked to hash to the hash it claims (Refused if not,
    or if a field is malformed)."""
    try:
        header = BlockHeader(
            number=block.number, parent_hash=_h32(block.parent_hash), timestamp=block.timestamp,
            state_root=_h32(block.state_root), transactions_root=_h32(block.transactions_root),
            message_root=_h32(block.message_passer_root), base_fee=int(block.base_fee), gas_used=block.gas_used,
            gas_limit=block.gas_limit, l1_origin_number=block.l1_origin_number,
            l1_origin_hash=_h32(block.l1_origin_hash))
    except ValueError as exc:
        raise Refused(f"block {block.number}: malformed field ({exc})") from None
    if header.hash() != _h32(block.hash):
        raise Refused(f"block {block.number}: its fields do not hash to its claimed hash {block.hash}")
    return header


def _h32(text: str) -> bytes:
    raw = bytes.fromhex(text.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"{text!r} is not a 32-byte hash")
    return raw


class UpstreamFollower:
    """The replica's chain, following the upstream's block stream (see the module notes)."""

    def __init__(self, chain: Chain, upstream: Upstream, follow: DerivationFollower | None,
                 wake_l1: Callable[[], None] | None = None, max_lag_blocks: int = 20) -> None:
        self._chain = chain
        self._upstream = upstream
        self._max_lag = max_lag_blocks
        self._follow = follow
        #: Cuts the L1 follower's idle sleep short (``L1Client.activity``), as a sent L1 transaction does.
        self._wake_l1 = wake_l1
        #: Serializes the stream's seals and rewinds with derivation's reconcile (one owner at a time).
        self._lock = follow.lock if follow is not None else asyncio.Lock()
        self.refused = 0

    async def run(self, task_status: TaskStatus) -> None:
        task_status.started()
        failures = 0
        while True:
            try:
                with quiet():  # following is no one's request: no trace per block
                    request = pb.SubscribeBlocksRequest(from_number=self._chain.head.number + 1,
                                                        include_transactions=True)
                    stream = self._upstream.stub.SubscribeBlocks(request)
                    try:
                        async for reply in stream:
                            await self.apply(reply.block)
                            failures = 0
                    finally:
                        stream.cancel()  # left on a refusal: end it upstream too, not when collected
                await asyncio.sleep(_BACKOFF_S[0])  # the stream ended (the upstream stopping): reopen
            except _TRANSIENT as exc:
                if failures == 0:
                    _log.warning("upstream block stream broke; reopening",
                                 extra={"upstream": self._upstream.address, "error": _words(exc)})
                await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1
            except _Reopen:
                continue
            except Refused as exc:
                self.refused += 1
                metrics.REPLICA_REFUSED.inc()
                _log.error("refused a block from the upstream sequencer", extra={
                    "upstream": self._upstream.address, "reason": str(exc), "head": self._chain.head.number})
                await asyncio.sleep(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1

    async def watch_head(self, task_status: TaskStatus) -> None:
        """The upstream's head, asked every ``_HEAD_POLL_S``: the stream alone shows it only block by
        block (far behind after a restart), and not at all while it stalls or withholds blocks."""
        task_status.started()
        while True:
            try:
                with quiet():
                    self._upstream.head = (await self._upstream.chain_info()).unsafe_block
            except _TRANSIENT as exc:
                _log.debug("upstream head not read", extra={"upstream": self._upstream.address, "error": _words(exc)})
            await asyncio.sleep(_HEAD_POLL_S)

    def lagging(self) -> str | None:
        """Why this replica is not ready (``WorkerContext.not_ready_while``): more than ``max_lag_blocks``
        behind its upstream's head as last heard, so its reads would be stale; None otherwise. An
        upstream that stopped answering does not make it unready: every replica would leave the
        Service at once, a sequencer's outage turned into a read outage, while they still serve
        what they have (and derivation's blocks from L1)."""
        behind = self._upstream.head - self._chain.head.number
        if behind <= self._max_lag:
            return None
        return (f"read replica at block {self._chain.head.number}, {behind} blocks behind its upstream "
                f"{self._upstream.address} (ready within {self._max_lag})")

    def _agreed(self) -> int:
        """The newest block derivation agreed with (never rewound for an upstream's)."""
        return self._follow.cursor.agreed if self._follow is not None else 0

    async def apply(self, block: pb.Block) -> None:
        """Store the upstream's ``block`` if it re-executes to itself; Refused if it does not."""
        header = header_of(block)
        claimed = _h32(block.hash)
        number = header.number
        self._upstream.head = max(self._upstream.head, number)
        await self._origin_reached(header.l1_origin_number)
        chain = self._chain
        async with self._lock:
            if number <= chain.head.number:
                ours = chain.block(number)
                if ours is not None and ours.hash == claimed:
                    return  # derivation sealed it first, or a replay of what this replica has
                if number <= self._agreed():
                    raise Refused(f"block {number} {block.hash} contradicts the block derivation from L1 agreed "
                                  "with at that number")
                _log.warning("the upstream replaced blocks (it rewound): following it",
                             extra={"from": number, "head": chain.head.number})
                await chain.rewind(number - 1)
            if number != chain.head.number + 1:
                raise Refused(f"block {number} does not follow this replica's head {chain.head.number}")
            if header.parent_hash != chain.head_hash:
                if chain.head.number <= self._agreed():
                    raise Refused(f"block {number}'s parent is not the block derivation agreed with at "
                                  f"{chain.head.number}")
                await chain.rewind(chain.head.number - 1)
                raise _Reopen
            origin = L1Origin(header.l1_origin_number, header.l1_origin_hash)
            try:
                sealed = await chain.seal_followed(number, header.timestamp, origin, list(block.raw_transactions),
                                                   expect=claimed)
            except BlockMismatch as exc:
                raise Refused(str(exc)) from None
            if sealed is None:  # not reachable under the lock; kept for seal_followed's contract
                raise Refused(f"block {number}: the head moved while it was applied")
        metrics.REPLICA_BLOCKS.inc()

    async def _origin_reached(self, origin: int) -> None:
        """Wait until this replica's own L1 reading reached ``origin``: its deposits and forced
        transactions up to there are recorded (``Batcher._advance_origin``). Without L1, at once."""
        if self._follow is None:
            return
        if self._chain.l1_origin.number < origin and self._wake_l1 is not None:
            # An idle follower sleeps up to idle_poll_s (8 s): the upstream's origin says L1 moved.
            self._wake_l1()
        moved = self._chain.origin_moved
        while True:
            moved.clear()  # no await between the test and the wait: a move in between cannot be missed
            if self._chain.l1_origin.number >= origin:
                return
            await moved.wait()
