"""protocol/_safe_params.py: the arithmetic of parameters that are safe on an L1 (issue 12, item 7)."""

from __future__ import annotations

import pytest

from l2node.node.params import PRESETS
from protocol import MOVE_MARGIN_BLOCKS, Timings, game_rounds, is_local_devnet, unsafe_reasons
from protocol._safe_params import (
    MAX_SEQUENCER_WINDOW,
    min_challenge_window_s,
    min_clock_s,
    sequencer_window_bounds,
)

DEVNET, PRODUCTION = PRESETS["devnet"].timings(), PRESETS["production"].timings()


@pytest.mark.parametrize(("length", "rounds"), [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (1028, 11), (2**20, 20),
                                                (2**20 + 1, 21), (2**32, 32), (2**64 - 1, 64)])
def test_rounds_are_ceil_log2_of_the_trace_length(length: int, rounds: int) -> None:
    assert game_rounds(length) == rounds


def test_the_clock_is_rounds_plus_one_moves_of_margin_blocks() -> None:
    assert MOVE_MARGIN_BLOCKS == 4
    assert min_clock_s(2**32, 12.0) == 33 * 12 * 4 == 1584
    assert min_clock_s(2**20, 1.0) == 21 * 1 * 4 == 84
    assert min_challenge_window_s(12.0) == (4 + 4) * 12 and min_challenge_window_s(1.0, confirmation_depth=10) == 14
    # W/2 covers the confirmation depth, the batcher's cadence (in blocks) and inclusion.
    assert sequencer_window_bounds(12.0) == (2 * (4 + 1 + 4), 8191 - 256)
    assert sequencer_window_bounds(1.0, confirmation_depth=4, batch_interval_s=10.0) == (2 * (4 + 10 + 4), 7935)


def test_both_presets_are_safe_where_they_are_meant_to_run() -> None:
    assert unsafe_reasons(DEVNET, 1.0, genesis_origin=0, l1_head=5) == []
    assert unsafe_reasons(PRODUCTION, 12.0, genesis_origin=20_000_000, l1_head=20_001_800) == []
    # production's clocks leave ~760 blocks a move on a 12 s L1
    assert PRODUCTION.max_clock_s / ((game_rounds(PRODUCTION.max_trace_length) + 1) * 12) > 760


def test_devnet_values_on_a_12_s_l1_are_unsafe_with_the_numbers() -> None:
    clock, window = unsafe_reasons(DEVNET, 12.0, genesis_origin=0, l1_head=5)
    assert clock.startswith("max_clock_s 90 is below 1008 s: max_trace_length 1048576 makes 20 rounds")
    assert "21 by the challenger" in clock and "90 s lasts 7 of the 21 moves" in clock
    assert window.startswith("challenge_window_s 20 is below 96 s")
    # the issue's own numbers: 60 s clocks, 6 moves needed, one 12 s block each
    (issue,) = unsafe_reasons(DEVNET._replace(max_clock_s=60, max_trace_length=32, challenge_window_s=600), 12.0,
                              genesis_origin=0, l1_head=5)
    assert "5 rounds" in issue and "60 s lasts 5 of the 6 moves" in issue


def test_the_sequencer_window_has_a_floor_and_the_eip2935_ceiling() -> None:
    (low,) = unsafe_reasons(PRODUCTION._replace(sequencer_window=17), 12.0, genesis_origin=0, l1_head=0)
    assert low.startswith("sequencer_window 17 is below 18 L1 blocks")
    assert unsafe_reasons(PRODUCTION._replace(sequencer_window=MAX_SEQUENCER_WINDOW), 12.0, genesis_origin=0,
                          l1_head=0) == []
    (high,) = unsafe_reasons(PRODUCTION._replace(sequencer_window=8191), 12.0, genesis_origin=0, l1_head=0)
    assert high.startswith("sequencer_window 8191 is above 7935 L1 blocks") and "EIP-2935" in high


def test_the_genesis_origin_may_be_at_most_half_a_window_behind_the_head() -> None:
    t = Timings(challenge_window_s=604_800, max_clock_s=302_400, max_trace_length=2**32, sequencer_window=3600)
    assert unsafe_reasons(t, 12.0, genesis_origin=100, l1_head=1900) == []
    (behind,) = unsafe_reasons(t, 12.0, genesis_origin=100, l1_head=1901)
    assert behind.startswith("the genesis l1_origin 100 is 1801 L1 blocks behind the L1 head 1901")


@pytest.mark.parametrize(("chain_id", "url", "devnet"), [
    (31337, "http://127.0.0.1:8545", True),
    (31337, "http://127.0.0.2:8545", True),
    (31337, "http://localhost:8545", True),
    (31337, "http://[::1]:8545", True),
    (31337, "http://user:pw@127.0.0.1:8545", True),
    (1, "http://127.0.0.1:8545", False),  # another chain id, even on this machine
    (31337, "http://10.0.0.5:8545", False),  # a devnet-looking chain elsewhere
    (31337, "https://rpc.example.org/v3/key", False),
    (31337, "http://localhost.example.org:8545", False),
])
def test_a_local_devnet_is_chain_31337_on_a_loopback_url(chain_id: int, url: str, devnet: bool) -> None:
    assert is_local_devnet(chain_id, url) is devnet
