"""Ethereum JSON-RPC's value encodings (the execution-apis spec): QUANTITY is 0x-hex without
leading zeros, DATA is 0x-hex of whole bytes; a block is named by a number, a tag or (EIP-1898)
an object with its hash. Every parse error is an invalid-params error (-32602)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ._errors import invalid_params

#: The block tags; "latest" when a parameter is left out.
TAGS: Final = frozenset({"latest", "pending", "safe", "finalized", "earliest"})
_MAX_QUANTITY: Final = 2**256 - 1


def quantity(value: int) -> str:
    return hex(value)


def data(raw: bytes) -> str:
    return "0x" + raw.hex()


def parse_quantity(value: Any, what: str = "quantity") -> int:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")) or len(value) < 3:
        raise invalid_params(f"{what} {value!r}: hex string without leading zero digits")
    try:
        number = int(value[2:], 16)
    except ValueError:
        raise invalid_params(f"{what} {value!r}: hex string without leading zero digits") from None
    if number > _MAX_QUANTITY:
        raise invalid_params(f"{what} {value!r}: above 2**256 - 1")
    return number


def parse_data(value: Any, what: str = "data", size: int | None = None) -> bytes:
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        raise invalid_params(f"{what} {value!r}: 0x-prefixed hex string")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise invalid_params(f"{what} {value!r}: 0x-prefixed hex string of whole bytes") from None
    if size is not None and len(raw) != size:
        raise invalid_params(f"{what} {value!r}: {size} bytes, not {len(raw)}")
    return raw


def parse_address(value: Any, what: str = "address") -> bytes:
    return parse_data(value, what, 20)


def parse_hash(value: Any, what: str = "hash") -> bytes:
    return parse_data(value, what, 32)


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A block parameter: exactly one of a tag, a number, a hash."""

    tag: str | None = None
    number: int | None = None
    hash: bytes | None = None


LATEST: Final = BlockRef(tag="latest")


def parse_block(value: Any, *, allow_hash: bool = True) -> BlockRef:
    """A block number, a tag, or (EIP-1898, where ``allow_hash``) ``{"blockNumber": ...}`` /
    ``{"blockHash": ..., "requireCanonical": ...}``; None is "latest"."""
    if value is None:
        return LATEST
    if isinstance(value, str):
        if value in TAGS:
            return BlockRef(tag=value)
        return BlockRef(number=parse_quantity(value, "block number"))
    if allow_hash and isinstance(value, dict):
        if "blockHash" in value and "blockNumber" not in value:
            return BlockRef(hash=parse_hash(value["blockHash"], "blockHash"))
        if "blockNumber" in value and "blockHash" not in value:
            return parse_block(value["blockNumber"], allow_hash=False)
    raise invalid_params(f"block {value!r}: a hex number, latest, pending, safe, finalized or earliest"
                         + (", or {\"blockHash\": ...}" if allow_hash else ""))


def params_of(params: Any, least: int, most: int) -> list[Any]:
    """The positional params, checked for count; missing optional ones are None."""
    if params is None:
        params = []
    if not isinstance(params, list):
        raise invalid_params("params must be an array")
    if not least <= len(params) <= most:
        wanted = str(least) if least == most else f"{least} to {most}"
        raise invalid_params(f"{wanted} params expected, got {len(params)}")
    return params + [None] * (most - len(params))
