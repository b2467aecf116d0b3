from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReceiptStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECEIPT_STATUS_UNSPECIFIED: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_PENDING: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_SEALED: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_SAFE: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_FINALIZED: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_DROPPED: _ClassVar[ReceiptStatus]
RECEIPT_STATUS_UNSPECIFIED: ReceiptStatus
RECEIPT_STATUS_PENDING: ReceiptStatus
RECEIPT_STATUS_SEALED: ReceiptStatus
RECEIPT_STATUS_SAFE: ReceiptStatus
RECEIPT_STATUS_FINALIZED: ReceiptStatus
RECEIPT_STATUS_DROPPED: ReceiptStatus

class SendRawTransactionRequest(_message.Message):
    __slots__ = ("raw_transaction", "request_id")
    RAW_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    raw_transaction: bytes
    request_id: str
    def __init__(self, raw_transaction: _Optional[bytes] = ..., request_id: _Optional[str] = ...) -> None: ...

class SendRawTransactionResponse(_message.Message):
    __slots__ = ("tx_hash",)
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    tx_hash: str
    def __init__(self, tx_hash: _Optional[str] = ...) -> None: ...

class SendRawTransactionsRequest(_message.Message):
    __slots__ = ("raw_transactions", "request_id")
    RAW_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    raw_transactions: _containers.RepeatedScalarFieldContainer[bytes]
    request_id: str
    def __init__(self, raw_transactions: _Optional[_Iterable[bytes]] = ..., request_id: _Optional[str] = ...) -> None: ...

class TransactionError(_message.Message):
    __slots__ = ("code", "reason", "message", "field")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    code: int
    reason: str
    message: str
    field: str
    def __init__(self, code: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class SendResult(_message.Message):
    __slots__ = ("tx_hash", "error")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    tx_hash: str
    error: TransactionError
    def __init__(self, tx_hash: _Optional[str] = ..., error: _Optional[_Union[TransactionError, _Mapping]] = ...) -> None: ...

class SendRawTransactionsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SendResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SendResult, _Mapping]]] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("tx_hash", "status", "to", "nonce", "block_number", "block_hash", "index", "batch_index", "l1_tx_hash", "gas_used", "effective_gas_price", "drop_reason", "wait_reason", "wait_message", "raw_transaction", "mint", "source_hash")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    GAS_USED_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_GAS_PRICE_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    WAIT_REASON_FIELD_NUMBER: _ClassVar[int]
    WAIT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RAW_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    MINT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HASH_FIELD_NUMBER: _ClassVar[int]
    tx_hash: str
    status: ReceiptStatus
    to: str
    nonce: int
    block_number: int
    block_hash: str
    index: int
    batch_index: int
    l1_tx_hash: str
    gas_used: int
    effective_gas_price: str
    drop_reason: str
    wait_reason: str
    wait_message: str
    raw_transaction: bytes
    mint: str
    source_hash: str
    def __init__(self, tx_hash: _Optional[str] = ..., status: _Optional[_Union[ReceiptStatus, str]] = ..., to: _Optional[str] = ..., nonce: _Optional[int] = ..., block_number: _Optional[int] = ..., block_hash: _Optional[str] = ..., index: _Optional[int] = ..., batch_index: _Optional[int] = ..., l1_tx_hash: _Optional[str] = ..., gas_used: _Optional[int] = ..., effective_gas_price: _Optional[str] = ..., drop_reason: _Optional[str] = ..., wait_reason: _Optional[str] = ..., wait_message: _Optional[str] = ..., raw_transaction: _Optional[bytes] = ..., mint: _Optional[str] = ..., source_hash: _Optional[str] = ..., **kwargs) -> None: ...

class GetTransactionReceiptRequest(_message.Message):
    __slots__ = ("tx_hash", "include_raw")
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RAW_FIELD_NUMBER: _ClassVar[int]
    tx_hash: str
    include_raw: bool
    def __init__(self, tx_hash: _Optional[str] = ..., include_raw: _Optional[bool] = ...) -> None: ...

class GetTransactionReceiptResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: Receipt
    def __init__(self, receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("address", "pending")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    address: str
    pending: bool
    def __init__(self, address: _Optional[str] = ..., pending: _Optional[bool] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("address", "balance", "nonce", "block_number")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    address: str
    balance: str
    nonce: int
    block_number: int
    def __init__(self, address: _Optional[str] = ..., balance: _Optional[str] = ..., nonce: _Optional[int] = ..., block_number: _Optional[int] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("number", "hash", "parent_hash", "timestamp", "state_root", "transactions_root", "message_passer_root", "base_fee", "gas_used", "gas_limit", "transaction_hashes", "l1_origin_number", "l1_origin_hash", "message_count", "raw_transactions")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PARENT_HASH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    STATE_ROOT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_ROOT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_PASSER_ROOT_FIELD_NUMBER: _ClassVar[int]
    BASE_FEE_FIELD_NUMBER: _ClassVar[int]
    GAS_USED_FIELD_NUMBER: _ClassVar[int]
    GAS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_HASHES_FIELD_NUMBER: _ClassVar[int]
    L1_ORIGIN_NUMBER_FIELD_NUMBER: _ClassVar[int]
    L1_ORIGIN_HASH_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    RAW_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    state_root: str
    transactions_root: str
    message_passer_root: str
    base_fee: str
    gas_used: int
    gas_limit: int
    transaction_hashes: _containers.RepeatedScalarFieldContainer[str]
    l1_origin_number: int
    l1_origin_hash: str
    message_count: int
    raw_transactions: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, number: _Optional[int] = ..., hash: _Optional[str] = ..., parent_hash: _Optional[str] = ..., timestamp: _Optional[int] = ..., state_root: _Optional[str] = ..., transactions_root: _Optional[str] = ..., message_passer_root: _Optional[str] = ..., base_fee: _Optional[str] = ..., gas_used: _Optional[int] = ..., gas_limit: _Optional[int] = ..., transaction_hashes: _Optional[_Iterable[str]] = ..., l1_origin_number: _Optional[int] = ..., l1_origin_hash: _Optional[str] = ..., message_count: _Optional[int] = ..., raw_transactions: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetBlockRequest(_message.Message):
    __slots__ = ("number", "latest", "hash", "include_transactions")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    number: int
    latest: bool
    hash: str
    include_transactions: bool
    def __init__(self, number: _Optional[int] = ..., latest: _Optional[bool] = ..., hash: _Optional[str] = ..., include_transactions: _Optional[bool] = ...) -> None: ...

class GetBlockResponse(_message.Message):
    __slots__ = ("block",)
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    block: Block
    def __init__(self, block: _Optional[_Union[Block, _Mapping]] = ...) -> None: ...

class SubscribeBlocksRequest(_message.Message):
    __slots__ = ("from_number", "include_transactions")
    FROM_NUMBER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    from_number: int
    include_transactions: bool
    def __init__(self, from_number: _Optional[int] = ..., include_transactions: _Optional[bool] = ...) -> None: ...

class SubscribeBlocksResponse(_message.Message):
    __slots__ = ("block",)
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    block: Block
    def __init__(self, block: _Optional[_Union[Block, _Mapping]] = ...) -> None: ...

class GetChainInfoRequest(_message.Message):
    __slots__ = ("include_l1",)
    INCLUDE_L1_FIELD_NUMBER: _ClassVar[int]
    include_l1: bool
    def __init__(self, include_l1: _Optional[bool] = ...) -> None: ...

class L1BlockRef(_message.Message):
    __slots__ = ("number", "hash", "parent_hash", "timestamp")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PARENT_HASH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    def __init__(self, number: _Optional[int] = ..., hash: _Optional[str] = ..., parent_hash: _Optional[str] = ..., timestamp: _Optional[int] = ...) -> None: ...

class L1Heads(_message.Message):
    __slots__ = ("head", "current", "safe", "finalized")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    SAFE_FIELD_NUMBER: _ClassVar[int]
    FINALIZED_FIELD_NUMBER: _ClassVar[int]
    head: L1BlockRef
    current: L1BlockRef
    safe: L1BlockRef
    finalized: L1BlockRef
    def __init__(self, head: _Optional[_Union[L1BlockRef, _Mapping]] = ..., current: _Optional[_Union[L1BlockRef, _Mapping]] = ..., safe: _Optional[_Union[L1BlockRef, _Mapping]] = ..., finalized: _Optional[_Union[L1BlockRef, _Mapping]] = ...) -> None: ...

class GetChainInfoResponse(_message.Message):
    __slots__ = ("chain_id", "unsafe_block", "safe_block", "finalized_block", "base_fee", "genesis_hash", "upstream_block", "l1")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    UNSAFE_BLOCK_FIELD_NUMBER: _ClassVar[int]
    SAFE_BLOCK_FIELD_NUMBER: _ClassVar[int]
    FINALIZED_BLOCK_FIELD_NUMBER: _ClassVar[int]
    BASE_FEE_FIELD_NUMBER: _ClassVar[int]
    GENESIS_HASH_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_BLOCK_FIELD_NUMBER: _ClassVar[int]
    L1_FIELD_NUMBER: _ClassVar[int]
    chain_id: int
    unsafe_block: int
    safe_block: int
    finalized_block: int
    base_fee: str
    genesis_hash: str
    upstream_block: int
    l1: L1Heads
    def __init__(self, chain_id: _Optional[int] = ..., unsafe_block: _Optional[int] = ..., safe_block: _Optional[int] = ..., finalized_block: _Optional[int] = ..., base_fee: _Optional[str] = ..., genesis_hash: _Optional[str] = ..., upstream_block: _Optional[int] = ..., l1: _Optional[_Union[L1Heads, _Mapping]] = ...) -> None: ...

class L2ToL1Message(_message.Message):
    __slots__ = ("nonce", "hash", "sender", "target", "value", "gas_limit", "data", "block_number", "block_hash", "tx_hash", "traceparent")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    GAS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    nonce: int
    hash: str
    sender: str
    target: str
    value: str
    gas_limit: int
    data: str
    block_number: int
    block_hash: str
    tx_hash: str
    traceparent: str
    def __init__(self, nonce: _Optional[int] = ..., hash: _Optional[str] = ..., sender: _Optional[str] = ..., target: _Optional[str] = ..., value: _Optional[str] = ..., gas_limit: _Optional[int] = ..., data: _Optional[str] = ..., block_number: _Optional[int] = ..., block_hash: _Optional[str] = ..., tx_hash: _Optional[str] = ..., traceparent: _Optional[str] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("from_nonce", "page_size")
    FROM_NONCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    from_nonce: int
    page_size: int
    def __init__(self, from_nonce: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("messages", "message_count", "block_number")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[L2ToL1Message]
    message_count: int
    block_number: int
    def __init__(self, messages: _Optional[_Iterable[_Union[L2ToL1Message, _Mapping]]] = ..., message_count: _Optional[int] = ..., block_number: _Optional[int] = ...) -> None: ...
