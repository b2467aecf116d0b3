"""A free TCP port on the loopback interface, for a test's server (the one definition tests use;
production has its own, ``l2node.node.l1.free_loopback_port``)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it; another process could still take it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
