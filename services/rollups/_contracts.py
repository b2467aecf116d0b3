"""The rollups' L1 contracts as Python sees them: the output registry and its dispute games.

Reads are ``eth_call``s and logs; writes go through one ``TxSender`` per role (proposer,
challenger), each with its own key and nonce. Every call crosses services.l1, hence the
"l1" call policy (deadline, retry of safe errors, breaker) and a client span.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from enum import IntEnum
from typing import Any, Final

from eth_abi.exceptions import DecodingError

from services.l1 import Artifact, BlockId, Contract, L1Client, Receipt, TxSender

from ._snapshot import Snapshot

#: A move's transaction should be mined within this (anvil: at once; a real L1: a few blocks).
RECEIPT_TIMEOUT_S: Final = 120.0


class OutputStatus(IntEnum):
    NONE = 0
    PROPOSED = 1
    CHALLENGED = 2
    FINALIZED = 3
    INVALIDATED = 4


class GameStatus(IntEnum):
    IN_PROGRESS = 0
    DEFENDER_WON = 1
    CHALLENGER_WON = 2


class Side(IntEnum):
    NONE = 0
    DEFENDER = 1
    CHALLENGER = 2


class Move(IntEnum):
    NONE = 0
    BISECT = 1
    CHOOSE = 2
    STEP = 3


@dataclass(frozen=True, slots=True)
class OutputRecord:
    index: int
    output_root: bytes
    snapshot_hash: bytes
    l2_block: int
    #: The latest finalized output when it was proposed: its games' trace starts at its snapshot.
    start_index: int
    proposed_at: int
    trace_length: int
    proposer: bytes
    status: OutputStatus
    active_games: int
    #: The inbox's batches in L1 blocks <= l1_horizon: its disputes read only those batches.
    batch_limit: int
    #: The last L1 block its derivation read.
    l1_horizon: int


@dataclass(frozen=True, slots=True)
class GameState:
    address: bytes
    output_index: int
    defender: bytes
    challenger: bytes
    target: int
    trace_length: int
    status: GameStatus
    lo: int
    hi: int
    lo_hash: bytes
    hi_hash: bytes
    mid_claim: bytes
    round: int
    next_move: Move
    turn: Side
    defender_clock: int
    challenger_clock: int
    balance: int


class ContractFailed(RuntimeError):
    """A transaction was mined but reverted, or a read got no answer a contract would give."""


async def read(l1: L1Client, contract: Contract, function: str, *args: Any, block: BlockId = "latest"
               ) -> tuple[Any, ...]:
    """``contract.read``, with an undecodable answer (no code there: an L1 that lost its state, a
    wrong address) raised as ContractFailed, which the roles' loops wait out like an L1 outage."""
    try:
        return await contract.read(l1, function, *args, block=block)
    except (DecodingError, ValueError) as exc:
        raise ContractFailed(f"{function}() at 0x{(contract.address or b'').hex()}: {exc}") from None


class Registry:
    """OutputRegistry at ``address``, read through ``l1``."""

    def __init__(self, l1: L1Client, address: bytes) -> None:
        self.l1 = l1
        self.address = address
        self.contract = Contract(Artifact.load("OutputRegistry"), address)
        self.game_artifact = Artifact.load("DisputeGame")

    async def _read(self, function: str, *args: Any) -> tuple[Any, ...]:
        return await read(self.l1, self.contract, function, *args)

    async def param(self, name: str) -> int:
        (value,) = await self._read(name)
        return int(value)

    async def output_count(self) -> int:
        return await self.param("outputCount")

    async def latest_finalized(self) -> int:
        return await self.param("latestFinalized")

    async def output(self, index: int) -> OutputRecord:
        ((root, snap, l2, start, at, length, proposer, status, active, limit, horizon),) = \
            await self._read("output", index)
        return OutputRecord(index, bytes(root), bytes(snap), int(l2), int(start), int(at), int(length),
                            bytes(proposer), OutputStatus(int(status)), int(active), int(limit), int(horizon))

    async def games_of(self, index: int) -> list[int]:
        (ids,) = await self._read("gamesOf", index)
        return [int(i) for i in ids]

    async def game_count(self) -> int:
        return await self.param("gameCount")

    async def game_address(self, game_id: int) -> bytes:
        (address,) = await self._read("game", game_id)
        return bytes(address)

    def game(self, address: bytes) -> Contract:
        return Contract(self.game_artifact, address)

    async def game_state(self, address: bytes) -> GameState:
        """The game as of one L1 block: every field read at the same height, or a move landing
        between two reads would pair one round's range with the next round's claim."""
        game = self.game(address)
        block = await self.l1.block_number()

        async def field(name: str) -> Any:
            return (await read(self.l1, game, name, block=block))[0]

        clocks = await read(self.l1, game, "clocks", block=block)
        return GameState(
            address=address, output_index=int(await field("outputIndex")), defender=bytes(await field("defender")),
            challenger=bytes(await field("challenger")), target=int(await field("target")),
            trace_length=int(await field("traceLength")), status=GameStatus(int(await field("status"))),
            lo=int(await field("lo")), hi=int(await field("hi")), lo_hash=bytes(await field("loHash")),
            hi_hash=bytes(await field("hiHash")), mid_claim=bytes(await field("midClaim")),
            round=int(await field("round")), next_move=Move(int(await field("nextMove"))),
            turn=Side(int(await field("turn"))), defender_clock=int(clocks[0]), challenger_clock=int(clocks[1]),
            balance=await self.l1.get_balance(address, block),
        )

    # -- writes -----------------------------------------------------------------------------------

    async def transact(self, sender: TxSender, to: bytes, data: bytes, value: int = 0) -> Receipt:
        receipt = await sender.wait_receipt(await sender.send(to, data, value), RECEIPT_TIMEOUT_S)
        if not receipt.success:
            raise ContractFailed(f"transaction 0x{receipt.tx_hash.hex()} reverted")
        return receipt

    async def propose(self, sender: TxSender, snapshot: Snapshot, trace_length: int, batch_limit: int,
                      l1_horizon: int) -> Receipt:
        """Propose ``snapshot`` from the latest finalized output (the registry records which)."""
        bond = await self.param("proposalBond")
        data = self.contract.encode_call("propose", snapshot_tuple(snapshot), trace_length, batch_limit, l1_horizon)
        return await self.transact(sender, self.address, data, bond)

    async def challenge(self, sender: TxSender, index: int) -> Receipt:
        bond = await self.param("challengeBond")
        return await self.transact(sender, self.address, self.contract.encode_call("challenge", index), bond)

    async def finalize(self, sender: TxSender, index: int) -> Receipt:
        return await self.transact(sender, self.address, self.contract.encode_call("finalize", index))

    async def move(self, sender: TxSender, game: bytes, function: str, *args: Any, value: int = 0) -> Receipt:
        return await self.transact(sender, game, self.game(game).encode_call(function, *args), value)

    async def move_bond(self, game: bytes, round_: int) -> int:
        (bond,) = await read(self.l1, self.game(game), "moveBond", round_)
        return int(bond)


def snapshot_tuple(snapshot: Snapshot) -> tuple[Any, ...]:
    """The Snapshot struct as eth-abi encodes a tuple: bytes32 fields as bytes, the rest as ints."""
    return tuple(w if isinstance(w, bytes) else int(w) for w in astuple(snapshot))


def snapshot_from_tuple(values: tuple[Any, ...]) -> Snapshot:
    return Snapshot.decode(b"".join(v if isinstance(v, bytes) else int(v).to_bytes(32, "big") for v in values))
