"""What the L1 client returns: frozen records decoded from JSON-RPC responses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.l1._codec import address, to_bytes, to_int

#: A block number or one of the standard tags.
BlockTag = Literal["latest", "pending", "safe", "finalized", "earliest"]
BlockId = int | BlockTag


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int
    base_fee: int | None  # None before London

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BlockHeader:
        base_fee = doc.get("baseFeePerGas")
        return cls(
            number=to_int(doc["number"]),
            hash=to_bytes(doc["hash"]),
            parent_hash=to_bytes(doc["parentHash"]),
            timestamp=to_int(doc["timestamp"]),
            base_fee=None if base_fee is None else to_int(base_fee),
        )


@dataclass(frozen=True, slots=True, order=True)
class Log:
    """An event log. Orders by chain position (block, then index in block)."""

    block_number: int
    log_index: int
    block_hash: bytes
    tx_hash: bytes
    tx_index: int
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Log:
        return cls(
            block_number=to_int(doc["blockNumber"]),
            log_index=to_int(doc["logIndex"]),
            block_hash=to_bytes(doc["blockHash"]),
            tx_hash=to_bytes(doc["transactionHash"]),
            tx_index=to_int(doc["transactionIndex"]),
            address=address(doc["address"]),
            topics=tuple(to_bytes(t) for t in doc["topics"]),
            data=to_bytes(doc["data"]),
        )


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: bytes
    block_number: int
    block_hash: bytes
    tx_index: int
    success: bool  # status 1; a reverted transaction is mined too, and pays for its gas
    gas_used: int
    effective_gas_price: int
    sender: bytes
    to: bytes | None  # None for a contract creation
    contract_address: bytes | None
    logs: tuple[Log, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Receipt:
        to, created = doc.get("to"), doc.get("contractAddress")
        return cls(
            tx_hash=to_bytes(doc["transactionHash"]),
            block_number=to_int(doc["blockNumber"]),
            block_hash=to_bytes(doc["blockHash"]),
            tx_index=to_int(doc["transactionIndex"]),
            success=to_int(doc["status"]) == 1,
            gas_used=to_int(doc["gasUsed"]),
            effective_gas_price=to_int(doc.get("effectiveGasPrice", "0x0")),  # absent before London
            sender=address(doc["from"]),
            to=None if to is None else address(to),
            contract_address=None if created is None else address(created),
            logs=tuple(Log.from_json(entry) for entry in doc["logs"]),
        )


@dataclass(frozen=True, slots=True)
class Transaction:
    """An L1 transaction as the node reports it; derivation reads batch data from ``input``."""

    hash: bytes
    sender: bytes
    to: bytes | None
    nonce: int
    value: int
    input: bytes
    block_number: int | None  # None while pending
    block_hash: bytes | None
    #: A blob transaction's (EIP-4844) versioned hashes, in order; empty for any other type.
    blob_versioned_hashes: tuple[bytes, ...] = ()

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Transaction:
        to, number, block = doc.get("to"), doc.get("blockNumber"), doc.get("blockHash")
        return cls(
            hash=to_bytes(doc["hash"]),
            sender=address(doc["from"]),
            to=None if to is None else address(to),
            nonce=to_int(doc["nonce"]),
            value=to_int(doc["value"]),
            input=to_bytes(doc["input"]),
            block_number=None if number is None else to_int(number),
            block_hash=None if block is None else to_bytes(block),
            blob_versioned_hashes=tuple(to_bytes(h) for h in doc.get("blobVersionedHashes") or ()),
        )
