"""EIP-1559 base fee updates, against go-ethereum's own test vectors (TestCalcBaseFee)."""

from __future__ import annotations

import pytest

from protocol import BLOCK_GAS_LIMIT, BLOCK_GAS_TARGET, INITIAL_BASE_FEE, MAX_BASE_FEE, next_base_fee


@pytest.mark.parametrize(
    ("parent_base_fee", "gas_limit", "gas_used", "expected"),
    [
        (INITIAL_BASE_FEE, 20_000_000, 10_000_000, INITIAL_BASE_FEE),  # usage == target
        (INITIAL_BASE_FEE, 20_000_000, 9_000_000, 987_500_000),  # usage below target
        (INITIAL_BASE_FEE, 20_000_000, 11_000_000, 1_012_500_000),  # usage above target
    ],
)
def test_geth_vectors(parent_base_fee: int, gas_limit: int, gas_used: int, expected: int) -> None:
    assert next_base_fee(parent_base_fee, gas_used, gas_limit) == expected


def test_bounds_of_one_eighth() -> None:
    assert BLOCK_GAS_TARGET * 2 == BLOCK_GAS_LIMIT
    assert next_base_fee(8 * 10**9, BLOCK_GAS_LIMIT, BLOCK_GAS_LIMIT) == 9 * 10**9  # full: +12.5%
    assert next_base_fee(8 * 10**9, 0, BLOCK_GAS_LIMIT) == 7 * 10**9  # empty: -12.5%


def test_small_base_fees() -> None:
    # rising always moves by at least 1 wei; falling may round to no change
    assert next_base_fee(7, BLOCK_GAS_TARGET + 1, BLOCK_GAS_LIMIT) == 8
    assert next_base_fee(0, BLOCK_GAS_LIMIT, BLOCK_GAS_LIMIT) == 1
    assert next_base_fee(7, 0, BLOCK_GAS_LIMIT) == 7
    assert next_base_fee(8, 0, BLOCK_GAS_LIMIT) == 7


def test_a_run_of_blocks_is_integer_exact() -> None:
    fee = INITIAL_BASE_FEE
    for used in (BLOCK_GAS_LIMIT, BLOCK_GAS_LIMIT, 0, BLOCK_GAS_TARGET, 12_345_678):
        fee = next_base_fee(fee, used, BLOCK_GAS_LIMIT)
    # 1e9 -> 1.125e9 -> 1.265625e9 -> 1107421875 -> same -> 1107421875 - floor(1107421875*2654322/15e6/8)
    assert fee == 1107421875 - 1107421875 * (BLOCK_GAS_TARGET - 12_345_678) // BLOCK_GAS_TARGET // 8


def test_the_base_fee_never_rises_above_max_base_fee() -> None:
    """So an honest snapshot always passes the range check (issue 12 item 9): the clamp, not an overflow."""
    assert next_base_fee(MAX_BASE_FEE, BLOCK_GAS_LIMIT, BLOCK_GAS_LIMIT) == MAX_BASE_FEE
    assert next_base_fee(MAX_BASE_FEE - 1, BLOCK_GAS_TARGET + 1, BLOCK_GAS_LIMIT) == MAX_BASE_FEE
    below = MAX_BASE_FEE - MAX_BASE_FEE // 16  # one full block's +12.5% would pass the ceiling
    assert next_base_fee(below, BLOCK_GAS_LIMIT, BLOCK_GAS_LIMIT) == MAX_BASE_FEE
    assert next_base_fee(MAX_BASE_FEE, 0, BLOCK_GAS_LIMIT) == MAX_BASE_FEE - MAX_BASE_FEE // 8  # it still falls
