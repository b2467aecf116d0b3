"""The L1 cost of posting batches: ``appendBatch`` gas and calldata bytes per transfer; with
``--frames N``, the same batch also posted in N frames (``appendFrame``); and the same blocks as a
blob batch (``appendBlobBatch``, EIP-4844); side by side.

    .venv/bin/python bench/batch_gas.py [--txs 1 100 1000] [--hardfork cancun] [--frames 3]
        [--data calldata blobs]

A fresh anvil (by default its latest rules, with EIP-7623's calldata floor of 10 gas a token, 40
a non-zero byte; with ``--hardfork cancun``, no floor, so the gas shows the contract's execution);
BatchInbox deployed with a dev key as batcher; for each count, one batch of one L2 block of that
many transfers (from the 10 dev accounts to fresh recipients, as bench/rollup_verify.py signs them)
posted by the batcher, after a first batch (which alone pays for initialising the batch count's
slot). Prints the batch's bytes, the transaction's gas (what the batcher pays: EIP-7623 charges
max(21,000 + 4/16 gas a zero/non-zero byte + execution, 21,000 + the floor)) and per transfer,
and the contract's execution gas: gas used less the standard calldata cost, when that is what
was charged; under the floor it is hidden (it costs nothing), and ``--hardfork cancun`` shows it.

``--frames N``: after each batch, the same leaves in N frames (protocol.split_frames: whole leaves,
cut at about 1/N of the batch): the frames' total gas, per transfer, and what it costs over the one
transaction (N - 1 more transactions' 21,000, each frame's call overhead, and the tree frontier
the inbox keeps in storage between frames). A first framed channel of the largest count goes
before, as a warm-up: it alone creates the frontier's slots (22,100 gas each instead of 5,000);
its cost is printed too.

``--data``: calldata batches (above), blob batches, or both (the default). Blobs: the same blocks in
as many blobs as their stream needs (protocol/_blob.py: 126,976 usable bytes a blob), posted as a
type-3 transaction: its gas (execution and the small calldata of the origins) and its blob gas
(2**17 a blob, priced by the blob base fee, a market of its own), per transfer; and the stream's
bytes per transfer (the usable bytes the batch fills).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rollup_dispute import anvil
from bench.rollup_verify import transfers
from protocol import BatchBlock, batch_leaves, encode_batch, encode_blob_leaves, origins_of, split_frames, to_blobs
from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender, load_setup
from tests.l1.anvil import DEV_KEYS

DEPLOYER, BATCHER = LocalSigner(DEV_KEYS[0]), LocalSigner(DEV_KEYS[1])


def calldata_gas(data: bytes) -> tuple[int, int]:
    """(standard, floor) calldata gas of a transaction's input (EIP-2028, EIP-7623)."""
    zeros = data.count(0)
    tokens = zeros + 4 * (len(data) - zeros)
    return 4 * tokens, 10 * tokens


async def measure(url: str, counts: list[int], frames: int, kinds: list[str]) -> None:
    async with L1Client(url) as l1:
        deployer = await TxSender.create(l1, DEPLOYER)
        receipt = await deployer.wait_receipt(await deployer.send(
            None, Contract(Artifact.load("BatchInbox")).encode_deploy(BATCHER.address)), 60)
        assert receipt.contract_address is not None
        inbox = Contract(Artifact.load("BatchInbox"), receipt.contract_address)
        batcher = await TxSender.create(l1, BATCHER)
        if "blobs" in kinds:
            load_setup()

        async def post(function: str, *args: object) -> tuple[int, bytes]:
            call = inbox.encode_call(function, *args)
            r = await batcher.wait_receipt(await batcher.send(inbox.address, call), 60)
            assert r.success
            return r.gas_used, call

        async def post_frames(blocks: list[BatchBlock]) -> tuple[int, int, str]:
            """The frames' total gas, how many, and each one's execution gas (gas used less the
            standard calldata cost; "floor" where the EIP-7623 floor was charged instead)."""
            data = encode_batch(blocks)
            cut = split_frames(batch_leaves(blocks), -(-len(data) // frames) + 200)
            gas, execution = [], []
            for i, f in enumerate(cut):
                used, call = await post("appendFrame", f, i, i == len(cut) - 1)
                standard, floor = calldata_gas(call)
                gas.append(used)
                execution.append("floor" if used == 21_000 + floor else f"{used - 21_000 - standard:,}")
            return sum(gas), len(cut), ", ".join(execution)

        async def blocks_of(number: int, count: int) -> list[BatchBlock]:
            head = await l1.get_block("latest")
            assert head is not None
            return [BatchBlock(number, 100 + number, head.number, head.hash, tuple(transfers(count)))]

        if frames > 1:
            cold, n, each = await post_frames(await blocks_of(1, max(counts)))
            print(f"first channel ({max(counts)} transfers, {n} frames: its frontier slots created): {cold:,} gas "
                  f"(execution per frame: {each})")
        for number, count in enumerate([1, *counts], start=1):
            blocks = await blocks_of(number, count)
            if "blobs" in kinds:
                await blob_batch(l1, inbox, batcher, blocks, count, warm_up=number == 1)
            if "calldata" not in kinds:
                continue
            data = encode_batch(blocks)
            gas_used, call = await post("appendBatch", data)
            standard, floor = calldata_gas(call)
            floored = gas_used == 21_000 + floor
            execution = "hidden under the floor" if floored else f"execution {gas_used - 21_000 - standard:,} gas"
            if number == 1:
                continue  # the warm-up
            print(f"{count:>5} transfers, calldata: {len(data):>7,} bytes ({len(data) / count:,.1f} per transfer), "
                  f"{gas_used:>9,} gas ({gas_used / count:,.0f} per transfer), {execution}")
            if frames > 1 and count > 1:
                framed, n, each = await post_frames(blocks)
                print(f"{'':>5}   in {n} frames: {framed:>9,} gas ({framed / count:,.0f} per transfer), "
                      f"+{framed - gas_used:,} gas over one transaction (+{(framed - gas_used) / count:,.1f} per "
                      f"transfer, +{100 * (framed - gas_used) / gas_used:.2f}%); execution per frame: {each}")


async def blob_batch(l1: L1Client, inbox: Contract, batcher: TxSender, blocks: list[BatchBlock], count: int, *,
                     warm_up: bool) -> None:
    stream = encode_blob_leaves(batch_leaves(blocks))
    blobs = to_blobs(stream)
    call = inbox.encode_call("appendBlobBatch", list(origins_of(blocks)))
    assert inbox.address is not None
    r = await batcher.wait_receipt(await batcher.send_blobs(inbox.address, call, await batcher.sidecar(blobs)), 60)
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
    ap.add_argument("--frames", type=int, default=1, help="also post each batch in this many frames (1: not)")
    ap.add_argument("--data", nargs="+", choices=["calldata", "blobs"], default=["calldata", "blobs"])
    args = ap.parse_args()
    print(f"$ {' '.join(['python', 'bench/batch_gas.py', *sys.argv[1:]])}")
    with anvil(*(["--hardfork", args.hardfork] if args.hardfork else [])) as url:
        asyncio.run(measure(url, args.txs, args.frames, args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
