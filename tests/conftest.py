"""Fixtures every test package may use: one anvil for the whole session, reverted per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.l1.anvil import Anvil, shared_anvil


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with shared_anvil() as node:
        yield node


@pytest.fixture
def chain(anvil: Anvil) -> Iterator[Anvil]:
    """The shared anvil, reverted to its state before the test afterwards."""
    with anvil.snapshot():
        yield anvil
