"""Worker definitions used only by the benchmarks."""

from services.runtime import WorkerContext, WorkerDefinition


def _register(ctx: WorkerContext) -> None:
    """Nothing of its own: health, reflection and WorkerService come with the runtime."""


#: The runtime alone: what every service worker pays to come up.
IDLE = WorkerDefinition(name="idle", register=_register)
