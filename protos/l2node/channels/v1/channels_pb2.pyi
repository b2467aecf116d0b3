from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_STATUS_UNSPECIFIED: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_OPENING: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_OPEN: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_CLOSING: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_DISPUTED: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_CLOSED: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_FAILED: _ClassVar[ChannelStatus]

class InvoiceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOICE_STATUS_UNSPECIFIED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_OPEN: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_PAID: _ClassVar[InvoiceStatus]

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_IN_FLIGHT: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_SUCCEEDED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_FAILED: _ClassVar[PaymentStatus]

class HtlcChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HTLC_CHANGE_KIND_UNSPECIFIED: _ClassVar[HtlcChangeKind]
    HTLC_CHANGE_KIND_ADD: _ClassVar[HtlcChangeKind]
    HTLC_CHANGE_KIND_SETTLE: _ClassVar[HtlcChangeKind]
    HTLC_CHANGE_KIND_FAIL: _ClassVar[HtlcChangeKind]
CHANNEL_STATUS_UNSPECIFIED: ChannelStatus
CHANNEL_STATUS_OPENING: ChannelStatus
CHANNEL_STATUS_OPEN: ChannelStatus
CHANNEL_STATUS_CLOSING: ChannelStatus
CHANNEL_STATUS_DISPUTED: ChannelStatus
CHANNEL_STATUS_CLOSED: ChannelStatus
CHANNEL_STATUS_FAILED: ChannelStatus
INVOICE_STATUS_UNSPECIFIED: InvoiceStatus
INVOICE_STATUS_OPEN: InvoiceStatus
INVOICE_STATUS_PAID: InvoiceStatus
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_IN_FLIGHT: PaymentStatus
PAYMENT_STATUS_SUCCEEDED: PaymentStatus
PAYMENT_STATUS_FAILED: PaymentStatus
HTLC_CHANGE_KIND_UNSPECIFIED: HtlcChangeKind
HTLC_CHANGE_KIND_ADD: HtlcChangeKind
HTLC_CHANGE_KIND_SETTLE: HtlcChangeKind
HTLC_CHANGE_KIND_FAIL: HtlcChangeKind

class Htlc(_message.Message):
    __slots__ = ("from_a", "amount", "payment_hash", "expiry")
    FROM_A_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    from_a: bool
    amount: str
    payment_hash: str
    expiry: int
    def __init__(self, from_a: _Optional[bool] = ..., amount: _Optional[str] = ..., payment_hash: _Optional[str] = ..., expiry: _Optional[int] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("channel_id", "sequence", "balance_a", "balance_b", "htlcs")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BALANCE_A_FIELD_NUMBER: _ClassVar[int]
    BALANCE_B_FIELD_NUMBER: _ClassVar[int]
    HTLCS_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    sequence: int
    balance_a: str
    balance_b: str
    htlcs: _containers.RepeatedCompositeFieldContainer[Htlc]
    def __init__(self, channel_id: _Optional[str] = ..., sequence: _Optional[int] = ..., balance_a: _Optional[str] = ..., balance_b: _Optional[str] = ..., htlcs: _Optional[_Iterable[_Union[Htlc, _Mapping]]] = ...) -> None: ...

class Channel(_message.Message):
    __slots__ = ("channel_id", "a", "b", "nonce", "our_side", "peer", "status", "amount_a", "amount_b", "state", "signature_a", "signature_b", "local_balance", "remote_balance", "open_l1_tx_hash", "close_l1_tx_hash", "closes_at", "reason", "updated_at")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    OUR_SIDE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_A_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_B_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_A_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_B_FIELD_NUMBER: _ClassVar[int]
    LOCAL_BALANCE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_BALANCE_FIELD_NUMBER: _ClassVar[int]
    OPEN_L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    CLOSE_L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    CLOSES_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    a: str
    b: str
    nonce: int
    our_side: str
    peer: str
    status: ChannelStatus
    amount_a: str
    amount_b: str
    state: State
    signature_a: str
    signature_b: str
    local_balance: str
    remote_balance: str
    open_l1_tx_hash: str
    close_l1_tx_hash: str
    closes_at: int
    reason: str
    updated_at: int
    def __init__(self, channel_id: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ..., nonce: _Optional[int] = ..., our_side: _Optional[str] = ..., peer: _Optional[str] = ..., status: _Optional[_Union[ChannelStatus, str]] = ..., amount_a: _Optional[str] = ..., amount_b: _Optional[str] = ..., state: _Optional[_Union[State, _Mapping]] = ..., signature_a: _Optional[str] = ..., signature_b: _Optional[str] = ..., local_balance: _Optional[str] = ..., remote_balance: _Optional[str] = ..., open_l1_tx_hash: _Optional[str] = ..., close_l1_tx_hash: _Optional[str] = ..., closes_at: _Optional[int] = ..., reason: _Optional[str] = ..., updated_at: _Optional[int] = ...) -> None: ...

class OpenChannelRequest(_message.Message):
    __slots__ = ("request_id", "peer", "amount", "peer_amount")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PEER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    peer: str
    amount: str
    peer_amount: str
    def __init__(self, request_id: _Optional[str] = ..., peer: _Optional[str] = ..., amount: _Optional[str] = ..., peer_amount: _Optional[str] = ...) -> None: ...

class OpenChannelResponse(_message.Message):
    __slots__ = ("channel",)
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ...) -> None: ...

class ListChannelsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListChannelsResponse(_message.Message):
    __slots__ = ("channels", "next_page_token")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    next_page_token: str
    def __init__(self, channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetChannelRequest(_message.Message):
    __slots__ = ("channel_id",)
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    def __init__(self, channel_id: _Optional[str] = ...) -> None: ...

class GetChannelResponse(_message.Message):
    __slots__ = ("channel",)
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ...) -> None: ...

class Invoice(_message.Message):
    __slots__ = ("payment_hash", "amount", "payee", "memo", "status", "encoded", "created_at")
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAYEE_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    payment_hash: str
    amount: str
    payee: str
    memo: str
    status: InvoiceStatus
    encoded: str
    created_at: int
    def __init__(self, payment_hash: _Optional[str] = ..., amount: _Optional[str] = ..., payee: _Optional[str] = ..., memo: _Optional[str] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ..., encoded: _Optional[str] = ..., created_at: _Optional[int] = ...) -> None: ...

class CreateInvoiceRequest(_message.Message):
    __slots__ = ("request_id", "amount", "memo")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    amount: str
    memo: str
    def __init__(self, request_id: _Optional[str] = ..., amount: _Optional[str] = ..., memo: _Optional[str] = ...) -> None: ...

class CreateInvoiceResponse(_message.Message):
    __slots__ = ("invoice",)
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class PayRequest(_message.Message):
    __slots__ = ("request_id", "invoice", "address", "amount", "max_fee", "max_attempts", "max_hops")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_FEE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_HOPS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    invoice: str
    address: str
    amount: str
    max_fee: str
    max_attempts: int
    max_hops: int
    def __init__(self, request_id: _Optional[str] = ..., invoice: _Optional[str] = ..., address: _Optional[str] = ..., amount: _Optional[str] = ..., max_fee: _Optional[str] = ..., max_attempts: _Optional[int] = ..., max_hops: _Optional[int] = ...) -> None: ...

class PayStreamRequest(_message.Message):
    __slots__ = ("payment", "payments")
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    payment: PayRequest
    payments: _containers.RepeatedCompositeFieldContainer[PayRequest]
    def __init__(self, payment: _Optional[_Union[PayRequest, _Mapping]] = ..., payments: _Optional[_Iterable[_Union[PayRequest, _Mapping]]] = ...) -> None: ...

class PayStreamResponse(_message.Message):
    __slots__ = ("request_id", "payment", "error", "answers", "channels")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payment: PayResponse
    error: PayError
    answers: _containers.RepeatedCompositeFieldContainer[PayStreamAnswer]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    def __init__(self, request_id: _Optional[str] = ..., payment: _Optional[_Union[PayResponse, _Mapping]] = ..., error: _Optional[_Union[PayError, _Mapping]] = ..., answers: _Optional[_Iterable[_Union[PayStreamAnswer, _Mapping]]] = ..., channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ...) -> None: ...

class PayStreamAnswer(_message.Message):
    __slots__ = ("request_id", "payment", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    payment: PayResponse
    error: PayError
    def __init__(self, request_id: _Optional[str] = ..., payment: _Optional[_Union[PayResponse, _Mapping]] = ..., error: _Optional[_Union[PayError, _Mapping]] = ...) -> None: ...

class PayError(_message.Message):
    __slots__ = ("code", "reason", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    reason: str
    message: str
    def __init__(self, code: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class RouteHop(_message.Message):
    __slots__ = ("channel_id", "node", "amount", "expiry")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    node: str
    amount: str
    expiry: int
    def __init__(self, channel_id: _Optional[str] = ..., node: _Optional[str] = ..., amount: _Optional[str] = ..., expiry: _Optional[int] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("payment_hash", "payee", "amount", "fee", "status", "preimage", "route", "attempts", "reason", "message", "created_at", "updated_at")
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    PAYEE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREIMAGE_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    payment_hash: str
    payee: str
    amount: str
    fee: str
    status: PaymentStatus
    preimage: str
    route: _containers.RepeatedCompositeFieldContainer[RouteHop]
    attempts: int
    reason: str
    message: str
    created_at: int
    updated_at: int
    def __init__(self, payment_hash: _Optional[str] = ..., payee: _Optional[str] = ..., amount: _Optional[str] = ..., fee: _Optional[str] = ..., status: _Optional[_Union[PaymentStatus, str]] = ..., preimage: _Optional[str] = ..., route: _Optional[_Iterable[_Union[RouteHop, _Mapping]]] = ..., attempts: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., created_at: _Optional[int] = ..., updated_at: _Optional[int] = ...) -> None: ...

class GetPaymentRequest(_message.Message):
    __slots__ = ("payment_hash",)
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    payment_hash: str
    def __init__(self, payment_hash: _Optional[str] = ...) -> None: ...

class GetPaymentResponse(_message.Message):
    __slots__ = ("payment",)
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    payment: Payment
    def __init__(self, payment: _Optional[_Union[Payment, _Mapping]] = ...) -> None: ...

class ListKnownChannelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KnownChannel(_message.Message):
    __slots__ = ("channel_id", "node", "peer", "capacity", "fee_base", "fee_ppm", "expiry_delta_s", "timestamp")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    FEE_BASE_FIELD_NUMBER: _ClassVar[int]
    FEE_PPM_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_DELTA_S_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    node: str
    peer: str
    capacity: str
    fee_base: str
    fee_ppm: int
    expiry_delta_s: int
    timestamp: int
    def __init__(self, channel_id: _Optional[str] = ..., node: _Optional[str] = ..., peer: _Optional[str] = ..., capacity: _Optional[str] = ..., fee_base: _Optional[str] = ..., fee_ppm: _Optional[int] = ..., expiry_delta_s: _Optional[int] = ..., timestamp: _Optional[int] = ...) -> None: ...

class ListKnownChannelsResponse(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[KnownChannel]
    def __init__(self, channels: _Optional[_Iterable[_Union[KnownChannel, _Mapping]]] = ...) -> None: ...

class PayResponse(_message.Message):
    __slots__ = ("channel_id", "sequence", "payment_hash", "preimage", "channel", "payment")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    PREIMAGE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    sequence: int
    payment_hash: str
    preimage: str
    channel: Channel
    payment: Payment
    def __init__(self, channel_id: _Optional[str] = ..., sequence: _Optional[int] = ..., payment_hash: _Optional[str] = ..., preimage: _Optional[str] = ..., channel: _Optional[_Union[Channel, _Mapping]] = ..., payment: _Optional[_Union[Payment, _Mapping]] = ...) -> None: ...

class CloseChannelRequest(_message.Message):
    __slots__ = ("request_id", "channel_id", "force", "stale_sequence")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    STALE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    channel_id: str
    force: bool
    stale_sequence: int
    def __init__(self, request_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., force: _Optional[bool] = ..., stale_sequence: _Optional[int] = ...) -> None: ...

class CloseChannelResponse(_message.Message):
    __slots__ = ("channel", "l1_tx_hash")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    l1_tx_hash: str
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ..., l1_tx_hash: _Optional[str] = ...) -> None: ...

class SubscribeEventsRequest(_message.Message):
    __slots__ = ("from_sequence", "channel_id")
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    from_sequence: int
    channel_id: str
    def __init__(self, from_sequence: _Optional[int] = ..., channel_id: _Optional[str] = ...) -> None: ...

class SubscribeEventsResponse(_message.Message):
    __slots__ = ("sequence", "kind", "channel_id", "channel", "payment_hash", "amount", "at")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: str
    channel_id: str
    channel: Channel
    payment_hash: str
    amount: str
    at: int
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[str] = ..., channel_id: _Optional[str] = ..., channel: _Optional[_Union[Channel, _Mapping]] = ..., payment_hash: _Optional[str] = ..., amount: _Optional[str] = ..., at: _Optional[int] = ...) -> None: ...

class HelloRequest(_message.Message):
    __slots__ = ("address", "chain_id", "adjudicator", "sender_signature")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ADJUDICATOR_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    address: str
    chain_id: int
    adjudicator: str
    sender_signature: bytes
    def __init__(self, address: _Optional[str] = ..., chain_id: _Optional[int] = ..., adjudicator: _Optional[str] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("address", "chain_id", "adjudicator", "sender_signature")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    ADJUDICATOR_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    address: str
    chain_id: int
    adjudicator: str
    sender_signature: bytes
    def __init__(self, address: _Optional[str] = ..., chain_id: _Optional[int] = ..., adjudicator: _Optional[str] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class OpenRequest(_message.Message):
    __slots__ = ("a", "b", "nonce", "amount_a", "amount_b", "endpoint", "state", "signature", "sender_signature")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_A_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_B_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    a: str
    b: str
    nonce: int
    amount_a: str
    amount_b: str
    endpoint: str
    state: State
    signature: bytes
    sender_signature: bytes
    def __init__(self, a: _Optional[str] = ..., b: _Optional[str] = ..., nonce: _Optional[int] = ..., amount_a: _Optional[str] = ..., amount_b: _Optional[str] = ..., endpoint: _Optional[str] = ..., state: _Optional[_Union[State, _Mapping]] = ..., signature: _Optional[bytes] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class OpenResponse(_message.Message):
    __slots__ = ("channel_id", "signature", "sender_signature")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    signature: bytes
    sender_signature: bytes
    def __init__(self, channel_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class ProposeRequest(_message.Message):
    __slots__ = ("state", "signature", "amount", "payment_hash", "sender_signature", "final", "onward", "preimage", "fail_reason", "fail_message", "fail_channel_id", "parts", "change")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ONWARD_FIELD_NUMBER: _ClassVar[int]
    PREIMAGE_FIELD_NUMBER: _ClassVar[int]
    FAIL_REASON_FIELD_NUMBER: _ClassVar[int]
    FAIL_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAIL_CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    state: State
    signature: bytes
    amount: str
    payment_hash: str
    sender_signature: bytes
    final: bool
    onward: _containers.RepeatedCompositeFieldContainer[RouteHop]
    preimage: str
    fail_reason: str
    fail_message: str
    fail_channel_id: str
    parts: _containers.RepeatedCompositeFieldContainer[PaymentPart]
    change: HtlcChange
    def __init__(self, state: _Optional[_Union[State, _Mapping]] = ..., signature: _Optional[bytes] = ..., amount: _Optional[str] = ..., payment_hash: _Optional[str] = ..., sender_signature: _Optional[bytes] = ..., final: _Optional[bool] = ..., onward: _Optional[_Iterable[_Union[RouteHop, _Mapping]]] = ..., preimage: _Optional[str] = ..., fail_reason: _Optional[str] = ..., fail_message: _Optional[str] = ..., fail_channel_id: _Optional[str] = ..., parts: _Optional[_Iterable[_Union[PaymentPart, _Mapping]]] = ..., change: _Optional[_Union[HtlcChange, _Mapping]] = ...) -> None: ...

class HtlcChange(_message.Message):
    __slots__ = ("kind", "from_a", "payment_hash", "amount", "expiry")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FROM_A_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FIELD_NUMBER: _ClassVar[int]
    kind: HtlcChangeKind
    from_a: bool
    payment_hash: str
    amount: str
    expiry: int
    def __init__(self, kind: _Optional[_Union[HtlcChangeKind, str]] = ..., from_a: _Optional[bool] = ..., payment_hash: _Optional[str] = ..., amount: _Optional[str] = ..., expiry: _Optional[int] = ...) -> None: ...

class PaymentPart(_message.Message):
    __slots__ = ("amount", "payment_hash")
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    amount: str
    payment_hash: str
    def __init__(self, amount: _Optional[str] = ..., payment_hash: _Optional[str] = ...) -> None: ...

class ProposeResponse(_message.Message):
    __slots__ = ("channel_id", "sequence", "accepted", "signature", "preimage", "reason", "message", "signed_upto", "sender_signature", "preimages")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PREIMAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_UPTO_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PREIMAGES_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    sequence: int
    accepted: bool
    signature: bytes
    preimage: str
    reason: str
    message: str
    signed_upto: int
    sender_signature: bytes
    preimages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, channel_id: _Optional[str] = ..., sequence: _Optional[int] = ..., accepted: _Optional[bool] = ..., signature: _Optional[bytes] = ..., preimage: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., signed_upto: _Optional[int] = ..., sender_signature: _Optional[bytes] = ..., preimages: _Optional[_Iterable[str]] = ...) -> None: ...

class ChannelAnnouncement(_message.Message):
    __slots__ = ("channel_id", "a", "b", "nonce", "from_a", "capacity", "fee_base", "fee_ppm", "expiry_delta_s", "htlc_min", "htlc_max", "max_htlcs", "timestamp", "signature")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    FROM_A_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    FEE_BASE_FIELD_NUMBER: _ClassVar[int]
    FEE_PPM_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_DELTA_S_FIELD_NUMBER: _ClassVar[int]
    HTLC_MIN_FIELD_NUMBER: _ClassVar[int]
    HTLC_MAX_FIELD_NUMBER: _ClassVar[int]
    MAX_HTLCS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    a: str
    b: str
    nonce: int
    from_a: bool
    capacity: str
    fee_base: str
    fee_ppm: int
    expiry_delta_s: int
    htlc_min: str
    htlc_max: str
    max_htlcs: int
    timestamp: int
    signature: bytes
    def __init__(self, channel_id: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ..., nonce: _Optional[int] = ..., from_a: _Optional[bool] = ..., capacity: _Optional[str] = ..., fee_base: _Optional[str] = ..., fee_ppm: _Optional[int] = ..., expiry_delta_s: _Optional[int] = ..., htlc_min: _Optional[str] = ..., htlc_max: _Optional[str] = ..., max_htlcs: _Optional[int] = ..., timestamp: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ProposeBatchRequest(_message.Message):
    __slots__ = ("channel_id", "proposals", "sender_signature", "waiting")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    proposals: _containers.RepeatedCompositeFieldContainer[ProposeRequest]
    sender_signature: bytes
    waiting: bool
    def __init__(self, channel_id: _Optional[str] = ..., proposals: _Optional[_Iterable[_Union[ProposeRequest, _Mapping]]] = ..., sender_signature: _Optional[bytes] = ..., waiting: _Optional[bool] = ...) -> None: ...

class ProposeBatchResponse(_message.Message):
    __slots__ = ("responses", "sender_signature", "waiting")
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[ProposeResponse]
    sender_signature: bytes
    waiting: bool
    def __init__(self, responses: _Optional[_Iterable[_Union[ProposeResponse, _Mapping]]] = ..., sender_signature: _Optional[bytes] = ..., waiting: _Optional[bool] = ...) -> None: ...

class HtlcRequest(_message.Message):
    __slots__ = ("kind", "payment_hash", "preimage", "fail_reason", "fail_message", "fail_channel_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_HASH_FIELD_NUMBER: _ClassVar[int]
    PREIMAGE_FIELD_NUMBER: _ClassVar[int]
    FAIL_REASON_FIELD_NUMBER: _ClassVar[int]
    FAIL_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAIL_CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    kind: HtlcChangeKind
    payment_hash: str
    preimage: str
    fail_reason: str
    fail_message: str
    fail_channel_id: str
    def __init__(self, kind: _Optional[_Union[HtlcChangeKind, str]] = ..., payment_hash: _Optional[str] = ..., preimage: _Optional[str] = ..., fail_reason: _Optional[str] = ..., fail_message: _Optional[str] = ..., fail_channel_id: _Optional[str] = ...) -> None: ...

class RequestChangesRequest(_message.Message):
    __slots__ = ("channel_id", "requests", "sender_signature")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    requests: _containers.RepeatedCompositeFieldContainer[HtlcRequest]
    sender_signature: bytes
    def __init__(self, channel_id: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[HtlcRequest, _Mapping]]] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class RequestChangesResponse(_message.Message):
    __slots__ = ("answers", "sender_signature")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[RequestAnswer]
    sender_signature: bytes
    def __init__(self, answers: _Optional[_Iterable[_Union[RequestAnswer, _Mapping]]] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class RequestAnswer(_message.Message):
    __slots__ = ("accepted", "reason", "message")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    message: str
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class AnnounceRequest(_message.Message):
    __slots__ = ("node", "announcements", "sender_signature")
    NODE_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCEMENTS_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    node: str
    announcements: _containers.RepeatedCompositeFieldContainer[ChannelAnnouncement]
    sender_signature: bytes
    def __init__(self, node: _Optional[str] = ..., announcements: _Optional[_Iterable[_Union[ChannelAnnouncement, _Mapping]]] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class AnnounceResponse(_message.Message):
    __slots__ = ("accepted", "sender_signature")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    sender_signature: bytes
    def __init__(self, accepted: _Optional[int] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class AppointRequest(_message.Message):
    __slots__ = ("adjudicator", "a", "b", "nonce", "state", "signature_a", "signature_b", "sender_signature")
    ADJUDICATOR_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_A_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_B_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    adjudicator: str
    a: str
    b: str
    nonce: int
    state: State
    signature_a: bytes
    signature_b: bytes
    sender_signature: bytes
    def __init__(self, adjudicator: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ..., nonce: _Optional[int] = ..., state: _Optional[_Union[State, _Mapping]] = ..., signature_a: _Optional[bytes] = ..., signature_b: _Optional[bytes] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class AppointResponse(_message.Message):
    __slots__ = ("channel_id", "sequence", "tower", "sender_signature")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TOWER_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    sequence: int
    tower: str
    sender_signature: bytes
    def __init__(self, channel_id: _Optional[str] = ..., sequence: _Optional[int] = ..., tower: _Optional[str] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class GetAppointmentRequest(_message.Message):
    __slots__ = ("channel_id", "sender_signature")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    sender_signature: bytes
    def __init__(self, channel_id: _Optional[str] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...

class GetAppointmentResponse(_message.Message):
    __slots__ = ("held", "state", "signature_a", "signature_b", "tower", "sender_signature")
    HELD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_A_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_B_FIELD_NUMBER: _ClassVar[int]
    TOWER_FIELD_NUMBER: _ClassVar[int]
    SENDER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    held: bool
    state: State
    signature_a: bytes
    signature_b: bytes
    tower: str
    sender_signature: bytes
    def __init__(self, held: _Optional[bool] = ..., state: _Optional[_Union[State, _Mapping]] = ..., signature_a: _Optional[bytes] = ..., signature_b: _Optional[bytes] = ..., tower: _Optional[str] = ..., sender_signature: _Optional[bytes] = ...) -> None: ...
