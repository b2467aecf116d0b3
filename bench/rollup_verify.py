"""Verifying L2 from L1 data: derive a batch of transfers and check its output root; a full dispute.

    .venv/bin/python bench/rollup_verify.py [--txs 1000] [--repeat 5] [--dispute-txs 1024]

Part 1 (no I/O): a batch of ``--txs`` transfers from many senders, as the inbox holds it
(framed leaves in calldata, under the input root the inbox computed), is decoded, checked
against its input root, derived by the
derivation machine (sender recovery, the rules, roots) and its output root compared with the
expected one. Best and median of ``--repeat``. Goal: <= 100 ms for 1,000 transfers.

Part 2 (anvil): a faulty output over a range of ``--dispute-txs`` transfers is disputed to the
end by the real contracts (OutputRegistry, DisputeGame, StepVerifier): rounds, wall time and the
L1 gas of the one-step proof. Prints figures only; no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol import (
    DEV_PRIVATE_KEYS,
    BatchBlock,
    decode_batch,
    devnet_genesis,
    encode_batch,
    input_root,
)
from services.l1 import UnsignedTransaction, sign_transaction
from services.rollups._machine import L1Inputs, Machine, genesis_snapshot

CHAIN = 901
ORIGIN_HASH = b"\x33" * 32


def transfers(count: int) -> list[bytes]:
    """``count`` transfers round-robin from the 10 dev accounts to fresh recipients."""
    out = []
    for i in range(count):
        key = DEV_PRIVATE_KEYS[i % len(DEV_PRIVATE_KEYS)]
        to = (0x1000 + i).to_bytes(20, "big")
        out.append(sign_transaction(UnsignedTransaction(CHAIN, i // len(DEV_PRIVATE_KEYS), 10**9, 10 * 10**9, 21_000,
                                                        to, 1 + i), key))
    return out


def verify_once(data: bytes, root: bytes, expected_output: bytes, executor: Executor | None = None) -> float:
    start = time.perf_counter()
    leaves = decode_batch(data)
    inputs = L1Inputs()
    inputs.add_batch(0, 10, root, leaves)  # checks the data against the input root
    genesis = devnet_genesis(CHAIN)
    state = genesis.state()
    machine = Machine(genesis_snapshot(genesis, state), state, inputs, executor=executor)
    machine.run()
    assert machine.snapshot.output_root() == expected_output, "derived output root differs"
    return time.perf_counter() - start


def part1(txs: int, repeat: int) -> None:
    raws = transfers(txs)
    blocks = [BatchBlock(1, 100, 8, ORIGIN_HASH, tuple(raws))]
    data = encode_batch(blocks)
    leaves = decode_batch(data)
    root = input_root(leaves)
    # The expected output, computed once the same way (a second implementation would be circular;
    # what is timed here is the verifier's work, and the sequencer-agreement tests cover the rest).
    inputs = L1Inputs()
    inputs.add_batch(0, 10, root, leaves)
    genesis = devnet_genesis(CHAIN)
    state = genesis.state()
    reference = Machine(genesis_snapshot(genesis, state), state, inputs)
    reference.run()
    expected = reference.snapshot.output_root()
    assert len(reference.sealed[0].tx_hashes) == txs, "every transfer must apply"
    with ThreadPoolExecutor(2) as pool:
        # Interleaved, so that both see the same moments of this shared machine's load.
        one, two = [], []
        for _ in range(repeat):
            one.append(verify_once(data, root, expected))
            two.append(verify_once(data, root, expected, pool))
    for label, times in (("1 thread", one), ("senders on 2 threads", two)):
        print(f"derive + verify {txs:,} transfers from L1 data ({len(data):,} bytes of calldata), {label}: "
              f"best {min(times) * 1e3:.1f} ms, median {statistics.median(times) * 1e3:.1f} ms "
              f"({txs / min(times):,.0f} tx/s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dispute-txs", type=int, default=1024)
    ap.add_argument("--no-dispute", action="store_true", help="part 1 only (no anvil)")
    args = ap.parse_args()
    print(f"$ {' '.join(['python', 'bench/rollup_verify.py', *sys.argv[1:]])}")
    part1(args.txs, args.repeat)
    if not args.no_dispute:
        from bench.rollup_dispute import dispute

        dispute(args.dispute_txs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
