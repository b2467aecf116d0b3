"""Fault injection is a test worker's (tests/workers/faulty_rollups.py), not a production setting."""

from __future__ import annotations

import pytest

from protocol import devnet_genesis
from services.rollups import Challenger, Proposer, RollupsSettings, genesis_snapshot
from services.rollups._contracts import Side
from services.rollups._disputes import Player
from tests.workers.faulty_rollups import DishonestPlayer, FaultyChallenger, faulty_proposer


@pytest.mark.parametrize("switch", [{"faulty_output": 1}, {"faulty_challenger": True}])
def test_the_production_settings_refuse_the_fault_switches(switch: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=f"unknown rollups settings: \\['{next(iter(switch))}'\\]"):
        RollupsSettings.from_mapping(switch)


def test_the_faulty_proposer_corrupts_only_the_output_it_is_told() -> None:
    derived = genesis_snapshot(devnet_genesis())
    proposer = object.__new__(faulty_proposer(1))  # claim() reads nothing of the proposer's state
    honest = object.__new__(Proposer)
    assert honest.claim(1, derived) is derived and proposer.claim(2, derived) is derived
    bad = proposer.claim(1, derived)
    assert bad.state_root != derived.state_root and bad.commitment() != derived.commitment()


def test_the_faulty_challenger_plays_dishonestly_only_as_the_challenger() -> None:
    challenger = object.__new__(FaultyChallenger)
    assert challenger.player_type(Side.CHALLENGER) is DishonestPlayer
    assert challenger.player_type(Side.DEFENDER) is Player is object.__new__(Challenger).player_type(Side.CHALLENGER)
    assert not object.__new__(Challenger).challenges_honest(None)  # type: ignore[arg-type]
