"""The values `l2node` commands take and show: amounts of wei (with units) and addresses.

Shared by the bridge's commands (bridge_cli.py) and the channels' (channels_cli.py); each parser is
an argparse ``type``: it raises ArgumentTypeError saying what is wrong, and argparse says it.
"""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation
from typing import Final

#: What each unit is worth in wei; an amount without a unit is wei.
UNITS: Final = {"ether": 10**18, "eth": 10**18, "gwei": 10**9, "wei": 1}


def parse_amount(text: str) -> int:
    """``1ether``, ``0.5ether``, ``5gwei``, ``123`` or ``123wei``: a positive whole number of wei."""
    usage = (f"{text!r} is not an amount: give wei (123) or a number with a unit "
             f"({', '.join(f'1{u}' for u in ('ether', 'gwei', 'wei'))}, 0.5ether)")
    raw = text.strip().lower().replace("_", "")
    unit = next((u for u in UNITS if raw.endswith(u)), "wei")
    number = raw.removesuffix(unit).strip() if raw.endswith(unit) else raw
    try:
        amount = Decimal(number) * UNITS[unit]
    except InvalidOperation:
        raise argparse.ArgumentTypeError(usage) from None
    if not amount.is_finite() or amount != amount.to_integral_value():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of wei" if amount.is_finite() else usage)
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the amount must be more than 0")
    return int(amount)


def show_amount(wei: int) -> str:
    """Wei for people: ``1.5 ETH (1500000000000000000 wei)``."""
    ether = (Decimal(wei) / UNITS["ether"]).normalize()
    return f"{ether:f} ETH ({wei} wei)"


def parse_address(text: str) -> str:
    raw = text.removeprefix("0x").removeprefix("0X")
    try:
        if len(bytes.fromhex(raw)) == 20:
            return "0x" + raw.lower()
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a 20-byte 0x address")
