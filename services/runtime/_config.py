"""What one worker process is told at start: a frozen, JSON-able record.

The same mapping arrives through ``--config-json`` (Kubernetes, tests) and through the zygote's
payload (the local tree), so a worker cannot tell, and need not care, how it was started.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Final, TypeVar

_S = TypeVar("_S")

# -- aiomonitor ports: the one place that says where a worker's monitor listens --------------

#: Worker ``index`` gets its terminal UI on ``monitor base + index``.
DEFAULT_MONITOR_BASE: Final = 20100
#: The web UI and the Python console of the same worker sit at fixed offsets above the
#: terminal UI port; 100 apart so that the three port ranges of a tree of up to 100 workers
#: never overlap.
MONITOR_WEBUI_OFFSET: Final = 100
MONITOR_CONSOLE_OFFSET: Final = 200
MAX_MONITORED_WORKERS: Final = MONITOR_WEBUI_OFFSET


def monitor_port_for(index: int, base: int = DEFAULT_MONITOR_BASE) -> int:
    """The ``monitor_port`` a supervisor gives worker ``index`` when monitoring is on."""
    if not 0 <= index < MAX_MONITORED_WORKERS:
        raise ValueError(f"worker index {index} outside 0..{MAX_MONITORED_WORKERS - 1} for aiomonitor")
    return base + index


@dataclass(frozen=True, slots=True)
class MonitorPorts:
    """All loopback ports of one worker's aiomonitor, derived from its ``monitor_port``."""

    termui: int
    webui: int
    console: int

    @classmethod
    def from_monitor_port(cls, port: int) -> MonitorPorts:
        return cls(port, port + MONITOR_WEBUI_OFFSET, port + MONITOR_CONSOLE_OFFSET)


# -- the config record ------------------------------------------------------------------------

#: Service names become file names (``<service>.db``) and span ``service.name``; the same
#: alphabet as supervisor child ids, which they usually are.
_SERVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ADDRESS = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")
_LOG_LEVELS: Final = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker needs to know about itself; OpenTelemetry reads the standard
    ``OTEL_*`` environment instead (``OTEL_EXPORTER_OTLP_ENDPOINT`` turns export on)."""

    #: Names the process everywhere: ``service.name`` of its spans, ``service`` of its log
    #: lines, its database file ``<data_dir>/<service>.db``. ``[A-Za-z0-9_.-]``, 1-64.
    service: str
    #: ``host:port`` the gRPC server listens on; port 0 picks a free one (logged at start).
    address: str
    #: Directory for the worker's SQLite database; created if missing.
    data_dir: Path
    #: Position of the worker in its tree; used only to derive per-worker ports.
    index: int = 0
    #: aiomonitor terminal UI port on 127.0.0.1 (see :func:`monitor_port_for`); 0 = off.
    monitor_port: int = 0
    #: Also open aiomonitor's Python console (it runs arbitrary code); only with monitor_port.
    monitor_console: bool = False
    #: After SIGTERM, seconds to keep serving with health NOT_SERVING, so that balancers and
    #: clients that watch health move away before the server stops taking calls.
    drain_s: float = 0.5
    #: Then ``server.stop(grace_s)``: seconds in-flight calls get to finish before cancellation.
    grace_s: float = 2.0
    #: Free-form, JSON-able settings for the service itself; the runtime never reads them.
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    #: Threshold of the JSON logs on stderr: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not isinstance(self.service, str) or not _SERVICE.match(self.service):
            raise ValueError(f"service {self.service!r} must match {_SERVICE.pattern}")
        self._split_address()
        if not isinstance(self.data_dir, Path):
            object.__setattr__(self, "data_dir", Path(self.data_dir))
        _check_int("index", self.index, 0, 65535)
        _check_int("monitor_port", self.monitor_port, 0, 65535)
        if self.monitor_port and self.monitor_port + MONITOR_CONSOLE_OFFSET > 65535:
            raise ValueError(f"monitor_port {self.monitor_port} leaves no room for webui/console ports")
        _check_seconds("drain_s", self.drain_s)
        _check_seconds("grace_s", self.grace_s)
        if not isinstance(self.settings, Mapping):
            raise ValueError(f"settings must be a mapping, not {type(self.settings).__name__}")
        if self.log_level not in _LOG_LEVELS:
            raise ValueError(f"log_level {self.log_level!r} must be one of {sorted(_LOG_LEVELS)}")

    @property
    def host(self) -> str:
        return self._split_address()[0]

    @property
    def port(self) -> int:
        return self._split_address()[1]

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]

    @property
    def database_path(self) -> Path:
        return self.data_dir / f"{self.service}.db"

    @property
    def monitor_ports(self) -> MonitorPorts | None:
        return MonitorPorts.from_monitor_port(self.monitor_port) if self.monitor_port else None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> WorkerConfig:
        """Build from a JSON-decoded mapping; unknown keys are an error (they are typos)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown worker config keys {unknown}; known: {sorted(known)}")
        return cls(**data)

    def to_mapping(self) -> dict[str, Any]:
        """The JSON-able inverse of :meth:`from_mapping`."""
        out = asdict(self)
        out["data_dir"] = str(self.data_dir)
        out["settings"] = dict(self.settings)
        return out

    def _split_address(self) -> tuple[str, int]:
        m = _ADDRESS.match(self.address) if isinstance(self.address, str) else None
        if m is None or int(m["port"]) > 65535:
            raise ValueError(f"address {self.address!r} must be host:port")
        return m["host"], int(m["port"])


def settings_from(cls: type[_S], data: Mapping[str, Any], what: str) -> _S:
    """A settings dataclass from a config table: every key must name a field (a typo is refused
    with the key, not silently ignored); the dataclass's own checks do the rest."""
    unknown = set(data) - {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if unknown:
        raise ValueError(f"unknown {what} settings: {sorted(unknown)}")
    return cls(**data)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, which taskset or a container's cpuset
    narrow): the default of every thread-count setting."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_threads(name: str, value: object) -> None:
    """A thread-count setting: a whole number of threads, at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} {value!r} must be a whole number of threads >= 1")


def check_nice(name: str, value: object) -> None:
    """A niceness increment setting: a whole number in 0..19 (``nice``'s range upward)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 19:
        raise ValueError(f"{name} {value!r} must be a whole number in 0..19")


def _check_int(name: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{name} {value!r} must be an int in {lo}..{hi}")


def _check_seconds(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"{name} {value!r} must be a finite number of seconds >= 0")
