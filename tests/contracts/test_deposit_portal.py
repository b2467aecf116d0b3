"""DepositPortal on a real anvil: deposits lock ETH, name themselves by source hash, and refuse nonsense."""

from __future__ import annotations

import pytest
from eth_abi import encode

from services.l1 import Artifact, Contract, L1Client, LocalSigner, RpcError, TxSender, keccak
from tests.l1.anvil import DEV_KEYS

ARTIFACT = Artifact.load("DepositPortal")
DEPLOYER, ALICE = LocalSigner(DEV_KEYS[0]), LocalSigner(DEV_KEYS[2])
#: Deposits never read the output registry (withdrawals: test_portal_withdrawals.py).
UNUSED_REGISTRY = b"\xee" * 20


@pytest.fixture
async def portal(l1: L1Client) -> Contract:
    deployer = await TxSender.create(l1, DEPLOYER)
    data = Contract(ARTIFACT).encode_deploy(UNUSED_REGISTRY, 1)
    receipt = await deployer.wait_receipt(await deployer.send(None, data), 5)
    assert receipt.success and receipt.contract_address is not None
    return Contract(ARTIFACT, receipt.contract_address)


async def test_a_deposit_locks_eth_and_is_named_by_its_source_hash(l1: L1Client, portal: Contract) -> None:
    assert portal.address is not None
    to = bytes.fromhex("00" * 19 + "42")
    sender = await TxSender.create(l1, ALICE)
    receipt = await sender.wait_receipt(
        await sender.send(portal.address, portal.encode_call("depositTransaction", to), value=10**15), 5)
    assert receipt.success
    (event,) = [e for e in map(portal.decode_log, receipt.logs) if e is not None]
    expected = keccak(encode(["uint256", "address", "address", "uint256", "uint256"],
                             [0, ALICE.address, to, 10**15, receipt.block_number]))
    assert event.name == "DepositQueued" and event.args["sourceHash"] == expected
    assert (event.args["index"], event.args["to"], event.args["mint"]) == (0, to, 10**15)
    assert await l1.get_balance(portal.address) == 10**15
    assert (await portal.read(l1, "depositCount"))[0] == 1
    assert (await portal.read(l1, "sourceHash", 0))[0] == expected


@pytest.mark.parametrize(("to", "value", "error"), [(b"\x00" * 20, 1, "ZeroRecipient"), (b"\x01" * 20, 0, "ZeroValue")])
async def test_nonsense_deposits_revert_with_a_reason(l1: L1Client, portal: Contract, to: bytes, value: int,
                                                      error: str) -> None:
    assert portal.address is not None
    with pytest.raises(RpcError) as caught:
        await l1.call(portal.address, portal.encode_call("depositTransaction", to), sender=ALICE.address, value=value)
    decoded = portal.decode_error(caught.value.revert_data)
    assert decoded is not None and decoded.name == error
