"""The L1 cost of posting batches: ``appendBatch`` gas and calldata bytes per transfer.

    .venv/bin/python bench/batch_gas.py [--txs 1 100 1000] [--hardfork cancun]

A fresh anvil (by default its latest rules, with EIP-7623's calldata floor of 10 gas a token, 40
a non-zero byte; with ``--hardfork cancun``, no floor, so the gas shows the contract's execution);
BatchInbox deployed with a dev key as batcher; for each count, one batch of one L2 block of that
many transfers (from the 10 dev accounts to fresh recipients, as bench/rollup_verify.py signs them)
posted by the batcher, after a first batch (which alone pays for initialising the batch count's
slot). Prints the batch's bytes, the transaction's gas (what the batcher pays: EIP-7623 charges
max(21,000 + 4/16 gas a zero/non-zero byte + execution, 21,000 + the floor)) and per transfer,
and the contract's execution gas: gas used less the standard calldata cost, when that is what
was charged; under the floor it is hidden (it costs nothing), and ``--hardfork cancun`` shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rollup_dispute import anvil
from bench.rollup_verify import transfers
from protocol import BatchBlock, encode_batch
from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender
from tests.l1.anvil import DEV_KEYS

DEPLOYER, BATCHER = LocalSigner(DEV_KEYS[0]), LocalSigner(DEV_KEYS[1])


def calldata_gas(data: bytes) -> tuple[int, int]:
    """(standard, floor) calldata gas of a transaction's input (EIP-2028, EIP-7623)."""
    zeros = data.count(0)
    tokens = zeros + 4 * (len(data) - zeros)
    return 4 * tokens, 10 * tokens


async def measure(url: str, counts: list[int]) -> None:
    async with L1Client(url) as l1:
        deployer = await TxSender.create(l1, DEPLOYER)
        receipt = await deployer.wait_receipt(await deployer.send(
            None, Contract(Artifact.load("BatchInbox")).encode_deploy(BATCHER.address)), 60)
        assert receipt.contract_address is not None
        inbox = Contract(Artifact.load("BatchInbox"), receipt.contract_address)
        batcher = await TxSender.create(l1, BATCHER)
        for number, count in enumerate([1, *counts], start=1):
            head = await l1.get_block("latest")
            assert head is not None
            data = encode_batch([BatchBlock(number, 100 + number, head.number, head.hash, tuple(transfers(count)))])
            call = inbox.encode_call("appendBatch", data)
            r = await batcher.wait_receipt(await batcher.send(receipt.contract_address, call), 60)
            assert r.success
            standard, floor = calldata_gas(call)
            floored = r.gas_used == 21_000 + floor
            execution = "hidden under the floor" if floored else f"execution {r.gas_used - 21_000 - standard:,} gas"
            if number == 1:
                continue  # the warm-up
            print(f"{count:>5} transfers: {len(data):>7,} bytes ({len(data) / count:,.1f} per transfer), "
                  f"{r.gas_used:>9,} gas ({r.gas_used / count:,.0f} per transfer), {execution}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, nargs="+", default=[1, 100, 1000])
    ap.add_argument("--hardfork", help="anvil's --hardfork (default: its latest)")
    args = ap.parse_args()
    print(f"$ {' '.join(['python', 'bench/batch_gas.py', *sys.argv[1:]])}")
    with anvil(*(["--hardfork", args.hardfork] if args.hardfork else [])) as url:
        asyncio.run(measure(url, args.txs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
