"""The L1 gas of a withdrawal: DepositPortal's ``proveWithdrawal`` and ``finalizeWithdrawal``.

    .venv/bin/python bench/portal_gas.py [--messages 1000] [--hardfork cancun]

A fresh anvil; the portal over a real OutputRegistry (tests/contracts/_portal.py: the counter-machine
verifier, a real deposit funding the portal), one output whose message-passer root is the tree of
``--messages`` withdrawals (the proof's size does not depend on it: 48 siblings at depth 16), that
output finalized. Measured, each a mined transaction's gas (what its sender pays):

- prove: the first proof of a withdrawal (two fresh storage slots: root, index and time);
- finalize, plain: 1 ETH to an account with no data (the target's call is the value transfer);
- finalize, contract: 1 ETH and 32 bytes to WithdrawalTargetHarness, which records them; its own
  execution (from the call tracer) is taken out to give the portal's part.

Goals (issue 13): prove <= 150,000 gas; finalize <= 80,000 plus the target's call.
``measure()`` returns the figures for bench/bridge.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol import WithdrawalMessage
from services.l1 import L1Client, Receipt
from tests.contracts._game import ALICE, BOB, DAVE, ERIN, FRANK
from tests.contracts._portal import DELAY, ETHER, Bridge
from tests.l1.anvil import Anvil

PROVE_GOAL, FINALIZE_GOAL = 150_000, 80_000


@dataclass(frozen=True, slots=True)
class PortalGas:
    prove: int
    prove_calldata: int  # standard calldata gas of the prove transaction (EIP-2028)
    finalize_plain: int
    finalize_contract: int
    target_execution: int  # the harness's own execution in finalize_contract

    @property
    def finalize_portal(self) -> int:
        """finalize_contract without the target's own execution: the portal's part."""
        return self.finalize_contract - self.target_execution


def calldata_gas(data: bytes) -> int:
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros)


async def _inner_gas(bridge: Bridge, receipt: Receipt, target: bytes) -> int:
    """Gas the call tracer says ``target``'s frame used inside the transaction."""
    trace = await bridge.reg.l1.request("debug_traceTransaction", "0x" + receipt.tx_hash.hex(),
                                        {"tracer": "callTracer"})

    def frames(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [node, *(f for child in node.get("calls", []) for f in frames(child))]

    used = [int(f["gasUsed"], 16) for f in frames(trace) if bytes.fromhex(f["to"][2:]) == target]
    assert len(used) == 1, trace
    return used[0]


async def measure(url: str, chain: Anvil, messages: int = 1000) -> PortalGas:
    """The figures on the anvil at ``url`` (``chain`` drives its clock)."""
    async with L1Client(url) as l1:
        bridge = await Bridge.deploy(l1, chain)
        plain = WithdrawalMessage(0, ALICE.address, FRANK.address, ETHER, 100_000, b"")
        contract = WithdrawalMessage(1, ALICE.address, bridge.target_address, ETHER, 200_000, b"\x42" * 32)
        fillers = [WithdrawalMessage(n, ALICE.address, FRANK.address, 1, 0, b"") for n in range(2, messages)]
        out = await bridge.propose([plain, contract, *fillers], ERIN)
        receipt = await bridge.prove(BOB, plain, out)
        prove = receipt.gas_used
        tx = await l1.get_transaction(receipt.tx_hash)
        assert tx is not None
        await bridge.prove(BOB, contract, out)
        await bridge.finalize_output(out)
        bridge.reg.mine_at(await bridge.reg.now() + DELAY)
        finalized_plain = await bridge.finalize(DAVE, plain, BOB)
        finalized_contract = await bridge.finalize(DAVE, contract, BOB)
        assert finalized_plain.success and finalized_contract.success
        return PortalGas(prove, calldata_gas(tx.input), finalized_plain.gas_used, finalized_contract.gas_used,
                         await _inner_gas(bridge, finalized_contract, bridge.target_address))


def report(gas: PortalGas) -> str:
    def goal(value: int, limit: int) -> str:
        return f"goal <= {limit:,}: {'met' if value <= limit else 'MISSED'}"

    return "\n".join([
        f"prove:              {gas.prove:>7,} gas ({goal(gas.prove, PROVE_GOAL)}); of which calldata "
        f"{gas.prove_calldata:,}, base 21,000, execution {gas.prove - gas.prove_calldata - 21_000:,}",
        f"finalize, plain:    {gas.finalize_plain:>7,} gas (1 ETH to an account; "
        f"{goal(gas.finalize_plain, FINALIZE_GOAL)} with the value transfer counted in)",
        f"finalize, contract: {gas.finalize_contract:>7,} gas = portal {gas.finalize_portal:,} "
        f"({goal(gas.finalize_portal, FINALIZE_GOAL)}) + the target's own execution {gas.target_execution:,}",
    ])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000, help="withdrawals in the output's message tree")
    ap.add_argument("--hardfork", help="anvil's --hardfork (default: its latest)")
    args = ap.parse_args()
    print(f"$ {' '.join(['python', 'bench/portal_gas.py', *sys.argv[1:]])}")
    chain = Anvil(args=["--hardfork", args.hardfork] if args.hardfork else [])
    chain.start()
    try:
        print(report(asyncio.run(measure(chain.url, chain, args.messages))))
    finally:
        chain.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
