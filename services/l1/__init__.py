"""The async L1 client used by every service: JSON-RPC through the "l1" call policy, ABI
helpers bound to the contracts' build artifacts, the batcher's transaction sender, and a
reorg-aware log follower.

    async with L1Client(url) as l1:
        inbox = Contract(Artifact.load("BatchInbox"), address)
        sender = await TxSender.create(l1, LocalSigner(batcher_key))
        tx_hash = await sender.send(inbox.address, inbox.encode_call("appendBatch", batch))
        receipt = await sender.wait_receipt(tx_hash, timeout_s=60)

Read in this order: ``_client`` (and ``_jsonrpc`` under it), ``_abi``, ``_sender`` (``_signer``,
``_fees``), ``_follower``; ``_config`` holds every default, ``_errors`` every error and the
policy's classifier, ``_records`` the returned records, ``_codec`` hex and keccak, ``_rlp`` the
RLP encoder. ``_signer`` and ``_codec`` are the one EIP-1559 signer and the one keccak, L2's too
(the protocol package sits above this one).
"""

from services.l1._abi import Artifact, Contract, ContractError, Event, artifacts_dir, preload_artifacts
from services.l1._client import L1Client, Topics
from services.l1._codec import address, checksum, keccak
from services.l1._config import DEFAULT_TARGET, GWEI, POLICY, FollowerConfig, SenderConfig, policy_config
from services.l1._deployment import Deployment, DeploymentError, needed_files, read_key
from services.l1._errors import (
    FeeCapExceeded,
    HttpStatusError,
    L1Error,
    ProtocolError,
    ReceiptTimeout,
    ReorgTooDeep,
    RpcError,
    TransactionDropped,
    classify,
)
from services.l1._fees import Fees, bumped
from services.l1._follower import OUTAGE, FollowerUpdate, Heads, LogFollower, Status
from services.l1._kzg import (
    BYTES_PER_BLOB,
    FIELD_ELEMENTS_PER_BLOB,
    GAS_PER_BLOB,
    blob_commitments,
    commitment,
    evaluation_point,
    in_kzg_process,
    load_setup,
    point_proof,
    point_proofs,
    versioned_hash,
    versioned_hashes,
    versioned_hashes_off_loop,
    warm_up,
)
from services.l1._pacing import Activity, Pacer
from services.l1._records import BlockHeader, BlockId, Log, Receipt, Transaction
from services.l1._rlp import rlp_bytes, rlp_int, rlp_list
from services.l1._sender import ALREADY_KNOWN, NONCE_TOO_LOW, BlobSource, PendingTx, TxSender, current_fees, sidecar_of
from services.l1._signer import (
    AccessList,
    BlobSidecar,
    LocalSigner,
    SignedTransaction,
    UnsignedBlobTransaction,
    UnsignedTransaction,
    sign_transaction,
)

__all__ = [
    "ALREADY_KNOWN",
    "BYTES_PER_BLOB",
    "DEFAULT_TARGET",
    "FIELD_ELEMENTS_PER_BLOB",
    "GAS_PER_BLOB",
    "GWEI",
    "NONCE_TOO_LOW",
    "OUTAGE",
    "POLICY",
    "AccessList",
    "Activity",
    "Artifact",
    "BlobSidecar",
    "BlobSource",
    "BlockHeader",
    "BlockId",
    "Contract",
    "ContractError",
    "Deployment",
    "DeploymentError",
    "Event",
    "FeeCapExceeded",
    "Fees",
    "FollowerConfig",
    "FollowerUpdate",
    "Heads",
    "HttpStatusError",
    "L1Client",
    "L1Error",
    "LocalSigner",
    "Log",
    "LogFollower",
    "Pacer",
    "PendingTx",
    "ProtocolError",
    "Receipt",
    "ReceiptTimeout",
    "ReorgTooDeep",
    "RpcError",
    "SenderConfig",
    "SignedTransaction",
    "Status",
    "Topics",
    "Transaction",
    "TransactionDropped",
    "TxSender",
    "UnsignedBlobTransaction",
    "UnsignedTransaction",
    "address",
    "artifacts_dir",
    "blob_commitments",
    "bumped",
    "checksum",
    "classify",
    "commitment",
    "current_fees",
    "evaluation_point",
    "in_kzg_process",
    "keccak",
    "load_setup",
    "needed_files",
    "point_proof",
    "point_proofs",
    "policy_config",
    "preload_artifacts",
    "read_key",
    "rlp_bytes",
    "rlp_int",
    "rlp_list",
    "sidecar_of",
    "sign_transaction",
    "versioned_hash",
    "versioned_hashes",
    "versioned_hashes_off_loop",
    "warm_up",
]
