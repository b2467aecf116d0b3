"""Restart latency: SIGKILL a live worker, time kill -> health SERVING from the new process.

    python bench/restart_latency.py [--kills 60]

(a) l2node: `l2node up` runs the worker; its supervisor notices the exit and has the
    zygote fork a replacement.
(b) baseline: this script re-spawns the same worker with subprocess.Popen the moment
    waitpid returns: no detection delay at all, so the baseline is, if anything, flattered.

Both are measured by the same client, in the same run (see wait_new): poll the worker's port,
then Health.Watch until SERVING, and WorkerService.GetWorkerStatus to see the new pid. This machine
is shared and noisy, so compare the two columns, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from l2node.node.l1 import free_loopback_port  # noqa: E402
from protos.l2node.worker.v1 import worker_pb2, worker_pb2_grpc  # noqa: E402

DEFINITION = "bench.workers:IDLE"


def wait_new(address: str, old: int | None, timeout: float = 30.0) -> int:
    """Block until a process other than ``old`` answers SERVING at ``address``; return its pid.

    Poll the port with bare TCP connects (a gRPC channel that failed to connect backs off
    ~100 ms), then watch health with a Health.Watch stream, which reports SERVING the moment
    it is set, and ask WorkerService for the pid, so an answer from the old process never counts.
    """
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
        except OSError:
            time.sleep(0.0005)
            continue
        with grpc.insecure_channel(address) as ch:
            try:
                watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(),
                                                             timeout=max(0.1, deadline - time.monotonic()))
                for reply in watch:
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        watch.cancel()
                        break
                st = worker_pb2_grpc.WorkerServiceStub(ch).GetWorkerStatus(worker_pb2.GetWorkerStatusRequest(),
                                                                           timeout=1)
            except grpc.RpcError:
                continue
        if st.pid != old:
            return int(st.pid)
    raise TimeoutError(f"no new SERVING process at {address}")


def bench_l2node(kills: int, tmp: pathlib.Path) -> list[float]:
    base = free_loopback_port()
    cfg = tmp / "bench.toml"
    cfg.write_text(f'[node]\nbase_port = {base}\nintensity = 1000\nperiod_s = 1.0\n'
                   f'[workers.sequencer]\nenabled = false\n[workers.idle]\ndefinition = "{DEFINITION}"\n')
    log = open(tmp / "up.log", "w")  # noqa: SIM115
    up = subprocess.Popen([sys.executable, "-m", "l2node.cli", "up", "--data-dir", str(tmp / "data"),
                           "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                          start_new_session=True)
    address = f"127.0.0.1:{base + 1}"
    try:
        pid = wait_new(address, None, 120)
        out = []
        for _ in range(kills):
            time.sleep(0.05)  # let the new worker settle, as a real crash would find it
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            pid = wait_new(address, pid)
            out.append(time.perf_counter() - t0)
        return out
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(60)
        log.close()


def bench_respawn(kills: int, tmp: pathlib.Path) -> list[float]:
    address = f"127.0.0.1:{free_loopback_port()}"
    config = json.dumps({"service": "idle", "address": address, "data_dir": str(tmp / "respawn")})
    argv = [sys.executable, "-m", "services.runtime", DEFINITION, "--config-json", config]

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.DEVNULL)

    proc = spawn()
    try:
        wait_new(address, None, 60)
        out = []
        for _ in range(kills):
            time.sleep(0.05)
            t0 = time.perf_counter()
            old = proc.pid
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = spawn()
            wait_new(address, old)
            out.append(time.perf_counter() - t0)
        return out
    finally:
        proc.kill()
        proc.wait()


def summary(xs: list[float]) -> dict[str, float]:
    s = sorted(x * 1000 for x in xs)
    q = statistics.quantiles(s, n=100, method="inclusive")
    return {"min": s[0], "p50": statistics.median(s), "p90": q[89], "p99": q[98], "max": s[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=60)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="l2bench-") as d:
        tmp = pathlib.Path(d)
        ours = summary(bench_l2node(args.kills, tmp))
        base = summary(bench_respawn(args.kills, tmp))
    cmd = "python bench/restart_latency.py" + (f" --kills {args.kills}" if args.kills != 60 else "")
    print(f"# restart latency, kill -9 -> SERVING from the new process ({args.kills} kills each)")
    print(f"# command: {cmd}   ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)")
    print("| ms | min | p50 | p90 | p99 | max |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, s in (("l2node (zygote fork)", ours), ("plain re-spawn (Popen)", base)):
        print(f"| {name} | " + " | ".join(f"{s[k]:.1f}" for k in ("min", "p50", "p90", "p99", "max")) + " |")
    print(f"ratio re-spawn / l2node: p50 {base['p50'] / ours['p50']:.1f}x, p99 {base['p99'] / ours['p99']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
