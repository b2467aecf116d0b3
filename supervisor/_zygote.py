"""The zygote process: imports the heavy modules once, then forks a fresh child per request.

Run as ``python -m supervisor._zygote`` by the supervisor (see ``_zygote_client``). It must
never create a gRPC object: forking a process that holds live gRPC channels or servers hangs
or crashes the child. Each forked child initialises its own gRPC, telemetry and storage.

Protocol: one JSON object per line on the control socket, one reply line per request.
    {"op": "ping"}                         -> {"ok": true, "pid": N}
    {"op": "spawn", "spec": {...}}         -> {"ok": true, "pid": N} | {"ok": false, "error": "..."}
    {"op": "settled"}                      -> (no reply) the child last spawned is up (or failed)

A spawn hands the spec to a pre-forked process of the warm pool (see _Warm), so that it costs
a pipe write instead of two forks. A warm process first copies the pages earlier workers' starts
wrote (_warm_pages), then calls the ``--warm`` functions ("module:function"): the first work after
a fork that every child would do on its way to ready (gRPC's start, say), done while it waits for
its orders instead. The pool is refilled once the child just spawned is up (the supervisor's
"settled", at the latest SETTLE_AFTER_S after the spawn), not at the spawn: the two forks of a
process the zygote's size and the middle one's exit (~5-7 ms of CPU in the kernel) and the new
process's warm work (~25 ms) competed with that child's start on a small machine. SCHED_IDLE did
not keep the warm process out of its way: its own session (setsid) is its own autogroup where the
kernel groups by session, and an idle task alone in its group weighs as much as any other group (2
cores at load 8: a sequencer restart's spawn -> SERVING p50 58 ms with the refill at the spawn, 29
ms after it; bench/RESULTS.md, session 18).
spawn spec: {"id", "kind": "python"|"exec", "target": "module:function", "payload": {...},
             "argv": [...], "env": {...}, "cwd": str|null, "output": path|null}
"""

from __future__ import annotations

import argparse
import collections
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from supervisor import _warm_pages
from supervisor._orphans import die_with_parent, wait_adopted, watch_parent_pipe
from supervisor._proctitle import set_process_title


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _become_child(spec: dict[str, Any], watch_fd: int, supervisor_pid: int, title: str, pages: int | None
                  ) -> NoReturn:
    """Runs in a detached grandchild once it has its orders: become the child and never return."""
    code = 70
    try:
        kind = spec.get("kind", "python")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # Python ignores SIGPIPE (a closed pipe is an exception); programs we exec expect the default.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL if kind == "exec" else signal.SIG_IGN)
        if spec.get("cwd"):
            os.chdir(spec["cwd"])
        env = {**os.environ, **{str(k): str(v) for k, v in (spec.get("env") or {}).items()}}
        if spec.get("output"):
            fd = os.open(spec["output"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        if kind == "exec":
            # A program we exec cannot watch the pipe: the kernel's signal has to do.
            if wait_adopted(supervisor_pid):
                die_with_parent(supervisor_pid, signal.SIGKILL)
            os.set_inheritable(watch_fd, False)
            argv = [str(a) for a in spec["argv"]]
            os.execvpe(argv[0], argv, env)
        if title:
            set_process_title(f"{title}: {spec.get('id', '?')}")
        os.environ.clear()
        os.environ.update(env)
        os.set_inheritable(watch_fd, False)
        _warm_pages.become(pages, str(spec.get("id", "?")))
        entry = _resolve(spec["target"])
        result = entry(spec.get("payload") or {})
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 70
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


#: How often a waiting warm process looks for pages recorded since it last did.
_WARM_POLL_S = 0.5

#: Seconds after a spawn when the pool is refilled if the supervisor has not said by then that the
#: spawned child settled.
SETTLE_AFTER_S = 1.0


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


class _Warm:
    """A pre-forked, already adopted process waiting for its spec: a spawn costs no fork.

    Forking this process twice (a double fork, so that the child is re-parented to the
    subreaper supervisor) takes ~5 ms, a sixth of a restart; the pool takes it off the
    critical path (Android's USAP pool does the same for apps).
    """

    def __init__(self, pid: int, orders_fd: int) -> None:
        self.pid = pid
        self.orders_fd = orders_fd

    @classmethod
    def fork(cls, control: socket.socket, watch_fd: int, supervisor_pid: int, title: str, pages: int | None,
             warm: Sequence[str] = ()) -> _Warm:
        orders_r, orders_w = os.pipe()
        pid_r, pid_w = os.pipe()
        middle = os.fork()
        if middle == 0:
            os.close(orders_w)
            os.close(pid_r)
            try:
                child = os.fork()
                if child == 0:
                    os.close(pid_w)
                    control.close()
                    os.setsid()  # the terminal's Ctrl-C goes to the supervisor, which stops us in order
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    # Before the orders, off the child's start (a thread's start waits for it to run):
                    # the watcher thread waits for the re-parenting, asks for the parent-death signal
                    # (which the kernel then sends to the whole process), and watches the pipe.
                    watch_parent_pipe(watch_fd, supervisor_pid)
                    # While it waits: the pages workers' starts wrote, copied now (see _warm_pages).
                    def ordered(timeout: float = 0.0) -> bool:
                        return bool(select.select([orders_r], [], [], timeout)[0])

                    def populate(done: int | None) -> int | None:
                        # Best effort, tried no more once it failed: an exception here would end this
                        # process, code 0, in the middle's finally below, before its orders (a child
                        # "exited with code 0 before it was ready").
                        try:
                            return None if done is None else _warm_pages.populate(pages, done, ordered)
                        except Exception:
                            traceback.print_exc()
                            return None

                    done = populate(0)
                    # After the pages (which a busy machine may leave this process no time for: they
                    # are what a worker misses most; the hooks' work it would do itself).
                    for name in warm:
                        try:
                            _resolve(name)()
                        except Exception:  # the child will do it itself
                            traceback.print_exc()
                    while not ordered(_WARM_POLL_S):
                        done = populate(done)
                    orders = _read_all(orders_r)
                    if not orders:
                        os._exit(0)  # the zygote went away without using us
                    os.close(orders_r)
                    _become_child(json.loads(orders), watch_fd, supervisor_pid, title, pages)
                os.write(pid_w, str(child).encode())
            finally:
                os._exit(0)
        os.close(orders_r)
        os.close(pid_w)
        try:
            raw = os.read(pid_r, 64)  # one write of a few digits is atomic: no need to wait for EOF
        finally:
            os.close(pid_r)
        # No waitpid: SIGCHLD is ignored in the zygote, so the kernel reaps `middle` itself.
        if not raw:
            os.close(orders_w)
            raise OSError("fork failed in the intermediate process")
        return cls(int(raw), orders_w)

    def start(self, spec: dict[str, Any]) -> int:
        try:
            os.write(self.orders_fd, json.dumps(spec).encode())
        finally:
            os.close(self.orders_fd)
        return self.pid


def serve(control_fd: int, watch_fd: int, supervisor_pid: int, preload: list[str], pool: int,
          title: str = "", warm: Sequence[str] = ()) -> int:
    die_with_parent(supervisor_pid, signal.SIGKILL)
    if title:
        set_process_title(f"{title}: zygote")
    # The supervisor stops us with SIGTERM when it is ready to; Ctrl-C is its business.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for name in preload:
        if ":" in name:
            _resolve(name)()  # a warm-up function: first-use work every fork would repeat
        else:
            importlib.import_module(name)
    # Everything imported so far lives as long as the process: keep the collector from ever
    # walking it, in here or in a fork, where each walk would dirty (copy) shared pages.
    gc.collect()
    gc.freeze()
    control = socket.socket(fileno=control_fd)
    pages = _warm_pages.create_log()
    waiting: collections.deque[_Warm] = collections.deque()

    def refill() -> None:
        while len(waiting) < pool:
            waiting.append(_Warm.fork(control, watch_fd, supervisor_pid, title, pages, warm))

    refill()
    lines = _Lines(control)
    due: float | None = None  # when the pool is refilled at the latest (a spawned child not settled)
    while (line := lines.next(None if due is None else max(0.0, due - time.monotonic()))) != b"":
        req: Any = None
        reply: dict[str, Any]
        notice = line is None  # the deadline passed, or the supervisor's "settled": no reply
        try:
            req = None if line is None else json.loads(line)
            notice = notice or req.get("op") == "settled"
            if notice:
                reply = {}
            elif req.get("op") == "ping":
                reply = {"ok": True, "pid": os.getpid()}
            elif req.get("op") == "spawn":
                proc = (waiting.popleft() if waiting
                        else _Warm.fork(control, watch_fd, supervisor_pid, title, pages, warm))
                reply = {"ok": True, "pid": proc.start(req["spec"])}
            else:
                reply = {"ok": False, "error": f"unknown op {req.get('op')!r}"}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if notice:
            refill()  # the child spawned last is up: the next spawn finds a warm process again
            due = None
            continue
        reply["id"] = req.get("id") if isinstance(req, dict) else None
        control.sendall(json.dumps(reply).encode() + b"\n")
        if len(waiting) < pool and due is None:
            due = time.monotonic() + SETTLE_AFTER_S
    return 0  # the supervisor closed the socket


class _Lines:
    """The control socket's lines, each waited for with a timeout."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def next(self, timeout: float | None) -> bytes | None:
        """The next line, newline included; None if none came within ``timeout`` seconds; b"" once
        the peer closed."""
        while b"\n" not in self._buffer:
            if not select.select([self._sock], [], [], timeout)[0]:
                return None
            chunk = self._sock.recv(65536)
            if not chunk:
                return b""
            self._buffer += chunk
        line, newline, self._buffer = self._buffer.partition(b"\n")
        return line + newline


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m supervisor._zygote")
    ap.add_argument("--control-fd", type=int, required=True)
    ap.add_argument("--watch-fd", type=int, required=True)
    ap.add_argument("--supervisor-pid", type=int, required=True)
    ap.add_argument("--preload", default="", help="comma-separated modules to import once")
    ap.add_argument("--pool", type=int, default=1, help="pre-forked processes kept waiting")
    ap.add_argument("--title", default="", help="process titles: TITLE: zygote, TITLE: ID for each child")
    ap.add_argument("--warm", default="", help="comma-separated module:function called in each warm process")
    args = ap.parse_args()
    preload = [m for m in args.preload.split(",") if m]
    warm = [m for m in args.warm.split(",") if m]
    return serve(args.control_fd, args.watch_fd, args.supervisor_pid, preload, args.pool, args.title, warm)


if __name__ == "__main__":
    sys.exit(main())
