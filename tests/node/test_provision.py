"""l2node/node/provision.py: the node config `l2node deploy` writes (no L1 needed for these)."""

from __future__ import annotations

import pathlib
import tomllib

import pytest

from l2node.node.config import ConfigError, load
from l2node.node.deploy import Addresses
from l2node.node.params import RollupParams
from l2node.node.provision import Request, dumps, node_config


def test_dumps_writes_what_tomllib_reads_back_equal() -> None:
    doc = {"data_dir": "/d", "node": {"host": "0.0.0.0", "base_port": 50050, "period_s": 5.0},
           "workers": {"sequencer": {"enabled": True, "settings": {"block_time_s": 0.25, "mempool": {"max": 10}}},
                       "my worker.x": {"definition": "a:B", "tags": ["x", "y\"z"]}}}
    assert tomllib.loads(dumps(doc)) == doc
    with pytest.raises(ConfigError, match="cannot write"):
        dumps({"t": {"rows": [{"a": 1}]}})


def test_the_node_config_names_the_files_not_the_url(tmp_path: pathlib.Path) -> None:
    addresses = Addresses(31337, 7, bytes(32), bytes(20), bytes(20), bytes(20), bytes(20), bytes(20), bytes(20),
                          RollupParams(challenge_window_s=600), bytes(32))
    source = {"node": {"base_port": 50070}, "l1": {"rpc": "https://u:p@l1.example/KEY", "port": 1, "chain_id": 5,
                                                   "batcher_key_file": "/old.key"}}
    request = Request("https://u:p@l1.example/KEY", tmp_path / "k", bytes(20), tmp_path,
                      node_config_dir="/etc/l2node", node_keys_dir="/keys")
    text = node_config(source, addresses, request, "/etc/l2node/genesis.json")
    doc = tomllib.loads(text)
    assert "KEY" not in text and "u:p" not in text
    assert doc["l1"] == {"contracts": "/etc/l2node/contracts.json", "batcher_key_file": "/keys/batcher.key",
                         "proposer_key_file": "/keys/proposer.key", "challenger_key_file": "/keys/challenger.key"}
    assert doc["node"] == {"base_port": 50070, "genesis": "/etc/l2node/genesis.json"}
    assert doc["rollups"]["challenge_window_s"] == 600
    written = tmp_path / "l2node.toml"
    written.write_text(node_config(source, addresses, request, ""))
    cfg = load(written, l1_rpc="http://l1:8545")  # what `up` makes of it
    assert cfg.batcher_key_file == "/keys/batcher.key" and cfg.rollups.challenge_window_s == 600
    assert cfg.relayer_key_file == cfg.channels_key_file == ""  # optional roles: none in the source, none written


@pytest.mark.parametrize(("key", "file"), [("relayer_key_file", "relayer.key"), ("channels_key_file", "channels.key")])
def test_an_optional_role_in_the_source_config_reads_its_key_from_the_node_keys_dir(
        tmp_path: pathlib.Path, key: str, file: str) -> None:
    addresses = Addresses(31337, 7, bytes(32), bytes(20), bytes(20), bytes(20), bytes(20), bytes(20), bytes(20),
                          RollupParams(), bytes(32))
    source = {"l1": {key: f"/etc/l2node/keys/{file}"}}
    request = Request("http://l1:8545", tmp_path / "k", bytes(20), tmp_path, node_keys_dir="/keys")
    l1 = tomllib.loads(node_config(source, addresses, request, ""))["l1"]
    assert l1[key] == f"/keys/{file}"
    assert set(l1) == {"contracts", "batcher_key_file", "proposer_key_file", "challenger_key_file", key}
