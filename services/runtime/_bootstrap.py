"""A worker's life: config -> storage -> server -> registration -> task tree -> serve -> stop.

Start-up order (health says SERVING only at the end, because readiness is health):
storage, gRPC server bound and started with health NOT_SERVING (so that watchers are connected by
the time it changes; calls to services not registered yet are UNAVAILABLE, see _router), the
service's handlers (``register`` returns the service), a millisecond for watchers still on their
way in (unless one is in), the service's task tree started, SERVING.

Shutdown order, on SIGTERM or SIGINT: NOT_SERVING; keep serving ``drain_s``; end Health.Watch
streams; ``server.stop(grace_s)``; task tree; the service's ``aclose``; outbound channels;
storage (checkpointed); spans flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, Final, NoReturn

import grpc
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

import supervisor
from services.runtime._channels import Channels
from services.runtime._config import WorkerConfig
from services.runtime._definition import (
    ServiceRegistry,
    WorkerContext,
    WorkerDefinition,
    load_definition,
)
from services.runtime._health import HEALTH_SERVICE, SERVING, HealthServicer
from services.runtime._interceptor import ServerInterceptor
from services.runtime._logging import init_logging, log_event
from services.runtime._metrics import bind as bind_metrics
from services.runtime._metrics import task_event
from services.runtime._monitor import monitor
from services.runtime._readiness import Readiness
from services.runtime._router import Router
from services.runtime._status import SERVICE_NAME as WORKER_SERVICE
from services.runtime._status import WorkerStatusServicer
from services.runtime._storage import Storage
from services.runtime._tracing import Tracing, init_tracing
from services.runtime._warm import worker_loop

#: Stopped as asked (SIGTERM/SIGINT).
EXIT_OK: Final = 0
#: Could not start, or the task tree gave up: the process supervisor should restart us.
EXIT_FAILED: Final = 1

#: What a zygote should import once so that forked workers skip it: the runtime itself, plus
#: what it imports only on demand (the OTLP exporter ~0.05 s). None of them creates a gRPC
#: object or a thread at import, so forking after them is safe.
ZYGOTE_PRELOAD: Final = (
    "services.runtime",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    # "module:function" entries are called once imported: first-use work, done before forking.
    "services.runtime._prewarm:prewarm",
)

#: What each of a zygote's pre-forked processes calls while it waits to become a worker (the zygote's
#: ``warm``): work every worker does first after the fork, off its way to SERVING.
ZYGOTE_WARM: Final = ("services.runtime._metrics:own_files", "services.runtime._warm:start_grpc")

#: Add to the zygote's preload when workers run aiomonitor (~0.3 s to import). Not preloaded
#: otherwise: every module in the zygote makes each fork larger to copy and to tear down.
MONITOR_PRELOAD: Final = ("aiomonitor",)

#: How long a worker waits for a predecessor to let go of its database (an orphan's graceful
#: stop takes at most supervisor's ORPHAN_GRACE_S); well within the start timeout.
STORAGE_LOCK_WAIT_S: Final = 5.0

#: Seconds after SERVING when a forked worker records the pages its start wrote.
RECORD_PAGES_AFTER_S: Final = 1.0

#: Seconds a worker that no Health.Watch has reached yet leaves its event loop free before its task
#: tree starts and it says SERVING (see _serve).
ADMIT_WATCHERS_S: Final = 0.001

SERVER_OPTIONS: Final = (
    # Without this, a replacement worker binds the port of a half-dead predecessor that still
    # listens, and the kernel splits new connections between the two.
    ("grpc.so_reuseport", 0),
)

_log = logging.getLogger("l2node.runtime")


def run(definition: WorkerDefinition, config: WorkerConfig) -> int:
    """Run the worker until SIGTERM/SIGINT; returns the process exit code. Sets up logging and
    tracing for the whole process, so call it once per process."""
    init_logging(config.service, config.log_level_number)
    bind_metrics(config.service)
    tracing = init_tracing(config.service)
    try:
        with asyncio.Runner(loop_factory=worker_loop) as runner:  # asyncio.run, on the warm loop if any
            return runner.run(_serve(definition, config, tracing))
    except Exception:
        _log.exception("worker failed", extra={"definition": definition.name})
        return EXIT_FAILED
    finally:
        tracing.shutdown()


def zygote_entry(payload: Mapping[str, Any]) -> NoReturn:
    """Become a worker inside a freshly forked child of the zygote, and never return into it.

    ``payload`` is ``{"definition": "module:ATTR", "config": {...WorkerConfig mapping}}``.
    Logging, OpenTelemetry and gRPC are all created here, after the fork.
    """
    code = EXIT_FAILED
    try:
        definition = load_definition(str(payload["definition"]))
        config = WorkerConfig.from_mapping(payload["config"])
        code = run(definition, config)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
    except BaseException:
        traceback.print_exc()
        code = EXIT_FAILED
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


async def _serve(definition: WorkerDefinition, config: WorkerConfig, tracing: Tracing) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)

    async with contextlib.AsyncExitStack() as cleanup:  # unwinds in reverse: storage closes last
        # One writer per database. Inside a tree a worker starts only after its predecessor was
        # reaped, but a tree started right after its predecessor died meets that tree's orphaned
        # workers still draining (ORPHAN_GRACE_S), after they gave up their port and before their
        # storage closed: wait for them, then refuse naming the holder.
        lock = await supervisor.PidLock.acquire_within(config.database_path.with_suffix(".lock"),
                                                       STORAGE_LOCK_WAIT_S)
        cleanup.callback(lock.release)
        storage = Storage(config.database_path)
        cleanup.callback(storage.close)
        channels = Channels(tracing.tracer)
        cleanup.push_async_callback(channels.close)

        server = grpc.aio.server(interceptors=[ServerInterceptor(tracing.tracer)], options=SERVER_OPTIONS)
        router = Router()
        server.add_generic_rpc_handlers([router])
        health = HealthServicer([WORKER_SERVICE])
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        try:
            port = server.add_insecure_port(config.address)
        except RuntimeError as exc:  # gRPC's own message names no cause
            raise RuntimeError(f"cannot listen on {config.address}: is another program bound to it?") from exc
        # Serving (NOT_SERVING) before the service registers: whoever waits for this worker connects
        # and opens its Health.Watch meanwhile, and hears SERVING as soon as it is set (_router).
        await server.start()
        try:
            registry = ServiceRegistry(router)
            ctx = WorkerContext(
                server=registry,
                config=config,
                storage=storage,
                logger=logging.getLogger(f"l2node.{config.service}"),
                tracer=tracing.tracer,
                _channel=channels.get,
            )
            service = await definition.register(ctx)
            # The stack unwinds in reverse, after the server stopped (below): the task tree, then the
            # service's aclose (its tasks no longer use what it closes), then channels, storage.
            cleanup.push_async_callback(service.aclose)

            tree = _TaskTree(service.tasks())
            readiness = Readiness(ctx.not_ready_reasons, ctx.readiness_checks)
            router.add_generic_rpc_handlers(
                [WorkerStatusServicer(config.service, tree.rows, readiness.reasons).handler()])
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(
                [*registry.service_names, WORKER_SERVICE, HEALTH_SERVICE, reflection.SERVICE_NAME]), router)
            router.started()
            health.known(registry.service_names)

            ports, console = config.monitor_ports, config.monitor_console
            cleanup.enter_context(monitor(ports, console=console, local_vars={"ctx": ctx, "service": service}))
            cleanup.push_async_callback(tree.stop)  # after the server: in-flight calls may need tasks
            if not health.watching:
                # With grpc.aio a call that has arrived reaches its handler only over several turns of
                # a free event loop, each waiting on grpc's poller thread. A service whose registration
                # holds the loop (the sequencer's, ~10 ms of CPU) has its watchers' Watch calls arrive
                # meanwhile and, without this, dispatched only after SERVING, behind the task tree's
                # first steps (its L1 clients' requests): 3-20 ms from SERVING to a watcher hearing it
                # at load 4-9 here; with it, 2.6-4.9 ms (bench/RESULTS.md, session 14). A service
                # whose registration waited on I/O (rollups: L1) has its watchers in already.
                await asyncio.sleep(ADMIT_WATCHERS_S)
            await tree.start()
            if not stop.is_set():  # a signal during start-up: never claim readiness
                health.set_all(SERVING)
                # Alive ("" SERVING); its services' names say whether they can do their job.
                readiness.apply(health, registry.service_names)
                watching = asyncio.create_task(readiness.watch(health, registry.service_names))
                cleanup.push_async_callback(_cancelled, watching)
                # Which inherited pages this start wrote, for the next warm process to copy beforehand
                # (supervisor._warm_pages); a little later, so that the first calls' pages count too.
                asyncio.get_running_loop().call_later(RECORD_PAGES_AFTER_S, supervisor.record_warm_pages)
            _log.info(
                "serving",
                extra={"address": config.address, "port": port, "services": registry.service_names},
            )
            code = await _wait(stop, tree, storage)
            await _drain_and_stop(server, health, config)
        finally:
            await server.stop(0)  # no-op after a graceful stop; cancels everything on errors
    _log.info("stopped", extra={"exit_code": code})
    return code


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _wait(stop: asyncio.Event, tree: _TaskTree, storage: Storage) -> int:
    """Until a signal (EXIT_OK), the task tree gives up or the disk lost a commit (EXIT_FAILED)."""
    async with asyncio.TaskGroup() as tg:
        signalled = tg.create_task(stop.wait())
        ended = tg.create_task(tree.wait())
        lost = tg.create_task(storage.wait_sync_failed())
        await asyncio.wait([signalled, ended, lost], return_when=asyncio.FIRST_COMPLETED)
        for task in (signalled, ended, lost):
            task.cancel()
    if lost.done() and not lost.cancelled():
        _log.critical("an fsync failed: the disk may have lost commits; stopping, to start again from what it holds",
                      extra={"error": str(lost.result())})
        return EXIT_FAILED
    return EXIT_OK if signalled.done() and not signalled.cancelled() else tree.exit_code


async def _drain_and_stop(server: grpc.aio.Server, health: HealthServicer, config: WorkerConfig) -> None:
    health.enter_graceful_shutdown()
    _log.info("draining", extra={"drain_s": config.drain_s, "grace_s": config.grace_s})
    await asyncio.sleep(config.drain_s)
    # A Watch is open for the life of its client; without this stop() would wait the grace out.
    health.end_watches()
    await server.stop(config.grace_s)


class _TaskTree:
    """The definition's long-running loops under a one_for_one supervisor (maybe none)."""

    def __init__(self, children: Sequence[supervisor.ChildSpec]) -> None:
        flags = supervisor.SupervisorFlags(strategy=supervisor.Strategy.ONE_FOR_ONE)
        spec = supervisor.SupervisorSpec(flags=flags, children=children)
        self._sup = supervisor.Supervisor(spec) if children else None
        if self._sup is not None:  # a task that crashes is a WARNING, a tree that gives up an ERROR
            self._sup.bus.add_listener(task_event)
            self._sup.bus.add_listener(lambda event: log_event(_log, event, min_level=logging.WARNING))
        self.exit_code = EXIT_OK

    async def start(self) -> None:
        if self._sup is not None:
            await self._sup.start()

    async def wait(self) -> None:
        """Return when the tree ended by itself; with no tree, never."""
        if self._sup is None:
            await asyncio.Future()
            return
        try:
            await self._sup.wait_stopped()
        except supervisor.Shutdown as exc:
            _log.error("task tree gave up; exiting so the worker is restarted", extra={"reason": str(exc)})
            self.exit_code = EXIT_FAILED

    async def stop(self) -> None:
        if self._sup is not None:
            await self._sup.stop()

    def rows(self) -> list[tuple[str, str, int]]:
        if self._sup is None:
            return []
        return [(c.id, c.state.value, c.restarts) for c in self._sup.which_children()]


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    # A second signal changes nothing: the hard stop is the process supervisor's SIGKILL.
    if not stop.is_set():
        _log.info("stop requested", extra={"signal": sig.name})
    stop.set()
