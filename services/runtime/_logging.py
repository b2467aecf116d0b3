"""JSON lines on stderr: one object per record, with the active span's ids for correlation."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Final

from opentelemetry import trace

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged.
_STANDARD: Final = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "service", "pid", "logger", "message", "trace_id", "span_id", ...extra}``;
    pid tells a restarted worker's lines from its predecessor's."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
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
        return json.dumps(entry, default=str, ensure_ascii=False)


def init_logging(service: str, level: int) -> None:
    """Replace whatever handlers the process inherited (the zygote's) with one JSON handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)


def _iso_utc(created: float) -> str:
    seconds = int(created)
    micros = int((created - seconds) * 1e6)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"
