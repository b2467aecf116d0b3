"""l2node/node/params.py: the [rollups] presets, explicit keys overriding them."""

from __future__ import annotations

import pathlib

import pytest

from l2node.node.config import ConfigError, load
from l2node.node.params import PRESETS, RollupParams

DAY = 24 * 3600


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "l2node.toml"
    path.write_text(text)
    return path


def test_the_devnet_preset_is_the_default() -> None:
    assert PRESETS["devnet"] == RollupParams() == RollupParams.from_mapping({}) == \
        RollupParams.from_mapping({"preset": "devnet"})
    assert RollupParams().max_trace_length == 2**20 and RollupParams().max_clock_s == 90


def test_the_production_preset_with_explicit_keys_overriding_it(tmp_path: pathlib.Path) -> None:
    cfg = load(write(tmp_path, '[rollups]\npreset = "production"\nproposal_bond = 7\n'), tmp_path)
    assert cfg.rollups.proposal_bond == 7
    assert (cfg.rollups.challenge_window_s, cfg.rollups.max_clock_s) == (7 * DAY, 3 * DAY + DAY // 2)
    assert (cfg.rollups.sequencer_window, cfg.rollups.max_trace_length) == (3600, 2**32)
    assert cfg.rollups.challenge_bond == 5 * 10**18 and cfg.rollups.move_bond_base == 10**16
    # what `l2node deploy` writes back ([rollups] as deployed) reads back the same, preset or not
    assert RollupParams.from_mapping(cfg.rollups.to_json()) == cfg.rollups


@pytest.mark.parametrize(("text", "message"), [
    ('preset = "mainnet"', "rollups.preset 'mainnet' is not one of ['devnet', 'production']"),
    ('preset = "production"\nmax_clok_s = 1', "unknown rollups settings: ['max_clok_s']"),
])
def test_a_bad_preset_or_key_is_refused_by_name(tmp_path: pathlib.Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(write(tmp_path, f"[rollups]\n{text}\n"), tmp_path)


def test_the_proof_maturity_delay_is_10_s_on_the_devnet_and_7_days_in_production() -> None:
    assert RollupParams().proof_maturity_delay_s == 10
    assert PRESETS["production"].proof_maturity_delay_s == 7 * DAY  # Optimism's
    assert RollupParams.from_mapping({"proof_maturity_delay_s": 30}).proof_maturity_delay_s == 30
    assert RollupParams.from_mapping(PRESETS["production"].to_json()) == PRESETS["production"]
    for bad, message in [(0, "must be a positive integer"), (7 * DAY * 1000, "above the portal's limit")]:
        with pytest.raises(ValueError, match=message):
            RollupParams(proof_maturity_delay_s=bad)
