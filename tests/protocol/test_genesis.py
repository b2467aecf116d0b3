"""Genesis: the devnet dev accounts, genesis files, the genesis block and header hashing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account as EthAccount

from protocol import (
    BLOCK_GAS_LIMIT,
    DEFAULT_CHAIN_ID,
    DEV_ACCOUNTS,
    DEV_BALANCE,
    DEV_MNEMONIC,
    DEV_PRIVATE_KEYS,
    INITIAL_BASE_FEE,
    Account,
    BlockHeader,
    Genesis,
    GenesisError,
    devnet_genesis,
    keccak256,
    load_genesis,
    merkle_root,
    parse_genesis,
    transactions_root,
)


def test_dev_accounts_are_the_anvil_hardhat_ones() -> None:
    EthAccount.enable_unaudited_hdwallet_features()
    for i, (address, key) in enumerate(zip(DEV_ACCOUNTS, DEV_PRIVATE_KEYS, strict=True)):
        derived = EthAccount.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        assert derived.address.lower() == "0x" + address.hex()
        assert bytes(derived.key) == key
    assert len(DEV_ACCOUNTS) == 10
    assert DEV_ACCOUNTS[0].hex() == "f39fd6e51aad88f6f4ce6ab8827279cfffb92266"


def test_devnet_genesis() -> None:
    genesis = devnet_genesis()
    assert genesis.chain_id == DEFAULT_CHAIN_ID and genesis.base_fee == INITIAL_BASE_FEE
    state = genesis.state()
    for address in DEV_ACCOUNTS:
        assert state.get(address) == Account(0, DEV_BALANCE) == Account(0, 10_000 * 10**18)
    header = genesis.header(state)
    assert header.number == 0 and header.parent_hash == bytes(32) and header.gas_used == 0
    assert header.gas_limit == BLOCK_GAS_LIMIT
    assert header.state_root == state.commit().state_root
    assert header.transactions_root == merkle_root([])
    assert header.hash() == genesis.header().hash()  # deterministic
    assert header.hash().hex() == PINNED_DEVNET_GENESIS_HASH


def test_header_hash_is_keccak_of_abi_encode() -> None:
    header = BlockHeader(
        number=7,
        parent_hash=keccak256(b"p"),
        timestamp=1_700_000_000,
        state_root=keccak256(b"s"),
        transactions_root=transactions_root([keccak256(b"t")]),
        message_root=keccak256(b"m"),
        base_fee=10**9,
        gas_used=21_000,
        gas_limit=30_000_000,
        l1_origin_number=12,
        l1_origin_hash=keccak256(b"l1"),
    )
    types = ["uint256", "bytes32", "uint256", "bytes32", "bytes32", "bytes32"] + ["uint256"] * 4 + ["bytes32"]
    values = [
        header.number,
        header.parent_hash,
        header.timestamp,
        header.state_root,
        header.transactions_root,
        header.message_root,
        header.base_fee,
        header.gas_used,
        header.gas_limit,
        header.l1_origin_number,
        header.l1_origin_hash,
    ]
    assert header.encode() == abi_encode(types, values)
    assert header.hash() == keccak256(abi_encode(types, values))


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(document))
    return path


def test_load_from_file(tmp_path: Path) -> None:
    alloc = {"0x" + "bb" * 20: "5", "0x" + "AA" * 20: "1000000000000000000000000"}
    genesis = load_genesis(
        write(
            tmp_path,
            {
                "chain_id": 42069,
                "base_fee": "7",
                "timestamp": 100,
                "alloc": alloc,
                "l1_origin": {"number": 3, "hash": "0x" + "11" * 32},
            },
        )
    )
    assert genesis == Genesis(
        42069,
        7,
        100,
        ((b"\xaa" * 20, 10**24), (b"\xbb" * 20, 5)),
        l1_origin_number=3,
        l1_origin_hash=b"\x11" * 32,
    )
    # the JSON key order does not change the chain
    reordered = load_genesis(
        write(
            tmp_path,
            {
                "alloc": dict(reversed(alloc.items())),
                "base_fee": 7,
                "chain_id": 42069,
                "timestamp": 100,
                "l1_origin": {"number": 3, "hash": "0x" + "11" * 32},
            },
        )
    )
    assert reordered.header().hash() == genesis.header().hash()


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"chain_id": 1, "base_fee": 1},  # no alloc
        {"chain_id": 1, "base_fee": 1, "alloc": {}, "extra": 1},  # unknown key
        {"chain_id": 1, "base_fee": 1, "alloc": {"0x1234": "1"}},  # short address
        {"chain_id": 1, "base_fee": 1, "alloc": {"0x" + "zz" * 20: "1"}},  # not hex
        {"chain_id": 1, "base_fee": 1, "alloc": {"0x" + "aa" * 20: "-1"}},
        {"chain_id": 1, "base_fee": 1, "alloc": {"0x" + "aa" * 20: "1e18"}},
        {"chain_id": 1, "base_fee": 1, "alloc": {"0x" + "aa" * 20: str(2**256)}},
        {"chain_id": 1, "base_fee": 1, "alloc": {"0x" + "aa" * 20: "1", "0x" + "AA" * 20: "2"}},  # twice
        {"chain_id": "one", "base_fee": 1, "alloc": {}},
        {"chain_id": True, "base_fee": 1, "alloc": {}},
        {"chain_id": 1, "base_fee": 1, "alloc": {}, "l1_origin": {"hash": "0x12"}},
    ],
)
def test_bad_genesis(document: object) -> None:
    with pytest.raises(GenesisError):
        parse_genesis(document)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(GenesisError):
        load_genesis(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(GenesisError):
        load_genesis(tmp_path / "bad.json")


PINNED_DEVNET_GENESIS_HASH = "661dbf174990df3e9a51f8d28b9f5a10985be2a8c3d4f46d88805ad75ebc14f9"
