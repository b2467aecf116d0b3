"""The block producer: the loop that seals a block every ``block_time_s`` while something is
pending, or at once when a block's worth is (``Intake.block_full``; ``Chain.block_worth``) or when deposits or forced
transactions became due (``Chain.inputs_due``: L1's safe head moved over them); an empty one now and then
while a transaction waits for the base fee to fall (``Chain._empty_block_due``); heartbeats and
catch-up blocks (``Chain._heartbeat_due``, the sequencer window); and drops what
waited past the pool's lifetime (``Chain.expire``)."""

from __future__ import annotations

import asyncio
import time

from supervisor import TaskStatus

from . import _metrics as metrics
from ._chain import Chain
from ._intake import Intake

#: How often the pool is scanned for what outlived its lifetime. The scan walks every pooled
#: transaction (6-11 ms for 100k pooled, measured here), so not at every block: under load blocks follow each other
#: within milliseconds. A drop comes at most this late, against a lifetime of hours.
EXPIRY_SCAN_S = 1.0


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
        next_scan = 0.0
        while True:
            started = asyncio.get_running_loop().time()
            chain.inputs_due.clear()  # before the seal, which takes what is due: a later set wakes the next
            sealed = await chain.seal()
            if sealed is not None:
                metrics.SEAL_SECONDS.observe(asyncio.get_running_loop().time() - started)
            if (now := time.monotonic()) >= next_scan:
                await chain.expire(now)
                next_scan = now + EXPIRY_SCAN_S
            elapsed = asyncio.get_running_loop().time() - started
            metrics.observe_chain(chain)
            intake.block_full.clear()
            intake.block_txs = worth = chain.block_worth(self._max_block_txs)
            # Catch-up blocks go at once, one after the other (while they seal: an unsealable round waits).
            if len(chain.mempool) < worth and (sealed is None or not chain.catching_up):
                await _first_set((intake.block_full, chain.inputs_due), max(0.0, self._block_time_s - elapsed))


async def _first_set(events: tuple[asyncio.Event, ...], timeout_s: float) -> None:
    """Return when one of ``events`` is set, or after ``timeout_s``."""
    if any(e.is_set() for e in events):
        return
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
