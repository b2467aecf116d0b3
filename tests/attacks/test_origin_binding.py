"""Attack (issue 12, item 10): give L2 blocks an L1 origin that L1 never had, so that derivation
follows an L1 of the sequencer's choosing (a hash it made up, a block of a fork, a block not mined
yet, or one so old that no contract can check it).

The attacker holds the batcher's key and posts its own batches to the deployed inbox on a real
anvil. The inbox checks every BLOCK leaf's (l1OriginNumber, l1OriginHash) against L1 itself:
BLOCKHASH for the last 256 blocks, the EIP-2935 history contract for the last 8191, nothing
older. Each attack is refused with its named error, in a call and as a mined transaction (which
reverts and appends nothing); the honest batch on a real origin, even 8191 blocks back, is taken.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Iterator
from dataclasses import replace

import pytest

from bench.rollup_verify import transfers
from protocol import BatchBlock, encode_batch, keccak256
from services.l1 import RpcError
from tests.l1.anvil import Anvil
from tests.rollups.test_dispute_onchain import Rollup, rollup

#: EIP-2935's HISTORY_SERVE_WINDOW: the oldest origin the inbox can check is this many blocks back.
HISTORY = 8191
HISTORY_CONTRACT = bytes.fromhex("0000F90827F1C53a10cb7A02335B175320002935")


async def attempt(r: Rollup, blocks: list[BatchBlock]) -> tuple[str, tuple[object, ...]]:
    """The inbox's refusal of a batch of ``blocks`` (error name and arguments), in a call and as a
    mined transaction (explicit gas: no estimate stops it before L1 does), which must revert and
    append nothing."""
    assert r.inbox.address is not None
    call = r.inbox.encode_call("appendBatch", encode_batch(blocks))
    with pytest.raises(RpcError) as caught:
        await r.l1.call(r.inbox.address, call, sender=r.batcher.address)
    error = r.inbox.decode_error(caught.value.revert_data)
    assert error is not None
    (count,) = await r.inbox.read(r.l1, "batchCount")
    receipt = await r.batcher.wait_receipt(await r.batcher.send(r.inbox.address, call, gas=1_000_000), 10)
    assert not receipt.success and await r.inbox.read(r.l1, "batchCount") == (count,)
    return error.name, error.args


async def on(r: Rollup, number: int, txs: int = 1) -> BatchBlock:
    header = await r.l1.get_block(number)
    assert header is not None
    return BatchBlock(1, 100, number, header.hash, tuple(transfers(txs)))


def test_an_origin_l1_does_not_attest_is_refused(chain: Anvil, tmp_path: pathlib.Path) -> None:
    asyncio.run(_unattested(chain, tmp_path))


async def _unattested(chain: Anvil, tmp_path: pathlib.Path) -> None:
    r = await rollup(chain.url, tmp_path)
    async with r.l1:
        head = await r.l1.block_number()
        good = await on(r, head - 1)
        # A made-up hash for a real block.
        name, args = await attempt(r, [replace(good, l1_origin_hash=b"\x66" * 32)])
        assert (name, args) == ("OriginHashMismatch", (0, good.l1_origin_number, b"\x66" * 32, good.l1_origin_hash))
        # The zero hash (what only derivation's own blocks carry), another block's hash.
        assert (await attempt(r, [replace(good, l1_origin_hash=bytes(32))]))[0] == "OriginHashMismatch"
        other = await on(r, head)
        assert (await attempt(r, [replace(good, l1_origin_hash=other.l1_origin_hash)]))[0] == "OriginHashMismatch"
        # A block of a fork: L1 reorganised it away after the sequencer took it as origin.
        snapshot = chain.rpc("evm_snapshot")
        chain.rpc("evm_mine")
        forked = await on(r, await r.l1.block_number())
        forked_header = await r.l1.get_block(forked.l1_origin_number)
        assert forked_header is not None
        assert chain.rpc("evm_revert", snapshot)
        await r.batcher.resync_nonce()
        # Another timestamp, so another block at that height whatever the clock did meanwhile (an
        # increaseTime could land on the forked block's own second on a loaded machine: same hash).
        chain.rpc("evm_setNextBlockTimestamp", forked_header.timestamp + 7)
        chain.rpc("evm_mine")
        canonical = await on(r, forked.l1_origin_number)
        assert canonical.l1_origin_hash != forked.l1_origin_hash
        chain.rpc("evm_mine")
        assert (await attempt(r, [forked]))[0] == "OriginHashMismatch"
        # From the future: the block that includes the batch, or later.
        now = await r.l1.block_number()
        name, args = await attempt(r, [replace(good, l1_origin_number=now + 3)])
        assert name == "OriginInFuture" and args[:2] == (0, now + 3)
        # One bad block spoils the batch, wherever it is.
        assert (await attempt(r, [good, replace(good, number=2, l1_origin_hash=b"\x66" * 32)]))[0] == \
            "OriginHashMismatch"
        # The honest batch goes in.
        assert r.inbox.address is not None
        receipt = await r.batcher.wait_receipt(await r.batcher.send(
            r.inbox.address, r.inbox.encode_call("appendBatch", encode_batch([good]))), 10)
        assert receipt.success and await r.inbox.read(r.l1, "batchCount") == (1,)


#: Where the L1 of the history test starts: anvil mines 8,191 blocks in about a minute (each block
#: costs more the longer the chain), so that L1 starts as an old chain would be, its block 10,000.
FIRST_BLOCK = 10_000


@pytest.fixture
def old_chain(tmp_path: pathlib.Path) -> Iterator[Anvil]:
    genesis = tmp_path / "l1-genesis.json"
    genesis.write_text(json.dumps({"config": {"chainId": 31337}, "number": hex(FIRST_BLOCK),
                                   "gasLimit": hex(30_000_000), "timestamp": "0x0", "alloc": {}}))
    anvil = Anvil(args=("--init", str(genesis)))
    anvil.start()
    try:
        yield anvil
    finally:
        anvil.stop()


def test_an_origin_beyond_l1s_history_is_refused_and_the_oldest_in_it_is_taken(old_chain: Anvil,
                                                                              tmp_path: pathlib.Path) -> None:
    asyncio.run(_beyond_history(old_chain, tmp_path))


async def _beyond_history(chain: Anvil, tmp_path: pathlib.Path) -> None:
    r = await rollup(chain.url, tmp_path)
    async with r.l1:
        assert r.inbox.address is not None
        head = await r.l1.block_number()
        assert head > FIRST_BLOCK and (await r.l1.get_code(HISTORY_CONTRACT))  # L1 has EIP-2935
        block = await on(r, head - 1)
        # Origins from long ago (a block number anyone can name, with any hash): no contract can
        # check them, so none is taken; one HISTORY + 1 back (in the call, at the head's number).
        for number in (0, FIRST_BLOCK - 9000, head - HISTORY - 1):
            name, args = await attempt(r, [replace(block, l1_origin_number=number, l1_origin_hash=b"\x66" * 32)])
            assert (name, args[:2]) == ("OriginTooOld", (0, number))
        # The oldest the inbox checks: HISTORY back from the block that includes the batch. L1 holds
        # no block that old here, so its entry in the history contract is written as the block's
        # system call would have (slot number % HISTORY), and the inbox takes what L1 attests.
        head = await r.l1.block_number()
        oldest = head + 1 - HISTORY
        attested = keccak256(b"L1 block %d" % oldest)
        chain.rpc("anvil_setStorageAt", "0x" + HISTORY_CONTRACT.hex(), hex(oldest % HISTORY), "0x" + attested.hex())
        batch = [replace(block, l1_origin_number=oldest, l1_origin_hash=attested)]
        receipt = await r.batcher.wait_receipt(await r.batcher.send(
            r.inbox.address, r.inbox.encode_call("appendBatch", encode_batch(batch))), 10)
        assert receipt.success and receipt.block_number - oldest == HISTORY
        # Another hash for it: refused (in the call, still in the window: a mismatch; mined a block
        # later, one block too old).
        name, args = await attempt(r, [replace(batch[0], l1_origin_hash=b"\x66" * 32)])
        assert (name, args) == ("OriginHashMismatch", (0, oldest, b"\x66" * 32, attested))
