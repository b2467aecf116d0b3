"""The vocabulary of a supervision tree: one named type per concept, defaults in one place.

Semantics follow Erlang/OTP's ``supervisor`` module; where this module says nothing, OTP's
documentation is the reference.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypeAlias

from supervisor._errors import InvalidSpec

if TYPE_CHECKING:
    from supervisor._child import Starter


class Strategy(enum.Enum):
    """What else is restarted when one child exits and must be restarted."""

    #: Only the child that exited.
    ONE_FOR_ONE = "one_for_one"
    #: Every child: the others are stopped (reverse order) and all start again in order.
    ONE_FOR_ALL = "one_for_all"
    #: The child and every child started after it.
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    """When an exited child is restarted."""

    #: Always.
    PERMANENT = "permanent"
    #: Only after an abnormal exit (non-zero status, a signal, an exception, a failed probe).
    TRANSIENT = "transient"
    #: Never; its spec is removed when it exits.
    TEMPORARY = "temporary"


class AutoShutdown(enum.Enum):
    """Whether the exit of *significant* children stops the supervisor itself (OTP 24+)."""

    NEVER = "never"
    #: When any significant child exits by itself and is not restarted.
    ANY_SIGNIFICANT = "any_significant"
    #: When every significant child has exited by itself and none is restarted.
    ALL_SIGNIFICANT = "all_significant"


class _Infinity(enum.Enum):
    INFINITY = "infinity"


class _BrutalKill(enum.Enum):
    BRUTAL_KILL = "brutal_kill"


#: Stop a child at once: SIGKILL for a process, cancel-without-waiting for a task.
BRUTAL_KILL: Final = _BrutalKill.BRUTAL_KILL
#: Ask the child to stop and wait as long as it takes (the default for supervisors, as in OTP).
INFINITY: Final = _Infinity.INFINITY

#: How a child is stopped: BRUTAL_KILL, INFINITY, or milliseconds between the polite request
#: (SIGTERM, task cancellation) and the kill.
Shutdown: TypeAlias = _BrutalKill | _Infinity | int


class ChildKind(enum.Enum):
    """What a child is; the supervisor treats all of them alike, the CLI shows the difference."""

    WORKER = "worker"
    EXTERNAL = "external"
    SUPERVISOR = "supervisor"
    TASK = "task"
    ZYGOTE = "zygote"


class ChildState(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    #: The spec is kept but nothing runs.
    TERMINATED = "terminated"
    #: Exited; waiting for its turn to be started again.
    RESTARTING = "restarting"


# -- defaults, all in one place -------------------------------------------------------------

#: OTP's defaults: more than 3 restarts within 5 seconds makes the supervisor give up.
DEFAULT_INTENSITY: Final = 3
DEFAULT_PERIOD_S: Final = 5.0
#: A worker gets 5 s to stop after SIGTERM, as OTP's 5000 ms for workers.
DEFAULT_WORKER_SHUTDOWN_MS: Final = 5000
#: How long a child may take to become ready before its start counts as failed.
DEFAULT_START_TIMEOUT_S: Final = 30.0
#: Liveness: probe a running process child every second, 1 s deadline, 3 misses = hung.
DEFAULT_PROBE_INTERVAL_S: Final = 1.0
DEFAULT_PROBE_TIMEOUT_S: Final = 1.0
DEFAULT_PROBE_FAILURES: Final = 3


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start, restart and stop one child."""

    #: Unique among the supervisor's children; no '/' (paths are made of ids).
    id: str
    #: What runs the child; see :mod:`supervisor._child` for the protocol.
    start: Starter
    restart: Restart = Restart.PERMANENT
    #: Defaults to DEFAULT_WORKER_SHUTDOWN_MS, or INFINITY for a nested supervisor.
    shutdown: Shutdown | None = None
    #: Counts for auto_shutdown; only transient and temporary children may be significant.
    significant: bool = False

    def __post_init__(self) -> None:
        validate_child_spec(self)

    @property
    def effective_shutdown(self) -> Shutdown:
        if self.shutdown is not None:
            return self.shutdown
        return INFINITY if self.start.kind is ChildKind.SUPERVISOR else DEFAULT_WORKER_SHUTDOWN_MS


@dataclass(frozen=True, slots=True)
class SupervisorFlags:
    """A supervisor's own settings (OTP's sup_flags)."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    #: At most this many restarts ...
    intensity: int = DEFAULT_INTENSITY
    #: ... within this many seconds, counted over all children; one more and the supervisor
    #: stops every child and fails, so that its own supervisor decides (escalation).
    period_s: float = DEFAULT_PERIOD_S
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER
    #: For dynamic supervisors: refuse start_child beyond this many children (None: no limit).
    max_children: int | None = None

    def __post_init__(self) -> None:
        validate_flags(self)


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    flags: SupervisorFlags = field(default_factory=SupervisorFlags)
    children: Sequence[ChildSpec] = ()

    def __post_init__(self) -> None:
        ids = [c.id for c in self.children]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise InvalidSpec(f"duplicate child ids: {dupes}")
        significant = [c.id for c in self.children if c.significant]
        if significant and self.flags.auto_shutdown is AutoShutdown.NEVER:
            # OTP allows this but then ignores `significant`; a silent no-op hides mistakes.
            raise InvalidSpec(f"children {significant} are significant but auto_shutdown is never")


# -- validators: small, and each failure says what is wrong ----------------------------------

_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def validate_child_id(child_id: str) -> str:
    if not isinstance(child_id, str) or not _ID.match(child_id):
        raise InvalidSpec(f"child id {child_id!r} must be 1-64 characters of [A-Za-z0-9_.-]")
    return child_id


def validate_shutdown(shutdown: Shutdown | None) -> None:
    if shutdown is None or shutdown is BRUTAL_KILL or shutdown is INFINITY:
        return
    if isinstance(shutdown, bool) or not isinstance(shutdown, int) or shutdown <= 0:
        raise InvalidSpec(f"shutdown {shutdown!r} must be BRUTAL_KILL, INFINITY or a positive int of ms")


def validate_child_spec(spec: ChildSpec) -> None:
    validate_child_id(spec.id)
    if not isinstance(spec.restart, Restart):
        raise InvalidSpec(f"child {spec.id}: restart {spec.restart!r} is not a Restart")
    validate_shutdown(spec.shutdown)
    if spec.significant and spec.restart is Restart.PERMANENT:
        # OTP rejects this too: a permanent child never exits "by itself" for good.
        raise InvalidSpec(f"child {spec.id}: a significant child must be transient or temporary")
    if not hasattr(spec.start, "launch") or not isinstance(getattr(spec.start, "kind", None), ChildKind):
        raise InvalidSpec(f"child {spec.id}: start {spec.start!r} is not a Starter")


def validate_flags(flags: SupervisorFlags) -> None:
    if not isinstance(flags.strategy, Strategy):
        raise InvalidSpec(f"strategy {flags.strategy!r} is not a Strategy")
    if isinstance(flags.intensity, bool) or not isinstance(flags.intensity, int) or flags.intensity < 0:
        raise InvalidSpec(f"intensity {flags.intensity!r} must be an int >= 0")
    if not isinstance(flags.period_s, int | float) or not (0 < flags.period_s < math.inf):
        raise InvalidSpec(f"period_s {flags.period_s!r} must be a positive finite number")
    if not isinstance(flags.auto_shutdown, AutoShutdown):
        raise InvalidSpec(f"auto_shutdown {flags.auto_shutdown!r} is not an AutoShutdown")
    if flags.max_children is not None and (
        isinstance(flags.max_children, bool) or not isinstance(flags.max_children, int) or flags.max_children < 1
    ):
        raise InvalidSpec(f"max_children {flags.max_children!r} must be None or an int >= 1")
