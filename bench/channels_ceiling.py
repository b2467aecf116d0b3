"""The ceiling of direct payments on one channel: sign, verify, durable commit, no gRPC.

    .venv/bin/python bench/channels_ceiling.py [--payments 5000] [--repeat 3] [--group 16] [--data-dir DIR]

What bench/channels.py's real figures (two workers, gRPC, each payment durable on both sides) are
set against. Every figure runs protocol._channel's own code on one thread, against a SQLite file
opened as the runtime's storage opens one (WAL, synchronous=FULL: each COMMIT is an fsync):

- crypto: each step of a payment alone, and the secp256k1 options coincurve offers (all C:
  libsecp256k1), so the bottleneck is named.
- per side (the issue's ceiling): the payer's work for one payment: build the next state (1 wei
  A -> B), its EIP-712 digest, check_update, sign it, verify the peer's countersignature
  (recover + check_signature), and one durable commit of the state and both signatures. The
  peer's signatures are made before the clock starts: they are the other node's CPU.
- both sides, one thread: the whole exchange as the worker runs it, both nodes' work serialised:
  A builds, signs and commits (durable before its signature leaves); B checks the update and A's
  signature, signs and commits; A checks B's signature and commits the co-signed state. Two
  signatures, two recoveries, three fsyncs: the latency floor of a direct payment between two
  nodes on one machine.
- per side, grouped: as "per side", --group payments to one commit (the worker pipelining
  updates and committing them together); a payment's latency runs from its build to its group's
  commit.
- per side, writer thread: as "per side", the commits on a thread that commits every row
  waiting at once (a group commit sized by the load itself); sqlite3 releases the GIL in the
  fsync, so this thread signs and verifies the next payments meanwhile.

payments/s = payments / wall time; p50/p99 over each payment's latency. Figures only, no
assertions. The machine is shared and noisy: each mode is the best of --repeat runs by
throughput. The data directory decides the fsync cost: point --data-dir at the disk the
node's data dir is on.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coincurve import PrivateKey, PublicKey

from protocol import (
    DEV_PRIVATE_KEYS,
    Channel,
    ChannelState,
    check_signature,
    check_update,
    keccak256,
    recover_signer,
    sign_state,
    state_digest,
)
from services.l1 import LocalSigner
from services.runtime import Storage

KEY_A, KEY_B = DEV_PRIVATE_KEYS[:2]
A, B = LocalSigner(KEY_A).address, LocalSigner(KEY_B).address
CHANNEL = Channel(31337, bytes.fromhex("5fbdb2315678afecb367f032d93f642f64180aa3"), A, B, 1, 10**18, 10**18)
NOW = int(time.time())
DELTA = 3_600

SCHEMA = """
CREATE TABLE IF NOT EXISTS states (
    channel_id BLOB NOT NULL, sequence INTEGER NOT NULL, balance_a TEXT NOT NULL, balance_b TEXT NOT NULL,
    htlcs BLOB NOT NULL, sig_a BLOB, sig_b BLOB, PRIMARY KEY (channel_id, sequence)
)
"""
INSERT = "INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True, slots=True)
class Figures:
    """One mode's result: throughput and per-payment latency."""

    payments: int
    per_second: float
    p50_ms: float
    p99_ms: float

    def line(self) -> str:
        return f"{self.per_second:9,.0f} payments/s   p50 {self.p50_ms:6.3f} ms   p99 {self.p99_ms:6.3f} ms"


def _figures(latencies: list[float], wall: float) -> Figures:
    ordered = sorted(latencies)
    return Figures(
        len(ordered),
        len(ordered) / wall,
        ordered[len(ordered) // 2] * 1e3,
        ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
    )


def _next(state: ChannelState) -> ChannelState:
    """A pays B 1 wei: the next state."""
    return state.transfer(True, 1)


def _row(state: ChannelState, sig_a: bytes | None, sig_b: bytes | None) -> tuple[object, ...]:
    return (state.channel_id, state.sequence, str(state.balance_a), str(state.balance_b), b"", sig_a, sig_b)


def _storage(directory: Path, name: str) -> Storage:
    storage = Storage(directory / f"{name}.db")
    storage.connection.execute(SCHEMA)
    return storage


def per_side(payments: int, directory: Path, group: int = 1) -> Figures:
    """The payer's work per payment, ``group`` payments to one durable commit (1: one each)."""
    storage = _storage(directory, f"side-{group}")
    # The peer's countersignatures: the other node's work, done before the clock starts.
    state = CHANNEL.funding_state()
    countersigned = []
    for _ in range(payments):
        state = _next(state)
        countersigned.append(sign_state(state_digest(state, CHANNEL.domain), KEY_B))
    db, domain = storage.connection, CHANNEL.domain
    prev = CHANNEL.funding_state()
    latencies: list[float] = []
    started: list[float] = []
    wall = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    for i in range(payments):
        start = time.perf_counter()
        new = _next(prev)
        check_update(prev, new, CHANNEL, now=NOW, expiry_delta=DELTA)
        digest = state_digest(new, domain)
        sig_a = sign_state(digest, KEY_A)
        check_signature(CHANNEL, digest, countersigned[i], B)
        db.execute(INSERT, _row(new, sig_a, countersigned[i]))
        started.append(start)
        if len(started) == group or i == payments - 1:
            db.execute("COMMIT")
            end = time.perf_counter()
            latencies.extend(end - s for s in started)
            started.clear()
            if i < payments - 1:
                db.execute("BEGIN IMMEDIATE")
        prev = new
    wall = time.perf_counter() - wall
    storage.close()
    return _figures(latencies, wall)


def pipelined(payments: int, directory: Path) -> Figures:
    """As ``per_side``, the commits on a writer thread: it takes every row waiting and commits them
    together (a group commit sized by the load), while this thread signs the next payments.
    sqlite3 releases the GIL in the fsync, so crypto and disk overlap."""
    storage = _storage(directory, "pipelined")
    state = CHANNEL.funding_state()
    countersigned = []
    for _ in range(payments):
        state = _next(state)
        countersigned.append(sign_state(state_digest(state, CHANNEL.domain), KEY_B))
    db, domain = storage.connection, CHANNEL.domain
    waiting: queue.SimpleQueue[tuple[float, tuple[object, ...]] | None] = queue.SimpleQueue()
    latencies: list[float] = []

    def writer() -> None:
        while (first := waiting.get()) is not None:
            batch, last = [first], False
            while not waiting.empty():
                item = waiting.get()
                if item is None:
                    last = True
                    break
                batch.append(item)
            db.execute("BEGIN IMMEDIATE")
            db.executemany(INSERT, [row for _, row in batch])
            db.execute("COMMIT")
            end = time.perf_counter()
            latencies.extend(end - start for start, _ in batch)
            if last:
                return

    thread = threading.Thread(target=writer)
    prev = CHANNEL.funding_state()
    wall = time.perf_counter()
    thread.start()
    for i in range(payments):
        start = time.perf_counter()
        new = _next(prev)
        check_update(prev, new, CHANNEL, now=NOW, expiry_delta=DELTA)
        digest = state_digest(new, domain)
        sig_a = sign_state(digest, KEY_A)
        check_signature(CHANNEL, digest, countersigned[i], B)
        waiting.put((start, _row(new, sig_a, countersigned[i])))
        prev = new
    waiting.put(None)
    thread.join()
    wall = time.perf_counter() - wall
    storage.close()
    return _figures(latencies, wall)


def both_sides(payments: int, directory: Path) -> Figures:
    """A direct payment's whole exchange, both nodes' work on this one thread."""
    store_a, store_b = _storage(directory, "node-a"), _storage(directory, "node-b")
    db_a, db_b, domain = store_a.connection, store_b.connection, CHANNEL.domain
    prev_a = prev_b = CHANNEL.funding_state()
    latencies: list[float] = []
    wall = time.perf_counter()
    for _ in range(payments):
        start = time.perf_counter()
        # A proposes: its signed state is durable before the signature leaves.
        proposed = _next(prev_a)
        digest = state_digest(proposed, domain)
        sig_a = sign_state(digest, KEY_A)
        db_a.execute(INSERT, _row(proposed, sig_a, None))
        # B accepts: the rules, A's signature, then its own, durable before it answers.
        check_update(prev_b, proposed, CHANNEL, now=NOW, expiry_delta=DELTA)
        digest_b = state_digest(proposed, domain)  # B's own: it hashes what it received
        check_signature(CHANNEL, digest_b, sig_a, A)
        sig_b = sign_state(digest_b, KEY_B)
        db_b.execute(INSERT, _row(proposed, sig_a, sig_b))
        prev_b = proposed
        # A completes: B's signature checked, the co-signed state durable: the payment is done.
        check_signature(CHANNEL, digest, sig_b, B)
        db_a.execute(INSERT, _row(proposed, sig_a, sig_b))
        prev_a = proposed
        latencies.append(time.perf_counter() - start)
    wall = time.perf_counter() - wall
    store_a.close()
    store_b.close()
    return _figures(latencies, wall)


def _per_call_us(run: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        run()
    return (time.perf_counter() - start) / n * 1e6


def crypto(n: int, directory: Path) -> list[tuple[str, float]]:
    """Microseconds per call of each step, and of coincurve's other ways to sign and verify."""
    state = _next(CHANNEL.funding_state())
    digest = state_digest(state, CHANNEL.domain)
    signature = sign_state(digest, KEY_A)
    key = PrivateKey(KEY_A)
    public = key.public_key
    der = key.sign(digest, hasher=None)
    storage = _storage(directory, "commit")
    db = storage.connection
    counter = iter(range(1, 10**9))

    def commit() -> None:
        db.execute(INSERT, (state.channel_id, next(counter), "0", "0", b"", signature, signature))

    rows = [
        ("build the next state", lambda: _next(state)),
        ("state_digest (EIP-712)", lambda: state_digest(state, CHANNEL.domain)),
        ("check_update", lambda: check_update(CHANNEL.funding_state(), state, CHANNEL, now=NOW, expiry_delta=DELTA)),
        ("sign_state (libsecp256k1 direct)", lambda: sign_state(digest, KEY_A)),
        ("  coincurve PrivateKey(key).sign_recoverable",
         lambda: PrivateKey(KEY_A).sign_recoverable(digest, hasher=None)),
        ("  coincurve, the PrivateKey kept", lambda: key.sign_recoverable(digest, hasher=None)),
        ("recover_signer (C8 + recovery)", lambda: recover_signer(digest, signature)),
        ("  coincurve PublicKey.from_signature_and_message",
         lambda: PublicKey.from_signature_and_message(signature[:64] + bytes((signature[64] - 27,)), digest,
                                                      hasher=None)),
        ("  coincurve verify against a known public key (DER)", lambda: public.verify(der, digest, hasher=None)),
        ("check_signature (recover + participant)", lambda: check_signature(CHANNEL, digest, signature, A)),
        ("keccak256 (256 bytes)", lambda: keccak256(bytes(256))),
        ("durable commit, back to back (one row each)", commit),
    ]
    result = [(name, _per_call_us(run, n if "commit" not in name else max(200, n // 10))) for name, run in rows]
    storage.close()
    return result


def ceiling(payments: int, directory: Path, group: int = 16) -> dict[str, Figures]:
    """Each mode once, for bench/channels.py to print beside its real figures (``directory``: on
    the disk the nodes' data dirs are on, so the fsyncs cost the same)."""
    return {
        "per_side": per_side(payments, directory),
        "both_sides": both_sides(payments, directory),
        f"per_side_group_{group}": per_side(payments, directory, group=group),
        "per_side_writer_thread": pipelined(payments, directory),
    }


def best(run: Callable[[], Figures], repeat: int) -> tuple[Figures, Figures]:
    """(the best run by throughput, the median run's figures by throughput)."""
    runs = sorted((run() for _ in range(repeat)), key=lambda f: f.per_second)
    return runs[-1], runs[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--group", type=int, default=16, help="payments per commit in the grouped mode")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the SQLite files go (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        directory = Path(tmp)
        print(f"channels ceiling: {args.payments:,} direct payments, one channel, one thread, no gRPC; "
              f"SQLite in {directory} (WAL, synchronous=FULL); best of {args.repeat} (median run after it)")
        where = f" --data-dir {args.data_dir}" if args.data_dir else ""
        print(f"command: .venv/bin/python bench/channels_ceiling.py --payments {args.payments} "
              f"--repeat {args.repeat} --group {args.group}{where}")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
        print("\nper call (us):")
        for name, us in crypto(max(1000, args.payments // 2), directory):
            print(f"  {name:52s} {us:9.1f}")
        modes: list[tuple[str, Callable[[], Figures]]] = [
            ("per side (build, check, sign, verify peer, 1 commit)", lambda: per_side(args.payments, directory)),
            ("both sides, one thread (2 sign, 2 verify, 3 commits)", lambda: both_sides(args.payments, directory)),
            (f"per side, {args.group} payments per commit",
             lambda: per_side(args.payments, directory, group=args.group)),
            ("per side, commits on a writer thread (group commit)", lambda: pipelined(args.payments, directory)),
        ]
        print()
        for name, run in modes:
            top, median = best(run, args.repeat)
            print(f"  {name:54s} {top.line()}   (median run {median.per_second:,.0f}/s, "
                  f"p50 {median.p50_ms:.3f} ms)")


if __name__ == "__main__":
    main()
