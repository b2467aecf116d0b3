"""BatchInbox on a real anvil: the input root computed from the calldata (and the same as Python's,
for random and adversarial framings alike), framing refusals, top-level EOA calls only, every
block's L1 origin checked against BLOCKHASH / EIP-2935, forced inclusion, views, custom errors."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_account import Account

from protocol import (
    BLOCK_LEAF,
    BatchBlock,
    BatchFormatError,
    BlockLeaf,
    Leaf,
    TxLeaf,
    batch_input_root,
    decode_batch,
    encode_batch,
    encode_leaves,
    input_root,
)
from services.l1 import Artifact, Contract, L1Client, LocalSigner, Receipt, RpcError, TxSender, keccak
from tests.l1.anvil import DEV_KEYS, Anvil

ARTIFACT = Artifact.load("BatchInbox")
FORWARDER = Artifact.load("ForwarderHarness")
DEPLOYER, BATCHER, ALICE, BOB = (LocalSigner(k) for k in DEV_KEYS)
L2_CHAIN_ID = 901


@pytest.fixture
async def inbox(l1: L1Client) -> Contract:
    return await deploy(l1, ARTIFACT, BATCHER.address)


async def deploy(l1: L1Client, artifact: Artifact, *args: Any) -> Contract:
    deployer = await TxSender.create(l1, DEPLOYER)
    receipt = await deployer.wait_receipt(await deployer.send(None, Contract(artifact).encode_deploy(*args)), 5)
    assert receipt.success and receipt.contract_address is not None
    return Contract(artifact, receipt.contract_address)


async def transact(l1: L1Client, signer: LocalSigner, inbox: Contract, function: str, *args: Any,
                   gas: int | None = None) -> Receipt:
    assert inbox.address is not None
    sender = await TxSender.create(l1, signer)
    tx_hash = await sender.send(inbox.address, inbox.encode_call(function, *args), gas=gas)
    return await sender.wait_receipt(tx_hash, 5)


async def revert_of(l1: L1Client, inbox: Contract, signer: LocalSigner, function: str, *args: Any) -> Any:
    assert inbox.address is not None
    with pytest.raises(RpcError) as caught:
        await l1.call(inbox.address, inbox.encode_call(function, *args), sender=signer.address)
    assert caught.value.code == 3  # execution reverted: an answer, with revert data
    return inbox.decode_error(caught.value.revert_data)


def l2_transaction(nonce: int) -> Any:
    return Account.sign_transaction(
        {"type": 2, "chainId": L2_CHAIN_ID, "nonce": nonce, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9,
         "gas": 21000, "to": BOB.address, "value": 1, "data": b""}, DEV_KEYS[2])


async def origin(l1: L1Client, number: int | None = None) -> tuple[int, bytes]:
    """An L1 block's number and hash (by default the block before the latest, as the batcher takes
    an origin at depth): an L1 origin the inbox attests. (A call, unlike a transaction, runs at the
    latest block's number, whose hash L1 does not know yet.)"""
    if number is None:
        number = await l1.block_number() - 1
    header = await l1.get_block(number)
    assert header is not None
    return header.number, header.hash


async def blocks_on(l1: L1Client, first: int, count: int, txs: int = 1) -> list[BatchBlock]:
    number, block_hash = await origin(l1)
    return [BatchBlock(n, 100 + n, number, block_hash, tuple(bytes(l2_transaction(n * 10 + i).raw_transaction)
                                                             for i in range(txs)))
            for n in range(first, first + count)]


# --- appending -------------------------------------------------------------------------------------


async def test_the_inbox_computes_the_input_root_of_the_batch_it_is_given(l1: L1Client, inbox: Contract) -> None:
    batches = [await blocks_on(l1, 1, 2, txs=3), await blocks_on(l1, 3, 1, txs=0)]
    receipts = [await transact(l1, BATCHER, inbox, "appendBatch", encode_batch(b)) for b in batches]
    for index, (blocks, receipt) in enumerate(zip(batches, receipts, strict=True)):
        data = encode_batch(blocks)
        assert receipt.success
        (event,) = [inbox.decode_log(log) for log in receipt.logs]
        assert event is not None and event.name == "BatchAppended"
        # The root is L1's, from the calldata: Python's sized Merkle root over the same leaves.
        assert event.args == {"index": index, "dataHash": keccak(data), "inputRoot": batch_input_root(blocks),
                              "l1Block": receipt.block_number}
        assert await inbox.read(l1, "batch", index) == (batch_input_root(blocks), receipt.block_number)
        assert event.log.topics[1] == index.to_bytes(32, "big")  # index is indexed: filterable
        # Derivation: the event's transaction carries the batch in its input, as its top-level call.
        tx = await l1.get_transaction(event.log.tx_hash)
        assert tx is not None and tx.to == inbox.address
        assert inbox.decode_input("appendBatch", tx.input) == (data,)
    assert await inbox.read(l1, "batchCount") == (2,)
    assert await inbox.read(l1, "batcher") == (BATCHER.address,)
    assert await inbox.read(l1, "BATCH_VERSION") == (1,)


async def test_appending_is_cheap(l1: L1Client, inbox: Contract) -> None:
    """Two new slots and a log, the data left in calldata; the root costs little beside them."""
    await transact(l1, BATCHER, inbox, "appendBatch", encode_batch(await blocks_on(l1, 1, 1)))  # the count's slot
    data = encode_batch(await blocks_on(l1, 2, 1, txs=8))
    receipt = await transact(l1, BATCHER, inbox, "appendBatch", data)
    calldata_gas = 16 * (len(data) + 100)
    assert receipt.gas_used < 21_000 + calldata_gas + 75_000


async def test_only_the_batcher_may_append(l1: L1Client, inbox: Contract) -> None:
    data = encode_batch(await blocks_on(l1, 1, 1))
    error = await revert_of(l1, inbox, ALICE, "appendBatch", data)
    assert (error.name, error.args) == ("NotBatcher", (ALICE.address,))
    # Mined anyway (explicit gas skips the estimate): reverted, nothing appended.
    receipt = await transact(l1, ALICE, inbox, "appendBatch", data, gas=200_000)
    assert not receipt.success and receipt.logs == ()
    assert await inbox.read(l1, "batchCount") == (0,)


# --- the framing ------------------------------------------------------------------------------------

TX = b"\x00" + b"\x02tx"  # a TX leaf: the kind byte, then any bytes
REFUSED = [
    (b"", "EmptyData", ()),
    (b"\x00\x00\x00\x05" + TX, "UnknownVersion", (0,)),  # version 0 (zlib) is gone
    (b"\x02\x00\x00\x04" + TX, "UnknownVersion", (2,)),
    (b"\x01", "NoLeaves", ()),
    (b"\x01\x00\x00\x04" + TX + b"\x00\x00", "TruncatedLeaf", (1,)),  # a length cut short
    (b"\x01\x00\x00\x05" + TX, "TruncatedLeaf", (0,)),  # a leaf running past the end
    (b"\x01\xff\xff\xff" + TX, "TruncatedLeaf", (0,)),  # the largest length, over a few bytes
    (b"\x01\x00\x00\x04" + TX + b"\x00\x00\x00", "EmptyLeaf", (1,)),
    (b"\x01\x00\x00\x01\x02", "UnknownLeaf", (0,)),  # a third kind
    (b"\x01\x00\x00\x01\xff", "UnknownLeaf", (0,)),
    (b"\x01\x00\x00\x02\x01\x00", "UnknownLeaf", (0,)),  # a BLOCK leaf of another size than 161
    (b"\x01\x00\x00\xa2\x01" + bytes(161), "UnknownLeaf", (0,)),  # 162
]


@pytest.mark.parametrize(("data", "name", "args"), REFUSED)
async def test_malformed_framing_is_refused_by_name_as_python_refuses_it(
        l1: L1Client, inbox: Contract, data: bytes, name: str, args: tuple[int, ...]) -> None:
    error = await revert_of(l1, inbox, BATCHER, "appendBatch", data)
    assert (error.name, error.args) == (name, args)
    with pytest.raises(BatchFormatError) as caught:
        decode_batch(data)
    assert caught.value.reason == name


async def test_a_batch_of_transaction_leaves_only_needs_no_origin(l1: L1Client, inbox: Contract) -> None:
    """Stray TX leaves are derivation's to skip (by rule), not the inbox's to refuse."""
    leaves: tuple[Leaf, ...] = (TxLeaf(b""), TxLeaf(b"\x02junk"))
    receipt = await transact(l1, BATCHER, inbox, "appendBatch", encode_leaves(leaves))
    assert receipt.success and await inbox.read(l1, "batch", 0) == (input_root(leaves), receipt.block_number)


# --- the caller: only the batcher's own transaction ------------------------------------------------


async def test_a_contract_batcher_cannot_append(l1: L1Client) -> None:
    """The batch would be inside another call, not in any transaction's input."""
    forwarder = await deploy(l1, FORWARDER)
    assert forwarder.address is not None
    inbox = await deploy(l1, ARTIFACT, forwarder.address)
    data = encode_batch(await blocks_on(l1, 1, 1))
    error = await revert_of(l1, forwarder, ALICE, "forward", inbox.address, inbox.encode_call("appendBatch", data))
    assert error.name == "CallFailed"
    refusal = inbox.decode_error(error.args[0])
    assert refusal is not None and (refusal.name, refusal.args) == ("NotTopLevelCall", (forwarder.address,
                                                                                        ALICE.address))


async def test_a_batcher_with_an_eip7702_delegation_cannot_append(l1: L1Client, chain: Anvil, inbox: Contract
                                                                   ) -> None:
    """Delegated to a forwarder, the batcher's own transaction to itself would call the inbox from its
    code (msg.sender == tx.origin, the batch out of sight): an account with code is refused, directly
    too."""
    forwarder = await deploy(l1, FORWARDER)
    assert forwarder.address is not None and inbox.address is not None
    data = encode_batch(await blocks_on(l1, 1, 1))
    chain.rpc("anvil_setCode", "0x" + BATCHER.address.hex(), "0xef0100" + forwarder.address.hex())
    assert len(await l1.get_code(BATCHER.address)) == 23  # the EIP-7702 delegation designator
    error = await revert_of(l1, inbox, BATCHER, "appendBatch", data)
    assert (error.name, error.args) == ("BatcherHasCode", (BATCHER.address,))
    # Through its delegated code: a transaction from the batcher to itself.
    sender = await TxSender.create(l1, BATCHER)
    call = Contract(FORWARDER).encode_call("forward", inbox.address, inbox.encode_call("appendBatch", data))
    receipt = await sender.wait_receipt(await sender.send(BATCHER.address, call, gas=300_000), 5)
    assert not receipt.success and await inbox.read(l1, "batchCount") == (0,)
    chain.rpc("anvil_setCode", "0x" + BATCHER.address.hex(), "0x")  # undelegated: it may again
    assert (await transact(l1, BATCHER, inbox, "appendBatch", data)).success


# --- the L1 origin ----------------------------------------------------------------------------------


async def test_each_block_origin_must_be_an_l1_block_hash(l1: L1Client, inbox: Contract) -> None:
    good = await blocks_on(l1, 1, 2)
    wrong = b"\x33" * 32
    # The second block's (leaf 2, after block 1's BLOCK and TX leaves) hash is not L1's.
    error = await revert_of(l1, inbox, BATCHER, "appendBatch",
                            encode_batch([good[0], replace(good[1], l1_origin_hash=wrong)]))
    assert (error.name, error.args) == ("OriginHashMismatch", (2, good[1].l1_origin_number, wrong,
                                                               good[1].l1_origin_hash))
    # Another block's hash, and the zero hash (what derivation's own blocks carry: never posted).
    other = await origin(l1, good[0].l1_origin_number + 1)
    for claimed in (other[1], bytes(32)):
        error = await revert_of(l1, inbox, BATCHER, "appendBatch",
                                encode_batch([replace(good[0], l1_origin_hash=claimed)]))
        assert error.name == "OriginHashMismatch" and error.args[2] == claimed
    # In the future: the block including the batch, or later (its hash is not known yet).
    number, _ = await origin(l1)
    error = await revert_of(l1, inbox, BATCHER, "appendBatch",
                            encode_batch([replace(good[0], l1_origin_number=number + 5)]))
    assert error.name == "OriginInFuture" and error.args[:2] == (0, number + 5) and error.args[2] <= number + 5
    assert (await transact(l1, BATCHER, inbox, "appendBatch", encode_batch(good))).success


async def test_origins_older_than_blockhash_are_checked_through_eip2935(l1: L1Client, chain: Anvil,
                                                                         inbox: Contract) -> None:
    number, block_hash = await origin(l1)
    chain.rpc("anvil_mine", hex(300))
    old = BatchBlock(1, 100, number, block_hash, ())  # 300 blocks back: BLOCKHASH gives 0 there
    assert (await inbox.read(l1, "HISTORY")) == (bytes.fromhex("0000F90827F1C53a10cb7A02335B175320002935"),)
    wrong = replace(old, l1_origin_hash=b"\x44" * 32)
    error = await revert_of(l1, inbox, BATCHER, "appendBatch", encode_batch([wrong]))
    assert (error.name, error.args) == ("OriginHashMismatch", (0, number, b"\x44" * 32, block_hash))
    receipt = await transact(l1, BATCHER, inbox, "appendBatch", encode_batch([old]))
    assert receipt.success and receipt.block_number - number > 256


# --- differential: Python's decoder and root vs the contract's -------------------------------------


@dataclass
class Framings:
    """Random batches, honest and adversarial, over leaves whose origins are L1's."""

    rng: random.Random
    origin: tuple[int, bytes]

    def leaf(self) -> Leaf:
        if self.rng.random() < 0.3:
            number, block_hash = self.origin
            return BlockLeaf(self.rng.getrandbits(64), self.rng.getrandbits(64), number, block_hash,
                             self.rng.randrange(4))
        return TxLeaf(self.rng.randbytes(self.rng.choice((0, 1, 31, 32, 33, 100, 300))))

    def batch(self) -> bytes:
        frames = [encode_leaves([self.leaf()])[1:] for _ in range(self.rng.randrange(1, 40))]
        mutation = self.rng.randrange(10)
        if mutation == 5:  # an empty frame, between two others or last
            frames.insert(self.rng.randrange(len(frames) + 1), b"\x00\x00\x00")
        elif mutation == 6:  # a leaf of a third kind
            at = self.rng.randrange(len(frames))
            frames[at] = frames[at][:3] + bytes((self.rng.randrange(2, 256),)) + frames[at][4:]
        elif mutation == 7:  # no leaves at all, or only junk after the version byte
            frames = [self.rng.randbytes(self.rng.randrange(3))]
        data = bytearray(b"\x01" + b"".join(frames))
        if mutation == 1 and len(data) > 1:  # cut anywhere
            del data[self.rng.randrange(1, len(data)):]
        elif mutation == 2:  # a byte of a length (or of anything) changed
            data[self.rng.randrange(len(data))] = self.rng.randrange(256)
        elif mutation == 3:  # junk appended
            data += self.rng.randbytes(self.rng.randrange(1, 8))
        elif mutation == 4:  # a BLOCK leaf's origin hash changed, somewhere
            at = data.find(bytes((0, 0, 161, BLOCK_LEAF)))
            if at >= 0:
                data[at + 4 + 97] ^= 1
        return bytes(data)


async def expected(l1: L1Client, data: bytes) -> str | tuple[Leaf, ...]:
    """What the inbox must do with ``data`` in a call at the latest block, in Python: the leaves, or
    the error's name (the framing as decode_batch refuses it; then each BLOCK leaf's origin). The
    inbox names the first fault in batch order, so with an origin fault before a framing fault the
    names would differ (both refuse): ``Framings`` makes one fault a batch."""
    try:
        leaves = decode_batch(data)
    except BatchFormatError as exc:
        return exc.reason
    latest = await l1.block_number()
    for leaf in leaves:
        if isinstance(leaf, BlockLeaf):
            if leaf.l1_origin_number >= latest:
                return "OriginInFuture"
            if latest - leaf.l1_origin_number > 8191:
                return "OriginTooOld"
            if leaf.l1_origin_hash != (await origin(l1, leaf.l1_origin_number))[1]:
                return "OriginHashMismatch"
    return leaves


async def test_python_and_the_inbox_accept_the_same_batches_with_the_same_root(l1: L1Client,
                                                                                inbox: Contract) -> None:
    framings = Framings(random.Random(12), await origin(l1))
    seen: dict[str, int] = {}
    index = 0
    for _ in range(200):
        data = framings.batch()
        want = await expected(l1, data)
        if isinstance(want, str):
            error = await revert_of(l1, inbox, BATCHER, "appendBatch", data)
            assert error.name == want, data.hex()
            seen[want] = seen.get(want, 0) + 1
            continue
        receipt = await transact(l1, BATCHER, inbox, "appendBatch", data)
        assert receipt.success
        assert await inbox.read(l1, "batch", index) == (input_root(want), receipt.block_number), data.hex()
        index += 1
        seen["accepted"] = seen.get("accepted", 0) + 1
    # Every outcome was met (a fixed seed: the same batches every run).
    outcomes = {"accepted", "NoLeaves", "TruncatedLeaf", "EmptyLeaf", "UnknownLeaf", "OriginHashMismatch"}
    assert outcomes <= set(seen), seen


# --- forced inclusion ---------------------------------------------------------------------------------


async def test_anyone_can_force_include_a_signed_l2_transaction(l1: L1Client, inbox: Contract) -> None:
    queued = [(ALICE, l2_transaction(0)), (BOB, l2_transaction(1))]
    for index, (signer, signed) in enumerate(queued):
        raw = bytes(signed.raw_transaction)
        receipt = await transact(l1, signer, inbox, "forceInclude", raw)
        (event,) = [inbox.decode_log(log) for log in receipt.logs]
        assert event is not None and event.name == "ForcedTransaction"
        # txHash is the L2 transaction hash, as the wallet computed it.
        assert event.args == {"index": index, "txHash": bytes(signed.hash), "data": raw,
                              "l1Block": receipt.block_number}
        assert await inbox.read(l1, "forcedTransaction", index) == (bytes(signed.hash), receipt.block_number)
    assert await inbox.read(l1, "forcedCount") == (2,)
    assert await inbox.read(l1, "batchCount") == (0,)  # the queue is separate from the batches


async def test_forced_transactions_are_capped_in_size(l1: L1Client, inbox: Contract) -> None:
    (cap,) = await inbox.read(l1, "MAX_FORCED_TX_SIZE")
    assert cap == 128 * 1024
    error = await revert_of(l1, inbox, ALICE, "forceInclude", b"\x02" * (cap + 1))
    assert (error.name, error.args) == ("ForcedTxTooLarge", (cap + 1, cap))
    assert (await revert_of(l1, inbox, ALICE, "forceInclude", b"")).name == "EmptyData"
    assert inbox.address is not None
    data = inbox.encode_call("forceInclude", b"\x02" * cap)
    assert inbox.decode_output("forceInclude", await l1.call(inbox.address, data, sender=ALICE.address)) == (0,)


async def test_views_reject_indexes_out_of_range(l1: L1Client, inbox: Contract) -> None:
    error = await revert_of(l1, inbox, ALICE, "batch", 0)
    assert (error.name, error.args) == ("IndexOutOfRange", (0, 0))
    await transact(l1, ALICE, inbox, "forceInclude", bytes(l2_transaction(0).raw_transaction))
    error = await revert_of(l1, inbox, ALICE, "forcedTransaction", 1)
    assert (error.name, error.args) == ("IndexOutOfRange", (1, 1))


async def test_the_batcher_cannot_be_the_zero_address(l1: L1Client) -> None:
    inbox = Contract(ARTIFACT)
    with pytest.raises(RpcError) as caught:
        await l1.estimate_gas(None, inbox.encode_deploy(b"\x00" * 20), sender=DEPLOYER.address)
    error = inbox.decode_error(caught.value.revert_data)
    assert error is not None and error.name == "ZeroBatcher"


async def test_deployed_code_matches_the_artifact(l1: L1Client, inbox: Contract) -> None:
    assert inbox.address is not None
    code = await l1.get_code(inbox.address)
    assert code != ARTIFACT.deployed_bytecode  # the batcher is baked in as an immutable...
    assert ARTIFACT.matches_code(code)  # ...which matches_code masks
    assert not ARTIFACT.matches_code(code[:-1] + b"\x00")
