"""The bridge tests' fixtures: a node's bridge on an L1 of its own (tests/bridge/_cluster.py), and
a relay client of the session's shared anvil (reverted after each test) for the outbox and the
relayer driven in-process."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from services.l1 import L1Client
from tests.bridge._cluster import Cluster
from tests.bridge.relay_driver import client
from tests.l1.anvil import Anvil, mining_anvil


@pytest.fixture
def l1() -> Iterator[Anvil]:
    """The cluster's L1: an anvil of its own mining a block a second (its workers follow the head)."""
    with mining_anvil() as node:
        yield node


@pytest.fixture
def cluster_options() -> dict[str, Any]:
    """Cluster's keyword arguments (the rollup's parameters, a rollups worker, the bridge's
    settings): a test module overrides this fixture to build its cluster differently."""
    return {}


@pytest.fixture
def cluster(tmp_path: pathlib.Path, l1: Anvil, cluster_options: dict[str, Any]) -> Iterator[Cluster]:
    c = Cluster(tmp_path, l1, **cluster_options)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def l1_client(chain: Anvil) -> AsyncIterator[L1Client]:
    """The relay's L1 client (fast retries) of the shared anvil."""
    async with client(chain.url) as c:
        yield c
