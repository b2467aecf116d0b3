"""l2node/node/config.py, params.py and genesis.py: the [rollups] table and the node's one genesis,
with their defaults and their refusals."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from l2node.node.config import ConfigError, NodeConfig, load
from l2node.node.deploy import DEVNET_RELAYER_KEY
from l2node.node.params import DEFAULT_SEQUENCER_WINDOW, RollupParams
from l2node.node.tree import build, l1_settings, worker_payload
from protocol import DEFAULT_CHAIN_ID, DEV_PRIVATE_KEYS
from protocol import DEFAULT_SEQUENCER_WINDOW as MACHINE_WINDOW
from services.rollups import RollupsSettings
from services.sequencer import SequencerSettings


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


# -- the genesis: set once, at node level (l2node/node/genesis.py) ----------------------------------


def genesis_file(tmp_path: pathlib.Path, chain_id: int = 777) -> pathlib.Path:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps({"chain_id": chain_id, "base_fee": "1000000000",
                                "alloc": {"0x000000000000000000000000000000000000bEEF": "1000"}}))
    return path


def settings_of(cfg: NodeConfig) -> dict[str, dict[str, Any]]:
    return {w.id: dict(w.settings) for w in cfg.workers}


def test_the_node_s_genesis_is_handed_to_every_service_with_its_chain_id(tmp_path: pathlib.Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    genesis_file(tmp_path)
    monkeypatch.chdir(tmp_path)  # a relative path is the node's working directory's, made absolute
    cfg = load(write(tmp_path, '[node]\ngenesis = "genesis.json"\n'
                               '[workers.echo]\ndefinition = "tests.workers.echo:WORKER"\n'
                               "[workers.sequencer.settings]\nchain_id = 777\n"), tmp_path)
    path = str(tmp_path / "genesis.json")
    assert cfg.genesis == path
    both = settings_of(cfg)
    assert both["sequencer"] == both["rollups"] == {"genesis_file": path, "chain_id": 777}
    assert both["echo"] == {}  # only the services that build on the genesis
    assert cfg.rollups.chain_id == 777  # the L1 step verifier checks signatures for the same chain
    # The settings each service reads it through: the node's key, the same file.
    assert SequencerSettings.from_mapping(both["sequencer"]).genesis_file == path
    assert RollupsSettings.from_mapping(both["rollups"]).genesis_file == path


def test_without_a_genesis_every_service_builds_the_devnet_s_for_the_same_chain(tmp_path: pathlib.Path) -> None:
    cfg = load(None, tmp_path)
    assert cfg.genesis == "" and settings_of(cfg) == {"sequencer": {"chain_id": DEFAULT_CHAIN_ID},
                                                      "rollups": {"chain_id": DEFAULT_CHAIN_ID},
                                                      "bridge": {},  # reads blocks, never executes them
                                                      "channels": {}, "jsonrpc": {}}
    assert cfg.rollups == RollupParams()
    one = load(write(tmp_path, "[workers.rollups.settings]\nchain_id = 902\n"), tmp_path)  # set once, for all
    assert settings_of(one)["sequencer"]["chain_id"] == 902 == one.rollups.chain_id


@pytest.mark.parametrize("key", ["genesis", "genesis_file"])
@pytest.mark.parametrize("service", ["sequencer", "rollups"])
def test_a_service_s_own_genesis_is_refused_naming_the_node_key(tmp_path: pathlib.Path, service: str,
                                                                 key: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[workers.{service}.settings\] {key}: .*\[node\] genesis = \"path\""):
        load(write(tmp_path, f'[workers.{service}.settings]\n{key} = "{genesis_file(tmp_path)}"\n'), tmp_path)


@pytest.mark.parametrize(("text", "reason"), [
    # a service on another chain than the genesis
    ("[workers.rollups.settings]\nchain_id = 901\n",
     r"\[workers.rollups.settings\] chain_id 901 differs from the chain id 777 of \[node\] genesis \(/"),
    # the L1 step verifier on another chain
    ("[rollups]\nchain_id = 901\n", r"\[rollups\] chain_id 901 differs from the chain id 777 of \[node\] genesis"),
])
def test_services_that_would_disagree_with_the_genesis_refuse_to_start(tmp_path: pathlib.Path, text: str,
                                                                       reason: str) -> None:
    genesis = genesis_file(tmp_path)
    with pytest.raises(ConfigError, match=reason):
        load(write(tmp_path, f'[node]\ngenesis = "{genesis}"\n{text}'), tmp_path)


def test_services_on_two_chains_refuse_to_start(tmp_path: pathlib.Path) -> None:
    text = "[workers.sequencer.settings]\nchain_id = 901\n[workers.rollups.settings]\nchain_id = 902\n"
    with pytest.raises(ConfigError, match=r"\[workers.rollups.settings\] chain_id 902 differs from "
                                          r"\[workers.sequencer.settings\] chain_id 901: the services would not "
                                          "build on the same chain"):
        load(write(tmp_path, text), tmp_path)


def test_a_missing_or_broken_genesis_is_refused_with_the_reason(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"\[node\] genesis: .*nothing.json"):
        load(write(tmp_path, f'[node]\ngenesis = "{tmp_path / "nothing.json"}"\n'), tmp_path)
    (tmp_path / "bad.json").write_text('{"chain_id": 1}')
    with pytest.raises(ConfigError, match=r"\[node\] genesis: missing genesis keys"):
        load(write(tmp_path, f'[node]\ngenesis = "{tmp_path / "bad.json"}"\n'), tmp_path)


def test_a_step_verifier_for_another_chain_than_the_services_refuses_to_start(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"\[rollups\] chain_id 902 differs from the devnet chain id 901: L1 "
                                          "would check the services' transactions for another chain"):
        load(write(tmp_path, "[rollups]\nchain_id = 902\n"), tmp_path)
    same = load(write(tmp_path, "[rollups]\nchain_id = 902\n[workers.sequencer.settings]\nchain_id = 902\n"), tmp_path)
    assert same.rollups.chain_id == 902 == settings_of(same)["rollups"]["chain_id"]


def test_the_metrics_port_follows_the_workers_or_is_set_and_never_collides(tmp_path: pathlib.Path) -> None:
    cfg = load(None, data_dir=tmp_path)
    assert cfg.metrics_listen_port == cfg.base_port + 1 + len(cfg.workers)  # 50055 with the four built-ins
    config = tmp_path / "l2node.toml"
    config.write_text("[node]\nbase_port = 40000\nmetrics_port = 9464\n")
    assert load(config, data_dir=tmp_path).metrics_listen_port == 9464
    config.write_text("[node]\nbase_port = 40000\nmetrics_port = 40001\n")  # the sequencer's port
    with pytest.raises(ConfigError, match="metrics_port 40001"):
        load(config, data_dir=tmp_path)


def test_the_bridge_runs_after_rollups_with_both_addresses_and_only_the_relayer_key(tmp_path: pathlib.Path) -> None:
    """Built-in order (ports follow it); the bridge gets the sequencer's and rollups' gRPC addresses
    and, of the L1 keys, only the relayer's: the devnet's is anvil's dev account 7, written once."""
    cfg = load(write(tmp_path, "[node]\nbase_port = 40000\n"), tmp_path)
    assert [w.id for w in cfg.workers] == ["sequencer", "rollups", "bridge", "channels", "jsonrpc"]
    assert cfg.workers[2].definition == "services.bridge:WORKER"
    l1 = l1_settings(cfg, "http://127.0.0.1:8545")
    payload = worker_payload(cfg, cfg.workers[2], 2, l1)
    settings = payload["config"]["settings"]
    assert payload["config"]["address"] == "127.0.0.1:40003"
    assert (settings["sequencer"], settings["rollups"]) == ("127.0.0.1:40001", "127.0.0.1:40002")
    key_file = tmp_path / "l1" / "relayer.key"
    assert settings["l1"] == {"rpc": "http://127.0.0.1:8545", "contracts": str(tmp_path / "l1" / "contracts.json"),
                              "relayer_key_file": str(key_file)}
    assert key_file.read_text().strip() == DEVNET_RELAYER_KEY == "0x" + DEV_PRIVATE_KEYS[7].hex()
    assert key_file.stat().st_mode & 0o777 == 0o600
    rollups = worker_payload(cfg, cfg.workers[1], 1, l1)["config"]["settings"]
    assert rollups["sequencer"] == "127.0.0.1:40001" and "rollups" not in rollups
    assert "relayer_key_file" not in rollups["l1"]
    # An external L1: the config's [l1] relayer_key_file ("" = no relayer), its own setting winning.
    text = ('[l1]\nrpc = "http://l1:8545"\ncontracts = "/c.json"\nrelayer_key_file = "/k/relayer.key"\n'
            '[workers.bridge.settings]\nrelay_for = ["0x000000000000000000000000000000000000dEaD"]\n')
    ext = load(write(tmp_path, text), tmp_path)
    assert ext.relayer_key_file == "/k/relayer.key"
    bridge = worker_payload(ext, ext.workers[2], 2, l1_settings(ext, "http://l1:8545"))["config"]["settings"]
    assert bridge["l1"]["relayer_key_file"] == "/k/relayer.key" and "batcher_key_file" not in bridge["l1"]
    assert bridge["relay_for"] == ["0x000000000000000000000000000000000000dEaD"]
    # Without the sequencer (an independent relayer), the bridge is told where it is by its own settings.
    alone = load(write(tmp_path, '[workers.sequencer]\nenabled = false\n[workers.bridge.settings]\n'
                                 'sequencer = "seq:50051"\n'), tmp_path)
    (bridge_entry,) = [w for w in alone.workers if w.id == "bridge"]
    assert worker_payload(alone, bridge_entry, 1)["config"]["settings"]["sequencer"] == "seq:50051"


def test_the_local_anvil_s_block_time_and_gas_limit_are_settings_defaulting_to_anvil_s_own(
        tmp_path: pathlib.Path) -> None:
    """[l1] block_time_s and gas_limit (devnet tuning, issue 15): the default anvil command line is
    unchanged (1 s blocks, anvil's own gas limit), the settings reach it, and nonsense is refused."""
    def anvil_argv(cfg: NodeConfig) -> tuple[str, ...]:
        spec, _, _ = build(cfg)
        (l1,) = [c for c in spec.children if c.id == "l1"]
        return tuple(l1.start.inner.argv)  # type: ignore[attr-defined]

    default = anvil_argv(load(None, tmp_path))
    assert default[default.index("--block-time") + 1] == "1" and "--gas-limit" not in default
    tuned = anvil_argv(load(write(tmp_path, "[l1]\nblock_time_s = 0.5\ngas_limit = 100000000\n"), tmp_path))
    assert tuned[tuned.index("--block-time") + 1] == "0.5"
    assert tuned[tuned.index("--gas-limit") + 1] == "100000000"
    for bad in ("block_time_s = 0", "gas_limit = -1"):
        with pytest.raises(ConfigError, match="block_time_s must be in"):
            load(write(tmp_path, f"[l1]\n{bad}\n"), tmp_path)


# -- read replicas ([node] role = "replica", [replica] upstream) -------------------------------------


def test_a_replica_runs_a_follower_sequencer_and_jsonrpc_with_no_keys(tmp_path: pathlib.Path) -> None:
    contracts = tmp_path / "contracts.json"
    cfg = load(write(tmp_path, f'[node]\nrole = "replica"\n[replica]\nupstream = "seq.example:50051"\n'
                               f'[l1]\ncontracts = "{contracts}"\nbatcher_key_file = "/keys/batcher.key"\n'),
               tmp_path, l1_rpc="http://l1.example:8545")
    assert cfg.replica and [w.id for w in cfg.workers] == ["sequencer", "jsonrpc"]
    seq = next(w for w in cfg.workers if w.id == "sequencer")
    payload = worker_payload(cfg, seq, 0, l1_settings(cfg, "http://l1.example:8545"))["config"]["settings"]
    assert payload["upstream"] == "seq.example:50051"
    assert payload["l1"]["contracts"] == str(contracts)
    assert not any(k.endswith("_key_file") for k in payload["l1"])  # a replica signs nothing
    SequencerSettings.from_mapping(payload)  # and the worker takes it


@pytest.mark.parametrize(("text", "l1_rpc", "reason"), [
    ('[node]\nrole = "replica"\n[l1]\ncontracts = "c.json"\n', "http://l1:8545", "needs \\[replica\\] upstream"),
    ('[node]\nrole = "replica"\n[replica]\nupstream = "s:1"\n', None, "--l1-rpc"),
    ('[node]\nrole = "replica"\n[replica]\nupstream = "s:1"\n', "http://l1:8545", "\\[l1\\] contracts"),
    ('[replica]\nupstream = "s:1"\n', None, "role is not"),
    ('[node]\nrole = "archive"\n', None, "must be one of"),
    ('[node]\nrole = "replica"\n[replica]\nupstream = "s:1"\nlag = 3\n', None, "unknown \\[replica\\] keys"),
])
def test_what_cannot_be_a_replica_is_refused_with_the_reason(tmp_path: pathlib.Path, text: str, l1_rpc: str | None,
                                                             reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        load(write(tmp_path, text), tmp_path, l1_rpc=l1_rpc)
