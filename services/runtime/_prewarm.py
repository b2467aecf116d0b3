"""Work a zygote does once so that every forked worker skips it.

Only caches that survive fork and hold no live resource: compiled regular expressions,
first-use initialisation inside OpenTelemetry, sqlite3 and asyncio. Nothing here may create a
gRPC object, start a thread, or leave a file descriptor open.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3

from opentelemetry.sdk.trace import TracerProvider

from services.runtime._logging import JsonFormatter
from services.runtime._tracing import _resource


def prewarm() -> None:
    # A provider that is never installed globally and has no processor (so no thread).
    TracerProvider(resource=_resource("prewarm"), shutdown_on_exit=False).get_tracer("prewarm")
    JsonFormatter("prewarm").format(logging.LogRecord("prewarm", logging.INFO, __file__, 0, "x", None, None))
    with sqlite3.connect(":memory:") as db:
        db.execute("PRAGMA journal_mode=WAL").fetchall()
    db.close()
    loop = asyncio.new_event_loop()
    loop.close()
    signal.Signals(signal.SIGTERM)
