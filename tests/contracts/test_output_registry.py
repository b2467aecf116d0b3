"""OutputRegistry on a real anvil: the anchor, bonded proposals, the challenge window and
parent-first finalization, invalidation of an output and of what was built on it, concurrent
challengers, and the bounded cascade. Games are played with the counter-machine verifier
(contracts/StepVerifierHarness.sol), see tests/contracts/_game.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.l1 import Contract, L1Client, RpcError
from services.rollups._contracts import GameStatus
from services.rollups._contracts import OutputStatus as Status
from services.rollups._snapshot import Phase
from tests.contracts._game import (
    ALICE,
    ANCHOR,
    BOB,
    CAROL,
    DAVE,
    DEPLOYER,
    ERIN,
    REGISTRY,
    Params,
    Registry,
    Trace,
    abi,
    forged,
    honest,
    lying_from,
    play,
)
from tests.l1.anvil import Anvil

DAY = 86_400
ZERO_ADDRESS = bytes(20)


async def test_the_anchor_the_parameters_and_what_the_constructor_refuses(l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    p = reg.params
    assert await reg.output(0) == {
        "output_root": ANCHOR.output_root(), "snapshot_hash": ANCHOR.commitment(), "l2_block": ANCHOR.number,
        "parent_index": 0, "proposed_at": await reg.now(), "trace_length": 0, "proposer": ZERO_ADDRESS,
        "status": Status.FINALIZED, "active_games": 0, "batch_limit": 0}
    for view, expected in {"outputCount": 1, "head": 0, "latestFinalized": 0, "gameCount": 0,
                           "verifier": reg.verifier.address, "proposalBond": p.proposal_bond,
                           "challengeBond": p.challenge_bond, "moveBondBase": p.move_bond_base,
                           "challengeWindow": p.window, "maxClockDuration": p.clock,
                           "maxTraceLength": p.max_trace_length, "MAX_DURATION": 365 * DAY}.items():
        assert await reg.read(view) == expected, view
    assert await reg.read("gamesOf", 0) == ()
    # The anchor is logged like any output: the log history alone describes the chain.
    assert reg.events(reg.deploy_receipt) == [
        ("OutputProposed", {"index": 0, "outputRoot": ANCHOR.output_root(), "l2Block": ANCHOR.number,
                            "parentIndex": 0, "proposer": ZERO_ADDRESS, "snapshotHash": ANCHOR.commitment(),
                            "traceLength": 0, "batchLimit": 0}),
        ("OutputFinalized", {"index": 0})]
    for error_name, call in [("UnknownOutput", ("output", 1)), ("UnknownOutput", ("gamesOf", 1)),
                             ("UnknownGame", ("game", 0))]:
        assert (await reg.revert_of(ALICE, reg.contract, *call)).name == error_name

    verifier = reg.verifier.address
    assert verifier is not None
    cases = [
        (Params(), ALICE.address, "VerifierNotAContract", (ALICE.address,)),
        (Params(proposal_bond=0), verifier, "ZeroProposalBond", ()),
        (Params(challenge_bond=0), verifier, "ZeroChallengeBond", ()),
        (Params(move_bond_base=0), verifier, "ZeroMoveBond", ()),
        (Params(window=0), verifier, "ChallengeWindowOutOfRange", (0, 365 * DAY)),
        (Params(window=7 * DAY * 1000), verifier, "ChallengeWindowOutOfRange", (7 * DAY * 1000, 365 * DAY)),
        (Params(clock=0), verifier, "ClockDurationOutOfRange", (0, 365 * DAY)),
        (Params(max_trace_length=0), verifier, "MaxTraceLengthOutOfRange", (0, 2**64 - 1)),
        (Params(max_trace_length=2**64), verifier, "MaxTraceLengthOutOfRange", (2**64, 2**64 - 1)),
    ]
    contract = Contract(REGISTRY)
    for params, with_verifier, name, args in cases:
        with pytest.raises(RpcError) as caught:
            await l1.estimate_gas(None, contract.encode_deploy(*params.deploy_args(ANCHOR, with_verifier)),
                                  sender=DEPLOYER.address)
        refused = contract.decode_error(caught.value.revert_data)
        assert refused is not None and (refused.name, refused.args) == (name, args), params
    with pytest.raises(RpcError) as caught:
        await l1.estimate_gas(None, contract.encode_deploy(*Params().deploy_args(
            replace(ANCHOR, phase=Phase.BATCH), verifier)), sender=DEPLOYER.address)
    refused = contract.decode_error(caught.value.revert_data)
    assert refused is not None and (refused.name, refused.args) == ("NotIdle", (3,))


async def test_proposals_extend_the_head_with_a_bond(l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    bond, limit = reg.params.proposal_bond, reg.params.max_trace_length
    s1 = honest(ANCHOR, 110, 10)
    receipt = await reg.transact(ALICE, reg.contract, "propose", 0, abi(s1), 10, value=bond)
    assert receipt.success
    assert reg.events(receipt) == [("OutputProposed", {
        "index": 1, "outputRoot": s1.output_root(), "l2Block": 110, "parentIndex": 0, "proposer": ALICE.address,
        "snapshotHash": s1.commitment(), "traceLength": 10, "batchLimit": 1})]
    block = await l1.get_block(receipt.block_number)
    assert block is not None
    assert await reg.output(1) == {
        "output_root": s1.output_root(), "snapshot_hash": s1.commitment(), "l2_block": 110, "parent_index": 0,
        "proposed_at": block.timestamp, "trace_length": 10, "proposer": ALICE.address, "status": Status.PROPOSED,
        "active_games": 0, "batch_limit": 1}
    assert (await reg.read("head"), await reg.read("outputCount")) == (1, 2)
    assert await l1.get_balance(reg.contract.address or b"") == bond

    s2 = honest(s1, 120, 10)
    refused = [
        ((1, abi(s2), 10), 0, "WrongBond", (0, bond)),
        ((1, abi(s2), 10), bond + 1, "WrongBond", (bond + 1, bond)),
        ((0, abi(s2), 10), bond, "NotHead", (0, 1)),  # the anchor is no longer the head
        ((2, abi(s2), 10), bond, "NotHead", (2, 1)),
        ((1, abi(replace(s2, phase=Phase.DEPOSITS)), 10), bond, "NotIdle", (1,)),
        ((1, abi(replace(s2, number=110)), 10), bond, "L2BlockOutOfRange", (110, 110)),
        ((1, abi(replace(s2, number=109)), 10), bond, "L2BlockOutOfRange", (109, 110)),
        ((1, abi(replace(s2, number=2**64)), 10), bond, "L2BlockOutOfRange", (2**64, 110)),
        ((1, abi(s2), 0), bond, "TraceLengthOutOfRange", (0, limit)),
        ((1, abi(s2), limit + 1), bond, "TraceLengthOutOfRange", (limit + 1, limit)),
    ]
    for args, value, name, expected in refused:
        error = await reg.revert_of(BOB, reg.contract, "propose", *args, value=value)
        assert (error.name, error.args) == (name, expected)
    assert await reg.propose(BOB, s2, limit) == 2  # the longest trace allowed
    assert await reg.read("head") == 2
    assert (await reg.output(2))["parent_index"] == 1



async def test_an_output_records_the_verifiers_batch_count_at_proposal(l1: L1Client, chain: Anvil) -> None:
    """Its games' bound (IStepVerifier): the count when it was proposed, whatever L1 holds later."""
    reg = await Registry.deploy(l1, chain)

    async def batches(count: int) -> None:
        assert (await reg.transact(DEPLOYER, reg.verifier, "setBatchCount", count)).success

    await batches(5)
    s1 = honest(ANCHOR, 110, 10)
    receipt = await reg.transact(ALICE, reg.contract, "propose", 0, abi(s1), 10, value=reg.params.proposal_bond)
    ((_, proposed),) = reg.events(receipt)
    assert proposed["batchLimit"] == 5 and (await reg.output(1))["batch_limit"] == 5
    await batches(9)  # batches posted after the proposal are not the output's
    assert (await reg.output(1))["batch_limit"] == 5
    assert await reg.propose(BOB, honest(s1, 120, 10), 10) == 2
    assert (await reg.output(2))["batch_limit"] == 9
    game = await reg.challenge(CAROL, 1)
    assert await game.read(l1, "batchLimit") == (5,)  # what its step passes to the verifier
    await batches(2**256 - 1)  # beyond the stored width (no inbox gets there): clamped
    assert await reg.propose(BOB, honest(honest(s1, 120, 10), 130, 10), 10) == 3
    assert (await reg.output(3))["batch_limit"] == 2**48 - 1


async def test_finalization_waits_for_the_window_and_the_parent_at_production_scale(
        l1: L1Client, chain: Anvil) -> None:
    window = 7 * DAY
    reg = await Registry.deploy(l1, chain, Params(window=window, clock=7 * DAY // 2))
    bond = reg.params.proposal_bond
    t1 = await reg.now() + 10
    reg.at(t1)
    assert await reg.propose(ALICE, honest(ANCHOR, 110, 10), 10) == 1
    reg.at(t1 + 1)
    assert await reg.propose(BOB, honest(honest(ANCHOR, 110, 10), 120, 10), 10) == 2

    reg.at(t1 + window - 1)  # one second early
    error = await reg.revert_of(CAROL, reg.contract, "finalize", 1)
    assert (error.name, error.args) == ("ChallengeWindowOpen", (1, t1 + window))
    receipt = await reg.transact(CAROL, reg.contract, "finalize", 1, gas=200_000)  # mined anyway: reverted
    assert not receipt.success and await reg.status(1) == Status.PROPOSED
    reg.at(t1 + window + 1)
    error = await reg.revert_of(CAROL, reg.contract, "finalize", 2)  # its window is over too, but 1 is not final
    assert (error.name, error.args) == ("ParentNotFinalized", (2, 1))
    receipt = await reg.transact(CAROL, reg.contract, "finalize", 1)  # anyone may finalize
    assert receipt.success and reg.events(receipt) == [("OutputFinalized", {"index": 1})]
    assert await reg.read("latestFinalized") == 1
    assert (await reg.transact(CAROL, reg.contract, "finalize", 2)).success
    assert (await reg.status(2), await reg.read("latestFinalized"), await reg.read("head")) == (Status.FINALIZED, 2, 2)
    for index in (0, 1):
        error = await reg.revert_of(CAROL, reg.contract, "finalize", index)
        assert (error.name, error.args) == ("OutputNotPending", (index, Status.FINALIZED))
        error = await reg.revert_of(CAROL, reg.contract, "challenge", index, value=reg.params.challenge_bond)
        assert (error.name, error.args) == ("OutputNotPending", (index, Status.FINALIZED))

    # The bond comes back to the proposer, by pull.
    assert (await reg.read("credit", ALICE.address), await reg.read("credit", CAROL.address)) == (bond, 0)
    before = await l1.get_balance(ALICE.address)
    receipt = await reg.transact(ALICE, reg.contract, "withdraw")
    assert reg.events(receipt) == [("Withdrawn", {"account": ALICE.address, "amount": bond})]
    assert await l1.get_balance(ALICE.address) == before + bond - receipt.gas_used * receipt.effective_gas_price
    assert await reg.read("credit", ALICE.address) == 0
    error = await reg.revert_of(ALICE, reg.contract, "withdraw")
    assert (error.name, error.args) == ("NothingToWithdraw", (ALICE.address,))

    # A challenge is possible until the window's last second, not after; a challenged output
    # does not finalize, whatever the time.
    t3 = await reg.now() + 10
    reg.at(t3)
    assert await reg.propose(BOB, honest(honest(honest(ANCHOR, 110, 10), 120, 10), 130, 10), 10) == 3
    reg.at(t3 + window)
    error = await reg.revert_of(DAVE, reg.contract, "challenge", 3, value=reg.params.challenge_bond)
    assert (error.name, error.args) == ("ChallengeWindowClosed", (3, t3 + window))
    reg.at(t3 + window - 1)
    error = await reg.revert_of(DAVE, reg.contract, "challenge", 3, value=reg.params.challenge_bond - 1)
    assert error.name == "WrongBond"
    await reg.challenge(DAVE, 3)
    reg.at(t3 + window + 1)
    error = await reg.revert_of(DAVE, reg.contract, "finalize", 3)
    assert (error.name, error.args) == ("OutputUnderChallenge", (3, 1))


async def test_a_lying_proposer_loses_its_output_everything_built_on_it_and_its_bond(
        l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    p = reg.params
    trace = Trace(ANCHOR, target=ANCHOR.number + 1000, length=1000)
    lie = forged(trace.snapshot(1000))  # the right block, the wrong state
    assert await reg.propose(ALICE, lie, 1000) == 1
    s2 = honest(lie, lie.number + 50, 50)  # honest work, built on the lie
    assert await reg.propose(BOB, s2, 50) == 2
    assert await reg.propose(CAROL, honest(s2, s2.number + 5, 5), 5) == 3

    game = await reg.challenge(DAVE, 1)
    assert await reg.read("gamesOf", 1) == (0,)
    assert (await reg.read("gameCount"), await reg.read("game", 0)) == (1, game.address)
    assert ((await reg.output(1))["status"], (await reg.output(1))["active_games"]) == (Status.CHALLENGED, 1)
    for view, expected in {"registry": reg.contract.address, "outputIndex": 1, "verifier": reg.verifier.address,
                           "target": trace.target, "traceLength": 1000, "startClaim": ANCHOR.commitment(),
                           "rootClaim": lie.commitment(), "defender": ALICE.address, "challenger": DAVE.address,
                           "batchLimit": 1, "lo": 0, "hi": 1000, "loHash": ANCHOR.commitment(),
                           "hiHash": lie.commitment(),
                           "round": 0, "status": GameStatus.IN_PROGRESS}.items():
        assert (await game.read(l1, view))[0] == expected, view
    assert await l1.get_balance(game.address or b"") == p.challenge_bond

    # The liar's trace is honest everywhere but at the end, so the honest challenger always
    # agrees and the dispute narrows to the very last step: the longest path, ceil(log2 1000).
    played = await play(reg, game, trace, ALICE, DAVE, claims=lying_from(trace, 1000),
                        agrees=lambda mid, claim: claim == trace.claim(mid))
    assert (played.status, played.rounds) == (GameStatus.CHALLENGER_WON, 10)
    assert [await game.read(l1, v) for v in ("lo", "hi")] == [(999,), (1000,)]
    name, step = played.receipts[-1]
    assert name == "STEP"
    assert reg.events(step, game) == [("Stepped", {"pre": trace.claim(999), "post": trace.claim(1000)}),
                                      ("Resolved", {"status": GameStatus.CHALLENGER_WON})]
    assert reg.events(step) == [("GameResolved", {"gameId": 0, "challengerWon": True}),
                                *[("OutputInvalidated", {"index": i, "gameId": 0}) for i in (1, 2, 3)]]

    assert [await reg.status(i) for i in range(4)] == [Status.FINALIZED, *[Status.INVALIDATED] * 3]
    assert (await reg.read("head"), (await reg.output(1))["active_games"]) == (0, 0)
    # Bonds: the liar's goes to the challenger; the outputs built on it are refunded.
    credits = {who: await reg.read("credit", who.address) for who in (ALICE, BOB, CAROL, DAVE)}
    assert credits == {ALICE: 0, BOB: p.proposal_bond, CAROL: p.proposal_bond, DAVE: p.proposal_bond}
    # The game's pot (the challenge bond and every move bond of both sides) goes to the winner.
    pot = p.challenge_bond + 2 * p.move_bond_base * sum(r + 1 for r in range(10))
    assert (await game.read(l1, "credit", DAVE.address), await game.read(l1, "credit", ALICE.address)) == ((pot,), (0,))
    assert await l1.get_balance(game.address or b"") == pot
    before = await l1.get_balance(DAVE.address)
    r1 = await reg.transact(DAVE, game, "withdraw")
    r2 = await reg.transact(DAVE, reg.contract, "withdraw")
    spent = sum(r.gas_used * r.effective_gas_price for r in (r1, r2))
    assert await l1.get_balance(DAVE.address) == before + pot + p.proposal_bond - spent
    assert await l1.get_balance(game.address or b"") == 0
    assert (await reg.transact(BOB, reg.contract, "withdraw")).success
    assert await l1.get_balance(reg.contract.address or b"") == p.proposal_bond  # CAROL's, not yet withdrawn

    # The chain continues from the anchor; the invalidated outputs are out of play.
    error = await reg.revert_of(BOB, reg.contract, "propose", 3, abi(honest(s2, 2000, 5)), 5, value=p.proposal_bond)
    assert (error.name, error.args) == ("NotHead", (3, 0))
    for index in (1, 2):
        error = await reg.revert_of(ERIN, reg.contract, "challenge", index, value=p.challenge_bond)
        assert (error.name, error.args) == ("OutputNotPending", (index, Status.INVALIDATED))
        error = await reg.revert_of(ERIN, reg.contract, "finalize", index)
        assert (error.name, error.args) == ("OutputNotPending", (index, Status.INVALIDATED))
    assert await reg.propose(BOB, trace.snapshot(1000), 1000) == 4
    assert await reg.read("head") == 4

    gas = {name: (min(reg.gas[name]), max(reg.gas[name])) for name in ("propose", "challenge", "bisect", "choose",
                                                                      "step", "withdraw")}
    print(f"\ngas (min, max) over the scenario: {gas}")
    assert gas["challenge"][1] < 1_500_000 and max(gas["bisect"][1], gas["choose"][1]) < 100_000


async def test_an_honest_proposer_keeps_its_output_and_takes_a_lying_challengers_bonds(
        l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    p = reg.params
    trace = Trace(ANCHOR, target=ANCHOR.number + 37, length=37)
    t1 = await reg.now() + 5
    reg.at(t1)
    assert await reg.propose(ALICE, trace.snapshot(37), 37) == 1
    reg.at(t1 + p.window - 10)
    game = await reg.challenge(BOB, 1)
    reg.at(t1 + p.window + 1)  # the window is over, the game is not: the output stays disputed
    error = await reg.revert_of(CAROL, reg.contract, "finalize", 1)
    assert (error.name, error.args) == ("OutputUnderChallenge", (1, 1))

    # The liar disagrees with everything, down to the first step, which it would rather not
    # execute: the defender executes it itself and wins early.
    played = await play(reg, game, trace, ALICE, BOB, claims=trace.claim, agrees=lambda mid, claim: False,
                        stepper=ALICE)
    assert played.status == GameStatus.DEFENDER_WON
    assert [await game.read(l1, v) for v in ("lo", "hi")] == [(0,), (1,)]
    assert reg.events(played.receipts[-1][1]) == [("GameResolved", {"gameId": 0, "challengerWon": False})]
    out = await reg.output(1)
    assert (out["status"], out["active_games"]) == (Status.PROPOSED, 0)
    pot = p.challenge_bond + 2 * p.move_bond_base * sum(r + 1 for r in range(played.rounds))
    assert await game.read(l1, "credit", ALICE.address) == (pot,)
    assert await reg.read("credit", BOB.address) == 0
    assert (await reg.transact(CAROL, reg.contract, "finalize", 1)).success
    assert await reg.read("credit", ALICE.address) == p.proposal_bond


async def test_concurrent_challengers_each_play_their_own_game(l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    p = reg.params
    trace = Trace(ANCHOR, target=ANCHOR.number + 64, length=64)
    assert await reg.propose(ALICE, forged(trace.snapshot(64)), 64) == 1
    honest_game = await reg.challenge(BOB, 1)
    lying_game = await reg.challenge(CAROL, 1)
    late_game = await reg.challenge(DAVE, 1)
    assert await reg.read("gamesOf", 1) == (0, 1, 2)
    assert (await reg.output(1))["active_games"] == 3

    claims = lying_from(trace, 64)
    truthful = lambda mid, claim: claim == trace.claim(mid)  # noqa: E731
    # CAROL disputes everything and loses her game; that proves nothing about the output.
    played = await play(reg, lying_game, trace, ALICE, CAROL, claims=claims, agrees=lambda mid, claim: False,
                        stepper=ALICE)
    assert played.status == GameStatus.DEFENDER_WON
    out = await reg.output(1)
    assert (out["status"], out["active_games"]) == (Status.CHALLENGED, 2)
    # BOB's game proves the output wrong.
    played = await play(reg, honest_game, trace, ALICE, BOB, claims=claims, agrees=truthful)
    assert (played.status, played.rounds) == (GameStatus.CHALLENGER_WON, 6)
    assert reg.events(played.receipts[-1][1]) == [("GameResolved", {"gameId": 0, "challengerWon": True}),
                                                  ("OutputInvalidated", {"index": 1, "gameId": 0})]
    assert (await reg.status(1), await reg.read("head")) == (Status.INVALIDATED, 0)
    # DAVE's game goes on and he wins it too, but the output is already invalidated: the
    # registry only counts the game as resolved, and the proposal bond was BOB's.
    played = await play(reg, late_game, trace, ALICE, DAVE, claims=claims, agrees=truthful)
    assert played.status == GameStatus.CHALLENGER_WON
    assert reg.events(played.receipts[-1][1]) == [("GameResolved", {"gameId": 2, "challengerWon": True})]
    out = await reg.output(1)
    assert (out["status"], out["active_games"]) == (Status.INVALIDATED, 0)
    credits = [await reg.read("credit", who.address) for who in (ALICE, BOB, CAROL, DAVE)]
    assert credits == [0, p.proposal_bond, 0, 0]
    pot = p.challenge_bond + 2 * p.move_bond_base * sum(r + 1 for r in range(6))
    for game, winner in ((honest_game, BOB), (late_game, DAVE), (lying_game, ALICE)):
        assert await game.read(l1, "credit", winner.address) == (pot,)
    # Only a game the registry created can report a result, and only once.
    error = await reg.revert_of(CAROL, reg.contract, "resolveGame", True)
    assert (error.name, error.args) == ("NotGame", (CAROL.address,))


async def test_a_long_cascade_is_bounded_and_the_rest_is_released_one_by_one(l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    p = reg.params
    (cap,) = await reg.contract.read(l1, "MAX_CASCADE")
    trace = Trace(ANCHOR, target=ANCHOR.number + 1, length=1)
    lie = forged(trace.snapshot(1))
    assert await reg.propose(ALICE, lie, 1) == 1
    s = lie
    for index in range(2, cap + 4):  # cap + 2 outputs on top of the lie
        s = honest(s, s.number + 1, 1)
        assert await reg.propose(BOB if index % 2 else CAROL, s, 1) == index
    last = cap + 3
    game = await reg.challenge(DAVE, 1)
    # A trace of one step starts at the step.
    assert [(await game.read(l1, v))[0] for v in ("nextMove", "turn", "round")] == [3, 2, 0]
    receipt = await reg.transact(DAVE, game, "step", abi(ANCHOR), ANCHOR.commitment())
    assert receipt.success
    invalidated = [args["index"] for name, args in reg.events(receipt) if name == "OutputInvalidated"]
    assert invalidated == list(range(1, cap + 2))  # the loser and the next `cap`
    print(f"\nresolution invalidating {cap + 1} outputs: {receipt.gas_used} gas")
    assert receipt.gas_used < 12_000_000

    # The rest read INVALIDATED already and cannot be challenged; anyone releases their bonds.
    assert [await reg.status(i) for i in (cap + 1, cap + 2, last)] == [Status.INVALIDATED] * 3
    error = await reg.revert_of(ERIN, reg.contract, "challenge", last, value=p.challenge_bond)
    assert (error.name, error.args) == ("OutputNotPending", (last, Status.INVALIDATED))
    credit_before = await reg.read("credit", BOB.address)
    receipt = await reg.transact(ERIN, reg.contract, "releaseOrphan", last)
    assert reg.events(receipt) == [("OutputInvalidated", {"index": last, "gameId": 2**256 - 1})]
    assert await reg.read("credit", BOB.address) == credit_before + p.proposal_bond
    for index in (0, cap + 1, last):  # the anchor is valid; the others are settled already
        error = await reg.revert_of(ERIN, reg.contract, "releaseOrphan", index)
        assert (error.name, error.args) == ("NotAnOrphan", (index,))
    assert (await reg.transact(ERIN, reg.contract, "releaseOrphan", cap + 2)).success
    refunds = sum([await reg.read("credit", who.address) for who in (BOB, CAROL)])
    assert refunds == (cap + 2) * p.proposal_bond
    assert await reg.read("credit", DAVE.address) == p.proposal_bond
    # The new head's children are valid, and they are not orphans.
    assert await reg.propose(ERIN, trace.snapshot(1), 1) == last + 1
    error = await reg.revert_of(ERIN, reg.contract, "releaseOrphan", last + 1)
    assert error.name == "NotAnOrphan"
