"""What one JSON-RPC read costs the worker's process, layer by layer, without the rest of a tree.

    .venv/bin/python bench/jsonrpc_layers.py [--seconds 5] [--connections 32] [--rounds 2]

services/jsonrpc's Server (its HTTP/1.1 protocol, dispatch, metrics, span) in this process,
answering eth_blockNumber from a one-method table (a constant: the method's own cost left out);
keep-alive load from a child process. Each round runs the server with the tracer a worker has
(``init_tracing``: the SDK, no exporter unless OTEL_EXPORTER_OTLP_ENDPOINT is set) recording every
read (``read_trace_ratio`` 1), then as a worker does by default (reads recorded 1 in 100: the rest
get an unrecorded span with ids), then with OpenTelemetry's no-op tracer: the differences are what
the per-call span costs.
Prints this process's CPU per request for each (the loader's is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import pathlib
import shlex
import sys
import time
from typing import Any

from opentelemetry import trace

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.jsonrpc._server import Server  # noqa: E402
from services.jsonrpc._settings import JsonRpcSettings  # noqa: E402
from services.runtime._tracing import init_tracing  # noqa: E402
from tests.ports import free_port  # noqa: E402

BODY = b'{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}'
REQUEST = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
           % (len(BODY), BODY))


def load(port: int, seconds: float, connections: int, out: Any) -> None:
    """Keep-alive requests, one in flight per connection, until ``seconds`` pass; sends the count."""
    async def one(stop: float) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while time.monotonic() < stop:
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            n += 1
        writer.close()
        return n

    async def main() -> int:
        stop = time.monotonic() + seconds
        return sum(await asyncio.gather(*(one(stop) for _ in range(connections))))

    out.send(asyncio.run(main()))


class OneMethod:
    """The one part of ``Methods`` the Server's read path touches: its table."""

    def __init__(self) -> None:
        async def block_number(params: Any) -> str:
            return "0x2a"

        self.table = {"eth_blockNumber": block_number}


async def measure(tracer: trace.Tracer, ratio: float, seconds: float, connections: int) -> tuple[int, float]:
    port = free_port()
    settings = JsonRpcSettings(port=port, read_trace_ratio=ratio)
    server = Server(settings, OneMethod(), tracer, logging.getLogger("bench"))  # type: ignore[arg-type]
    await server.start()
    spawn = multiprocessing.get_context("spawn")  # a fork would inherit grpc's and OTel's threads' locks
    parent, child = spawn.Pipe()
    loader = spawn.Process(target=load, args=(port, seconds, connections, child))
    cpu = time.process_time()
    loader.start()
    count: int = await asyncio.to_thread(parent.recv)
    cpu = time.process_time() - cpu
    loader.join()
    await server.stop()
    return count, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("command:", shlex.join([".venv/bin/python", "bench/jsonrpc_layers.py", *sys.argv[1:]]))
    print(f"load average before: {os.getloadavg()}  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    sdk = init_tracing("jsonrpc").tracer
    default = JsonRpcSettings().read_trace_ratio
    tracers = {"SDK, every read recorded": (sdk, 1.0), f"SDK, read_trace_ratio {default} (the default)": (sdk, default),
               "no-op tracer": (trace.NoOpTracer(), 1.0)}
    print("| tracer | requests | req/s | server CPU us per request |")
    print("| --- | --- | --- | --- |")
    for _ in range(args.rounds):
        for label, (tracer, ratio) in tracers.items():
            count, cpu = asyncio.run(measure(tracer, ratio, args.seconds, args.connections))
            print(f"| {label} | {count:,} | {count / args.seconds:,.0f} | {cpu / count * 1e6:.1f} |", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
