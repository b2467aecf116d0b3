"""Genesis: the initial state and block 0, from a JSON file or the devnet default.

File format (unknown keys are refused, so a typo cannot silently change the chain)::

    {
      "chain_id": 901,
      "base_fee": "1000000000",                      // wei, decimal string (or a JSON integer)
      "timestamp": 0,                                // seconds
      "alloc": {"0xf39f...2266": "10000000000000000000000", ...},   // address -> wei, decimal
      "gas_limit": 30000000,                         // optional, default BLOCK_GAS_LIMIT
      "l1_origin": {"number": 0, "hash": "0x00..00"} // optional: the L1 block genesis follows
    }

Allocated accounts are created in ascending address order (JSON key order is not something
every tool keeps), which fixes their slots in the account tree and so the state root.
The genesis block: number 0, parent hash bytes32(0), no transactions, gas used 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._account import Account
from ._block import BlockHeader, transactions_root
from ._execution import State
from ._rules import BLOCK_GAS_LIMIT, DEFAULT_CHAIN_ID, INITIAL_BASE_FEE, UINT256_MAX

ZERO_HASH = bytes(32)
ETHER = 10**18

#: anvil's and hardhat's well-known dev mnemonic; the first 10 accounts (m/44'/60'/0'/0/i).
DEV_MNEMONIC = "test test test test test test test test test test test junk"
#: Their addresses (tests/sequencer/test_genesis.py derives them again with eth-account).
DEV_ACCOUNTS: tuple[bytes, ...] = tuple(
    bytes.fromhex(a)
    for a in (
        "f39fd6e51aad88f6f4ce6ab8827279cfffb92266",
        "70997970c51812dc3a010c7d01b50e0d17dc79c8",
        "3c44cdddb6a900fa2b585dd299e03d12fa4293bc",
        "90f79bf6eb2c4f870365e785982e1f101e93b906",
        "15d34aaf54267db7d7c367839aaf71a00a2c6a65",
        "9965507d1a55bcc2695c58ba16fb37d819b0a4dc",
        "976ea74026e726554db657fa54763abd0c3a0aa9",
        "14dc79964da2c08b23698b3d3cc7ca32193d9955",
        "23618e81e3f5cdf7f54c3d65f7fbc0abf5b21e8f",
        "a0ee7a142d267c1f36714e4a8f75612f20a79720",
    )
)
#: Their private keys: public knowledge (every anvil prints them); for the devnet CLI and tests.
DEV_PRIVATE_KEYS: tuple[bytes, ...] = tuple(
    bytes.fromhex(k)
    for k in (
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
        "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
        "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
        "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
        "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
        "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
        "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
        "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    )
)
DEV_BALANCE = 10_000 * ETHER

_KEYS = frozenset({"chain_id", "base_fee", "timestamp", "alloc", "gas_limit", "l1_origin"})


class GenesisError(ValueError):
    """A genesis file that does not follow the format."""


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: int
    base_fee: int
    timestamp: int
    #: (address, balance in wei), ascending by address: the creation order.
    alloc: tuple[tuple[bytes, int], ...]
    gas_limit: int = BLOCK_GAS_LIMIT
    l1_origin_number: int = 0
    l1_origin_hash: bytes = ZERO_HASH

    def state(self) -> State:
        """The genesis state, committed."""
        state = State((address, Account(0, balance)) for address, balance in self.alloc)
        state.commit()
        return state

    def header(self, state: State | None = None) -> BlockHeader:
        """Block 0 (``state``: the genesis state, if already built)."""
        roots = (state if state is not None else self.state()).commit()
        return BlockHeader(
            number=0,
            parent_hash=ZERO_HASH,
            timestamp=self.timestamp,
            state_root=roots.state_root,
            transactions_root=transactions_root(()),
            message_root=roots.message_root,
            base_fee=self.base_fee,
            gas_used=0,
            gas_limit=self.gas_limit,
            l1_origin_number=self.l1_origin_number,
            l1_origin_hash=self.l1_origin_hash,
        )


def devnet_genesis(chain_id: int = DEFAULT_CHAIN_ID, timestamp: int = 0) -> Genesis:
    """The devnet default: the 10 anvil/hardhat dev accounts with 10,000 ETH each."""
    return Genesis(chain_id, INITIAL_BASE_FEE, timestamp, tuple(sorted((a, DEV_BALANCE) for a in DEV_ACCOUNTS)))


def load_genesis(path: str | Path) -> Genesis:
    """Read a genesis JSON file; raises GenesisError."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise GenesisError(f"{path}: {e}") from e
    return parse_genesis(document)


def parse_genesis(document: object) -> Genesis:
    """A Genesis from a decoded JSON document; raises GenesisError."""
    if not isinstance(document, Mapping):
        raise GenesisError("genesis must be a JSON object")
    unknown = set(document) - _KEYS
    if unknown:
        raise GenesisError(f"unknown genesis keys: {sorted(unknown)}")
    missing = {"chain_id", "base_fee", "alloc"} - set(document)
    if missing:
        raise GenesisError(f"missing genesis keys: {sorted(missing)}")
    alloc = document["alloc"]
    if not isinstance(alloc, Mapping):
        raise GenesisError("alloc must be an object {address: balance}")
    balances: dict[bytes, int] = {}
    for key, amount in alloc.items():
        address = _address(key, "alloc")
        if address in balances:
            raise GenesisError(f"alloc: {key} appears twice")
        balances[address] = _uint(amount, f"alloc[{key}]", UINT256_MAX)
    origin = document.get("l1_origin", {})
    if not isinstance(origin, Mapping) or set(origin) - {"number", "hash"}:
        raise GenesisError('l1_origin must be {"number": int, "hash": "0x..."}')
    return Genesis(
        chain_id=_uint(document["chain_id"], "chain_id", UINT256_MAX),
        base_fee=_uint(document["base_fee"], "base_fee", UINT256_MAX),
        timestamp=_uint(document.get("timestamp", 0), "timestamp", 2**64 - 1),
        alloc=tuple(sorted(balances.items())),
        gas_limit=_uint(document.get("gas_limit", BLOCK_GAS_LIMIT), "gas_limit", 2**64 - 1),
        l1_origin_number=_uint(origin.get("number", 0), "l1_origin.number", 2**64 - 1),
        l1_origin_hash=_hex(origin.get("hash", "0x" + "00" * 32), "l1_origin.hash", 32),
    )


def _uint(value: object, name: str, maximum: int) -> int:
    """A JSON integer, or a decimal string (amounts in wei do not fit a JSON number safely)."""
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise GenesisError(f"{name}: expected a non-negative integer or decimal string, got {value!r}")
    if not 0 <= number <= maximum:
        raise GenesisError(f"{name}: {number} out of range")
    return number


def _address(value: object, name: str) -> bytes:
    return _hex(value, name, 20)


def _hex(value: object, name: str, size: int) -> bytes:
    if not (isinstance(value, str) and value[:2] in ("0x", "0X") and len(value) == 2 + 2 * size):
        raise GenesisError(f"{name}: expected 0x and {2 * size} hex digits, got {value!r}")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raw = b""
    if len(raw) != size:  # fromhex skips whitespace: check what came out
        raise GenesisError(f"{name}: {value!r} is not {size} bytes of hex")
    return raw
