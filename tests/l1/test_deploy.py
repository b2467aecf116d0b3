"""l2node/node/deploy.py: BatchInbox deployed once per chain, its addresses kept in the data dir."""

from __future__ import annotations

import json
import pathlib
import signal
from dataclasses import replace

import pytest
from eth_account import Account

from l2node.node.deploy import (
    CONTRACTS,
    DEVNET_BATCHER,
    DEVNET_BATCHER_KEY,
    DEVNET_DEPLOYER_KEY,
    Addresses,
    DeployError,
    contracts_path,
    create_address,
    deploy_contracts,
    deploy_new,
    mismatches,
    verify,
)
from l2node.node.params import RollupParams
from protocol import DEV_MNEMONIC, devnet_genesis
from services.l1 import Artifact, Contract, L1Client, LocalSigner, address, checksum
from services.rollups._contracts import OutputStatus, Registry
from services.rollups._machine import genesis_snapshot
from tests.l1.anvil import DEV_ADDRESSES, DEV_KEYS, Anvil

DEPLOYER = LocalSigner(DEVNET_DEPLOYER_KEY).address


def test_devnet_keys_are_anvils_first_dev_accounts() -> None:
    Account.enable_unaudited_hdwallet_features()
    derived = [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(len(DEV_KEYS))]
    assert [a.key.hex().removeprefix("0x") for a in derived] == [k.removeprefix("0x") for k in DEV_KEYS]
    assert [a.address for a in derived] == list(DEV_ADDRESSES)
    assert DEV_KEYS[:2] == (DEVNET_DEPLOYER_KEY, DEVNET_BATCHER_KEY)
    assert DEVNET_BATCHER == address(derived[1].address) == LocalSigner(DEVNET_BATCHER_KEY).address


def test_create_addresses_are_keccak_of_the_rlp_of_sender_and_nonce() -> None:
    sender = address("0x6ac7ea33f8831ea9dcc53393aaa88b25a785dbf0")  # the yellow paper's usual vectors
    assert create_address(sender, 0) == address("0xcd234a471b72ba2f1ccf0a70fcaba648a5eecd8d")
    assert create_address(sender, 1) == address("0x343c43a37d37dff08ae8c4a11544c718abb4fcf8")
    assert create_address(sender, 2) == address("0xf778b86fa74e846c4f0a1fbd1335fe81c00a0c91")


async def deployer_nonce(url: str) -> int:
    async with L1Client(url) as l1:
        return await l1.get_transaction_count(DEPLOYER, "latest")


async def batcher_of(url: str, addresses: Addresses) -> bytes:
    async with L1Client(url) as l1:
        (batcher,) = await Contract(Artifact.load("BatchInbox"), addresses.batch_inbox).read(l1, "batcher")
        assert isinstance(batcher, bytes)
        return batcher


async def test_deploys_once_then_reuses_the_record(chain: Anvil, tmp_path: pathlib.Path) -> None:
    first = await deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path)
    doc = json.loads(contracts_path(tmp_path).read_text())
    assert doc["chain_id"] == first.chain_id == 31337 and doc["block_number"] == first.block_number
    assert address(doc["contracts"]["BatchInbox"]) == first.batch_inbox
    assert await batcher_of(chain.url, first) == DEVNET_BATCHER
    # The registry is anchored at the devnet genesis: output 0 is its snapshot, final.
    async with L1Client(chain.url) as l1:
        registry = Registry(l1, first.output_registry)
        anchor = await registry.output(0)
        assert anchor.snapshot_hash == genesis_snapshot(devnet_genesis()).commitment()
        assert anchor.status == OutputStatus.FINALIZED and await registry.output_count() == 1
        assert await registry.param("challengeWindow") == first.rollups.challenge_window_s
        # The portal was deployed before the registry, at the address it predicted for it.
        portal = Contract(Artifact.load("DepositPortal"), first.deposit_portal)
        assert await portal.read(l1, "outputRegistry") == (first.output_registry,)
        assert await portal.read(l1, "proofMaturityDelay") == (first.rollups.proof_maturity_delay_s,) == (10,)
    assert doc["rollups"]["proof_maturity_delay_s"] == 10
    nonce = await deployer_nonce(chain.url)
    again = await deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path)
    assert again == first and await deployer_nonce(chain.url) == nonce  # nothing sent


async def test_redeploys_when_the_chain_lost_the_code_or_the_batcher_changed(
    chain: Anvil, tmp_path: pathlib.Path
) -> None:
    snapshot = chain.rpc("evm_snapshot")
    first = await deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path)
    assert chain.rpc("evm_revert", snapshot)  # the chain forgets the deployment; the file remembers it
    chain.rpc("anvil_mine", 2)
    second = await deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path)
    assert second.block_number > first.block_number and await batcher_of(chain.url, second) == DEVNET_BATCHER
    other_batcher = LocalSigner(DEV_KEYS[3]).address
    third = await deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, other_batcher, tmp_path)
    assert third.batch_inbox != second.batch_inbox and await batcher_of(chain.url, third) == other_batcher
    assert Addresses.from_json(json.loads(contracts_path(tmp_path).read_text())) == third


async def test_the_registry_is_anchored_at_the_node_genesis_and_redeployed_when_it_changes(
    chain: Anvil, tmp_path: pathlib.Path
) -> None:
    custom = devnet_genesis(timestamp=1_700_000_000)  # another L2 genesis: another block 0
    first = await deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path, genesis=custom)
    async with L1Client(chain.url) as l1:
        anchor = await Registry(l1, first.output_registry).output(0)
    assert anchor.snapshot_hash == genesis_snapshot(custom).commitment() == first.anchor
    assert anchor.snapshot_hash != genesis_snapshot(devnet_genesis()).commitment()
    nonce = await deployer_nonce(chain.url)
    assert await deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path, genesis=custom) == first
    assert await deployer_nonce(chain.url) == nonce  # the same genesis: the record is reused
    devnet = await deploy_contracts(chain.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path)
    assert devnet.output_registry != first.output_registry  # a changed genesis: a registry anchored at it
    assert devnet.anchor == genesis_snapshot(devnet_genesis()).commitment()


@pytest.mark.parametrize("keep_state", [True, False])
async def test_an_anvil_restart_keeps_the_deployment_only_with_its_state(
    tmp_path: pathlib.Path, keep_state: bool
) -> None:
    node = Anvil(state=tmp_path / "l1" / "state.json")
    node.start()
    try:
        first = await deploy_contracts(node.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path)
        node.stop(signal.SIGTERM)  # anvil dumps its state on the way out
        if not keep_state:
            (tmp_path / "l1" / "state.json").unlink()
        node.start()
        nonce = await deployer_nonce(node.url)
        again = await deploy_contracts(node.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, tmp_path)
        if keep_state:
            assert again == first and await deployer_nonce(node.url) == nonce
        else:
            assert await deployer_nonce(node.url) == nonce + len(CONTRACTS)  # every contract again
            assert await batcher_of(node.url, again) == DEVNET_BATCHER
    finally:
        node.stop()


async def test_verification_reads_every_contract_back_and_names_each_difference(chain: Anvil) -> None:
    async with L1Client(chain.url) as l1:
        deployed = await deploy_new(l1, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, RollupParams())
        assert await mismatches(l1, deployed) == []
        other = LocalSigner(DEV_KEYS[3]).address
        wrong = replace(deployed, batcher=other, anchor=bytes(32),
                        rollups=replace(deployed.rollups, challenge_window_s=21, proof_maturity_delay_s=11))
        with pytest.raises(DeployError) as refused:
            await verify(l1, wrong)
        why = str(refused.value)
        assert f"BatchInbox.batcher() is {checksum(DEVNET_BATCHER)}, not {checksum(other)}" in why
        assert "OutputRegistry.challengeWindow() is 20, not 21" in why
        assert "DepositPortal.proofMaturityDelay() is 10, not 11" in why
        assert f"OutputRegistry's anchor (output 0) is 0x{deployed.anchor.hex()}, not the L2 genesis snapshot 0x" in why
        # The chain holds other code where the registry was deployed (a wrong address, another chain).
        inbox_code = await l1.get_code(deployed.batch_inbox)
        chain.rpc("anvil_setCode", checksum(deployed.output_registry), "0x" + inbox_code.hex())
        assert await mismatches(l1, deployed) == [
            f"OutputRegistry at {checksum(deployed.output_registry)}: the code is not the OutputRegistry artifact's"]
        assert (await mismatches(l1, replace(deployed, chain_id=1)))[0] == "the L1 chain id is 31337, not 1"
