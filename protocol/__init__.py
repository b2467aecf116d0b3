"""The L2 protocol: the rules every service and the L1 contracts agree on.

Nothing here knows about processes or storage, nor of gRPC more than the status each refusal
maps to (``_reasons``, with the runtime's error types); it is the chain's definition, imported by
the services (sequencer, rollups, and the coming bridge and channels) and cited by the Solidity.
It imports no service. Where things are:

- ``_rules``: every constant (chain id, gas schedule, base-fee parameters, predeploy addresses).
- ``_tx``: the transaction codec, **where a transaction is validated** (statelessly: shape,
  chain id, signature, intrinsic gas); ``_reasons``: the one vocabulary of refusals and drops.
- ``_execution``: the state transition (a transaction, a deposit) over ``_account`` and the
  ``_commitment`` trees; ``_basefee``; ``_block`` (headers); ``_genesis``.
- ``_window``: the sequencer window (when derivation makes a block itself, which posted block
  it accepts, when the sequencer seals a heartbeat).
- ``_withdrawal``: the L2 -> L1 message and its hash; ``_output``: the output root.
- ``_batch`` and ``_batch_input``: the batch format and its leaves (what the one-step proof opens).
- ``_l1_inputs``: **where an L1 input is read** (batches, forced transactions, deposits), one
  reader for the sequencer's follower and for derivation.
- ``_secp256k1`` and ``_native.c``: sender recovery, hashing and Merkle levels, a whole batch per
  call in C. keccak-256, the EIP-1559 signer and RLP are the L1 client's (``services.l1``, the
  layer below), so there is one of each.
"""

from ._account import EMPTY_ACCOUNT, Account
from ._basefee import next_base_fee
from ._batch import (
    BATCH_VERSION,
    MAX_DECOMPRESSED,
    BatchBlock,
    BatchFormatError,
    batch_input_root,
    decode_batch,
    encode_batch,
)
from ._batch_input import BLOCK_LEAF, TX_LEAF, BlockLeaf, Leaf, TxLeaf, batch_leaves, decode_leaf, input_root, leaf_hash
from ._block import BlockHeader, transactions_root
from ._commitment import (
    ZERO_HASH,
    AccountLeaf,
    AccountProof,
    AccountTree,
    MerkleProof,
    MerkleTree,
    account_leaf_hash,
    merkle_root,
    root_from_proof,
    verify_account,
    verify_merkle_proof,
)
from ._execution import (
    BlockEnv,
    Deposit,
    State,
    StateRoots,
    TxResult,
    apply_deposit,
    apply_transaction,
    gas_and_price,
    roots_after_each,
)
from ._genesis import (
    DEV_ACCOUNTS,
    DEV_BALANCE,
    DEV_MNEMONIC,
    DEV_PRIVATE_KEYS,
    ETHER,
    Genesis,
    GenesisError,
    devnet_genesis,
    load_genesis,
    parse_genesis,
)
from ._keccak import keccak256
from ._l1_inputs import L1Input, L1InputReader, L1InputsUpdate, PostedBatch, QueuedDeposit, QueuedForced
from ._output import OUTPUT_VERSION, output_root
from ._reasons import L2_TRANSACTION_CODES, Reason
from ._rules import (
    ADDRESS_SIZE,
    BASE_FEE_MAX_CHANGE_DENOMINATOR,
    BLOCK_GAS_LIMIT,
    BLOCK_GAS_TARGET,
    DEFAULT_CHAIN_ID,
    DEPOSIT_TX_TYPE,
    ELASTICITY_MULTIPLIER,
    FEE_VAULT,
    HASH_SIZE,
    INITIAL_BASE_FEE,
    INITIATE_WITHDRAWAL_SELECTOR,
    MAX_NONCE,
    MAX_TX_SIZE,
    MERKLE_ARITY,
    MERKLE_DEPTH,
    MESSAGE_PASSER,
    TX_BASE_GAS,
    TX_TYPE_EIP1559,
    UINT64_MAX,
    UINT256_MAX,
    WITHDRAWAL_DEFAULT_GAS_LIMIT,
    ZERO_ADDRESS,
    intrinsic_gas,
)
from ._secp256k1 import recover_senders
from ._tx import (
    AccessList,
    Transaction,
    TxRejected,
    decode_transaction,
    decode_transactions,
    recipient,
    sealed_transaction,
)
from ._window import (
    DEFAULT_SEQUENCER_WINDOW,
    DERIVED_ORIGIN_HASH,
    MAX_TIMESTAMP,
    derived_origin,
    heartbeat_due,
    leaf_acceptable,
    window_lapsed,
)
from ._withdrawal import (
    MalformedWithdrawal,
    WithdrawalCall,
    WithdrawalMessage,
    decode_withdrawal_call,
    encode_withdrawal_call,
)

__all__ = [
    "ADDRESS_SIZE",
    "BASE_FEE_MAX_CHANGE_DENOMINATOR",
    "BATCH_VERSION",
    "BLOCK_GAS_LIMIT",
    "BLOCK_GAS_TARGET",
    "BLOCK_LEAF",
    "DEFAULT_CHAIN_ID",
    "DEFAULT_SEQUENCER_WINDOW",
    "DEPOSIT_TX_TYPE",
    "DERIVED_ORIGIN_HASH",
    "DEV_ACCOUNTS",
    "DEV_BALANCE",
    "DEV_MNEMONIC",
    "DEV_PRIVATE_KEYS",
    "ELASTICITY_MULTIPLIER",
    "EMPTY_ACCOUNT",
    "ETHER",
    "FEE_VAULT",
    "HASH_SIZE",
    "INITIAL_BASE_FEE",
    "INITIATE_WITHDRAWAL_SELECTOR",
    "L2_TRANSACTION_CODES",
    "MAX_DECOMPRESSED",
    "MAX_NONCE",
    "MAX_TIMESTAMP",
    "MAX_TX_SIZE",
    "MERKLE_ARITY",
    "MERKLE_DEPTH",
    "MESSAGE_PASSER",
    "OUTPUT_VERSION",
    "TX_BASE_GAS",
    "TX_LEAF",
    "TX_TYPE_EIP1559",
    "UINT64_MAX",
    "UINT256_MAX",
    "WITHDRAWAL_DEFAULT_GAS_LIMIT",
    "ZERO_ADDRESS",
    "ZERO_HASH",
    "AccessList",
    "Account",
    "AccountLeaf",
    "AccountProof",
    "AccountTree",
    "BatchBlock",
    "BatchFormatError",
    "BlockEnv",
    "BlockHeader",
    "BlockLeaf",
    "Deposit",
    "Genesis",
    "GenesisError",
    "L1Input",
    "L1InputReader",
    "L1InputsUpdate",
    "Leaf",
    "MalformedWithdrawal",
    "MerkleProof",
    "MerkleTree",
    "PostedBatch",
    "QueuedDeposit",
    "QueuedForced",
    "Reason",
    "State",
    "StateRoots",
    "Transaction",
    "TxLeaf",
    "TxRejected",
    "TxResult",
    "WithdrawalCall",
    "WithdrawalMessage",
    "account_leaf_hash",
    "apply_deposit",
    "apply_transaction",
    "batch_input_root",
    "batch_leaves",
    "decode_batch",
    "decode_leaf",
    "decode_transaction",
    "decode_transactions",
    "decode_withdrawal_call",
    "derived_origin",
    "devnet_genesis",
    "encode_batch",
    "encode_withdrawal_call",
    "gas_and_price",
    "heartbeat_due",
    "input_root",
    "intrinsic_gas",
    "keccak256",
    "leaf_acceptable",
    "leaf_hash",
    "load_genesis",
    "merkle_root",
    "next_base_fee",
    "output_root",
    "parse_genesis",
    "recipient",
    "recover_senders",
    "root_from_proof",
    "roots_after_each",
    "sealed_transaction",
    "transactions_root",
    "verify_account",
    "verify_merkle_proof",
    "window_lapsed",
]
