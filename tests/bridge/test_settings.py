"""The bridge's settings: defaults in one place, and each bad value refused with what is wrong."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from protocol import WithdrawalMessage
from services.bridge import BridgeSettings, WithdrawalRecord, WithdrawalStatus
from services.bridge._bridge import withdrawals_served

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
    ({"relay_min_value_wei": -1}, "relay_min_value_wei"),
    ({"relay_min_value_wei": "1ether"}, "relay_min_value_wei"),
    ({"relay_min_value_wei": True}, "relay_min_value_wei"),
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



def _withdrawal(sender: str, target: str, value: int) -> WithdrawalRecord:
    m = WithdrawalMessage(0, bytes.fromhex(sender[2:]), bytes.fromhex(target[2:]), value, 100_000, b"")
    return WithdrawalRecord(m, m.hash(), WithdrawalStatus.INITIATED, 1, bytes(32))


def test_the_relayer_serves_its_addresses_and_no_dust_below_its_minimum() -> None:
    """An open relayer pays ~180,000 L1 gas per withdrawal; relay_min_value_wei keeps griefers'
    dust withdrawals (an L2 fee each) from draining it."""
    bob = "0x" + "b0" * 20
    anyone = withdrawals_served(BridgeSettings.from_mapping({"relay_min_value_wei": 10**15}))
    assert anyone(_withdrawal(ALICE, bob, 10**15)) and not anyone(_withdrawal(ALICE, bob, 10**15 - 1))
    alice_only = withdrawals_served(BridgeSettings.from_mapping({"relay_for": [ALICE]}))
    assert alice_only(_withdrawal(ALICE, bob, 1)) and alice_only(_withdrawal(bob, ALICE, 1))
    assert not alice_only(_withdrawal(bob, bob, 10**18))
