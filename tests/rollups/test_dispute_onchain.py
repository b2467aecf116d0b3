"""Disputes played to the one-step proof by the real contracts.

A dispute over hundreds of transactions: the faulty proposer's trace goes wrong at one
transaction in the middle of the range: bisection must narrow the range to exactly that step in
at most ceil(log2 n) rounds, and L1's re-execution of that one transfer must decide for the
challenger.

Outputs from the future: an output claiming an L2 block that no batch held by its L1 horizon
derives is challenged by the honest challenger as soon as it has read L1 past that horizon, and
loses, even when a batch posted later derives exactly the claimed block.
"""

from __future__ import annotations

import asyncio
import pathlib
from dataclasses import replace

from bench.rollup_dispute import RULES, play_dispute
from bench.rollup_verify import transfers
from protocol import BatchBlock, batch_input_root, decode_batch, devnet_genesis, encode_batch, keccak256
from services.rollups._challenger import Challenger
from services.rollups._contracts import GameState, GameStatus, OutputRecord, OutputStatus, Side
from services.rollups._derivation import Deriver
from services.rollups._disputes import Player
from services.rollups._snapshot import Phase
from services.rollups._trace import DerivedChain
from services.rollups._witness import step_proof
from tests.l1.anvil import Anvil
from tests.rollups._rollup import ROGUE, Rollup, rollup, sender

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


async def challenged(r: Rollup, index: int) -> tuple[int, OutputRecord]:
    """The honest challenger's ``check`` challenges output ``index`` (and nothing else): the game and the output."""
    to_play = await r.challenger.check()
    assert r.challenger.challenged[-1] == index
    ((game_id, side, out),) = to_play
    assert side == Side.CHALLENGER and out.index == index
    return game_id, out


async def dispute(r: Rollup, game_id: int, out: OutputRecord, defender: Player) -> GameState:
    """The challenger's ``play`` against ``defender``: the game once over."""
    address = await r.registry.game_address(game_id)
    results = await asyncio.gather(r.challenger.play(game_id, Side.CHALLENGER, out), defender.play(address))
    assert results == [GameStatus.CHALLENGER_WON] * 2
    assert (await r.registry.output(out.index)).status == OutputStatus.INVALIDATED
    return await r.registry.game_state(address)


def test_outputs_no_batch_held_at_proposal_lose_to_the_bounded_trace(chain: Anvil, tmp_path: pathlib.Path) -> None:
    asyncio.run(_outputs_from_the_future(chain.url, tmp_path))


async def _outputs_from_the_future(url: str, data_dir: pathlib.Path) -> None:
    """Blocks 1-2 are on L1; block 7 is claimed, first invented, then exactly as the batch posted
    right after the proposal derives it. Both outputs read past the batches L1 held when they were
    proposed: the challenger's trace (bounded, padded with no-ops) wins on L1 either time."""
    r = await rollup(url, data_dir)
    async with r.l1:
        liar = await sender(r.l1, ROGUE)
        await r.extend(2)
        derived = r.chain.head
        assert derived.header.number == 2

        # 1. An invented block 7 (an IDLE snapshot, a trace as long as 7 blocks at this pace).
        invented = replace(derived.snapshot, number=7, timestamp=107, state_root=keccak256(b"invented"),
                           block_hash=keccak256(b"block 7"))
        receipt = await r.registry.propose(liar, invented, derived.step * 7 // 2, r.chain.batch_count,
                                           r.chain.horizon)
        print(f"\npropose with the real StepVerifier: {receipt.gas_used:,} gas")
        assert (await r.registry.output(1)).batch_limit == 1
        # A challenger whose L1 view is behind the output's horizon waits.
        behind = Challenger(DerivedChain(r.l1, r.inbox, r.chain.portal, devnet_genesis(), RULES, 0, 0),
                            r.registry, r.challenger.sender, r.challenger.settings, step_proof)
        assert await behind.check() == [] and behind.challenged == []
        # Ours has read L1 up to its horizon, and derivation does not reach block 7: wrong.
        assert r.chain.block(7) is None
        game_id, out = await challenged(r, 1)
        # Restarted (a fresh Challenger, the same key): it plays the game it opened, pays for no second.
        restarted = Challenger(r.chain, r.registry, r.challenger.sender, r.challenger.settings, step_proof)
        assert [(g, s) for g, s, _ in await restarted.check()] == [(game_id, Side.CHALLENGER)]
        assert len(await r.registry.games_of(1)) == 1
        honest = [s.commitment() for s in r.chain.traces(1, out.l1_horizon).snapshots(0, 7, out.trace_length)]
        stop = next(k for k in range(1, len(honest)) if honest[k] == honest[k - 1])  # the first no-op
        # The liar agrees with everything L1 defines, and claims more from the first no-op on.
        claims = [*honest[:stop], *(keccak256(b"more" + c) for c in honest[stop:-1]), invented.commitment()]
        defender = Player(r.registry, liar, r.chain.traces(1, out.l1_horizon), step_proof, 0, claims, Side.DEFENDER)
        game = await dispute(r, game_id, out, defender)
        assert (game.lo, game.hi) == (stop - 1, stop)  # L1 computed the no-op at the bound

        # 2. Block 7 as it will be: derived beforehand from the batch the sequencer is about to post.
        foreseen = Deriver(devnet_genesis(), RULES)
        for b in r.chain.inputs.batches:
            foreseen.inputs.add_batch(b.index, b.l1_block, b.input_root, b.leaves)
        head = await r.l1.get_block("latest")
        assert head is not None
        later = [BatchBlock(n, 100 + n, head.number, head.hash, tuple(transfers(14)[2 * n - 2 : 2 * n]))
                 for n in range(3, 8)]
        foreseen.inputs.add_batch(1, head.number + 10, batch_input_root(later), decode_batch(encode_batch(later)))
        foreseen.advance()
        future = foreseen.blocks[7]
        assert await r.registry.latest_finalized() == 0
        await r.registry.propose(liar, future.snapshot, future.step, 1, await r.l1.block_number())
        await r.post(later)  # batch 1, after the proposal: not the output's (batch limit 1)
        await r.chain.sync()
        assert r.chain.block(7) == future  # L1 derives exactly the claim now, but only from batch 1
        game_id, out = await challenged(r, 2)
        assert out.batch_limit == 1
        # The proposer defends the trace over every batch L1 holds; L1 reads batch 1 as absent.
        unbounded = r.chain.traces(2**64, 2**64)
        claims = [s.commitment() for s in unbounded.snapshots(0, 7, out.trace_length)]
        assert claims[-1] == out.snapshot_hash
        defender = Player(r.registry, liar, unbounded, step_proof, 0, claims, Side.DEFENDER)
        game = await dispute(r, game_id, out, defender)
        pre = r.chain.traces(1, out.l1_horizon).snapshots(0, 7, game.lo)[-1]
        assert (pre.phase, pre.batch_index, pre.item_index) == (Phase.IDLE, 1, 0)  # where batch 1 would start
