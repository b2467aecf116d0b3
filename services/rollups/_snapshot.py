"""The machine snapshot: everything the derivation step function carries from one step to the next.

A dispute bisects over the commitments of these snapshots, one per step of the derivation
trace (see ``_machine``), so Python (``Snapshot``) and Solidity (``contracts/Snapshot.sol``)
must agree bit for bit:

    commitment  = keccak256(abi.encode(Snapshot))        // 21 words, 672 bytes
    output root = keccak256(abi.encode(bytes32(0) /*version*/, stateRoot, messageRoot, blockHash))

The output root is Optimism's (version 0). An output is proposed together with the whole
snapshot at the end of its block (phase IDLE), so the registry derives both the output root and
the commitment from the same words: an output cannot claim one and dispute another.

Words, in order (every field is one 32-byte word; integers are uint256 on the wire):

 0  stateRoot           sized account-tree root (see sequencer._commitment)
 1  messageRoot         sized message-passer root
 2  blockHash           hash of the last sealed L2 block
 3  number              its number
 4  timestamp           its timestamp
 5  baseFee             its base fee
 6  gasUsed             its gas used
 7  gasLimit            its gas limit
 8  l1OriginNumber      its L1 origin
 9  phase               IDLE 0 | DEPOSITS 1 | FORCED 2 | BATCH 3 (the block in progress, if any)
10  blockTimestamp      the block in progress: timestamp (0 when IDLE, as are 11-16)
11  blockOriginNumber   its L1 origin number
12  blockOriginHash     its L1 origin hash
13  blockBaseFee        its base fee
14  blockGasUsed        gas used so far
15  txRoot              sized root over the hashes of what it has included so far
16  txLeft              batch transactions of the block still to read
17  batchIndex          cursor: the inbox batch being read
18  itemIndex           cursor: the next leaf of that batch
19  depositIndex        cursor: the next portal deposit
20  forcedIndex         cursor: the next forced-inclusion queue entry
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields, replace
from enum import IntEnum
from typing import Self

from protocol import keccak256, output_root

WORDS = 21
#: The largest base fee a snapshot may hold (Snapshots.MAX_BASE_FEE; next_base_fee clamps to it).
MAX_BASE_FEE = 2**128 - 1
_U64 = 2**64
#: The block-in-progress words: zero in a snapshot between blocks.
_IN_PROGRESS = ("block_timestamp", "block_origin_number", "block_origin_hash", "block_base_fee",
                "block_gas_used", "tx_root", "tx_left")


class Phase(IntEnum):
    """Where the block in progress stands (IDLE: between blocks)."""

    IDLE = 0
    DEPOSITS = 1
    FORCED = 2
    BATCH = 3


@dataclass(frozen=True, slots=True)
class Snapshot:
    state_root: bytes
    message_root: bytes
    block_hash: bytes
    number: int
    timestamp: int
    base_fee: int
    gas_used: int
    gas_limit: int
    l1_origin_number: int
    phase: Phase = Phase.IDLE
    block_timestamp: int = 0
    block_origin_number: int = 0
    block_origin_hash: bytes = bytes(32)
    block_base_fee: int = 0
    block_gas_used: int = 0
    tx_root: bytes = bytes(32)
    tx_left: int = 0
    batch_index: int = 0
    item_index: int = 0
    deposit_index: int = 0
    forced_index: int = 0

    def encode(self) -> bytes:
        """abi.encode of the 21 words."""
        out = bytearray()
        for value in astuple(self):
            out += value if isinstance(value, bytes) else int(value).to_bytes(32, "big")
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        if len(data) != 32 * WORDS:
            raise ValueError(f"a snapshot is {WORDS} words, not {len(data)} bytes")
        values: list[object] = []
        for i, f in enumerate(fields(cls)):
            word = data[32 * i : 32 * i + 32]
            values.append(word if f.type == "bytes" else int.from_bytes(word, "big"))
        snapshot = cls(*values)  # type: ignore[arg-type]
        return replace(snapshot, phase=Phase(snapshot.phase))

    def words(self) -> list[bytes]:
        data = self.encode()
        return [data[i : i + 32] for i in range(0, len(data), 32)]

    def commitment(self) -> bytes:
        return keccak256(self.encode())

    def output_root(self) -> bytes:
        return output_root(self.state_root, self.message_root, self.block_hash)


class SnapshotRangeError(ValueError):
    """A snapshot field outside what derivation can produce (Snapshots.SnapshotFieldOutOfRange)."""

    def __init__(self, field: str, value: int) -> None:
        super().__init__(f"snapshot {field} {value} is out of range")
        self.field, self.value = field, value


def check_range(s: Snapshot) -> None:
    """Snapshots.checkRange: refuse a snapshot no honest derivation produces (the registry
    refuses it as an anchor or a proposal), naming the first field out of range, in the same
    order as Solidity. Why: an absurd pre-state could make the one-step proof overflow and
    revert, so that a trace from it could not be disproven (issue item 9)."""
    for name, value, ok in (
        ("number", s.number, s.number < _U64),
        ("timestamp", s.timestamp, s.timestamp < _U64),
        ("baseFee", s.base_fee, s.base_fee <= MAX_BASE_FEE),
        ("gasLimit", s.gas_limit, 2 <= s.gas_limit < _U64),
        ("gasUsed", s.gas_used, s.gas_used <= s.gas_limit),
        ("l1OriginNumber", s.l1_origin_number, s.l1_origin_number < _U64),
        ("phase", s.phase, s.phase == Phase.IDLE),
    ):
        if not ok:
            raise SnapshotRangeError(name, int(value))
    for name in _IN_PROGRESS:
        value = getattr(s, name)
        number = int.from_bytes(value, "big") if isinstance(value, bytes) else value
        if number:
            raise SnapshotRangeError(_camel(name), number)
    for name in ("batch_index", "item_index", "deposit_index", "forced_index"):
        if getattr(s, name) >= _U64:
            raise SnapshotRangeError(_camel(name), getattr(s, name))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)

