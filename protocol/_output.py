"""The output root: what the proposer bonds on L1 and what a withdrawal is proven against.

``keccak256(version ‖ state root ‖ message-passer root ‖ block hash)``, as in Optimism (version 0).
``contracts/Snapshot.sol`` (``Snapshots.outputRoot``) computes the same.
"""

from __future__ import annotations

from typing import Final

from ._keccak import keccak256

#: Output root version (Optimism's version 0).
OUTPUT_VERSION: Final = bytes(32)


def output_root(state_root: bytes, message_root: bytes, block_hash: bytes) -> bytes:
    """keccak256(version 0 ‖ state root ‖ message-passer root ‖ block hash)."""
    return keccak256(OUTPUT_VERSION + state_root + message_root + block_hash)
