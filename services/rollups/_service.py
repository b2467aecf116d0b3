"""The gRPC API (l2node.rollups.v1.RollupsService): outputs and disputes as L1 holds them.

Everything is read from the registry and the game contracts (through the "l1" call policy), so
two nodes on the same L1 answer alike, and nothing here can disagree with L1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

from protocol import OUTPUT_VERSION
from protos.l2node.rollups.v1 import rollups_pb2 as pb
from protos.l2node.rollups.v1 import rollups_pb2_grpc
from services.runtime import FailedPrecondition, InvalidArgument, NotFound

from ._contracts import GameStatus, OutputRecord, Registry, Side, snapshot_from_tuple

DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 500
_STATUS: Final = {1: pb.OUTPUT_STATUS_PROPOSED, 2: pb.OUTPUT_STATUS_CHALLENGED, 3: pb.OUTPUT_STATUS_FINALIZED,
                  4: pb.OUTPUT_STATUS_INVALIDATED}
_GAME: Final = {GameStatus.IN_PROGRESS: pb.DISPUTE_STATUS_IN_PROGRESS,
                GameStatus.DEFENDER_WON: pb.DISPUTE_STATUS_DEFENDER_WON,
                GameStatus.CHALLENGER_WON: pb.DISPUTE_STATUS_CHALLENGER_WON}
_SIDE: Final = {Side.NONE: pb.SIDE_UNSPECIFIED, Side.DEFENDER: pb.SIDE_DEFENDER, Side.CHALLENGER: pb.SIDE_CHALLENGER}


def hex0x(b: bytes) -> str:
    return "0x" + b.hex()


def _page(page_size: int, token: str) -> tuple[int, int]:
    size = page_size or DEFAULT_PAGE
    if size > MAX_PAGE:
        raise InvalidArgument(f"page_size {size} is above {MAX_PAGE}", reason="PAGE_SIZE_TOO_LARGE")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise InvalidArgument("page_token is not one this service gave", reason="BAD_PAGE_TOKEN") from None
    if start < 0:
        raise InvalidArgument("page_token is not one this service gave", reason="BAD_PAGE_TOKEN")
    return start, size


class RollupsServicer(rollups_pb2_grpc.RollupsServiceServicer):
    def __init__(self, registry: Registry | None, from_block: int, poll_s: float) -> None:
        self._registry_or_none = registry
        self._from_block = from_block
        self._poll_s = poll_s

    @property
    def _registry(self) -> Registry:
        if self._registry_or_none is None:
            raise FailedPrecondition("this node has no output registry configured (l1.rpc and l1.contracts)",
                                     reason="NO_REGISTRY")
        return self._registry_or_none

    async def _output(self, index: int) -> pb.Output:
        count = await self._registry.output_count()
        if index >= count:
            raise NotFound(f"no output {index}: there are {count}", reason="OUTPUT_NOT_FOUND")
        return await self._output_pb(await self._registry.output(index))

    async def _output_pb(self, o: OutputRecord) -> pb.Output:
        window = await self._registry.param("challengeWindow")
        return pb.Output(
            index=o.index, output_root=hex0x(o.output_root), l2_block=o.l2_block, parent_index=o.start_index,
            proposer=hex0x(o.proposer), proposed_at=o.proposed_at, window_ends_at=o.proposed_at + window,
            status=_STATUS.get(int(o.status), pb.OUTPUT_STATUS_UNSPECIFIED), snapshot_hash=hex0x(o.snapshot_hash),
            trace_length=o.trace_length, dispute_ids=await self._registry.games_of(o.index),
            batch_limit=o.batch_limit,
        )

    async def ListOutputs(self, request: pb.ListOutputsRequest, context: Any) -> pb.ListOutputsResponse:
        start, size = _page(request.page_size, request.page_token)
        count = await self._registry.output_count()
        end = min(count, start + size)
        outputs = [await self._output(i) for i in range(start, end)]
        return pb.ListOutputsResponse(outputs=outputs, next_page_token=str(end) if end < count else "")

    async def GetOutput(self, request: pb.GetOutputRequest, context: Any) -> pb.GetOutputResponse:
        return pb.GetOutputResponse(output=await self._output(request.index))

    async def GetOutputAtBlock(self, request: pb.GetOutputAtBlockRequest, context: Any
                               ) -> pb.GetOutputAtBlockResponse:
        count = await self._registry.output_count()
        for index in range(1, count):  # not the anchor: genesis holds no transaction to prove
            o = await self._registry.output(index)
            if o.l2_block >= request.l2_block and int(o.status) in (1, 2, 3):
                preimage = await self._preimage(o)
                return pb.GetOutputAtBlockResponse(output=await self._output_pb(o), preimage=preimage)
        raise NotFound(f"no output covers L2 block {request.l2_block} yet", reason="OUTPUT_NOT_FOUND")

    async def _preimage(self, o: OutputRecord) -> pb.OutputRootPreimage:
        """From the proposal's own calldata: the snapshot the registry hashed into the output root."""
        registry = self._registry
        topic = registry.contract.topic("OutputProposed")
        logs = await registry.l1.get_logs(self._from_block, "latest", address=registry.address,
                                          topics=[[topic], [o.index.to_bytes(32, "big")]])
        for log in logs:
            tx = await registry.l1.get_transaction(log.tx_hash)
            if tx is None:
                continue
            try:
                snapshot, *_ = registry.contract.decode_input("propose", tx.input)
            except ValueError:
                continue  # not a direct propose() call (say, through a contract wallet)
            s = snapshot_from_tuple(tuple(snapshot))
            if s.output_root() == o.output_root:
                return pb.OutputRootPreimage(version=hex0x(OUTPUT_VERSION), state_root=hex0x(s.state_root),
                                             message_passer_root=hex0x(s.message_root),
                                             block_hash=hex0x(s.block_hash))
        raise NotFound(f"the proposal of output {o.index} is not in the L1 logs", reason="PREIMAGE_NOT_FOUND")

    async def _dispute(self, game_id: int) -> pb.Dispute:
        count = await self._registry.game_count()
        if game_id >= count:
            raise NotFound(f"no dispute {game_id}: there are {count}", reason="DISPUTE_NOT_FOUND")
        address = await self._registry.game_address(game_id)
        g = await self._registry.game_state(address)
        rounds = max(0, (g.trace_length - 1).bit_length())
        return pb.Dispute(
            id=game_id, game=hex0x(address), output_index=g.output_index, defender=hex0x(g.defender),
            challenger=hex0x(g.challenger), status=_GAME[g.status], lo=g.lo, hi=g.hi, lo_claim=hex0x(g.lo_hash),
            hi_claim=hex0x(g.hi_hash), round=g.round, max_rounds=rounds, turn=_SIDE[g.turn],
            defender_clock_remaining_s=g.defender_clock, challenger_clock_remaining_s=g.challenger_clock,
            bonds=str(g.balance), moves=await self._moves(address),
        )

    async def _moves(self, game: bytes) -> list[pb.Move]:
        contract = self._registry.game(game)
        logs = await self._registry.l1.get_logs(self._from_block, "latest", address=game)
        moves = []
        for log in sorted(logs, key=lambda x: (x.block_number, x.log_index)):
            event = contract.decode_log(log)
            if event is None:
                continue
            a = event.args
            move = pb.Move(l1_tx_hash=hex0x(log.tx_hash), l1_block=log.block_number)
            if event.name == "Bisected":
                move.MergeFrom(pb.Move(kind=pb.MOVE_KIND_BISECT, round=int(a["round"]), position=int(a["mid"]),
                                       claim=hex0x(bytes(a["claim"])), side=pb.SIDE_DEFENDER))
            elif event.name == "Chose":
                move.MergeFrom(pb.Move(kind=pb.MOVE_KIND_CHOOSE, round=int(a["round"]), agree=bool(a["agree"]),
                                       side=pb.SIDE_CHALLENGER))
            elif event.name == "Stepped":
                move.MergeFrom(pb.Move(kind=pb.MOVE_KIND_STEP, claim=hex0x(bytes(a["post"]))))
            elif event.name == "TimedOut":
                move.MergeFrom(pb.Move(kind=pb.MOVE_KIND_TIMEOUT, side=_SIDE[Side(int(a["side"]))]))
            else:
                continue
            moves.append(move)
        return moves

    async def GetDispute(self, request: pb.GetDisputeRequest, context: Any) -> pb.GetDisputeResponse:
        return pb.GetDisputeResponse(dispute=await self._dispute(request.id))

    async def ListDisputes(self, request: pb.ListDisputesRequest, context: Any) -> pb.ListDisputesResponse:
        start, size = _page(request.page_size, request.page_token)
        count = await self._registry.game_count()
        end = min(count, start + size)
        disputes = [await self._dispute(i) for i in range(start, end)]
        return pb.ListDisputesResponse(disputes=disputes, next_page_token=str(end) if end < count else "")

    async def SubscribeOutputs(self, request: pb.SubscribeOutputsRequest, context: Any
                               ) -> AsyncIterator[pb.SubscribeOutputsResponse]:
        seen: dict[int, tuple[int, int]] = {}
        settled: set[int] = set()  # finalized or invalidated: never changes again, never re-read
        while True:
            count = await self._registry.output_count()
            for index in range(request.from_index, count):
                if index in settled:
                    continue
                o = await self._registry.output(index)
                if int(o.status) in (3, 4):
                    settled.add(index)
                if seen.get(index) == (int(o.status), o.active_games):
                    continue
                seen[index] = (int(o.status), o.active_games)
                yield pb.SubscribeOutputsResponse(output=await self._output_pb(o))
            await asyncio.sleep(self._poll_s)
