"""aiomonitor for a worker, on 127.0.0.1 only: its web UI cancels tasks and its console runs code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator, Mapping
from typing import Any, Final

from services.runtime._config import MonitorPorts

#: The only address the monitor ever binds; there is deliberately no option to change it.
MONITOR_HOST: Final = "127.0.0.1"

_log = logging.getLogger("l2node.runtime.monitor")


@contextlib.contextmanager
def monitor(ports: MonitorPorts | None, *, console: bool, local_vars: Mapping[str, Any]) -> Iterator[None]:
    """Run aiomonitor on the current loop for the duration of the block; no-op when ``ports``
    is None. A monitor that cannot start is logged and skipped: it must never stop a worker."""
    mon = _start(ports, console=console, local_vars=local_vars) if ports is not None else None
    try:
        yield
    finally:
        if mon is not None:
            mon.close()


def _start(ports: MonitorPorts, *, console: bool, local_vars: Mapping[str, Any]) -> Any:
    try:
        # aiomonitor binds in its own thread and start() waits for it without a timeout, so a
        # port in use would hang the worker; find out first.
        for port in (ports.termui, ports.webui):
            _check_free(port)
        import aiomonitor  # ~0.2 s; only workers that want it pay (the zygote preloads it)

        mon = aiomonitor.Monitor(
            asyncio.get_running_loop(),
            host=MONITOR_HOST,
            termui_port=ports.termui,
            webui_port=ports.webui,
            console_port=ports.console,
            console_enabled=console,
            locals={"__name__": "__console__", **local_vars},
        )
        mon.start()
    except Exception:
        _log.exception("aiomonitor did not start; running without it", extra={"monitor_ports": str(ports)})
        return None
    _log.info("aiomonitor started", extra={"host": MONITOR_HOST, "termui_port": ports.termui})
    return mon


def _check_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((MONITOR_HOST, port))
