"""fsyncs of one file, one at a time or several at once: what services/runtime/_storage.py's
grouped WAL syncs (``Storage.durable``) cost on this disk.

    .venv/bin/python bench/wal_fsync.py [--seconds 4] [--threads 1,2,3] [--bytes 30000] [--dir DIR]

Each thread appends ``--bytes`` (about one channel state with ~200 HTLCs in flight) to the same
file and fsyncs it, in a loop, for ``--seconds``. Printed per thread count: fsyncs per second and
the latency of one (p50, mean). On a disk whose fsync is a flush of the device's cache, fsyncs that
overlap complete together: then a group that starts while another fsync runs should not wait for it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path


def run(directory: Path, threads: int, seconds: float, size: int) -> tuple[int, float, float]:
    """fsyncs done, p50 and mean latency in ms, with ``threads`` writing and syncing one file."""
    path = directory / "wal_fsync.dat"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < stop:
            os.write(fd, b"x" * size)
            started = time.monotonic()
            os.fsync(fd)
            latencies.append(time.monotonic() - started)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    os.close(fd)
    path.unlink()
    return len(latencies), 1000 * statistics.median(latencies), 1000 * statistics.mean(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", default="1,2,3")
    parser.add_argument("--bytes", type=int, default=30_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {args.bytes:,} bytes appended before each fsync")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for threads in (int(n) for n in args.threads.split(",")):
            done, p50, mean = run(Path(tmp), threads, args.seconds, args.bytes)
            print(f"  {threads} thread(s): {done / args.seconds:8,.0f} fsyncs/s   p50 {p50:6.2f} ms   "
                  f"mean {mean:6.2f} ms")


if __name__ == "__main__":
    main()
