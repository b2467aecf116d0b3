"""Several batch transactions in flight at once, over a real anvil that mines only when told to
(``evm_setAutomine`` off, ``anvil_mine``): the bound, nonce order, a stuck or dropped one bumped,
a kill -9 with batches in flight, and an L1 reorg that takes landed batches away while later ones
are still in flight. What derivation reads is checked through the sequencer itself: it follows
derivation at L1's safe head and rewinds when derivation makes other blocks (_follow), so a chain
whose block hashes do not change while it all reaches SAFE is the chain derivation reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
import pytest

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_BATCHER_KEY, DEVNET_DEPLOYER_KEY, Addresses, deploy_contracts
from protocol import batch_blocks, decode_batch
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as pb_grpc
from services.l1 import Artifact, Contract, FollowerConfig, L1Client, LocalSigner, SenderConfig, TxSender
from services.sequencer._batcher import Batcher, BatcherSettings
from services.sequencer._settings import L1Settings, SequencerSettings
from tests.l1.anvil import Anvil
from tests.ports import free_port
from tests.sequencer.test_chain import Sequencer, transfer
from tests.sequencer.test_service import DEV_KEYS, ROOT, sign
from tests.serving import wait_serving

GWEI = 10**9
INBOX = Contract(Artifact.load("BatchInbox"))
#: A batch of one block of one transfer is ~285 bytes: at this cut, every batch carries one block.
ONE_BLOCK = 300


def pool(anvil: Anvil) -> dict[int, str]:
    """The batcher key's transactions in anvil's pool: nonce -> hash."""
    content = anvil.rpc("txpool_content")
    ours: dict[int, str] = {}
    for section in ("pending", "queued"):
        for owner, txs in content[section].items():
            if owner.lower() == "0x" + DEVNET_BATCHER.hex():
                ours |= {int(n): tx["hash"] for n, tx in txs.items()}
    return ours


def inbox_batches(anvil: Anvil, inbox: bytes, since: int) -> list[tuple[int, int, int, str]]:
    """Every batch mined into the inbox after L1 block ``since``, in L1 order: (L1 block, first L2
    block, last L2 block, L1 tx hash)."""
    out = []
    for number in range(since + 1, int(anvil.rpc("eth_blockNumber"), 16) + 1):
        block = anvil.rpc("eth_getBlockByNumber", hex(number), True)
        for tx in block["transactions"]:
            if tx["to"] and bytes.fromhex(tx["to"][2:]) == inbox:
                (data,) = INBOX.decode_input("appendBatch", bytes.fromhex(tx["input"][2:]))
                blocks = batch_blocks(decode_batch(bytes(data)))
                out.append((number, blocks[0].number, blocks[-1].number, tx["hash"]))
    return out


async def until(check: Callable[[], bool], timeout_s: float = 30) -> None:
    """Poll ``check`` (the batcher's own tasks move it) until true; a bound against hanging."""
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - polls state the batcher's tasks change
            await asyncio.sleep(0.01)


# -- one process: the poster alone, driven a step at a time ------------------------------------


def batcher_signer() -> LocalSigner:
    return LocalSigner(bytes.fromhex(DEVNET_BATCHER_KEY.removeprefix("0x")))


def batcher_for(sequencer: Sequencer, client: L1Client, sender: TxSender, deployed: Addresses,
                max_in_flight: int, settings: BatcherSettings | None = None) -> Batcher:
    """A batcher over ``sequencer`` that posts one block a batch (unless ``settings`` say otherwise),
    and only when told (``post_once``)."""
    return Batcher(sequencer.store, sequencer.chain, client, sender,
                   Contract(Artifact.load("BatchInbox"), deployed.batch_inbox),
                   Contract(Artifact.load("DepositPortal"), deployed.deposit_portal),
                   settings or BatcherSettings(interval_s=3600, max_bytes=ONE_BLOCK, max_in_flight=max_in_flight),
                   FollowerConfig(), deployed.block_number, window=3600)


@contextlib.asynccontextmanager
async def posting(sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path, blocks: int, max_in_flight: int,
                  config: SenderConfig | None = None, *, txs: int = 1, settings: BatcherSettings | None = None
                  ) -> AsyncIterator[tuple[Batcher, Addresses, int]]:
    """A batcher over ``sequencer`` with ``blocks`` sealed blocks of ``txs`` transfers each waiting, on
    an anvil that has stopped mining on its own; and the L1 block the contracts were deployed at."""
    deployed = await deploy_contracts(anvil.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path / "l1-data")
    origin = anvil.rpc("eth_getBlockByNumber", "latest", False)  # an origin the inbox attests
    sequencer.chain.set_l1_origin(int(origin["number"], 16), bytes.fromhex(origin["hash"][2:]))
    for block in range(blocks):
        await sequencer.intake.submit([transfer(0, nonce) for nonce in range(block * txs, (block + 1) * txs)])
        assert await sequencer.chain.seal() is not None
    anvil.rpc("evm_setAutomine", False)
    async with L1Client(anvil.url) as client:
        batcher = batcher_for(sequencer, client, await TxSender.create(client, batcher_signer(), config), deployed,
                              max_in_flight, settings)
        try:
            yield batcher, deployed, int(origin["number"], 16)
        finally:
            for task in list(batcher._watchers):
                task.cancel()


async def test_batches_in_flight_are_bounded_and_land_in_nonce_order(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path) -> None:
    async with posting(sequencer, anvil, tmp_path, blocks=5, max_in_flight=3) as (batcher, deployed, since):
        sent = [await batcher.post_once() for _ in range(4)]
        assert None not in sent[:3] and sent[3] is None  # three in flight: the fourth waits for a slot
        in_pool = pool(anvil)
        assert len(in_pool) == 3 and sorted(in_pool) == list(range(min(in_pool), min(in_pool) + 3))
        assert [in_pool[n] for n in sorted(in_pool)] == ["0x" + h.hex() for h in sent[:3] if h is not None]

        anvil.rpc("anvil_mine", 1)  # all three in one L1 block, in nonce order
        await until(lambda: batcher.in_flight == 0)
        rest = [await batcher.post_once() for _ in range(3)]
        assert None not in rest[:2] and rest[2] is None  # blocks 4 and 5; then nothing is left
        anvil.rpc("anvil_mine", 1)
        await until(lambda: batcher.in_flight == 0)
        batches = inbox_batches(anvil, deployed.batch_inbox, since)
    assert [(first, last) for _, first, last, _ in batches] == [(n, n) for n in range(1, 6)]
    assert [b[0] for b in batches] == [since + 1] * 3 + [since + 2] * 2
    assert not pool(anvil)


@pytest.mark.parametrize("how", ["underpriced", "dropped"])
async def test_a_stuck_batch_is_bumped_at_its_nonce_and_lands_once(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path, how: str) -> None:
    """A batch transaction the L1 does not mine (its fee cap fell under a base fee that jumped, or the
    node's pool lost it) is sent again by the sender at the same nonce, with both fees bumped by at
    least the replacement minimum (anvil, like geth, refuses less), and only one version lands."""
    config = SenderConfig(replace_after_s=0.05, receipt_poll_s=0.02)
    async with posting(sequencer, anvil, tmp_path, blocks=1, max_in_flight=2, config=config) as (
            batcher, deployed, since):
        first = await batcher.post_once()
        assert first is not None
        (nonce,) = pool(anvil)
        old = anvil.rpc("eth_getTransactionByHash", "0x" + first.hex())
        if how == "underpriced":
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
            anvil.rpc("anvil_mine", 1)  # a block at 100 gwei: the batch (max fee ~2 base fees) stays out
            assert anvil.rpc("eth_getTransactionReceipt", "0x" + first.hex()) is None
        else:
            anvil.rpc("anvil_dropTransaction", "0x" + first.hex())
            assert not pool(anvil)

        await until(lambda: pool(anvil).get(nonce, "0x" + first.hex()) != "0x" + first.hex())
        new = anvil.rpc("eth_getTransactionByHash", pool(anvil)[nonce])
        assert int(new["nonce"], 16) == nonce and new["input"] == old["input"]
        for fee in ("maxFeePerGas", "maxPriorityFeePerGas"):
            assert int(new[fee], 16) * 100 >= int(old[fee], 16) * 110
        anvil.rpc("anvil_mine", 1)
        await until(lambda: batcher.in_flight == 0)
        batches = inbox_batches(anvil, deployed.batch_inbox, since)
    assert [(first_block, last, tx) for _, first_block, last, tx in batches] == [(1, 1, new["hash"])]
    assert anvil.rpc("eth_getTransactionReceipt", "0x" + first.hex()) is None


async def test_batches_recovered_after_a_restart_are_bumped_when_stuck_and_numbered_after(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path) -> None:
    """A poster dies with two batches in the pool; the next one (a new sender: no local nonce, no
    record of what was sent) takes them back from the pool, watches them, bumps them at their nonces
    when a base fee jump leaves them stuck, and posts the next block at the nonce after them. Each
    block lands once, in order, and no original version lands."""
    config = SenderConfig(replace_after_s=0.05, receipt_poll_s=0.02)
    async with contextlib.AsyncExitStack() as stack, \
            posting(sequencer, anvil, tmp_path, blocks=3, max_in_flight=2) as (before, deployed, since):
        sent = [await before.post_once() for _ in range(2)]
        for task in list(before._watchers):  # the process dies: its watchers with it
            task.cancel()
        originals = pool(anvil)
        assert sorted(originals.values()) == sorted("0x" + h.hex() for h in sent if h is not None)
        old = {n: anvil.rpc("eth_getTransactionByHash", h) for n, h in originals.items()}  # (replaced: forgotten)
        client = await stack.enter_async_context(L1Client(anvil.url))
        after = batcher_for(sequencer, client, await TxSender.create(client, batcher_signer(), config), deployed,
                            max_in_flight=2)
        try:
            await after.recover()
            assert after.in_flight == 2 and await after.post_once() is None  # both slots taken again
            anvil.rpc("anvil_setNextBlockBaseFeePerGas", hex(100 * GWEI))
            anvil.rpc("anvil_mine", 1)  # a block at 100 gwei: neither batch gets in
            await until(lambda: all(pool(anvil).get(n) not in (None, h) for n, h in originals.items()))
            bumped = pool(anvil)
            for nonce in originals:
                new = anvil.rpc("eth_getTransactionByHash", bumped[nonce])
                assert new["input"] == old[nonce]["input"]
                for fee in ("maxFeePerGas", "maxPriorityFeePerGas"):
                    assert int(new[fee], 16) * 100 >= int(old[nonce][fee], 16) * 110
            anvil.rpc("anvil_mine", 1)
            await until(lambda: after.in_flight == 0)
            third = await after.post_once()
            assert third is not None
            assert int(anvil.rpc("eth_getTransactionByHash", "0x" + third.hex())["nonce"], 16) == max(originals) + 1
            anvil.rpc("anvil_mine", 1)
            await until(lambda: after.in_flight == 0)
        finally:
            for task in list(after._watchers):
                task.cancel()
        batches = inbox_batches(anvil, deployed.batch_inbox, since)
    assert [(first, last, tx) for _, first, last, tx in batches] == [
        (1, 1, bumped[min(bumped)]), (2, 2, bumped[max(bumped)]), (3, 3, "0x" + third.hex())]
    assert all(anvil.rpc("eth_getTransactionReceipt", h) is None for h in originals.values())


async def test_batches_mined_between_the_followers_first_pass_and_recovery_are_not_posted_again(
        sequencer: Sequencer, anvil: Anvil, tmp_path: pathlib.Path) -> None:
    """A restart's race: the new poster's follower has made its first pass over L1 when the previous
    run's two batches are mined, and only then does the poster read the pool. The pool no longer holds
    them and the follower has not seen them yet; posting waits for a pass up to the head it read, so
    blocks 1 and 2 are not sent again and the next batch carries block 3."""
    async with contextlib.AsyncExitStack() as stack, \
            posting(sequencer, anvil, tmp_path, blocks=3, max_in_flight=2) as (before, deployed, since):
        assert None not in [await before.post_once() for _ in range(2)]
        for task in list(before._watchers):  # the process dies: its watchers with it
            task.cancel()
        client = await stack.enter_async_context(L1Client(anvil.url))
        after = batcher_for(sequencer, client, await TxSender.create(client, batcher_signer()), deployed,
                            max_in_flight=2)
        follower = asyncio.create_task(after.run_follower())
        poster: asyncio.Task[None] | None = None
        try:
            await until(lambda: after._heads is not None)  # the first pass: nothing of ours mined yet
            anvil.rpc("anvil_mine", 1)  # the two land; the follower's next pass is a poll away
            poster = asyncio.create_task(after.run_poster())
            async with asyncio.timeout(30):
                while not (after.batches_sent and after.in_flight == 0 and sequencer.store.posted_upto() == 3):
                    await asyncio.sleep(0.05)
                    anvil.rpc("anvil_mine", 1)
        finally:
            for task in (follower, poster, *after._watchers):
                if task is not None:
                    task.cancel()
            await asyncio.gather(follower, *(t for t in (poster,) if t is not None), return_exceptions=True)
        batches = inbox_batches(anvil, deployed.batch_inbox, since)
    assert [(first, last) for _, first, last, _ in batches] == [(1, 1), (2, 2), (3, 3)]


# -- a worker process: kill -9, and an L1 reorg ------------------------------------------------


def start_worker(tmp_path: pathlib.Path, l1: Anvil, more: Mapping[str, Any] | None = None,
                 ) -> tuple[subprocess.Popen[bytes], Any, grpc.Channel]:
    """The sequencer worker over ``tmp_path`` (contracts deployed already), up to 4 batches in flight of
    one block each, 2 confirmations (``more``: other L1 settings)."""
    key_file = tmp_path / "batcher.key"
    key_file.write_text(DEVNET_BATCHER_KEY)
    address = f"127.0.0.1:{free_port()}"
    settings = {"block_time_s": 0.05, "l1": {
        "rpc": l1.url, "contracts": str(tmp_path / "l1" / "contracts.json"), "batcher_key_file": str(key_file),
        "batch_interval_s": 0.05, "batch_max_bytes": ONE_BLOCK, "max_in_flight": 4, "confirmation_depth": 2,
        "poll_interval_s": 0.05, **(more or {})}}
    config = {"service": "sequencer", "address": address, "data_dir": str(tmp_path / "seq"), "settings": settings}
    log = (tmp_path / "sequencer.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "services.runtime", "services.sequencer:WORKER",
                             "--config-json", json.dumps(config)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log,
                            env=dict(os.environ))
    channel = grpc.insecure_channel(address)
    wait_serving(channel, proc=proc)
    return proc, pb_grpc.SequencerServiceStub(channel), channel


def wait(check: Callable[[], bool], what: str, timeout_s: float = 30, mine: Anvil | None = None) -> None:
    """Poll ``check`` until true (mining an L1 block at each poll if ``mine``); a bound against hanging."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        if mine is not None:
            mine.rpc("anvil_mine", 1)
        time.sleep(0.05)


def send_one_block_each(stub: Any, nonces: range) -> list[str]:
    """Transfers of these nonces, each sealed before the next is sent: one L2 block each."""
    hashes = []
    for nonce in nonces:
        tx_hash = stub.SendRawTransaction(pb.SendRawTransactionRequest(
            raw_transaction=sign(DEV_KEYS[0], nonce, "0x000000000000000000000000000000000000dEaD", 1)),
            timeout=10).tx_hash
        wait(lambda h=tx_hash: receipt(stub, h).status >= pb.RECEIPT_STATUS_SEALED, "sealed")  # type: ignore[misc]
        hashes.append(tx_hash)
    return hashes


def receipt(stub: Any, tx_hash: str) -> Any:
    return stub.GetTransactionReceipt(pb.GetTransactionReceiptRequest(tx_hash=tx_hash), timeout=5).receipt


def block_hashes(stub: Any, upto: int) -> list[str]:
    return [stub.GetBlock(pb.GetBlockRequest(number=n), timeout=5).block.hash for n in range(1, upto + 1)]


def stop(proc: subprocess.Popen[bytes], channel: grpc.Channel) -> None:
    channel.close()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def all_safe(stub: Any, hashes: list[str]) -> Callable[[], bool]:
    return lambda: all(receipt(stub, h).status == pb.RECEIPT_STATUS_SAFE for h in hashes)


def deploy_and_start(tmp_path: pathlib.Path, anvil: Anvil, more: Mapping[str, Any] | None = None,
                     ) -> tuple[bytes, int, subprocess.Popen[bytes], Any, grpc.Channel]:
    """The contracts deployed, the worker started, and then anvil's automine off: the inbox's address,
    the L1 block before any batch, and the worker."""
    deployed = asyncio.run(deploy_contracts(anvil.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path))
    since = int(anvil.rpc("eth_blockNumber"), 16)
    proc, stub, channel = start_worker(tmp_path, anvil, more)
    anvil.rpc("evm_setAutomine", False)
    return deployed.batch_inbox, since, proc, stub, channel


def kill_9(proc: subprocess.Popen[bytes], stub: Any, channel: grpc.Channel, anvil: Anvil
           ) -> tuple[int, list[str], dict[int, str]]:
    """Kill -9 the worker: its head and block hashes before, and the batcher's transactions in the pool after."""
    head = stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5).unsafe_block
    before = block_hashes(stub, head)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    channel.close()
    return head, before, pool(anvil)


def test_kill_9_with_batches_in_flight_loses_nothing_and_posts_nothing_twice(
        tmp_path: pathlib.Path, anvil: Anvil) -> None:
    inbox, since, proc, stub, channel = deploy_and_start(tmp_path, anvil)
    try:
        txs = send_one_block_each(stub, range(6))
        wait(lambda: len(pool(anvil)) == 4, "four batches in flight")
        head, before, in_flight = kill_9(proc, stub, channel, anvil)

        proc, stub, channel = start_worker(tmp_path, anvil)
        wait(all_safe(stub, txs), "every transfer SAFE", mine=anvil)
        assert block_hashes(stub, head) == before  # derivation read the chain the sequencer had
        batches = inbox_batches(anvil, inbox, since)
        assert {tx for *_, tx in batches} >= set(in_flight.values())  # the four sent before the kill landed
        carried = [n for _, first, last, _ in batches for n in range(first, last + 1)]
        assert sorted(carried) == carried == list(range(1, head + 1))  # each block once, in order
    finally:
        stop(proc, channel)


def test_an_l1_reorg_under_batches_in_flight_reposts_what_it_removed(tmp_path: pathlib.Path, anvil: Anvil) -> None:
    """Four batches land in one L1 block and two more wait in the pool behind them; a reorg replaces
    that block: the four are gone (anvil does not put them back) and the two wait behind a nonce
    gap. The batcher posts the removed blocks again at the nonce L1 expects, the two land after them
    (derivation skips the blocks it has), and the chain stays the one derivation reads."""
    inbox, since, proc, stub, channel = deploy_and_start(tmp_path, anvil)
    try:
        txs = send_one_block_each(stub, range(4))
        wait(lambda: len(pool(anvil)) == 4, "four batches in flight")
        anvil.rpc("anvil_mine", 1)
        landed = int(anvil.rpc("eth_blockNumber"), 16)
        txs += send_one_block_each(stub, range(4, 6))
        wait(lambda: len(pool(anvil)) == 2, "two more in flight")
        head = stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5).unsafe_block
        before = block_hashes(stub, head)
        assert [b[1:3] for b in inbox_batches(anvil, inbox, since)] == [(n, n) for n in range(1, 5)]

        anvil.rpc("anvil_reorg", 1, [])  # the block with the four is replaced by an empty one
        assert inbox_batches(anvil, inbox, since) == [] and anvil.rpc("eth_blockNumber") == hex(landed)
        wait(all_safe(stub, txs), "every transfer SAFE", mine=anvil)
        assert block_hashes(stub, head) == before
        batches = inbox_batches(anvil, inbox, since)
        carried = {n for _, first, last, _ in batches for n in range(first, last + 1)}
        assert carried == set(range(1, head + 1))
        assert batches[0][1] == 1  # the re-post of the removed blocks comes first (the gap's nonce)
    finally:
        stop(proc, channel)


def test_batches_a_reorg_mines_again_on_the_new_branch_stand(tmp_path: pathlib.Path, anvil: Anvil) -> None:
    """As a geth L1 does (it puts a reorg's removed transactions back in its pool): four batches land,
    a reorg replaces their L1 block with one that holds the same four transactions. The follower sees
    them removed and added again in another block; whatever the batcher posts again lands after them
    (derivation skips the blocks it has), and the chain stays the one derivation reads."""
    inbox, since, proc, stub, channel = deploy_and_start(tmp_path, anvil)
    try:
        txs = send_one_block_each(stub, range(4))
        wait(lambda: len(pool(anvil)) == 4, "four batches in flight")
        raw = [anvil.rpc("eth_getRawTransactionByHash", h) for _, h in sorted(pool(anvil).items())]
        anvil.rpc("anvil_mine", 1)
        wait(lambda: all(receipt(stub, h).l1_tx_hash for h in txs), "the follower saw the four land")
        landed = inbox_batches(anvil, inbox, since)
        old_block = anvil.rpc("eth_getBlockByNumber", hex(landed[0][0]), False)["hash"]
        head = stub.GetChainInfo(pb.GetChainInfoRequest(), timeout=5).unsafe_block
        before = block_hashes(stub, head)

        anvil.rpc("anvil_reorg", 1, [[tx, 0] for tx in raw])  # the same four, in a block of another hash
        again = inbox_batches(anvil, inbox, since)
        assert [b[1:] for b in again] == [b[1:] for b in landed]
        assert anvil.rpc("eth_getBlockByNumber", hex(landed[0][0]), False)["hash"] != old_block
        wait(all_safe(stub, txs), "every transfer SAFE", mine=anvil)
        assert block_hashes(stub, head) == before
        batches = inbox_batches(anvil, inbox, since)
        assert batches[:4] == again  # anything posted again comes after them
        assert {n for _, first, last, _ in batches for n in range(first, last + 1)} == set(range(1, head + 1))
    finally:
        stop(proc, channel)


def test_no_batch_outgrows_the_l1_transaction_gas_cap() -> None:
    """EIP-7825 caps an L1 transaction at 2**24 gas: at EIP-7623's floor (40 gas a byte) that is
    ~414 KB of batch data with room for the intrinsic gas and appendBatch's execution; a larger
    ``max_tx_bytes`` is refused at start unless ``max_tx_gas`` says the L1 allows more."""
    l1 = {"rpc": "http://127.0.0.1:1", "contracts": "contracts.json", "batcher_key_file": "batcher.key"}
    default = L1Settings(**l1)
    assert default.max_tx_gas == 2**24 and default.max_data_by_gas == (2**24 - 221_000) // 40 == 413_905
    assert default.batch_max_bytes <= default.max_batch_data <= default.max_data_by_gas
    assert default.max_in_flight > 1
    big = {**l1, "max_tx_bytes": 1_000_000, "batch_max_bytes": 900_000}
    with pytest.raises(ValueError, match="max_tx_gas"):
        SequencerSettings.from_mapping({"l1": big})
    SequencerSettings.from_mapping({"l1": {**big, "max_tx_gas": 50_000_000}})  # a devnet L1 without the cap
    with pytest.raises(ValueError, match="max_in_flight"):
        SequencerSettings.from_mapping({"l1": {**l1, "max_in_flight": 0}})
