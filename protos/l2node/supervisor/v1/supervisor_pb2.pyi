import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChildKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHILD_KIND_UNSPECIFIED: _ClassVar[ChildKind]
    CHILD_KIND_WORKER: _ClassVar[ChildKind]
    CHILD_KIND_EXTERNAL: _ClassVar[ChildKind]
    CHILD_KIND_SUPERVISOR: _ClassVar[ChildKind]
    CHILD_KIND_TASK: _ClassVar[ChildKind]
    CHILD_KIND_ZYGOTE: _ClassVar[ChildKind]

class ChildState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHILD_STATE_UNSPECIFIED: _ClassVar[ChildState]
    CHILD_STATE_STARTING: _ClassVar[ChildState]
    CHILD_STATE_RUNNING: _ClassVar[ChildState]
    CHILD_STATE_STOPPING: _ClassVar[ChildState]
    CHILD_STATE_TERMINATED: _ClassVar[ChildState]
    CHILD_STATE_RESTARTING: _ClassVar[ChildState]

class RestartType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESTART_TYPE_UNSPECIFIED: _ClassVar[RestartType]
    RESTART_TYPE_PERMANENT: _ClassVar[RestartType]
    RESTART_TYPE_TRANSIENT: _ClassVar[RestartType]
    RESTART_TYPE_TEMPORARY: _ClassVar[RestartType]

class ShutdownMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHUTDOWN_MODE_UNSPECIFIED: _ClassVar[ShutdownMode]
    SHUTDOWN_MODE_TIMEOUT: _ClassVar[ShutdownMode]
    SHUTDOWN_MODE_BRUTAL_KILL: _ClassVar[ShutdownMode]
    SHUTDOWN_MODE_INFINITY: _ClassVar[ShutdownMode]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_STARTED: _ClassVar[EventType]
    EVENT_TYPE_EXITED: _ClassVar[EventType]
    EVENT_TYPE_RESTARTED: _ClassVar[EventType]
    EVENT_TYPE_ESCALATED: _ClassVar[EventType]
    EVENT_TYPE_PROBE_FAILED: _ClassVar[EventType]
    EVENT_TYPE_START_FAILED: _ClassVar[EventType]
    EVENT_TYPE_TERMINATED: _ClassVar[EventType]
    EVENT_TYPE_DELETED: _ClassVar[EventType]
    EVENT_TYPE_AUTO_SHUTDOWN: _ClassVar[EventType]
CHILD_KIND_UNSPECIFIED: ChildKind
CHILD_KIND_WORKER: ChildKind
CHILD_KIND_EXTERNAL: ChildKind
CHILD_KIND_SUPERVISOR: ChildKind
CHILD_KIND_TASK: ChildKind
CHILD_KIND_ZYGOTE: ChildKind
CHILD_STATE_UNSPECIFIED: ChildState
CHILD_STATE_STARTING: ChildState
CHILD_STATE_RUNNING: ChildState
CHILD_STATE_STOPPING: ChildState
CHILD_STATE_TERMINATED: ChildState
CHILD_STATE_RESTARTING: ChildState
RESTART_TYPE_UNSPECIFIED: RestartType
RESTART_TYPE_PERMANENT: RestartType
RESTART_TYPE_TRANSIENT: RestartType
RESTART_TYPE_TEMPORARY: RestartType
SHUTDOWN_MODE_UNSPECIFIED: ShutdownMode
SHUTDOWN_MODE_TIMEOUT: ShutdownMode
SHUTDOWN_MODE_BRUTAL_KILL: ShutdownMode
SHUTDOWN_MODE_INFINITY: ShutdownMode
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_STARTED: EventType
EVENT_TYPE_EXITED: EventType
EVENT_TYPE_RESTARTED: EventType
EVENT_TYPE_ESCALATED: EventType
EVENT_TYPE_PROBE_FAILED: EventType
EVENT_TYPE_START_FAILED: EventType
EVENT_TYPE_TERMINATED: EventType
EVENT_TYPE_DELETED: EventType
EVENT_TYPE_AUTO_SHUTDOWN: EventType

class Child(_message.Message):
    __slots__ = ("id", "kind", "state", "pid", "restarts", "uptime_s", "address", "restart", "significant", "last_exit_reason", "parent")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    LAST_EXIT_REASON_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: ChildKind
    state: ChildState
    pid: int
    restarts: int
    uptime_s: float
    address: str
    restart: RestartType
    significant: bool
    last_exit_reason: str
    parent: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[ChildKind, str]] = ..., state: _Optional[_Union[ChildState, str]] = ..., pid: _Optional[int] = ..., restarts: _Optional[int] = ..., uptime_s: _Optional[float] = ..., address: _Optional[str] = ..., restart: _Optional[_Union[RestartType, str]] = ..., significant: _Optional[bool] = ..., last_exit_reason: _Optional[str] = ..., parent: _Optional[str] = ...) -> None: ...

class WhichChildrenRequest(_message.Message):
    __slots__ = ("supervisor", "recursive")
    SUPERVISOR_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    supervisor: str
    recursive: bool
    def __init__(self, supervisor: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class WhichChildrenResponse(_message.Message):
    __slots__ = ("children",)
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    children: _containers.RepeatedCompositeFieldContainer[Child]
    def __init__(self, children: _Optional[_Iterable[_Union[Child, _Mapping]]] = ...) -> None: ...

class CountChildrenRequest(_message.Message):
    __slots__ = ("supervisor",)
    SUPERVISOR_FIELD_NUMBER: _ClassVar[int]
    supervisor: str
    def __init__(self, supervisor: _Optional[str] = ...) -> None: ...

class CountChildrenResponse(_message.Message):
    __slots__ = ("specs", "active", "supervisors", "workers")
    SPECS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    SUPERVISORS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    specs: int
    active: int
    supervisors: int
    workers: int
    def __init__(self, specs: _Optional[int] = ..., active: _Optional[int] = ..., supervisors: _Optional[int] = ..., workers: _Optional[int] = ...) -> None: ...

class WorkerStart(_message.Message):
    __slots__ = ("definition", "address", "settings_json")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    definition: str
    address: str
    settings_json: str
    def __init__(self, definition: _Optional[str] = ..., address: _Optional[str] = ..., settings_json: _Optional[str] = ...) -> None: ...

class ExternalStart(_message.Message):
    __slots__ = ("argv", "address")
    ARGV_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    argv: _containers.RepeatedScalarFieldContainer[str]
    address: str
    def __init__(self, argv: _Optional[_Iterable[str]] = ..., address: _Optional[str] = ...) -> None: ...

class ChildSpec(_message.Message):
    __slots__ = ("id", "restart", "shutdown_ms", "significant", "shutdown", "worker", "external")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESTART_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    restart: RestartType
    shutdown_ms: int
    significant: bool
    shutdown: ShutdownMode
    worker: WorkerStart
    external: ExternalStart
    def __init__(self, id: _Optional[str] = ..., restart: _Optional[_Union[RestartType, str]] = ..., shutdown_ms: _Optional[int] = ..., significant: _Optional[bool] = ..., shutdown: _Optional[_Union[ShutdownMode, str]] = ..., worker: _Optional[_Union[WorkerStart, _Mapping]] = ..., external: _Optional[_Union[ExternalStart, _Mapping]] = ...) -> None: ...

class StartChildRequest(_message.Message):
    __slots__ = ("supervisor", "spec", "request_id")
    SUPERVISOR_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    supervisor: str
    spec: ChildSpec
    request_id: str
    def __init__(self, supervisor: _Optional[str] = ..., spec: _Optional[_Union[ChildSpec, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class RestartChildRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RestartChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class TerminateChildRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class TerminateChildResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Child
    def __init__(self, child: _Optional[_Union[Child, _Mapping]] = ...) -> None: ...

class DeleteChildRequest(_message.Message):
    __slots__ = ("id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteChildResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence", "type", "child_id", "pid", "reason", "time", "normal")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CHILD_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    NORMAL_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: EventType
    child_id: str
    pid: int
    reason: str
    time: _timestamp_pb2.Timestamp
    normal: bool
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., child_id: _Optional[str] = ..., pid: _Optional[int] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., normal: _Optional[bool] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("prefix",)
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    def __init__(self, prefix: _Optional[str] = ...) -> None: ...

class WatchEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: Event
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ...) -> None: ...
