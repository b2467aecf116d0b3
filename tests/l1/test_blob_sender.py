"""Blob transactions (EIP-4844) from the batcher's sender on a real anvil: signed as a wallet library
signs them, mined with their blobs served back, a stuck one replaced with the same blobs and bumped
fees (its blob fee too), and a restart that takes a blob transaction back from the pool when given its
blobs again (and only then)."""

from __future__ import annotations

import rlp
from eth_account import Account

from protocol import to_blobs
from services.l1 import (
    GWEI,
    BlobSidecar,
    L1Client,
    SenderConfig,
    TxSender,
    UnsignedBlobTransaction,
    UnsignedTransaction,
    checksum,
    keccak,
    sidecar_of,
    versioned_hash,
)
from tests.l1.anvil import DEV_KEYS, Anvil
from tests.l1.test_sender import BATCHER, SINK, l1, pooled  # noqa: F401  (l1: the fixture)

BLOBS = to_blobs(bytes(range(256)) * 600)  # two blobs


def test_blob_signatures_are_what_a_wallet_library_signs() -> None:
    sidecar = sidecar_of(BLOBS)
    hashes = tuple(versioned_hash(c) for c in sidecar.commitments)
    base = UnsignedTransaction(chain_id=31337, nonce=3, max_priority_fee_per_gas=GWEI, max_fee_per_gas=3 * GWEI,
                               gas_limit=90_000, to=SINK, value=0, data=b"\x01\x02")
    ours = BATCHER.sign_blob(UnsignedBlobTransaction(base, 7, hashes), sidecar)
    fields = {"type": 3, "chainId": 31337, "nonce": 3, "maxPriorityFeePerGas": GWEI, "maxFeePerGas": 3 * GWEI,
              "gas": 90_000, "value": 0, "data": b"\x01\x02", "to": checksum(SINK), "maxFeePerBlobGas": 7}
    signed_by_them = Account.sign_transaction(fields, DEV_KEYS[1], blobs=list(BLOBS))
    theirs = rlp.decode(bytes(signed_by_them.raw_transaction)[1:])
    # eth-account 0.14 wraps it in Osaka's form (EIP-7594: [tx, 1, blobs, commitments, 128 cell
    # proofs a blob]); ours by default is Cancun's (one blob proof a blob), which anvil takes too.
    # The signed transaction, the blobs and the commitments are the same bytes.
    signed, blobs, commitments, _ = rlp.decode(ours.raw[1:])
    assert theirs[0] == signed and theirs[1] == b"\x01" and theirs[2:4] == [blobs, commitments]
    assert ours.hash == keccak(b"\x03" + rlp.encode(signed))
    # With cell proofs (SenderConfig.blob_cell_proofs): byte for byte eth-account's.
    cells = BATCHER.sign_blob(UnsignedBlobTransaction(base, 7, hashes), sidecar_of(BLOBS, cells=True))
    assert cells.raw == bytes(signed_by_them.raw_transaction) and cells.hash == ours.hash


async def test_a_blob_transaction_is_mined_served_back_and_replaced_with_its_blobs(
        l1: L1Client, chain: Anvil) -> None:  # noqa: F811
    sender = await TxSender.create(l1, BATCHER, SenderConfig(replace_after_s=0.05, receipt_poll_s=0.02))
    chain.rpc("evm_setAutomine", False)
    original = await sender.send_blobs(SINK, b"", await sender.sidecar(BLOBS))
    (pending,) = sender.pending()
    assert pending.sidecar is not None and pending.blob_fee >= 1
    replacement = await sender.replace(original)
    (bumped,) = sender.pending()
    assert bumped.blob_fee >= 2 * pending.blob_fee and bumped.fees.max_fee_per_gas > pending.fees.max_fee_per_gas
    assert pooled(chain) == [replacement]
    chain.rpc("evm_mine")
    receipt = await sender.wait_receipt(original, 5)
    assert receipt.success and receipt.tx_hash == replacement
    tx = await l1.get_transaction(replacement)
    assert tx is not None and len(tx.blob_versioned_hashes) == 2
    assert tuple(await l1.get_blobs(replacement) or ()) == BLOBS
    # Cell proofs (EIP-7594's sidecar) are taken as well.
    chain.rpc("evm_setAutomine", True)
    cells = await TxSender.create(l1, BATCHER, SenderConfig(blob_cell_proofs=True))
    assert (await cells.wait_receipt(await cells.send_blobs(SINK, b"", await cells.sidecar(BLOBS[:1])), 10)).success
    chain.rpc("evm_setAutomine", False)
    # A restart takes back a pooled blob transaction only with its blobs given again (the pool has
    # none to re-sign it with), checked against its versioned hashes; else it moves its nonce past it.
    in_pool = await sender.send_blobs(SINK, b"", await sender.sidecar(BLOBS))
    restarted = await TxSender.create(l1, BATCHER)
    assert await restarted.recover() == ()
    assert await restarted.resync_nonce() == receipt_nonce(chain) + 1
    other = await sender.sidecar(BLOBS[:1])

    async def other_blobs(hashes: tuple[bytes, ...]) -> BlobSidecar | None:
        return other

    assert await (await TxSender.create(l1, BATCHER)).recover(other_blobs) == ()
    sidecar = await sender.sidecar(BLOBS)

    async def its_blobs(hashes: tuple[bytes, ...]) -> BlobSidecar | None:
        return sidecar if hashes == tuple(versioned_hash(c) for c in sidecar.commitments) else None

    again = await TxSender.create(l1, BATCHER)
    (recovered,) = await again.recover(its_blobs)
    assert recovered.hashes == (in_pool,) and recovered.sidecar == sidecar and recovered.blob_fee >= 1
    bumped_again = await again.replace(in_pool)  # replaceable like any pending blob transaction
    assert pooled(chain) == [bumped_again]
    chain.rpc("evm_mine")
    assert (await again.wait_receipt(in_pool, 5)).tx_hash == bumped_again
    assert tuple(await l1.get_blobs(bumped_again) or ()) == BLOBS


def receipt_nonce(chain: Anvil) -> int:
    return int(chain.rpc("eth_getTransactionCount", "0x" + BATCHER.address.hex(), "latest"), 16)
