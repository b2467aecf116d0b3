from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState

class Breaker(_message.Message):
    __slots__ = ("target", "state", "failures", "calls", "retries", "rejected")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    target: str
    state: BreakerState
    failures: int
    calls: int
    retries: int
    rejected: int
    def __init__(self, target: _Optional[str] = ..., state: _Optional[_Union[BreakerState, str]] = ..., failures: _Optional[int] = ..., calls: _Optional[int] = ..., retries: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "state", "restarts")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: str
    restarts: int
    def __init__(self, id: _Optional[str] = ..., state: _Optional[str] = ..., restarts: _Optional[int] = ...) -> None: ...

class GetWorkerStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetWorkerStatusResponse(_message.Message):
    __slots__ = ("service", "pid", "uptime_s", "breakers", "tasks", "not_ready")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NOT_READY_FIELD_NUMBER: _ClassVar[int]
    service: str
    pid: int
    uptime_s: float
    breakers: _containers.RepeatedCompositeFieldContainer[Breaker]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    not_ready: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, service: _Optional[str] = ..., pid: _Optional[int] = ..., uptime_s: _Optional[float] = ..., breakers: _Optional[_Iterable[_Union[Breaker, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., not_ready: _Optional[_Iterable[str]] = ...) -> None: ...
