"""The rollups worker's ``nice`` setting: every thread of the process, and the session's autogroup
when the worker leads its session (as `l2node up` starts each worker), run at the lower priority."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from services.rollups import RollupsSettings

ROOT = pathlib.Path(__file__).resolve().parents[2]

_CHILD = """
import json, os, threading
from services.rollups._priority import lower_priority
done = threading.Event()
early = threading.Thread(target=done.wait)  # a thread that exists before lower_priority, alive until read
early.start()
try:
    lower_priority(5)
    later = []
    late = threading.Thread(target=lambda: later.append(os.getpriority(os.PRIO_PROCESS, 0)))
    late.start(); late.join()
    seen = []
    for tid in (int(t) for t in os.listdir("/proc/self/task")):
        try:
            seen.append(os.getpriority(os.PRIO_PROCESS, tid))
        except ProcessLookupError:  # a thread that ended (``late``, joined) may still be listed
            pass
    group = open("/proc/self/autogroup").read().split()[-1] if os.path.exists("/proc/self/autogroup") else None
    print(json.dumps({"threads": seen, "later": later[0], "group": group}))
finally:
    done.set()
    early.join()
"""


def test_nice_is_a_whole_number_from_0_to_19() -> None:
    assert RollupsSettings.from_mapping({}).nice == 0
    assert RollupsSettings.from_mapping({"nice": 10}).nice == 10
    for bad in (-1, 20, 1.5, True):
        with pytest.raises(ValueError, match="nice"):
            RollupsSettings.from_mapping({"nice": bad})


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread nice is Linux's")
def test_every_thread_now_and_later_and_the_session_s_autogroup_are_lowered() -> None:
    base = os.getpriority(os.PRIO_PROCESS, 0)
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, timeout=60,
                         start_new_session=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seen = json.loads(out.stdout)
    want = min(19, base + 5)
    assert set(seen["threads"]) == {want} and seen["later"] == want
    if seen["group"] is not None:
        assert int(seen["group"]) >= 5
