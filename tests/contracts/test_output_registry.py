"""OutputRegistry on a real anvil: the anchor, bonded proposals from the latest finalized output
(their snapshot range, L1 horizon and batch limit checked), the challenge window and finalization
in any order, invalidation of one output only, and concurrent challengers. Games are played with
the counter-machine verifier (contracts/StepVerifierHarness.sol), see tests/contracts/_game.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.l1 import Contract, L1Client, RpcError
from services.rollups._contracts import GameStatus
from services.rollups._contracts import OutputStatus as Status
from services.rollups._snapshot import Phase, SnapshotRangeError, check_range
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
        "start_index": 0, "proposed_at": await reg.now(), "trace_length": 0, "proposer": ZERO_ADDRESS,
        "status": Status.FINALIZED, "active_games": 0, "batch_limit": 0, "l1_horizon": 0}
    for view, expected in {"outputCount": 1, "latestFinalized": 0, "gameCount": 0,
                           "verifier": reg.verifier.address, "inbox": reg.verifier.address,
                           "proposalBond": p.proposal_bond,
                           "challengeBond": p.challenge_bond, "moveBondBase": p.move_bond_base,
                           "challengeWindow": p.window, "maxClockDuration": p.clock,
                           "maxTraceLength": p.max_trace_length, "MAX_DURATION": 365 * DAY}.items():
        assert await reg.read(view) == expected, view
    assert await reg.read("gamesOf", 0) == ()
    # The anchor is logged like any output: the log history alone describes every output.
    assert reg.events(reg.deploy_receipt) == [
        ("OutputProposed", {"index": 0, "outputRoot": ANCHOR.output_root(), "l2Block": ANCHOR.number,
                            "startIndex": 0, "proposer": ZERO_ADDRESS, "snapshotHash": ANCHOR.commitment(),
                            "traceLength": 0, "batchLimit": 0, "l1Horizon": 0}),
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
    # The anchor passes the snapshot range check (issue item 9), as every proposal does.
    for anchor, field, value in ((replace(ANCHOR, phase=Phase.BATCH), "phase", 3),
                                 (replace(ANCHOR, base_fee=2**128), "baseFee", 2**128)):
        with pytest.raises(RpcError) as caught:
            await l1.estimate_gas(None, contract.encode_deploy(*Params().deploy_args(anchor, verifier)),
                                  sender=DEPLOYER.address)
        refused = contract.decode_error(caught.value.revert_data)
        assert refused is not None and (refused.name, refused.args) == ("SnapshotFieldOutOfRange", (field, value))


async def test_anyone_proposes_at_any_block_from_the_latest_finalized_output(l1: L1Client, chain: Anvil) -> None:
    """No head (issue item 4): outputs are independent claims, each starting from the latest
    finalized output, whatever else is pending."""
    reg = await Registry.deploy(l1, chain)
    bond, limit = reg.params.proposal_bond, reg.params.max_trace_length
    s1 = honest(ANCHOR, 110, 10)
    horizon = await l1.block_number()
    receipt = await reg.transact(ALICE, reg.contract, "propose", abi(s1), 10, 0, horizon, value=bond)
    assert receipt.success
    assert reg.events(receipt) == [("OutputProposed", {
        "index": 1, "outputRoot": s1.output_root(), "l2Block": 110, "startIndex": 0, "proposer": ALICE.address,
        "snapshotHash": s1.commitment(), "traceLength": 10, "batchLimit": 0, "l1Horizon": horizon})]
    block = await l1.get_block(receipt.block_number)
    assert block is not None
    assert await reg.output(1) == {
        "output_root": s1.output_root(), "snapshot_hash": s1.commitment(), "l2_block": 110, "start_index": 0,
        "proposed_at": block.timestamp, "trace_length": 10, "proposer": ALICE.address, "status": Status.PROPOSED,
        "active_games": 0, "batch_limit": 0, "l1_horizon": horizon}
    assert await l1.get_balance(reg.contract.address or b"") == bond
    # A second output at a lower block, one at the same block, and a wrong one: all from the anchor.
    assert await reg.propose(BOB, honest(ANCHOR, 105, 5), 5) == 2
    assert await reg.propose(CAROL, s1, 10) == 3
    assert await reg.propose(DAVE, forged(s1), 10) == 4
    assert [(await reg.output(i))["start_index"] for i in (2, 3, 4)] == [0, 0, 0]

    s2 = honest(ANCHOR, 120, 20)
    now = await l1.block_number()  # the next transaction's block is now + 1
    refused = [
        ((abi(s2), 20, 0, now), 0, "WrongBond", (0, bond)),
        ((abi(s2), 20, 0, now), bond + 1, "WrongBond", (bond + 1, bond)),
        ((abi(replace(s2, number=100)), 20, 0, now), bond, "L2BlockOutOfRange", (100, 100)),
        ((abi(replace(s2, number=99)), 20, 0, now), bond, "L2BlockOutOfRange", (99, 100)),
        ((abi(s2), 0, 0, now), bond, "TraceLengthOutOfRange", (0, limit)),
        ((abi(s2), limit + 1, 0, now), bond, "TraceLengthOutOfRange", (limit + 1, limit)),
        ((abi(s2), 20, 0, now + 1), bond, "L1HorizonOutOfRange", (now + 1, 0, now + 1)),  # not in the past
    ]
    for args, value, name, expected in refused:
        error = await reg.revert_of(ERIN, reg.contract, "propose", *args, value=value)
        assert (error.name, error.args) == (name, expected)
    assert await reg.propose(ERIN, s2, limit) == 5  # the longest trace allowed


@pytest.mark.parametrize(("field", "value"), [
    ("number", 2**64), ("timestamp", 2**64), ("base_fee", 2**128), ("gas_limit", 2**64), ("gas_limit", 1),
    ("gas_used", 30_000_001), ("l1_origin_number", 2**64), ("phase", Phase.DEPOSITS), ("block_timestamp", 1),
    ("block_origin_number", 1), ("block_origin_hash", b"\x01".rjust(32, b"\0")), ("block_base_fee", 1),
    ("block_gas_used", 1), ("tx_root", b"\x01".rjust(32, b"\0")), ("tx_left", 1), ("batch_index", 2**64),
    ("item_index", 2**64), ("deposit_index", 2**64), ("forced_index", 2**64)])
async def test_a_snapshot_out_of_range_is_refused_naming_the_field_as_python_does(
        l1: L1Client, chain: Anvil, field: str, value: int | bytes) -> None:
    reg = await Registry.deploy(l1, chain)
    absurd = replace(honest(ANCHOR, 110, 10), **{field: value})
    with pytest.raises(SnapshotRangeError) as caught:
        check_range(absurd)
    number = int.from_bytes(value, "big") if isinstance(value, bytes) else int(value)
    error = await reg.revert_of(ALICE, reg.contract, "propose", abi(absurd), 10, 0, await l1.block_number(),
                                value=reg.params.proposal_bond)
    assert (error.name, error.args) == ("SnapshotFieldOutOfRange", (caught.value.field, number))
    # The edges themselves pass, in both.
    edge = replace(honest(ANCHOR, 110, 10), number=2**64 - 1, timestamp=2**64 - 1, base_fee=2**128 - 1,
                   gas_limit=2**64 - 1, gas_used=2**64 - 1, batch_index=2**64 - 1, forced_index=2**64 - 1)
    check_range(edge)
    assert await reg.propose(ALICE, edge, 10) == 1


async def test_the_batch_limit_is_exactly_the_batches_by_the_horizon(l1: L1Client, chain: Anvil) -> None:
    """Its games' bound (IStepVerifier): what L1 included by the output's horizon, whatever L1
    holds later; checked on the inbox the verifier reads, so no output can claim another."""
    reg = await Registry.deploy(l1, chain)
    bond = reg.params.proposal_bond
    for block in (10, 12, 12, 15):
        await reg.add_batch(block)
    chain.rpc("anvil_mine", hex(20))
    s1 = honest(ANCHOR, 110, 10)
    now = await l1.block_number()
    assert now > 15
    refused = [
        ((5, now), "BatchLimitAboveCount", (5, 4)),
        ((4, 14), "BatchAfterHorizon", (3, 15, 14)),  # counts batch 3, included after the horizon
        ((2, 11), "BatchAfterHorizon", (1, 12, 11)),
        ((2, 12), "BatchWithinHorizon", (2, 12, 12)),  # leaves out batch 2, included by then
        ((0, 10), "BatchWithinHorizon", (0, 10, 10)),
        ((3, now), "BatchWithinHorizon", (3, 15, now)),
    ]
    for (limit, horizon), name, expected in refused:
        error = await reg.revert_of(ALICE, reg.contract, "propose", abi(s1), 10, limit, horizon, value=bond)
        assert (error.name, error.args) == (name, expected), (limit, horizon)
    for limit, horizon in ((0, 9), (1, 11), (3, 12), (3, 14), (4, 15), (4, now)):
        receipt = await reg.transact(ALICE, reg.contract, "propose", abi(s1), 10, limit, horizon, value=bond)
        assert receipt.success, (limit, horizon)
    await reg.add_batch(now + 1)  # posted after: not the outputs'
    assert [(await reg.output(i))["batch_limit"] for i in range(1, 7)] == [0, 1, 3, 3, 4, 4]
    game = await reg.challenge(CAROL, 3)
    assert (await game.read(l1, "batchLimit"), await game.read(l1, "l1Horizon")) == ((3,), (12,))


async def test_outputs_finalize_in_any_order_and_the_highest_finalized_block_is_the_next_start(
        l1: L1Client, chain: Anvil) -> None:
    window = 7 * DAY
    reg = await Registry.deploy(l1, chain, Params(window=window, clock=7 * DAY // 2))
    bond = reg.params.proposal_bond
    t1 = await reg.now() + 10
    reg.at(t1)
    assert await reg.propose(ALICE, honest(ANCHOR, 110, 10), 10) == 1
    h2 = await l1.block_number()
    reg.at(t1 + 1)
    assert await reg.propose(BOB, honest(ANCHOR, 120, 20), 20, l1_horizon=h2) == 2

    reg.at(t1 + window - 1)  # one second early
    error = await reg.revert_of(CAROL, reg.contract, "finalize", 1)
    assert (error.name, error.args) == ("ChallengeWindowOpen", (1, t1 + window))
    receipt = await reg.transact(CAROL, reg.contract, "finalize", 1, gas=200_000)  # mined anyway: reverted
    assert not receipt.success and await reg.status(1) == Status.PROPOSED
    reg.at(t1 + window + 1)
    receipt = await reg.transact(CAROL, reg.contract, "finalize", 2)  # anyone; no order among outputs
    assert receipt.success and reg.events(receipt) == [("OutputFinalized", {"index": 2})]
    assert await reg.read("latestFinalized") == 2
    assert (await reg.transact(CAROL, reg.contract, "finalize", 1)).success
    assert await reg.read("latestFinalized") == 2  # block 110 is below 120: still the start
    for index in (0, 1):
        error = await reg.revert_of(CAROL, reg.contract, "finalize", index)
        assert (error.name, error.args) == ("OutputNotPending", (index, Status.FINALIZED))
        error = await reg.revert_of(CAROL, reg.contract, "challenge", index, value=reg.params.challenge_bond)
        assert (error.name, error.args) == ("OutputNotPending", (index, Status.FINALIZED))

    # The next proposal starts from output 2: above its block, at or after its horizon.
    start = honest(ANCHOR, 120, 20)
    error = await reg.revert_of(DAVE, reg.contract, "propose", abi(honest(start, 120, 0)), 1, 0, h2, value=bond)
    assert (error.name, error.args) == ("L2BlockOutOfRange", (120, 120))
    now = await l1.block_number()
    error = await reg.revert_of(DAVE, reg.contract, "propose", abi(honest(start, 130, 10)), 10, 0, h2 - 1,
                                value=bond)
    assert (error.name, error.args) == ("L1HorizonOutOfRange", (h2 - 1, h2, now + 1))
    assert await reg.propose(DAVE, honest(start, 130, 10), 10, l1_horizon=h2) == 3
    assert (await reg.output(3))["start_index"] == 2

    # The bonds come back to the proposers, by pull.
    assert [await reg.read("credit", who.address) for who in (ALICE, BOB, CAROL)] == [bond, bond, 0]
    before = await l1.get_balance(ALICE.address)
    receipt = await reg.transact(ALICE, reg.contract, "withdraw")
    assert reg.events(receipt) == [("Withdrawn", {"account": ALICE.address, "amount": bond})]
    assert await l1.get_balance(ALICE.address) == before + bond - receipt.gas_used * receipt.effective_gas_price
    error = await reg.revert_of(ALICE, reg.contract, "withdraw")
    assert (error.name, error.args) == ("NothingToWithdraw", (ALICE.address,))

    # A challenge is possible until the window's last second, not after; a challenged output
    # does not finalize, whatever the time.
    t3 = await reg.now() + 10
    reg.at(t3)
    assert await reg.propose(BOB, honest(start, 140, 20), 20) == 4
    reg.at(t3 + window)
    error = await reg.revert_of(DAVE, reg.contract, "challenge", 4, value=reg.params.challenge_bond)
    assert (error.name, error.args) == ("ChallengeWindowClosed", (4, t3 + window))
    reg.at(t3 + window - 1)
    error = await reg.revert_of(DAVE, reg.contract, "challenge", 4, value=reg.params.challenge_bond - 1)
    assert error.name == "WrongBond"
    await reg.challenge(DAVE, 4)
    reg.at(t3 + window + 1)
    error = await reg.revert_of(DAVE, reg.contract, "finalize", 4)
    assert (error.name, error.args) == ("OutputUnderChallenge", (4, 1))


async def test_a_lying_proposer_loses_its_output_and_its_bond_and_nothing_else(
        l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    p = reg.params
    trace = Trace(ANCHOR, target=ANCHOR.number + 1000, length=1000)
    lie = forged(trace.snapshot(1000))  # the right block, the wrong state
    assert await reg.propose(ALICE, lie, 1000) == 1
    # Honest outputs proposed meanwhile, below and above the lie: they rest on nothing pending.
    assert await reg.propose(BOB, trace.snapshot(500), 500) == 2
    assert await reg.propose(CAROL, honest(ANCHOR, ANCHOR.number + 1050, 1050), 1050) == 3

    game = await reg.challenge(DAVE, 1)
    assert await reg.read("gamesOf", 1) == (0,)
    assert (await reg.read("gameCount"), await reg.read("game", 0)) == (1, game.address)
    assert ((await reg.output(1))["status"], (await reg.output(1))["active_games"]) == (Status.CHALLENGED, 1)
    horizon = (await reg.output(1))["l1_horizon"]
    for view, expected in {"registry": reg.contract.address, "outputIndex": 1, "verifier": reg.verifier.address,
                           "target": trace.target, "traceLength": 1000, "startClaim": ANCHOR.commitment(),
                           "rootClaim": lie.commitment(), "defender": ALICE.address, "challenger": DAVE.address,
                           "batchLimit": 0, "l1Horizon": horizon, "lo": 0, "hi": 1000,
                           "loHash": ANCHOR.commitment(), "hiHash": lie.commitment(),
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
                                ("OutputInvalidated", {"index": 1, "gameId": 0})]

    assert [await reg.status(i) for i in range(4)] == [Status.FINALIZED, Status.INVALIDATED, Status.PROPOSED,
                                                       Status.PROPOSED]
    assert (await reg.output(1))["active_games"] == 0
    # Bonds: the liar's goes to the challenger; nobody else's moves.
    credits = {who: await reg.read("credit", who.address) for who in (ALICE, BOB, CAROL, DAVE)}
    assert credits == {ALICE: 0, BOB: 0, CAROL: 0, DAVE: p.proposal_bond}
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
    assert await l1.get_balance(reg.contract.address or b"") == 2 * p.proposal_bond  # BOB's and CAROL's, at stake

    for index in (1,):
        error = await reg.revert_of(ERIN, reg.contract, "challenge", index, value=p.challenge_bond)
        assert (error.name, error.args) == ("OutputNotPending", (index, Status.INVALIDATED))
        error = await reg.revert_of(ERIN, reg.contract, "finalize", index)
        assert (error.name, error.args) == ("OutputNotPending", (index, Status.INVALIDATED))
    reg.mine_at(await reg.now() + p.window + 1)
    for index in (2, 3):
        assert (await reg.transact(ERIN, reg.contract, "finalize", index)).success
    assert await reg.read("latestFinalized") == 3

    gas = {name: (min(reg.gas[name]), max(reg.gas[name])) for name in ("propose", "challenge", "bisect", "choose",
                                                                      "step", "finalize", "withdraw")}
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
    assert await reg.status(1) == Status.INVALIDATED
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
