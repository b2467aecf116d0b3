"""Shared by the adjudicator's tests, its attacks and bench/channels_gas.py: a ChannelAdjudicator on
anvil, channels opened on it by real transactions, and states signed as a wallet signs EIP-712 typed
data (eth-account's ``encode_typed_data``: an implementation independent of the contract's and of
protocol/_channel.py's, so a test that passes checks the digest too).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data

from protocol import DEV_PRIVATE_KEYS
from services.l1 import Artifact, Contract, ContractError, L1Client, LocalSigner, Receipt, RpcError, TxSender, keccak
from tests.l1.anvil import Anvil

ADJUDICATOR = Artifact.load("ChannelAdjudicator")
DEPLOYER, _, ALICE, BOB, MALLORY = (LocalSigner(k) for k in DEV_PRIVATE_KEYS[:5])
#: Each signer's key, for signing typed data (LocalSigner keeps its key to itself).
KEYS = {LocalSigner(k).address: k for k in DEV_PRIVATE_KEYS[:5]}
ETHER = 10**18
PERIOD = 3_600
OPEN_TIMEOUT = 86_400
FINAL = 2**64 - 1
MAX_HTLCS = 483
#: secp256k1's group order: (r, N - s) is the malleable twin of (r, s).
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

# Channel statuses (ChannelAdjudicator.Status).
NONE, OPENING, OPEN, CLOSING, CONCLUDED, CANCELLED = range(6)


def preimage(n: int) -> bytes:
    return n.to_bytes(32, "big")


def payment_hash(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


@dataclass(frozen=True)
class Htlc:
    from_a: bool
    amount: int
    payment_hash: bytes
    expiry: int

    def abi(self) -> tuple[Any, ...]:
        return (self.from_a, self.amount, self.payment_hash, self.expiry)


@dataclass(frozen=True)
class State:
    channel_id: bytes
    sequence: int
    balance_a: int
    balance_b: int
    htlcs: tuple[Htlc, ...] = ()

    def abi(self) -> tuple[Any, ...]:
        return (self.channel_id, self.sequence, self.balance_a, self.balance_b, self.htlc_list())

    def htlc_list(self) -> list[tuple[Any, ...]]:
        return [h.abi() for h in self.htlcs]

    def htlcs_hash(self) -> bytes:
        return keccak(encode(["(bool,uint256,bytes32,uint64)[]"], [self.htlc_list()]))


_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                     {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
    "Htlc": [{"name": "fromA", "type": "bool"}, {"name": "amount", "type": "uint256"},
             {"name": "paymentHash", "type": "bytes32"}, {"name": "expiry", "type": "uint64"}],
    "State": [{"name": "channelId", "type": "bytes32"}, {"name": "sequence", "type": "uint64"},
              {"name": "balanceA", "type": "uint256"}, {"name": "balanceB", "type": "uint256"},
              {"name": "htlcs", "type": "Htlc[]"}],
}


def typed_data(state: State, chain_id: int, verifying_contract: bytes) -> Any:
    """The EIP-712 message a wallet signs for ``state`` in the domain of (chain id, adjudicator)."""
    return encode_typed_data(full_message={
        "types": _TYPES,
        "primaryType": "State",
        "domain": {"name": "l2node channels", "version": "1", "chainId": chain_id,
                   "verifyingContract": "0x" + verifying_contract.hex()},
        "message": {"channelId": state.channel_id, "sequence": state.sequence, "balanceA": state.balance_a,
                    "balanceB": state.balance_b,
                    "htlcs": [{"fromA": h.from_a, "amount": h.amount, "paymentHash": h.payment_hash,
                               "expiry": h.expiry} for h in state.htlcs]},
    })


def sign(state: State, signer: LocalSigner, chain_id: int, verifying_contract: bytes) -> bytes:
    """65 bytes r || s || v (v 27 or 28, low s), as eth-account signs typed data."""
    signed = Account.sign_message(typed_data(state, chain_id, verifying_contract), KEYS[signer.address])
    return bytes(signed.signature)


def high_s(sig: bytes) -> bytes:
    """The malleable twin of a signature: (r, n - s) with v flipped, which recovers the same key."""
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (N - s).to_bytes(32, "big") + bytes([55 - sig[64]])


@dataclass
class Adjudicator:
    """A ChannelAdjudicator on anvil, with a sender per signer and the gas of each function."""

    l1: L1Client
    chain: Anvil
    contract: Contract
    chain_id: int
    senders: dict[bytes, TxSender] = field(default_factory=dict)
    gas: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    async def deploy(cls, l1: L1Client, chain: Anvil, period: int = PERIOD) -> Adjudicator:
        deployer = await TxSender.create(l1, DEPLOYER)
        receipt = await deployer.wait_receipt(await deployer.send(None, Contract(ADJUDICATOR).encode_deploy(period)), 5)
        assert receipt.success and receipt.contract_address is not None
        chain_id = int(await l1.request("eth_chainId"), 16)
        return cls(l1, chain, Contract(ADJUDICATOR, receipt.contract_address), chain_id, {DEPLOYER.address: deployer})

    @property
    def address(self) -> bytes:
        assert self.contract.address is not None
        return self.contract.address

    # --- transactions and calls ------------------------------------------------------------------

    async def send(self, signer: LocalSigner, function: str, *args: Any, value: int = 0) -> Receipt:
        """A mined, successful transaction."""
        sender = self.senders.get(signer.address)
        if sender is None:
            sender = self.senders[signer.address] = await TxSender.create(self.l1, signer)
        receipt = await sender.wait_receipt(
            await sender.send(self.address, self.contract.encode_call(function, *args), value), 5)
        assert receipt.success, function
        self.gas.setdefault(function, []).append(receipt.gas_used)
        return receipt

    async def refused(self, signer: LocalSigner, function: str, *args: Any, value: int = 0) -> ContractError:
        """The custom error ``function`` reverts with, called by ``signer`` in the next block."""
        with pytest.raises(RpcError) as caught:
            await self.l1.call(self.address, self.contract.encode_call(function, *args), sender=signer.address,
                               value=value, block="pending")
        error = self.contract.decode_error(caught.value.revert_data)
        assert error is not None, caught.value.revert_data
        return error

    async def read(self, function: str, *args: Any) -> Any:
        values = await self.contract.read(self.l1, function, *args)
        return values[0] if len(values) == 1 else values

    def events(self, receipt: Receipt) -> list[tuple[str, dict[str, Any]]]:
        found = (self.contract.decode_log(log) for log in receipt.logs if log.address == self.address)
        return [(e.name, dict(e.args)) for e in found if e is not None]

    # --- time ------------------------------------------------------------------------------------

    async def now(self) -> int:
        block = await self.l1.get_block("latest")
        assert block is not None
        return block.timestamp

    def at(self, timestamp: int) -> None:
        """The next block (a transaction, a pending call) is at ``timestamp``."""
        self.chain.rpc("evm_setNextBlockTimestamp", timestamp)

    # --- channels --------------------------------------------------------------------------------

    async def channel(self, channel_id: bytes) -> dict[str, Any]:
        names = ("a", "b", "amount_a", "amount_b", "status", "sequence", "opened_at", "ends_at", "balance_a",
                 "balance_b", "htlcs_hash")
        return dict(zip(names, await self.read("channel", channel_id), strict=True))

    async def open(self, a: LocalSigner = ALICE, b: LocalSigner = BOB, nonce: int = 1, amount_a: int = 5 * ETHER,
                   amount_b: int = 3 * ETHER, *, fund: bool = True) -> bytes:
        """A channel opened by ``a`` (and funded by ``b`` unless ``fund`` is False): its id."""
        receipt = await self.send(a, "open", a.address, b.address, nonce, amount_a, amount_b, value=amount_a)
        ((name, args), *_) = self.events(receipt)
        assert name == "ChannelOpened"
        channel_id: bytes = args["channelId"]
        if fund and amount_b:
            await self.send(b, "fund", channel_id, value=amount_b)
        return channel_id

    def signatures(self, state: State, a: LocalSigner = ALICE, b: LocalSigner = BOB) -> tuple[bytes, bytes]:
        return sign(state, a, self.chain_id, self.address), sign(state, b, self.chain_id, self.address)

    def signed(self, state: State) -> tuple[tuple[Any, ...], bytes, bytes]:
        """The arguments of a close or a challenge with ``state`` co-signed by Alice and Bob."""
        return (state.abi(), *self.signatures(state))


@asynccontextmanager
async def adjudicator(chain: Anvil, period: int = PERIOD) -> AsyncIterator[Adjudicator]:
    async with L1Client(chain.url) as l1:
        yield await Adjudicator.deploy(l1, chain, period)
