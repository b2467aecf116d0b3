"""OTP semantics, one test per row of the table, driven with task children (fast, in-process).

The same supervisor code drives process children; tests/supervisor/test_process.py repeats
the rows that depend on real processes (shutdown signals, hangs, orphans).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from supervisor import (
    BRUTAL_KILL,
    INFINITY,
    AlreadyPresent,
    AlreadyStarted,
    AutoShutdown,
    ChildSpec,
    ChildState,
    DynamicSupervisor,
    EventType,
    InvalidSpec,
    MaxChildren,
    NotFound,
    Restart,
    Restarting,
    RunningError,
    Shutdown,
    StartFailed,
    Strategy,
    Supervisor,
    SupervisorFlags,
    SupervisorSpec,
    TaskStatus,
    supervisor,
    task,
)


class Probe:
    """Task bodies that record what happened to them and can be told to crash or exit."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.kill: dict[str, asyncio.Event] = {}
        self.finish: dict[str, asyncio.Event] = {}

    def body(self, name: str, *, fail_start: bool = False) -> Callable[..., object]:
        async def run(task_status: TaskStatus) -> None:
            if fail_start:
                raise RuntimeError(f"{name} cannot start")
            self.kill[name] = asyncio.Event()
            self.finish[name] = asyncio.Event()
            self.log.append(f"start {name}")
            task_status.started()
            try:
                done = asyncio.create_task(self.finish[name].wait())
                crash = asyncio.create_task(self.kill[name].wait())
                try:
                    await asyncio.wait([done, crash], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    done.cancel()
                    crash.cancel()
                if crash.done() and not crash.cancelled():
                    raise RuntimeError(f"{name} crashed")
            except asyncio.CancelledError:
                self.log.append(f"stop {name}")
                raise

        return run

    def child(self, name: str, **kw: object) -> ChildSpec:
        return ChildSpec(id=name, start=task(self.body(name)), **kw)  # type: ignore[arg-type]


async def settle(sup: Supervisor, pred: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def states(sup: Supervisor) -> dict[str, ChildState]:
    return {c.id: c.state for c in sup.which_children()}


def restarts(sup: Supervisor) -> dict[str, int]:
    return {c.id: c.restarts for c in sup.which_children()}


async def crash(p: Probe, sup: Supervisor, name: str) -> None:
    before = sup.statistics().total_restarts
    p.kill[name].set()
    await settle(sup, lambda: (sup.statistics().total_restarts > before and all(
        s is ChildState.RUNNING for s in states(sup).values())) or not sup.running)


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, {"a": 0, "b": 1, "c": 0}),
        (Strategy.ONE_FOR_ALL, {"a": 1, "b": 1, "c": 1}),
        (Strategy.REST_FOR_ONE, {"a": 0, "b": 1, "c": 1}),
    ],
)
async def test_strategies_restart_the_right_children(strategy: Strategy, restarted: dict[str, int]) -> None:
    p = Probe()
    sup = Supervisor(SupervisorSpec(SupervisorFlags(strategy=strategy), [p.child(n) for n in "abc"]))
    await sup.start()
    p.log.clear()
    await crash(p, sup, "b")
    assert restarts(sup) == restarted
    # siblings are stopped in reverse order, then everything restarts in start order
    expected_stops = [f"stop {n}" for n in reversed("abc") if restarted[n] and n != "b"]
    expected_starts = [f"start {n}" for n in "abc" if restarted[n]]
    assert p.log == expected_stops + expected_starts
    await sup.stop()


async def test_intensity_escalates_after_more_than_intensity_restarts() -> None:
    p = Probe()
    bus_events: list[EventType] = []
    sup = Supervisor(SupervisorSpec(SupervisorFlags(intensity=2, period_s=10), [p.child("a"), p.child("b")]))
    sup.bus.add_listener(lambda e: bus_events.append(e.type))
    await sup.start()
    await crash(p, sup, "a")
    await crash(p, sup, "b")  # restarts counted supervisor-wide, not per child
    assert sup.running
    p.kill["a"].set()  # the third restart within the period: more than intensity=2
    with pytest.raises(Shutdown, match="max restart intensity"):
        await asyncio.wait_for(sup.wait_stopped(), 5)
    assert EventType.ESCALATED in bus_events
    assert all(s is ChildState.TERMINATED for s in states(sup).values())
    assert p.log[-1] == "stop b"  # everything stopped


async def test_restarts_outside_the_period_do_not_accumulate() -> None:
    p = Probe()
    sup = Supervisor(SupervisorSpec(SupervisorFlags(intensity=1, period_s=0.2), [p.child("a")]))
    await sup.start()
    for _ in range(4):
        await crash(p, sup, "a")
        await asyncio.sleep(0.25)
    assert sup.running and restarts(sup) == {"a": 4}
    await sup.stop()


async def test_failed_restart_attempts_count_toward_intensity() -> None:
    attempts = 0

    async def flaky(task_status: TaskStatus) -> None:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            raise RuntimeError("cannot come back")
        task_status.started()
        raise RuntimeError("crash once started")

    sup = Supervisor(SupervisorSpec(SupervisorFlags(intensity=3, period_s=10),
                                    [ChildSpec(id="f", start=task(flaky))]))
    events: list[EventType] = []
    sup.bus.add_listener(lambda e: events.append(e.type))
    await sup.start()
    with pytest.raises(Shutdown):
        await asyncio.wait_for(sup.wait_stopped(), 5)
    assert attempts == 1 + 3  # the first run, then three failed restarts, then escalation
    assert events.count(EventType.START_FAILED) == 3


@pytest.mark.parametrize(
    ("restart", "crash_it", "restarted", "kept"),
    [
        (Restart.PERMANENT, False, True, True),
        (Restart.PERMANENT, True, True, True),
        (Restart.TRANSIENT, False, False, True),
        (Restart.TRANSIENT, True, True, True),
        (Restart.TEMPORARY, False, False, False),
        (Restart.TEMPORARY, True, False, False),
    ],
)
async def test_restart_types(restart: Restart, crash_it: bool, restarted: bool, kept: bool) -> None:
    p = Probe()
    sup = Supervisor(SupervisorSpec(SupervisorFlags(), [p.child("x", restart=restart), p.child("y")]))
    await sup.start()
    exits: list[str] = []
    sup.bus.add_listener(lambda e: exits.append(e.child_id) if e.type is EventType.EXITED else None)
    (p.kill if crash_it else p.finish)["x"].set()
    await settle(sup, lambda: exits == ["x"] and states(sup).get("x") is not ChildState.RESTARTING)
    await asyncio.sleep(0.02)
    rows = {c.id: c for c in sup.which_children()}
    assert ("x" in rows) is kept
    if kept:
        assert (rows["x"].restarts == 1) is restarted
        assert rows["x"].state is (ChildState.RUNNING if restarted else ChildState.TERMINATED)
    assert rows["y"].state is ChildState.RUNNING
    await sup.stop()


async def test_start_in_order_and_rollback_on_failure() -> None:
    p = Probe()
    bad = ChildSpec(id="bad", start=task(p.body("bad", fail_start=True)))
    sup = Supervisor(SupervisorSpec(SupervisorFlags(), [p.child("a"), p.child("b"), bad, p.child("c")]))
    with pytest.raises(StartFailed) as info:
        await sup.start()
    assert info.value.child_id == "bad" and "cannot start" in info.value.why
    assert p.log == ["start a", "start b", "stop b", "stop a"]  # c never started
    assert not sup.running


async def test_stop_in_reverse_order() -> None:
    p = Probe()
    sup = Supervisor(SupervisorSpec(SupervisorFlags(), [p.child(n) for n in "abcd"]))
    await sup.start()
    await sup.stop()
    assert p.log[4:] == ["stop d", "stop c", "stop b", "stop a"]


async def test_shutdown_timeout_abandons_a_task_that_ignores_cancellation() -> None:
    release = asyncio.Event()

    async def stubborn(task_status: TaskStatus) -> None:
        task_status.started()
        while not release.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    sup = Supervisor(SupervisorSpec(SupervisorFlags(), [ChildSpec(id="s", start=task(stubborn), shutdown=50)]))
    await sup.start()
    t0 = asyncio.get_running_loop().time()
    await sup.stop()
    assert asyncio.get_running_loop().time() - t0 < 2
    assert "ignored cancellation" in sup.which_children()[0].last_exit_reason
    release.set()


@pytest.mark.parametrize("shutdown", [BRUTAL_KILL, INFINITY, 1000])
async def test_shutdown_settings_stop_tasks(shutdown: object) -> None:
    p = Probe()
    sup = Supervisor(SupervisorSpec(SupervisorFlags(), [p.child("a", shutdown=shutdown)]))
    await sup.start()
    await sup.stop()
    assert p.log == ["start a", "stop a"]


@pytest.mark.parametrize(
    ("mode", "exit_x", "exit_y", "stops"),
    [
        (AutoShutdown.ANY_SIGNIFICANT, True, False, True),
        (AutoShutdown.ALL_SIGNIFICANT, True, False, False),
        (AutoShutdown.ALL_SIGNIFICANT, True, True, True),
    ],
)
async def test_auto_shutdown(mode: AutoShutdown, exit_x: bool, exit_y: bool, stops: bool) -> None:
    p = Probe()
    kids = [p.child("x", restart=Restart.TRANSIENT, significant=True),
            p.child("y", restart=Restart.TEMPORARY, significant=True), p.child("z")]
    sup = Supervisor(SupervisorSpec(SupervisorFlags(auto_shutdown=mode), kids))
    events: list[EventType] = []
    sup.bus.add_listener(lambda e: events.append(e.type))
    await sup.start()
    if exit_x:
        p.finish["x"].set()
    if exit_y:
        p.finish["y"].set()
    if stops:
        await asyncio.wait_for(sup.wait_stopped(), 5)  # a normal stop: no exception
        assert EventType.AUTO_SHUTDOWN in events and "stop z" in p.log
    else:
        await asyncio.sleep(0.05)
        assert sup.running and states(sup)["z"] is ChildState.RUNNING
        await sup.stop()


def test_significant_needs_auto_shutdown_and_a_non_permanent_child() -> None:
    p = Probe()
    with pytest.raises(InvalidSpec, match="transient or temporary"):
        p.child("x", significant=True)
    with pytest.raises(InvalidSpec, match="auto_shutdown is never"):
        SupervisorSpec(SupervisorFlags(), [p.child("x", restart=Restart.TRANSIENT, significant=True)])


async def test_api_and_its_error_cases() -> None:
    p = Probe()
    sup = Supervisor(SupervisorSpec(SupervisorFlags(), [p.child("a")]))
    await sup.start()
    with pytest.raises(AlreadyStarted):
        await sup.start_child(p.child("a"))
    info = await sup.start_child(p.child("b"))
    assert info.state is ChildState.RUNNING
    with pytest.raises(RunningError):
        await sup.restart_child("b")
    with pytest.raises(RunningError):
        await sup.delete_child("b")
    await sup.terminate_child("b")
    assert states(sup)["b"] is ChildState.TERMINATED
    with pytest.raises(AlreadyPresent):
        await sup.start_child(p.child("b"))
    assert (await sup.restart_child("b")).state is ChildState.RUNNING
    await sup.terminate_child("b")
    await sup.delete_child("b")
    for call in (sup.restart_child, sup.terminate_child, sup.delete_child):
        with pytest.raises(NotFound):
            await call("b")
    counts = sup.count_children()
    assert (counts.specs, counts.active, counts.supervisors, counts.workers) == (1, 1, 0, 1)
    with pytest.raises(StartFailed):
        await sup.start_child(ChildSpec(id="bad", start=task(p.body("bad", fail_start=True))))
    assert "bad" not in states(sup)  # a child that never started leaves no spec
    await sup.stop()


async def test_restart_child_while_restarting_is_refused() -> None:
    gate = asyncio.Event()
    runs = 0

    async def second_start_fails(task_status: TaskStatus) -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            await gate.wait()
            raise RuntimeError("second start fails")
        task_status.started()
        if runs == 1:
            raise RuntimeError("crash")
        await asyncio.Event().wait()

    sup = Supervisor(SupervisorSpec(SupervisorFlags(), [ChildSpec(id="s", start=task(second_start_fails))]))
    await sup.start()
    await settle(sup, lambda: runs == 2)
    # The call queues behind the restart in progress, as a call to OTP's supervisor would.
    pending = asyncio.create_task(sup.restart_child("s"))
    await asyncio.sleep(0.02)
    gate.set()
    with pytest.raises(Restarting):  # between a failed attempt and the next one
        await pending
    await settle(sup, lambda: states(sup)["s"] is ChildState.RUNNING)
    assert runs == 3 and restarts(sup) == {"s": 1}
    await sup.stop()


async def test_nested_supervisors_escalate_to_their_parent() -> None:
    p = Probe()
    inner = SupervisorSpec(SupervisorFlags(intensity=0), [p.child("leaf")])
    mid = SupervisorSpec(SupervisorFlags(), [ChildSpec(id="inner", start=supervisor(inner)), p.child("m")])
    root = Supervisor(SupervisorSpec(SupervisorFlags(strategy=Strategy.ONE_FOR_ALL),
                                     [ChildSpec(id="mid", start=supervisor(mid)), p.child("r")]))
    events: list[tuple[EventType, str]] = []
    root.bus.add_listener(lambda e: events.append((e.type, e.child_id)))
    await root.start()
    assert [c.path for c in root.walk()] == ["mid", "mid/inner", "mid/inner/leaf", "mid/m", "r"]
    assert p.log == ["start leaf", "start m", "start r"]
    p.kill["leaf"].set()  # intensity 0: inner gives up at once; mid restarts inner
    await settle(root, lambda: (EventType.RESTARTED, "mid/inner") in events)
    assert (EventType.ESCALATED, "mid/inner") in events
    sup, cid = root.resolve("mid/inner/leaf")
    assert cid == "leaf" and sup.path == "mid/inner"
    assert restarts(root) == {"mid": 0, "r": 0}
    await root.stop()
    assert p.log[-3:] == ["stop r", "stop m", "stop leaf"]


async def test_dynamic_supervisor_max_children() -> None:
    p = Probe()
    dyn = DynamicSupervisor(SupervisorFlags(max_children=2))
    await dyn.start()
    await dyn.start_child(p.child("one"))
    await dyn.start_child(p.child("two"))
    with pytest.raises(MaxChildren):
        await dyn.start_child(p.child("three"))
    await crash(p, dyn, "one")
    assert restarts(dyn) == {"one": 1, "two": 0}
    await dyn.stop()
    with pytest.raises(InvalidSpec):
        DynamicSupervisor(SupervisorFlags(strategy=Strategy.ONE_FOR_ALL))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"intensity": -1}, "intensity"),
        ({"period_s": 0}, "period_s"),
        ({"max_children": 0}, "max_children"),
        ({"strategy": "one_for_one"}, "Strategy"),
    ],
)
def test_flags_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidSpec, match=match):
        SupervisorFlags(**kwargs)  # type: ignore[arg-type]


def test_child_spec_validation() -> None:
    p = Probe()
    with pytest.raises(InvalidSpec, match="child id"):
        p.child("a/b")
    with pytest.raises(InvalidSpec, match="shutdown"):
        p.child("a", shutdown=0)
    with pytest.raises(InvalidSpec, match="duplicate"):
        SupervisorSpec(SupervisorFlags(), [p.child("a"), p.child("a")])
    with pytest.raises(InvalidSpec, match="Starter"):
        ChildSpec(id="a", start=object())  # type: ignore[arg-type]
