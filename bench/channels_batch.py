"""A PROTOTYPE, not the worker: direct payments with a streaming Pay and batched Propose, measured.

    .venv/bin/python bench/channels_batch.py [--payments 20000] [--in-flight 1,8,64,256] [--per-message 1,32]
                                             [--max-batch 256] [--depth 2] [--data-dir DIR]

What bench/channels.py's proposal would reach on this machine, before anyone rewrites the worker
(services/channels/_channels.py is untouched). Two processes, A (payer) and B (payee), each with its
own SQLite file opened as the runtime opens one (services.runtime.Storage: WAL, synchronous=FULL)
and the worker's own rules door (services.channels.Rules: EIP-712 digest, secp256k1 sign and
recover), receiver check (protocol's check_proposal) and wire shapes (state_pb / state_of_pb,
pb.ProposeRequest, pb.PayRequest / pb.PayResponse). This process is the user: one bidirectional
stream of PayRequests to A, N payments in flight (sent ahead of their answers), 1 wei each, one
PayRequest per stream message or --per-message of them (a batch Pay: one message, several
payments, one answer).

P1 stays: every payment is its own state n+1, each signed by both. What changes is how many go
per message and per commit:

- A takes every Pay waiting (up to --max-batch), builds and signs one state per payment, commits
  them in ONE transaction (durable before any of those signatures leaves), and sends them in ONE
  Propose call (the states in order, the batch sealed once by A's key).
- B checks the seal once, then each state against the one before it (the signature, check_update,
  the amount), signs each, commits them all in ONE transaction, answers the signatures (sealed once).
- A checks each counter-signature, commits the co-signed states in ONE transaction, answers each Pay.

--depth batches may be on the way to B at once (B takes them in sequence order); commits run on
one writer thread per side (the fsync without the GIL, so signing goes on meanwhile). Not here: the
worker's other checks and records per payment (events, invoices, channel status), tracing, call
policy. Each row ends with both SQLite files read back: every payment's state on both sides with
both signatures.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.channels_ceiling import CHANNEL, INSERT, KEY_A, KEY_B, Figures, _figures, _row, _storage
from protocol import UpdateKind, check_proposal
from protos.l2node.channels.v1 import channels_pb2 as pb
from services.channels import ChannelRecord, ChannelStatus, Rules, StateRecord, state_of_pb, state_pb
from services.l1 import LocalSigner

SERVICE: Final = "bench.ChannelsBatch"
SEAL: Final = 65
A, B = LocalSigner(KEY_A).address, LocalSigner(KEY_B).address
RECORD_A = ChannelRecord(CHANNEL.id, A, B, CHANNEL.nonce, True, "", ChannelStatus.OPEN, CHANNEL.amount_a,
                         CHANNEL.amount_b)
TICK: Final = os.sysconf("SC_CLK_TCK")


def _rules(key: bytes) -> Rules:
    return Rules(CHANNEL.chain_id, CHANNEL.adjudicator, key)


def _frame(parts: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _unframe(data: bytes) -> list[bytes]:
    parts, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from(">I", data, at)
        parts.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return parts


def _funding() -> StateRecord:
    return StateRecord(CHANNEL.id, 0, CHANNEL.amount_a, CHANNEL.amount_b)


class Writer:
    """One side's SQLite file, every write on one thread: one transaction per batch."""

    def __init__(self, directory: Path, name: str) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        self._storage = self._pool.submit(_storage, directory, name).result()

    def _commit(self, rows: list[tuple[object, ...]]) -> None:
        db = self._storage.connection
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT, rows)
        db.execute("COMMIT")  # the fsync

    async def commit(self, rows: list[tuple[object, ...]]) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._commit, rows)


class Payee:
    """B: PeerService.Propose, a batch at a time, in sequence order."""

    def __init__(self, directory: Path) -> None:
        self.rules = _rules(KEY_B)
        self.channel = self.rules.channel(RECORD_A)
        self.writer = Writer(directory, "payee")
        self.latest = _funding()
        self.turn = asyncio.Condition()

    async def propose(self, body: bytes, context: Any) -> bytes:
        seal, content = body[:SEAL], body[SEAL:]
        if Rules.message_signer("ProposeBatch", content, seal) != A:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not A's batch")
        requests = [pb.ProposeRequest.FromString(raw) for raw in _unframe(content)]
        first = requests[0].state.sequence
        async with self.turn:  # batches sent at once arrive in any order: take them in sequence order
            await self.turn.wait_for(lambda: self.latest.sequence + 1 == first)
            prev, rows, signatures = self.latest, [], []
            for request in requests:
                state = state_of_pb(request.state)
                if self.rules.signer_of(state, request.signature) != A:
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not A's signature")
                # The worker's receiver check (check_proposal, P0-P6), then the payment's amount.
                update = check_proposal(self.rules.state(prev), self.rules.state(state), self.channel, A,
                                        now=int(time.time()), expiry_delta=0)
                if update.kind is not UpdateKind.TRANSFER or update.amount != int(request.amount):
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "amount")
                mine = self.rules.sign(state)
                rows.append(_row(state, request.signature, mine))  # type: ignore[arg-type]
                signatures.append(mine)
                prev = state
            await self.writer.commit(rows)  # durable before B's signatures leave
            self.latest = prev
            self.turn.notify_all()
        answer = b"".join(signatures)
        return self.rules.sign_message("ProposeBatchAnswer", answer) + answer


class Payer:
    """A: the user's Pay stream; a batcher signs, commits, proposes, commits, answers."""

    def __init__(self, directory: Path, peer: str, max_batch: int, depth: int) -> None:
        self.rules = _rules(KEY_A)
        self.writer = Writer(directory, "payer")
        self.latest = _funding()  # the latest state A signed (built on by the next batch)
        self.waiting: list[tuple[pb.PayRequest, asyncio.Future[pb.PayResponse]]] = []
        self.wake = asyncio.Event()
        self.max_batch, self.slots = max_batch, asyncio.Semaphore(depth)
        self.channel = grpc.aio.insecure_channel(peer)
        self.propose = self.channel.unary_unary(f"/{SERVICE}/Propose")
        self.cid = "0x" + CHANNEL.id.hex()

    async def pay(self, messages: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        """Each stream message carries one PayRequest or several (framed); its answer, the PayResponses."""
        answers: asyncio.Queue[list[asyncio.Future[pb.PayResponse]] | None] = asyncio.Queue()

        async def read() -> None:
            loop = asyncio.get_running_loop()
            async for message in messages:
                futures = []
                for raw in _unframe(message):
                    future: asyncio.Future[pb.PayResponse] = loop.create_future()
                    self.waiting.append((pb.PayRequest.FromString(raw), future))
                    futures.append(future)
                answers.put_nowait(futures)
                self.wake.set()
            answers.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (futures := await answers.get()) is not None:
                yield _frame([(await future).SerializeToString() for future in futures])
        finally:
            reader.cancel()

    async def batcher(self) -> None:
        pending: set[asyncio.Task[None]] = set()
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.waiting:
                await self.slots.acquire()
                batch, self.waiting = self.waiting[:self.max_batch], self.waiting[self.max_batch:]
                prev, states = self.latest, []
                for request, _ in batch:
                    amount = int(request.amount)
                    state = StateRecord(prev.channel_id, prev.sequence + 1, prev.balance_a - amount,
                                        prev.balance_b + amount)
                    states.append(state.signed(True, self.rules.sign(state)))
                    prev = state
                self.latest = prev
                task = asyncio.create_task(self._exchange(batch, states))
                pending.add(task)
                task.add_done_callback(pending.discard)

    async def _exchange(self, batch: list[tuple[pb.PayRequest, asyncio.Future[pb.PayResponse]]],
                        states: list[StateRecord]) -> None:
        try:
            await self.writer.commit([_row(s, s.sig_a, b"") for s in states])  # type: ignore[arg-type]
            content = _frame([pb.ProposeRequest(state=state_pb(s), signature=s.sig_a, amount=request.amount)
                              .SerializeToString() for s, (request, _) in zip(states, batch, strict=True)])
            answer = await self.propose(self.rules.sign_message("ProposeBatch", content) + content, timeout=30)
            seal, signatures = answer[:SEAL], answer[SEAL:]
            if Rules.message_signer("ProposeBatchAnswer", signatures, seal) != B:
                raise RuntimeError("not B's answer")
            cosigned = []
            for i, state in enumerate(states):
                theirs = signatures[SEAL * i:SEAL * (i + 1)]
                if self.rules.signer_of(state, theirs) != B:
                    raise RuntimeError("not B's counter-signature")
                cosigned.append(state.signed(False, theirs))
            await self.writer.commit([_row(s, s.sig_a, s.sig_b) for s in cosigned])  # type: ignore[arg-type]
            for state, (_, future) in zip(cosigned, batch, strict=True):
                future.set_result(pb.PayResponse(channel_id=self.cid, sequence=state.sequence))
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        finally:
            self.slots.release()


async def serve(role: str, port: int, directory: Path, peer: str, max_batch: int, depth: int) -> None:
    server = grpc.aio.server()
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    batcher: asyncio.Task[None] | None = None
    if role == "payee":
        handlers["Propose"] = grpc.unary_unary_rpc_method_handler(Payee(directory).propose)
    else:
        payer = Payer(directory, peer, max_batch, depth)
        handlers["Pay"] = grpc.stream_stream_rpc_method_handler(payer.pay)
        batcher = asyncio.create_task(payer.batcher())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    if batcher is not None:
        batcher.cancel()
    await server.stop(1)


# --- the bench process ---------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def stream(address: str, count: int, in_flight: int, per_message: int) -> tuple[Figures, int]:
    """``count`` payments on one Pay stream, ``per_message`` to a stream message, ``in_flight``
    payments sent ahead of their answers: figures (a payment's latency is its message's), the last
    sequence."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(f"/{SERVICE}/Pay")()
        window = asyncio.Semaphore(in_flight)
        sent: list[float] = []
        message = _frame([pb.PayRequest(address="0x" + B.hex(), amount="1").SerializeToString()] * per_message)
        messages = count // per_message

        async def write() -> None:
            for _ in range(messages):
                for _ in range(per_message):
                    await window.acquire()
                sent.append(time.perf_counter())
                await call.write(message)
            await call.done_writing()

        wall = time.perf_counter()
        writer = asyncio.create_task(write())
        latencies, last = [], 0
        for i in range(messages):
            answers = [pb.PayResponse.FromString(raw) for raw in _unframe(await call.read())]
            latencies.extend([time.perf_counter() - sent[i]] * len(answers))  # answers come in order
            last = answers[-1].sequence
            for _ in answers:
                window.release()
        wall = time.perf_counter() - wall
        await writer
    return _figures(latencies, wall), last


def _both_hold(directory: Path, sequence: int) -> str:
    rows = []
    for name in ("payer", "payee"):
        db = sqlite3.connect(directory / f"{name}.db")
        rows.append(db.execute("SELECT COUNT(*), MAX(sequence), SUM(sig_a IS NOT NULL AND sig_b IS NOT NULL AND "
                               "length(sig_a) = 65 AND length(sig_b) = 65) FROM states").fetchone())
        db.close()
    assert rows[0] == rows[1] == (sequence, sequence, sequence), rows
    return f"both SQLite files hold states 1..{sequence:,}, each with both signatures"


def _spawn(role: str, port: int, directory: Path, peer: str, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--serve", role, "--port", str(port), "--peer", peer,
                             "--max-batch", str(args.max_batch), "--depth", str(args.depth),
                             "--data-dir", str(directory)])


def _wait_ready(address: str) -> None:
    from tests.serving import wait_serving

    channel = grpc.insecure_channel(address)
    wait_serving(channel)
    channel.close()


def bench(args: argparse.Namespace) -> None:
    from tests.ports import free_port

    print(f"command: .venv/bin/python bench/channels_batch.py {' '.join(sys.argv[1:])}".rstrip())
    one, five, fifteen = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {one:.2f}, {five:.2f}, "
          f"{fifteen:.2f}; PROTOTYPE: batched Propose (max {args.max_batch} states, {args.depth} on the way), "
          "one commit per batch per side, a streaming Pay")
    rows = [(k, n) for k in (int(k) for k in args.per_message.split(","))
            for n in (int(n) for n in args.in_flight.split(",")) if k <= n]
    for per_message, in_flight in rows:
        with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
            directory = Path(tmp)
            port_a, port_b = free_port(), free_port()
            b = _spawn("payee", port_b, directory, "", args)
            a = _spawn("payer", port_a, directory, f"127.0.0.1:{port_b}", args)
            try:
                _wait_ready(f"127.0.0.1:{port_b}")
                _wait_ready(f"127.0.0.1:{port_a}")
                asyncio.run(stream(f"127.0.0.1:{port_a}", 200, in_flight, per_message))  # warm-up
                cpu = {"A": _cpu_s(a.pid), "B": _cpu_s(b.pid), "bench": time.process_time()}
                figures, last = asyncio.run(stream(f"127.0.0.1:{port_a}", args.payments, in_flight, per_message))
                spent = {"A": _cpu_s(a.pid), "B": _cpu_s(b.pid), "bench": time.process_time()}
            finally:
                for proc in (a, b):
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
            held = _both_hold(directory, last)
            per = ", ".join(f"{name} {(spent[name] - cpu[name]) / args.payments * 1e6:,.0f}" for name in cpu)
            # The cores these processes got: on a shared machine, what the rate could be on 2 free cores.
            used = sum(spent[name] - cpu[name] for name in cpu) / args.payments * figures.per_second
            print(f"  {per_message:3d} a message, {in_flight:4d} in flight  {figures.line()}   "
                  f"CPU us/payment: {per}; {used:.2f} cores   ({held})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=20000)
    parser.add_argument("--in-flight", default="1,8,64,256")
    parser.add_argument("--per-message", default="1,32", help="payments per Pay stream message, a sweep each")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2, help="batches on the way to B at once")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--serve", choices=("payer", "payee"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--peer", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.data_dir, args.peer, args.max_batch, args.depth))
    else:
        bench(args)


if __name__ == "__main__":
    main()
