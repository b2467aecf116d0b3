"""The node's one L2 genesis: set once (``[node] genesis``), handed to every service that builds on it.

The sequencer executes from the genesis and the rollups service re-derives from it: two
different ones would make the node disagree with itself. So the genesis is a node setting,
never a worker's, and the node hands each of those services the same file under a key it owns
(``GENESIS_KEY``). A node whose services would still disagree (a ``chain_id`` other than the
genesis's, or than each other's, or than the L1 step verifier's ``[rollups] chain_id``) is
refused before anything starts, with the reason.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from l2node.node.params import RollupParams
from protocol import DEFAULT_CHAIN_ID, GenesisError, load_genesis

#: The built-in services that build on the genesis.
USERS: Final = ("sequencer", "rollups")
#: The worker setting the node fills with the genesis file (empty: the devnet genesis).
GENESIS_KEY: Final = "genesis_file"
#: Where the genesis is set: the message that refuses it anywhere else names it.
NODE_KEY: Final = "[node] genesis"


def refuse_worker_genesis(service: str, settings: Mapping[str, Any]) -> None:
    """A service's own table may not set the genesis (the old spelling, or the node's key)."""
    for key in ("genesis", GENESIS_KEY):
        if key in settings:
            raise ValueError(f"[workers.{service}.settings] {key}: the genesis is set once for the whole "
                             f"node, as {NODE_KEY} = \"path\"")


def one_genesis(genesis: str, workers: Mapping[str, Mapping[str, Any]], params: RollupParams,
                params_chain_id_set: bool) -> tuple[dict[str, dict[str, Any]], RollupParams]:
    """Each genesis user's settings with the node's genesis (and its chain id) filled in, and the
    rollup params with that chain id; ValueError, with the reason, if they would disagree.

    ``workers`` holds the settings of the enabled users of the genesis, by service name.
    """
    chain_ids = {name: settings["chain_id"] for name, settings in workers.items() if "chain_id" in settings}
    if genesis:
        try:
            chain_id = load_genesis(genesis).chain_id
        except GenesisError as exc:
            raise ValueError(f"{NODE_KEY}: {exc}") from None
        source = f"the chain id {chain_id} of {NODE_KEY} ({genesis})"
    elif chain_ids:  # the devnet genesis, for the chain the first service names
        first = next(iter(chain_ids))
        chain_id = chain_ids[first]
        source = f"[workers.{first}.settings] chain_id {chain_id}"
    else:
        chain_id = DEFAULT_CHAIN_ID
        source = f"the devnet chain id {chain_id}"
    for name, value in chain_ids.items():
        if value != chain_id:
            raise ValueError(f"[workers.{name}.settings] chain_id {value} differs from {source}: the services "
                             "would not build on the same chain")
    if params_chain_id_set and params.chain_id != chain_id:
        raise ValueError(f"[rollups] chain_id {params.chain_id} differs from {source}: L1 would check the "
                         "services' transactions for another chain")
    filled = {name: {**settings, "chain_id": chain_id, **({GENESIS_KEY: genesis} if genesis else {})}
              for name, settings in workers.items()}
    return filled, replace(params, chain_id=chain_id)


def resolve(path: object) -> str:
    """``[node] genesis`` as an absolute path (workers may run elsewhere than the config was read)."""
    if not isinstance(path, str):
        raise ValueError(f"{NODE_KEY} must be a path, not {path!r}")
    return str(pathlib.Path(path).resolve()) if path else ""
