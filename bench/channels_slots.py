"""How full a forwarding hop's HTLC slots are while bench/channels.py --two-hop runs.

    .venv/bin/python bench/channels_slots.py DATA_DIR [--every-ms 10] [--seconds 600]

DATA_DIR is bench/channels.py's ``--data-dir``; this finds hop B's database under it (read-only:
SQLite's WAL lets it read beside the writing worker) and samples B's forwards by status every
``--every-ms``: RECEIVED (co-signed from A, not yet offered to C), FORWARDED (offered to C, waiting
for its settle: what H6 caps at ``max_accepted_htlcs // 2`` per incoming channel) and SETTLING
(settled by C, not yet upstream). Prints one line a second (the most of each in it) and, at the
end, the most FORWARDED seen and every forward that failed, by reason (SLOT_SHARE_EXCEEDED is H6's
refusal: a payment that hits the cap fails; none waits for a slot).
"""

from __future__ import annotations

import argparse
import collections
import sqlite3
import time
from pathlib import Path

from services.channels._records import ForwardStatus


def _database(root: Path, seconds: float) -> Path:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = sorted(p for p in root.rglob("hop-b/**/*.db") if "tower" not in p.name)
        if found:
            return found[0]
        time.sleep(0.5)
    raise SystemExit(f"no hop-b database under {root} after {seconds} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--every-ms", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=600.0)
    args = parser.parse_args()
    path = _database(args.data_dir, args.seconds)
    print(f"sampling {path}", flush=True)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    statuses = (ForwardStatus.RECEIVED, ForwardStatus.FORWARDED, ForwardStatus.SETTLING)
    most_ever = 0
    failed: collections.Counter[str] = collections.Counter()
    second, most = int(time.time()), dict.fromkeys(statuses, 0)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and path.exists():
        try:
            rows = db.execute("SELECT status, COUNT(*) FROM forwards WHERE status IN (1, 2, 3) GROUP BY status"
                              ).fetchall()
        except sqlite3.OperationalError:  # the worker's schema not there yet, or its files going away
            time.sleep(args.every_ms / 1000)
            continue
        counts = dict(rows)
        for status in statuses:
            most[status] = max(most[status], counts.get(int(status), 0))
        most_ever = max(most_ever, counts.get(int(ForwardStatus.FORWARDED), 0))
        now = int(time.time())
        if now != second:
            try:
                failed = collections.Counter(dict(db.execute(
                    "SELECT reason, COUNT(*) FROM forwards WHERE reason != '' GROUP BY reason").fetchall()))
            except sqlite3.Error:  # its files going away: the last count stands
                break
            if any(most.values()):
                print(time.strftime("%H:%M:%S", time.gmtime(second)), "  ".join(
                    f"{s.name} {most[s]:4d}" for s in statuses), flush=True)
            second, most = now, dict.fromkeys(statuses, 0)
        time.sleep(args.every_ms / 1000)
    print(f"most FORWARDED at once: {most_ever}; forwards failed by reason: {dict(failed) or 'none'}", flush=True)


if __name__ == "__main__":
    main()
