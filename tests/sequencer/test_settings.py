"""The sequencer's L1 settings: how long its idle inbox follower may sleep."""

from __future__ import annotations

from services.sequencer._settings import L1Settings


def test_the_idle_follower_sees_a_deposit_before_its_depth_and_never_polls_a_slow_l1_more() -> None:
    assert L1Settings().idle_poll_for(1.0) == 8.0  # by default services.l1's, whatever L1's pace
    devnet = L1Settings(confirmation_depth=4, poll_interval_s=0.25, idle_poll_s=0)
    assert devnet.idle_poll_for(1.0) == 4.0  # 4 one-second blocks to depth: awake within 4 s
    assert devnet.idle_poll_for(12.0) == 8.0  # a mainnet slot: services.l1's idle default, no more polls
    assert devnet.idle_poll_for(None) == 8.0  # an L1 mining on demand: its pace is not known
    assert devnet.idle_poll_for(0.01) == 0.25  # never below the active interval
    assert L1Settings(idle_poll_s=5.0).idle_poll_for(1.0) == 5.0  # configured: as configured
