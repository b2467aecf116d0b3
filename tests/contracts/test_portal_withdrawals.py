"""DepositPortal's withdrawals on a real anvil, over a real OutputRegistry: prove a message of an
output's message-passer root, wait out the maturity delay, finalize (value and data to the target,
l2Sender visible), and OptimismPortal2's test list of attacks plus ours, each refused with the
rule it breaks (contracts/WithdrawalPortal.sol, W1-W14)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocol import WithdrawalMessage
from services.l1 import Contract, L1Client, RpcError
from services.rollups._contracts import OutputStatus
from tests.contracts._game import ALICE, BOB, CAROL, DAVE, DEPLOYER, ERIN, FRANK, GRACE
from tests.contracts._portal import (
    CALL_OVERHEAD,
    DELAY,
    ETHER,
    FUNDS,
    PORTAL,
    TARGET_GAS,
    Bridge,
    Output,
    largest_callable,
    w_tuple,
)
from tests.l1.anvil import Anvil

NONE, SUCCEEDED, FAILED, REFUNDED = range(4)
MAX_LEAVES = 4**16


@pytest.fixture
async def bridge(l1: L1Client, chain: Anvil) -> Bridge:
    return await Bridge.deploy(l1, chain)


def message(bridge: Bridge, nonce: int, **fields: object) -> WithdrawalMessage:
    """ALICE's withdrawal of 1 ETH to the harness with some data, unless told otherwise."""
    m = WithdrawalMessage(nonce=nonce, sender=ALICE.address, target=bridge.target_address, value=ETHER,
                          gas_limit=TARGET_GAS, data=b"hello L1 " + bytes([nonce]))
    return replace(m, **fields)  # type: ignore[arg-type]


async def proven_and_final(bridge: Bridge, count: int = 3) -> tuple[list[WithdrawalMessage], Output, int]:
    """``count`` messages in output 1 (finalized), message 0 proven by BOB; its proof time."""
    messages = [message(bridge, n) for n in range(count)]
    out = await bridge.propose(messages, ERIN)
    receipt = await bridge.prove(BOB, messages[0], out)
    await bridge.finalize_output(out)
    return messages, out, await bridge.block_time(receipt)


async def test_prove_mature_finalize_pays_the_target_and_calls_it_as_the_l2_sender(bridge: Bridge) -> None:
    to_eoa = message(bridge, 1, sender=CAROL.address, target=FRANK.address, value=2 * ETHER, data=b"")
    messages = [message(bridge, 0), to_eoa, message(bridge, 2, value=0)]
    out = await bridge.propose(messages, ERIN)
    m = messages[0]
    assert await bridge.read("withdrawalHash", w_tuple(m)) == m.hash()
    assert await bridge.read("provenWithdrawal", m.hash(), BOB.address) == (0, bytes(32), 0)

    receipt = await bridge.prove(BOB, m, out)
    proven_at = await bridge.block_time(receipt)
    assert bridge.events(receipt) == [("WithdrawalProven", {"withdrawalHash": m.hash(), "prover": BOB.address,
                                                            "outputIndex": out.index})]
    root = out.snapshot.output_root()
    assert await bridge.read("provenWithdrawal", m.hash(), BOB.address) == (out.index, root, proven_at)
    assert await bridge.read("provenWithdrawal", m.hash(), CAROL.address) == (0, bytes(32), 0)
    await bridge.finalize_output(out)

    bridge.reg.at(proven_at + DELAY)
    before = await bridge.reg.l1.get_balance(bridge.address)
    receipt = await bridge.finalize(DAVE, m, BOB)  # anyone finalizes, with any prover's proof
    assert receipt.success
    assert bridge.events(receipt) == [("WithdrawalFinalized", {"withdrawalHash": m.hash(), "success": True})]
    assert await bridge.state(m) == SUCCEEDED
    assert await bridge.reg.l1.get_balance(bridge.address) == before - m.value
    assert [await bridge.harness(v) for v in ("calls", "received", "lastData", "lastL2Sender")] == \
        [1, m.value, m.data, ALICE.address]
    # l2Sender() means something only during a target call.
    assert (await bridge.refused(DAVE, "l2Sender")).name == "NotInWithdrawal"

    # A plain withdrawal to an account: the value arrives.
    await bridge.prove(CAROL, to_eoa, out)
    bridge.reg.mine_at(await bridge.reg.now() + DELAY)
    frank = await bridge.reg.l1.get_balance(FRANK.address)
    assert (await bridge.finalize(DAVE, to_eoa, CAROL)).success
    assert await bridge.reg.l1.get_balance(FRANK.address) == frank + to_eoa.value
    assert await bridge.state(to_eoa) == SUCCEEDED


async def test_the_constructor_refuses_a_zero_registry_and_a_delay_out_of_range(
        bridge: Bridge, l1: L1Client) -> None:
    assert await bridge.read("outputRegistry") == bridge.reg.contract.address
    assert await bridge.read("proofMaturityDelay") == DELAY
    year = 365 * 24 * 3600
    for args, name, expected in [((bytes(20), DELAY), "ZeroOutputRegistry", ()),
                                 ((BOB.address, 0), "ProofMaturityDelayOutOfRange", (0, year)),
                                 ((BOB.address, 7 * 86_400_000), "ProofMaturityDelayOutOfRange",
                                  (7 * 86_400_000, year))]:
        with pytest.raises(RpcError) as caught:
            await l1.estimate_gas(None, Contract(PORTAL).encode_deploy(*args), sender=DEPLOYER.address)
        error = Contract(PORTAL).decode_error(caught.value.revert_data)
        assert error is not None and (error.name, error.args) == (name, expected)


# --- prove: the output (W2, W3) -------------------------------------------------------------------


async def test_a_proof_against_an_unknown_or_not_yet_proposed_output_is_refused(bridge: Bridge) -> None:
    m = message(bridge, 0)
    out = await bridge.propose([m], ERIN)
    registry = bridge.reg.contract
    for index in (2**256 - 1, out.index + 1):  # far out; the next index, not proposed yet
        error = await bridge.reg.revert_of(BOB, bridge.portal, "proveWithdrawal", w_tuple(m), index, out.root_proof(),
                                           out.proof(0), decoder=registry)
        assert (error.name, error.args) == ("UnknownOutput", (index, 2))
    # Once proposed there (the same messages), the same proof passes.
    later = await bridge.propose([m], ERIN, length=5)
    assert later.index == out.index + 1
    await bridge.prove(BOB, m, later)


async def test_zero_roots_prove_nothing(bridge: Bridge) -> None:
    """Nomad: an all-zero root, proof or record must never count as proven."""
    m = message(bridge, 0)
    liar = await bridge.propose([m], ERIN, message_root=bytes(32))  # the registry takes any snapshot
    zero_proof = (0, 1, [bytes(32)] * 48)
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(m), liar.index, liar.root_proof(), zero_proof)
    assert error.name == "InvalidInclusionProof"
    # An all-zero output root preimage is nobody's root.
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(m), liar.index, (bytes(32),) * 4, zero_proof)
    assert (error.name, error.args) == ("InvalidOutputRootProof", (liar.index,))
    # The zero leaf at an empty slot of a real tree: the count refuses it (index < count).
    out = await bridge.propose([m], ERIN, length=5)
    empty = out.tree.prove(0)
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(replace(m, nonce=1)), out.index, out.root_proof(),
                                 (1, 1, list(empty.siblings)))
    assert error.name == "InvalidInclusionProof"
    # No proof recorded reads as provenAt 0, which finalize refuses whatever the time.
    await bridge.finalize_output(out)
    bridge.reg.mine_at(await bridge.reg.now() + 10 * DELAY)
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("WithdrawalNotProven", (m.hash(), BOB.address))


async def test_a_proof_against_an_invalidated_output_is_refused(bridge: Bridge) -> None:
    m = message(bridge, 0)
    lie = await bridge.propose([m], ERIN)
    await bridge.invalidate(lie)
    assert await bridge.reg.status(lie.index) == OutputStatus.INVALIDATED
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(m), lie.index, lie.root_proof(), lie.proof(0))
    assert (error.name, error.args) == ("InvalidatedOutput", (lie.index,))
    honest = await bridge.propose([m], FRANK, length=5)  # the same message in another output
    await bridge.prove(BOB, m, honest)


async def test_a_forged_output_root_preimage_is_refused(bridge: Bridge) -> None:
    m = message(bridge, 0)
    out = await bridge.propose([m], ERIN)
    version, state, messages, block = out.root_proof()
    for forged in [(b"\x01".rjust(32, b"\0"), state, messages, block), (version, bytes(32), messages, block),
                   (version, state, bytes(32), block), (version, state, messages, b"\x07" * 32)]:
        error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(m), out.index, forged, out.proof(0))
        assert (error.name, error.args) == ("InvalidOutputRootProof", (out.index,)), forged


# --- prove: the inclusion proof (W4) --------------------------------------------------------------


@pytest.mark.parametrize("sibling", [0, 1, 2, 3, 25, 47])
async def test_a_forged_inclusion_proof_is_refused(bridge: Bridge, sibling: int) -> None:
    messages = [message(bridge, n) for n in range(6)]
    out = await bridge.propose(messages, ERIN)
    index, count, siblings = out.proof(5)
    siblings[sibling] = bytes(31) + b"\x01" if siblings[sibling] == bytes(32) else bytes(32)
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(messages[5]), out.index, out.root_proof(),
                                 (index, count, siblings))
    assert error.name == "InvalidInclusionProof"
    await bridge.prove(BOB, messages[5], out)  # the true proof passes


async def test_a_truncated_or_lying_proof_count_or_index_is_refused(bridge: Bridge) -> None:
    messages = [message(bridge, n) for n in range(6)]
    out = await bridge.propose(messages, ERIN)
    m = messages[4]
    index, count, siblings = out.proof(4)
    for lie, error_name in [((index, 4, siblings), "InvalidInclusionProof"),  # truncated: slot 4 not counted
                            ((index, 5, siblings), "InvalidInclusionProof"),  # another tree size
                            ((index, 7, siblings), "InvalidInclusionProof"),
                            ((index, MAX_LEAVES + 1, siblings), "InvalidInclusionProof"),
                            ((3, count, siblings), "ProofIndexNotNonce"),  # the index is the nonce
                            ((index + MAX_LEAVES, count, siblings), "ProofIndexNotNonce")]:
        error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(m), out.index, out.root_proof(), lie)
        assert error.name == error_name, lie
    # A slot aliased past 4**16 (the loop reads only the low 32 bits): the nonce would have to
    # match, which changes the leaf; and index < count <= 4**16 refuses it anyway.
    aliased = replace(m, nonce=4 + MAX_LEAVES)
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(aliased), out.index, out.root_proof(),
                                 (4 + MAX_LEAVES, count, siblings))
    assert error.name == "InvalidInclusionProof"
    # Calldata cut short (a sibling missing) does not decode: a bare revert, nothing proven.
    data = bridge.portal.encode_call("proveWithdrawal", w_tuple(m), out.index, out.root_proof(), (index, count,
                                                                                                  siblings))
    with pytest.raises(RpcError) as caught:
        await bridge.reg.l1.call(bridge.address, data[:-32], sender=BOB.address)
    assert not caught.value.revert_data
    assert (await bridge.send(BOB, "proveWithdrawal", w_tuple(m), out.index, out.root_proof(),
                              (index, count, siblings))).success


# --- any field changed after proving (W1) ---------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [("sender", CAROL.address), ("target", FRANK.address),
                                             ("value", ETHER + 1), ("gas_limit", TARGET_GAS + 1),
                                             ("data", b"hello L1 !"), ("nonce", 1)])
async def test_a_withdrawal_changed_after_proving_is_neither_provable_nor_finalizable(
        bridge: Bridge, name: str, value: object) -> None:
    messages, out, proven_at = await proven_and_final(bridge)
    m = messages[0]
    changed = replace(m, **{name: value})  # type: ignore[arg-type]
    assert changed.hash() != m.hash()
    bridge.reg.at(proven_at + DELAY)
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(changed), BOB.address)
    assert (error.name, error.args) == ("WithdrawalNotProven", (changed.hash(), BOB.address))
    # Proving the changed one with the original's proof fails too (its leaf is not in the tree).
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(changed), out.index, out.root_proof(), out.proof(0))
    assert error.name == ("ProofIndexNotNonce" if name == "nonce" else "InvalidInclusionProof")
    assert (await bridge.finalize(DAVE, m, BOB)).success  # the original, untouched


# --- maturity and the output's fate (W8) ----------------------------------------------------------


async def test_finalizing_one_second_before_maturity_fails_and_exactly_at_it_passes(bridge: Bridge) -> None:
    messages, _, proven_at = await proven_and_final(bridge)
    m = messages[0]
    bridge.reg.at(proven_at + DELAY - 1)
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("ProofNotMature", (m.hash(), proven_at + DELAY))
    receipt = await bridge.finalize(DAVE, m, BOB, gas=500_000)  # mined anyway: reverted
    assert not receipt.success and await bridge.state(m) == NONE
    bridge.reg.at(proven_at + DELAY)
    assert (await bridge.finalize(DAVE, m, BOB)).success
    assert await bridge.state(m) == SUCCEEDED


async def test_finalizing_needs_the_output_finalized_and_a_later_invalidation_voids_the_proof(
        bridge: Bridge) -> None:
    m = message(bridge, 0)
    lie = await bridge.propose([m], ERIN)
    receipt = await bridge.prove(BOB, m, lie)
    proven_at = await bridge.block_time(receipt)
    # Matured, but the output is still pending: not yet.
    bridge.reg.at(proven_at + DELAY)
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("OutputNotFinalized", (lie.index, OutputStatus.PROPOSED))
    # Nobody challenged that one in time. BOB proves again, against another output that a
    # challenger then proves wrong.
    lie2 = await bridge.propose([m], ERIN, length=5)
    receipt = await bridge.prove(BOB, m, lie2)  # BOB's proof now points at lie2 (its timer restarts)
    proven_at = await bridge.block_time(receipt)
    assert await bridge.read("provenWithdrawal", m.hash(), BOB.address) == \
        (lie2.index, lie2.snapshot.output_root(), proven_at)
    await bridge.invalidate(lie2)
    bridge.reg.mine_at(max(await bridge.reg.now(), proven_at + DELAY))
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("OutputNotFinalized", (lie2.index, OutputStatus.INVALIDATED))
    # Proven again against an honest output: the withdrawal goes through after a new delay.
    honest = await bridge.propose([m], FRANK, length=6)
    receipt = await bridge.prove(BOB, m, honest)
    await bridge.finalize_output(honest)
    proven_at = await bridge.block_time(receipt)
    bridge.reg.at(proven_at + DELAY - 1)
    assert (await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)).name == "ProofNotMature"
    bridge.reg.at(proven_at + DELAY)
    assert (await bridge.finalize(DAVE, m, BOB)).success


# --- once only (W6, W8, W9, W11) ------------------------------------------------------------------


async def test_finalizing_twice_or_proving_after_finalization_is_refused(bridge: Bridge) -> None:
    messages, out, _ = await proven_and_final(bridge)
    m = messages[0]
    await bridge.prove(CAROL, m, out)  # a second prover
    bridge.reg.mine_at(await bridge.reg.now() + DELAY)
    assert (await bridge.finalize(DAVE, m, BOB)).success
    for prover in (BOB, CAROL):  # not with the same proof, not with another one
        error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), prover.address)
        assert (error.name, error.args) == ("WithdrawalNotPending", (m.hash(), SUCCEEDED))
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(m), out.index, out.root_proof(), out.proof(0))
    assert (error.name, error.args) == ("WithdrawalNotPending", (m.hash(), SUCCEEDED))
    assert await bridge.harness("calls") == 1


async def test_re_entering_finalize_retry_or_refund_from_the_target_is_refused(bridge: Bridge) -> None:
    same, other, victim, failed = messages = [message(bridge, n, gas_limit=600_000) for n in range(4)]
    out = await bridge.propose(messages, ERIN)
    for m in messages:
        await bridge.prove(BOB, m, out)
    await bridge.finalize_output(out)
    bridge.reg.mine_at(await bridge.reg.now() + DELAY)
    await bridge.configure(reverts=True)
    assert (await bridge.finalize(DAVE, failed, BOB)).success and await bridge.state(failed) == FAILED

    portal = bridge.portal
    cases = [("finalizeWithdrawal", same, portal.encode_call("finalizeWithdrawal", w_tuple(same), BOB.address)),
             ("finalizeWithdrawal", other, portal.encode_call("finalizeWithdrawal", w_tuple(victim), BOB.address)),
             ("finalizeWithdrawal", victim, portal.encode_call("retryWithdrawal", w_tuple(failed))),
             ("retryWithdrawal", failed, portal.encode_call("refundWithdrawal", w_tuple(failed)))]
    for outer, m, reentry in cases:
        await bridge.configure(reentry=reentry)
        calls = await bridge.harness("calls")
        args = (w_tuple(m), BOB.address) if outer == "finalizeWithdrawal" else (w_tuple(m),)
        receipt = await bridge.send(DAVE, outer, *args)
        assert receipt.success and await bridge.state(m) == SUCCEEDED, outer
        assert await bridge.harness("calls") == calls + 1 and not await bridge.harness("reentryOk")
        error = portal.decode_error(await bridge.harness("reentryResult"))
        assert error is not None and error.name == "InsideWithdrawalCall", reentry[:4].hex()
        if m is other:
            assert await bridge.state(victim) == NONE  # untouched by the re-entry
        if m is victim:
            assert await bridge.state(failed) == FAILED
    assert [await bridge.state(m) for m in messages] == [SUCCEEDED] * 4
    assert await bridge.harness("received") == 4 * ETHER


async def test_a_target_proving_its_own_withdrawal_again_during_its_call_is_refused(bridge: Bridge) -> None:
    """proveWithdrawal is the one entry point without the lock: a target re-proving the withdrawal
    being paid to it (a proof of its own, to time something) finds it no longer pending."""
    m = message(bridge, 0, gas_limit=600_000)
    out = await bridge.propose([m], ERIN)
    await bridge.prove(BOB, m, out)  # the same proof, before the call, passes
    await bridge.finalize_output(out)
    bridge.reg.mine_at(await bridge.reg.now() + DELAY)
    await bridge.configure(reentry=bridge.portal.encode_call("proveWithdrawal", w_tuple(m), out.index,
                                                             out.root_proof(), out.proof(0)))
    receipt = await bridge.send(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert receipt.success and await bridge.state(m) == SUCCEEDED and not await bridge.harness("reentryOk")
    error = bridge.portal.decode_error(await bridge.harness("reentryResult"))
    assert error is not None and (error.name, error.args[1]) == ("WithdrawalNotPending", SUCCEEDED)


async def test_a_withdrawal_above_what_the_portal_holds_fails_and_is_paid_once_deposits_cover_it(
        bridge: Bridge) -> None:
    """The devnet's L2 genesis holds ETH no deposit brought, so a withdrawal can ask more than the
    portal holds: its call fails (it is not lost, unlike OptimismPortal2's), a refund cannot be
    paid either, nothing else's value is touched, and a retry pays it once deposits cover it."""
    m = message(bridge, 0, value=FUNDS + 50 * ETHER)
    small = message(bridge, 1)
    out = await bridge.propose([m, small], ERIN)
    for w in (m, small):
        await bridge.prove(BOB, w, out)
    await bridge.finalize_output(out)
    bridge.reg.mine_at(await bridge.reg.now() + DELAY)
    receipt = await bridge.finalize(DAVE, m, BOB)
    assert bridge.events(receipt) == [("WithdrawalFinalized", {"withdrawalHash": m.hash(), "success": False})]
    assert await bridge.state(m) == FAILED and await bridge.reg.l1.get_balance(bridge.address) == FUNDS
    error = await bridge.refused(ALICE, "refundWithdrawal", w_tuple(m))
    assert (error.name, error.args) == ("RefundFailed", (m.hash(),))  # reverted whole: still FAILED
    assert await bridge.state(m) == FAILED
    assert (await bridge.finalize(DAVE, small, BOB)).success and await bridge.state(small) == SUCCEEDED
    assert (await bridge.send(GRACE, "depositTransaction", GRACE.address, value=51 * ETHER)).success
    assert (await bridge.send(ERIN, "retryWithdrawal", w_tuple(m))).success
    assert await bridge.state(m) == SUCCEEDED and await bridge.harness("received") == m.value + small.value
    assert await bridge.reg.l1.get_balance(bridge.address) == 0


async def test_a_withdrawal_to_the_portal_itself_is_refused(bridge: Bridge) -> None:
    call = bridge.portal.encode_call("refundWithdrawal", w_tuple(message(bridge, 0)))
    m = message(bridge, 0, target=bridge.address, data=call)
    out = await bridge.propose([m], ERIN)
    error = await bridge.refused(BOB, "proveWithdrawal", w_tuple(m), out.index, out.root_proof(), out.proof(0))
    assert (error.name, error.args) == ("UnsafeTarget", (bridge.address,))


# --- gas (W10) ------------------------------------------------------------------------------------


async def test_a_finalizer_cannot_starve_the_target_call_into_failing(bridge: Bridge) -> None:
    """Whatever gas the finalizing transaction carries, the target call either gets its gas
    limit or is not made: the lowest gas that gets the transaction through finalizes it
    SUCCEEDED, one less reverts it with the withdrawal still pending. Never FAILED."""
    burn = 300_000
    m = message(bridge, 0, gas_limit=burn + TARGET_GAS)  # the target needs all but ~100k of it
    out = await bridge.propose([m], ERIN)
    await bridge.prove(BOB, m, out)
    await bridge.finalize_output(out)
    bridge.reg.mine_at(await bridge.reg.now() + DELAY)
    await bridge.configure(burn=burn)

    chain = bridge.reg.chain

    async def attempt(gas: int) -> tuple[bool, int]:
        snapshot = chain.rpc("evm_snapshot")
        try:
            bridge.reg.senders.pop(DAVE.address, None)  # its nonce cache would outlive the revert
            receipt = await bridge.finalize(DAVE, m, BOB, gas=gas)
            return receipt.success, await bridge.state(m)
        finally:
            assert chain.rpc("evm_revert", snapshot)
            bridge.reg.senders.pop(DAVE.address, None)

    low, high = 100_000, 2_000_000
    assert await attempt(low) == (False, NONE) and await attempt(high) == (True, SUCCEEDED)
    while high - low > 1:
        mid = (low + high) // 2
        ok, state = await attempt(mid)
        assert state == (SUCCEEDED if ok else NONE), (mid, ok, state)
        low, high = (low, mid) if ok else (mid, high)
    assert await attempt(high) == (True, SUCCEEDED)
    assert await attempt(low) == (False, NONE)
    assert high > m.gas_limit  # the limit itself, and the 64/63 margin, are the finalizer's to pay
    # What a finalizer with too little gas sees: InsufficientGas, naming the limit.
    tx = {"from": "0x" + DAVE.address.hex(), "to": "0x" + bridge.address.hex(), "gas": hex(low),
          "data": "0x" + bridge.portal.encode_call("finalizeWithdrawal", w_tuple(m), BOB.address).hex()}
    with pytest.raises(RpcError) as caught:
        await bridge.reg.l1.request("eth_call", tx, "latest")
    error = bridge.portal.decode_error(caught.value.revert_data)
    assert error is not None and (error.name, error.args) == ("InsufficientGas", (m.gas_limit,))


async def test_a_gas_limit_beyond_any_block_is_never_called(bridge: Bridge) -> None:
    """2**64 and more would overflow the 63/64 arithmetic into a small number."""
    m = message(bridge, 0, gas_limit=2**256 // 64 + 1)
    out = await bridge.propose([m], ERIN)
    await bridge.prove(BOB, m, out)
    await bridge.finalize_output(out)
    bridge.reg.mine_at(await bridge.reg.now() + DELAY)
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("InsufficientGas", (m.gas_limit,))


# --- a failing target strands nothing (W11-W13) ---------------------------------------------------


async def test_a_failing_target_leaves_the_value_in_the_portal_and_a_retry_succeeds_once_fixed(
        bridge: Bridge) -> None:
    messages, _, proven_at = await proven_and_final(bridge)
    m = messages[0]
    await bridge.configure(reverts=True)
    bridge.reg.at(proven_at + DELAY)
    before = await bridge.reg.l1.get_balance(bridge.address)
    receipt = await bridge.finalize(DAVE, m, BOB)
    assert receipt.success
    assert bridge.events(receipt) == [("WithdrawalFinalized", {"withdrawalHash": m.hash(), "success": False})]
    assert await bridge.state(m) == FAILED
    assert await bridge.reg.l1.get_balance(bridge.address) == before  # earmarked, still here
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("WithdrawalNotPending", (m.hash(), FAILED))
    # A retry while the target still refuses: FAILED still.
    receipt = await bridge.send(ERIN, "retryWithdrawal", w_tuple(m))
    assert bridge.events(receipt) == [("WithdrawalFinalized", {"withdrawalHash": m.hash(), "success": False})]
    assert await bridge.state(m) == FAILED
    # Retry obeys the gas rule too.
    tx = {"from": "0x" + ERIN.address.hex(), "to": "0x" + bridge.address.hex(), "gas": hex(150_000),
          "data": "0x" + bridge.portal.encode_call("retryWithdrawal", w_tuple(m)).hex()}
    with pytest.raises(RpcError) as caught:
        await bridge.reg.l1.request("eth_call", tx, "latest")
    refused = bridge.portal.decode_error(caught.value.revert_data)
    assert refused is not None and (refused.name, refused.args) == ("InsufficientGas", (m.gas_limit,))
    # Fixed: anyone retries, the target gets value, data and sender.
    await bridge.configure()
    receipt = await bridge.send(ERIN, "retryWithdrawal", w_tuple(m))
    assert bridge.events(receipt) == [("WithdrawalFinalized", {"withdrawalHash": m.hash(), "success": True})]
    assert await bridge.state(m) == SUCCEEDED
    assert [await bridge.harness(v) for v in ("calls", "received", "lastData", "lastL2Sender")] == \
        [1, m.value, m.data, ALICE.address]
    assert await bridge.reg.l1.get_balance(bridge.address) == before - m.value
    for function in ("retryWithdrawal", "refundWithdrawal"):
        error = await bridge.refused(ALICE, function, w_tuple(m))
        assert (error.name, error.args) == ("WithdrawalNotFailed", (m.hash(), SUCCEEDED))


async def test_a_failed_withdrawal_is_refunded_to_its_sender_only_and_once(bridge: Bridge) -> None:
    messages, _, proven_at = await proven_and_final(bridge)
    m = messages[0]
    error = await bridge.refused(ALICE, "refundWithdrawal", w_tuple(m))
    assert (error.name, error.args) == ("WithdrawalNotFailed", (m.hash(), NONE))  # not before it failed
    await bridge.configure(reverts=True)
    bridge.reg.at(proven_at + DELAY)
    assert (await bridge.finalize(DAVE, m, BOB)).success and await bridge.state(m) == FAILED
    for stranger in (BOB, DAVE):  # the prover, the finalizer: not theirs
        error = await bridge.refused(stranger, "refundWithdrawal", w_tuple(m))
        assert (error.name, error.args) == ("NotWithdrawalSender", (stranger.address, ALICE.address))
    balance, portal = [await bridge.reg.l1.get_balance(a) for a in (ALICE.address, bridge.address)]
    receipt = await bridge.send(ALICE, "refundWithdrawal", w_tuple(m))
    assert bridge.events(receipt) == [("WithdrawalRefunded", {"withdrawalHash": m.hash(), "to": ALICE.address,
                                                              "value": m.value})]
    assert await bridge.state(m) == REFUNDED
    fee = receipt.gas_used * receipt.effective_gas_price
    assert await bridge.reg.l1.get_balance(ALICE.address) == balance + m.value - fee
    assert await bridge.reg.l1.get_balance(bridge.address) == portal - m.value
    await bridge.configure()  # even a fixed target gets nothing now
    for function in ("refundWithdrawal", "retryWithdrawal"):
        error = await bridge.refused(ALICE, function, w_tuple(m))
        assert (error.name, error.args) == ("WithdrawalNotFailed", (m.hash(), REFUNDED))
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("WithdrawalNotPending", (m.hash(), REFUNDED))
    assert await bridge.harness("received") == 0


# --- a withdrawal no block can call (W14) --------------------------------------------------------


@pytest.mark.parametrize("beyond", ["2**64", "2**256-1", "the block"])
async def test_a_withdrawal_no_block_can_call_is_refunded_to_its_sender_once_it_could_be_finalized(
        bridge: Bridge, beyond: str) -> None:
    """L2 records any gas limit; one W10 can never meet would strand its value (it never reaches
    FAILED, so W13 cannot free it). Its sender takes it back, on finalize's own terms."""
    block_gas = await bridge.block_gas_limit()
    assert await bridge.read("CALL_OVERHEAD") == CALL_OVERHEAD
    edge = largest_callable(block_gas)
    gas_limit = {"2**64": 2**64, "2**256-1": 2**256 - 1, "the block": edge + 1}[beyond]
    m = message(bridge, 0, gas_limit=gas_limit)
    callable_ = message(bridge, 1, gas_limit=edge)  # the largest limit the whole block could give
    out = await bridge.propose([m, callable_], ERIN)
    proven_at = await bridge.block_time(await bridge.prove(BOB, m, out))
    await bridge.prove(BOB, callable_, out)
    await bridge.finalize_output(out)
    # CAROL proves it against a later output, which nobody finalizes.
    pending = await bridge.propose([m, callable_], ERIN, length=5)
    carol_at = await bridge.block_time(await bridge.prove(CAROL, m, pending))

    bridge.reg.at(proven_at + DELAY - 1)
    error = await bridge.refused(ALICE, "refundUncallableWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("ProofNotMature", (m.hash(), proven_at + DELAY))
    bridge.reg.mine_at(max(proven_at + DELAY, carol_at + DELAY))
    error = await bridge.refused(ALICE, "refundUncallableWithdrawal", w_tuple(m), CAROL.address)
    assert (error.name, error.args) == ("OutputNotFinalized", (pending.index, OutputStatus.PROPOSED))
    error = await bridge.refused(ALICE, "refundUncallableWithdrawal", w_tuple(m), FRANK.address)
    assert (error.name, error.args) == ("WithdrawalNotProven", (m.hash(), FRANK.address))
    for stranger in (BOB, DAVE):  # the prover, anyone: not theirs
        error = await bridge.refused(stranger, "refundUncallableWithdrawal", w_tuple(m), BOB.address)
        assert (error.name, error.args) == ("NotWithdrawalSender", (stranger.address, ALICE.address))
    # Finalizing it is refused as ever (W10), and one the whole block could call is not refunded.
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("InsufficientGas", (gas_limit,))
    error = await bridge.refused(ALICE, "refundUncallableWithdrawal", w_tuple(callable_), BOB.address)
    assert (error.name, error.args) == ("WithdrawalCallable", (edge, block_gas))
    assert [await bridge.state(x) for x in (m, callable_)] == [NONE, NONE]

    balance, portal = [await bridge.reg.l1.get_balance(a) for a in (ALICE.address, bridge.address)]
    receipt = await bridge.refund_uncallable(ALICE, m, BOB)
    assert receipt.success
    assert bridge.events(receipt) == [("WithdrawalRefunded", {"withdrawalHash": m.hash(), "to": ALICE.address,
                                                              "value": m.value})]
    assert await bridge.state(m) == REFUNDED
    fee = receipt.gas_used * receipt.effective_gas_price
    assert await bridge.reg.l1.get_balance(ALICE.address) == balance + m.value - fee
    assert await bridge.reg.l1.get_balance(bridge.address) == portal - m.value
    # Once: not again, not by finalize, retry or the failed-withdrawal refund.
    error = await bridge.refused(ALICE, "refundUncallableWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("WithdrawalNotPending", (m.hash(), REFUNDED))
    error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("WithdrawalNotPending", (m.hash(), REFUNDED))
    for function in ("refundWithdrawal", "retryWithdrawal"):
        error = await bridge.refused(ALICE, function, w_tuple(m))
        assert (error.name, error.args) == ("WithdrawalNotFailed", (m.hash(), REFUNDED))
    assert await bridge.harness("calls") == 0


async def test_an_ordinary_withdrawal_is_callable_so_finalized_not_refunded(bridge: Bridge) -> None:
    messages, _, proven_at = await proven_and_final(bridge)
    m = messages[0]
    bridge.reg.at(proven_at + DELAY)
    error = await bridge.refused(ALICE, "refundUncallableWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("WithdrawalCallable", (TARGET_GAS, await bridge.block_gas_limit()))
    assert (await bridge.finalize(DAVE, m, BOB)).success and await bridge.state(m) == SUCCEEDED
    error = await bridge.refused(ALICE, "refundUncallableWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("WithdrawalNotPending", (m.hash(), SUCCEEDED))


async def test_refunding_an_uncallable_withdrawal_inside_a_target_call_or_to_a_refusing_sender_is_refused(
        bridge: Bridge) -> None:
    """The harness is the uncallable withdrawal's sender here, so that its re-entry passes every
    check but the lock (W9): without the lock the refund would go through."""
    stuck = message(bridge, 0, sender=bridge.target_address, gas_limit=2**64)
    carrier = message(bridge, 1, gas_limit=600_000)
    out = await bridge.propose([stuck, carrier], ERIN)
    for m in (stuck, carrier):
        await bridge.prove(BOB, m, out)
    await bridge.finalize_output(out)
    bridge.reg.mine_at(await bridge.reg.now() + DELAY)
    reentry = bridge.portal.encode_call("refundUncallableWithdrawal", w_tuple(stuck), BOB.address)
    await bridge.configure(reentry=reentry)
    assert (await bridge.finalize(DAVE, carrier, BOB)).success and await bridge.state(carrier) == SUCCEEDED
    assert not await bridge.harness("reentryOk")
    error = bridge.portal.decode_error(await bridge.harness("reentryResult"))
    assert error is not None and error.name == "InsideWithdrawalCall"
    assert await bridge.state(stuck) == NONE
    # Outside a target call, every check passes but the payment: the harness's receive() reads
    # l2Sender(), which reverts there. RefundFailed, and nothing changed.
    with pytest.raises(RpcError) as caught:
        await bridge.reg.l1.call(bridge.address, reentry, sender=bridge.target_address, block="pending")
    refused = bridge.portal.decode_error(caught.value.revert_data)
    assert refused is not None and (refused.name, refused.args) == ("RefundFailed", (stuck.hash(),))
    assert await bridge.state(stuck) == NONE


# --- per-prover proofs (W7) -----------------------------------------------------------------------


async def test_a_griefer_proving_against_a_lie_cannot_block_or_reset_the_honest_proof(bridge: Bridge) -> None:
    m = message(bridge, 0)
    fake = message(bridge, 1, sender=GRACE.address, target=GRACE.address, value=50 * ETHER, data=b"")
    lie = await bridge.propose([m, fake], CAROL)  # the griefer's output: the real message and a fake
    honest = await bridge.propose([m], ERIN, length=5)
    await bridge.prove(CAROL, m, lie)  # first
    receipt = await bridge.prove(BOB, m, honest)
    honest_at = await bridge.block_time(receipt)
    await bridge.prove(CAROL, m, lie)  # and again after BOB: his proof stays his
    await bridge.prove(GRACE, fake, lie)
    assert await bridge.read("provenWithdrawal", m.hash(), BOB.address) == \
        (honest.index, honest.snapshot.output_root(), honest_at)
    assert (await bridge.read("provenWithdrawal", m.hash(), CAROL.address))[0] == lie.index
    await bridge.invalidate(lie)
    await bridge.finalize_output(honest)
    bridge.reg.mine_at(max(await bridge.reg.now(), honest_at + DELAY) + 1)
    for prover, who in ((CAROL, m), (GRACE, fake)):
        error = await bridge.refused(DAVE, "finalizeWithdrawal", w_tuple(who), prover.address)
        assert (error.name, error.args) == ("OutputNotFinalized", (lie.index, OutputStatus.INVALIDATED))
    assert (await bridge.finalize(DAVE, m, BOB)).success and await bridge.state(m) == SUCCEEDED
    assert await bridge.state(fake) == NONE


# --- replay (W2, W3) ------------------------------------------------------------------------------


async def test_a_withdrawal_proven_on_one_portal_cannot_be_replayed_on_another_deployment(
        bridge: Bridge, l1: L1Client, chain: Anvil) -> None:
    """A portal trusts its own registry's outputs only: another deployment (another rollup on
    this L1, or the same contracts on another L1 chain id) refuses the proof."""
    messages, out, proven_at = await proven_and_final(bridge)
    m = messages[0]
    bridge.reg.at(proven_at + DELAY)
    assert (await bridge.finalize(DAVE, m, BOB)).success
    second = await Bridge.deploy(l1, chain)
    assert second.address != bridge.address
    error = await second.reg.revert_of(BOB, second.portal, "proveWithdrawal", w_tuple(m), out.index,
                                       out.root_proof(), out.proof(0), decoder=second.reg.contract)
    assert (error.name, error.args) == ("UnknownOutput", (out.index, 1))
    # Its own output 1 is another L2's: the first one's root preimage is not its root.
    own = await second.propose([message(second, 0)], ERIN)
    assert own.index == out.index
    error = await second.refused(BOB, "proveWithdrawal", w_tuple(m), out.index, out.root_proof(), out.proof(0))
    assert (error.name, error.args) == ("InvalidOutputRootProof", (out.index,))
    # BOB's proof on the first portal is nothing on the second.
    second.reg.mine_at(await second.reg.now() + DELAY)
    error = await second.refused(DAVE, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("WithdrawalNotProven", (m.hash(), BOB.address))


async def test_a_challenged_output_takes_proofs_but_pays_nothing_and_a_re_proof_restarts_its_own_timer(
        bridge: Bridge) -> None:
    """OptimismPortal2: proving against an undecided output is allowed (finalize waits for its
    fate); a prover that proves again waits again, from its new proof."""
    m = message(bridge, 0)
    out = await bridge.propose([m], ERIN)
    await bridge.reg.challenge(DAVE, out.index)
    assert await bridge.reg.status(out.index) == OutputStatus.CHALLENGED
    first = await bridge.block_time(await bridge.prove(BOB, m, out))
    bridge.reg.at(first + DELAY)
    error = await bridge.refused(FRANK, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("OutputNotFinalized", (out.index, OutputStatus.CHALLENGED))

    honest = await bridge.propose([m], ERIN, length=5)
    await bridge.finalize_output(honest)
    again = await bridge.block_time(await bridge.prove(BOB, m, honest))
    assert again > first + DELAY
    bridge.reg.at(again + DELAY - 1)
    error = await bridge.refused(FRANK, "finalizeWithdrawal", w_tuple(m), BOB.address)
    assert (error.name, error.args) == ("ProofNotMature", (m.hash(), again + DELAY))
    bridge.reg.at(again + DELAY)
    assert (await bridge.finalize(FRANK, m, BOB)).success
