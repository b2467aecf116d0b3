"""What each worker's roles need before it is ready (the files, named), from real files on disk."""

from __future__ import annotations

import json
import pathlib

from services.rollups import RollupsSettings
from services.sequencer import SequencerSettings

KEY = "0x" + "11" * 32


def test_the_batcher_needs_its_contracts_and_key_once_an_l1_is_configured(tmp_path: pathlib.Path) -> None:
    contracts = tmp_path / "contracts.json"
    contracts.write_text(json.dumps({"block_number": 1, "contracts": {"BatchInbox": "0x" + "11" * 20}}))
    key = tmp_path / "batcher.key"
    l1 = {"rpc": "http://l1:8545", "contracts": str(contracts), "batcher_key_file": str(key)}
    assert SequencerSettings(l1={}).l1_settings().missing() == []  # no L1: no batcher asked for
    assert SequencerSettings(l1={"rpc": "http://l1:8545"}).l1_settings().missing() == [
        "l1.contracts is not set: the batcher needs it", "l1.batcher_key_file is not set: the batcher needs it"]
    no_portal, no_key = SequencerSettings(l1=l1).l1_settings().missing()
    assert no_portal == f"l1.contracts: contracts file {contracts}: no DepositPortal address"
    assert no_key.startswith(f"l1.batcher_key_file: key file {key}: FileNotFoundError")
    contracts.write_text(json.dumps({"block_number": 1, "contracts": {"BatchInbox": "0x" + "11" * 20,
                                                                      "DepositPortal": "0x" + "22" * 20}}))
    key.write_text("0x1234\n")
    assert SequencerSettings(l1=l1).l1_settings().missing() == [
        f"l1.batcher_key_file: key file {key}: a private key is 32 bytes, not 2"]
    key.write_text(KEY)
    assert SequencerSettings(l1=l1).l1_settings().missing() == []


def test_the_rollups_roles_need_the_registry_and_only_their_own_keys(tmp_path: pathlib.Path) -> None:
    contracts = tmp_path / "contracts.json"
    contracts.write_text(json.dumps({"block_number": 1, "contracts": {"OutputRegistry": "0x" + "33" * 20}}))
    challenger = tmp_path / "challenger.key"
    challenger.write_text(KEY)
    l1 = {"rpc": "http://l1:8545", "contracts": str(contracts), "challenger_key_file": str(challenger)}
    assert RollupsSettings(l1={}).missing() == []
    assert RollupsSettings(l1=l1).missing() == [
        "proposer_key_file is not set: the rollups worker (proposer, challenger) needs it"]
    assert RollupsSettings(l1=l1, propose=False).missing() == []  # an independent challenger
    contracts.write_text(json.dumps({"block_number": 1, "contracts": {}}))
    assert RollupsSettings(l1=l1, propose=False).missing() == [
        f"l1.contracts: contracts file {contracts}: no OutputRegistry address"]
