"""The block producer: the loop that seals a block every ``block_time_s`` while something is
pending, or at once when a block's worth is (``Intake.block_full``)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from supervisor import TaskStatus

from . import _metrics as metrics
from ._chain import Chain
from ._intake import Intake


class BlockProducer:
    def __init__(self, chain: Chain, intake: Intake, *, max_block_txs: int, block_time_s: float) -> None:
        self._chain = chain
        self._intake = intake
        self._max_block_txs = max_block_txs
        self._block_time_s = block_time_s

    async def run(self, task_status: TaskStatus) -> None:
        """Seal every block_time while something is pending, or at once when a block's worth is."""
        chain, intake = self._chain, self._intake
        task_status.started()
        while True:
            started = asyncio.get_running_loop().time()
            sealed = await chain.seal()
            if sealed is not None:
                metrics.SEAL_SECONDS.observe(asyncio.get_running_loop().time() - started)
            await chain.expire(time.monotonic())
            elapsed = asyncio.get_running_loop().time() - started
            metrics.observe_chain(chain)
            intake.block_full.clear()
            if len(chain.mempool) < self._max_block_txs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(intake.block_full.wait(), max(0.0, self._block_time_s - elapsed))
