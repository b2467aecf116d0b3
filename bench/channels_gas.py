"""The L1 gas of a payment channel's life on ChannelAdjudicator: open and fund, the cooperative
close, the unilateral close, a challenge, conclude, and an HTLC's claim and refund.

    .venv/bin/python bench/channels_gas.py [--hardfork cancun]

A fresh anvil; one adjudicator (tests/contracts/_adjudicator.py: states signed as a wallet signs
EIP-712 typed data); each figure is a mined transaction's gas (what its sender pays, the 21,000
base and the calldata included):

- open: a's open of a dual-funded channel (three fresh storage slots); fund: b's deposit;
- cooperative close: a final state, both balances paid at once;
- unilateral close: the latest state (two signatures checked), without HTLCs and with two;
- challenge: a newer state with the same HTLCs replacing the closing one;
- conclude: after the period, both balances paid;
- HTLC claim: after conclude, the preimage revealed and the amount paid in one call (a reveal during
  the period costs about as much and pays nothing; the payout is a second call); HTLC refund;
- a unilateral close with MAX_HTLCS (483) HTLCs: the largest state a close must fit in a block.

``measure()`` returns the figures for bench/channels.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.contracts._adjudicator import (
    ALICE,
    BOB,
    ETHER,
    FINAL,
    MALLORY,
    MAX_HTLCS,
    PERIOD,
    Htlc,
    State,
    adjudicator,
    payment_hash,
    preimage,
)
from tests.l1.anvil import Anvil


@dataclass(frozen=True, slots=True)
class ChannelGas:
    open: int
    fund: int
    close_cooperative: int
    close_unilateral: int  # no HTLC
    close_unilateral_htlc: int  # two HTLCs (one each way)
    challenge: int  # a newer state with the same HTLCs
    conclude: int
    claim_htlc: int  # after conclude: reveal and pay
    refund_htlc: int
    close_unilateral_max: int  # MAX_HTLCS (483) HTLCs: the worst case a close must fit

    @property
    def open_and_fund(self) -> int:
        return self.open + self.fund


async def measure(chain: Anvil) -> ChannelGas:
    """The figures on ``chain`` (which the measurement leaves with a few channels on it)."""
    async with adjudicator(chain) as adj:
        cooperative = await adj.open(nonce=1)
        receipt = await adj.send(ALICE, "closeCooperative", *adj.signed(State(cooperative, FINAL, 2 * ETHER,
                                                                                6 * ETHER)))
        close_cooperative = receipt.gas_used
        plain = await adj.open(nonce=2)
        close_unilateral = (await adj.send(ALICE, "closeUnilateral", *adj.signed(
            State(plain, 5, 2 * ETHER, 6 * ETHER)))).gas_used
        disputed = await adj.open(nonce=3)
        expiry = await adj.now() + 2 * PERIOD
        htlcs = (Htlc(True, ETHER, payment_hash(preimage(1)), expiry), Htlc(False, ETHER, payment_hash(preimage(2)),
                                                                           expiry))
        stale = State(disputed, 5, 3 * ETHER, 3 * ETHER, htlcs)
        close_htlc = (await adj.send(ALICE, "closeUnilateral", *adj.signed(stale))).gas_used
        newer = State(disputed, 6, 2 * ETHER, 4 * ETHER, htlcs)
        challenge = (await adj.send(MALLORY, "challenge", *adj.signed(newer))).gas_used
        adj.at((await adj.channel(disputed))["ends_at"])
        conclude = (await adj.send(MALLORY, "conclude", disputed, newer.htlc_list())).gas_used
        claim = (await adj.send(BOB, "claimHtlc", disputed, newer.htlc_list(), 0, preimage(1))).gas_used
        adj.at(expiry + 1)
        refund = (await adj.send(BOB, "refundHtlc", disputed, newer.htlc_list(), 1)).gas_used
        full = await adj.open(nonce=4, amount_a=MAX_HTLCS, amount_b=0)
        many = tuple(Htlc(True, 1, payment_hash(preimage(i)), expiry + PERIOD) for i in range(MAX_HTLCS))
        close_max = (await adj.send(BOB, "closeUnilateral", *adj.signed(State(full, 1, 0, 0, many)))).gas_used
        return ChannelGas(adj.gas["open"][0], adj.gas["fund"][0], close_cooperative, close_unilateral, close_htlc,
                          challenge, conclude, claim, refund, close_max)


def report(gas: ChannelGas) -> str:
    return "\n".join([
        f"open + fund:           {gas.open_and_fund:>7,} gas (open {gas.open:,}, fund {gas.fund:,})",
        f"cooperative close:     {gas.close_cooperative:>7,} gas (a final state; both paid)",
        f"unilateral close:      {gas.close_unilateral:>7,} gas (no HTLC); {gas.close_unilateral_htlc:,} "
        "with two HTLCs",
        f"challenge:             {gas.challenge:>7,} gas (a newer state, the same two HTLCs)",
        f"conclude:              {gas.conclude:>7,} gas (after the period; both paid)",
        f"HTLC claim:            {gas.claim_htlc:>7,} gas (after conclude: preimage revealed and paid)",
        f"HTLC refund:           {gas.refund_htlc:>7,} gas (after the expiry)",
        f"unilateral close, 483: {gas.close_unilateral_max:>7,} gas (MAX_HTLCS pending: the largest close)",
    ])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hardfork", help="anvil's --hardfork (default: its latest)")
    args = ap.parse_args()
    print(f"$ {' '.join(['python', 'bench/channels_gas.py', *sys.argv[1:]])}")
    chain = Anvil(args=["--hardfork", args.hardfork] if args.hardfork else [])
    chain.start()
    try:
        print(report(asyncio.run(measure(chain))))
    finally:
        chain.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
