"""Worker definitions used only by the benchmarks."""

from collections.abc import Sequence

from services.runtime import Service, WorkerContext, WorkerDefinition
from supervisor import ChildSpec


class _Idle:
    """Nothing of its own: health, reflection and WorkerService come with the runtime."""

    def tasks(self) -> Sequence[ChildSpec]:
        return ()

    async def aclose(self) -> None:
        pass


async def _register(ctx: WorkerContext) -> Service:
    return _Idle()


#: The runtime alone: what every service worker pays to come up.
IDLE = WorkerDefinition(name="idle", register=_register)
