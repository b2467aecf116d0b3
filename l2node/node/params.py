"""The rollup's deployment constants: what the L1 contracts are built with at `l2node up`.

Set them in the config's ``[rollups]`` table (every key optional). ``preset`` picks the defaults
(``"devnet"``, the default, or ``"production"``); keys set beside it override it. They are fixed
once deployed: a changed value deploys a new set of contracts.

    [rollups]
    preset = "devnet"                      # or "production"; the values below are the devnet's
    proposal_bond = 1000000000000000000    # wei an output's proposer locks until it finalizes
    challenge_bond = 1000000000000000000   # wei a challenger locks to open a dispute game
    move_bond_base = 10000000000000000     # wei; a move at round r costs move_bond_base * (r + 1)
    challenge_window_s = 20                # an output finalizes this long after its proposal
    max_clock_s = 90                       # each side's chess clock in a dispute
    max_trace_length = 1048576             # 2**20 steps: the deepest game is 20 rounds
    sequencer_window = 3600                # L1 blocks within which a block must be posted
    proof_maturity_delay_s = 10            # a withdrawal's proof waits this long before finalizing
    channel_challenge_period_s = 20        # a channel's unilateral close waits this long for a newer state

Both presets pass protocol/_safe_params.py's check, which `l2node deploy`, `l2node up` and the
rollups worker run against the L1's *measured* block time b (refused off a local devnet; a
warning on one). Rounds R = ceil(log2 max_trace_length); the challenger makes R + 1 moves, each
given 4 L1 blocks (MOVE_MARGIN_BLOCKS: see the check's docstring):

- devnet, on the node's own anvil (b = 1 s): R = 20, clocks >= 21 x 1 s x 4 = 84 s -> 90 s;
  window >= (4 confirmations + 4) x 1 s = 8 s -> 20 s; sequencer window 3600 in [18, 7935].
  On a 12 s L1 it is refused: clocks would need 21 x 12 x 4 = 1008 s (90 s lasts 7 moves of 21),
  the window 96 s.
- production (b = 12 s): R = 32, clocks >= 33 x 12 s x 4 = 1584 s; 3.5 days (302400 s) is ~760
  blocks a move, Optimism's fault dispute game clock, to outlast L1 congestion and censorship;
  window 7 days (>= 96 s; the time for anyone to notice and challenge, Optimism's and Arbitrum's);
  sequencer window 3600 blocks (12 h, Optimism's; in [18, 7935]). Bonds: a full game costs the
  honest challenger ~3.6M L1 gas (challenge 1.4M, 33 moves of ~50k, a step of <= 0.51M;
  bench/RESULTS.md), 0.36 ETH at 100 gwei, so a 5 ETH proposal bond repays it up to ~1,400 gwei;
  a 5 ETH challenge bond the same for a defender against a frivolous challenge; move bonds stay
  0.01 ETH x (r + 1), at least the ~50k-gas answer at 200 gwei.

The proof maturity delay (DepositPortal.proofMaturityDelay): a withdrawal is finalized no sooner
than this after its proof, and only once the output it was proven against is FINALIZED (which
already takes the challenge window). It is the time for anyone to notice a proof against a wrong
output that is somehow final; Optimism's is 7 days (production). The devnet's 10 s keeps the
round trip short: a withdrawal finalizes ~20 s (the window) after its output is proposed.

The channel challenge period (ChannelAdjudicator.CHALLENGE_PERIOD, its constructor argument):
after a unilateral close of a payment channel, the other party (or its watchtower) has this long
to answer a stale closing state with a newer co-signed one; the balances are paid only after it.
It is how long a node may be offline without risking its channels' funds, so production's is a
day (Lightning's default to_self_delay of 144 blocks is ~1 day; Raiden's settle timeout ~500
blocks); the devnet's 20 s lets a forced close conclude within a test. It bounds the HTLC expiry
delta too: an HTLC must outlive a close and its period to be claimable on L1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final

from protocol import Timings
from services.runtime import settings_from

_ETHER: Final = 10**18
#: The contracts' ceiling for a window, a clock or a delay (OutputRegistry.MAX_DURATION,
#: DepositPortal.MAX_DURATION), and the node's for the channel challenge period: a value in
#: milliseconds is refused.
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
    max_clock_s: int = 90
    max_trace_length: int = 2**20
    sequencer_window: int = DEFAULT_SEQUENCER_WINDOW
    #: The L2 chain id the step verifier checks signatures for (the sequencer's).
    chain_id: int = 901
    #: Seconds between a withdrawal's proof and its finalization (DepositPortal's constructor).
    proof_maturity_delay_s: int = 10
    #: Seconds a payment channel's unilateral close waits for a newer state (ChannelAdjudicator's constructor).
    channel_challenge_period_s: int = 20

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"rollups.{f.name} must be a positive integer, not {value!r}")
        for name, contract in (("challenge_window_s", "registry"), ("max_clock_s", "registry"),
                               ("proof_maturity_delay_s", "portal"), ("channel_challenge_period_s", "adjudicator")):
            if getattr(self, name) > MAX_DURATION_S:
                raise ValueError(f"rollups.{name} is above the {contract}'s limit of {MAX_DURATION_S} s")

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    def timings(self) -> Timings:
        """What protocol's safety check reads."""
        return Timings(self.challenge_window_s, self.max_clock_s, self.max_trace_length, self.sequencer_window)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RollupParams:
        """``[rollups]``: its ``preset``'s values (default devnet), overridden by the keys set."""
        keys = dict(data)
        name = keys.pop("preset", "devnet")
        if name not in PRESETS:
            raise ValueError(f"rollups.preset {name!r} is not one of {sorted(PRESETS)}")
        return settings_from(cls, {**PRESETS[name].to_json(), **keys}, "rollups")


#: The ``[rollups] preset`` values (see the module docstring for the arithmetic).
PRESETS: Final = {
    "devnet": RollupParams(),
    "production": RollupParams(proposal_bond=5 * _ETHER, challenge_bond=5 * _ETHER, move_bond_base=_ETHER // 100,
                               challenge_window_s=7 * 24 * 3600, max_clock_s=84 * 3600, max_trace_length=2**32,
                               sequencer_window=DEFAULT_SEQUENCER_WINDOW, proof_maturity_delay_s=7 * 24 * 3600,
                               channel_challenge_period_s=24 * 3600),
}
