"""Thread counts are settings, one per service, that default to the CPUs this process may use."""

from __future__ import annotations

import os
from typing import Any

import pytest

from services.rollups import RollupsSettings
from services.runtime import cpu_count
from services.sequencer import SequencerSettings

SETTINGS: list[tuple[Any, str]] = [(SequencerSettings, "decode_threads"), (RollupsSettings, "derive_threads")]


def test_cpu_count_is_this_process_s_affinity() -> None:
    assert cpu_count() == len(os.sched_getaffinity(0)) >= 1


@pytest.mark.parametrize(("cls", "key"), SETTINGS)
def test_a_thread_count_defaults_to_the_cpu_count_and_can_be_set(cls: Any, key: str) -> None:
    assert getattr(cls.from_mapping({}), key) == cpu_count()
    assert getattr(cls.from_mapping({key: 3}), key) == 3


@pytest.mark.parametrize(("cls", "key"), SETTINGS)
@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_thread_count_below_one_or_not_a_whole_number_is_refused_by_name(cls: Any, key: str, bad: object
                                                                           ) -> None:
    with pytest.raises(ValueError, match=f"{key} .* must be a whole number of threads >= 1"):
        cls.from_mapping({key: bad})
