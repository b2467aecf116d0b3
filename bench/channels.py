"""Channel payments as a user makes them: ChannelsService.Pay between two nodes' channels workers.

    .venv/bin/python bench/channels.py [--payments 2000] [--in-flight 1,8,32,64] [--profile] [--cprofile]
                                       [--trees] [--two-hop] [--hop-payments 500] [--hop-stream 96x64,...]
                                       [--data-dir DIR]

What runs: one anvil with the contracts deployed as `l2node up` deploys them; two channels
workers, each its own process, data dir, port and channel key (the bare workers
tests/channels/_nodes.py starts: a tree adds a supervisor and other workers beside it, none of
them on a payment's path; the client calls the channels worker's own port, as endpoints.json
lists it); or, with --trees, two trees as a user runs them: `l2node up` (its own anvil, the whole
devnet: sequencer, rollups, bridge, channels) and `l2node up --l1-rpc <that anvil>` with only its
channels worker, on tree 1's contracts. A channel A -> B opened on L1 with 100 ETH. This process is
the user: it calls A's ChannelsService.Pay over gRPC with N calls in flight, 1 wei each, paying
B's address, then B's invoices (created beforehand, untimed), then (when the worker has it) B's
address on one ChannelsService.PayStream with N payments sent ahead of their answers. Pay returns
once the payment is durable on both sides (the worker's design, services/channels/_updates.py: the
payer stores its signed state before sending it, the payee checks, counter-signs and commits
before it answers, the payer commits the co-signed state; each commit an fsync, WAL +
synchronous=FULL; the payments waiting on a channel share one state and one round trip). The
bench checks at the end that both sides hold the same latest state, both signatures, and B's
balance = the payments made.

Printed, in one run: payments/s (payments / wall time) and latency p50 / p99 per in-flight count;
the CPU each process spent per payment (from /proc); an empty unary gRPC call's rate (health
Check) on the same worker; bench/channels_ceiling.py's ceiling (sign + verify + durable commit per
payment, no gRPC: its ``ceiling()``); and bench/channels_gas.py's L1 gas (its ``measure()``, on
the same anvil after the payments).

--profile restarts both workers as bench/channels_spans.py's instrumented worker (the same
worker, with time spans around each step) on the same data dirs, and prints where a payment's time
goes, per side, with one payment in flight and with 32. --cprofile adds cProfile's top functions.

--two-hop: three bare workers, channels A -> B and B -> C, A pays C's invoices (1,000 wei, the
smallest HTLC) through B as its worker routes them (an HTLC added hop by hop, settled back with the
preimage); checked at the end: C holds every payment, no HTLC left in flight. Its rows: Pay calls
at each --in-flight count, then one PayStream per --hop-stream row (IN_FLIGHTxPER_MESSAGE: that many
payments in flight, sent that many to a message; a message is answered whole, so the window holds
IN_FLIGHT // PER_MESSAGE messages at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.channels_ceiling import Figures, _figures, ceiling
from bench.channels_gas import measure, report
from bench.channels_spans import CPROFILE_ENV, SPANS_ENV
from l2node.node.deploy import DEVNET_BATCHER, DEVNET_DEPLOYER_KEY, RollupParams, deploy_contracts
from protocol import DEV_PRIVATE_KEYS
from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc as pb_grpc
from services.l1 import LocalSigner
from tests.bridge._cluster import ROOT, worker
from tests.channels._nodes import ETHER, PERIOD, Node, wait_for
from tests.l1.anvil import Anvil
from tests.ports import free_base_port

CHANNEL_FUNDS: Final = 100 * ETHER
WARM_UP: Final = 50
#: A two-hop payment's amount: an HTLC carries at least the worker's htlc_min_wei (1,000 by default).
HOP_AMOUNT: Final = 1_000
#: The batched two-hop rows: (payments in flight, payments per PayStream message). B forwards at
#: most 120 HTLCs from A-B over B-C at once (H6: half of max_accepted_htlcs, 240 by default), and
#: the payments of a round trip move together, so all of them are forwarded at once: above 120 in
#: flight, payments fail (SLOT_SHARE_EXCEEDED; the rows at 128 and 192 before session 14 passed only
#: because H6 did not count the forwards of a burst). A message is answered whole, so the window
#: holds in_flight // per_message messages at once: 96 x 64 and 120 x 64 keep ONE message in flight
#: (the next waits for its answer); 120 x 60 keeps two, 120 x 40 three.
HOP_STREAM_ROWS: Final = ((96, 64), (120, 64), (120, 60), (120, 40))
PLAIN: Final = "services.channels:WORKER"
INSTRUMENTED: Final = "bench.channels_spans:WORKER"
TICK: Final = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


class ChannelsNode(Protocol):
    """A node's channels worker as the bench reaches it: a bare worker or a tree's."""

    name: str
    address: bytes
    stub: pb_grpc.ChannelsServiceStub

    @property
    def endpoint(self) -> str: ...

    @property
    def pid(self) -> int: ...

    def channel(self, channel_id: str) -> pb.Channel: ...

    def status(self, channel_id: str) -> int: ...


class BenchNode(Node):
    """tests/channels/_nodes.py's node, its worker definition and environment chosen (the plain
    worker, or the instrumented one of --profile)."""

    definition = PLAIN
    env: dict[str, str] = {}

    def start(self) -> None:
        self.proc = worker(self.tmp_path, self.definition, self.name, self.settings, env=self.env, port=self.port)
        self.stub = pb_grpc.ChannelsServiceStub(self.proc.channel)
        self.peer_stub = pb_grpc.PeerServiceStub(self.proc.channel)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.proc.pid


class Network:
    """The contracts on one anvil and ``names`` nodes (dev keys 2, 3, 4, ...)."""

    def __init__(self, nodes: list[BenchNode]) -> None:
        self.nodes = nodes

    @classmethod
    async def start(cls, directory: Path, l1: Anvil, names: tuple[str, ...], **more: Any) -> Network:
        await deploy_contracts(l1.url, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, directory,
                               params=RollupParams(channel_challenge_period_s=PERIOD))
        settings = {"l1": {"rpc": l1.url, "contracts": str(directory / "l1" / "contracts.json")},
                    "poll_interval_s": 0.1, **more}
        return cls([BenchNode(directory, name, 2 + i, settings) for i, name in enumerate(names)])

    def close(self) -> None:
        for node in self.nodes:
            node.stop()


def open_channel(payer: ChannelsNode, payee: ChannelsNode, amount: int) -> str:
    """``payer`` opens a channel to ``payee`` (single-funded: OPEN at once); its id once both see it OPEN."""
    opened = payer.stub.OpenChannel(pb.OpenChannelRequest(peer=payee.endpoint, amount=str(amount)),
                                    timeout=60).channel
    assert opened.status == pb.CHANNEL_STATUS_OPEN, opened
    wait_for(lambda: payee.status(opened.channel_id) == pb.CHANNEL_STATUS_OPEN, 20, "the payee sees it OPEN")
    return opened.channel_id


class TreeNode:
    """A node as a user runs it: `l2node up` (tree.py's supervisor and its workers), its channels
    worker found in endpoints.json. ``l1_rpc`` None: the tree starts its own anvil, the whole devnet
    (sequencer, rollups, bridge, channels; channel key: dev key 6); else only the channels worker,
    on that chain's contracts, with dev key ``key_index``."""

    def __init__(self, directory: Path, name: str, base_port: int, key_index: int = 6, l1_rpc: str | None = None,
                 contracts: Path | None = None) -> None:
        self.name, self.data_dir = name, directory / name
        self.key = DEV_PRIVATE_KEYS[key_index]
        self.address = LocalSigner(self.key).address
        config = f"[node]\nbase_port = {base_port}\n[l1]\nport = 0\n"
        argv = [sys.executable, "-m", "l2node.cli", "up", "--data-dir", str(self.data_dir)]
        if l1_rpc is not None:
            key_file = directory / f"{name}.key"
            key_file.write_text("0x" + self.key.hex())
            config += (f'contracts = "{contracts}"\nchannels_key_file = "{key_file}"\n'
                       + "".join(f"[workers.{w}]\nenabled = false\n" for w in ("sequencer", "rollups", "bridge")))
            argv += ["--l1-rpc", l1_rpc]
        path = directory / f"{name}.toml"
        path.write_text(config)
        self.log = (directory / f"{name}.up.log").open("w")
        self.proc = subprocess.Popen([*argv, "--config", str(path)], stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=ROOT)
        try:
            doc = wait_for(self._up, 120, f"{name}'s tree up")
        except BaseException:
            self.stop()
            raise
        (channels,) = [c for c in doc["children"] if c["id"] == "channels"]
        self.endpoint, self.pid, self.l1_rpc = channels["address"], int(channels["pid"]), str(doc["l1_rpc"])
        self.contracts = self.data_dir / "l1" / "contracts.json"
        self.stub = pb_grpc.ChannelsServiceStub(grpc.insecure_channel(self.endpoint))

    def _up(self) -> dict[str, Any] | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"l2node up exited: see {self.log.name}")
        try:
            doc: dict[str, Any] = json.loads((self.data_dir / "run" / "endpoints.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        rows = doc["children"]
        ready = "channels" in {c["id"] for c in rows} and all(c["state"] == "running" for c in rows)
        return doc if ready else None

    def channel(self, channel_id: str) -> pb.Channel:
        return self.stub.GetChannel(pb.GetChannelRequest(channel_id=channel_id), timeout=10).channel

    def status(self, channel_id: str) -> int:
        return self.channel(channel_id).status

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def start_trees(directory: Path) -> list[TreeNode]:
    """Tree 1: `l2node up` with its own anvil; tree 2: `l2node up --l1-rpc <tree 1's anvil>`, only
    its channels worker, on tree 1's contracts (dev key 3)."""
    first = TreeNode(directory, "tree1", free_base_port(16))
    try:
        return [first, TreeNode(directory, "tree2", free_base_port(16), 3, first.l1_rpc, first.contracts)]
    except BaseException:
        first.stop()
        raise


# --- driving -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """One sweep point: its figures, failed calls, and CPU microseconds per payment by process
    (user + system, and the system part)."""

    what: str
    in_flight: int
    figures: Figures
    failed: int
    cpu_us: dict[str, tuple[float, float]]

    def line(self) -> str:
        cpu = ", ".join(f"{name} {total:,.0f} ({system:,.0f})" for name, (total, system) in self.cpu_us.items())
        # The cores these processes got (a shared machine gives less than 2).
        used = sum(total for total, _ in self.cpu_us.values()) * self.figures.per_second / 1e6
        failed = f"   FAILED {self.failed}" if self.failed else ""
        return (f"  {self.what:15s} {self.in_flight:4d} in flight  {self.figures.line()}   "
                f"CPU us/payment (system): {cpu}; {used:.2f} cores{failed}")


def _cpu_s(pid: int) -> tuple[float, float]:
    """A process's user and system CPU seconds so far (every thread)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def figures(latencies: list[float], wall: float) -> Figures:
    """A row's figures; a row in which every payment failed has none (nan latencies, 0/s)."""
    if not latencies:
        return Figures(0, 0.0, math.nan, math.nan)
    return _figures(latencies, wall)


class CpuMeter:
    """CPU seconds (user, system) of each named process (``None``: this one) over a block."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids

    def read(self) -> dict[str, tuple[float, float]]:
        return {name: os.times()[:2] if pid is None else _cpu_s(pid) for name, pid in self.pids.items()}

    @contextmanager
    def measure(self, into: dict[str, tuple[float, float]]) -> Iterator[None]:
        before = self.read()
        yield
        into.update({name: (user - before[name][0], system - before[name][1])
                     for name, (user, system) in self.read().items()})


async def drive(call: Callable[[int], Awaitable[object]], count: int, in_flight: int
                ) -> tuple[list[float], float, int]:
    """``count`` calls, ``in_flight`` at a time: (each call's latency, the wall time, failures)."""
    indexes = iter(range(count))
    latencies: list[float] = []
    failed = 0

    async def caller() -> None:
        nonlocal failed
        for i in indexes:  # shared: each caller takes the next index when its call returns
            start = time.perf_counter()
            try:
                await call(i)
            except grpc.aio.AioRpcError as exc:
                failed += 1
                if failed <= 3:
                    print(f"    call {i} failed: {exc.code().name} {exc.details()}", flush=True)
                continue
            latencies.append(time.perf_counter() - start)

    wall = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(in_flight)))
    return latencies, time.perf_counter() - wall, failed


class Payer:
    """The bench as A's user: Pay over gRPC to A's worker, paying B's address or B's invoices."""

    def __init__(self, payer: ChannelsNode, payee: ChannelsNode, amount: int = 1, paid: int = 0) -> None:
        self.payer, self.payee, self.amount = payer, payee, amount
        self.channel = grpc.aio.insecure_channel(payer.endpoint)
        self.payee_channel = grpc.aio.insecure_channel(payee.endpoint)
        self.stub = pb_grpc.ChannelsServiceStub(self.channel)
        self.payee_stub = pb_grpc.ChannelsServiceStub(self.payee_channel)
        self.to_address = pb.PayRequest(address="0x" + payee.address.hex(), amount=str(amount))
        self.paid = paid  # payments made, each of ``amount`` wei

    async def aclose(self) -> None:
        await self.channel.close()
        await self.payee_channel.close()

    async def pay_address(self, _: int) -> None:
        await self.stub.Pay(self.to_address, timeout=60)
        self.paid += 1

    async def invoices(self, count: int) -> list[pb.PayRequest]:
        """``count`` invoices of ``amount`` wei from the payee (untimed: the payee's user makes them)."""
        made: list[pb.PayRequest] = []

        async def create(_: int) -> None:
            answer = await self.payee_stub.CreateInvoice(pb.CreateInvoiceRequest(amount=str(self.amount)), timeout=60)
            made.append(pb.PayRequest(invoice=answer.invoice.encoded))

        await drive(create, count, 16)
        return made

    async def pay_invoices(self, requests: list[pb.PayRequest]) -> Callable[[int], Awaitable[pb.PayResponse]]:
        async def pay(i: int) -> pb.PayResponse:
            answer = await self.stub.Pay(requests[i], timeout=60)
            assert answer.preimage, answer  # the proof of payment, revealed by the payee
            self.paid += 1
            return answer
        return pay

    async def stream(self, count: int, in_flight: int, per_message: int = 0,
                     invoices: list[pb.PayRequest] | None = None) -> tuple[list[float], float, int]:
        """``count`` payments to the payee's address (or of ``invoices``) on one PayStream,
        ``in_flight`` sent ahead of their answers (each answered by its request_id as it
        completes): one per message (its ``payment``), or ``per_message`` per message (its
        ``payments``, answered in ``answers``). A stream that breaks counts its unanswered payments
        as failed."""
        sent: dict[str, float] = {}
        window = asyncio.Semaphore(in_flight)  # a permit a payment
        latencies: list[float] = []
        failed = 0
        call = self.stub.PayStream(timeout=600)
        prefix = f"s{time.monotonic_ns()}-"
        address, amount = self.to_address.address, self.to_address.amount

        async def write() -> None:
            for first in range(0, count, min(per_message or 1, in_flight)):
                size = min(per_message or 1, in_flight, count - first)
                for _ in range(size):
                    await window.acquire()
                payments = [pb.PayRequest(request_id=f"{prefix}{i}", invoice=invoices[i].invoice) if invoices else
                            pb.PayRequest(request_id=f"{prefix}{i}", address=address, amount=amount)
                            for i in range(first, first + size)]
                now = time.perf_counter()
                for payment in payments:
                    sent[payment.request_id] = now
                await call.write(pb.PayStreamRequest(payments=payments) if per_message else
                                 pb.PayStreamRequest(payment=payments[0]))
            await call.done_writing()

        def answered(request_id: str, error: pb.PayError | None) -> None:
            nonlocal failed
            if error is not None:
                failed += 1
                if failed <= 3:
                    print(f"    {request_id} failed: {error.code} {error.reason} {error.message}", flush=True)
            else:
                latencies.append(time.perf_counter() - sent[request_id])
                self.paid += 1

        wall = time.perf_counter()
        writer = asyncio.create_task(write())
        done = 0
        try:
            while done < count:
                response = await call.read()
                if response is grpc.aio.EOF:
                    break
                for answer in response.answers or (response,):
                    answered(answer.request_id, answer.error if answer.HasField("error") else None)
                    done += 1
                for _ in range(len(response.answers) or 1):
                    window.release()
            if done == count:
                await writer
        except grpc.aio.AioRpcError as exc:
            print(f"    the stream broke: {exc.code().name} {exc.details()}", flush=True)
        writer.cancel()  # done, or waiting for answers that will not come
        wall = time.perf_counter() - wall
        if done < count:
            print(f"    {count - done} payments not answered", flush=True)
            failed += count - done
        return latencies, wall, failed

    async def point(self, what: str, count: int, in_flight: int, meter: CpuMeter, label: str = "",
                    per_message: int = 0) -> Point:
        if what in ("stream", "stream-invoice"):  # the payee's address, or its invoices
            invoices = await self.invoices(count + WARM_UP) if what == "stream-invoice" else None
            await self.stream(WARM_UP, in_flight, per_message, invoices[count:] if invoices else None)
            cpu: dict[str, tuple[float, float]] = {}
            with meter.measure(cpu):
                latencies, wall, failed = await self.stream(count, in_flight, per_message, invoices)
            per = 1e6 / max(1, len(latencies))
            return Point(label or what, in_flight, figures(latencies, wall), failed,
                         {name: ((user + system) * per, system * per) for name, (user, system) in cpu.items()})
        if what == "invoice":
            requests = await self.invoices(count + WARM_UP)
            call = await self.pay_invoices(requests)
            warm = await self.pay_invoices(requests[count:])
        else:
            call = warm = self.pay_address
        await drive(warm, WARM_UP, in_flight)
        cpu = {}
        with meter.measure(cpu):
            latencies, wall, failed = await drive(call, count, in_flight)
        per = 1e6 / max(1, len(latencies))
        return Point(label or what, in_flight, figures(latencies, wall), failed,
                     {name: ((user + system) * per, system * per) for name, (user, system) in cpu.items()})

    def check_both_sides(self, channel_id: str) -> str:
        """Both workers hold the same latest state, both signatures, every payment in it; what does
        not hold is said (MISMATCH) and the run goes on: a payment that failed for want of the
        peer's answer stays pending and may be paid since (within a few seconds: looked at again)."""
        def both() -> tuple[tuple[int, str, str, str, str], ...]:
            views = [node.channel(channel_id) for node in (self.payer, self.payee)]
            return tuple((v.state.sequence, v.state.balance_a, v.state.balance_b, v.signature_a, v.signature_b)
                         for v in views)

        deadline = time.monotonic() + 10
        while (states := both())[0] != states[1] or int(states[0][2]) != self.paid * self.amount:
            if time.monotonic() > deadline:
                return f"MISMATCH: A holds {states[0][:3]}, B {states[1][:3]}; payments answered paid: {self.paid:,}"
            time.sleep(0.2)
        sequence, _, balance_b, sig_a, sig_b = states[0]
        if not (sig_a and sig_b and 0 < sequence <= self.paid):  # a state carries one payment or several
            return f"MISMATCH: state {sequence} (signatures {bool(sig_a)}, {bool(sig_b)}) for {self.paid:,} payments"
        return (f"both workers hold state {sequence} of channel {channel_id[:10]}..., both signatures, "
                f"B's balance {int(balance_b):,} wei = the {self.paid:,} payments made "
                f"({self.paid / sequence:.1f} payments a state)")


async def unary_floor(node: ChannelsNode, count: int, in_flight: int) -> Figures:
    """An empty unary call (grpc.health.v1 Check) on the worker, as the bench makes its Pays."""
    async with grpc.aio.insecure_channel(node.endpoint) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()

        async def check(_: int) -> None:
            await stub.Check(request, timeout=30)

        await drive(check, WARM_UP, in_flight)
        latencies, wall, _ = await drive(check, count, in_flight)
    return figures(latencies, wall)


# --- the profile ---------------------------------------------------------------------------------

SIDE_ORDER: Final = (
    "pay (Channels.pay: the lock, then all below)", "direct_channel (find the channel)",
    "channel_to (find the channel)", "flush (the pending-state look-up)",
    "propose (build, sign, seal, put_state, send)", "send (the Propose RPC, then verify and record)",
    "peer.propose (the Propose RPC, the peer's work in it)", "on_propose (the receiver's whole handler)",
    "accept (verify, rules, sign, record_payment)",
)


def instrument(nodes: list[BenchNode], directory: Path, cprofile: bool) -> bool:
    """Each worker restarted as bench/channels_spans.py's (the same worker, spans around its steps):
    all stopped, then all started, so no worker's channel to a peer saw that peer go away (a peer
    that did is in gRPC's reconnect back-off and its breaker open for a while). False (said why)
    if one did not come up."""
    for node in nodes:
        node.stop()
    for node in nodes:
        env = {SPANS_ENV: str(directory / f"{node.name}.spans.json")}
        if cprofile:
            env[CPROFILE_ENV] = str(directory / f"{node.name}.pstats")
        node.definition, node.env = INSTRUMENTED, env
        try:
            node.start()
        except grpc.FutureTimeoutError:
            print(f"\n{node.name}'s instrumented worker did not come up: no profile. Its log ends:\n    "
                  + "\n    ".join(node.log.splitlines()[-3:]), flush=True)
            return False
    return True


async def until_paid(call: Callable[[], Awaitable[object]], timeout_s: float = 180) -> float:
    """Seconds until ``call`` (one payment) succeeds, tried every 0.5 s: after a restart a worker's
    channel to a peer that was away is in gRPC's reconnect back-off and its breaker open a while."""
    started = time.perf_counter()
    while True:
        try:
            await call()
            return time.perf_counter() - started
        except grpc.aio.AioRpcError:
            if time.perf_counter() - started > timeout_s:
                raise
            await asyncio.sleep(0.5)


#: A run of payments: (how many, the index of the first) -> (each one's latency, the wall time, failures).
Run = Callable[[int, int], Awaitable[tuple[list[float], float, int]]]


def calls(call: Callable[[int], Awaitable[object]], in_flight: int) -> Run:
    """A run of ``call`` (a unary Pay), ``in_flight`` at a time."""
    return lambda count, first: drive(lambda i: call(first + i), count, in_flight)


async def spans(nodes: list[BenchNode], run: Run, count: int, in_flight: int, what: str, directory: Path,
                cprofile: bool, client: str = "the bench Pay call (unary gRPC)") -> None:
    """``count`` payments (after a warm-up), each node's spans per payment printed, a column each."""
    await run(WARM_UP, 0)
    paths = {node.name: directory / f"{node.name}.spans.json" for node in nodes}
    for node in nodes:
        paths[node.name].unlink(missing_ok=True)
        os.kill(node.pid, signal.SIGUSR1)
    await asyncio.sleep(0.2)
    latencies, wall, failed = await run(count, WARM_UP)
    for node in nodes:
        os.kill(node.pid, signal.SIGUSR2)
    if not latencies:
        print(f"\nno span figures at {in_flight} in flight: every payment failed")
        return
    found = {node.name: json.loads(wait_for(lambda p=paths[node.name]: p.exists() and p.read_text(), 10,
                                            "the spans")) for node in nodes}
    print(f"\nwhere a payment's time goes, {in_flight} in flight ({count:,} {what}, "
          f"{figures(latencies, wall).line().strip()}; failed {failed}); mean us per payment (a span's total / "
          "payments; spans nest; calls per payment in brackets):")
    print(f"  {'client: ' + client:70s} {1e6 * sum(latencies) / count:9,.0f}")
    labels = [label for label in SIDE_ORDER if any(label in found[n.name] for n in nodes)]
    labels += sorted({label for n in nodes for label in found[n.name]} - set(labels))
    print(f"  {'span':70s} " + " ".join(f"{n.name:>15s}" for n in nodes))
    for label in labels:
        cells = []
        for node in nodes:
            calls, seconds = found[node.name].get(label, (0, 0.0))
            cells.append(f"{1e6 * seconds / count:9,.1f} ({calls / count:.1f})" if calls else f"{'-':>15s}")
        print(f"  {label:70s} " + " ".join(f"{cell:>15s}" for cell in cells))
    if cprofile:
        for node in nodes:
            print(f"\ncProfile of {node.name}'s event-loop thread, {in_flight} in flight, top 25 by own time:")
            pstats.Stats(str(directory / f"{node.name}.pstats")).sort_stats("tottime").print_stats(25)


async def profile(net: Network, payer: Payer, in_flights: tuple[int, ...], count: int, cprofile: bool,
                  directory: Path) -> Payer | None:
    """Both workers restarted instrumented; spans per payment by side, paying B's address (None: they
    did not come up)."""
    await payer.aclose()
    a, b = net.nodes[0], net.nodes[1]
    if not instrument([a, b], directory, cprofile):
        return None
    again = Payer(a, b, paid=payer.paid)
    once = pb.PayRequest(request_id=f"bench-{os.getpid()}-ready", address="0x" + b.address.hex(), amount="1")
    waited = await until_paid(lambda: again.stub.Pay(once, timeout=60))  # a retry pays once (its request_id)
    again.paid += 1
    print(f"\nboth workers restarted instrumented: the first payment went through after {waited:.1f} s")
    for in_flight in in_flights:
        await spans([a, b], calls(again.pay_address, in_flight), count, in_flight, "payments to B's address",
                    directory, cprofile)
    await spans([a, b], lambda n, _: again.stream(n, 1024, 256), max(count, 2048), 1024,
                "payments to B's address, 256 a PayStream message", directory, cprofile,
                client="a payment on the bench's PayStream (answered in its message's answers)")
    return again


# --- two hops ------------------------------------------------------------------------------------


def multi_hop_available() -> bool:
    """The channels worker routes an invoice over its graph: PayResponse carries the payment (its route)."""
    return "payment" in pb.PayResponse.DESCRIPTOR.fields_by_name


def until(check: Callable[[], T | None], timeout_s: float) -> T | None:
    """``check``'s answer once it has one, or None after ``timeout_s`` (said by the caller, not raised)."""
    try:
        return wait_for(check, timeout_s, "")
    except AssertionError:
        return None


def wait_known(node: ChannelsNode, channel_id: str) -> None:
    """Until ``node``'s graph holds both directions of the channel (announced by gossip)."""
    def known() -> bool:
        found = node.stub.ListKnownChannels(pb.ListKnownChannelsRequest(), timeout=10).channels
        return sum(1 for c in found if c.channel_id == channel_id) >= 2
    wait_for(known, 60, f"{node.name} learns channel {channel_id} by gossip")


async def two_hop(directory: Path, l1: Anvil, count: int, in_flights: tuple[int, ...], profile_hops: bool,
                  stream_rows: Sequence[tuple[int, int]] = HOP_STREAM_ROWS) -> list[Point]:
    """A pays C's invoices through B (A -> B -> C): payments/s and latency per in-flight count."""
    if not multi_hop_available():
        print("\ntwo hops: this tree's channels worker pays direct peers only (PayResponse has no payment): "
              "nothing measured")
        return []
    net = await Network.start(directory / "two-hop", l1, ("hop-a", "hop-b", "hop-c"), gossip_interval_s=0.5)
    a, b, c = net.nodes
    points = []
    try:
        ab, bc = open_channel(a, b, CHANNEL_FUNDS), open_channel(b, c, CHANNEL_FUNDS)
        wait_known(a, bc)
        payer = Payer(a, c, HOP_AMOUNT)

        def settled() -> dict[str, pb.Channel] | None:
            views = {"A-B at A": a.channel(ab), "A-B at B": b.channel(ab), "B-C at B": b.channel(bc),
                     "B-C at C": c.channel(bc)}
            return None if any(view.state.htlcs for view in views.values()) else views

        first = await (await payer.pay_invoices(await payer.invoices(1)))(0)
        route = " -> ".join(f"{hop.channel_id[:10]}... {int(hop.amount):,} wei" for hop in first.payment.route)
        print(f"\ntwo hops, A -> B -> C, {count:,} payments of C's invoices ({HOP_AMOUNT:,} wei) per row (after "
              f"{WARM_UP} untimed); the route: {route}, fee {int(first.payment.fee):,} wei:")
        meter = CpuMeter({"A": a.pid, "B": b.pid, "C": c.pid, "bench": None})
        rows = [("invoice", in_flight, 0) for in_flight in in_flights]
        if "payments" in pb.PayStreamRequest.DESCRIPTOR.fields_by_name:  # C's invoices, 64 a PayStream message
            rows += [("stream-invoice", in_flight, per_message) for in_flight, per_message in stream_rows]
        for what, in_flight, per_message in rows:
            label = f"2 hops batch {per_message}" if per_message else "2 hops"
            before = (payer.paid, a.channel(ab).state.sequence, b.channel(bc).state.sequence)
            point = await row(payer.point(what, count, in_flight, meter, label=label, per_message=per_message), label,
                              in_flight)
            if point is not None:
                points.append(point)
                print(point.line(), flush=True)
                if until(settled, 30):  # the states a row's payments took (its warm-up's too), each channel's
                    paid, on_ab, on_bc = (payer.paid - before[0], a.channel(ab).state.sequence - before[1],
                                          b.channel(bc).state.sequence - before[2])
                    print(f"      states: A-B {on_ab:,}, B-C {on_bc:,} for {paid:,} payments "
                          f"({paid / max(on_ab, 1):.1f} and {paid / max(on_bc, 1):.1f} payments a state)", flush=True)
        if profile_hops and not until(settled, 30):  # none left to resume at the restart
            print("\ntwo hops: HTLCs still in flight after 30 s: no profile")
        elif profile_hops:
            await payer.aclose()
            if not instrument([a, b, c], directory, cprofile=False):
                return points
            payer = Payer(a, c, HOP_AMOUNT, paid=payer.paid)

            async def pay_one() -> None:  # a new invoice each try: a routed payment that failed stays failed
                await (await payer.pay_invoices(await payer.invoices(1)))(0)

            waited = await until_paid(pay_one)
            print(f"\nthe three workers restarted instrumented: the first payment went through after {waited:.1f} s")
            for in_flight in (1, 8):
                call = await payer.pay_invoices(await payer.invoices(WARM_UP + min(count, 500)))
                await spans([a, b, c], calls(call, in_flight), min(count, 500), in_flight,
                            "payments of C's invoices through B", directory, cprofile=False)
        await payer.aclose()
        # Every HTLC settled back: C holds every payment; nothing in flight on either channel.
        views = until(settled, 30)
        if views is None:
            print("  MISMATCH: HTLCs still in flight on A-B or B-C after 30 s")
        elif int(views["B-C at C"].local_balance) != payer.paid * HOP_AMOUNT:
            print(f"  MISMATCH: C holds {int(views['B-C at C'].local_balance):,} wei, the payments answered paid "
                  f"{payer.paid:,} x {HOP_AMOUNT:,}")
        else:
            print(f"  C holds {payer.paid:,} x {HOP_AMOUNT:,} wei; no HTLC left in flight on A-B or B-C, on either "
                  "side")
    finally:
        net.close()
    return points


# --- main ----------------------------------------------------------------------------------------


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


async def row(point: Awaitable[Point], label: str, in_flight: int) -> Point | None:
    """A row's point; a row that broke (its payments, its invoices, its stream) prints what failed,
    and the run goes on."""
    try:
        return await point
    except Exception as exc:
        print(f"  {label:15s} {in_flight:4d} in flight  FAILED: {type(exc).__name__}: {exc}", flush=True)
        return None


async def direct(args: argparse.Namespace, a: ChannelsNode, b: ChannelsNode, anvil_pid: int | None,
                 net: Network | None, directory: Path) -> list[Point]:
    """The direct sweep A -> B (and the profile on bare workers): its points."""
    in_flights = tuple(int(n) for n in args.in_flight.split(","))
    channel_id = open_channel(a, b, CHANNEL_FUNDS)
    print(f"channel {channel_id} A -> B open, {CHANNEL_FUNDS // ETHER} ETH (A's side); {_load()}", flush=True)
    payer = Payer(a, b)
    pids: dict[str, int | None] = {"A": a.pid, "B": b.pid, "bench": None}
    if anvil_pid is not None:
        pids["anvil"] = anvil_pid
    meter = CpuMeter(pids)
    points: list[Point] = []
    print(f"\ndirect payments, A -> B, {args.payments:,} per row (after {WARM_UP} untimed), 1 wei each, "
          "each durable on both sides when Pay returns:")
    # (kind, in flight, payments per message): Pay calls; one PayStream, a payment a message; one
    # PayStream, several a message (stream-batch), when the worker has them.
    rows = [(what, n, 0) for what in ("address", "invoice") for n in in_flights]
    if "PayStream" in pb.DESCRIPTOR.services_by_name["ChannelsService"].methods_by_name:
        rows += [("stream", n, 0) for n in (*in_flights, 256, 1024)]
    if "payments" in pb.PayStreamRequest.DESCRIPTOR.fields_by_name:
        rows += [("stream", n, per) for per, n in ((64, 256), (64, 1024), (256, 1024), (256, 2048))]
    for what, in_flight, per_message in rows:
        label = f"stream-batch {per_message}" if per_message else what
        point = await row(payer.point(what, args.payments, in_flight, meter, label, per_message), label, in_flight)
        if point is not None:
            points.append(point)
            print(point.line(), flush=True)
    print("  " + payer.check_both_sides(channel_id))
    print("\nan empty unary gRPC call (grpc.health.v1 Check on A's worker), from this process:")
    for in_flight in (1, 32):
        print(f"  {in_flight:3d} in flight  {(await unary_floor(a, args.payments, in_flight)).line()}")
    if args.profile or args.cprofile:
        if net is None:
            print("\n--profile: bare workers only (it restarts them instrumented); run without --trees")
        else:
            profiled = await profile(net, payer, (1, 32), min(args.payments, 1000), args.cprofile, directory)
            if profiled is None:
                return points
            payer = profiled
            print("  " + payer.check_both_sides(channel_id))
    await payer.aclose()
    return points


async def run(args: argparse.Namespace, directory: Path) -> None:
    l1 = Anvil()
    l1.start()
    try:
        if args.trees:
            trees = start_trees(directory)
            try:
                print("two trees: `l2node up` (its anvil, the whole devnet) and `l2node up --l1-rpc` (channels only)")
                points = await direct(args, trees[0], trees[1], None, None, directory)
            finally:
                for tree in trees:
                    tree.stop()
        else:
            net = await Network.start(directory, l1, ("alice", "bob"))
            try:
                points = await direct(args, net.nodes[0], net.nodes[1], l1.proc.pid if l1.proc else None, net,
                                      directory)
            finally:
                net.close()
        hops = await two_hop(directory, l1, args.hop_payments, tuple(int(n) for n in args.in_flight.split(",")),
                             args.profile, args.hop_stream) if args.two_hop else []
        print(f"\nceiling, same run and disk ({args.ceiling_payments:,} payments a mode; bench/channels_ceiling.py, "
              "one thread, no gRPC):")
        for mode, figures in ceiling(args.ceiling_payments, directory).items():
            print(f"  {mode:26s} {figures.line()}")
        print("\nL1 gas (bench/channels_gas.py's measure(), on the bench's own anvil):")
        print("  " + report(await measure(l1)).replace("\n", "\n  "))
        if points:
            best = max(points, key=lambda p: p.figures.per_second)
            one = [p.figures.p50_ms for p in points if p.in_flight == 1]
            print(f"\nbest direct: {best.figures.per_second:,.0f} payments/s ({best.what}) at {best.in_flight} in "
                  f"flight (goal >= 5,000); p50 at 1 in flight {one[0] if one else math.nan:.2f} ms (goal <= 5 ms); "
                  f"{_load()}")
        if hops:
            top = max(hops, key=lambda p: p.figures.per_second)
            print(f"best two hops: {top.figures.per_second:,.0f} payments/s ({top.what}) at {top.in_flight} in flight "
                  f"(goal >= 1,000); p50 at {hops[0].in_flight} in flight {hops[0].figures.p50_ms:.2f} ms "
                  "(goal <= 20 ms)")
    finally:
        l1.stop()


def stream_rows(text: str) -> tuple[tuple[int, int], ...]:
    """``--hop-stream``'s value: "120x60,120x40" -> ((120, 60), (120, 40))."""
    try:
        rows = tuple((int(n), int(m)) for n, m in (row.split("x") for row in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: IN_FLIGHTxPER_MESSAGE[,...], e.g. 120x60,120x40") from None
    if any(n < 1 or m < 1 or m > n for n, m in rows):
        raise argparse.ArgumentTypeError(f"{text!r}: each row needs 1 <= PER_MESSAGE <= IN_FLIGHT")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=2000, help="timed payments per row")
    parser.add_argument("--in-flight", default="1,8,32,64", help="Pay calls in flight, a row each")
    parser.add_argument("--hop-payments", type=int, default=500, help="timed payments per --two-hop row")
    parser.add_argument("--hop-stream", type=stream_rows, default=HOP_STREAM_ROWS,
                        help="the batched --two-hop rows, IN_FLIGHTxPER_MESSAGE each (default: "
                             f"{','.join(f'{n}x{m}' for n, m in HOP_STREAM_ROWS)})")
    parser.add_argument("--ceiling-payments", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="where a payment's time goes (instrumented workers)")
    parser.add_argument("--cprofile", action="store_true", help="--profile, and cProfile's top functions")
    parser.add_argument("--trees", action="store_true",
                        help="two trees (`l2node up`, and `l2node up --l1-rpc` on its anvil) instead of bare workers")
    parser.add_argument("--two-hop", action="store_true", help="A pays C's invoices through B")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where the nodes' data dirs go (default: a temp dir)")
    args = parser.parse_args()
    print(f"command: .venv/bin/python bench/channels.py {' '.join(sys.argv[1:])}".rstrip())
    what = "two trees" if args.trees else "two bare channels workers (tests/channels/_nodes.py's), one anvil"
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {_load()}; {what}")
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
