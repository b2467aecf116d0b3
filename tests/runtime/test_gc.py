"""The collector's pace for loaded workers (``services.runtime.collect_young_rarely``)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from services.runtime import collect_young_rarely
from services.runtime._gc import YOUNG_THRESHOLD


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.set_threshold(*before)


def test_young_collections_are_rarer_and_the_older_generations_keep_their_pace(
        thresholds: tuple[int, int, int]) -> None:
    collect_young_rarely()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, thresholds[1], thresholds[2])
    assert gc.isenabled()


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_cyclic_garbage_is_still_collected_without_an_explicit_collect(thresholds: tuple[int, int, int]) -> None:
    collect_young_rarely()
    freed: list[bool] = []
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    weakref.finalize(a, freed.append, True)
    del a, b
    live: list[list[object]] = []
    while not freed and len(live) < 2 * YOUNG_THRESHOLD:  # tracked objects that live: a young collection comes
        live.append([])
    assert freed == [True]
