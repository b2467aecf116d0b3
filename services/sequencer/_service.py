"""l2node.sequencer.v1.SequencerService: the wire API over the chain and the intake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from protocol import Reason
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from services.l1 import BlockHeader as L1Block
from services.runtime import (
    DomainError,
    FieldViolation,
    Idempotency,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
)

from ._batcher import L1Heads
from ._chain import Chain, SealedBlock
from ._intake import Intake, Refusal
from ._replica import Upstream
from ._store import FINALIZED, SAFE, SequencerStore, StoredDeposit, StoredMessage

#: ListMessages' page: its default and its most.
DEFAULT_MESSAGE_PAGE: Final = 256
MAX_MESSAGE_PAGE: Final = 4096
_W3C: Final = TraceContextTextMapPropagator()


def hex0x(b: bytes) -> str:
    return "0x" + b.hex()


def parse_hex(value: str, size: int, field: str) -> bytes:
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise InvalidArgument(f"{field} must be 0x followed by {2 * size} hex digits", reason="MALFORMED_" +
                              field.upper(), field_violations=[FieldViolation(field, f"{size}-byte hex")])
    return raw


def refusal_error(r: Refusal) -> DomainError:
    """The error a refusal is answered with: its reason's (protocol.Reason.error), the field at fault."""
    violations = [FieldViolation(r.field, r.message, r.reason)] if r.field else []
    return r.reason.error(r.message, reason=r.reason, field_violations=violations)


def block_pb(b: SealedBlock) -> pb.Block:
    h = b.header
    return pb.Block(
        number=h.number, hash=hex0x(b.hash), parent_hash=hex0x(h.parent_hash), timestamp=h.timestamp,
        state_root=hex0x(h.state_root), transactions_root=hex0x(h.transactions_root),
        message_passer_root=hex0x(h.message_root), base_fee=str(h.base_fee), gas_used=h.gas_used,
        gas_limit=h.gas_limit, transaction_hashes=[hex0x(t) for t in b.tx_hashes],
        l1_origin_number=h.l1_origin_number, l1_origin_hash=hex0x(h.l1_origin_hash), message_count=b.message_count,
    )


def traceparent(ctx: trace.SpanContext | None) -> str:
    """The W3C traceparent naming span ``ctx`` (empty for none)."""
    if ctx is None or not ctx.is_valid:
        return ""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(trace.NonRecordingSpan(ctx)))
    return carrier.get("traceparent", "")


def message_pb(m: StoredMessage, sent_by: trace.SpanContext | None) -> pb.L2ToL1Message:
    w = m.message
    return pb.L2ToL1Message(nonce=w.nonce, hash=hex0x(m.hash), sender=hex0x(w.sender), target=hex0x(w.target),
                            value=str(w.value), gas_limit=w.gas_limit, data=hex0x(w.data),
                            block_number=m.block_number, block_hash=hex0x(m.block_hash), tx_hash=hex0x(m.tx_hash),
                            traceparent=traceparent(sent_by))


def _forwarded_error(error: pb.TransactionError) -> DomainError:
    """The upstream's refusal of one forwarded transaction, answered as the upstream would have."""
    try:
        reason = Reason(error.reason)
        return refusal_error(Refusal(reason, error.message, error.field))
    except (ValueError, KeyError):
        return DomainError(error.message, reason=error.reason or None)


class SequencerServicer(pb_grpc.SequencerServiceServicer):
    def __init__(self, chain: Chain, intake: Intake, store: SequencerStore, chain_id: int, max_batch: int,
                 upstream: Upstream | None = None,
                 l1_heads: Callable[[], Awaitable[L1Heads | None]] | None = None) -> None:
        self._chain = chain
        self._intake = intake
        self._store = store
        self._chain_id = chain_id
        self._max_batch = max_batch
        self._requests = Idempotency()
        #: A read replica's upstream sequencer: sends go there (``_replica``).
        self._upstream = upstream
        #: Where the node's reading of L1 stands (GetChainInfo's ``include_l1``); None without an L1.
        self._l1_heads = l1_heads

    def _behind(self) -> str:
        """On a read replica, how far it stands behind its upstream (for a read it cannot answer yet)."""
        up = self._upstream
        if up is None:
            return ""
        return (f"; this node is a read replica at block {self._chain.head.number}, its upstream sequencer "
                f"{up.address} at {max(up.head, self._chain.head.number)} as last seen")

    async def SendRawTransaction(self, request: pb.SendRawTransactionRequest, context: Any
                                 ) -> pb.SendRawTransactionResponse:
        if not request.raw_transaction:
            raise InvalidArgument("raw_transaction is empty", reason="EMPTY_TRANSACTION",
                                  field_violations=[FieldViolation("raw_transaction", "required")])

        async def call() -> pb.SendRawTransactionResponse:
            if self._upstream is not None:
                (result,) = (await self._upstream.send([request.raw_transaction], request.request_id)).results
                if result.HasField("error"):
                    raise _forwarded_error(result.error)
                return pb.SendRawTransactionResponse(tx_hash=result.tx_hash)
            (outcome,) = await self._intake.submit([request.raw_transaction])
            if isinstance(outcome, Refusal):
                raise refusal_error(outcome)
            return pb.SendRawTransactionResponse(tx_hash=hex0x(outcome))

        return await self._requests.once(request.request_id, call)

    async def SendRawTransactions(self, request: pb.SendRawTransactionsRequest, context: Any
                                  ) -> pb.SendRawTransactionsResponse:
        count = len(request.raw_transactions)
        if count == 0:
            raise InvalidArgument("raw_transactions is empty", reason="EMPTY_BATCH",
                                  field_violations=[FieldViolation("raw_transactions", "at least one")])
        if count > self._max_batch:
            raise ResourceExhausted(f"{count} transactions in one call; at most {self._max_batch}",
                                    reason="BATCH_TOO_LARGE",
                                    field_violations=[FieldViolation("raw_transactions", f"<= {self._max_batch}")])

        async def call() -> pb.SendRawTransactionsResponse:
            if self._upstream is not None:
                return await self._upstream.send(list(request.raw_transactions), request.request_id)
            outcomes = await self._intake.submit(list(request.raw_transactions))
            response = pb.SendRawTransactionsResponse()
            add = response.results.add  # built in place: a third of the cost of SendResult(...) each
            for o in outcomes:
                if isinstance(o, Refusal):
                    add(error=pb.TransactionError(code=o.reason.status.value[0], reason=o.reason,
                                                  message=o.message, field=o.field))
                else:
                    add(tx_hash="0x" + o.hex())
            return response

        return await self._requests.once(request.request_id, call)

    async def GetTransactionReceipt(self, request: pb.GetTransactionReceiptRequest, context: Any
                                    ) -> pb.GetTransactionReceiptResponse:
        tx_hash = parse_hex(request.tx_hash, 32, "tx_hash")
        # Acknowledged, in the pending log: no row yet. (A read replica acknowledges nothing itself:
        # what waits is the upstream's to say, below.)
        pending = self._intake.pending_entry(tx_hash) if self._upstream is None else None
        if pending is not None:
            receipt = pb.Receipt(tx_hash=hex0x(tx_hash), status=pb.RECEIPT_STATUS_PENDING, nonce=pending.nonce,
                                 to=hex0x(pending.to) if pending.to is not None else "")
            setattr(receipt, "from", hex0x(pending.sender))
            waiting = self._chain.mempool.waiting(tx_hash)
            if waiting is not None:
                receipt.wait_reason, receipt.wait_message = waiting.reason, waiting.message
            if request.include_raw:
                receipt.raw_transaction = pending.raw
            return pb.GetTransactionReceiptResponse(receipt=receipt)
        row = self._store.tx(tx_hash, self._chain_id)
        if row is None:
            deposit = self._store.deposit(tx_hash)
            if deposit is None:
                return pb.GetTransactionReceiptResponse(receipt=await self._not_here(request))
            return pb.GetTransactionReceiptResponse(receipt=self._deposit_receipt(tx_hash, deposit))
        receipt = pb.Receipt(tx_hash=hex0x(row.hash), status=pb.ReceiptStatus.Name(row.status), nonce=row.nonce)
        if request.include_raw:
            receipt.raw_transaction = row.raw
        setattr(receipt, "from", hex0x(row.sender))
        if row.block_number is not None:
            receipt.block_number = row.block_number
            block = self._chain.block(row.block_number)
            receipt.block_hash = hex0x(block.hash) if block is not None else ""
            receipt.index = row.index or 0
            receipt.gas_used = row.gas_used or 0
            receipt.effective_gas_price = str(row.effective_gas_price or 0)
            batch = self._store.batch_of_block(row.block_number)
            if batch is not None:
                receipt.batch_index = batch.inbox_index
                receipt.l1_tx_hash = hex0x(batch.l1_tx_hash)
        if row.drop_reason:
            receipt.drop_reason = row.drop_reason
        to = row.to
        receipt.to = hex0x(to) if to is not None else ""
        return pb.GetTransactionReceiptResponse(receipt=receipt)

    async def _not_here(self, request: pb.GetTransactionReceiptRequest) -> pb.Receipt:
        """A transaction this chain has no record of. A read replica asks its upstream: one still in
        no block there (PENDING, DROPPED) is answered as the upstream says, since no block of it can
        be missing here; one in a block this replica has not reached yet is NOT_FOUND, saying so."""
        if self._upstream is not None:
            theirs = await self._upstream.receipt(request)
            if theirs is not None and not theirs.HasField("block_number"):
                return theirs
            if theirs is not None and theirs.block_number > self._chain.head.number:
                raise NotFound(f"transaction {request.tx_hash} is in block {theirs.block_number} of the upstream "
                               f"sequencer, which this read replica has not reached yet{self._behind()}",
                               reason="TRANSACTION_NOT_FOUND")
            if theirs is not None:
                raise NotFound(f"transaction {request.tx_hash} is in no block of this read replica: its upstream puts "
                               f"it in block {theirs.block_number}, which is not this chain's (derivation from L1)",
                               reason="TRANSACTION_NOT_FOUND")
        raise NotFound(f"no transaction {request.tx_hash}{self._behind()}", reason="TRANSACTION_NOT_FOUND")

    def _deposit_receipt(self, tx_hash: bytes, deposit: StoredDeposit) -> pb.Receipt:
        """A deposit: no sender on L2, no gas; its status is its block's, as a signed transaction's
        (a deposit cannot fail)."""
        receipt = pb.Receipt(tx_hash=hex0x(tx_hash), to=hex0x(deposit.to), status=pb.RECEIPT_STATUS_PENDING,
                             effective_gas_price="0", mint=str(deposit.mint), source_hash=hex0x(deposit.source_hash))
        block_number = deposit.block_number
        if block_number is None:
            return receipt
        receipt.status = self._store.block_status(block_number)  # type: ignore[assignment]
        receipt.block_number = block_number
        receipt.index = deposit.index
        block = self._chain.block(block_number)
        receipt.block_hash = hex0x(block.hash) if block is not None else ""
        batch = self._store.batch_of_block(block_number)
        if batch is not None:
            receipt.batch_index = batch.inbox_index
            receipt.l1_tx_hash = hex0x(batch.l1_tx_hash)
        return receipt

    async def GetAccount(self, request: pb.GetAccountRequest, context: Any) -> pb.GetAccountResponse:
        address = parse_hex(request.address, 20, "address")
        if request.pending and self._upstream is not None:
            return await self._upstream.account(request)
        nonce, balance = self._chain.account(address)  # as of the head it names, not the block being sealed
        if request.pending:  # the pool's executable run: nonces [its account nonce, that + count)
            pool = self._chain.mempool
            held = pool.account(address)
            if held is not None:
                nonce = max(nonce, held.nonce + pool.pending_count(address))
        return pb.GetAccountResponse(address=hex0x(address), balance=str(balance), nonce=nonce,
                                     block_number=self._chain.head.number)

    async def GetBlock(self, request: pb.GetBlockRequest, context: Any) -> pb.GetBlockResponse:
        which = request.WhichOneof("which")
        if which == "hash":
            found = self._store.block_number_of(parse_hex(request.hash, 32, "hash"))
            if found is None:
                raise NotFound(f"no sealed block has hash {request.hash}{self._behind()}", reason="BLOCK_NOT_FOUND")
            number = found
        else:
            number = self._chain.head.number if which in (None, "latest") else request.number
        block = self._chain.block(number)
        if block is None:
            raise OutOfRange(f"block {number} is not sealed yet (head {self._chain.head.number}){self._behind()}",
                             reason="BLOCK_NOT_FOUND")
        reply = block_pb(block)
        if request.include_transactions:
            reply.raw_transactions.extend(self._store.block_raw_txs(number))
        return pb.GetBlockResponse(block=reply)

    async def SubscribeBlocks(self, request: pb.SubscribeBlocksRequest, context: Any
                              ) -> AsyncIterator[pb.SubscribeBlocksResponse]:
        start = request.from_number if request.HasField("from_number") else None
        async for block in self._chain.follow(start):
            reply = block_pb(block)
            if request.include_transactions:  # read with no await since the block was: the same block's
                reply.raw_transactions.extend(self._store.block_raw_txs(block.header.number))
            yield pb.SubscribeBlocksResponse(block=reply)

    async def GetChainInfo(self, request: pb.GetChainInfoRequest, context: Any) -> pb.GetChainInfoResponse:
        reply = pb.GetChainInfoResponse(
            chain_id=self._chain_id, unsafe_block=self._chain.head.number,
            safe_block=self._store.batch_head(SAFE), finalized_block=self._store.batch_head(FINALIZED),
            base_fee=str(self._chain.next_base_fee), genesis_hash=hex0x(self._chain.genesis_hash),
            upstream_block=self._upstream.head if self._upstream is not None else 0,
        )
        if request.include_l1 and self._l1_heads is not None:
            heads = await self._l1_heads()
            if heads is not None:
                reply.l1.CopyFrom(pb.L1Heads(head=_l1_ref(heads.head), current=_l1_ref(heads.current),
                                             safe=_l1_ref(heads.safe), finalized=_l1_ref(heads.finalized)))
        return reply

    async def ListMessages(self, request: pb.ListMessagesRequest, context: Any) -> pb.ListMessagesResponse:
        size = request.page_size or DEFAULT_MESSAGE_PAGE
        if size > MAX_MESSAGE_PAGE:
            raise InvalidArgument(f"page_size {size} is above {MAX_MESSAGE_PAGE}", reason="PAGE_SIZE_TOO_LARGE",
                                  field_violations=[FieldViolation("page_size", f"<= {MAX_MESSAGE_PAGE}")])
        page = self._store.messages(request.from_nonce, size)
        return pb.ListMessagesResponse(
            messages=[message_pb(m, self._sent_by(m)) for m in page.messages], message_count=page.message_count,
            block_number=page.head)

    def _sent_by(self, m: StoredMessage) -> trace.SpanContext | None:
        """The accept span of the call that sent the message's transaction, while remembered: the
        intake's (any call, the last transactions accepted), else the block's record of its
        single-transaction calls (kept until the block is final)."""
        return self._intake.origin(m.tx_hash) or self._chain.traces.sent_in(m.block_number, m.tx_hash)


def _l1_ref(block: L1Block) -> pb.L1BlockRef:
    return pb.L1BlockRef(number=block.number, hash=hex0x(block.hash), parent_hash=hex0x(block.parent_hash),
                         timestamp=block.timestamp)
