"""Free TCP ports on the loopback interface, for tests' servers (the one definition tests use;
production has its own, ``l2node.node.l1.free_loopback_port``).

Ports are drawn at random from below the kernel's ephemeral range, not asked of the OS with port 0.
A port the OS hands out is an ephemeral one, and between the test choosing it and its server
binding it the kernel may give the same port to any outgoing connection or any other port-0 bind
(the tree's own anvil, a gRPC client's socket): that race failed a clean-clone CI run. Below the
ephemeral range the kernel assigns nothing by itself, so only another explicit bind can collide.

Under pytest-xdist (`make test`) each worker draws from a slice of the range of its own: the bind
check cannot see a port another worker has chosen but not bound yet (a tree binds its base port
and its workers' seconds after the choice), so two workers must never draw the same one."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterable

_LOW, _HIGH = 20000, 32000  # under Linux's default ip_local_port_range (32768-60999)
_rng = random.SystemRandom()


def _share() -> range:
    """The ports this process draws from: all of [_LOW, _HIGH), or its xdist worker's slice of it
    (a worker's subprocesses inherit its PYTEST_XDIST_WORKER, and so its slice)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(count) > 0):
        return range(_LOW, _HIGH)
    width = (_HIGH - _LOW) // int(count)
    low = _LOW + int(worker[2:]) % int(count) * width  # a restarted worker's gwN may exceed the count
    return range(low, low + width)


def free_port() -> int:
    """A port nothing listens on right now, outside the range the kernel assigns by itself."""
    return free_base_port(1)


def free_base_port(span: int = 8) -> int:
    """A base port with `span` free ports after it (a tree's control plane and its workers)."""
    return free_port_with(range(span))


def free_port_with(offsets: Iterable[int]) -> int:
    """A port ``p`` such that ``p + o`` is free for every offset (e.g. aiomonitor's three ports)."""
    wanted = tuple(offsets)
    reach = max(wanted)
    share = _share()
    for _ in range(200):
        base = _rng.randrange(share.start, share.stop - reach)
        if all(_bindable(base + o) for o in wanted):
            return base
    raise RuntimeError(f"no port in [{share.start}, {share.stop}) with offsets {wanted} all free")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
