"""The L1 contracts of a local devnet: deployed at `l2node up`, once per chain.

Their addresses go to DATA_DIR/l1/contracts.json::

    {"chain_id": 31337, "block_number": 1, "block_hash": "0x…", "deployer": "0x…",
     "batcher": "0x…", "contracts": {"BatchInbox": "0x…", "DepositPortal": "0x…"}}

A later start reuses the file when the chain still has that code at those addresses (anvil
keeps its state under DATA_DIR/l1), and deploys afresh otherwise: a new chain, a lost anvil
state, a changed contract or batcher. With an external L1 (`--l1-rpc`) nothing is deployed;
the addresses come from the config.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any, Final

from services.l1 import Artifact, Contract, L1Client, LocalSigner, TxSender, address, checksum
from services.runtime import CallPolicy

#: anvil's dev accounts 0 and 1, from the standard mnemonic "test test ... junk" (m/44'/60'/0'/0/i).
DEVNET_DEPLOYER_KEY: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
DEVNET_BATCHER_KEY: Final = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
DEVNET_BATCHER: Final = address("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")

CONTRACTS_FILE: Final = "contracts.json"
_DEPLOY_TIMEOUT_S: Final = 60.0  # anvil mines at once; a slow L1 takes a few blocks


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Addresses:
    """Where the contracts are, and from which block log followers should start."""

    chain_id: int
    block_number: int  # the deployment block
    block_hash: bytes
    deployer: bytes
    batcher: bytes
    batch_inbox: bytes
    deposit_portal: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "block_number": self.block_number,
            "block_hash": "0x" + self.block_hash.hex(),
            "deployer": checksum(self.deployer),
            "batcher": checksum(self.batcher),
            "contracts": {"BatchInbox": checksum(self.batch_inbox), "DepositPortal": checksum(self.deposit_portal)},
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Addresses:
        return cls(
            chain_id=int(doc["chain_id"]),
            block_number=int(doc["block_number"]),
            block_hash=bytes.fromhex(str(doc["block_hash"]).removeprefix("0x")),
            deployer=address(doc["deployer"]),
            batcher=address(doc["batcher"]),
            batch_inbox=address(doc["contracts"]["BatchInbox"]),
            deposit_portal=address(doc["contracts"]["DepositPortal"]),
        )


def contracts_path(data_dir: pathlib.Path) -> pathlib.Path:
    return data_dir / "l1" / CONTRACTS_FILE


def load_addresses(data_dir: pathlib.Path) -> Addresses | None:
    """The recorded addresses; None if there is no readable record."""
    try:
        return Addresses.from_json(json.loads(contracts_path(data_dir).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(data_dir: pathlib.Path, addresses: Addresses) -> None:
    path = contracts_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(addresses.to_json(), indent=2) + "\n")
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one


async def deploy_contracts(
    rpc_url: str,
    deployer_key: str | bytes,
    batcher_address: str | bytes,
    data_dir: pathlib.Path,
    *,
    policy: CallPolicy | None = None,
) -> Addresses:
    """Deploy BatchInbox (batcher = ``batcher_address``) and DepositPortal unless
    DATA_DIR/l1/contracts.json names a deployment that is still on this chain; the addresses
    either way."""
    batcher = address(batcher_address)
    inbox = Contract(Artifact.load("BatchInbox"))
    portal = Contract(Artifact.load("DepositPortal"))
    async with L1Client(rpc_url, policy=policy) as l1:
        chain_id = await l1.chain_id()
        recorded = load_addresses(data_dir)
        if recorded is not None and await _still_deployed(l1, inbox, recorded, chain_id, batcher) and \
                portal.artifact.matches_code(await l1.get_code(recorded.deposit_portal)):
            return recorded
        sender = TxSender(l1, LocalSigner(deployer_key), chain_id)
        receipt = await sender.wait_receipt(await sender.send(None, inbox.encode_deploy(batcher)), _DEPLOY_TIMEOUT_S)
        if not receipt.success or receipt.contract_address is None:
            raise DeployError(f"BatchInbox deployment failed in transaction 0x{receipt.tx_hash.hex()}")
        portal_receipt = await sender.wait_receipt(await sender.send(None, portal.encode_deploy()), _DEPLOY_TIMEOUT_S)
        if not portal_receipt.success or portal_receipt.contract_address is None:
            raise DeployError(f"DepositPortal deployment failed in transaction 0x{portal_receipt.tx_hash.hex()}")
        addresses = Addresses(
            chain_id=chain_id,
            block_number=receipt.block_number,
            block_hash=receipt.block_hash,
            deployer=sender.address,
            batcher=batcher,
            batch_inbox=receipt.contract_address,
            deposit_portal=portal_receipt.contract_address,
        )
    _save(data_dir, addresses)
    return addresses


async def _still_deployed(
    l1: L1Client, inbox: Contract, recorded: Addresses, chain_id: int, batcher: bytes
) -> bool:
    if recorded.chain_id != chain_id or recorded.batcher != batcher:
        return False
    block = await l1.get_block(recorded.block_number)
    if block is None or block.hash != recorded.block_hash:  # another chain that reuses the chain id
        return False
    code = await l1.get_code(recorded.batch_inbox)
    if not inbox.artifact.matches_code(code):  # no code (a lost state), or another version of it
        return False
    bound = Contract(inbox.artifact, recorded.batch_inbox)
    (on_chain,) = await bound.read(l1, "batcher")
    return bool(on_chain == batcher)
