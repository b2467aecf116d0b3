"""Mempool ordering policies: which sender's next transaction a block takes first.

A policy only ranks the *heads* of the senders' pending runs; :meth:`Mempool.select` keeps
every sender in nonce order by offering a sender's next transaction only after its previous
one was taken. Priorities are tuples compared ascending: the smallest goes first. ``seq`` is
the pool's arrival counter (unique, increasing), the deterministic tie-break.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias

from protocol import Transaction

__all__ = ["FCFS", "FeePriority", "OrderingPolicy", "Priority"]

#: Sort key of a sender's head transaction; the smallest is taken first.
Priority: TypeAlias = tuple[int, int]


class OrderingPolicy(Protocol):
    """Ranks a sender's next executable transaction for a block at ``base_fee``."""

    @property
    def name(self) -> str: ...

    def priority(self, tx: Transaction, seq: int, base_fee: int) -> Priority: ...


@dataclass(frozen=True, slots=True)
class FeePriority:
    """Highest effective tip at the block's base fee first; equal tips in arrival order (default)."""

    name: str = "fee-priority"

    def priority(self, tx: Transaction, seq: int, base_fee: int) -> Priority:
        # -effective_tip, inlined: select() calls this once per transaction it considers.
        return (max(-tx.max_priority_fee_per_gas, base_fee - tx.max_fee_per_gas), seq)


@dataclass(frozen=True, slots=True)
class FCFS:
    """First come, first served: arrival order across senders, fees ignored."""

    name: str = "fcfs"

    def priority(self, tx: Transaction, seq: int, base_fee: int) -> Priority:
        return (seq, 0)
