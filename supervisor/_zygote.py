"""The zygote process: imports the heavy modules once, then forks a fresh child per request.

Run as ``python -m supervisor._zygote`` by the supervisor (see ``_zygote_client``). It must
never create a gRPC object: forking a process that holds live gRPC channels or servers hangs
or crashes the child. Each forked child initialises its own gRPC, telemetry and storage.

Protocol: one JSON object per line on the control socket, one reply line per request.
    {"op": "ping"}                         -> {"ok": true, "pid": N}
    {"op": "spawn", "spec": {...}}         -> {"ok": true, "pid": N} | {"ok": false, "error": "..."}
spawn spec: {"id", "kind": "python"|"exec", "target": "module:function", "payload": {...},
             "argv": [...], "env": {...}, "cwd": str|null, "output": path|null}
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any, NoReturn

from supervisor._orphans import die_with_parent, wait_adopted, watch_parent_pipe


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _become_child(spec: dict[str, Any], control: socket.socket, watch_fd: int, supervisor_pid: int) -> NoReturn:
    """Runs in the grandchild: detach, tie our life to the supervisor's, become the child."""
    code = 70
    try:
        control.close()
        os.setsid()  # the terminal's Ctrl-C goes to the supervisor, which stops us in order
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
        os.environ.clear()
        os.environ.update(env)
        os.set_inheritable(watch_fd, False)
        # Off the critical path: the watcher thread waits for the re-parenting, asks for the
        # parent-death signal (which the kernel then sends to the whole process), and watches
        # the pipe, while this thread goes on starting the worker.
        watch_parent_pipe(watch_fd, supervisor_pid)
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


def _spawn(spec: dict[str, Any], control: socket.socket, watch_fd: int, supervisor_pid: int) -> int:
    """Double fork, so that the child is re-parented to the subreaper supervisor."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(r)
        try:
            child = os.fork()
            if child == 0:
                os.close(w)
                _become_child(spec, control, watch_fd, supervisor_pid)
            os.write(w, str(child).encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        raw = os.read(r, 64)  # one write of a few digits is atomic: no need to wait for EOF
    finally:
        os.close(r)
    # No waitpid: SIGCHLD is ignored in the zygote, so the kernel reaps `middle` itself, and we
    # reply without waiting for a process of this size to tear down.
    if not raw:
        raise OSError("fork failed in the intermediate process")
    return int(raw)


def serve(control_fd: int, watch_fd: int, supervisor_pid: int, preload: list[str]) -> int:
    die_with_parent(supervisor_pid, signal.SIGKILL)
    # The supervisor stops us with SIGTERM when it is ready to; Ctrl-C is its business.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    for module in preload:
        importlib.import_module(module)
    control = socket.socket(fileno=control_fd)
    rfile = control.makefile("rb")
    for line in rfile:
        try:
            req = json.loads(line)
            if req.get("op") == "ping":
                reply: dict[str, Any] = {"ok": True, "pid": os.getpid()}
            elif req.get("op") == "spawn":
                reply = {"ok": True, "pid": _spawn(req["spec"], control, watch_fd, supervisor_pid)}
            else:
                reply = {"ok": False, "error": f"unknown op {req.get('op')!r}"}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        control.sendall(json.dumps(reply).encode() + b"\n")
    return 0  # the supervisor closed the socket


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m supervisor._zygote")
    ap.add_argument("--control-fd", type=int, required=True)
    ap.add_argument("--watch-fd", type=int, required=True)
    ap.add_argument("--supervisor-pid", type=int, required=True)
    ap.add_argument("--preload", default="", help="comma-separated modules to import once")
    args = ap.parse_args()
    preload = [m for m in args.preload.split(",") if m]
    return serve(args.control_fd, args.watch_fd, args.supervisor_pid, preload)


if __name__ == "__main__":
    sys.exit(main())
