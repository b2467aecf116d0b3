"""keccak-256, the Ethereum hash: the L1 client's (services.l1, below this package), one wrapper
for both, named here as the protocol's modules use it."""

from services.l1 import keccak as keccak256

__all__ = ["keccak256"]
