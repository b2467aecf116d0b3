"""EIP-1559 base fee: the standard update rule, integer-only (as geth's CalcBaseFee), clamped to
``MAX_BASE_FEE``: a chain's base fee, hence every honest snapshot's, always passes the snapshot
range check (a base fee above it is provably wrong, never a revert in the one-step proof)."""

from __future__ import annotations

from typing import Final

from ._rules import BASE_FEE_MAX_CHANGE_DENOMINATOR, ELASTICITY_MULTIPLIER

#: The highest base fee: next_base_fee never goes above it (StepVerifier.nextBaseFee neither).
MAX_BASE_FEE: Final = 2**128 - 1


def next_base_fee(parent_base_fee: int, parent_gas_used: int, parent_gas_limit: int) -> int:
    """The base fee of the block after a parent with these figures.

    Unchanged at the target (gas_limit / ELASTICITY_MULTIPLIER); otherwise it moves by
    ``parent_base_fee * |gas_used - target| / target / BASE_FEE_MAX_CHANGE_DENOMINATOR``
    (floor division, in that order), at most 1/8 per block, and by at least 1 wei upwards
    so that a base fee that decayed to a few wei can still rise, but never above MAX_BASE_FEE.
    """
    target = parent_gas_limit // ELASTICITY_MULTIPLIER
    if parent_gas_used == target:
        return parent_base_fee
    if parent_gas_used > target:
        delta = parent_base_fee * (parent_gas_used - target) // target // BASE_FEE_MAX_CHANGE_DENOMINATOR
        return min(parent_base_fee + max(delta, 1), MAX_BASE_FEE)
    delta = parent_base_fee * (target - parent_gas_used) // target // BASE_FEE_MAX_CHANGE_DENOMINATOR
    return parent_base_fee - delta
