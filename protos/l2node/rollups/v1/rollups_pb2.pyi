from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_STATUS_UNSPECIFIED: _ClassVar[OutputStatus]
    OUTPUT_STATUS_PROPOSED: _ClassVar[OutputStatus]
    OUTPUT_STATUS_CHALLENGED: _ClassVar[OutputStatus]
    OUTPUT_STATUS_FINALIZED: _ClassVar[OutputStatus]
    OUTPUT_STATUS_INVALIDATED: _ClassVar[OutputStatus]

class DisputeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISPUTE_STATUS_UNSPECIFIED: _ClassVar[DisputeStatus]
    DISPUTE_STATUS_IN_PROGRESS: _ClassVar[DisputeStatus]
    DISPUTE_STATUS_DEFENDER_WON: _ClassVar[DisputeStatus]
    DISPUTE_STATUS_CHALLENGER_WON: _ClassVar[DisputeStatus]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_DEFENDER: _ClassVar[Side]
    SIDE_CHALLENGER: _ClassVar[Side]

class MoveKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MOVE_KIND_UNSPECIFIED: _ClassVar[MoveKind]
    MOVE_KIND_BISECT: _ClassVar[MoveKind]
    MOVE_KIND_CHOOSE: _ClassVar[MoveKind]
    MOVE_KIND_STEP: _ClassVar[MoveKind]
    MOVE_KIND_TIMEOUT: _ClassVar[MoveKind]
OUTPUT_STATUS_UNSPECIFIED: OutputStatus
OUTPUT_STATUS_PROPOSED: OutputStatus
OUTPUT_STATUS_CHALLENGED: OutputStatus
OUTPUT_STATUS_FINALIZED: OutputStatus
OUTPUT_STATUS_INVALIDATED: OutputStatus
DISPUTE_STATUS_UNSPECIFIED: DisputeStatus
DISPUTE_STATUS_IN_PROGRESS: DisputeStatus
DISPUTE_STATUS_DEFENDER_WON: DisputeStatus
DISPUTE_STATUS_CHALLENGER_WON: DisputeStatus
SIDE_UNSPECIFIED: Side
SIDE_DEFENDER: Side
SIDE_CHALLENGER: Side
MOVE_KIND_UNSPECIFIED: MoveKind
MOVE_KIND_BISECT: MoveKind
MOVE_KIND_CHOOSE: MoveKind
MOVE_KIND_STEP: MoveKind
MOVE_KIND_TIMEOUT: MoveKind

class Output(_message.Message):
    __slots__ = ("index", "output_root", "l2_block", "parent_index", "proposer", "proposed_at", "window_ends_at", "status", "snapshot_hash", "trace_length", "dispute_ids", "batch_limit")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ROOT_FIELD_NUMBER: _ClassVar[int]
    L2_BLOCK_FIELD_NUMBER: _ClassVar[int]
    PARENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_AT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_HASH_FIELD_NUMBER: _ClassVar[int]
    TRACE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DISPUTE_IDS_FIELD_NUMBER: _ClassVar[int]
    BATCH_LIMIT_FIELD_NUMBER: _ClassVar[int]
    index: int
    output_root: str
    l2_block: int
    parent_index: int
    proposer: str
    proposed_at: int
    window_ends_at: int
    status: OutputStatus
    snapshot_hash: str
    trace_length: int
    dispute_ids: _containers.RepeatedScalarFieldContainer[int]
    batch_limit: int
    def __init__(self, index: _Optional[int] = ..., output_root: _Optional[str] = ..., l2_block: _Optional[int] = ..., parent_index: _Optional[int] = ..., proposer: _Optional[str] = ..., proposed_at: _Optional[int] = ..., window_ends_at: _Optional[int] = ..., status: _Optional[_Union[OutputStatus, str]] = ..., snapshot_hash: _Optional[str] = ..., trace_length: _Optional[int] = ..., dispute_ids: _Optional[_Iterable[int]] = ..., batch_limit: _Optional[int] = ...) -> None: ...

class OutputRootPreimage(_message.Message):
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

class ListOutputsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListOutputsResponse(_message.Message):
    __slots__ = ("outputs", "next_page_token")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    next_page_token: str
    def __init__(self, outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetOutputRequest(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...

class GetOutputResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: Output
    def __init__(self, output: _Optional[_Union[Output, _Mapping]] = ...) -> None: ...

class GetOutputAtBlockRequest(_message.Message):
    __slots__ = ("l2_block",)
    L2_BLOCK_FIELD_NUMBER: _ClassVar[int]
    l2_block: int
    def __init__(self, l2_block: _Optional[int] = ...) -> None: ...

class GetOutputAtBlockResponse(_message.Message):
    __slots__ = ("output", "preimage")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    PREIMAGE_FIELD_NUMBER: _ClassVar[int]
    output: Output
    preimage: OutputRootPreimage
    def __init__(self, output: _Optional[_Union[Output, _Mapping]] = ..., preimage: _Optional[_Union[OutputRootPreimage, _Mapping]] = ...) -> None: ...

class Move(_message.Message):
    __slots__ = ("kind", "round", "position", "claim", "agree", "side", "l1_tx_hash", "l1_block")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    AGREE_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    L1_TX_HASH_FIELD_NUMBER: _ClassVar[int]
    L1_BLOCK_FIELD_NUMBER: _ClassVar[int]
    kind: MoveKind
    round: int
    position: int
    claim: str
    agree: bool
    side: Side
    l1_tx_hash: str
    l1_block: int
    def __init__(self, kind: _Optional[_Union[MoveKind, str]] = ..., round: _Optional[int] = ..., position: _Optional[int] = ..., claim: _Optional[str] = ..., agree: _Optional[bool] = ..., side: _Optional[_Union[Side, str]] = ..., l1_tx_hash: _Optional[str] = ..., l1_block: _Optional[int] = ...) -> None: ...

class Dispute(_message.Message):
    __slots__ = ("id", "game", "output_index", "defender", "challenger", "status", "lo", "hi", "lo_claim", "hi_claim", "round", "max_rounds", "turn", "defender_clock_remaining_s", "challenger_clock_remaining_s", "bonds", "moves")
    ID_FIELD_NUMBER: _ClassVar[int]
    GAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_INDEX_FIELD_NUMBER: _ClassVar[int]
    DEFENDER_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LO_FIELD_NUMBER: _ClassVar[int]
    HI_FIELD_NUMBER: _ClassVar[int]
    LO_CLAIM_FIELD_NUMBER: _ClassVar[int]
    HI_CLAIM_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    DEFENDER_CLOCK_REMAINING_S_FIELD_NUMBER: _ClassVar[int]
    CHALLENGER_CLOCK_REMAINING_S_FIELD_NUMBER: _ClassVar[int]
    BONDS_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    id: int
    game: str
    output_index: int
    defender: str
    challenger: str
    status: DisputeStatus
    lo: int
    hi: int
    lo_claim: str
    hi_claim: str
    round: int
    max_rounds: int
    turn: Side
    defender_clock_remaining_s: int
    challenger_clock_remaining_s: int
    bonds: str
    moves: _containers.RepeatedCompositeFieldContainer[Move]
    def __init__(self, id: _Optional[int] = ..., game: _Optional[str] = ..., output_index: _Optional[int] = ..., defender: _Optional[str] = ..., challenger: _Optional[str] = ..., status: _Optional[_Union[DisputeStatus, str]] = ..., lo: _Optional[int] = ..., hi: _Optional[int] = ..., lo_claim: _Optional[str] = ..., hi_claim: _Optional[str] = ..., round: _Optional[int] = ..., max_rounds: _Optional[int] = ..., turn: _Optional[_Union[Side, str]] = ..., defender_clock_remaining_s: _Optional[int] = ..., challenger_clock_remaining_s: _Optional[int] = ..., bonds: _Optional[str] = ..., moves: _Optional[_Iterable[_Union[Move, _Mapping]]] = ...) -> None: ...

class GetDisputeRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class GetDisputeResponse(_message.Message):
    __slots__ = ("dispute",)
    DISPUTE_FIELD_NUMBER: _ClassVar[int]
    dispute: Dispute
    def __init__(self, dispute: _Optional[_Union[Dispute, _Mapping]] = ...) -> None: ...

class ListDisputesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDisputesResponse(_message.Message):
    __slots__ = ("disputes", "next_page_token")
    DISPUTES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    disputes: _containers.RepeatedCompositeFieldContainer[Dispute]
    next_page_token: str
    def __init__(self, disputes: _Optional[_Iterable[_Union[Dispute, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SubscribeOutputsRequest(_message.Message):
    __slots__ = ("from_index",)
    FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    from_index: int
    def __init__(self, from_index: _Optional[int] = ...) -> None: ...

class SubscribeOutputsResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: Output
    def __init__(self, output: _Optional[_Union[Output, _Mapping]] = ...) -> None: ...
