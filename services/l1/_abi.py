"""A contract bound to its build artifact: encode calls, decode results, events and errors.

    inbox = Contract(Artifact.load("BatchInbox"), address)
    data = inbox.encode_call("appendBatch", batch)
    event = inbox.decode_log(log)              # Event(name="BatchAppended", args={...})
    count, = await inbox.read(l1, "batchCount")

Encoding is eth-abi; selectors and topics are keccak of the canonical signatures.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode
from eth_abi.grammar import ABIType, BasicType, TupleType, parse

from services.l1._codec import keccak
from services.l1._records import BlockId, Log

if TYPE_CHECKING:
    from services.l1._client import L1Client

#: Where `node contracts/build.mjs` writes artifacts; $L2NODE_CONTRACTS overrides (e.g. in an image).
ARTIFACTS_DIR: Final = pathlib.Path(__file__).resolve().parents[2] / "contracts" / "artifacts"

_ERROR_STRING: Final = keccak(b"Error(string)")[:4]
_PANIC: Final = keccak(b"Panic(uint256)")[:4]


def artifacts_dir() -> pathlib.Path:
    override = os.environ.get("L2NODE_CONTRACTS")
    return pathlib.Path(override) if override else ARTIFACTS_DIR


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract, as contracts/build.mjs writes it."""

    name: str
    abi: tuple[Mapping[str, Any], ...]
    bytecode: bytes  # creation code, without constructor arguments
    deployed_bytecode: bytes  # runtime code, with zeros where immutables go
    immutable_references: Mapping[str, tuple[tuple[int, int], ...]]  # id → ((start, length), ...)
    compiler: str

    @classmethod
    def load(cls, name: str, directory: pathlib.Path | None = None) -> Artifact:
        """``name``'s artifact, read once per process (or once in the zygote: :func:`preload_artifacts`):
        ~1 ms each, and a worker's start reads several."""
        return _read((directory or artifacts_dir()) / f"{name}.json")

    @classmethod
    def _parse(cls, path: pathlib.Path) -> Artifact:
        doc = json.loads(path.read_text())
        return cls(
            name=doc["contractName"],
            abi=tuple(doc["abi"]),
            bytecode=bytes.fromhex(doc["bytecode"].removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(doc["deployedBytecode"].removeprefix("0x")),
            immutable_references={
                k: tuple((r["start"], r["length"]) for r in refs) for k, refs in doc["immutableReferences"].items()
            },
            compiler=doc["compiler"]["version"],
        )

    def matches_code(self, code: bytes) -> bool:
        """Whether on-chain runtime code is this artifact's, whatever its immutables were set to."""
        if len(code) != len(self.deployed_bytecode):
            return False
        masked = bytearray(code)
        for refs in self.immutable_references.values():
            for start, length in refs:
                masked[start:start + length] = bytes(length)
        return bytes(masked) == self.deployed_bytecode


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    signature: str  # canonical, e.g. "appendBatch(bytes)"
    selector: bytes
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str
    indexed: bool


@dataclass(frozen=True, slots=True)
class EventAbi:
    name: str
    signature: str
    topic: bytes
    inputs: tuple[Param, ...]


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded log. Indexed dynamic values (bytes, string, arrays) are their 32-byte topic hash."""

    name: str
    args: Mapping[str, Any]
    log: Log


@functools.cache
def _read(path: pathlib.Path) -> Artifact:
    return Artifact._parse(path)  # immutable, and its file does not change under a running node


def preload_artifacts() -> None:
    """Every artifact read, and its ABI tables made, now (a zygote's preload: its forks find them)."""
    for path in sorted(artifacts_dir().glob("*.json")):
        _tables(_read(path))


@dataclass(frozen=True, slots=True)
class ContractError:
    """Decoded revert data: a custom error, Error(string) or Panic(uint256)."""

    name: str
    args: tuple[Any, ...]


def canonical_type(param: Mapping[str, Any]) -> str:
    """The ABI type as it appears in a signature: tuples spelled out as (t1,t2,...)."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple'):]}"
    return kind


def decode(types: list[str], data: bytes) -> tuple[Any, ...]:
    """eth-abi's decode, with addresses as 20 raw bytes (eth-abi gives checksummed strings)."""
    return tuple(_raw_addresses(parse(t), v) for t, v in zip(types, abi_decode(types, data), strict=True))


def _raw_addresses(kind: ABIType, value: Any) -> Any:
    if kind.is_array:
        return tuple(_raw_addresses(kind.item_type, v) for v in value)
    if isinstance(kind, TupleType):
        return tuple(_raw_addresses(c, v) for c, v in zip(kind.components, value, strict=True))
    if isinstance(kind, BasicType) and kind.base == "address":
        return bytes.fromhex(value[2:])
    return value


def _is_dynamic(kind: str) -> bool:
    return kind in ("bytes", "string") or kind.endswith("]") or kind.startswith("(")


def _signature(entry: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    types = tuple(canonical_type(p) for p in entry.get("inputs", ()))
    return f"{entry['name']}({','.join(types)})", types


@dataclass(frozen=True, slots=True)
class _Tables:
    """An artifact's ABI by selector, topic and name: what every Contract of it looks things up in."""

    functions: Mapping[str, Function]
    events: Mapping[bytes, EventAbi]
    errors: Mapping[bytes, tuple[str, tuple[str, ...]]]
    constructor: tuple[str, ...]

    @classmethod
    def of(cls, artifact: Artifact) -> _Tables:
        functions: dict[str, Function] = {}
        events: dict[bytes, EventAbi] = {}
        errors: dict[bytes, tuple[str, tuple[str, ...]]] = {}
        constructor: tuple[str, ...] = ()
        names = Counter(e["name"] for e in artifact.abi if e.get("type") == "function")
        for entry in artifact.abi:
            kind = entry.get("type")
            if kind == "constructor":
                constructor = _signature({"name": "", **entry})[1]
            elif kind == "function":
                signature, types = _signature(entry)
                outputs = tuple(canonical_type(p) for p in entry.get("outputs", ()))
                fn = Function(entry["name"], signature, keccak(signature.encode())[:4], types, outputs)
                functions[signature] = fn
                if names[fn.name] == 1:  # by bare name too, unless overloaded
                    functions[fn.name] = fn
            elif kind == "event" and not entry.get("anonymous"):
                signature, _ = _signature(entry)
                params = tuple(Param(p["name"], canonical_type(p), bool(p.get("indexed"))) for p in entry["inputs"])
                topic = keccak(signature.encode())
                events[topic] = EventAbi(entry["name"], signature, topic, params)
            elif kind == "error":
                signature, types = _signature(entry)
                errors[keccak(signature.encode())[:4]] = (entry["name"], types)
        return cls(functions, events, errors, constructor)


#: Each artifact's tables, by the artifact object (read once per process: Artifact.load), made at its
#: first Contract, or in the zygote (preload_artifacts): ~0.2-0.4 ms of hashing each, at every
#: start of a worker that binds a few contracts.
_TABLES: dict[int, tuple[Artifact, _Tables]] = {}


def _tables(artifact: Artifact) -> _Tables:
    known = _TABLES.get(id(artifact))
    if known is not None and known[0] is artifact:
        return known[1]
    tables = _Tables.of(artifact)
    _TABLES[id(artifact)] = (artifact, tables)  # holds the artifact: its id stays its own
    return tables


class Contract:
    """An artifact's ABI, optionally bound to an address."""

    def __init__(self, artifact: Artifact, address: bytes | None = None) -> None:
        self.artifact: Final = artifact
        self.address = address
        tables = _tables(artifact)
        self._functions = tables.functions
        self._events = tables.events
        self._errors = tables.errors
        self._constructor = tables.constructor

    def function(self, name: str) -> Function:
        """By name, or by full signature when the name is overloaded."""
        try:
            return self._functions[name]
        except KeyError:
            raise KeyError(f"{self.artifact.name} has no function {name!r} (overloaded? use the signature)") from None

    def event(self, name: str) -> EventAbi:
        for abi in self._events.values():
            if name in (abi.name, abi.signature):
                return abi
        raise KeyError(f"{self.artifact.name} has no event {name!r}")

    def topic(self, event: str) -> bytes:
        """topic0 of an event, for log filters."""
        return self.event(event).topic

    def encode_deploy(self, *args: Any) -> bytes:
        """Creation code with encoded constructor arguments: a deployment transaction's data."""
        return self.artifact.bytecode + encode(list(self._constructor), list(args))

    def encode_call(self, function: str, *args: Any) -> bytes:
        fn = self.function(function)
        return fn.selector + encode(list(fn.inputs), list(args))

    def decode_input(self, function: str, data: bytes) -> tuple[Any, ...]:
        """A call's arguments from transaction input (derivation reads batches this way)."""
        fn = self.function(function)
        if data[:4] != fn.selector:
            raise ValueError(f"input is not a call of {fn.signature}")
        return decode(list(fn.inputs), data[4:])

    def decode_output(self, function: str, data: bytes) -> tuple[Any, ...]:
        return decode(list(self.function(function).outputs), data)

    def decode_log(self, log: Log) -> Event | None:
        """The event a log carries; None if it is not one of this contract's events."""
        abi = self._events.get(log.topics[0]) if log.topics else None
        if abi is None:
            return None
        indexed = [p for p in abi.inputs if p.indexed]
        if len(log.topics) != 1 + len(indexed):
            return None  # same signature, different indexing: not ours
        plain = [p for p in abi.inputs if not p.indexed]
        values = dict(zip((p.name for p in plain), decode([p.type for p in plain], log.data), strict=True))
        for param, topic in zip(indexed, log.topics[1:], strict=True):
            values[param.name] = topic if _is_dynamic(param.type) else decode([param.type], topic)[0]
        return Event(abi.name, {p.name: values[p.name] for p in abi.inputs}, log)

    def decode_error(self, data: bytes | None) -> ContractError | None:
        """Revert data as a custom error, Error(string) or Panic(uint256); None if unknown or empty."""
        if not data or len(data) < 4:
            return None
        selector, body = data[:4], data[4:]
        if selector == _ERROR_STRING:
            return ContractError("Error", decode(["string"], body))
        if selector == _PANIC:
            return ContractError("Panic", decode(["uint256"], body))
        known = self._errors.get(selector)
        if known is None:
            return None
        return ContractError(known[0], decode(list(known[1]), body))

    async def read(self, l1: L1Client, function: str, *args: Any, block: BlockId = "latest") -> tuple[Any, ...]:
        """eth_call a view function at the bound address; its decoded outputs."""
        if self.address is None:
            raise ValueError(f"{self.artifact.name} is not bound to an address")
        return self.decode_output(function, await l1.call(self.address, self.encode_call(function, *args), block=block))

