"""The L1 contracts of a local devnet: deployed at `l2node up`, once per chain.

Their addresses go to DATA_DIR/l1/contracts.json::

    {"chain_id": 31337, "block_number": 1, "block_hash": "0x…", "deployer": "0x…",
     "batcher": "0x…", "contracts": {"BatchInbox": "0x…", "DepositPortal": "0x…",
     "StepVerifier": "0x…", "OutputRegistry": "0x…", "ChannelAdjudicator": "0x…"},
     "rollups": {"sequencer_window": 3600, …}}

The output registry is anchored at the node's L2 genesis (``[node] genesis``, or the devnet's)
and uses ``RollupParams``: bonds, a challenge window and chess clocks short enough for a demo.
The anchor's snapshot commitment is recorded, so a changed genesis deploys afresh. The deposit
portal proves withdrawals against the registry's outputs, so it takes the registry's address in
its constructor although the registry is deployed after it (the step verifier between them reads
the portal): the address is predicted from the deployer's nonce (a CREATE address), and checked.
The payment channels' ChannelAdjudicator comes last, built with its challenge period
(``RollupParams.channel_challenge_period_s``).

A later start reuses the file when the chain still has that code at those addresses (anvil
keeps its state under DATA_DIR/l1), and deploys afresh otherwise: a new chain, a lost anvil
state, a changed contract or batcher. With an external L1 (`--l1-rpc`) nothing is deployed;
the addresses come from the config.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Final

from l2node.node.params import RollupParams
from protocol import DEV_ACCOUNTS, DEV_PRIVATE_KEYS, Genesis, UnsafeParams, check_safe_params, devnet_genesis
from services.l1 import (
    Artifact,
    Contract,
    L1Client,
    LocalSigner,
    Receipt,
    TxSender,
    address,
    checksum,
    keccak,
    rlp_bytes,
    rlp_int,
    rlp_list,
)
from services.rollups import genesis_snapshot, snapshot_tuple
from services.runtime import CallPolicy

#: anvil's dev accounts 0 and 1 (protocol's DEV_PRIVATE_KEYS, from anvil's mnemonic), as 0x-hex
#: the way key files hold them.
DEVNET_DEPLOYER_KEY: Final = "0x" + DEV_PRIVATE_KEYS[0].hex()
DEVNET_BATCHER_KEY: Final = "0x" + DEV_PRIVATE_KEYS[1].hex()
DEVNET_BATCHER: Final = DEV_ACCOUNTS[1]
#: The devnet rollups roles: anvil's dev accounts 8 and 9 (tests use the low ones on L1).
DEVNET_PROPOSER_KEY: Final = "0x" + DEV_PRIVATE_KEYS[8].hex()
DEVNET_CHALLENGER_KEY: Final = "0x" + DEV_PRIVATE_KEYS[9].hex()
#: The devnet bridge relayer (proves and finalizes withdrawals): anvil's dev account 7.
DEVNET_RELAYER_KEY: Final = "0x" + DEV_PRIVATE_KEYS[7].hex()
#: The devnet channels worker's channel key (signs states, opens and closes channels): dev account 6.
DEVNET_CHANNELS_KEY: Final = "0x" + DEV_PRIVATE_KEYS[6].hex()

CONTRACTS_FILE: Final = "contracts.json"
_DEPLOY_TIMEOUT_S: Final = 60.0  # anvil mines at once; a slow L1 takes a few blocks
#: Contracts deployed, in order; a later start redeploys all when any one's code changed.
CONTRACTS: Final = ("BatchInbox", "DepositPortal", "StepVerifier", "OutputRegistry", "ChannelAdjudicator")


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
    step_verifier: bytes
    output_registry: bytes
    rollups: RollupParams = field(default_factory=RollupParams)
    #: The registry's anchor: the commitment of the L2 genesis snapshot it starts from.
    anchor: bytes = b""
    #: The payment channels' adjudicator (b"": a record from before it; deployed afresh).
    channel_adjudicator: bytes = b""

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "block_number": self.block_number,
            "block_hash": "0x" + self.block_hash.hex(),
            "deployer": checksum(self.deployer),
            "batcher": checksum(self.batcher),
            "contracts": {"BatchInbox": checksum(self.batch_inbox), "DepositPortal": checksum(self.deposit_portal),
                          "StepVerifier": checksum(self.step_verifier),
                          "OutputRegistry": checksum(self.output_registry),
                          **({"ChannelAdjudicator": checksum(self.channel_adjudicator)}
                             if self.channel_adjudicator else {})},
            "rollups": self.rollups.to_json(),
            "anchor": "0x" + self.anchor.hex(),
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
            step_verifier=address(doc["contracts"]["StepVerifier"]),
            output_registry=address(doc["contracts"]["OutputRegistry"]),
            rollups=RollupParams.from_mapping(doc.get("rollups", {})),
            anchor=bytes.fromhex(str(doc.get("anchor", "")).removeprefix("0x")),
            channel_adjudicator=address(doc["contracts"]["ChannelAdjudicator"])
            if doc["contracts"].get("ChannelAdjudicator") else b"",
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
    params: RollupParams | None = None,
    genesis: Genesis | None = None,
) -> Addresses:
    """Deploy BatchInbox (batcher = ``batcher_address``), DepositPortal, StepVerifier and
    OutputRegistry (anchored at ``genesis``, by default the devnet's) unless DATA_DIR/l1/contracts.json
    names a deployment of the same parameters and anchor that is still on this chain; the addresses
    either way."""
    batcher = address(batcher_address)
    params = params or RollupParams()
    anchor = genesis_snapshot(genesis or devnet_genesis(params.chain_id)).commitment()
    async with L1Client(rpc_url, policy=policy) as l1:
        chain_id = await l1.chain_id()
        recorded = load_addresses(data_dir)
        if recorded is not None and recorded.rollups == params and recorded.anchor == anchor and \
                recorded.channel_adjudicator and \
                await _still_deployed(l1, recorded, chain_id, batcher):
            return recorded
        addresses = await deploy_new(l1, deployer_key, batcher, params, genesis)
    _save(data_dir, addresses)
    return addresses


async def deploy_new(l1: L1Client, deployer_key: str | bytes, batcher: bytes, params: RollupParams,
                     genesis: Genesis | None = None, *, timeout_s: float = _DEPLOY_TIMEOUT_S) -> Addresses:
    """Deploy the five contracts in order on ``l1`` from ``deployer_key``, then read them back
    (:func:`verify`); the addresses. DeployError if ``params`` are unsafe on this L1 (off a local
    devnet: protocol's check_safe_params), or a deployment reverts or reads back wrong."""
    genesis = genesis or devnet_genesis(params.chain_id)
    try:
        await check_safe_params(l1, params.timings(), genesis_origin=genesis.l1_origin_number)
    except UnsafeParams as exc:
        raise DeployError(f"refused: {exc}") from None
    anchor = genesis_snapshot(genesis)
    contracts = {name: Contract(Artifact.load(name)) for name in CONTRACTS}
    chain_id = await l1.chain_id()
    sender = TxSender(l1, LocalSigner(deployer_key), chain_id)

    async def deploy(name: str, *args: Any) -> bytes:
        tx = await sender.send(None, contracts[name].encode_deploy(*args))
        receipt = await sender.wait_receipt(tx, timeout_s)
        if not receipt.success or receipt.contract_address is None:
            raise DeployError(f"{name} deployment failed in transaction 0x{receipt.tx_hash.hex()}")
        receipts.append(receipt)
        return receipt.contract_address

    receipts: list[Receipt] = []
    # The registry is the fourth creation from here: BatchInbox, DepositPortal, StepVerifier, it.
    predicted = create_address(sender.address, await l1.get_transaction_count(sender.address, "pending") + 3)
    inbox = await deploy("BatchInbox", batcher)
    portal = await deploy("DepositPortal", predicted, params.proof_maturity_delay_s)
    verifier = await deploy("StepVerifier", inbox, portal, params.chain_id, params.sequencer_window)
    registry = await deploy("OutputRegistry", snapshot_tuple(anchor), verifier, params.proposal_bond,
                            params.challenge_bond, params.move_bond_base, params.challenge_window_s,
                            params.max_clock_s, params.max_trace_length)
    if registry != predicted:  # another transaction from the deployer's key came in between
        raise DeployError(f"OutputRegistry was deployed at {checksum(registry)}, not at {checksum(predicted)} "
                          "where DepositPortal expects it: is another process sending from the deployer key?")
    adjudicator = await deploy("ChannelAdjudicator", params.channel_challenge_period_s)
    addresses = Addresses(
        chain_id=chain_id,
        block_number=receipts[0].block_number,
        block_hash=receipts[0].block_hash,
        deployer=sender.address,
        batcher=batcher,
        batch_inbox=inbox,
        deposit_portal=portal,
        step_verifier=verifier,
        output_registry=registry,
        rollups=params,
        anchor=anchor.commitment(),
        channel_adjudicator=adjudicator,
    )
    await verify(l1, addresses)
    return addresses


def create_address(sender: bytes, nonce: int) -> bytes:
    """Where a CREATE from ``sender`` at ``nonce`` puts its contract: keccak(rlp([sender, nonce]))[12:]."""
    return keccak(rlp_list((rlp_bytes(sender), rlp_int(nonce))))[12:]


def _located(addresses: Addresses) -> dict[str, bytes]:
    return dict(zip(CONTRACTS, (addresses.batch_inbox, addresses.deposit_portal, addresses.step_verifier,
                                addresses.output_registry, addresses.channel_adjudicator), strict=True))


async def mismatches(l1: L1Client, addresses: Addresses) -> list[str]:
    """What the chain says differently from ``addresses``: each contract's code (its artifact's,
    immutables aside), the inbox's batcher, the portal's registry and maturity delay, the verifier's
    inbox, portal, chain id and sequencer window, the registry's verifier, inbox, bonds, window,
    clocks and anchor, the adjudicator's challenge period. Empty: all as recorded."""
    wrong: list[str] = []
    chain_id = await l1.chain_id()
    if chain_id != addresses.chain_id:
        return [f"the L1 chain id is {chain_id}, not {addresses.chain_id}"]
    block = await l1.get_block(addresses.block_number)
    if block is None or block.hash != addresses.block_hash:  # reorged away, or another chain
        return [f"L1 block {addresses.block_number} is not 0x{addresses.block_hash.hex()}"]
    located = _located(addresses)
    for name, at in located.items():
        if not Artifact.load(name).matches_code(await l1.get_code(at)):  # none (lost state), or another
            wrong.append(f"{name} at {checksum(at)}: the code is not the {name} artifact's")
    if wrong:
        return wrong  # reading immutables of the wrong code would only add noise
    params = addresses.rollups
    expected: dict[str, dict[str, Any]] = {
        "BatchInbox": {"batcher": addresses.batcher},
        "DepositPortal": {"outputRegistry": addresses.output_registry,
                          "proofMaturityDelay": params.proof_maturity_delay_s},
        "StepVerifier": {"inbox": addresses.batch_inbox, "portal": addresses.deposit_portal,
                         "chainId": params.chain_id, "sequencerWindow": params.sequencer_window},
        "OutputRegistry": {"verifier": addresses.step_verifier, "inbox": addresses.batch_inbox,
                           "proposalBond": params.proposal_bond,
                           "challengeBond": params.challenge_bond, "moveBondBase": params.move_bond_base,
                           "challengeWindow": params.challenge_window_s, "maxClockDuration": params.max_clock_s,
                           "maxTraceLength": params.max_trace_length},
        "ChannelAdjudicator": {"CHALLENGE_PERIOD": params.channel_challenge_period_s},
    }
    for name, getters in expected.items():
        bound = Contract(Artifact.load(name), located[name])
        for getter, want in getters.items():
            (got,) = await bound.read(l1, getter)
            if got != want:
                wrong.append(f"{name}.{getter}() is {_shown(got)}, not {_shown(want)}")
    registry = Contract(Artifact.load("OutputRegistry"), addresses.output_registry)
    (anchor,) = await registry.read(l1, "output", 0)
    if bytes(anchor[1]) != addresses.anchor:
        wrong.append(f"OutputRegistry's anchor (output 0) is 0x{bytes(anchor[1]).hex()}, "
                     f"not the L2 genesis snapshot 0x{addresses.anchor.hex()}")
    return wrong


def _shown(value: Any) -> str:
    return checksum(value) if isinstance(value, bytes) and len(value) == 20 else str(value)


async def verify(l1: L1Client, addresses: Addresses) -> None:
    """DeployError, naming every difference, unless the chain holds ``addresses`` as recorded."""
    wrong = await mismatches(l1, addresses)
    if wrong:
        raise DeployError("the deployment does not read back as deployed: " + "; ".join(wrong))


async def _still_deployed(l1: L1Client, recorded: Addresses, chain_id: int, batcher: bytes) -> bool:
    if recorded.chain_id != chain_id or recorded.batcher != batcher:
        return False
    return not await mismatches(l1, recorded)
