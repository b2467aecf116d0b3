"""The bridge's settings: defaults in one place, and each bad value refused with what is wrong."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from services.bridge import BridgeSettings

ALICE = "0x" + "a1" * 20


def test_the_defaults() -> None:
    s = BridgeSettings.from_mapping({})
    assert (s.confirmation_depth, s.poll_interval_s, s.relay_for, s.relayer_key) == (4, 0.25, ("*",), "")
    assert s.relays_for() is None and s.missing() == []


@pytest.mark.parametrize(("settings", "complaint"), [
    ({"confirmation_depth": -1}, "confirmation_depth"),
    ({"confirmation_depth": True}, "confirmation_depth"),
    ({"poll_interval_s": 0}, "poll_interval_s"),
    ({"poll_interval_s": "fast"}, "poll_interval_s"),
    ({"relay_for": []}, "relay_for"),
    ({"relay_for": ALICE}, "relay_for"),
    ({"relay_for": ["0x1234"]}, "0x1234"),
    ({"sequencer": "no-port"}, "sequencer"),
    ({"confirmations": 4}, "unknown bridge settings"),
])
def test_bad_settings_are_refused_with_the_setting_named(settings: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        BridgeSettings.from_mapping(settings)


def test_relay_for_and_the_relayer_key_file(tmp_path: pathlib.Path) -> None:
    key = tmp_path / "relayer.key"
    s = BridgeSettings.from_mapping({"relay_for": [ALICE], "l1": {"rpc": "http://127.0.0.1:1", "contracts":
                                                                   str(tmp_path / "none.json"),
                                                                   "relayer_key_file": str(key)}})
    assert s.relays_for() == frozenset({bytes.fromhex("a1" * 20)}) and s.relayer_key == str(key)
    missing = s.missing()  # neither the contracts file nor the key is there: both named
    assert len(missing) == 2 and "l1.contracts" in missing[0] and "relayer_key_file" in missing[1]
    assert BridgeSettings.from_mapping({}).relays_for() is None

