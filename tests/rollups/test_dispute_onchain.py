"""Disputes played to the one-step proof by the real contracts.

A dispute over hundreds of transactions: the faulty proposer's trace goes wrong at one
transaction in the middle of the range: bisection must narrow the range to exactly that step in
at most ceil(log2 n) rounds, and L1's re-execution of that one transfer must decide for the
challenger.

Outputs from the future: an output claiming an L2 block that no batch held when it was proposed
is challenged by the honest challenger as soon as it has derived every batch below the output's
batch limit, and loses, even when a batch posted later derives exactly the claimed block.
"""

from __future__ import annotations

import asyncio
import pathlib
from dataclasses import dataclass, replace

from bench.rollup_dispute import PARAMS, RULES, play_dispute
from bench.rollup_verify import transfers
from l2node.node.deploy import (
    DEVNET_BATCHER,
    DEVNET_BATCHER_KEY,
    DEVNET_CHALLENGER_KEY,
    DEVNET_DEPLOYER_KEY,
    DEVNET_PROPOSER_KEY,
    deploy_contracts,
)
from protocol import BatchBlock, batch_input_root, decode_batch, devnet_genesis, encode_batch, keccak256
from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender
from services.rollups._challenger import Challenger
from services.rollups._contracts import GameState, GameStatus, OutputRecord, OutputStatus, Registry, Side
from services.rollups._derivation import Deriver
from services.rollups._disputes import Player
from services.rollups._settings import RollupsSettings
from services.rollups._snapshot import Phase
from services.rollups._trace import DerivedChain
from services.rollups._witness import step_proof
from tests.l1.anvil import Anvil

TXS = 300
#: The one-step proof must stay far below an L1 block (30M gas).
GAS_BOUND = 1_000_000


def test_bisection_finds_the_wrong_transaction_in_the_middle(chain: Anvil, tmp_path: pathlib.Path) -> None:
    wrong_from = TXS // 2
    r = asyncio.run(play_dispute(chain.url, TXS, tmp_path, wrong_from))
    assert r.winner == GameStatus.CHALLENGER_WON
    assert r.rounds <= (r.length - 1).bit_length()  # ceil(log2 n)
    # The step proven is the last one both agree on, into the first wrong claim: a transfer.
    assert r.step_position == wrong_from - 1 and r.step_phase == Phase.BATCH
    assert r.step_gas < GAS_BOUND
    print(f"{r.length} steps, {r.rounds} rounds, one-step proof {r.step_gas:,} gas")


# --- outputs from the future ------------------------------------------------------------------


@dataclass
class Rollup:
    """The real contracts on anvil, a batcher, the two roles' keys and a challenger's derivation."""

    l1: L1Client
    inbox: Contract
    registry: Registry
    batcher: TxSender
    proposer: TxSender
    chain: DerivedChain
    challenger: Challenger

    async def post(self, blocks: list[BatchBlock]) -> None:
        data = encode_batch(blocks)
        call = self.inbox.encode_call("appendBatch", data)
        assert self.inbox.address is not None
        assert (await self.batcher.wait_receipt(await self.batcher.send(self.inbox.address, call), 60)).success

    async def challenged(self, index: int) -> tuple[int, OutputRecord]:
        """``check`` challenges output ``index`` (and nothing else): the game and the output."""
        to_play = await self.challenger.check()
        assert self.challenger.challenged[-1] == index
        ((game_id, side, out),) = to_play
        assert side == Side.CHALLENGER and out.index == index
        return game_id, out

    async def dispute(self, game_id: int, out: OutputRecord, defender: Player) -> GameState:
        """The challenger's ``play`` against ``defender``: the game once over."""
        address = await self.registry.game_address(game_id)
        results = await asyncio.gather(self.challenger.play(game_id, Side.CHALLENGER, out), defender.play(address))
        assert results == [GameStatus.CHALLENGER_WON] * 2
        assert (await self.registry.output(out.index)).status == OutputStatus.INVALIDATED
        return await self.registry.game_state(address)


async def rollup(url: str, data_dir: pathlib.Path) -> Rollup:
    addresses = await deploy_contracts(url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, data_dir, params=PARAMS)
    l1 = L1Client(url)
    inbox = Contract(Artifact.load("BatchInbox"), addresses.batch_inbox)
    portal = Contract(Artifact.load("DepositPortal"), addresses.deposit_portal)
    registry = Registry(l1, addresses.output_registry)
    chain = DerivedChain(l1, inbox, portal, devnet_genesis(), RULES, addresses.block_number, 0)
    challenger = Challenger(chain, registry, await TxSender.create(l1, LocalSigner(DEVNET_CHALLENGER_KEY)),
                            RollupsSettings(chain_id=PARAMS.chain_id), step_proof)
    return Rollup(l1, inbox, registry, await TxSender.create(l1, LocalSigner(DEVNET_BATCHER_KEY)),
                  await TxSender.create(l1, LocalSigner(DEVNET_PROPOSER_KEY)), chain, challenger)


def test_outputs_no_batch_held_at_proposal_lose_to_the_bounded_trace(chain: Anvil, tmp_path: pathlib.Path) -> None:
    asyncio.run(_outputs_from_the_future(chain.url, tmp_path))


async def _outputs_from_the_future(url: str, data_dir: pathlib.Path) -> None:
    """Blocks 1-2 are on L1; block 7 is claimed, first invented, then exactly as the batch posted
    right after the proposal derives it. Both outputs read past the batches L1 held when they were
    proposed: the challenger's trace (bounded, padded with no-ops) wins on L1 either time."""
    r = await rollup(url, data_dir)
    async with r.l1:
        head = await r.l1.get_block("latest")
        assert head is not None
        txs = transfers(14)
        blocks = [BatchBlock(n, 100 + n, head.number, head.hash, tuple(txs[2 * n - 2 : 2 * n])) for n in range(1, 8)]
        await r.post(blocks[:2])
        await r.chain.sync()
        derived = r.chain.head
        assert derived.header.number == 2

        # 1. An invented block 7 (an IDLE snapshot, a trace as long as 7 blocks at this pace).
        invented = replace(derived.snapshot, number=7, timestamp=107, state_root=keccak256(b"invented"),
                           block_hash=keccak256(b"block 7"))
        receipt = await r.registry.propose(r.proposer, 0, invented, derived.step * 7 // 2)
        print(f"\npropose with the real StepVerifier: {receipt.gas_used:,} gas")
        assert (await r.registry.output(1)).batch_limit == 1
        # A challenger whose L1 view is behind the output's batch limit waits, as before.
        behind = Challenger(DerivedChain(r.l1, r.inbox, r.chain.portal, devnet_genesis(), RULES, 0, 0),
                            r.registry, r.challenger.sender, r.challenger.settings, step_proof)
        assert await behind.check() == [] and behind.challenged == []
        # Ours has read every batch below it, and derivation does not reach block 7: wrong.
        assert r.chain.block(7) is None
        game_id, out = await r.challenged(1)
        # Restarted (a fresh Challenger, the same key): it plays the game it opened, pays for no second.
        restarted = Challenger(r.chain, r.registry, r.challenger.sender, r.challenger.settings, step_proof)
        assert [(g, s) for g, s, _ in await restarted.check()] == [(game_id, Side.CHALLENGER)]
        assert len(await r.registry.games_of(1)) == 1
        honest = [s.commitment() for s in r.chain.traces(1).snapshots(0, 7, out.trace_length)]
        stop = next(k for k in range(1, len(honest)) if honest[k] == honest[k - 1])  # the first no-op
        # The liar agrees with everything L1 defines, and claims more from the first no-op on.
        claims = [*honest[:stop], *(keccak256(b"more" + c) for c in honest[stop:-1]), invented.commitment()]
        defender = Player(r.registry, r.proposer, r.chain.traces(1), step_proof, 0, claims, Side.DEFENDER)
        game = await r.dispute(game_id, out, defender)
        assert (game.lo, game.hi) == (stop - 1, stop)  # L1 computed the no-op at the bound

        # 2. Block 7 as it will be: derived beforehand from the batch the sequencer is about to post.
        foreseen = Deriver(devnet_genesis(), RULES)
        for b in r.chain.inputs.batches:
            foreseen.inputs.add_batch(b.index, b.l1_block, b.input_root, b.leaves)
        later = blocks[2:]
        foreseen.inputs.add_batch(1, head.number + 10, batch_input_root(later), decode_batch(encode_batch(later)))
        foreseen.advance()
        future = foreseen.blocks[7]
        assert await r.registry.head() == 0
        await r.registry.propose(r.proposer, 0, future.snapshot, future.step)
        await r.post(later)  # batch 1, after the proposal: not the output's (batch limit 1)
        await r.chain.sync()
        assert r.chain.block(7) == future  # L1 derives exactly the claim now, but only from batch 1
        game_id, out = await r.challenged(2)
        assert out.batch_limit == 1
        # The proposer defends the trace over every batch L1 holds; L1 reads batch 1 as absent.
        unbounded = r.chain.traces(2**64)
        claims = [s.commitment() for s in unbounded.snapshots(0, 7, out.trace_length)]
        assert claims[-1] == out.snapshot_hash
        defender = Player(r.registry, r.proposer, unbounded, step_proof, 0, claims, Side.DEFENDER)
        game = await r.dispute(game_id, out, defender)
        pre = r.chain.traces(1).snapshots(0, 7, game.lo)[-1]
        assert (pre.phase, pre.batch_index, pre.item_index) == (Phase.IDLE, 1, 0)  # where batch 1 would start
