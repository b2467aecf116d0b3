"""The sequencer tests' shared fixtures: the sequencer's parts in-process, and an anvil of the test's own."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.l1.anvil import Anvil
from tests.sequencer.test_chain import Sequencer


@pytest.fixture
async def sequencer(tmp_path: pathlib.Path) -> AsyncIterator[Sequencer]:
    """The sequencer's parts in this process, over the test's directory."""
    s = Sequencer(tmp_path)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def anvil() -> Iterator[Anvil]:
    """An anvil of the test's own: the sequencer tests stop its mining and reorg it, so here it
    shadows tests/conftest's session anvil (no sequencer test uses that one, nor ``chain``)."""
    node = Anvil()
    node.start()
    try:
        yield node
    finally:
        node.stop()
