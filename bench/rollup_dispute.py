"""A full dispute on anvil: a faulty output over a range of transfers, bisected and proven on L1.

    .venv/bin/python bench/rollup_dispute.py [--txs 1024]

The real contracts (BatchInbox, DepositPortal, StepVerifier, OutputRegistry, DisputeGame) on a
fresh anvil that mines each transaction at once, so the wall time is the players' own work
(trace building, proofs) plus L1 round trips. One batch holds one L2 block of ``--txs``
transfers; the proposer claims that block with a corrupted state root; an honest challenger
plays the game to the one-step proof. Prints rounds, wall time and the L1 gas of every
registry and game entry point: propose, challenge, each move, and finalize (an honest output
proposed beside the faulty one, finalized once the window has passed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
from l2node.node.l1 import anvil_binary, free_loopback_port
from protocol import BatchBlock, batch_leaves, devnet_genesis, encode_batch, keccak256, split_frames
from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender
from services.rollups import step_proof
from services.rollups._contracts import GameStatus, Registry, Side
from services.rollups._disputes import Player
from services.rollups._machine import Rules
from services.rollups._snapshot import Phase
from services.rollups._trace import DerivedChain

PARAMS = RollupParams(challenge_window_s=3600, max_clock_s=3600)
RULES = Rules(chain_id=PARAMS.chain_id, sequencer_window=PARAMS.sequencer_window)


@contextlib.contextmanager
def anvil(*extra: str) -> Iterator[str]:
    port = free_loopback_port()
    proc = subprocess.Popen([anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--quiet",
                             "--gas-limit", "100000000", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                ping = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}'
                request = urllib.request.Request(url, data=ping, headers={"content-type": "application/json"})
                urllib.request.urlopen(request, timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.kill()
        proc.wait()


@dataclass(frozen=True, slots=True)
class DisputeResult:
    length: int
    rounds: int
    wall_s: float
    trace_s: float
    step_gas: int
    #: The phase of the disputed step's pre-state (BATCH: a transaction; IDLE/...: block work).
    step_phase: Phase
    step_position: int
    winner: GameStatus
    #: L1 gas by entry point: (min, max) over the calls made.
    gas: dict[str, tuple[int, int]]


async def play_dispute(url: str, txs: int, data_dir: Path, wrong_from: int | None = None,
                       frames: int = 1) -> DisputeResult:
    """Post one batch of ``txs`` transfers, propose a faulty output over it and play the game.

    The faulty proposer's trace agrees with the honest one before position ``wrong_from`` and
    differs from there on (None: only its final claim, a corrupted state root, differs). With
    ``frames`` > 1 the batch is posted in that many frames (``appendFrame``), not one transaction.
    """
    addresses = await deploy_contracts(url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, data_dir, params=PARAMS)
    async with L1Client(url) as l1:
        inbox = Contract(Artifact.load("BatchInbox"), addresses.batch_inbox)
        portal = Contract(Artifact.load("DepositPortal"), addresses.deposit_portal)
        head = await l1.get_block("latest")
        assert head is not None
        blocks = [BatchBlock(1, 100, head.number, head.hash, tuple(transfers(txs)))]
        batcher = await TxSender.create(l1, LocalSigner(DEVNET_BATCHER_KEY))
        data = encode_batch(blocks)
        pieces = split_frames(batch_leaves(blocks), -(-len(data) // frames) + 200) if frames > 1 else ()
        assert len(pieces) == (frames if frames > 1 else 0)
        calls = [inbox.encode_call("appendFrame", piece, i, i == len(pieces) - 1) for i, piece in enumerate(pieces)]
        for call in calls or [inbox.encode_call("appendBatch", data)]:
            receipt = await batcher.wait_receipt(await batcher.send(addresses.batch_inbox, call), 60)
            assert receipt.success
        chain = DerivedChain(l1, inbox, portal, devnet_genesis(), RULES, addresses.block_number, 0)
        await chain.sync()
        derived = chain.block(1)
        assert derived is not None and len(derived.tx_hashes) == txs, "the batch did not derive"
        registry = Registry(l1, addresses.output_registry)
        proposer = await TxSender.create(l1, LocalSigner(DEVNET_PROPOSER_KEY))
        challenger = await TxSender.create(l1, LocalSigner(DEVNET_CHALLENGER_KEY))
        length = derived.step
        # The faulty output: the derived snapshot with a wrong state root.
        claimed = dataclasses.replace(derived.snapshot, state_root=keccak256(b"wrong" + derived.snapshot.state_root))
        gas: dict[str, list[int]] = {}
        proposed = await registry.propose(proposer, claimed, length, chain.batch_count, chain.horizon)
        gas["propose"] = [proposed.gas_used]
        started = time.perf_counter()
        gas["challenge"] = [(await registry.challenge(challenger, 1)).gas_used]
        game = await registry.game_address(0)
        out = await registry.output(1)
        traces = chain.traces(out.batch_limit, out.l1_horizon)
        snapshots = await asyncio.to_thread(traces.snapshots, 0, 1, length)
        honest = [s.commitment() for s in snapshots]
        start = length if wrong_from is None else wrong_from
        faulty = [*honest[:start], *(keccak256(b"wrong" + c) for c in honest[start:-1]), claimed.commitment()]
        built = time.perf_counter() - started
        players = [Player(registry, proposer, traces, step_proof, 0, faulty, Side.DEFENDER),
                   Player(registry, challenger, traces, step_proof, 0, honest, Side.CHALLENGER)]
        results = await asyncio.gather(*(p.play(game) for p in players))
        wall = time.perf_counter() - started
        contract = registry.game(game)
        logs = await l1.get_logs(addresses.block_number, "latest", address=game)
        stepped = [log for log in logs if log.topics[0] == contract.topic("Stepped")]
        rounds = sum(1 for log in logs if log.topics[0] == contract.topic("Bisected"))
        for log in logs:
            name = next((n for n in ("Bisected", "Chose", "Stepped") if log.topics[0] == contract.topic(n)), None)
            move_receipt = await l1.get_receipt(log.tx_hash)
            if name is not None and move_receipt is not None:
                gas.setdefault({"Bisected": "bisect", "Chose": "choose", "Stepped": "step"}[name], []).append(
                    move_receipt.gas_used)
        receipt = await l1.get_receipt(stepped[0].tx_hash)
        assert receipt is not None
        state = await registry.game_state(game)
        # An honest output beside it, finalized once its window has passed.
        honest_out = await registry.propose(proposer, derived.snapshot, length, chain.batch_count, chain.horizon)
        gas["propose"].append(honest_out.gas_used)
        await l1.request("evm_increaseTime", PARAMS.challenge_window_s + 1)
        await l1.request("evm_mine")
        gas["finalize"] = [(await registry.finalize(proposer, 2)).gas_used]
        return DisputeResult(length, rounds, wall, built, receipt.gas_used, snapshots[state.lo].phase, state.lo,
                             results[1], {name: (min(v), max(v)) for name, v in gas.items()})


def report(txs: int, r: DisputeResult, what: str) -> None:
    print(f"dispute over {txs:,} transfers in one L2 block, {what}: trace of {r.length:,} steps, "
          f"{r.rounds} bisection rounds (ceil(log2 {r.length}) = {(r.length - 1).bit_length()}), "
          f"wall {r.wall_s:.1f} s (trace build {r.trace_s:.1f} s), one-step proof of step {r.step_position} "
          f"({r.step_phase.name} pre-state) {r.step_gas:,} L1 gas, {r.winner.name}")
    print("  L1 gas (min-max): " + ", ".join(f"{name} {lo:,}" + (f"-{hi:,}" if hi != lo else "")
                                             for name, (lo, hi) in r.gas.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, default=1024)
    args = ap.parse_args()
    print(f"$ python bench/rollup_dispute.py --txs {args.txs}")
    dispute(args.txs)
    return 0


def dispute(txs: int) -> None:
    for wrong_from, what in ((None, "wrong final state root"), (txs // 2, "wrong from the middle transaction")):
        with anvil() as url, tempfile.TemporaryDirectory() as tmp:
            report(txs, asyncio.run(play_dispute(url, txs, Path(tmp), wrong_from)), what)


if __name__ == "__main__":
    sys.exit(main())
