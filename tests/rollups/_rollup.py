"""A rollup on a real anvil, for the dispute and attack tests: the real contracts (deployed as
`l2node deploy` does), a batcher posting valid L2 blocks, the honest proposer and challenger (the
rollups worker's own Proposer and Challenger classes, each with its own derivation, driven one
round at a time), and attackers sending their own transactions to the contracts."""

from __future__ import annotations

import asyncio
import pathlib
from dataclasses import dataclass, field

import pytest

from bench.rollup_dispute import PARAMS
from bench.rollup_verify import transfers
from l2node.node.deploy import (
    DEVNET_BATCHER,
    DEVNET_BATCHER_KEY,
    DEVNET_CHALLENGER_KEY,
    DEVNET_DEPLOYER_KEY,
    DEVNET_PROPOSER_KEY,
    RollupParams,
    deploy_contracts,
)
from protocol import DEV_PRIVATE_KEYS, BatchBlock, devnet_genesis, encode_batch
from services.l1 import Artifact, Contract, ContractError, L1Client, LocalSigner, RpcError, TxSender
from services.rollups._challenger import Challenger
from services.rollups._contracts import (
    GameState,
    GameStatus,
    OutputRecord,
    OutputStatus,
    Registry,
    Side,
    snapshot_tuple,
)
from services.rollups._disputes import Player
from services.rollups._machine import DerivedBlock, Rules
from services.rollups._proposer import Proposer
from services.rollups._settings import RollupsSettings
from services.rollups._snapshot import Snapshot
from services.rollups._trace import DerivedChain
from services.rollups._witness import step_proof

#: L1 keys of the attackers (anvil's dev accounts; 0, 1, 8 and 9 are the deployer, the batcher,
#: the honest proposer and the honest challenger).
ROGUE, ACCOMPLICE = DEV_PRIVATE_KEYS[3], DEV_PRIVATE_KEYS[4]
#: One proposal per new L2 block, so that each proposer round proposes.
SETTINGS = RollupsSettings(chain_id=PARAMS.chain_id, output_interval_blocks=1, confirmation_depth=0)


@dataclass
class Rollup:
    """The contracts on anvil, a batcher, the honest roles; ``extend`` makes L2 blocks."""

    l1: L1Client
    params: RollupParams
    inbox: Contract
    portal: Contract
    registry: Registry
    batcher: TxSender
    proposer: Proposer
    challenger: Challenger
    #: L2 blocks posted so far, and the transfers they used.
    posted: int = 0
    _txs: list[bytes] = field(default_factory=lambda: transfers(200))

    @property
    def chain(self) -> DerivedChain:
        """The challenger's derivation (the proposer has its own)."""
        return self.challenger.chain

    def derived(self, number: int) -> DerivedBlock:
        block = self.chain.block(number)
        assert block is not None, f"L2 block {number} is not derived"
        return block

    async def post(self, blocks: list[BatchBlock]) -> None:
        """Post ``blocks`` as one batch (the only place that knows the inbox's call)."""
        data = encode_batch(blocks)
        call = self.inbox.encode_call("appendBatch", data)
        assert self.inbox.address is not None
        assert (await self.batcher.wait_receipt(await self.batcher.send(self.inbox.address, call), 60)).success

    async def extend(self, count: int, txs_per_block: int = 2) -> int:
        """Post ``count`` more valid L2 blocks in one batch (origin: the L1 head), and let both
        honest roles derive them; the new L2 head."""
        head = await self.l1.get_block("latest")
        assert head is not None
        blocks = []
        for n in range(self.posted + 1, self.posted + count + 1):
            txs = tuple(self._txs[(n - 1) * txs_per_block : n * txs_per_block])
            blocks.append(BatchBlock(n, 100 + n, head.number, head.hash, txs))
        await self.post(blocks)
        self.posted += count
        await self.sync()
        assert self.chain.head.header.number == self.posted
        return self.posted

    async def sync(self) -> None:
        await self.proposer.chain.sync()
        await self.chain.sync()

    async def propose(self, sender: TxSender, snapshot: Snapshot, trace_length: int) -> int:
        """``sender`` proposes ``snapshot`` with the bounds of what L1 holds now; its index."""
        index = await self.registry.output_count()
        await self.registry.propose(sender, snapshot, trace_length, self.chain.batch_count, self.chain.horizon)
        return index

    async def refusal(self, who: TxSender, snapshot: Snapshot, trace_length: int, batch_limit: int | None = None,
                      l1_horizon: int | None = None) -> ContractError:
        """The error ``who``'s proposal reverts with (bounds: what L1 holds now, unless given)."""
        limit = self.chain.batch_count if batch_limit is None else batch_limit
        horizon = self.chain.horizon if l1_horizon is None else l1_horizon
        data = self.registry.contract.encode_call("propose", snapshot_tuple(snapshot), trace_length, limit, horizon)
        with pytest.raises(RpcError) as caught:
            await self.l1.call(self.registry.address, data, sender=who.address, value=self.params.proposal_bond,
                               block="pending")
        error = self.registry.contract.decode_error(caught.value.revert_data)
        assert error is not None
        return error

    async def pass_time(self, seconds: int) -> None:
        await self.l1.request("evm_increaseTime", seconds)
        await self.l1.request("evm_mine")

    async def credit(self, who: TxSender) -> int:
        """What the registry owes ``who`` (bonds won or returned, not yet withdrawn)."""
        (owed,) = await self.registry.contract.read(self.l1, "credit", who.address)
        return int(owed)

    async def statuses(self) -> list[OutputStatus]:
        return [(await self.registry.output(i)).status for i in range(await self.registry.output_count())]

    async def defend(self, sender: TxSender, out: OutputRecord, claims: list[bytes], game: bytes) -> GameStatus:
        """``sender`` (the output's proposer) plays the defender with ``claims`` (positions
        0..traceLength of its trace), stepping from the real derivation when the step is its."""
        start = await self.registry.output(out.start_index)
        traces = self.chain.traces(out.batch_limit, out.l1_horizon)
        return await Player(self.registry, sender, traces, step_proof, start.l2_block, claims, Side.DEFENDER).play(game)

    async def attack(self, challenger: TxSender, game: bytes, claims: list[bytes]) -> GameStatus:
        """``challenger`` plays ``claims`` as its trace (it agrees with a mid claim iff it equals its own)."""
        out = await self.registry.output((await self.registry.game_state(game)).output_index)
        start = await self.registry.output(out.start_index)
        traces = self.chain.traces(out.batch_limit, out.l1_horizon)
        player = Player(self.registry, challenger, traces, step_proof, start.l2_block, claims, Side.CHALLENGER)
        return await player.play(game)

    async def lie_to_the_step(self, liar: TxSender, game_id: int, out: OutputRecord) -> GameState:
        """The honest challenger's ``play`` against ``liar`` defending ``out`` with the trace L1
        defines but its own end claim: the dispute comes down to the last step, from a snapshot both
        agree on, which L1 executes. Both sides see the challenger win; the game once over."""
        claims = await self.honest_claims(out)
        claims[-1] = out.snapshot_hash
        address = await self.registry.game_address(game_id)
        results = await asyncio.gather(self.challenger.play(game_id, Side.CHALLENGER, out),
                                       self.defend(liar, out, claims, address))
        assert results == [GameStatus.CHALLENGER_WON] * 2
        return await self.registry.game_state(address)

    async def honest_claims(self, out: OutputRecord) -> list[bytes]:
        """The commitments of ``out``'s trace, positions 0..traceLength, as L1 defines them."""
        start = await self.registry.output(out.start_index)
        traces = self.chain.traces(out.batch_limit, out.l1_horizon)
        snapshots = await asyncio.to_thread(traces.snapshots, start.l2_block, out.l2_block, out.trace_length)
        return [s.commitment() for s in snapshots]


async def rollup(url: str, data_dir: pathlib.Path, params: RollupParams = PARAMS,
                 settings: RollupsSettings = SETTINGS) -> Rollup:
    addresses = await deploy_contracts(url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, data_dir, params=params)
    l1 = L1Client(url)
    inbox = Contract(Artifact.load("BatchInbox"), addresses.batch_inbox)
    portal = Contract(Artifact.load("DepositPortal"), addresses.deposit_portal)
    registry = Registry(l1, addresses.output_registry)
    rules = Rules(chain_id=params.chain_id, sequencer_window=params.sequencer_window)

    def chain() -> DerivedChain:
        return DerivedChain(l1, inbox, portal, devnet_genesis(), rules, addresses.block_number, 0)

    proposer_sender = await sender(l1, DEVNET_PROPOSER_KEY)
    proposer = Proposer(chain(), registry, proposer_sender, settings)
    challenger = Challenger(chain(), registry, await sender(l1, DEVNET_CHALLENGER_KEY), settings, step_proof,
                            defender=proposer_sender)
    return Rollup(l1, params, inbox, portal, registry, await sender(l1, DEVNET_BATCHER_KEY), proposer, challenger)


async def sender(l1: L1Client, key: str | bytes) -> TxSender:
    return await TxSender.create(l1, LocalSigner(key))
