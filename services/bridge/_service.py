"""The gRPC API (l2node.bridge.v1.BridgeService): the store's deposits and withdrawals, their
change events, and withdrawal proofs a wallet can check and send itself.

Bad input is INVALID_ARGUMENT with a reason (MALFORMED_HASH, MALFORMED_ADDRESS, MISSING_KEY,
PAGE_SIZE_TOO_LARGE, BAD_PAGE_TOKEN); an unknown deposit, withdrawal or output is NOT_FOUND; a
withdrawal no output covers yet is FAILED_PRECONDITION with reason NO_OUTPUT_YET.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc

from protos.l2node.bridge.v1 import bridge_pb2 as pb
from protos.l2node.bridge.v1 import bridge_pb2_grpc
from services.l1 import Contract
from services.runtime import (
    BreakerOpen,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unavailable,
)

from ._calls import finalize_calldata, prove_calldata
from ._clients import L2Block, Output
from ._records import DepositRecord, WithdrawalRecord
from ._spans import current_traceparent
from ._store import BridgeStore, Record
from ._withdrawals import Withdrawals

DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 500
_REPLAY_BATCH: Final = 256
#: TrackDeposit without a deadline waits this long for the deposit to be seen.
TRACK_WAIT_S: Final = 30.0


def hex0x(b: bytes) -> str:
    return "0x" + b.hex()


def parse_hex(value: str, size: int, field: str) -> bytes:
    text = value[2:] if value.startswith(("0x", "0X")) else value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size:
        kind = "ADDRESS" if size == 20 else "HASH"
        raise InvalidArgument(f"{field} must be 0x followed by {2 * size} hex digits, not {value!r}",
                              reason=f"MALFORMED_{kind}", field_violations=[FieldViolation(field, f"{size}-byte hex")])
    return raw


def deposit_pb(d: DepositRecord) -> pb.Deposit:
    credited = d.l2_block is not None
    return pb.Deposit(
        deposit_hash=hex0x(d.deposit_hash), source_hash=hex0x(d.source_hash), portal_index=d.portal_index,
        to=hex0x(d.to), value=str(d.value), status=f"DEPOSIT_STATUS_{d.status.name}", l1_block=d.l1_block,
        l1_block_hash=hex0x(d.l1_block_hash), l1_tx_hash=hex0x(d.l1_tx_hash),
        confirmed_at_l1_block=d.confirmed_at_l1_block, l2_block=d.l2_block,
        l2_tx_hash=hex0x(d.deposit_hash) if credited else "", updated_at=d.updated_at,
        **{"from": hex0x(d.sender)})


def withdrawal_pb(w: WithdrawalRecord) -> pb.Withdrawal:
    m = w.message
    return pb.Withdrawal(
        withdrawal_hash=hex0x(w.withdrawal_hash), nonce=m.nonce, sender=hex0x(m.sender), target=hex0x(m.target),
        value=str(m.value), gas_limit=m.gas_limit, data=hex0x(m.data), status=f"WITHDRAWAL_STATUS_{w.status.name}",
        l2_block=w.l2_block,
        l2_tx_hash=hex0x(w.l2_tx_hash), output_index=w.output_index,
        proven_l1_tx_hash=hex0x(w.proven_l1_tx_hash) if w.proven_l1_tx_hash else "",
        prover=hex0x(w.prover) if w.prover else "", proven_at=w.proven_at, matures_at=w.matures_at,
        finalized_l1_tx_hash=hex0x(w.finalized_l1_tx_hash) if w.finalized_l1_tx_hash else "",
        outcome=f"WITHDRAWAL_OUTCOME_{'UNSPECIFIED' if w.outcome == 0 else w.outcome.name}", updated_at=w.updated_at)


def _page(page_size: int, token: str) -> tuple[int | None, int]:
    size = page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise InvalidArgument(f"page_size {size} is above {MAX_PAGE}", reason="PAGE_SIZE_TOO_LARGE",
                              field_violations=[FieldViolation("page_size", f"at most {MAX_PAGE}")])
    if not token:
        return None, size
    try:
        before = int(token)
    except ValueError:
        before = -1
    if before <= 0:
        raise InvalidArgument("page_token is not one this service gave", reason="BAD_PAGE_TOKEN",
                              field_violations=[FieldViolation("page_token", "from a previous response")])
    return before, size


def _involves(record: Record, who: bytes | None, key: bytes | None) -> bool:
    if isinstance(record, DepositRecord):
        parties: tuple[bytes, ...] = (record.sender, record.to)
        keys: tuple[bytes, ...] = (record.deposit_hash, record.l1_tx_hash)
    else:
        parties = (record.message.sender, record.message.target)
        keys = (record.withdrawal_hash, record.l2_tx_hash, record.proven_l1_tx_hash, record.finalized_l1_tx_hash)
    return (who is None or who in parties) and (key is None or key in keys)


class BridgeServicer(bridge_pb2_grpc.BridgeServiceServicer):
    def __init__(self, store: BridgeStore, withdrawals: Withdrawals | None, portal: Contract | None,
                 wake_l1: Callable[[], None] = lambda: None) -> None:
        self._store = store
        self._withdrawals = withdrawals
        self._portal = portal
        #: TrackDeposit's: a client waits on a deposit, so L1 is polled at the base interval.
        self._wake_l1 = wake_l1

    async def GetDeposit(self, request: pb.GetDepositRequest, context: Any) -> pb.GetDepositResponse:
        which = request.WhichOneof("key")
        if which == "deposit_hash":
            found = self._store.deposit(parse_hex(request.deposit_hash, 32, "deposit_hash"))
        elif which == "l1_tx_hash":
            of_tx = self._store.deposits_of_tx(parse_hex(request.l1_tx_hash, 32, "l1_tx_hash"))
            found = of_tx[0] if of_tx else None
        else:
            raise InvalidArgument("give deposit_hash or l1_tx_hash", reason="MISSING_KEY")
        if found is None:
            raise NotFound(f"no deposit {getattr(request, which)} seen", reason="DEPOSIT_NOT_FOUND")
        return pb.GetDepositResponse(deposit=deposit_pb(found))

    async def ListDeposits(self, request: pb.ListDepositsRequest, context: Any) -> pb.ListDepositsResponse:
        who = parse_hex(request.address, 20, "address")
        before, size = _page(request.page_size, request.page_token)
        found, more = self._store.list_deposits(who, before, size)
        return pb.ListDepositsResponse(deposits=[deposit_pb(d) for d in found],
                                       next_page_token=str(more) if more is not None else "")

    async def GetWithdrawal(self, request: pb.GetWithdrawalRequest, context: Any) -> pb.GetWithdrawalResponse:
        return pb.GetWithdrawalResponse(withdrawal=withdrawal_pb(self._withdrawal(request)))

    def _withdrawal(self, request: pb.GetWithdrawalRequest) -> WithdrawalRecord:
        which = request.WhichOneof("key")
        if which == "withdrawal_hash":
            found = self._store.withdrawal(parse_hex(request.withdrawal_hash, 32, "withdrawal_hash"))
        elif which == "l2_tx_hash":
            found = self._store.withdrawal_of_tx(parse_hex(request.l2_tx_hash, 32, "l2_tx_hash"))
        else:
            raise InvalidArgument("give withdrawal_hash or l2_tx_hash", reason="MISSING_KEY")
        if found is None:
            raise NotFound(f"no withdrawal {getattr(request, which)} seen", reason="WITHDRAWAL_NOT_FOUND")
        return found

    async def ListWithdrawals(self, request: pb.ListWithdrawalsRequest, context: Any) -> pb.ListWithdrawalsResponse:
        who = parse_hex(request.address, 20, "address")
        before, size = _page(request.page_size, request.page_token)
        found, more = self._store.list_withdrawals(who, before, size)
        return pb.ListWithdrawalsResponse(withdrawals=[withdrawal_pb(w) for w in found],
                                          next_page_token=str(more) if more is not None else "")

    @staticmethod
    async def _output_for(tracker: Withdrawals, record: WithdrawalRecord, request: pb.GetWithdrawalProofRequest
                          ) -> tuple[Output, L2Block]:
        """The output the request names (or the rule's choice), with this node's block there."""
        assert tracker.proofs is not None
        await tracker.refresh_outputs()
        if request.HasField("output_index"):
            output = tracker.outputs.get(request.output_index)
            if output is None:
                raise NotFound(f"no output {request.output_index} on L1", reason="OUTPUT_NOT_FOUND")
            return await tracker.proofs.for_output(record, output)
        chosen = await tracker.proofs.choose(record, tracker.outputs.values())
        if chosen is None:
            raise FailedPrecondition(f"no output covers L2 block {record.l2_block} yet", reason="NO_OUTPUT_YET")
        return chosen

    async def GetWithdrawalProof(self, request: pb.GetWithdrawalProofRequest, context: Any
                                 ) -> pb.GetWithdrawalProofResponse:
        record = self._withdrawal(pb.GetWithdrawalRequest(withdrawal_hash=request.withdrawal_hash))
        tracker = self._withdrawals
        if tracker is None or self._portal is None or tracker.proofs is None:
            raise Unavailable("this bridge follows no L1, sequencer or rollups worker", reason="NOT_CONFIGURED")
        try:
            output, block = await self._output_for(tracker, record, request)
        except (grpc.aio.AioRpcError, BreakerOpen, DeadlineExceeded) as exc:
            raise Unavailable(f"the sequencer or the rollups worker cannot be asked now: {type(exc).__name__}",
                              reason="DEPENDENCY_UNAVAILABLE", retry_delay_s=1.0) from None
        assert tracker.proofs is not None
        proof = tracker.proofs.build(record, output, block)
        root, path = proof.root_proof, proof
        return pb.GetWithdrawalProofResponse(
            withdrawal=withdrawal_pb(record), output_index=output.index, output_root=hex0x(output.output_root),
            output_l2_block=output.l2_block, output_status=output.word,
            output_root_proof=pb.OutputRootProof(version=hex0x(root.version), state_root=hex0x(root.state_root),
                                                 message_passer_root=hex0x(root.message_passer_root),
                                                 block_hash=hex0x(root.block_hash)),
            message_proof=pb.MessageProof(index=path.index, count=path.count,
                                          siblings=[hex0x(s) for s in path.siblings]),
            portal=hex0x(self._portal.address or b""), prove_calldata=hex0x(prove_calldata(self._portal, proof)),
            finalize_calldata=hex0x(finalize_calldata(self._portal, record.message, record.prover))
            if record.prover else "",
            proof_maturity_delay_s=tracker.maturity_delay_s)

    async def SubscribeEvents(self, request: pb.SubscribeEventsRequest, context: Any
                              ) -> AsyncIterator[pb.SubscribeEventsResponse]:
        who = parse_hex(request.address, 20, "address") if request.address else None
        key = parse_hex(request.hash, 32, "hash") if request.hash else None
        following = request.from_sequence if request.HasField("from_sequence") else self._store.last_sequence() + 1
        while True:
            changed = self._store.changed()
            batch = self._store.events(following, _REPLAY_BATCH)
            for sequence, record in batch:
                following = sequence + 1
                if not _involves(record, who, key):
                    continue
                if isinstance(record, DepositRecord):
                    yield pb.SubscribeEventsResponse(sequence=sequence, deposit=deposit_pb(record))
                else:
                    yield pb.SubscribeEventsResponse(sequence=sequence, withdrawal=withdrawal_pb(record))
            if len(batch) < _REPLAY_BATCH:
                await changed.wait()

    async def TrackDeposit(self, request: pb.TrackDepositRequest, context: Any) -> pb.TrackDepositResponse:
        tx_hash = parse_hex(request.l1_tx_hash, 32, "l1_tx_hash")
        self._wake_l1()
        remaining = context.time_remaining()
        loop = asyncio.get_running_loop()
        # Answer NOT_FOUND before the caller's deadline rather than let it expire: a quarter of it
        # ahead (0.25-1 s), so that a busy loop's late wake-up still answers in time (0.2 s did not
        # under a loaded CI machine).
        margin = 0.0 if remaining is None else min(1.0, max(0.25, remaining / 4))
        deadline = loop.time() + (TRACK_WAIT_S if remaining is None else max(0.0, remaining - margin))
        traceparent = current_traceparent()
        while True:
            changed = self._store.changed()
            found = self._store.track(tx_hash, traceparent)
            if found:
                return pb.TrackDepositResponse(deposits=[deposit_pb(d) for d in found])
            left = deadline - loop.time()
            if left <= 0:
                raise NotFound(f"no deposit of L1 transaction {request.l1_tx_hash} seen yet",
                               reason="DEPOSIT_NOT_FOUND")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
