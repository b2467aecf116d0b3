"""EIP-1559 fee choice for the batcher: what to offer now, and what a replacement must offer."""

from __future__ import annotations

from dataclasses import dataclass

from services.l1._config import SenderConfig
from services.l1._errors import FeeCapExceeded


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def market_fees(base_fee: int, priority_fee: int, config: SenderConfig) -> Fees:
    """base fee x multiplier + tip, within the cap. Over the cap the tip shrinks first; a base fee
    above the cap raises :class:`FeeCapExceeded` (the transaction could not be included)."""
    cap = config.max_fee_cap_wei
    if base_fee > cap:
        raise FeeCapExceeded(f"base fee {base_fee} wei is above the cap of {cap} wei")
    max_fee = min(base_fee * config.base_fee_multiplier + priority_fee, cap)
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=min(priority_fee, max_fee))


def bumped(old: Fees, market: Fees, config: SenderConfig) -> Fees:
    """Fees for a replacement: both fields up by at least the bump (nodes reject less as
    "replacement transaction underpriced"), and at least what the market asks now."""
    percent = 100 + config.replacement_bump_percent
    tip = max(-(-old.max_priority_fee_per_gas * percent // 100), market.max_priority_fee_per_gas)
    max_fee = max(-(-old.max_fee_per_gas * percent // 100), market.max_fee_per_gas, tip)
    if max_fee > config.max_fee_cap_wei:
        raise FeeCapExceeded(f"a replacement needs {max_fee} wei per gas, above the cap of {config.max_fee_cap_wei}")
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=tip)
