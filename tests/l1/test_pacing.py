"""The adaptive polling interval every L1 poller sleeps through (services.l1.Pacer)."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.l1 import Activity, Pacer


def test_idle_rounds_double_the_interval_up_to_the_ceiling_and_news_snaps_it_back() -> None:
    pacer = Pacer(0.5, 8.0)
    assert [pacer.next_interval(active=False) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert pacer.next_interval(active=True) == 0.5
    assert pacer.next_interval(active=False) == 1.0


def test_a_ceiling_below_the_base_is_the_base() -> None:
    pacer = Pacer(2.0, 1.0)
    assert pacer.idle_max_s == 2.0 and pacer.next_interval(active=False) == 2.0
    with pytest.raises(ValueError, match="base_s"):
        Pacer(0, 1.0)


async def test_a_transaction_sent_wakes_the_sleepers_and_holds_the_base_interval_a_while() -> None:
    activity = Activity()
    pacer = Pacer(0.05, 0.4, activity)
    for _ in range(4):
        pacer.next_interval(active=False)
    assert pacer.interval_s == 0.4
    started = time.monotonic()
    sleeper = asyncio.create_task(pacer.sleep(active=False))
    await asyncio.sleep(0.05)
    activity.notify()
    await sleeper
    assert time.monotonic() - started < 0.3  # woken, not the full 0.4 s
    # For idle_max_s after the send the polls stay at the base: the transaction is about to be mined.
    assert [pacer.next_interval(active=False) for _ in range(3)] == [0.05, 0.05, 0.05]
    await asyncio.sleep(0.45)
    assert pacer.next_interval(active=False) == 0.1  # then back off again
