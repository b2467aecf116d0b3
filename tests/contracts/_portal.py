"""Shared by the portal's withdrawal tests and bench/portal_gas.py: a DepositPortal on anvil over
a real OutputRegistry (tests/contracts/_game.py's, with the counter-machine verifier), funded by a
real deposit, with outputs whose message-passer root is a protocol.MerkleTree of real
WithdrawalMessage hashes, and a WithdrawalTargetHarness as the usual target.

An output is "honest" here when nobody challenges it (it finalizes after the window); a "lie" is
one whose message root the counter machine's honest trace does not have, which a challenger
invalidates for real by playing the game (``invalidate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from protocol import MerkleTree, WithdrawalMessage
from services.l1 import Artifact, Contract, ContractError, L1Client, LocalSigner, Receipt
from services.rollups._contracts import GameStatus
from services.rollups._snapshot import Snapshot
from tests.contracts._game import ANCHOR, DAVE, DEPLOYER, GRACE, Params, Registry, Trace, play
from tests.l1.anvil import Anvil

PORTAL = Artifact.load("DepositPortal")
HARNESS = Artifact.load("WithdrawalTargetHarness")
ETHER = 10**18
#: The tests' proof maturity delay: longer than the registry's window (600 s), so that an output
#: is final well before a proof matures and maturity is what a test's timing decides.
DELAY = 3_600
#: What the harness needs to record a call (cold SSTOREs of value, data, l2Sender).
TARGET_GAS = 200_000
FUNDS = 100 * ETHER
#: WithdrawalPortal.CALL_OVERHEAD: what W10 keeps back for the CALL itself.
CALL_OVERHEAD = 40_000


def w_tuple(m: WithdrawalMessage) -> tuple[Any, ...]:
    """The Withdrawal struct: (nonce, sender, target, value, gasLimit, data)."""
    return (m.nonce, m.sender, m.target, m.value, m.gas_limit, m.data)


@dataclass(frozen=True)
class Output:
    """A proposed output: its index, snapshot (root preimage), message tree and proposer."""

    index: int
    snapshot: Snapshot
    tree: MerkleTree
    proposer: LocalSigner
    start: Snapshot
    trace_length: int

    def root_proof(self) -> tuple[bytes, bytes, bytes, bytes]:
        s = self.snapshot
        return (bytes(32), s.state_root, s.message_root, s.block_hash)

    def proof(self, nonce: int) -> tuple[int, int, list[bytes]]:
        p = self.tree.prove(nonce)
        return (p.index, p.count, list(p.siblings))


@dataclass
class Bridge:
    """A portal over its registry, and the harness target."""

    reg: Registry
    portal: Contract
    target: Contract
    delay: int
    snapshots: dict[int, Snapshot] = field(default_factory=lambda: {0: ANCHOR})

    @classmethod
    async def deploy(cls, l1: L1Client, chain: Anvil, delay: int = DELAY) -> Bridge:
        reg = await Registry.deploy(l1, chain, Params())
        assert reg.contract.address is not None
        portal = await deploy(reg, PORTAL, reg.contract.address, delay)
        assert portal.address is not None
        target = await deploy(reg, HARNESS, portal.address)
        bridge = cls(reg, portal, target, delay)
        # The portal's ETH comes from deposits, as on the devnet.
        assert (await bridge.send(GRACE, "depositTransaction", GRACE.address, value=FUNDS)).success
        return bridge

    @property
    def address(self) -> bytes:
        assert self.portal.address is not None
        return self.portal.address

    @property
    def target_address(self) -> bytes:
        assert self.target.address is not None
        return self.target.address

    # --- transactions and reads ------------------------------------------------------------------

    async def send(self, signer: LocalSigner, function: str, *args: Any, value: int = 0,
                   gas: int | None = None) -> Receipt:
        return await self.reg.transact(signer, self.portal, function, *args, value=value, gas=gas)

    async def refused(self, signer: LocalSigner, function: str, *args: Any) -> ContractError:
        """The portal's custom error for ``function`` by ``signer`` in the next block."""
        return await self.reg.revert_of(signer, self.portal, function, *args)

    async def read(self, function: str, *args: Any) -> Any:
        values = await self.portal.read(self.reg.l1, function, *args)
        return values[0] if len(values) == 1 else values

    async def state(self, m: WithdrawalMessage) -> int:
        return int(await self.read("withdrawalState", m.hash()))

    async def harness(self, view: str) -> Any:
        (value,) = await self.target.read(self.reg.l1, view)
        return value

    async def configure(self, *, reverts: bool = False, burn: int = 0, reentry: bytes = b"") -> None:
        assert (await self.reg.transact(DEPLOYER, self.target, "configure", reverts, burn, reentry)).success

    def events(self, receipt: Receipt) -> list[tuple[str, dict[str, Any]]]:
        return self.reg.events(receipt, self.portal)

    async def block_time(self, receipt: Receipt) -> int:
        block = await self.reg.l1.get_block(receipt.block_number)
        assert block is not None
        return block.timestamp

    # --- outputs ---------------------------------------------------------------------------------

    async def propose(self, messages: list[WithdrawalMessage], proposer: LocalSigner, *,
                      length: int = 4, message_root: bytes | None = None) -> Output:
        """An output from the latest finalized one whose message root is the tree of ``messages``
        (or ``message_root``), ``length`` blocks on."""
        start = self.snapshots[await self.reg.read("latestFinalized")]
        tree = MerkleTree(m.hash() for m in messages)
        root = tree.root() if message_root is None else message_root
        snapshot = replace(start, number=start.number + length, message_root=root)
        index = await self.reg.propose(proposer, snapshot, length)
        self.snapshots[index] = snapshot
        return Output(index, snapshot, tree, proposer, start, length)

    async def finalize_output(self, out: Output) -> None:
        """Past its window (if not yet), then finalized."""
        closes = (await self.reg.output(out.index))["proposed_at"] + self.reg.params.window
        if await self.reg.now() < closes:
            self.reg.mine_at(closes)
        assert (await self.reg.transact(DEPLOYER, self.reg.contract, "finalize", out.index)).success

    async def invalidate(self, out: Output, challenger: LocalSigner = DAVE) -> None:
        """A challenger's win, for real: the game narrows to the last step, which L1 executes."""
        trace = Trace(out.start, out.snapshot.number, out.trace_length)
        game = await self.reg.challenge(challenger, out.index)
        claim = out.snapshot.commitment()
        played = await play(self.reg, game, trace, out.proposer, challenger,
                            claims=lambda p: trace.claim(p) if p < out.trace_length else claim,
                            agrees=lambda mid, c: c == trace.claim(mid))
        assert played.status == GameStatus.CHALLENGER_WON

    # --- the portal ------------------------------------------------------------------------------

    async def prove(self, prover: LocalSigner, m: WithdrawalMessage, out: Output) -> Receipt:
        receipt = await self.send(prover, "proveWithdrawal", w_tuple(m), out.index, out.root_proof(),
                                  out.proof(m.nonce))
        assert receipt.success
        return receipt

    async def finalize(self, finalizer: LocalSigner, m: WithdrawalMessage, prover: LocalSigner,
                       gas: int | None = None) -> Receipt:
        return await self.send(finalizer, "finalizeWithdrawal", w_tuple(m), prover.address, gas=gas)

    async def refund_uncallable(self, sender: LocalSigner, m: WithdrawalMessage, prover: LocalSigner) -> Receipt:
        return await self.send(sender, "refundUncallableWithdrawal", w_tuple(m), prover.address)

    async def block_gas_limit(self) -> int:
        """The latest block's gas limit (anvil keeps it for the next ones): W14's bound."""
        block = await self.reg.l1.request("eth_getBlockByNumber", "latest", False)
        return int(block["gasLimit"], 16)


def largest_callable(block_gas_limit: int) -> int:
    """The largest gas limit W10's inequality lets through with a whole block's gas:
    block * 63 >= limit * 64 + CALL_OVERHEAD * 63. One more is uncallable (W14)."""
    return (block_gas_limit - CALL_OVERHEAD) * 63 // 64


async def deploy(reg: Registry, artifact: Artifact, *args: Any) -> Contract:
    sender = reg.senders[DEPLOYER.address]
    receipt = await sender.wait_receipt(await sender.send(None, Contract(artifact).encode_deploy(*args)), 5)
    assert receipt.success and receipt.contract_address is not None
    return Contract(artifact, receipt.contract_address)
