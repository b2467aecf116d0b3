"""The deployment document (contracts.json) and key files: how a service finds its L1 contracts
and its signing key. One reader for every service, so a missing or malformed entry is refused
the same way everywhere, with the file and the entry named.

contracts.json (``l2node up`` writes it for its local L1; for an external L1 the operator does)::

    {"block_number": 1, "contracts": {"BatchInbox": "0x…", "DepositPortal": "0x…", …},
     "rollups": {"sequencer_window": 3600, …}, …}
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.l1._abi import Artifact, Contract
from services.l1._codec import address


class DeploymentError(ValueError):
    """contracts.json or a key file is missing, unreadable or malformed (the message says which)."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the L1 contracts are, and the L1 block they were deployed in."""

    #: Contract name (its artifact's) -> address.
    addresses: Mapping[str, bytes]
    #: The deployment block: where log followers start reading.
    block_number: int
    #: The rollup parameters the contracts were deployed with (``[rollups]``), as recorded.
    rollups: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    #: The L1's chain id, as recorded at deployment (None in a file that lacks it).
    l1_chain_id: int | None = None

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Deployment:
        try:
            doc = json.loads(pathlib.Path(path).read_text())
            named = doc["contracts"]
            addresses = {str(name): address(at) for name, at in named.items()}
            chain_id = doc.get("chain_id")
            return cls(addresses, int(doc["block_number"]), dict(doc.get("rollups", {})), str(path),
                       None if chain_id is None else int(chain_id))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeploymentError(f"contracts file {path}: {type(exc).__name__}: {exc}") from None

    def has(self, name: str) -> bool:
        return name in self.addresses

    def address_of(self, name: str) -> bytes:
        try:
            return self.addresses[name]
        except KeyError:
            raise DeploymentError(f"contracts file {self.source}: no {name} address") from None

    def contract(self, name: str) -> Contract:
        """``name``'s artifact bound to its deployed address."""
        return Contract(Artifact.load(name), self.address_of(name))


def read_key(path: str | pathlib.Path) -> bytes:
    """A 32-byte private key from a file holding its hex (``0x`` optional, whitespace ignored)."""
    try:
        key = bytes.fromhex(pathlib.Path(path).read_text().strip().removeprefix("0x"))
    except (OSError, ValueError) as exc:
        raise DeploymentError(f"key file {path}: {type(exc).__name__}: {exc}") from None
    if len(key) != 32:
        raise DeploymentError(f"key file {path}: a private key is 32 bytes, not {len(key)}")
    return key


#: What :func:`needed_files` checks: a setting's name -> (its path, the reader that must accept it).
Needs = Mapping[str, tuple[str, Callable[[str], object]]]


def needed_files(role: str, needs: Needs) -> list[str]:
    """Why ``role`` cannot run: each setting in ``needs`` that is unset, or whose file its reader
    refuses (missing, unreadable, malformed), with the setting and the file named. Empty: all there."""
    missing = []
    for key, (path, read) in needs.items():
        if not path:
            missing.append(f"{key} is not set: {role} needs it")
            continue
        try:
            read(path)
        except DeploymentError as exc:
            missing.append(f"{key}: {exc}")
    return missing
