"""The one reader of L1 inputs on a real anvil with the real BatchInbox and DepositPortal: each kind
read into its record in L1 order, bounded reads, following L1 through a reorg, and the batches
whose data cannot be read back as the inbox accepted it (reorged out under the read; an L1 client
returning other calldata): raised, never skipped. (The sequencer following a real L1:
tests/sequencer/test_batcher.py; deriving from it: tests/rollups/test_derivation.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account

from protocol import (
    DEFAULT_CHAIN_ID,
    BatchBlock,
    BatchDataError,
    Deposit,
    L1Input,
    L1InputReader,
    L1InputsUpdate,
    PostedBatch,
    QueuedDeposit,
    QueuedForced,
    batch_input_root,
    decode_batch,
    encode_batch,
)
from services.l1 import (
    Artifact,
    Contract,
    FollowerConfig,
    L1Client,
    LocalSigner,
    Log,
    Receipt,
    RpcError,
    Transaction,
    TxSender,
    keccak,
)
from tests.l1.anvil import DEV_KEYS, Anvil

DEPLOYER, BATCHER, ALICE, BOB = (LocalSigner(k) for k in DEV_KEYS)
INBOX, PORTAL = Artifact.load("BatchInbox"), Artifact.load("DepositPortal")
#: The portal's output registry: deposits never read it (no withdrawal is proven here).
UNUSED_REGISTRY = b"\xee" * 20
FOLLOW = FollowerConfig(confirmation_depth=2, use_finalized_tag=False, finality_depth=4, poll_interval_s=0.01)


def l2_transaction(nonce: int) -> bytes:
    """A signed L2 transaction, as a user queues it for forced inclusion."""
    tx = {"type": 2, "chainId": DEFAULT_CHAIN_ID, "nonce": nonce, "to": BOB.address, "value": 1, "gas": 21_000,
          "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9, "data": b""}
    return bytes(Account.sign_transaction(tx, DEV_KEYS[2]).raw_transaction)




@dataclass
class L1:
    """A deployment on the test's anvil, and one sender per account."""

    chain: Anvil
    client: L1Client
    inbox: Contract
    portal: Contract
    deployed_at: int
    senders: dict[bytes, TxSender] = field(default_factory=dict)

    def batch(self, number: int) -> tuple[bytes, bytes]:
        """A real batch of one L2 block with one transaction (its L1 origin the deployment's block, as
        the inbox checks it), and its input root."""
        origin = bytes.fromhex(self.chain.rpc("eth_getBlockByNumber", hex(self.deployed_at), False)["hash"][2:])
        blocks = [BatchBlock(number, 1000 + number, self.deployed_at, origin, (l2_transaction(number),))]
        return encode_batch(blocks), batch_input_root(blocks)

    def reader(self, client: L1Client | None = None) -> L1InputReader:
        return L1InputReader(client or self.client, self.inbox, self.portal)

    async def send(self, signer: LocalSigner, contract: Contract, function: str, *args: Any, value: int = 0) -> bytes:
        if signer.address not in self.senders:
            self.senders[signer.address] = await TxSender.create(self.client, signer)
        assert contract.address is not None
        return await self.senders[signer.address].send(contract.address, contract.encode_call(function, *args), value)

    async def receipt(self, tx_hash: bytes) -> Receipt:
        receipt = await self.client.wait_receipt(tx_hash, 5)
        assert receipt.success
        return receipt

    async def post(self, index: int, number: int) -> PostedBatch:
        data, root = self.batch(number)
        return self.posted(index, await self.receipt(await self.send(BATCHER, self.inbox, "appendBatch", data)),
                           data, root)

    @staticmethod
    def posted(index: int, r: Receipt, data: bytes, root: bytes) -> PostedBatch:
        return PostedBatch(index, r.block_number, r.block_hash, r.tx_hash, root, data, decode_batch(data))

    @staticmethod
    def forced(index: int, r: Receipt, raw: bytes) -> QueuedForced:
        return QueuedForced(index, r.block_number, raw)

    @staticmethod
    def deposited(index: int, r: Receipt, sender: LocalSigner, to: bytes, mint: int) -> QueuedDeposit:
        source = keccak(encode(["uint256", "address", "address", "uint256", "uint256"],
                               [index, sender.address, to, mint, r.block_number]))  # as DepositPortal names it
        return QueuedDeposit(index, r.block_number, sender.address, Deposit(source, to, mint))


async def deploy(client: L1Client, batcher: bytes) -> tuple[Contract, Contract, int]:
    deployer = await TxSender.create(client, DEPLOYER)
    made = []
    for artifact, data in [(INBOX, Contract(INBOX).encode_deploy(batcher)),
                           (PORTAL, Contract(PORTAL).encode_deploy(UNUSED_REGISTRY, 1))]:
        receipt = await deployer.wait_receipt(await deployer.send(None, data), 5)
        assert receipt.success and receipt.contract_address is not None
        made.append((Contract(artifact, receipt.contract_address), receipt.block_number))
    (inbox, _), (portal, deployed_at) = made
    return inbox, portal, deployed_at


@pytest.fixture
async def l1(chain: Anvil) -> AsyncIterator[L1]:
    async with L1Client(chain.url) as client:
        inbox, portal, deployed_at = await deploy(client, BATCHER.address)
        yield L1(chain, client, inbox, portal, deployed_at)


async def post_inputs(l1: L1) -> list[L1Input]:
    """Inputs of every kind over four blocks, three of them in one block; what the reader must
    return for them, in L1 order (block, then position in the block)."""
    to = b"\x42" * 20
    first = await l1.post(0, 1)
    raw0 = l2_transaction(0)
    forced0 = l1.forced(0, await l1.receipt(await l1.send(ALICE, l1.inbox, "forceInclude", raw0)), raw0)
    # One block holding a deposit, a batch and a forced transaction, from three senders.
    l1.chain.rpc("evm_setAutomine", False)
    data, root = l1.batch(2)
    raw1 = l2_transaction(1)
    sent = [await l1.send(BOB, l1.portal, "depositTransaction", to, value=10**15),
            await l1.send(BATCHER, l1.inbox, "appendBatch", data),
            await l1.send(ALICE, l1.inbox, "forceInclude", raw1)]
    l1.chain.rpc("evm_mine")
    l1.chain.rpc("evm_setAutomine", True)
    d, b, f = [await l1.receipt(tx_hash) for tx_hash in sent]
    assert d.block_number == b.block_number == f.block_number
    in_block: list[tuple[int, L1Input]] = [
        (d.tx_index, l1.deposited(0, d, BOB, to, 10**15)), (b.tx_index, l1.posted(1, b, data, root)),
        (f.tx_index, l1.forced(1, f, raw1))]
    last = await l1.receipt(await l1.send(ALICE, l1.portal, "depositTransaction", to, value=7))
    expected = [first, forced0, *(item for _, item in sorted(in_block, key=lambda item: item[0])),
                l1.deposited(1, last, ALICE, to, 7)]
    blocks = [x.l1_block for x in expected]
    assert blocks == sorted(blocks) and len(set(blocks)) == 4
    return expected


async def test_each_input_is_read_into_its_record_in_l1_order(l1: L1) -> None:
    expected = await post_inputs(l1)
    latest = await l1.client.block_number()
    assert await l1.reader().read(l1.deployed_at, latest) == expected
    (one,) = [x for x in expected if isinstance(x, PostedBatch) and x.index == 0]
    assert (one.data, one.input_root) == l1.batch(1)  # the calldata's bytes, the event's root


async def test_a_batcher_s_own_batches_are_taken_from_what_it_sent_and_read_alike(l1: L1) -> None:
    expected = await post_inputs(l1)
    data, _ = l1.batch(2)
    asked: list[bytes] = []

    def known(data_hash: bytes) -> bytes | None:
        asked.append(data_hash)
        return data if data_hash == keccak(data) else None

    reader = L1InputReader(l1.client, l1.inbox, l1.portal, known=known)
    assert await reader.read(l1.deployed_at, await l1.client.block_number()) == expected
    assert asked == [keccak(x.data) for x in expected if isinstance(x, PostedBatch)]  # each batch asked for


async def test_a_read_returns_only_the_inputs_of_its_block_range(l1: L1) -> None:
    expected = await post_inputs(l1)
    blocks = sorted({x.l1_block for x in expected})
    reader = l1.reader()
    assert await reader.read(l1.deployed_at, blocks[0] - 1) == []
    assert await reader.read(blocks[1], blocks[2]) == [x for x in expected if blocks[1] <= x.l1_block <= blocks[2]]
    assert await reader.read(blocks[2], blocks[2]) == [x for x in expected if x.l1_block == blocks[2]]
    assert len(await reader.read(blocks[2], blocks[2])) == 3
    l1.chain.rpc("evm_mine")
    assert await reader.read(blocks[3] + 1, blocks[3] + 1) == []  # a block after them


async def until(stream: AsyncIterator[L1InputsUpdate], done: Callable[[L1InputsUpdate], bool]) -> list[L1InputsUpdate]:
    """The updates up to and including the first that is ``done``."""
    seen: list[L1InputsUpdate] = []
    async with asyncio.timeout(5):
        while not seen or not done(seen[-1]):
            seen.append(await anext(stream))
    return seen


async def test_following_l1_yields_the_same_inputs_once_and_reports_a_reorged_batch_removed(l1: L1) -> None:
    expected = await post_inputs(l1)
    batches = [x for x in expected if isinstance(x, PostedBatch)]
    latest = await l1.client.block_number()
    async with contextlib.aclosing(l1.reader().follow(l1.deployed_at, FOLLOW)) as stream:
        updates = await until(stream, lambda u: u.heads.unsafe == latest)
        assert [b for u in updates for b in u.added] == batches  # at any depth, as they appear
        assert all(u.removed == () for u in updates)
        l1.chain.rpc("anvil_mine", FOLLOW.confirmation_depth)
        updates += await until(stream, lambda u: u.heads.safe == latest)
        # Once each, at safe depth: batches by their L1 transaction, queue entries and deposits whole.
        assert [tx for u in updates for tx in u.safe] == [b.l1_tx_hash for b in batches]
        assert [f for u in updates for f in u.forced] == [x for x in expected if isinstance(x, QueuedForced)]
        assert [d for u in updates for d in u.deposits] == [x for x in expected if isinstance(x, QueuedDeposit)]
        for u in updates:
            assert all(x.l1_block <= u.heads.safe for xs in (u.forced, u.deposits) for x in xs)
        assert [b for u in updates for b in u.added] == batches  # nothing delivered twice

        # A batch, then a reorg (back to before it) that puts another batch at the same height.
        snapshot = l1.chain.rpc("evm_snapshot")
        doomed = await l1.post(2, 3)
        updates = await until(stream, lambda u: u.heads.unsafe == doomed.l1_block)
        assert [b for u in updates for b in u.added] == [doomed]
        assert l1.chain.rpc("evm_revert", snapshot)
        await l1.senders[BATCHER.address].resync_nonce()  # the chain forgot the batcher's transaction
        survivor = await l1.post(2, 4)
        assert survivor.l1_block == doomed.l1_block and survivor.l1_block_hash != doomed.l1_block_hash
        (update,) = await until(stream, lambda u: bool(u.removed))
        assert update.removed == (doomed.l1_tx_hash,) and update.added == (survivor,)
        l1.chain.rpc("anvil_mine", FOLLOW.confirmation_depth)
        updates = await until(stream, lambda u: u.heads.safe == survivor.l1_block)
        assert [tx for u in updates for tx in u.safe] == [survivor.l1_tx_hash]  # the removed one never is
    assert await l1.reader().read(l1.deployed_at, survivor.l1_block) == [*expected, survivor]


async def test_a_batch_cannot_be_appended_by_a_contract_so_its_data_is_always_calldata(chain: Anvil) -> None:
    async with L1Client(chain.url) as client:
        sender = await TxSender.create(client, ALICE)
        receipt = await client.wait_receipt(
            await sender.send(None, Contract(Artifact.load("ForwarderHarness")).encode_deploy()), 5)
        assert receipt.contract_address is not None
        forwarder = Contract(Artifact.load("ForwarderHarness"), receipt.contract_address)
        inbox, portal, deployed_at = await deploy(client, receipt.contract_address)  # the forwarder is the batcher
        l1 = L1(chain, client, inbox, portal, deployed_at)
        data, _ = l1.batch(1)
        assert forwarder.address is not None and inbox.address is not None
        with pytest.raises(RpcError) as caught:
            await client.call(forwarder.address, forwarder.encode_call("forward", inbox.address,
                                                                      inbox.encode_call("appendBatch", data)),
                              sender=ALICE.address)
        error = forwarder.decode_error(caught.value.revert_data)
        assert error is not None and error.name == "CallFailed"
        refusal = inbox.decode_error(error.args[0])
        assert refusal is not None and refusal.name == "NotTopLevelCall"


class RevertAfterLogs(L1Client):
    """The real client, with a real reorg timed between the reader's two reads: once it has the
    logs, the chain reverts to ``snapshot``, so a logged batch's transaction is gone when the
    reader asks for its calldata."""

    def __init__(self, chain: Anvil, snapshot: str) -> None:
        super().__init__(chain.url)
        self._chain, self._snapshot = chain, snapshot

    async def get_logs(self, *args: Any, **kwargs: Any) -> list[Log]:
        logs = await super().get_logs(*args, **kwargs)
        assert self._chain.rpc("evm_revert", self._snapshot)
        return logs


async def test_a_batch_whose_transaction_is_reorged_out_under_the_read_is_raised_not_skipped(l1: L1) -> None:
    """Skipping it would also drop every later batch (they must be added in index order): a derivation
    reading at confirmed depth raises, and reads the range again once restarted."""
    kept = await l1.post(0, 1)
    snapshot = l1.chain.rpc("evm_snapshot")
    gone = await l1.post(1, 2)
    async with RevertAfterLogs(l1.chain, snapshot) as client:
        with pytest.raises(BatchDataError, match="not found"):
            await l1.reader(client).read(l1.deployed_at, gone.l1_block)
    assert await l1.client.get_transaction(gone.l1_tx_hash) is None
    assert await l1.reader().read(l1.deployed_at, gone.l1_block) == [kept]


class OtherCalldata(L1Client):
    """The real client, except that a transaction's input comes back as ``edit`` makes it: an L1
    endpoint that lies, or is broken, about calldata."""

    def __init__(self, url: str, edit: Callable[[bytes], bytes]) -> None:
        super().__init__(url)
        self._edit = edit

    async def get_transaction(self, tx_hash: bytes) -> Transaction | None:
        tx = await super().get_transaction(tx_hash)
        return None if tx is None else dataclasses.replace(tx, input=self._edit(tx.input))


@pytest.mark.parametrize(("edit", "match"), [
    (lambda data: data[:-40] + bytes([data[-40] ^ 1]) + data[-39:], "not the appendBatch call"),  # a flipped byte
    (lambda data: b"\x00" * 4 + data[4:], "not the appendBatch call"),  # another function
    (lambda data: data[:36], "not the appendBatch call"),  # the data cut off
])
async def test_calldata_that_does_not_match_the_event_is_raised_not_skipped(
        l1: L1, edit: Callable[[bytes], bytes], match: str) -> None:
    posted = await l1.post(0, 1)
    async with OtherCalldata(l1.chain.url, edit) as client:
        with pytest.raises(BatchDataError, match=match):
            await l1.reader(client).read(l1.deployed_at, posted.l1_block)
