"""A block's changed-account rows written as the sequencer's store writes them, by address (the
UNIQUE index, then the rowid: main before session 17) and by slot (the rowid), alternating in one
process on one database: thread CPU a row of the UPDATE statement alone, best and median of rounds.

    python bench/account_update.py --accounts 4000 --rows 3400 --rounds 10
"""

from __future__ import annotations

import argparse
import pathlib
import random
import statistics
import tempfile
import time

from services.runtime import open_database
from services.sequencer._store import write_rows

_SET = "UPDATE accounts SET nonce = v.column1, balance = v.column2, leaf = v.column3 FROM (VALUES "
#: (statement head, row, tail), and which key ends each row.
WAYS = {
    "by address": (_SET, "(?, ?, ?, ?)", ") AS v WHERE accounts.address = v.column4"),
    "by slot": (_SET, "(?, ?, ?, ?)", ") AS v WHERE accounts.slot = v.column4"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=4000)
    ap.add_argument("--rows", type=int, default=3400, help="changed accounts a block (distinct)")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(pathlib.Path(tmp) / "accounts.db")
        db.execute("CREATE TABLE accounts (slot INTEGER PRIMARY KEY, address BLOB NOT NULL UNIQUE, "
                   "nonce INTEGER NOT NULL, balance TEXT NOT NULL, leaf BLOB)")
        addresses = [rng.randbytes(20) for _ in range(args.accounts)]
        db.execute("BEGIN")
        db.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?, ?)",
                       [(slot, a, 0, str(10**21), rng.randbytes(32)) for slot, a in enumerate(addresses)])
        db.execute("COMMIT")
        spent: dict[str, list[float]] = {way: [] for way in WAYS}
        for number in range(1, args.rounds + 1):
            for way, statement in WAYS.items():
                slots = sorted(rng.sample(range(args.accounts), args.rows))
                rows = [(number, str(10**21 - number), rng.randbytes(32), s if way == "by slot" else addresses[s])
                        for s in slots]
                db.execute("BEGIN IMMEDIATE")
                t0 = time.thread_time()
                changed = write_rows(db, *statement, rows)
                spent[way].append((time.thread_time() - t0) / args.rows * 1e6)
                db.execute("COMMIT")
                assert changed == args.rows
        db.close()
    for way, us in spent.items():
        print(f"{way}: best {min(us):.2f}, median {statistics.median(us):.2f} us a row "
              f"({args.accounts:,} accounts, {args.rows:,} rows a block, {args.rounds} rounds)")


if __name__ == "__main__":
    main()
