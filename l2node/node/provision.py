"""`l2node deploy`: the rollup's contracts on an operator's L1, and the files a node starts from.

    l2node deploy --l1-rpc URL --key-file deployer.key --batcher-address 0x… [--config FILE] [--out DIR]

deploys BatchInbox, DepositPortal, StepVerifier and OutputRegistry (``[rollups]`` and
``[node] genesis`` of ``--config``), reads every one back (:func:`l2node.node.deploy.verify`),
and writes into DIR (``[rollups]`` unsafe on that L1 is refused before anything is sent, off a
local devnet: protocol/_safe_params.py):

    contracts.json   the deployment record (services.l1.Deployment reads it)
    genesis.json     with ``[node] genesis``: a copy of it, which the node's config names
    l2node.toml      ``--config`` (if any) with ``[l1]`` naming where the node finds
                     contracts.json and its own key files, and ``[rollups]`` as deployed

The node's keys are not the deployer's: each role signs with its own file, which the
operator provides where the config says (``KEYS_DIR/batcher.key``, ``proposer.key``,
``challenger.key``; in a container a read-only Secret). The L1 URL is not written: it may carry
credentials, so the node gets it as ``--l1-rpc``.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from l2node.node.config import NODE_CONFIG_DIR, NODE_KEYS_DIR, ConfigError, load
from l2node.node.deploy import Addresses, DeployError, deploy_new
from protocol import load_genesis
from services.l1 import L1Client, L1Error, LocalSigner, address, read_key
from services.runtime import BreakerOpen, DeadlineExceeded, redact_url

#: The key files of the node's roles, by the [l1] key that names each.
ROLE_KEYS: Final = {"batcher_key_file": "batcher.key", "proposer_key_file": "proposer.key",
                    "challenger_key_file": "challenger.key"}
#: Optional roles' key files: named under the node's keys dir only when the source config has the role.
OPTIONAL_ROLE_KEYS: Final = {"relayer_key_file": "relayer.key", "channels_key_file": "channels.key"}
CONFIG_FILE: Final = "l2node.toml"
CONTRACTS_FILE: Final = "contracts.json"
GENESIS_FILE: Final = "genesis.json"


@dataclass(frozen=True, slots=True)
class Request:
    """What the operator asked for (the command's flags)."""

    l1_rpc: str
    key_file: pathlib.Path
    batcher: bytes
    out: pathlib.Path
    config: pathlib.Path | None = None
    #: Where the node will read contracts.json and its key files (paths written into l2node.toml).
    node_config_dir: str = NODE_CONFIG_DIR
    node_keys_dir: str = NODE_KEYS_DIR
    timeout_s: float = 600.0
    force: bool = False


def batcher_of(address_text: str | None, key_file: str | None) -> bytes:
    """The batcher's address: given, or the address of the key in ``key_file``."""
    if key_file:
        return LocalSigner(read_key(key_file)).address
    if not address_text:
        raise DeployError("the batcher is needed: --batcher-address 0x… or --batcher-key-file FILE")
    try:
        return address(address_text)
    except ValueError as exc:
        raise DeployError(f"--batcher-address {address_text!r}: {exc}") from None


def _source(path: pathlib.Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return dict(tomllib.loads(path.read_text()))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config {path}: {exc}") from None


def node_config(source: Mapping[str, Any], addresses: Addresses, request: Request, genesis: str) -> str:
    """``source`` (the operator's config) with ``[l1]`` pointing at the deployment's files and the
    node's keys, ``[rollups]`` as deployed and ``[node] genesis`` resolved; as TOML."""
    doc = {name: dict(table) if isinstance(table, Mapping) else table for name, table in source.items()}
    l1 = {k: v for k, v in doc.get("l1", {}).items() if k not in ("rpc", "port", "chain_id")}
    l1["contracts"] = f"{request.node_config_dir}/{CONTRACTS_FILE}"
    for key, name in ROLE_KEYS.items():
        l1[key] = f"{request.node_keys_dir}/{name}"
    for key, name in OPTIONAL_ROLE_KEYS.items():
        if l1.get(key):
            l1[key] = f"{request.node_keys_dir}/{name}"
    doc["l1"] = l1
    doc["rollups"] = addresses.rollups.to_json()
    if genesis:
        doc.setdefault("node", {})["genesis"] = genesis
    head = (f"# Written by `l2node deploy` for L1 chain {addresses.chain_id} (deployment block "
            f"{addresses.block_number}).\n# Run: l2node up --config {request.node_config_dir}/{CONFIG_FILE} "
            f"--l1-rpc URL\n# The node's key files ([l1] *_key_file) are the operator's to provide.\n")
    return head + dumps(doc)


def dumps(doc: Mapping[str, Any], prefix: str = "") -> str:
    """TOML for what tomllib reads back equal: scalars, arrays of scalars, nested tables."""
    plain = [f"{k} = {_value(v)}" for k, v in doc.items() if not isinstance(v, Mapping)]
    out = "\n".join(plain) + ("\n" if plain else "")
    for key, value in doc.items():
        if isinstance(value, Mapping):
            name = f"{prefix}.{_key(key)}" if prefix else _key(key)
            out += f"\n[{name}]\n" + dumps(value, name).lstrip("\n")
    return out


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} as TOML")


def _write(path: pathlib.Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def provision(request: Request) -> tuple[Addresses, list[pathlib.Path]]:
    """Deploy, verify, write contracts.json and l2node.toml into ``request.out``; the addresses and
    the files written. DeployError / ConfigError / L1Error with the reason otherwise (the L1 URL,
    where shown, redacted)."""
    cfg = load(request.config)  # [rollups] and [node] genesis, validated the way `up` will
    source = _source(request.config)
    contracts_file, config_file = request.out / CONTRACTS_FILE, request.out / CONFIG_FILE
    if contracts_file.exists() and not request.force:
        raise DeployError(f"{contracts_file} exists: it may record a live deployment (--force replaces it)")
    deployer = read_key(request.key_file)
    genesis = load_genesis(cfg.genesis) if cfg.genesis else None
    try:
        async with L1Client(request.l1_rpc) as l1:
            addresses = await deploy_new(l1, deployer, request.batcher, cfg.rollups, genesis,
                                         timeout_s=request.timeout_s)
    except (L1Error, aiohttp.ClientError, OSError, TimeoutError, BreakerOpen, DeadlineExceeded) as exc:
        shown = redact_url(request.l1_rpc)
        raise DeployError(f"L1 {shown}: {type(exc).__name__}: {str(exc).replace(request.l1_rpc, shown)}") from None
    request.out.mkdir(parents=True, exist_ok=True)
    written = [contracts_file, config_file]
    genesis_file = ""
    if cfg.genesis:  # shipped beside the config, where the node reads it
        shutil.copyfile(cfg.genesis, request.out / GENESIS_FILE)
        genesis_file = f"{request.node_config_dir}/{GENESIS_FILE}"
        written.append(request.out / GENESIS_FILE)
    _write(contracts_file, json.dumps(addresses.to_json(), indent=2) + "\n")
    _write(config_file, node_config(source, addresses, request, genesis_file))
    return addresses, written
