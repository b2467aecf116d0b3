"""The channels tests' shared fixture: two bare channels workers on their own anvil, per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.channels._nodes import Pair
from tests.l1.anvil import Anvil


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    node = Anvil()
    node.start()
    pair = Pair(tmp_path_factory.mktemp("channels"), node)
    try:
        yield pair
    finally:
        pair.close()
        node.stop()
