"""The store's two crash-safety rules, on a real SQLite file: never two states at one sequence
(a different state there is refused, the same one only gains signatures), and uint64 sequences
up to the final state's kept in order."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from protocol import FINAL_SEQUENCE
from services.channels import (
    ChannelRecord,
    ChannelsSettings,
    ChannelsStore,
    ChannelStatus,
    SequenceTaken,
    StateRecord,
)
from services.runtime import Storage

CID = b"\x11" * 32


def store_at(path: pathlib.Path) -> ChannelsStore:
    store = ChannelsStore(Storage(path / "channels.db"))
    channel = ChannelRecord(CID, b"\x0a" * 20, b"\x0b" * 20, 7, True, "127.0.0.1:1", ChannelStatus.OPEN, 100, 0)
    store.add_channel(channel, StateRecord(CID, 0, 100, 0, sig_a=b"a0", sig_b=b"b0"), "CHANNEL_OPEN")
    return store


def test_one_state_per_sequence_and_the_final_one_above_every_other(tmp_path: pathlib.Path) -> None:
    store = store_at(tmp_path)
    mine = StateRecord(CID, 1, 90, 10, sig_a=b"a1")
    store.put_state(mine, b"\x22" * 32)
    assert store.pending(CID) == mine and store.payment_of(CID, 1) == b"\x22" * 32
    with pytest.raises(SequenceTaken) as taken:
        store.put_state(StateRecord(CID, 1, 80, 20, sig_a=b"other"))
    assert taken.value.existing == mine
    both = store.put_state(StateRecord(CID, 1, 90, 10, sig_b=b"b1"))  # the counter-signature
    assert both == dataclasses.replace(mine, sig_b=b"b1") and store.latest_cosigned(CID) == both
    assert store.pending(CID) is None
    final = StateRecord(CID, FINAL_SEQUENCE, 90, 10, sig_a=b"af", sig_b=b"bf")
    store.put_state(final)
    assert store.highest_sequence(CID) == FINAL_SEQUENCE and store.latest_cosigned(CID) == final
    assert store.pending(CID) is None and store.pendings(CID) == []  # nothing above the final state
    assert [s.sequence for s in store.states(CID)] == [0, 1, FINAL_SEQUENCE]
    # A restart reads back the same.
    again = ChannelsStore(Storage(tmp_path / "channels.db"))
    assert again.states(CID) == store.states(CID)


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="peer_deadline_s"):
        ChannelsSettings(peer_deadline_s=0)
    with pytest.raises(ValueError, match="endpoint"):
        ChannelsSettings(endpoint="nohostport")
    assert ChannelsSettings(l1={"rpc": "http://l1"}).missing() == []  # no channel key: no channels, nothing missing
    (reason, *_) = ChannelsSettings(l1={"rpc": "http://l1", "contracts": "/nope.json"},
                                    channels_key_file="/nope.key").missing()
    assert reason.startswith("l1.contracts:")
