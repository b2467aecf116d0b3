"""Fixtures shared by the node tests: one `l2node up` tree per test (tests/node/test_up.py's Node)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.node.test_up import Node


@pytest.fixture
def node(tmp_path: pathlib.Path) -> Iterator[Node]:
    n = Node(tmp_path)
    try:
        yield n
    finally:
        n.close()
