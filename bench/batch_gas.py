"""The L1 cost of posting batches: ``appendBatch`` gas and calldata bytes per transfer, and the same
blocks as a blob batch (``appendBlobBatch``, EIP-4844) side by side.

    .venv/bin/python bench/batch_gas.py [--txs 1 100 1000] [--hardfork cancun] [--data calldata blobs]

A fresh anvil (by default its latest rules, with EIP-7623's calldata floor of 10 gas a token, 40
a non-zero byte; with ``--hardfork cancun``, no floor, so the gas shows the contract's execution);
BatchInbox deployed with a dev key as batcher; for each count, one batch of one L2 block of that
many transfers (from the 10 dev accounts to fresh recipients, as bench/rollup_verify.py signs them)
posted by the batcher, after a first batch (which alone pays for initialising the batch count's
slot). Prints the batch's bytes, the transaction's gas (what the batcher pays: EIP-7623 charges
max(21,000 + 4/16 gas a zero/non-zero byte + execution, 21,000 + the floor)) and per transfer,
and the contract's execution gas: gas used less the standard calldata cost, when that is what
was charged; under the floor it is hidden (it costs nothing), and ``--hardfork cancun`` shows it.

Blobs: the same blocks in as many blobs as their stream needs (protocol/_blob.py: 126,976 usable
bytes a blob), posted as a type-3 transaction: its gas (execution and the small calldata of the
origins) and its blob gas (2**17 a blob, priced by the blob base fee, a market of its own), per
transfer; and the stream's bytes per transfer (the usable bytes the batch fills).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rollup_dispute import anvil
from bench.rollup_verify import transfers
from protocol import BatchBlock, batch_leaves, encode_batch, encode_blob_leaves, origins_of, to_blobs
from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender, load_setup
from tests.l1.anvil import DEV_KEYS

DEPLOYER, BATCHER = LocalSigner(DEV_KEYS[0]), LocalSigner(DEV_KEYS[1])


def calldata_gas(data: bytes) -> tuple[int, int]:
    """(standard, floor) calldata gas of a transaction's input (EIP-2028, EIP-7623)."""
    zeros = data.count(0)
    tokens = zeros + 4 * (len(data) - zeros)
    return 4 * tokens, 10 * tokens


async def measure(url: str, counts: list[int], kinds: list[str]) -> None:
    async with L1Client(url) as l1:
        deployer = await TxSender.create(l1, DEPLOYER)
        receipt = await deployer.wait_receipt(await deployer.send(
            None, Contract(Artifact.load("BatchInbox")).encode_deploy(BATCHER.address)), 60)
        assert receipt.contract_address is not None
        inbox = Contract(Artifact.load("BatchInbox"), receipt.contract_address)
        batcher = await TxSender.create(l1, BATCHER)
        if "blobs" in kinds:
            load_setup()
        for number, count in enumerate([1, *counts], start=1):
            head = await l1.get_block("latest")
            assert head is not None
            block = BatchBlock(number, 100 + number, head.number, head.hash, tuple(transfers(count)))
            if "blobs" in kinds:
                await blob_batch(l1, inbox, batcher, block, count, warm_up=number == 1)
            if "calldata" not in kinds:
                continue
            data = encode_batch([block])
            call = inbox.encode_call("appendBatch", data)
            r = await batcher.wait_receipt(await batcher.send(receipt.contract_address, call), 60)
            assert r.success
            standard, floor = calldata_gas(call)
            floored = r.gas_used == 21_000 + floor
            execution = "hidden under the floor" if floored else f"execution {r.gas_used - 21_000 - standard:,} gas"
            if number == 1:
                continue  # the warm-up
            print(f"{count:>5} transfers, calldata: {len(data):>7,} bytes ({len(data) / count:,.1f} per transfer), "
                  f"{r.gas_used:>9,} gas ({r.gas_used / count:,.0f} per transfer), {execution}")


async def blob_batch(l1: L1Client, inbox: Contract, batcher: TxSender, block: BatchBlock, count: int, *,
                     warm_up: bool) -> None:
    stream = encode_blob_leaves(batch_leaves([block]))
    blobs = to_blobs(stream)
    call = inbox.encode_call("appendBlobBatch", list(origins_of([block])))
    assert inbox.address is not None
    r = await batcher.wait_receipt(await batcher.send_blobs(inbox.address, call, blobs), 60)
    assert r.success
    doc = await l1.request("eth_getTransactionReceipt", "0x" + r.tx_hash.hex())
    blob_gas = int(doc["blobGasUsed"], 16)
    if warm_up:
        return
    print(f"{count:>5} transfers, blobs:    {len(stream):>7,} bytes ({len(stream) / count:,.1f} per transfer) in "
          f"{len(blobs)} blob(s), {r.gas_used:>9,} gas ({r.gas_used / count:,.0f} per transfer) + {blob_gas:,} blob "
          f"gas ({blob_gas / count:,.0f} per transfer)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txs", type=int, nargs="+", default=[1, 100, 1000])
    ap.add_argument("--hardfork", help="anvil's --hardfork (default: its latest)")
    ap.add_argument("--data", nargs="+", choices=["calldata", "blobs"], default=["calldata", "blobs"])
    args = ap.parse_args()
    print(f"$ {' '.join(['python', 'bench/batch_gas.py', *sys.argv[1:]])}")
    with anvil(*(["--hardfork", args.hardfork] if args.hardfork else [])) as url:
        asyncio.run(measure(url, args.txs, args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
