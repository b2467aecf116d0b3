"""The rollup's deployment constants: what the L1 contracts are built with at `l2node up`.

Set them in the config's ``[rollups]`` table (every key optional; the defaults are the devnet's,
short enough for a demo); production-scale values (a 7-day window, 3.5-day clocks) work the
same. They are fixed once deployed: a changed value deploys a new set of contracts.

    [rollups]
    proposal_bond = 1000000000000000000    # wei an output's proposer locks until it finalizes
    challenge_bond = 1000000000000000000   # wei a challenger locks to open a dispute game
    move_bond_base = 10000000000000000     # wei; a move at round r costs move_bond_base * (r + 1)
    challenge_window_s = 20                # an output finalizes this long after its proposal
    max_clock_s = 60                       # each side's chess clock in a dispute
    sequencer_window = 3600                # L1 blocks within which a block must be posted
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from services.runtime import settings_from

_ETHER: Final = 10**18
#: The registry's ceiling for a window or a clock (OutputRegistry.MAX_DURATION).
MAX_DURATION_S: Final = 365 * 24 * 3600
#: Optimism's sequencer window; services.rollups._machine.DEFAULT_SEQUENCER_WINDOW (a test keeps
#: the two equal; importing it here would load the whole derivation for every CLI command).
DEFAULT_SEQUENCER_WINDOW: Final = 3_600


@dataclass(frozen=True, slots=True)
class RollupParams:
    """The registry's and the step verifier's constructor arguments."""

    proposal_bond: int = _ETHER
    challenge_bond: int = _ETHER
    move_bond_base: int = _ETHER // 100
    challenge_window_s: int = 20
    max_clock_s: int = 60
    max_trace_length: int = 2**32
    sequencer_window: int = DEFAULT_SEQUENCER_WINDOW
    #: The L2 chain id the step verifier checks signatures for (the sequencer's).
    chain_id: int = 901

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"rollups.{f.name} must be a positive integer, not {value!r}")
        for name in ("challenge_window_s", "max_clock_s"):
            if getattr(self, name) > MAX_DURATION_S:
                raise ValueError(f"rollups.{name} is above the registry's limit of {MAX_DURATION_S} s")

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RollupParams:
        return settings_from(cls, data, "rollups")
