"""The L1 breaker against a real anvil that dies and comes back on the same port."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.l1 import L1Client, policy_config
from services.runtime import BreakerOpen, CallPolicy
from tests.l1.anvil import Anvil


async def test_the_breaker_opens_when_anvil_is_killed_and_closes_after_it_restarts() -> None:
    node = Anvil()  # its own anvil: killing the session's would break the other tests
    node.start()
    policy = CallPolicy(f"l1-breaker-{uuid.uuid4().hex[:8]}", policy_config(
        deadline_s=1.0, max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02,
        breaker_fail_max=3, breaker_reset_s=0.3))
    try:
        async with L1Client(node.url, policy=policy) as l1:
            assert await l1.block_number() == 0
            node.stop()  # SIGKILL; the client still holds a keep-alive connection to it
            for _ in range(2):  # 2 calls x 2 attempts: connection errors, retried, then the circuit opens
                with pytest.raises((OSError, BreakerOpen)):
                    await l1.block_number()
            stats = policy.statistics()
            assert stats.state == "open" and stats.failures >= 3 and stats.retries >= 1
            with pytest.raises(BreakerOpen):  # rejected at once: nothing is sent to a dead endpoint
                await l1.block_number()
            node.start()  # same port
            await asyncio.sleep(0.35)  # breaker_reset_s: the next call is the half-open trial
            assert await l1.block_number() == 0
            assert policy.statistics().state == "closed"
    finally:
        node.stop()
