"""Process children for real: forked from the zygote, probed over gRPC, killed with signals."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import sys

import grpc
import pytest

from supervisor import (
    BRUTAL_KILL,
    INFINITY,
    ChildKind,
    ChildSpec,
    EventType,
    ProbeFailed,
    Restart,
    Shutdown,
    StartFailed,
    SupervisorFlags,
    Zygote,
    external,
)
from supervisor._probe import GrpcHealthProbe, Liveness, _answer_at_once, _target
from tests.conftest import pid_alive

from .conftest import Tree, child, wait_running
from .workers import WARM_MARKER_ENV


async def serving(address: str) -> bool:
    probe = GrpcHealthProbe(address)
    try:
        await probe.check(1.0)
        return True
    except Exception:
        return False
    finally:
        await probe.close()


async def test_worker_is_ready_when_serving_and_comes_back_after_kill(tree: Tree) -> None:
    sup = await tree.start(SupervisorFlags(), tree.worker("w"))
    c = child(sup, "w")
    assert await serving(c.address)  # started means SERVING, not merely forked
    zygote_pid = child(sup, "zygote").pid
    assert os.getppid() != c.pid and c.pid != zygote_pid
    os.kill(c.pid, signal.SIGKILL)
    new_pid = await wait_running(sup, "w", other_than=c.pid)
    again = child(sup, "w")
    assert again.address == c.address and again.restarts == 1  # same port: peers reconnect
    assert "SIGKILL" in again.last_exit_reason
    assert await serving(again.address) and not pid_alive(c.pid) and pid_alive(new_pid)


async def test_a_warm_hook_runs_in_the_process_that_becomes_the_child_before_it_does(
        tree: Tree, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warmed, started = tmp_path / "warmed", tmp_path / "started"
    monkeypatch.setenv(WARM_MARKER_ENV, str(warmed))
    # A failing hook is reported on the zygote's stderr and skipped: the child starts all the same.
    tree.zygote = Zygote(preload=["tests.supervisor.workers"],
                         warm=["tests.supervisor.workers:warm_failing", "tests.supervisor.workers:warm_marker"])
    sup = await tree.start(SupervisorFlags(), tree.worker("w", payload={"marker": str(started)}))
    first = child(sup, "w").pid
    os.kill(first, signal.SIGKILL)
    second = await wait_running(sup, "w", other_than=first)
    await asyncio.sleep(0.2)  # the pool's next process, forked once the last child settled
    pids = [int(line) for line in warmed.read_text().split()]
    assert [int(line) for line in started.read_text().split()] == [first, second]
    # Each child ran the hook as a warm process, before its orders; and so did the one waiting now.
    assert first in pids and second in pids and len(pids) >= 3


async def test_a_child_and_every_thread_a_warm_hook_started_run_at_the_normal_policy(
        tree: Tree, tmp_path: pathlib.Path) -> None:
    # A warm process and the threads its hooks start run at the tree's policy, as the child they become.
    policies = tmp_path / "policies"
    tree.zygote = Zygote(preload=["tests.supervisor.workers"], warm=["tests.supervisor.workers:warm_thread"])
    sup = await tree.start(SupervisorFlags(), tree.worker("w", payload={"policies": str(policies)}))
    first = child(sup, "w").pid
    await asyncio.sleep(0.2)  # the next warm process has run its hook
    os.kill(first, signal.SIGKILL)
    await wait_running(sup, "w", other_than=first)
    lines = policies.read_text().splitlines()
    assert len(lines) == 2 and all(len(line.split()) >= 2 for line in lines)  # the hook's thread is there
    assert {int(p) for line in lines for p in line.split()} == {os.SCHED_OTHER}


async def test_workers_outlive_a_zygote_crash(tree: Tree) -> None:
    sup = await tree.start(SupervisorFlags(), tree.worker("a"), tree.worker("b"))
    before = {cid: child(sup, cid).pid for cid in ("a", "b")}
    zpid = child(sup, "zygote").pid
    os.kill(zpid, signal.SIGKILL)
    await wait_running(sup, "zygote", other_than=zpid)
    assert {cid: child(sup, cid).pid for cid in ("a", "b")} == before  # one_for_one: untouched
    os.kill(before["a"], signal.SIGKILL)  # and the new zygote forks replacements
    await wait_running(sup, "a", other_than=before["a"])


@pytest.mark.parametrize(
    ("shutdown", "ignore_sigterm", "reason"),
    [
        (BRUTAL_KILL, False, "killed by SIGKILL"),
        (300, True, "did not stop within 300 ms; killed by SIGKILL"),
        (5000, False, "exited with code 0"),
        (INFINITY, False, "exited with code 0"),
    ],
)
async def test_shutdown_settings(tree: Tree, shutdown: object, ignore_sigterm: bool, reason: str) -> None:
    sup = await tree.start(SupervisorFlags(), tree.worker("w", shutdown=shutdown,
                                                          payload={"ignore_sigterm": ignore_sigterm}))
    pid = child(sup, "w").pid
    await sup.terminate_child("w")
    assert child(sup, "w").last_exit_reason == reason
    assert not pid_alive(pid)


async def test_children_stop_in_reverse_start_order(tree: Tree) -> None:
    sup = await tree.start(SupervisorFlags(), tree.worker("a"), tree.worker("b"), tree.worker("c"))
    exits: list[str] = []
    sup.bus.add_listener(lambda e: exits.append(e.child_id) if e.type is EventType.EXITED else None)
    await sup.stop()
    tree.sup = None
    assert exits == ["c", "b", "a", "zygote"]


async def test_start_failure_stops_the_started_ones_and_says_why(tree: Tree) -> None:
    ok = tree.worker("ok")
    bad = tree.worker("bad", payload={"crash_on_start": True})
    with pytest.raises(StartFailed, match="exited with code 3 before it was ready") as info:
        await tree.start(SupervisorFlags(), ok, bad, tree.worker("never"))
    assert info.value.child_id == "bad"
    assert tree.sup is not None and not tree.sup.running
    tree.sup = None


async def test_start_timeout(tree: Tree) -> None:
    slow = tree.worker("slow", payload={"start_delay_s": 5}, start_timeout_s=0.5)
    with pytest.raises(StartFailed, match=r"not SERVING after 0\.5s"):
        await tree.start(SupervisorFlags(), slow)
    tree.sup = None


async def test_transient_worker_restarts_only_on_abnormal_exit(tree: Tree) -> None:
    sup = await tree.start(
        SupervisorFlags(),
        tree.worker("clean", restart=Restart.TRANSIENT, payload={"exit_after_s": 0.3, "exit_code": 0}),
        tree.worker("dirty", restart=Restart.TRANSIENT, payload={"exit_after_s": 0.3, "exit_code": 2}),
    )
    first = child(sup, "dirty").pid
    await wait_running(sup, "dirty", other_than=first)
    assert child(sup, "clean").state.value == "terminated"
    assert child(sup, "clean").last_exit_reason == "exited with code 0"


async def test_hung_worker_is_killed_and_restarted(tree: Tree) -> None:
    fast = Liveness(interval_s=0.1, timeout_s=0.2, failures=3)
    sup = await tree.start(SupervisorFlags(), tree.worker("w", liveness=fast))
    events: list[tuple[EventType, str]] = []
    sup.bus.add_listener(lambda e: events.append((e.type, e.reason)))
    pid = child(sup, "w").pid
    os.kill(pid, signal.SIGSTOP)  # alive as far as the kernel is concerned, but answers nothing
    await wait_running(sup, "w", other_than=pid)
    misses = [r for t, r in events if t is EventType.PROBE_FAILED]
    assert len(misses) == 3 and misses[-1].startswith("miss 3/3")
    assert "hung: 3 probes missed" in child(sup, "w").last_exit_reason
    assert not pid_alive(pid)


async def test_hangs_count_toward_intensity(tree: Tree) -> None:
    fast = Liveness(interval_s=0.05, timeout_s=0.1, failures=2)
    sup = await tree.start(SupervisorFlags(intensity=1, period_s=30), tree.worker("w", liveness=fast))
    pid = child(sup, "w").pid
    os.kill(pid, signal.SIGSTOP)
    pid = await wait_running(sup, "w", other_than=pid)
    os.kill(pid, signal.SIGSTOP)
    with pytest.raises(Shutdown, match="max restart intensity"):
        await asyncio.wait_for(sup.wait_stopped(), 10)
    assert not pid_alive(pid)
    tree.sup = None


async def test_a_replacement_never_shares_a_port(tree: Tree) -> None:
    sup = await tree.start(SupervisorFlags(), tree.worker("first"))
    address = child(sup, "first").address
    # With SO_REUSEPORT on, the twin would bind and silently share the port; off, its bind fails.
    with pytest.raises(StartFailed, match="already in use by another process"):
        await sup.start_child(tree.worker("twin", address=address, start_timeout_s=3))
    assert await serving(address)


def test_a_local_port_is_known_refused_or_accepting_at_once_and_a_name_not() -> None:
    with socket.socket() as closed, socket.socket() as listening:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: a connect is refused
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert _answer_at_once("127.0.0.1", closed.getsockname()[1]) is False
        assert _answer_at_once("127.0.0.1", listening.getsockname()[1]) is True
        assert _answer_at_once("localhost", closed.getsockname()[1]) is None  # a name: not without resolving it


def test_a_probe_channel_targets_an_ip_literal_without_the_resolver() -> None:
    assert _target("127.0.0.1:5000") == "ipv4:127.0.0.1:5000"
    assert _target("[::1]:5000") == "ipv6:[::1]:5000"
    assert _target("localhost:5000") == "localhost:5000"


async def test_probe_uses_standard_health(tree: Tree) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    sup = await tree.start(SupervisorFlags(), tree.worker("w"))
    async with grpc.aio.insecure_channel(child(sup, "w").address) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_nested_process_children_are_listed_by_path(tree: Tree) -> None:
    from l2node.node import endpoints
    from supervisor import ChildSpec, SupervisorSpec, supervisor

    core = SupervisorSpec(SupervisorFlags(), [tree.worker("sequencer"), tree.worker("rollups")])
    sup = await tree.start(SupervisorFlags(), ChildSpec(id="core", start=supervisor(core)))
    doc = endpoints.document(sup, "127.0.0.1:1", None)
    rows = {c["id"]: c for c in doc["children"]}
    assert list(rows) == ["zygote", "core/sequencer", "core/rollups"]  # processes only, flattened
    assert all(rows[i]["kind"] == "worker" and rows[i]["pid"] > 0 for i in ("core/sequencer", "core/rollups"))
    owner, cid = sup.resolve("core/rollups")
    old = rows["core/rollups"]["pid"]
    os.kill(old, signal.SIGKILL)
    await wait_running(owner, cid, other_than=old)
    assert child(sup, "core").restarts == 0  # the nested supervisor handled it


async def test_a_reply_left_behind_by_a_cancelled_request_is_not_taken_for_a_spawns(tree: Tree) -> None:
    sup = await tree.start(SupervisorFlags())
    zygote_pid = child(sup, "zygote").pid
    channel = tree.zygote._channel
    assert channel is not None
    # What a ping cancelled by its deadline leaves: a request sent, its reply never read.
    channel._writer.write(b'{"op": "ping", "id": -1}\n')
    spec = tree.worker("w")
    info = await sup.start_child(spec)
    assert info.pid not in (None, zygote_pid) and pid_alive(info.pid)
    assert await serving(info.address)
    os.kill(info.pid, signal.SIGKILL)  # and it is that process the supervisor watches
    await wait_running(sup, "w", other_than=info.pid)


class _FileProbe:
    """A probe that knows nothing of the network: ready once the program has written its file."""

    made: list[str] = []

    def __init__(self, address: str) -> None:
        self.address = address
        _FileProbe.made.append(address)

    async def preflight(self) -> None:
        return None

    async def check(self, timeout_s: float) -> None:
        if not await asyncio.to_thread(os.path.exists, self.address):
            raise ProbeFailed(f"{self.address} not written yet")

    async def close(self) -> None:
        return None


async def test_an_external_child_is_probed_by_the_probe_its_spec_gives(tree: Tree, tmp_path: pathlib.Path
                                                                       ) -> None:
    ready = tmp_path / "ready"
    script = f"import pathlib, time; time.sleep(0.3); pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    start = external(tree.zygote, [sys.executable, "-c", script], str(ready), _FileProbe, start_timeout_s=10)
    sup = await tree.start(SupervisorFlags(), ChildSpec(id="ext", start=start))
    assert ready.exists()  # started means the given probe said ready, not merely exec'd
    assert _FileProbe.made == [str(ready)] and child(sup, "ext").kind is ChildKind.EXTERNAL
    ready.unlink()  # its liveness is the same probe: three misses and the child is hung
    await wait_running(sup, "ext", other_than=child(sup, "ext").pid)
    assert "hung" in child(sup, "ext").last_exit_reason and _FileProbe.made == [str(ready)] * 2
