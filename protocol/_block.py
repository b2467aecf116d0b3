"""L2 block headers and their hash.

Block hash = keccak256(abi.encode(
    uint256 number, bytes32 parentHash, uint256 timestamp, bytes32 stateRoot,
    bytes32 transactionsRoot, bytes32 messagePasserRoot, uint256 baseFee, uint256 gasUsed,
    uint256 gasLimit, uint256 l1OriginNumber, bytes32 l1OriginHash))

i.e. the 11 fields as 32-byte big-endian words in that order (352 bytes): one
``keccak256(abi.encode(...))`` in Solidity. The roots are sized roots (see _commitment):
the transactions root is the tree over the hashes of the block's transactions and deposits,
in block order (a signed transaction's hash is keccak256 of its raw bytes; a deposit's is
``Deposit.hash()``). The genesis block has number 0, parent hash bytes32(0), no transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._commitment import merkle_root
from ._keccak import keccak256


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    parent_hash: bytes
    timestamp: int
    state_root: bytes
    transactions_root: bytes
    message_root: bytes
    base_fee: int
    gas_used: int
    gas_limit: int
    #: The L1 block this L2 block derives from (its deposits are included up to it).
    l1_origin_number: int
    l1_origin_hash: bytes

    def encode(self) -> bytes:
        """abi.encode of the 11 fields, in declaration order (the hash preimage)."""
        words = (
            self.number.to_bytes(32, "big"),
            _word(self.parent_hash),
            self.timestamp.to_bytes(32, "big"),
            _word(self.state_root),
            _word(self.transactions_root),
            _word(self.message_root),
            self.base_fee.to_bytes(32, "big"),
            self.gas_used.to_bytes(32, "big"),
            self.gas_limit.to_bytes(32, "big"),
            self.l1_origin_number.to_bytes(32, "big"),
            _word(self.l1_origin_hash),
        )
        return b"".join(words)

    def hash(self) -> bytes:
        return keccak256(self.encode())


def transactions_root(tx_hashes: Sequence[bytes]) -> bytes:
    """The sized Merkle root over a block's transaction (and deposit) hashes, in block order."""
    return merkle_root(tx_hashes)


def _word(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError("a hash field is 32 bytes")
    return value
