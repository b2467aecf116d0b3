"""An Erlang/OTP-style supervisor for asyncio: process, task and supervisor children.

Read this package in this order: ``_spec`` (the vocabulary and defaults), ``_child`` (what a
child is to its supervisor), ``_supervisor`` (where restarts are decided), then the kinds of
children: ``_task``, ``_nested``, ``_process`` (with ``_zygote``, ``_probe`` and ``_orphans``).
"""

from supervisor._child import Exit, LaunchContext, Running, Starter
from supervisor._errors import (
    AlreadyPresent,
    AlreadyStarted,
    InvalidSpec,
    MaxChildren,
    NotFound,
    NotRunning,
    Restarting,
    Shutdown,
    StartFailed,
    SupervisorError,
)
from supervisor._errors import Running as RunningError
from supervisor._events import Event, EventBus, EventType
from supervisor._lock import LockHeld, PidLock
from supervisor._nested import DynamicSupervisor, dynamic_supervisor, supervisor
from supervisor._orphans import die_with_parent
from supervisor._probe import GrpcHealthProbe, Liveness, Probe, ProbeFailed, port_still_taken
from supervisor._process import ExternalStarter, external, forked
from supervisor._proctitle import set_process_title
from supervisor._spec import (
    BRUTAL_KILL,
    DEFAULT_INTENSITY,
    DEFAULT_PERIOD_S,
    DEFAULT_START_TIMEOUT_S,
    DEFAULT_WORKER_SHUTDOWN_MS,
    INFINITY,
    AutoShutdown,
    ChildKind,
    ChildSpec,
    ChildState,
    Restart,
    Strategy,
    SupervisorFlags,
    SupervisorSpec,
)
from supervisor._spec import Shutdown as ShutdownSetting
from supervisor._supervisor import ChildCounts, ChildInfo, Supervisor, SupervisorStatistics
from supervisor._task import TaskStatus, task
from supervisor._warm_pages import record as record_warm_pages
from supervisor._zygote_client import Zygote

__all__ = [
    "BRUTAL_KILL",
    "DEFAULT_INTENSITY",
    "DEFAULT_PERIOD_S",
    "DEFAULT_START_TIMEOUT_S",
    "DEFAULT_WORKER_SHUTDOWN_MS",
    "INFINITY",
    "AlreadyPresent",
    "AlreadyStarted",
    "AutoShutdown",
    "ChildCounts",
    "ChildInfo",
    "ChildKind",
    "ChildSpec",
    "ChildState",
    "DynamicSupervisor",
    "Event",
    "EventBus",
    "EventType",
    "Exit",
    "ExternalStarter",
    "GrpcHealthProbe",
    "InvalidSpec",
    "LaunchContext",
    "Liveness",
    "LockHeld",
    "MaxChildren",
    "NotFound",
    "NotRunning",
    "PidLock",
    "Probe",
    "ProbeFailed",
    "Restart",
    "Restarting",
    "Running",
    "RunningError",
    "Shutdown",
    "ShutdownSetting",
    "StartFailed",
    "Starter",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorFlags",
    "SupervisorSpec",
    "SupervisorStatistics",
    "TaskStatus",
    "Zygote",
    "die_with_parent",
    "dynamic_supervisor",
    "external",
    "forked",
    "port_still_taken",
    "record_warm_pages",
    "set_process_title",
    "supervisor",
    "task",
]
