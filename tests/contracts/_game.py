"""Shared by the OutputRegistry and DisputeGame tests: a registry deployed on anvil with the
counter-machine verifier (contracts/StepVerifierHarness.sol), and parties that play its games.

The counter machine's step adds one to the snapshot's block number until the trace's target
block, then stands still (it reads no batch: the trace's batch limit and L1 horizon change
nothing); so the honest snapshot at position k of a trace from `start` is `start` with number
min(start.number + k, target), and a liar is anyone who claims otherwise. The harness also
stands for the inbox (verifier.inbox() is itself): `add_batch` appends a batch at an L1 block,
against which the registry checks a proposal's batch limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass, field, replace
from enum import IntEnum
from typing import Any

import pytest

from protocol import DEV_PRIVATE_KEYS
from services.l1 import Artifact, Contract, ContractError, L1Client, LocalSigner, Receipt, RpcError, TxSender, keccak
from services.rollups._contracts import GameStatus, Move, OutputStatus
from services.rollups._snapshot import Snapshot
from tests.l1.anvil import Anvil

REGISTRY = Artifact.load("OutputRegistry")
GAME = Artifact.load("DisputeGame")
VERIFIER = Artifact.load("StepVerifierHarness")
DEPLOYER, ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE = (LocalSigner(k) for k in DEV_PRIVATE_KEYS[:8])
ETHER = 10**18


@dataclass(frozen=True)
class Params:
    proposal_bond: int = ETHER
    challenge_bond: int = ETHER // 2
    move_bond_base: int = ETHER // 100
    window: int = 600
    clock: int = 300
    max_trace_length: int = 2**32

    def deploy_args(self, anchor: Snapshot, verifier: bytes) -> tuple[Any, ...]:
        return (abi(anchor), verifier, self.proposal_bond, self.challenge_bond, self.move_bond_base, self.window,
                self.clock, self.max_trace_length)


def abi(s: Snapshot) -> tuple[Any, ...]:
    """A Snapshot as the ABI tuple Snapshots.Snapshot."""
    return tuple(int(v) if isinstance(v, IntEnum) else v for v in astuple(s))


ANCHOR = Snapshot(state_root=keccak(b"state 0"), message_root=keccak(b"messages 0"), block_hash=keccak(b"block 0"),
                  number=100, timestamp=1_700_000_000, base_fee=10**9, gas_used=21_000, gas_limit=30_000_000,
                  l1_origin_number=5, batch_index=3, item_index=7, deposit_index=11, forced_index=13)


def honest(start: Snapshot, target: int, position: int) -> Snapshot:
    """The counter machine's snapshot `position` steps after `start`, on a trace ending at `target`."""
    return replace(start, number=min(start.number + position, target))


def forged(s: Snapshot) -> Snapshot:
    """A different snapshot at the same block: what a lying proposer claims."""
    return replace(s, state_root=keccak(b"forged " + s.state_root))


@dataclass
class Registry:
    """An OutputRegistry on anvil (its own verifier), with a sender per signer."""

    l1: L1Client
    chain: Anvil
    params: Params
    contract: Contract
    verifier: Contract
    deploy_receipt: Receipt
    senders: dict[bytes, TxSender] = field(default_factory=dict)
    gas: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    async def deploy(cls, l1: L1Client, chain: Anvil, params: Params | None = None,
                     anchor: Snapshot = ANCHOR) -> Registry:
        params = params or Params()
        deployer = await TxSender.create(l1, DEPLOYER)
        receipt = await deployer.wait_receipt(await deployer.send(None, Contract(VERIFIER).encode_deploy()), 5)
        assert receipt.success and receipt.contract_address is not None
        verifier = Contract(VERIFIER, receipt.contract_address)
        data = Contract(REGISTRY).encode_deploy(*params.deploy_args(anchor, receipt.contract_address))
        receipt = await deployer.wait_receipt(await deployer.send(None, data), 5)
        assert receipt.success and receipt.contract_address is not None
        return cls(l1, chain, params, Contract(REGISTRY, receipt.contract_address), verifier, receipt,
                   {DEPLOYER.address: deployer})

    # --- transactions and calls ------------------------------------------------------------------

    async def transact(self, signer: LocalSigner, target: Contract, function: str, *args: Any, value: int = 0,
                       gas: int | None = None) -> Receipt:
        """A mined transaction (with `gas`, even one that reverts: the estimate is skipped)."""
        assert target.address is not None
        sender = self.senders.get(signer.address)
        if sender is None:
            sender = self.senders[signer.address] = await TxSender.create(self.l1, signer)
        tx_hash = await sender.send(target.address, target.encode_call(function, *args), value, gas=gas)
        receipt = await sender.wait_receipt(tx_hash, 5)
        if receipt.success:
            self.gas.setdefault(function, []).append(receipt.gas_used)
        return receipt

    async def revert_of(self, signer: LocalSigner, target: Contract, function: str, *args: Any, value: int = 0,
                        decoder: Contract | None = None) -> ContractError:
        """The custom error `function` reverts with, called by `signer` in the next block."""
        assert target.address is not None
        with pytest.raises(RpcError) as caught:
            await self.l1.call(target.address, target.encode_call(function, *args), sender=signer.address,
                               value=value, block="pending")
        assert caught.value.code == 3  # execution reverted, with revert data
        error = (decoder or target).decode_error(caught.value.revert_data)
        assert error is not None, caught.value.revert_data
        return error

    async def read(self, function: str, *args: Any) -> Any:
        (value,) = await self.contract.read(self.l1, function, *args)
        return value

    def events(self, receipt: Receipt, contract: Contract | None = None) -> list[tuple[str, dict[str, Any]]]:
        decoder = contract or self.contract
        out = []
        for log in receipt.logs:
            event = decoder.decode_log(log) if log.address == decoder.address else None
            if event is not None:
                out.append((event.name, dict(event.args)))
        return out

    # --- time ------------------------------------------------------------------------------------

    async def now(self) -> int:
        block = await self.l1.get_block("latest")
        assert block is not None
        return block.timestamp

    def at(self, timestamp: int) -> None:
        """The next block (a transaction, a pending call) is at `timestamp`."""
        self.chain.rpc("evm_setNextBlockTimestamp", timestamp)

    def mine_at(self, timestamp: int) -> None:
        """A block at `timestamp`: views read as of then."""
        self.at(timestamp)
        self.chain.rpc("evm_mine")

    # --- the registry ----------------------------------------------------------------------------

    async def output(self, index: int) -> dict[str, Any]:
        names = ("output_root", "snapshot_hash", "l2_block", "start_index", "proposed_at", "trace_length",
                 "proposer", "status", "active_games", "batch_limit", "l1_horizon")
        values = dict(zip(names, await self.read("output", index), strict=True))
        values["status"] = OutputStatus(values["status"])
        return values

    async def status(self, index: int) -> OutputStatus:
        return OutputStatus((await self.output(index))["status"])

    async def add_batch(self, l1_block: int) -> None:
        """A batch in the inbox (the harness), included in `l1_block`."""
        assert (await self.transact(DEPLOYER, self.verifier, "addBatch", l1_block)).success

    async def bounds(self, l1_horizon: int | None = None) -> tuple[int, int]:
        """(batchLimit, l1Horizon) for a proposal: by default the latest block as the horizon, and
        the number of batches the inbox holds in blocks up to it."""
        horizon = await self.l1.block_number() if l1_horizon is None else l1_horizon
        (count,) = await self.verifier.read(self.l1, "batchCount")
        blocks = [(await self.verifier.read(self.l1, "batchBlocks", i))[0] for i in range(count)]
        return sum(1 for b in blocks if b <= horizon), horizon

    async def propose(self, signer: LocalSigner, snapshot: Snapshot, trace_length: int,
                      l1_horizon: int | None = None) -> int:
        """Propose (from the latest finalized output, as the registry decides); the new index."""
        limit, horizon = await self.bounds(l1_horizon)
        receipt = await self.transact(signer, self.contract, "propose", abi(snapshot), trace_length, limit, horizon,
                                      value=self.params.proposal_bond)
        assert receipt.success
        ((name, args),) = self.events(receipt)
        assert name == "OutputProposed"
        return int(args["index"])

    async def challenge(self, signer: LocalSigner, index: int) -> Contract:
        receipt = await self.transact(signer, self.contract, "challenge", index, value=self.params.challenge_bond)
        assert receipt.success
        ((name, args),) = self.events(receipt)
        assert name == "OutputChallenged" and args["challenger"] == signer.address
        return Contract(GAME, args["game"])


# --- parties -------------------------------------------------------------------------------------

Claims = Callable[[int], bytes]


@dataclass(frozen=True)
class Trace:
    """The honest trace of a game: the start output's snapshot, the target block, the length."""

    start: Snapshot
    target: int
    length: int

    def snapshot(self, position: int) -> Snapshot:
        return honest(self.start, self.target, position)

    def claim(self, position: int) -> bytes:
        return self.snapshot(position).commitment()


def honest_claims(trace: Trace) -> Claims:
    return trace.claim


def lying_from(trace: Trace, first_lie: int) -> Claims:
    """A defender whose trace is honest up to `first_lie` and wrong from there on (its end claim too)."""
    return lambda p: trace.claim(p) if p < first_lie else forged(trace.snapshot(p)).commitment()


@dataclass
class Played:
    status: GameStatus
    rounds: int
    receipts: list[tuple[str, Receipt]]


async def play(reg: Registry, game: Contract, trace: Trace, defender: LocalSigner, challenger: LocalSigner, *,
               claims: Claims, agrees: Callable[[int, bytes], bool], stepper: LocalSigner | None = None) -> Played:
    """Play `game` to its end: the defender claims `claims(mid)`, the challenger agrees when
    `agrees(mid, claim)`, and `stepper` (the challenger by default) steps from the snapshot at lo."""
    receipts: list[tuple[str, Receipt]] = []
    while True:
        (move,) = await game.read(reg.l1, "nextMove")
        (round_,) = await game.read(reg.l1, "round")
        (bond,) = await game.read(reg.l1, "moveBond", round_)
        if move == Move.BISECT:
            (mid,) = await game.read(reg.l1, "mid")
            receipt = await reg.transact(defender, game, "bisect", claims(mid), value=bond)
        elif move == Move.CHOOSE:
            (mid,) = await game.read(reg.l1, "mid")
            (claim,) = await game.read(reg.l1, "midClaim")
            receipt = await reg.transact(challenger, game, "choose", agrees(mid, claim), value=bond)
        elif move == Move.STEP:
            (lo,) = await game.read(reg.l1, "lo")
            pre = trace.snapshot(lo)
            assert (await game.read(reg.l1, "loHash"))[0] == pre.commitment()  # both agreed on lo
            receipt = await reg.transact(stepper or challenger, game, "step", abi(pre), pre.commitment())
        else:
            (status,) = await game.read(reg.l1, "status")
            return Played(GameStatus(status), round_, receipts)
        assert receipt.success
        receipts.append((Move(move).name, receipt))
