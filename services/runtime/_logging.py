"""Logs: one JSON object per record (with the active span's ids), on stderr and in a size-capped
file per process; readable lines instead of JSON on stderr when it is a terminal.

    DATA_DIR/logs/<service>.log     JSON lines, rotated at LOG_FILE_BYTES (`l2node logs` reads them)

``l2node up`` names the directory in ``$L2NODE_LOG_DIR`` (:data:`LOG_DIR_ENV`), which every
process of the tree inherits. Every line goes through :func:`services.runtime.redact`: a
provider URL's key never reaches a log.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import pathlib
import sys
import time
from collections.abc import Mapping
from typing import Any, Final, TextIO

from opentelemetry import trace

from services.runtime._redact import redact
from supervisor import Event, EventType

#: The directory of the per-process log files; unset: stderr only.
LOG_DIR_ENV: Final = "L2NODE_LOG_DIR"
#: A log file is rotated at this size, keeping LOG_FILE_BACKUPS older ones (<service>.log.1 ...).
LOG_FILE_BYTES: Final = 10 * 1024 * 1024
LOG_FILE_BACKUPS: Final = 3

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "service", "pid", "logger", "message", "trace_id", "span_id", ...extra}``;
    pid tells a restarted worker's lines from its predecessor's."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        return redact(json.dumps(self.entry(record), default=str, ensure_ascii=False))

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname,
            "service": self._service,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Formatting runs in the thread that logged, inside the caller's context (every logger:
        # one handler on the root; asyncio.to_thread copies the context to its thread, a bare
        # executor's run_in_executor does not, so code that logs on a thread uses to_thread), so the
        # current span is the one the record belongs to. Ids of a trace nobody records (a
        # ``quiet`` poll) would lead nowhere.
        span = trace.get_current_span().get_span_context()
        if span.is_valid and span.trace_flags.sampled:
            entry["trace_id"] = trace.format_trace_id(span.trace_id)
            entry["span_id"] = trace.format_span_id(span.span_id)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return entry


class ConsoleFormatter(JsonFormatter):
    """What a person reads in a terminal: ``12:00:01.123 WARNING sequencer  message  key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(console_line(self.entry(record)))


_CONSOLE_FIXED: Final = frozenset({"ts", "level", "service", "pid", "logger", "message", "exception", "stack"})


def console_line(entry: Mapping[str, Any]) -> str:
    """One JSON log entry as a readable line (``l2node logs`` shows files this way on a terminal)."""
    ts = str(entry.get("ts", ""))
    clock = ts[11:23] if len(ts) >= 23 else ts
    extras = " ".join(f"{k}={_short(v)}" for k, v in entry.items() if k not in _CONSOLE_FIXED and v is not None)
    line = f"{clock} {entry.get('level', ''):<7} {entry.get('service', '')}[{entry.get('pid', '')}]  " \
           f"{entry.get('message', '')}" + (f"  {extras}" if extras else "")
    for key in ("exception", "stack"):
        if entry.get(key):
            line += "\n" + str(entry[key])
    return line


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if " " not in text or text.startswith(("{", "[")) else json.dumps(text, ensure_ascii=False)


def init_logging(service: str, level: int, stream: TextIO | None = None) -> None:
    """Replace whatever handlers the process inherited (the zygote's) with ours: ``stream``
    (stderr) readable if it is a terminal, JSON otherwise; and the JSON file under $L2NODE_LOG_DIR."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(ConsoleFormatter(service) if _is_terminal(out) else JsonFormatter(service))
    handlers: list[logging.Handler] = [handler]
    log_dir = os.environ.get(LOG_DIR_ENV)
    if log_dir:
        handlers.append(_file_handler(pathlib.Path(log_dir), service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, logging.FileHandler):
            old.close()  # the zygote's file, inherited by a fork: this process has its own
    for new in handlers:
        root.addHandler(new)
    root.setLevel(level)
    logging.captureWarnings(True)


def log_file(log_dir: pathlib.Path, service: str) -> pathlib.Path:
    """The JSON log file of one process of the tree (nested ids "core/x" become "core.x")."""
    return log_dir / f"{service.replace('/', '.')}.log"


def _file_handler(log_dir: pathlib.Path, service: str) -> logging.Handler:
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        log_file(log_dir, service), maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8")
    handler.setFormatter(JsonFormatter(service))
    return handler


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def event_level(event: Event) -> int:
    """How loud a supervisor event is: a crash is a WARNING, giving up an ERROR, the rest INFO."""
    if event.type in (EventType.ESCALATED, EventType.START_FAILED):
        return logging.ERROR
    if event.type == EventType.PROBE_FAILED or (event.type == EventType.EXITED and not event.normal):
        return logging.WARNING
    return logging.INFO


def log_event(logger: logging.Logger, event: Event, min_level: int = logging.NOTSET) -> None:
    """One supervisor event as one log line, at :func:`event_level`; none below ``min_level``."""
    level = event_level(event)
    if level < min_level:
        return
    logger.log(level, event.type.value, extra={
        "child": event.child_id, "child_pid": event.pid, "reason": event.reason, "normal": event.normal})


def _iso_utc(created: float) -> str:
    seconds = int(created)
    micros = int((created - seconds) * 1e6)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"
