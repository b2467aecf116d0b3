"""Local signing of EIP-1559 (type 2) transactions: the one signer, for L1 (the tx sender) and L2
(the CLI, tests and benchmarks) alike; L2 transactions are standard type-2 transactions. The batcher
also signs EIP-4844 blob transactions (type 3, ``UnsignedBlobTransaction``: the same nine fields,
then max_fee_per_blob_gas and the blobs' versioned hashes; sent in the network form that carries
the blobs, their commitments and proofs, the "sidecar"). Type 2::

    0x02 || rlp([chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas, gas_limit, to,
                 value, data, access_list, y_parity, r, s])

    signing hash = keccak256(0x02 || rlp([the first nine fields]))
    tx hash      = keccak256(the whole raw transaction)

Not eth-account: it is a test-only dependency here (the tests check that both sign byte-identical
transactions), and it takes ~0.4 ms per transaction against ~0.08 ms for this. libsecp256k1
signs deterministically (RFC 6979) with a low s, as EIP-2 requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from coincurve import PrivateKey

from services.l1._codec import checksum, keccak, to_bytes
from services.l1._rlp import rlp_bytes, rlp_frame, rlp_int, rlp_list

TX_TYPE_EIP1559: Final = 2
TX_TYPE_BLOB: Final = 3

#: ((address, (storage_key, ...)), ...), as a transaction carries it.
AccessList = tuple[tuple[bytes, tuple[bytes, ...]], ...]


@dataclass(frozen=True, slots=True)
class UnsignedTransaction:
    """The nine signed fields of an EIP-1559 transaction."""

    chain_id: int
    nonce: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas_limit: int
    to: bytes | None  # None creates a contract
    value: int = 0
    data: bytes = b""
    access_list: AccessList = ()

    def encode_payload(self) -> bytes:
        """rlp([chain_id, ..., access_list]) items, without the list header."""
        return b"".join(
            (
                rlp_int(self.chain_id),
                rlp_int(self.nonce),
                rlp_int(self.max_priority_fee_per_gas),
                rlp_int(self.max_fee_per_gas),
                rlp_int(self.gas_limit),
                rlp_bytes(self.to or b""),
                rlp_int(self.value),
                rlp_bytes(self.data),
                rlp_list(rlp_list((rlp_bytes(a), rlp_list(map(rlp_bytes, keys)))) for a, keys in self.access_list),
            )
        )

    def signing_hash(self) -> bytes:
        """keccak256(0x02 || rlp(unsigned fields)): what the sender signs."""
        return keccak(b"\x02" + rlp_frame(0xC0, self.encode_payload()))

    def encode_signed(self, y_parity: int, r: int, s: int) -> bytes:
        """The raw transaction with the given signature values (not checked: tests use it)."""
        return b"\x02" + rlp_frame(0xC0, self.encode_payload() + rlp_int(y_parity) + rlp_int(r) + rlp_int(s))


@dataclass(frozen=True, slots=True)
class BlobSidecar:
    """What a blob transaction's network form carries besides the transaction: one entry per blob."""

    blobs: tuple[bytes, ...]
    commitments: tuple[bytes, ...]
    #: One blob proof a blob (version 0, Cancun to Prague), or 128 cell proofs a blob, blob after
    #: blob (version 1, EIP-7594: required from Osaka on by nodes that enforce it).
    proofs: tuple[bytes, ...]
    version: int = 0


@dataclass(frozen=True, slots=True)
class UnsignedBlobTransaction:
    """The signed fields of an EIP-4844 transaction: a type-2 transaction's (``to`` required), then
    max_fee_per_blob_gas and blob_versioned_hashes."""

    base: UnsignedTransaction
    max_fee_per_blob_gas: int
    blob_versioned_hashes: tuple[bytes, ...]

    @property
    def nonce(self) -> int:
        return self.base.nonce

    def encode_payload(self) -> bytes:
        if self.base.to is None:
            raise ValueError("a blob transaction cannot create a contract")
        return self.base.encode_payload() + rlp_int(self.max_fee_per_blob_gas) + rlp_list(
            map(rlp_bytes, self.blob_versioned_hashes))

    def signing_hash(self) -> bytes:
        return keccak(b"\x03" + rlp_frame(0xC0, self.encode_payload()))

    def encode_signed(self, y_parity: int, r: int, s: int) -> bytes:
        """The transaction as mined (its hash is keccak256 of this), without the sidecar."""
        return b"\x03" + rlp_frame(0xC0, self.encode_payload() + rlp_int(y_parity) + rlp_int(r) + rlp_int(s))

    def network_form(self, signed: bytes, sidecar: BlobSidecar) -> bytes:
        """What eth_sendRawTransaction takes: 0x03 || rlp([tx_payload_body, blobs, commitments, proofs]),
        or with EIP-7594's version: 0x03 || rlp([tx_payload_body, 1, blobs, commitments, cell_proofs])."""
        version = (rlp_int(sidecar.version),) if sidecar.version else ()
        return b"\x03" + rlp_list((signed[1:], *version, rlp_list(map(rlp_bytes, sidecar.blobs)),
                                    rlp_list(map(rlp_bytes, sidecar.commitments)),
                                    rlp_list(map(rlp_bytes, sidecar.proofs))))


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    tx: UnsignedTransaction | UnsignedBlobTransaction
    raw: bytes  # what eth_sendRawTransaction takes (a blob transaction's network form)
    hash: bytes  # keccak256 of the transaction as mined: the transaction hash


def sign_transaction(tx: UnsignedTransaction, private_key: bytes) -> bytes:
    """The raw transaction ``tx`` signed with a 32-byte secp256k1 key: byte-identical to
    eth-account's raw_transaction."""
    return _signed(PrivateKey(private_key), tx)


def _signed(key: PrivateKey, tx: UnsignedTransaction | UnsignedBlobTransaction) -> bytes:
    sig = key.sign_recoverable(tx.signing_hash(), hasher=None)  # r || s || recovery id
    return tx.encode_signed(sig[64], int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"))


class LocalSigner:
    """A private key held in memory. Its repr shows the address only."""

    __slots__ = ("_key", "address")

    def __init__(self, private_key: bytes | str) -> None:
        secret = to_bytes(private_key) if isinstance(private_key, str) else private_key
        if len(secret) != 32:
            raise ValueError("a private key is 32 bytes")
        self._key = PrivateKey(secret)
        #: keccak256 of the uncompressed public key (without its 0x04 prefix), last 20 bytes.
        self.address: Final = keccak(self._key.public_key.format(compressed=False)[1:])[12:]

    def __repr__(self) -> str:
        return f"LocalSigner({checksum(self.address)})"

    def sign(self, tx: UnsignedTransaction) -> SignedTransaction:
        raw = _signed(self._key, tx)
        return SignedTransaction(tx, raw, keccak(raw))

    def sign_blob(self, tx: UnsignedBlobTransaction, sidecar: BlobSidecar) -> SignedTransaction:
        signed = _signed(self._key, tx)
        return SignedTransaction(tx, tx.network_form(signed, sidecar), keccak(signed))
