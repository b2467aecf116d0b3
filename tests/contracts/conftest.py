"""The contract tests' L1: the session's shared anvil (reverted per test), through the real client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.l1 import L1Client
from tests.l1.anvil import Anvil


@pytest.fixture
async def l1(chain: Anvil) -> AsyncIterator[L1Client]:
    async with L1Client(chain.url) as client:
        yield client
