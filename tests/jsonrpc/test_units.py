"""The JSON-RPC worker's pieces that need no tree: geth's words for every refusal, the value
encodings, and how the node config places the worker and its port."""

from __future__ import annotations

import pathlib
import socket

import pytest

from l2node.node.config import DEFAULT_JSONRPC_PORT, ConfigError, load
from l2node.node.tree import l1_settings, settle_ports, worker_payload
from protocol import CHANNEL_REASONS, Reason
from services.jsonrpc import DEFAULT_PORT, GETH_MESSAGES, JsonRpcSettings, RpcError
from tests.ports import free_port


def _refusals() -> set[Reason]:
    """Every reason a transaction can be refused with (drop-only reasons have no error)."""
    found = set()
    for reason in set(Reason) - CHANNEL_REASONS:
        try:
            reason.error  # noqa: B018
        except KeyError:
            continue
        found.add(reason)
    return found


def test_every_refusal_has_geths_words_in_the_one_table() -> None:
    assert set(GETH_MESSAGES) == _refusals()
    assert GETH_MESSAGES[Reason.NONCE_TOO_LOW] == "nonce too low"
    assert GETH_MESSAGES[Reason.INSUFFICIENT_FUNDS] == "insufficient funds for gas * price + value"
    assert GETH_MESSAGES[Reason.ALREADY_KNOWN] == "already known"
    assert GETH_MESSAGES[Reason.REPLACEMENT_UNDERPRICED] == "replacement transaction underpriced"
    assert RpcError(-32000, "x", {"a": 1}).payload() == {"code": -32000, "message": "x", "data": {"a": 1}}


def _config(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "l2node.toml"
    path.write_text(text)
    return path


def test_the_worker_gets_its_port_its_peers_and_the_deployment_and_no_l1(tmp_path: pathlib.Path) -> None:
    assert DEFAULT_JSONRPC_PORT == DEFAULT_PORT == JsonRpcSettings().port
    cfg = load(_config(tmp_path, "[node]\nbase_port = 40000\n[jsonrpc]\nhost = \"0.0.0.0\"\nport = 9999\n"), tmp_path)
    index, entry = next((i, w) for i, w in enumerate(cfg.workers) if w.id == "jsonrpc")
    assert index == 4 and cfg.jsonrpc_url == "http://0.0.0.0:9999"
    l1 = l1_settings(cfg, "http://127.0.0.1:8545")
    settings = worker_payload(cfg, entry, index, l1)["config"]["settings"]
    # No L1 URL and no keys: only the deployment's record, which optimism_rollupConfig reads.
    assert settings == {"host": "0.0.0.0", "port": 9999, "sequencer": "127.0.0.1:40001", "rollups": "127.0.0.1:40002",
                        "contracts": l1["contracts"]}
    JsonRpcSettings.from_mapping(settings)  # what the worker reads


def test_a_tree_without_a_sequencer_has_no_jsonrpc_worker(tmp_path: pathlib.Path) -> None:
    cfg = load(_config(tmp_path, "[workers.sequencer]\nenabled = false\n"), tmp_path)
    assert "jsonrpc" not in {w.id for w in cfg.workers} and cfg.jsonrpc_url is None
    cfg = load(_config(tmp_path, "[workers.jsonrpc]\nenabled = false\n"), tmp_path)
    assert cfg.jsonrpc_url is None


@pytest.mark.parametrize("text", ["[jsonrpc]\nport = 8545\n", "[node]\nbase_port = 40000\n[jsonrpc]\nport = 40003\n",
                                  "[jsonrpc]\nport = 70000\n", "[jsonrpc]\nprot = 1\n"])
def test_a_jsonrpc_port_that_would_collide_is_refused(tmp_path: pathlib.Path, text: str) -> None:
    with pytest.raises(ConfigError, match="jsonrpc"):
        load(_config(tmp_path, text), tmp_path)


def test_a_busy_jsonrpc_port_moves_to_a_free_one(tmp_path: pathlib.Path) -> None:
    port = free_port()
    cfg = load(_config(tmp_path, f"[jsonrpc]\nport = {port}\n"), tmp_path)
    assert settle_ports(cfg).jsonrpc_port == port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        moved = settle_ports(cfg)
    assert moved.jsonrpc_port != port and moved.jsonrpc_url == f"http://127.0.0.1:{moved.jsonrpc_port}"


@pytest.mark.parametrize(("value", "ok"), [("0x0", True), ("0x1f", True), ("0x", False), ("12", False),
                                           (12, False), ("0xzz", False), ("0x1" + "0" * 64, False)])
def test_quantities_are_hex_as_the_spec_says(value: object, ok: bool) -> None:
    from services.jsonrpc._hex import parse_quantity

    if ok:
        assert parse_quantity(value) == int(str(value), 16)
    else:
        with pytest.raises(RpcError) as caught:
            parse_quantity(value)
        assert caught.value.code == -32602
