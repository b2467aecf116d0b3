"""The worker runtime: the one way a service process is built and run.

A service is a :class:`WorkerDefinition`; the runtime gives it config, storage, a grpc.aio
server with health, reflection, tracing and error mapping, a supervised task tree, and a
graceful stop. ``register`` returns the :class:`Service`: what owns the tasks and closes what
was opened::

    async def register(ctx: WorkerContext) -> Service:
        sequencer = await Sequencer.open(ctx.storage)  # tasks() -> its loops; aclose() -> closes it
        add_SequencerServicer_to_server(SequencerServicer(sequencer), ctx.server)
        return sequencer

    WORKER = WorkerDefinition(name="sequencer", register=register)

    # python -m services.runtime services.sequencer:WORKER --config-json '{...}'

Handlers raise :class:`DomainError` subclasses; clients get the matching gRPC code with
``google.rpc`` details. Outbound calls go through ``ctx.channel(address)`` and a
:class:`CallPolicy`. Only work makes spans: a poll runs under :func:`quiet` (or, for L1 calls,
outside any span: :func:`child_span`), and a span another process must link to without being
told its ids is started with :func:`start_keyed_span` (``keyed_context`` on the other side).

Read in this order: ``_config``, ``_definition``, ``_bootstrap``; then ``_errors`` and
``_interceptor`` (errors and server spans), ``_tracing`` and ``_channels`` (client side),
``_health``, ``_readiness``, ``_status``, ``_storage``, ``_logging``, ``_monitor``.
"""

from services.runtime._bootstrap import (
    EXIT_FAILED,
    EXIT_OK,
    MONITOR_PRELOAD,
    SERVER_OPTIONS,
    ZYGOTE_PRELOAD,
    ZYGOTE_WARM,
    run,
    zygote_entry,
)
from services.runtime._config import (
    DEFAULT_MONITOR_BASE,
    MonitorPorts,
    WorkerConfig,
    check_nice,
    check_threads,
    cpu_count,
    monitor_port_for,
    settings_from,
)
from services.runtime._definition import (
    Service,
    ServiceRegistry,
    WorkerContext,
    WorkerDefinition,
    load_definition,
)
from services.runtime._errors import (
    DOMAIN,
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
)
from services.runtime._gc import collect_young_rarely
from services.runtime._health import SERVING, HealthServicer
from services.runtime._idempotency import Idempotency
from services.runtime._interceptor import ServerInterceptor
from services.runtime._logging import LOG_DIR_ENV, console_line, init_logging, log_event, log_file
from services.runtime._metrics import (
    BREAKER_LEVELS,
    MULTIPROC_ENV,
    counter,
    exit_reason,
    gauge,
    histogram,
    service_label,
)
from services.runtime._policy import (
    Attempt,
    BreakerOpen,
    CallPolicy,
    PolicyConfig,
    call_unary,
    new_request_id,
    policies,
)
from services.runtime._priority import MAX_NICE, lower_thread_priority
from services.runtime._redact import redact, redact_url
from services.runtime._retry import (
    ANSWER,
    FAULT,
    TRANSIENT,
    DeadlineExceeded,
    Verdict,
    default_classify,
    http_status_verdict,
)
from services.runtime._storage import Storage, open_database
from services.runtime._tracing import (
    BlockingClientInterceptor,
    child_span,
    init_tracing,
    keyed_context,
    quiet,
    start_keyed_span,
    unrecorded_span,
)

__all__ = [
    "ANSWER",
    "BREAKER_LEVELS",
    "DEFAULT_MONITOR_BASE",
    "DOMAIN",
    "EXIT_FAILED",
    "EXIT_OK",
    "FAULT",
    "LOG_DIR_ENV",
    "MAX_NICE",
    "MONITOR_PRELOAD",
    "MULTIPROC_ENV",
    "SERVER_OPTIONS",
    "SERVING",
    "TRANSIENT",
    "ZYGOTE_PRELOAD",
    "ZYGOTE_WARM",
    "Aborted",
    "AlreadyExists",
    "Attempt",
    "BlockingClientInterceptor",
    "BreakerOpen",
    "CallPolicy",
    "DeadlineExceeded",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "HealthServicer",
    "Idempotency",
    "InvalidArgument",
    "MonitorPorts",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "PolicyConfig",
    "ResourceExhausted",
    "ServerInterceptor",
    "Service",
    "ServiceRegistry",
    "Storage",
    "Unavailable",
    "Unimplemented",
    "Verdict",
    "WorkerConfig",
    "WorkerContext",
    "WorkerDefinition",
    "call_unary",
    "check_nice",
    "check_threads",
    "child_span",
    "collect_young_rarely",
    "console_line",
    "counter",
    "cpu_count",
    "default_classify",
    "exit_reason",
    "gauge",
    "histogram",
    "http_status_verdict",
    "init_logging",
    "init_tracing",
    "keyed_context",
    "load_definition",
    "log_event",
    "log_file",
    "lower_thread_priority",
    "monitor_port_for",
    "new_request_id",
    "open_database",
    "policies",
    "quiet",
    "redact",
    "redact_url",
    "run",
    "service_label",
    "settings_from",
    "start_keyed_span",
    "unrecorded_span",
    "zygote_entry",
]
