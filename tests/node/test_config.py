"""l2node/node/config.py and params.py: the [rollups] table, with its defaults and its refusals."""

from __future__ import annotations

import pathlib

import pytest

from l2node.node.config import ConfigError, load
from l2node.node.params import DEFAULT_SEQUENCER_WINDOW, RollupParams
from services.rollups._machine import DEFAULT_SEQUENCER_WINDOW as MACHINE_WINDOW


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "l2node.toml"
    path.write_text(text)
    return path


def test_rollups_table_sets_the_deployment_constants(tmp_path: pathlib.Path) -> None:
    cfg = load(write(tmp_path, "[rollups]\nchallenge_window_s = 604800\nmax_clock_s = 302400\n"), tmp_path)
    assert cfg.rollups == RollupParams(challenge_window_s=604_800, max_clock_s=302_400)  # production scale
    assert load(None, tmp_path).rollups == RollupParams()  # the devnet's, when absent


@pytest.mark.parametrize(("table", "reason"), [
    ("challenge_window_s = 0", "must be a positive integer"),
    ("max_clock_s = 400000000", "above the registry's limit"),
    ("proposal_bond = \"1 ether\"", "must be a positive integer"),
    ("window = 5", "unknown rollups settings"),
])
def test_bad_rollups_values_are_refused_with_the_reason(tmp_path: pathlib.Path, table: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        load(write(tmp_path, f"[rollups]\n{table}\n"), tmp_path)


def test_the_default_sequencer_window_is_the_derivations() -> None:
    assert DEFAULT_SEQUENCER_WINDOW == MACHINE_WINDOW
