from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DepositStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPOSIT_STATUS_UNSPECIFIED: _ClassVar[DepositStatus]
    DEPOSIT_STATUS_SEEN: _ClassVar[DepositStatus]
    DEPOSIT_STATUS_CONFIRMED: _ClassVar[DepositStatus]
    DEPOSIT_STATUS_CREDITED: _ClassVar[DepositStatus]
    DEPOSIT_STATUS_REORGED: _ClassVar[DepositStatus]

class WithdrawalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WITHDRAWAL_STATUS_UNSPECIFIED: _ClassVar[WithdrawalStatus]
    WITHDRAWAL_STATUS_INITIATED: _ClassVar[WithdrawalStatus]
    WITHDRAWAL_STATUS_IN_OUTPUT: _ClassVar[WithdrawalStatus]
    WITHDRAWAL_STATUS_PROVEN: _ClassVar[WithdrawalStatus]
    WITHDRAWAL_STATUS_READY: _ClassVar[WithdrawalStatus]
    WITHDRAWAL_STATUS_FINALIZED: _ClassVar[WithdrawalStatus]

class WithdrawalOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WITHDRAWAL_OUTCOME_UNSPECIFIED: _ClassVar[WithdrawalOutcome]
    WITHDRAWAL_OUTCOME_SUCCEEDED: _ClassVar[WithdrawalOutcome]
    WITHDRAWAL_OUTCOME_FAILED: _ClassVar[WithdrawalOutcome]
    WITHDRAWAL_OUTCOME_REFUNDED: _ClassVar[WithdrawalOutcome]
DEPOSIT_STATUS_UNSPECIFIED: DepositStatus
DEPOSIT_STATUS_SEEN: DepositStatus
DEPOSIT_STATUS_CONFIRMED: DepositStatus
DEPOSIT_STATUS_CREDITED: DepositStatus
DEPOSIT_STATUS_REORGED: DepositStatus
WITHDRAWAL_STATUS_UNSPECIFIED: WithdrawalStatus
WITHDRAWAL_STATUS_INITIATED: WithdrawalStatus
WITHDRAWAL_STATUS_IN_OUTPUT: WithdrawalStatus
WITHDRAWAL_STATUS_PROVEN: WithdrawalStatus
WITHDRAWAL_STATUS_READY: WithdrawalStatus
WITHDRAWAL_STATUS_FINALIZED: WithdrawalStatus
WITHDRAWAL_OUTCOME_UNSPECIFIED: WithdrawalOutcome
WITHDRAWAL_OUTCOME_SUCCEEDED: WithdrawalOutcome
WITHDRAWAL_OUTCOME_FAILED: WithdrawalOutcome
WITHDRAWAL_OUTCOME_REFUNDED: WithdrawalOutcome

class Deposit(_message.Message):
    __slots__ = ("deposit_hash", "source_hash", "portal_index", "to", "value", "status", "l1_block", "l1_block_hash", "l1_tx_hash", "confirmed_at_l1_block", "l2_block", "l2_tx_hash", "updated_at")
    DEPOSIT_HASH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HASH_FIELD_NUMBER: _ClassVar[int]
    PORTAL_INDEX_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    L1_BLOCK_FIELD_NUMBER: _ClassVar[int]
    L1_BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_AT_L1_BLOCK_FIELD_NUMBER: _ClassVar[int]
    L2_BLOCK_FIELD_NUMBER: _ClassVar[int]
    L2_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    deposit_hash: str
    source_hash: str
    portal_index: int
    to: str
    value: str
    status: DepositStatus
    l1_block: int
    l1_block_hash: str
    l1_tx_hash: str
    confirmed_at_l1_block: int
    l2_block: int
    l2_tx_hash: str
    updated_at: int
    def __init__(self, deposit_hash: _Optional[str] = ..., source_hash: _Optional[str] = ..., portal_index: _Optional[int] = ..., to: _Optional[str] = ..., value: _Optional[str] = ..., status: _Optional[_Union[DepositStatus, str]] = ..., l1_block: _Optional[int] = ..., l1_block_hash: _Optional[str] = ..., l1_tx_hash: _Optional[str] = ..., confirmed_at_l1_block: _Optional[int] = ..., l2_block: _Optional[int] = ..., l2_tx_hash: _Optional[str] = ..., updated_at: _Optional[int] = ..., **kwargs) -> None: ...

class Withdrawal(_message.Message):
    __slots__ = ("withdrawal_hash", "nonce", "sender", "target", "value", "gas_limit", "data", "status", "l2_block", "l2_tx_hash", "output_index", "proven_l1_tx_hash", "prover", "proven_at", "matures_at", "finalized_l1_tx_hash", "outcome", "updated_at")
    WITHDRAWAL_HASH_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    GAS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    L2_BLOCK_FIELD_NUMBER: _ClassVar[int]
    L2_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROVEN_L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    PROVER_FIELD_NUMBER: _ClassVar[int]
    PROVEN_AT_FIELD_NUMBER: _ClassVar[int]
    MATURES_AT_FIELD_NUMBER: _ClassVar[int]
    FINALIZED_L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    withdrawal_hash: str
    nonce: int
    sender: str
    target: str
    value: str
    gas_limit: int
    data: str
    status: WithdrawalStatus
    l2_block: int
    l2_tx_hash: str
    output_index: int
    proven_l1_tx_hash: str
    prover: str
    proven_at: int
    matures_at: int
    finalized_l1_tx_hash: str
    outcome: WithdrawalOutcome
    updated_at: int
    def __init__(self, withdrawal_hash: _Optional[str] = ..., nonce: _Optional[int] = ..., sender: _Optional[str] = ..., target: _Optional[str] = ..., value: _Optional[str] = ..., gas_limit: _Optional[int] = ..., data: _Optional[str] = ..., status: _Optional[_Union[WithdrawalStatus, str]] = ..., l2_block: _Optional[int] = ..., l2_tx_hash: _Optional[str] = ..., output_index: _Optional[int] = ..., proven_l1_tx_hash: _Optional[str] = ..., prover: _Optional[str] = ..., proven_at: _Optional[int] = ..., matures_at: _Optional[int] = ..., finalized_l1_tx_hash: _Optional[str] = ..., outcome: _Optional[_Union[WithdrawalOutcome, str]] = ..., updated_at: _Optional[int] = ...) -> None: ...

class GetDepositRequest(_message.Message):
    __slots__ = ("deposit_hash", "l1_tx_hash")
    DEPOSIT_HASH_FIELD_NUMBER: _ClassVar[int]
    L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    deposit_hash: str
    l1_tx_hash: str
    def __init__(self, deposit_hash: _Optional[str] = ..., l1_tx_hash: _Optional[str] = ...) -> None: ...

class GetDepositResponse(_message.Message):
    __slots__ = ("deposit",)
    DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    deposit: Deposit
    def __init__(self, deposit: _Optional[_Union[Deposit, _Mapping]] = ...) -> None: ...

class ListDepositsRequest(_message.Message):
    __slots__ = ("address", "page_size", "page_token")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    address: str
    page_size: int
    page_token: str
    def __init__(self, address: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDepositsResponse(_message.Message):
    __slots__ = ("deposits", "next_page_token")
    DEPOSITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deposits: _containers.RepeatedCompositeFieldContainer[Deposit]
    next_page_token: str
    def __init__(self, deposits: _Optional[_Iterable[_Union[Deposit, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetWithdrawalRequest(_message.Message):
    __slots__ = ("withdrawal_hash", "l2_tx_hash")
    WITHDRAWAL_HASH_FIELD_NUMBER: _ClassVar[int]
    L2_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    withdrawal_hash: str
    l2_tx_hash: str
    def __init__(self, withdrawal_hash: _Optional[str] = ..., l2_tx_hash: _Optional[str] = ...) -> None: ...

class GetWithdrawalResponse(_message.Message):
    __slots__ = ("withdrawal",)
    WITHDRAWAL_FIELD_NUMBER: _ClassVar[int]
    withdrawal: Withdrawal
    def __init__(self, withdrawal: _Optional[_Union[Withdrawal, _Mapping]] = ...) -> None: ...

class ListWithdrawalsRequest(_message.Message):
    __slots__ = ("address", "page_size", "page_token")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    address: str
    page_size: int
    page_token: str
    def __init__(self, address: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWithdrawalsResponse(_message.Message):
    __slots__ = ("withdrawals", "next_page_token")
    WITHDRAWALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    withdrawals: _containers.RepeatedCompositeFieldContainer[Withdrawal]
    next_page_token: str
    def __init__(self, withdrawals: _Optional[_Iterable[_Union[Withdrawal, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetWithdrawalProofRequest(_message.Message):
    __slots__ = ("withdrawal_hash", "output_index")
    WITHDRAWAL_HASH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    withdrawal_hash: str
    output_index: int
    def __init__(self, withdrawal_hash: _Optional[str] = ..., output_index: _Optional[int] = ...) -> None: ...

class OutputRootProof(_message.Message):
    __slots__ = ("version", "state_root", "message_passer_root", "block_hash")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_ROOT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_PASSER_ROOT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    version: str
    state_root: str
    message_passer_root: str
    block_hash: str
    def __init__(self, version: _Optional[str] = ..., state_root: _Optional[str] = ..., message_passer_root: _Optional[str] = ..., block_hash: _Optional[str] = ...) -> None: ...

class MessageProof(_message.Message):
    __slots__ = ("index", "count", "siblings")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SIBLINGS_FIELD_NUMBER: _ClassVar[int]
    index: int
    count: int
    siblings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[int] = ..., count: _Optional[int] = ..., siblings: _Optional[_Iterable[str]] = ...) -> None: ...

class GetWithdrawalProofResponse(_message.Message):
    __slots__ = ("withdrawal", "output_index", "output_root", "output_l2_block", "output_status", "output_root_proof", "message_proof", "portal", "prove_calldata", "finalize_calldata", "proof_maturity_delay_s")
    WITHDRAWAL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ROOT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_L2_BLOCK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ROOT_PROOF_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_PROOF_FIELD_NUMBER: _ClassVar[int]
    PORTAL_FIELD_NUMBER: _ClassVar[int]
    PROVE_CALLDATA_FIELD_NUMBER: _ClassVar[int]
    FINALIZE_CALLDATA_FIELD_NUMBER: _ClassVar[int]
    PROOF_MATURITY_DELAY_S_FIELD_NUMBER: _ClassVar[int]
    withdrawal: Withdrawal
    output_index: int
    output_root: str
    output_l2_block: int
    output_status: str
    output_root_proof: OutputRootProof
    message_proof: MessageProof
    portal: str
    prove_calldata: str
    finalize_calldata: str
    proof_maturity_delay_s: int
    def __init__(self, withdrawal: _Optional[_Union[Withdrawal, _Mapping]] = ..., output_index: _Optional[int] = ..., output_root: _Optional[str] = ..., output_l2_block: _Optional[int] = ..., output_status: _Optional[str] = ..., output_root_proof: _Optional[_Union[OutputRootProof, _Mapping]] = ..., message_proof: _Optional[_Union[MessageProof, _Mapping]] = ..., portal: _Optional[str] = ..., prove_calldata: _Optional[str] = ..., finalize_calldata: _Optional[str] = ..., proof_maturity_delay_s: _Optional[int] = ...) -> None: ...

class SubscribeEventsRequest(_message.Message):
    __slots__ = ("from_sequence", "address", "hash")
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    from_sequence: int
    address: str
    hash: str
    def __init__(self, from_sequence: _Optional[int] = ..., address: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class SubscribeEventsResponse(_message.Message):
    __slots__ = ("sequence", "deposit", "withdrawal")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    deposit: Deposit
    withdrawal: Withdrawal
    def __init__(self, sequence: _Optional[int] = ..., deposit: _Optional[_Union[Deposit, _Mapping]] = ..., withdrawal: _Optional[_Union[Withdrawal, _Mapping]] = ...) -> None: ...

class TrackDepositRequest(_message.Message):
    __slots__ = ("l1_tx_hash",)
    L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    l1_tx_hash: str
    def __init__(self, l1_tx_hash: _Optional[str] = ...) -> None: ...

class TrackDepositResponse(_message.Message):
    __slots__ = ("deposits",)
    DEPOSITS_FIELD_NUMBER: _ClassVar[int]
    deposits: _containers.RepeatedCompositeFieldContainer[Deposit]
    def __init__(self, deposits: _Optional[_Iterable[_Union[Deposit, _Mapping]]] = ...) -> None: ...
