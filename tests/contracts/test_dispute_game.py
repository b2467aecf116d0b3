"""DisputeGame on a real anvil: the rules of the bisection (turns, participants, bonds, the step
and its proof), the chess clocks and timeouts, and the snapshot hashing it relies on agreeing
with Python. Games are created by an OutputRegistry and played with the counter-machine verifier
(contracts/StepVerifierHarness.sol), see tests/contracts/_game.py."""

from __future__ import annotations

from typing import Any

from services.l1 import Contract, L1Client, LocalSigner
from services.rollups._contracts import GameStatus, Move, Side
from services.rollups._contracts import OutputStatus as Status
from services.rollups._snapshot import Phase, Snapshot
from tests.contracts._game import (
    ALICE,
    ANCHOR,
    BOB,
    CAROL,
    DAVE,
    FRANK,
    Params,
    Registry,
    Trace,
    abi,
    honest,
)
from tests.l1.anvil import Anvil


async def test_solidity_hashes_snapshots_as_python_does(l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    busy = Snapshot(state_root=b"\x01" * 32, message_root=b"\x02" * 32, block_hash=b"\x03" * 32, number=4,
                    timestamp=5, base_fee=6, gas_used=7, gas_limit=8, l1_origin_number=9, phase=Phase.BATCH,
                    block_timestamp=10, block_origin_number=11, block_origin_hash=b"\x0c" * 32, block_base_fee=13,
                    block_gas_used=14, tx_root=b"\x0f" * 32, tx_left=16, batch_index=17, item_index=18,
                    deposit_index=19, forced_index=20)
    top = Snapshot(*(b"\xff" * 32 if isinstance(v, bytes) else 2**256 - 1 for v in abi(busy)))  # type: ignore[arg-type]
    for s in (ANCHOR, busy, top, honest(ANCHOR, 10**6, 12345)):
        assert (await reg.verifier.read(l1, "commitment", abi(s)))[0] == s.commitment()
        assert (await reg.verifier.read(l1, "outputRoot", abi(s)))[0] == s.output_root()
    # The counter machine: one block per step up to the target, then it stands still.
    for position, target in ((0, 200), (99, 200), (100, 200), (150, 200)):
        pre = honest(ANCHOR, target, position)
        (post,) = await reg.verifier.read(l1, "step", abi(pre), target, 0, 0, pre.commitment())
        assert post == honest(ANCHOR, target, position + 1).commitment()
    (post,) = await reg.verifier.read(l1, "step", abi(ANCHOR), ANCHOR.number, 0, 0, ANCHOR.commitment())
    assert post == ANCHOR.commitment()


async def test_the_rules_of_the_game(l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain)
    base = reg.params.move_bond_base
    trace = Trace(ANCHOR, target=ANCHOR.number + 4, length=4)
    assert await reg.propose(ALICE, trace.snapshot(4), 4) == 1
    game = await reg.challenge(BOB, 1)

    async def state() -> tuple[int, ...]:
        return tuple([(await game.read(l1, v))[0] for v in ("nextMove", "turn", "round", "lo", "hi")])

    async def refused(signer: LocalSigner, function: str, *args: Any, value: int = 0,
                      decoder: Contract | None = None) -> tuple[str, tuple[Any, ...]]:
        error = await reg.revert_of(signer, game, function, *args, value=value, decoder=decoder)
        return error.name, error.args

    assert await state() == (Move.BISECT, Side.DEFENDER, 0, 0, 4)
    assert [(await game.read(l1, "moveBond", r))[0] for r in (0, 1, 31)] == [base, 2 * base, 32 * base]
    # The defender bisects: not the challenger, not an outsider, not with the wrong bond.
    assert await refused(BOB, "bisect", trace.claim(2), value=base) == ("NotDefender", (BOB.address,))
    assert await refused(FRANK, "bisect", trace.claim(2), value=base) == ("NotDefender", (FRANK.address,))
    assert await refused(ALICE, "bisect", trace.claim(2)) == ("WrongBond", (0, base))
    assert await refused(ALICE, "bisect", trace.claim(2), value=2 * base) == ("WrongBond", (2 * base, base))
    assert await refused(BOB, "choose", True, value=base) == ("OutOfTurn", (Move.CHOOSE, Move.BISECT))
    assert await refused(BOB, "step", abi(ANCHOR), ANCHOR.commitment()) == ("OutOfTurn", (Move.STEP, Move.BISECT))
    name, (side, remaining) = await refused(BOB, "claimTimeout")
    assert (name, side) == ("ClockNotExpired", Side.DEFENDER) and 0 < remaining <= reg.params.clock

    receipt = await reg.transact(ALICE, game, "bisect", trace.claim(2), value=base)
    assert reg.events(receipt, game) == [("Bisected", {"round": 0, "mid": 2, "claim": trace.claim(2)})]
    assert await state() == (Move.CHOOSE, Side.CHALLENGER, 0, 0, 4)
    assert (await game.read(l1, "midClaim"))[0] == trace.claim(2)
    # The challenger chooses: not the defender, not an outsider, not twice a bisect in a row.
    assert await refused(ALICE, "bisect", trace.claim(2), value=base) == ("OutOfTurn", (Move.BISECT, Move.CHOOSE))
    assert await refused(ALICE, "choose", True, value=base) == ("NotChallenger", (ALICE.address,))
    assert await refused(FRANK, "choose", True, value=base) == ("NotChallenger", (FRANK.address,))
    assert await refused(BOB, "choose", True, value=2 * base) == ("WrongBond", (2 * base, base))
    receipt = await reg.transact(BOB, game, "choose", False, value=base)  # BOB lies: he disputes an honest claim
    assert reg.events(receipt, game) == [("Chose", {"round": 0, "agree": False, "lo": 0, "hi": 2})]
    assert await state() == (Move.BISECT, Side.DEFENDER, 1, 0, 2)

    assert await refused(ALICE, "bisect", trace.claim(1), value=base) == ("WrongBond", (base, 2 * base))
    assert (await reg.transact(ALICE, game, "bisect", trace.claim(1), value=2 * base)).success
    assert (await reg.transact(BOB, game, "choose", False, value=2 * base)).success
    assert await state() == (Move.STEP, Side.CHALLENGER, 2, 0, 1)
    assert await refused(ALICE, "bisect", trace.claim(1), value=3 * base) == ("OutOfTurn", (Move.BISECT, Move.STEP))
    # The step: from the agreed snapshot at lo, with a proof of what the step reads.
    wrong_pre = trace.snapshot(1)
    assert await refused(FRANK, "step", abi(wrong_pre), wrong_pre.commitment()) == (
        "PreStateMismatch", (wrong_pre.commitment(), ANCHOR.commitment()))
    assert await refused(FRANK, "step", abi(ANCHOR), b"\x00" * 32, decoder=reg.verifier) == (
        "ForgedProof", (ANCHOR.commitment(),))
    assert await refused(FRANK, "step", abi(ANCHOR), ANCHOR.commitment() + b"\x00", decoder=reg.verifier) == (
        "ForgedProof", (ANCHOR.commitment(),))
    # Anyone may execute it: its outcome does not depend on who does.
    receipt = await reg.transact(FRANK, game, "step", abi(ANCHOR), ANCHOR.commitment())
    assert reg.events(receipt, game) == [("Stepped", {"pre": ANCHOR.commitment(), "post": trace.claim(1)}),
                                         ("Resolved", {"status": GameStatus.DEFENDER_WON})]
    assert (await state())[:2] == (Move.NONE, Side.NONE)
    assert (await game.read(l1, "status"))[0] == GameStatus.DEFENDER_WON

    over = ("GameOver", (GameStatus.DEFENDER_WON,))
    assert await refused(ALICE, "bisect", trace.claim(1), value=3 * base) == over
    assert await refused(BOB, "choose", True, value=3 * base) == over
    assert await refused(BOB, "step", abi(ANCHOR), ANCHOR.commitment()) == over
    assert await refused(BOB, "claimTimeout") == over
    # The pot goes to the winner; the loser and outsiders have nothing to withdraw.
    pot = reg.params.challenge_bond + 2 * (base + 2 * base)
    assert [(await game.read(l1, "credit", who.address))[0] for who in (ALICE, BOB, FRANK)] == [pot, 0, 0]
    assert await refused(BOB, "withdraw") == ("NothingToWithdraw", (BOB.address,))
    before = await l1.get_balance(ALICE.address)
    receipt = await reg.transact(ALICE, game, "withdraw")
    assert reg.events(receipt, game) == [("Withdrawn", {"account": ALICE.address, "amount": pot})]
    assert await l1.get_balance(ALICE.address) == before + pot - receipt.gas_used * receipt.effective_gas_price
    assert await refused(ALICE, "withdraw") == ("NothingToWithdraw", (ALICE.address,))
    assert await reg.status(1) == Status.PROPOSED


async def test_at_demo_scale_a_defender_may_execute_the_step_itself_to_win_early(
        l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain, Params(window=4, clock=2))  # seconds: a demo's pace
    trace = Trace(ANCHOR, target=ANCHOR.number + 1, length=1)
    t = await reg.now() + 1
    reg.at(t)
    assert await reg.propose(ALICE, trace.snapshot(1), 1) == 1
    reg.at(t + 1)
    game = await reg.challenge(BOB, 1)
    # A trace of one step starts at the step: the challenger's move, which anyone may make.
    assert [(await game.read(l1, v))[0] for v in ("nextMove", "turn", "lo", "hi")] == [Move.STEP, Side.CHALLENGER,
                                                                                        0, 1]
    reg.at(t + 2)
    assert (await reg.transact(ALICE, game, "step", abi(ANCHOR), ANCHOR.commitment())).success
    assert (await game.read(l1, "status"))[0] == GameStatus.DEFENDER_WON
    assert await game.read(l1, "credit", ALICE.address) == (reg.params.challenge_bond,)
    assert await game.read(l1, "clocks") == (2, 1)
    reg.at(t + 3)
    assert (await reg.revert_of(BOB, reg.contract, "finalize", 1)).name == "ChallengeWindowOpen"
    reg.at(t + 4)
    assert (await reg.transact(BOB, reg.contract, "finalize", 1)).success
    assert await reg.status(1) == Status.FINALIZED


async def test_chess_clocks_only_the_side_to_move_spends_time_and_running_out_loses(
        l1: L1Client, chain: Anvil) -> None:
    reg = await Registry.deploy(l1, chain, Params(clock=100))
    base = reg.params.move_bond_base
    trace = Trace(ANCHOR, target=ANCHOR.number + 8, length=8)
    assert await reg.propose(ALICE, trace.snapshot(8), 8) == 1
    patient = await reg.challenge(BOB, 1)  # ALICE plays this one; BOB will run out of time
    absent = await reg.challenge(CAROL, 1)  # ALICE never moves in this one
    (t0,) = await patient.read(l1, "lastMoveAt")
    (t1,) = await absent.read(l1, "lastMoveAt")

    async def clocks(game: Contract) -> tuple[int, int]:
        defender, challenger = await game.read(l1, "clocks")
        return defender, challenger

    assert await clocks(patient) == (100, 100)
    reg.at(t0 + 90)  # ALICE thinks for 90 s of her 100
    assert (await reg.transact(ALICE, patient, "bisect", trace.claim(4), value=base)).success
    assert await clocks(patient) == (10, 100)
    reg.at(t1 + 99)
    error = await reg.revert_of(DAVE, absent, "claimTimeout")
    assert (error.name, error.args) == ("ClockNotExpired", (Side.DEFENDER, 1))
    reg.at(t0 + 185)  # BOB thinks for 95 s of his: ALICE's clock does not run meanwhile
    assert (await reg.transact(BOB, patient, "choose", True, value=base)).success
    assert await clocks(patient) == (10, 5)
    reg.at(t0 + 190)  # ALICE still has 10 s and uses 5
    assert (await reg.transact(ALICE, patient, "bisect", trace.claim(6), value=2 * base)).success
    assert await clocks(patient) == (5, 5)

    reg.at(t0 + 194)  # BOB's clock runs: 1 s left
    error = await reg.revert_of(DAVE, patient, "claimTimeout")
    assert (error.name, error.args) == ("ClockNotExpired", (Side.CHALLENGER, 1))
    chain.rpc("evm_mine")
    assert await clocks(patient) == (5, 1)
    reg.at(t0 + 195)  # out of time: he can no longer move, and anyone can end the game
    error = await reg.revert_of(BOB, patient, "choose", True, value=2 * base)
    assert (error.name, error.args) == ("ClockExpired", (Side.CHALLENGER,))
    receipt = await reg.transact(DAVE, patient, "claimTimeout")
    assert reg.events(receipt, patient) == [("TimedOut", {"side": Side.CHALLENGER}),
                                            ("Resolved", {"status": GameStatus.DEFENDER_WON})]
    assert await clocks(patient) == (5, 0)
    pot = reg.params.challenge_bond + 2 * base + 2 * base
    assert await patient.read(l1, "credit", ALICE.address) == (pot,)
    out = await reg.output(1)
    assert (out["status"], out["active_games"]) == (Status.CHALLENGED, 1)  # CAROL's game is still open

    # In CAROL's game ALICE's clock ran out long ago: she cannot move, and she loses the output.
    error = await reg.revert_of(ALICE, absent, "bisect", trace.claim(4), value=base)
    assert (error.name, error.args) == ("ClockExpired", (Side.DEFENDER,))
    assert await clocks(absent) == (0, 100)
    receipt = await reg.transact(DAVE, absent, "claimTimeout")
    assert reg.events(receipt, absent) == [("TimedOut", {"side": Side.DEFENDER}),
                                           ("Resolved", {"status": GameStatus.CHALLENGER_WON})]
    assert reg.events(receipt) == [("GameResolved", {"gameId": 1, "challengerWon": True}),
                                   ("OutputInvalidated", {"index": 1, "gameId": 1})]
    assert await reg.status(1) == Status.INVALIDATED
    assert await absent.read(l1, "credit", CAROL.address) == (reg.params.challenge_bond,)
    assert await reg.read("credit", CAROL.address) == reg.params.proposal_bond
