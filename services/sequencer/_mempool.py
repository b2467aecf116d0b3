"""The sequencer's mempool, after geth's txpool (core/txpool/legacypool): pure, deterministic, no I/O.

This is stateful admission, not validation: a transaction comes here valid (the decoder,
``protocol.decode_transaction``, checked it), and the pool decides against its sender's account
and its own limits: nonce, funds, price, replacement, slots, size.

Per sender the pool holds transactions by nonce, in two classes:

- **pending** (executable): the contiguous run from the account's nonce, at most
  ``account_slots`` long, whose cumulative worst-case cost (``value + gas_limit * max_fee``)
  the balance covers. Only pending transactions are offered to :meth:`Mempool.select`.
- **queued**: every other one: behind a nonce gap, beyond the sender's slot cap, not yet
  affordable, or waiting for a global slot. Promoted in nonce order as soon as it can be.

The node tells the pool the accounts: an optional callable for a sender it has not seen,
:meth:`Mempool.set_account`, and :meth:`Mempool.on_block` after every sealed block (included
transactions, every account the block changed, the next base fee). Time is passed in
(:meth:`~Mempool.add`, :meth:`~Mempool.expire`) and nothing is random: the same calls give the
same pool.

Capacity (geth evicts by price; so do we, restricted to tails): when a global limit is hit, a
new transaction evicts the cheapest *tail* (a sender's highest nonce in that class) of another
sender if it pays strictly more (effective tip at the pool's base fee, then max fee). Taking
only tails never opens a gap in anyone's pending run. Otherwise an executable transaction waits
in queued when that has room, and is promoted first-come when a pending slot frees; failing
that the add is refused with POOL_FULL. A sender's own limits are never relieved by eviction.

Every refusal is a :class:`MempoolRejected` with a stable ``protocol.Reason``; every removal other
than inclusion or replacement is reported as :class:`Dropped`, so receipts can say why.

Not thread-safe: one owner (the sequencer's event loop) calls it. With an ``account_state``
callable the pool forgets a sender once it holds nothing from it; without one it keeps every
account it is told about, so that mode is for tests and small setups.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, NamedTuple, Protocol, TypeAlias

from protocol import (
    BLOCK_GAS_LIMIT,
    MAX_TX_SIZE,
    TX_BASE_GAS,
    Reason,
    Transaction,
    add_pending,
    configure_pool,
    select_pending,
    settle_included,
)
from services.sequencer._ordering import FCFS, FeePriority, OrderingPolicy

__all__ = [
    "FCFS",
    "MIN_TX_GAS",
    "AccountState",
    "AccountStateFn",
    "AddOutcome",
    "AddResult",
    "Dropped",
    "FeePriority",
    "Mempool",
    "MempoolConfig",
    "MempoolRejected",
    "MempoolStats",
    "OrderingPolicy",
    "TxStatus",
    "Waiting",
]

#: A plain transfer's intrinsic gas: no valid transaction has a lower gas limit.
MIN_TX_GAS: Final = TX_BASE_GAS


class TxStatus(StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"


@dataclass(frozen=True, slots=True)
class MempoolConfig:
    """Every limit of the pool, in one place. Defaults are geth's where geth has one."""

    #: Executable transactions per sender (geth AccountSlots); contiguous ones beyond wait in queued.
    account_slots: int = 16
    #: Queued transactions per sender (geth AccountQueue).
    account_queue: int = 64
    #: Executable transactions in the pool (geth GlobalSlots).
    global_slots: int = 4096
    #: Queued transactions in the pool (geth GlobalQueue).
    global_queue: int = 1024
    #: Missing nonces a queued transaction may wait behind, counted from the sender's next executable nonce.
    max_nonce_gap: int = 64
    #: Seconds a transaction may wait without becoming executable (geth Lifetime: queued ones;
    #: here a pending one under the base fee too); enforced by :meth:`Mempool.expire`.
    lifetime: float = 3 * 3600.0
    #: A replacement raises both max_fee_per_gas and max_priority_fee_per_gas by at least this (geth PriceBump).
    price_bump_percent: int = 10
    #: Least max_priority_fee_per_gas accepted, wei (geth PriceLimit).
    min_tip: int = 1
    #: Largest raw transaction, bytes (geth txMaxSize). The decoder enforces the protocol's
    #: MAX_TX_SIZE; with a batcher this is lower: what one L1 transaction can post.
    max_tx_size: int = MAX_TX_SIZE
    #: Largest gas limit: a transaction no block can hold would block its sender's later nonces
    #: forever. The decoder enforces the protocol's BLOCK_GAS_LIMIT; this may be set lower.
    block_gas_limit: int = BLOCK_GAS_LIMIT

    def __post_init__(self) -> None:
        for name in ("account_slots", "account_queue", "global_slots", "global_queue", "max_tx_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("max_nonce_gap", "price_bump_percent", "min_tip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.lifetime <= 0:
            raise ValueError("lifetime must be positive")
        if self.block_gas_limit < MIN_TX_GAS:
            raise ValueError(f"block_gas_limit must be at least {MIN_TX_GAS}")


class AccountState(NamedTuple):
    """An account as of the latest sealed block: the next nonce it may use, its balance in wei.

    A NamedTuple like the state's own ``Account`` (the same two fields), so the node can hand
    the pool its accounts as they are: one is looked up per new sender and per changed account.
    """

    nonce: int
    balance: int


class _NonceAndBalance(Protocol):
    @property
    def nonce(self) -> int: ...

    @property
    def balance(self) -> int: ...


#: Looks up a sender the pool holds nothing for (the node's state at the latest sealed block):
#: an AccountState, or anything else with ``nonce`` and ``balance`` (the state's Account).
AccountStateFn: TypeAlias = Callable[[bytes], _NonceAndBalance]


class AddResult(NamedTuple):
    """An accepted transaction: where it went, what it replaced, whom it evicted."""

    hash: bytes
    status: TxStatus
    #: Hash of the transaction with the same sender and nonce that this one replaced.
    replaced: bytes | None = None
    #: Hashes of other senders' transactions evicted to make room (dropped with EVICTED).
    evicted: tuple[bytes, ...] = ()


class Waiting(NamedTuple):
    """Why a pooled transaction is not in the next block: a stable reason, and in words."""

    reason: Reason
    message: str
    #: The nonce the obstacle is at: the transaction's own, an earlier one of its sender's, or the missing one.
    nonce: int


#: What waiting for room in the pool is dropped with after the lifetime: the room may still come.
_ROOM: Final = frozenset({Reason.ACCOUNT_LIMIT, Reason.POOL_FULL})


@dataclass(frozen=True, slots=True)
class Dropped:
    """A pooled transaction removed without being included, and why."""

    hash: bytes
    reason: Reason


@dataclass(frozen=True, slots=True)
class MempoolStats:
    pending: int
    queued: int
    #: Senders the pool holds an account record for.
    senders: int
    #: Accepted adds, replacements included.
    adds: int
    replacements: int
    evictions: int
    promotions: int
    #: Transactions removed because a sealed block included them.
    included: int
    rejects: Mapping[Reason, int]
    drops: Mapping[Reason, int]


class MempoolRejected(Exception):
    """An add refused by a pool rule; ``reason`` is stable (its gRPC status: ``reason.status``)."""

    reason: Reason
    message: str

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message)  # args kept: the exception pickles
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


#: add_many's per-item result.
AddOutcome: TypeAlias = AddResult | MempoolRejected


class _Entry:
    """A pooled transaction with what the pool derived at arrival. Compared by identity; never
    changed once made (a plain slots class: one is built per add, a frozen dataclass costs 2x)."""

    __slots__ = ("arrived", "cost", "seq", "tx")

    def __init__(self, tx: Transaction, seq: int, arrived: float, cost: int) -> None:
        self.tx = tx
        #: Arrival order, unique: the tie-break everywhere.
        self.seq = seq
        #: The caller's clock at add: queued expiry counts from it.
        self.arrived = arrived
        #: value + gas_limit * max_fee_per_gas: the most it can take from the balance.
        self.cost = cost


class _Sender:
    """One sender's account view and transactions. Pending = nonces [nonce, pending_end), all present."""

    __slots__ = ("balance", "nonce", "pending_cost", "pending_end", "queued_cost", "top", "txs")

    def __init__(self, nonce: int, balance: int) -> None:
        self.nonce = nonce
        self.balance = balance
        self.txs: dict[int, _Entry] = {}
        self.pending_end = nonce
        self.pending_cost = 0
        self.queued_cost = 0
        #: Highest nonce held (nonce - 1 when empty): the queued tail when >= pending_end.
        self.top = nonce - 1

    @property
    def pending_count(self) -> int:
        return self.pending_end - self.nonce

    @property
    def queued_count(self) -> int:
        return len(self.txs) - (self.pending_end - self.nonce)


#: Eviction heap item: (effective tip at the pool's base fee, max fee, -seq, entry); the cheapest,
#: then the newest, is at the top. seq is unique, so entries are never compared.
_EvictItem: TypeAlias = tuple[int, int, int, _Entry]
#: select()'s heap item: (the policy priority's two ints, seq, sender, entry).
_SelectItem: TypeAlias = tuple[int, int, int, _Sender, _Entry]

_NO_HASHES: Final[tuple[bytes, ...]] = ()
_NO_ACCOUNT: Final = AccountState(0, 0)


configure_pool(_Sender, _Entry, AddResult, TxStatus.PENDING, _NO_HASHES)


def _evict_item(entry: _Entry, base_fee: int) -> _EvictItem:
    tx = entry.tx
    fee_cap = tx.max_fee_per_gas
    return (min(tx.max_priority_fee_per_gas, fee_cap - base_fee), fee_cap, -entry.seq, entry)


class Mempool:
    """Pending and queued transactions per sender, geth's limits, and block selection by policy."""

    #: on_block's common case in C (``protocol.settle_included``): a sealed block took a sender's
    #: whole pending run and the pool holds nothing else of it, so the record goes, as ``_reset``
    #: would do it. A class attribute, so a test's pool can run ``_reset`` alone and compare.
    _settle_included = staticmethod(settle_included)
    #: select in C (``protocol.select_pending``: the same heap, FeePriority's priority computed there,
    #: any other policy's called); the Python below is what a test's pool compares it with.
    _select_pending: Callable[..., list[Transaction] | None] = staticmethod(select_pending)

    def __init__(
        self,
        config: MempoolConfig | None = None,
        *,
        policy: OrderingPolicy | None = None,
        account_state: AccountStateFn | None = None,
        base_fee: int = 0,
    ) -> None:
        """``account_state`` looks up unseen senders; without it they start at nonce 0, balance 0 and
        the pool keeps every account :meth:`set_account` / :meth:`on_block` told it about."""
        self._config = config if config is not None else MempoolConfig()
        self._policy: OrderingPolicy = policy if policy is not None else FeePriority()
        self._state_fn = account_state
        self._base_fee = base_fee
        self._senders: dict[bytes, _Sender] = {}
        self._by_hash: dict[bytes, _Entry] = {}
        self._pending_total = 0
        self._queued_total = 0
        self._seq = 0
        # Senders with a promotable tx held back only by global_slots, promoted first-come.
        self._starved: dict[bytes, None] = {}
        # Eviction candidates (class tails), kept up to date by add() only while live; anything
        # else (a new base fee, a block, a drop) just kills them, and the next eviction rebuilds.
        self._evict_pending: list[_EvictItem] = []
        self._evict_queued: list[_EvictItem] = []
        self._heaps_live = False
        self._adds = 0
        self._replacements = 0
        self._evictions = 0
        self._promotions = 0
        self._included = 0
        self._rejects: Counter[Reason] = Counter()
        self._drops: Counter[Reason] = Counter()

    # ------------------------------------------------------------------ queries

    @property
    def config(self) -> MempoolConfig:
        return self._config

    @property
    def policy(self) -> OrderingPolicy:
        return self._policy

    @property
    def base_fee(self) -> int:
        """The base fee eviction prices against: the latest one :meth:`on_block` was given."""
        return self._base_fee

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    def get(self, tx_hash: bytes) -> Transaction | None:
        entry = self._by_hash.get(tx_hash)
        return entry.tx if entry is not None else None

    def status(self, tx_hash: bytes) -> TxStatus | None:
        entry = self._by_hash.get(tx_hash)
        if entry is None:
            return None
        return TxStatus.PENDING if entry.tx.nonce < self._senders[entry.tx.sender].pending_end else TxStatus.QUEUED

    def waiting(self, tx_hash: bytes) -> Waiting | None:
        """Why the pooled ``tx_hash`` is not in the next block; None if it is executable now (or
        not pooled). O(its sender's transactions): for status queries, not the hot path."""
        entry = self._by_hash.get(tx_hash)
        if entry is None:
            return None
        return self._why_waits(self._senders[entry.tx.sender], entry.tx.nonce)

    def waits_on_base_fee(self) -> bool:
        """Whether a sender's next executable transaction has a fee cap under the base fee: only a
        lower base fee (empty blocks, EIP-1559's decay) lets it in. O(senders)."""
        base_fee = self._base_fee
        return any(acct.pending_end > acct.nonce and acct.txs[acct.nonce].tx.max_fee_per_gas < base_fee
                   for acct in self._senders.values())

    def account(self, sender: bytes) -> AccountState | None:
        """The pool's view of ``sender``, if it holds a record for it."""
        acct = self._senders.get(sender)
        return AccountState(acct.nonce, acct.balance) if acct is not None else None

    def senders(self) -> tuple[bytes, ...]:
        return tuple(self._senders)

    def pending_count(self, sender: bytes) -> int:
        acct = self._senders.get(sender)
        return acct.pending_count if acct is not None else 0

    def queued_count(self, sender: bytes) -> int:
        acct = self._senders.get(sender)
        return acct.queued_count if acct is not None else 0

    def pending(self, sender: bytes) -> tuple[Transaction, ...]:
        """``sender``'s executable transactions in nonce order."""
        acct = self._senders.get(sender)
        if acct is None:
            return ()
        return tuple(acct.txs[n].tx for n in range(acct.nonce, acct.pending_end))

    def queued(self, sender: bytes) -> tuple[Transaction, ...]:
        """``sender``'s queued transactions in nonce order."""
        acct = self._senders.get(sender)
        if acct is None:
            return ()
        return tuple(acct.txs[n].tx for n in sorted(acct.txs) if n >= acct.pending_end)

    def statistics(self) -> MempoolStats:
        return MempoolStats(
            pending=self._pending_total,
            queued=self._queued_total,
            senders=len(self._senders),
            adds=self._adds,
            replacements=self._replacements,
            evictions=self._evictions,
            promotions=self._promotions,
            included=self._included,
            rejects=MappingProxyType(dict(self._rejects)),
            drops=MappingProxyType(dict(self._drops)),
        )

    # ------------------------------------------------------------------ adding

    def add(self, tx: Transaction, now: float) -> AddResult:
        """Admit ``tx`` at time ``now`` (seconds, any clock the caller keeps), or raise MempoolRejected."""
        outcome = self._add(tx, now)
        if isinstance(outcome, MempoolRejected):
            raise outcome
        return outcome

    def add_many(self, txs: Iterable[Transaction], now: float) -> list[AddOutcome]:
        """:meth:`add` each in order; one AddResult or MempoolRejected (not raised) per item.

        The common add (a new pending transaction at its sender's next nonce, within every limit,
        nothing queued behind it: the pending branch of ``_add`` that evicts and promotes nothing)
        runs in C, ``protocol.add_pending``, up to the first that is not one; ``_add`` takes that
        one, then C goes on. The same pool either way: tests/sequencer/test_mempool_native.py."""
        txs = txs if isinstance(txs, list) else list(txs)
        out: list[AddOutcome] = []
        cfg = self._config
        index, count = 0, len(txs)
        while index < count:
            if not self._heaps_live:  # (live eviction heaps take a push per add: Python's path)
                index = add_pending(self, self._senders, self._by_hash, self._state_fn, txs, index, now, out,
                                    cfg.min_tip, cfg.block_gas_limit, cfg.account_slots, cfg.max_tx_size,
                                    cfg.global_slots)
                if index == count:
                    break
            out.append(self._add(txs[index], now))
            index += 1
        return out

    def _add(self, tx: Transaction, now: float) -> AddOutcome:
        # The hot path (SendRawTransactions): the pool's own static limits first, then one dict lookup
        # per sender; the only loops are over one sender's queue (<= account_queue) on rare branches.
        # What the decoder checked (fee cap >= tip, intrinsic gas, the protocol's limits) is not
        # checked again: every transaction here passed decode_transaction.
        tx_hash = tx.hash
        if tx_hash in self._by_hash:
            return self._reject(Reason.ALREADY_KNOWN, "transaction already in the pool")
        cfg = self._config
        tip = tx.max_priority_fee_per_gas
        fee_cap = tx.max_fee_per_gas
        if tip < cfg.min_tip:
            return self._reject(Reason.UNDERPRICED, f"max_priority_fee_per_gas {tip} < pool minimum {cfg.min_tip}")
        gas = tx.gas_limit
        if gas > cfg.block_gas_limit:
            return self._reject(Reason.GAS_LIMIT_ABOVE_BLOCK,
                                f"gas_limit {gas} > block gas limit {cfg.block_gas_limit}: no block can hold it")
        if len(tx.raw) > cfg.max_tx_size:
            return self._reject(Reason.OVERSIZED, f"{len(tx.raw)} bytes > {cfg.max_tx_size}")

        sender = tx.sender
        acct = self._senders.get(sender)
        fresh = acct is None
        if acct is None:
            acct = self._load(sender)
        nonce = tx.nonce
        if nonce < acct.nonce:
            return self._reject(Reason.NONCE_TOO_LOW, f"nonce {nonce} < account nonce {acct.nonce}")
        cost = tx.value + gas * fee_cap
        old = acct.txs.get(nonce)
        if old is not None:
            return self._replace(sender, acct, old, tx, cost, now)

        evicted = _NO_HASHES
        waits_for_slot = False
        if nonce == acct.pending_end and nonce - acct.nonce < cfg.account_slots:
            if acct.pending_cost + cost > acct.balance:
                return self._insufficient(acct, acct.pending_cost, cost)
            if self._pending_total >= cfg.global_slots:
                victim = self._evict_for(tx, TxStatus.PENDING)
                if victim is None:
                    waits_for_slot = True
                else:
                    evicted = (victim,)
            if not waits_for_slot:
                entry = _Entry(tx, self._seq, now, cost)
                self._seq += 1
                acct.txs[nonce] = entry
                self._by_hash[tx_hash] = entry
                acct.pending_end = nonce + 1
                acct.pending_cost += cost
                self._pending_total += 1
                self._adds += 1
                if fresh:
                    self._senders[sender] = acct
                if nonce < acct.top:
                    self._promote(sender, acct)  # the queued continuation may follow it now
                else:
                    acct.top = nonce
                if self._heaps_live:
                    heapq.heappush(self._evict_pending, _evict_item(acct.txs[acct.pending_end - 1], self._base_fee))
                return AddResult(tx_hash, TxStatus.PENDING, None, evicted)
        elif nonce - acct.pending_end > cfg.max_nonce_gap:
            return self._reject(
                Reason.NONCE_GAP_TOO_LARGE,
                f"nonce {nonce} is {nonce - acct.pending_end} beyond the next executable nonce {acct.pending_end} "
                f"(max {cfg.max_nonce_gap})",
            )

        # Queued: behind a gap, beyond the sender's slots, or waiting for a global slot.
        if acct.queued_count >= cfg.account_queue:
            return self._reject(Reason.ACCOUNT_LIMIT, f"sender already has {cfg.account_queue} queued transactions")
        earlier = acct.pending_cost + (acct.queued_cost if nonce > acct.top else self._queued_cost_below(acct, nonce))
        if earlier + cost > acct.balance:
            return self._insufficient(acct, earlier, cost)
        if self._queued_total >= cfg.global_queue:
            victim = self._evict_for(tx, TxStatus.QUEUED)
            if victim is None:
                return self._reject(Reason.POOL_FULL, "the pool is full and this transaction pays no more than any")
            evicted = (*evicted, victim)
        entry = _Entry(tx, self._seq, now, cost)
        self._seq += 1
        acct.txs[nonce] = entry
        self._by_hash[tx_hash] = entry
        acct.queued_cost += cost
        self._queued_total += 1
        self._adds += 1
        if fresh:
            self._senders[sender] = acct
        if waits_for_slot:
            self._starved[sender] = None
        if nonce > acct.top:
            acct.top = nonce
            if self._heaps_live:
                heapq.heappush(self._evict_queued, _evict_item(entry, self._base_fee))
        return AddResult(tx_hash, TxStatus.QUEUED, None, evicted)

    def _replace(self, sender: bytes, acct: _Sender, old: _Entry, tx: Transaction, cost: int, now: float) -> AddOutcome:
        # geth: both fee fields strictly higher and each at least price_bump% above; exact integers.
        bump = 100 + self._config.price_bump_percent
        was = old.tx
        if not (
            tx.max_fee_per_gas > was.max_fee_per_gas
            and tx.max_priority_fee_per_gas > was.max_priority_fee_per_gas
            and tx.max_fee_per_gas * 100 >= was.max_fee_per_gas * bump
            and tx.max_priority_fee_per_gas * 100 >= was.max_priority_fee_per_gas * bump
        ):
            return self._reject(
                Reason.REPLACEMENT_UNDERPRICED,
                f"replacing nonce {tx.nonce} needs both max_fee_per_gas >= {-(-was.max_fee_per_gas * bump // 100)} "
                f"and max_priority_fee_per_gas >= {-(-was.max_priority_fee_per_gas * bump // 100)} "
                f"(+{self._config.price_bump_percent}%)",
            )
        nonce = tx.nonce
        pending = nonce < acct.pending_end
        # Everything before this nonce must execute first; a pending one must also leave the rest of the run affordable.
        earlier = acct.pending_cost - old.cost if pending else acct.pending_cost + self._queued_cost_below(acct, nonce)
        if earlier + cost > acct.balance:
            return self._insufficient(acct, earlier, cost)
        entry = _Entry(tx, self._seq, now, cost)
        self._seq += 1
        acct.txs[nonce] = entry
        del self._by_hash[was.hash]
        self._by_hash[tx.hash] = entry
        if pending:
            acct.pending_cost += cost - old.cost
        else:
            acct.queued_cost += cost - old.cost
        self._adds += 1
        self._replacements += 1
        if cost < old.cost:
            self._promote(sender, acct)  # cheaper: a later nonce may be affordable now
        if self._heaps_live:
            self._push_tails(acct)
        status = TxStatus.PENDING if nonce < acct.pending_end else TxStatus.QUEUED
        return AddResult(tx.hash, status, was.hash, _NO_HASHES)

    def _reject(self, reason: Reason, message: str) -> MempoolRejected:
        self._rejects[reason] += 1
        return MempoolRejected(reason, message)

    def _insufficient(self, acct: _Sender, earlier: int, cost: int) -> MempoolRejected:
        return self._reject(
            Reason.INSUFFICIENT_FUNDS,
            f"balance {acct.balance} < {earlier + cost} (value + gas_limit * max_fee_per_gas = {cost}, "
            f"plus {earlier} for the sender's earlier pooled transactions)",
        )

    def _load(self, sender: bytes) -> _Sender:
        state = self._state_fn(sender) if self._state_fn is not None else _NO_ACCOUNT
        return _Sender(state.nonce, state.balance)

    @staticmethod
    def _queued_cost_below(acct: _Sender, nonce: int) -> int:
        end = acct.pending_end
        return sum(e.cost for n, e in acct.txs.items() if end <= n < nonce)

    # ------------------------------------------------------------------ selection

    def select(self, base_fee: int, gas_limit: int, max_count: int) -> list[Transaction]:
        """A block's worth of pending transactions in policy order, each sender in nonce order.

        Pure: the pool is unchanged until :meth:`on_block`. A sender's next transaction is
        offered only after its previous one was taken; a transaction whose max fee is below
        ``base_fee``, or that no longer fits ``gas_limit``, ends its sender's run for this block
        (it stays pooled). One heap across senders: O(senders + taken * log senders).
        """
        policy = self._policy
        chosen = self._select_pending(self._senders, policy.priority, type(policy) is FeePriority, base_fee,
                                      gas_limit, max_count, MIN_TX_GAS)
        if chosen is not None:
            return chosen
        priority = policy.priority
        # Items are the priority's two ints flattened, then seq: ordered exactly as (priority, seq)
        # but compared in one tuple, not two (the heap compares ~2 log n items per pop).
        heap: list[_SelectItem] = []
        for acct in self._senders.values():
            if acct.pending_end > acct.nonce:
                head = acct.txs[acct.nonce]
                first, second = priority(head.tx, head.seq, base_fee)
                heap.append((first, second, head.seq, acct, head))
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        taken: list[Transaction] = []
        gas_left = gas_limit
        while heap and len(taken) < max_count and gas_left >= MIN_TX_GAS:
            acct, entry = pop(heap)[3:]
            tx = entry.tx
            if tx.max_fee_per_gas < base_fee or tx.gas_limit > gas_left:
                continue
            taken.append(tx)
            gas_left -= tx.gas_limit
            following = tx.nonce + 1
            if following < acct.pending_end:
                nxt = acct.txs[following]
                first, second = priority(nxt.tx, nxt.seq, base_fee)
                push(heap, (first, second, nxt.seq, acct, nxt))
        return taken

    # ------------------------------------------------------------------ account and block updates

    def set_account(self, sender: bytes, nonce: int, balance: int) -> tuple[Dropped, ...]:
        """Tell the pool ``sender``'s state; stale transactions go, the rest is re-checked and promoted."""
        acct = self._senders.get(sender)
        if acct is None:
            if self._state_fn is None:
                self._senders[sender] = _Sender(nonce, balance)
            return ()
        self._kill_heaps()
        dropped: list[Dropped] = []
        self._reset(sender, acct, nonce, balance, frozenset(), dropped)
        self._trim_global_queue(dropped)
        self._feed_starved()
        self._kill_heaps()
        return tuple(dropped)

    def on_block(
        self, included: Iterable[Transaction], accounts: Mapping[bytes, _NonceAndBalance], base_fee: int
    ) -> tuple[Dropped, ...]:
        """After a block is sealed: remove ``included``, apply ``accounts``, price against ``base_fee``.

        ``accounts`` should hold every account the block changed (senders, recipients, the fee
        vault...); those the pool holds nothing for are ignored when it has an ``account_state``
        callable. A sender of an included transaction missing from it is looked up with the
        callable, or else has its nonce moved past that transaction with its balance unchanged.
        Returns what was dropped: stale nonces (another transaction took the nonce), queue
        overflows after a demotion (the balance fell).
        """
        self._base_fee = base_fee
        self._kill_heaps()
        hashes: set[bytes] = set()
        floor: dict[bytes, int] = {}  # an included tx proves its sender's nonce moved past it
        for tx in included:
            hashes.add(tx.hash)
            if tx.nonce >= floor.get(tx.sender, 0):
                floor[tx.sender] = tx.nonce + 1
        dropped: list[Dropped] = []
        items = list(accounts.items())
        index, count = 0, len(items)
        while index < count:
            if self._state_fn is not None:  # the common case in C, up to the first that is not it
                index = self._settle_included(self, self._senders, self._by_hash, self._starved, items, index, floor,
                                              hashes)
                if index == count:
                    break
            sender, state = items[index]
            index += 1
            acct = self._senders.get(sender)
            if acct is None:
                if self._state_fn is None:
                    self._senders[sender] = _Sender(max(state.nonce, floor.get(sender, 0)), state.balance)
                continue
            self._reset(sender, acct, max(state.nonce, floor.get(sender, 0)), state.balance, hashes, dropped)
        for sender, next_nonce in floor.items():
            if sender in accounts:
                continue
            acct = self._senders.get(sender)
            if acct is None:
                continue
            state = self._state_fn(sender) if self._state_fn is not None else AccountState(next_nonce, acct.balance)
            self._reset(sender, acct, max(state.nonce, next_nonce), state.balance, hashes, dropped)
        self._trim_global_queue(dropped)
        self._feed_starved()
        self._kill_heaps()
        return tuple(dropped)

    def drop(self, tx_hash: bytes, reason: Reason) -> tuple[Dropped, ...]:
        """Remove a pooled transaction (e.g. it failed in execution). Its sender's later pending
        transactions lose their predecessor and go back to queued; returns everything dropped."""
        entry = self._by_hash.get(tx_hash)
        if entry is None:
            return ()
        sender = entry.tx.sender
        acct = self._senders[sender]
        self._kill_heaps()
        self._remove(acct, entry)
        self._drops[reason] += 1
        dropped = [Dropped(tx_hash, reason)]
        self._trim_account_queue(acct, dropped)
        self._prune(sender, acct)
        self._trim_global_queue(dropped)
        self._feed_starved()
        self._kill_heaps()
        return tuple(dropped)

    def expire(self, now: float) -> tuple[Dropped, ...]:
        """Drop what has waited longer than ``lifetime`` by ``now`` and still cannot be in the next
        block, with why (:meth:`waiting`'s reason): a fee cap under the base fee (pending or not),
        a nonce gap, funds that do not cover it; EXPIRED when it waited for room in the pool.

        A pending transaction held only by an earlier one of its sender's stays until that one
        goes (then it is behind a gap). A replacement restarts the wait.
        """
        cutoff = now - self._config.lifetime
        dropped: list[Dropped] = []
        for sender, acct in list(self._senders.items()):
            stale = sorted(n for n, e in acct.txs.items() if e.arrived < cutoff)
            for n in stale:  # nonce order: dropping one leaves the later ones behind a gap
                why = self._why_waits(acct, n)
                if why is None or (n < acct.pending_end and why.nonce != n):
                    continue
                if not dropped:
                    self._kill_heaps()
                reason = Reason.EXPIRED if why.reason in _ROOM else why.reason
                entry = acct.txs[n]
                self._remove(acct, entry)
                self._drops[reason] += 1
                dropped.append(Dropped(entry.tx.hash, reason))
            if stale:
                self._trim_account_queue(acct, dropped)
            self._prune(sender, acct)
        if dropped:
            self._trim_global_queue(dropped)
            self._feed_starved()
            self._kill_heaps()
        return tuple(dropped)

    def _why_waits(self, acct: _Sender, nonce: int) -> Waiting | None:
        """Why ``acct``'s pooled ``nonce`` is not executable at the pool's base fee; None if it is."""
        txs, end, base_fee = acct.txs, acct.pending_end, self._base_fee
        # Its pending run up to it: the first fee cap under the base fee holds it and all after it.
        for n in range(acct.nonce, min(nonce + 1, end)):
            fee_cap = txs[n].tx.max_fee_per_gas
            if fee_cap < base_fee:
                held = "" if n == nonce else f" (nonce {n}, before it)"
                return Waiting(Reason.FEE_CAP_BELOW_BASE_FEE, f"fee cap {fee_cap} under base fee {base_fee}{held}", n)
        if nonce < end:
            return None
        # Queued: what keeps the sender's first queued nonce (``end``) from being promoted keeps it too.
        head = txs.get(end)
        if head is None:
            return Waiting(Reason.NONCE_GAP, f"nonce gap: account nonce {acct.nonce}, waiting for nonce {end}", end)
        if end - acct.nonce >= self._config.account_slots:
            return Waiting(Reason.ACCOUNT_LIMIT, f"the sender has {self._config.account_slots} executable "
                           "transactions already (account_slots): waiting for a block to take one", end)
        if acct.pending_cost + head.cost > acct.balance:
            return Waiting(Reason.INSUFFICIENT_FUNDS, f"balance {acct.balance} does not cover nonce {end} "
                           f"({head.cost}) after {acct.pending_cost} for the earlier ones", end)
        return Waiting(Reason.POOL_FULL, "waiting for a free slot in the pool (global_slots)", end)

    # ------------------------------------------------------------------ internals

    def _reset(
        self,
        sender: bytes,
        acct: _Sender,
        nonce: int,
        balance: int,
        included: frozenset[bytes] | set[bytes],
        dropped: list[Dropped],
    ) -> None:
        """Apply a new nonce and balance to ``acct`` and restore its invariants; heaps must be dead."""
        txs = acct.txs
        if nonce < acct.nonce:
            # The chain went back (never expected of our own L2): nothing held is executable now.
            self._demote_from(acct, acct.nonce)
            acct.pending_end = nonce
        elif nonce > acct.nonce and txs:
            # Usually just the head of the pending run, which the block included.
            gone = range(acct.nonce, nonce) if nonce - acct.nonce <= len(txs) else sorted(n for n in txs if n < nonce)
            end = acct.pending_end
            for n in gone:
                entry = txs.pop(n, None)
                if entry is None:
                    continue
                tx_hash = entry.tx.hash
                del self._by_hash[tx_hash]
                if n < end:
                    acct.pending_cost -= entry.cost
                    self._pending_total -= 1
                else:
                    acct.queued_cost -= entry.cost
                    self._queued_total -= 1
                if tx_hash in included:
                    self._included += 1
                else:
                    self._drops[Reason.NONCE_TOO_LOW] += 1
                    dropped.append(Dropped(tx_hash, Reason.NONCE_TOO_LOW))
            if not txs and self._state_fn is not None:
                # The usual end of a sender's visit: its run included, nothing left. What follows
                # would promote nothing, trim nothing and forget the record: forget it now.
                self._prune(sender, acct)
                return
        acct.nonce = nonce
        acct.balance = balance
        if acct.pending_end < nonce:
            acct.pending_end = nonce
        if not txs:
            acct.top = nonce - 1
        if acct.pending_cost > balance:
            # The balance fell: keep the affordable prefix of the run; the rest goes back to queued
            # and returns with the balance.
            end = nonce
            cost = txs[end].cost
            while cost <= balance:
                end += 1
                cost += txs[end].cost
            self._demote_from(acct, end)
        self._promote(sender, acct)
        self._trim_account_queue(acct, dropped)
        self._prune(sender, acct)

    def _promote(self, sender: bytes, acct: _Sender) -> None:
        """Move ``acct``'s queued continuation to pending while slots, balance and nonces allow."""
        txs = acct.txs
        end = acct.pending_end
        limit = acct.nonce + self._config.account_slots
        room = self._config.global_slots - self._pending_total
        cost = acct.pending_cost
        moved = 0
        while end < limit:
            entry = txs.get(end)
            if entry is None or cost + entry.cost > acct.balance:
                break
            if moved >= room:
                self._starved[sender] = None
                break
            cost += entry.cost
            end += 1
            moved += 1
        if moved:
            acct.queued_cost -= cost - acct.pending_cost
            acct.pending_cost = cost
            acct.pending_end = end
            self._pending_total += moved
            self._queued_total -= moved
            self._promotions += moved

    def _feed_starved(self) -> None:
        """Hand freed global slots to senders that were waiting for one, first come first."""
        while self._starved and self._pending_total < self._config.global_slots:
            sender = next(iter(self._starved))
            del self._starved[sender]
            self._promote(sender, self._senders[sender])  # _prune unmarks; re-marked if slots run out

    def _remove(self, acct: _Sender, entry: _Entry) -> None:
        """Take one transaction out; a pending one demotes the rest of its sender's run to queued."""
        nonce = entry.tx.nonce
        del acct.txs[nonce]
        del self._by_hash[entry.tx.hash]
        if nonce < acct.pending_end:
            self._demote_from(acct, nonce + 1)
            acct.pending_end = nonce
            acct.pending_cost -= entry.cost
            self._pending_total -= 1
        else:
            acct.queued_cost -= entry.cost
            self._queued_total -= 1
        if nonce == acct.top:
            acct.top = max(acct.txs, default=acct.nonce - 1)

    def _demote_from(self, acct: _Sender, start: int) -> None:
        """Move the pending run's nonces from ``start`` on to queued."""
        count = acct.pending_end - start
        if count <= 0:
            return
        moved = sum(acct.txs[n].cost for n in range(start, acct.pending_end))
        acct.pending_end = start
        acct.pending_cost -= moved
        acct.queued_cost += moved
        self._pending_total -= count
        self._queued_total += count

    def _trim_account_queue(self, acct: _Sender, dropped: list[Dropped]) -> None:
        """Drop the highest nonces while a demotion left more than account_queue queued (geth does so too)."""
        while acct.queued_count > self._config.account_queue:
            entry = acct.txs[acct.top]
            self._remove(acct, entry)
            self._drops[Reason.ACCOUNT_LIMIT] += 1
            dropped.append(Dropped(entry.tx.hash, Reason.ACCOUNT_LIMIT))

    def _trim_global_queue(self, dropped: list[Dropped]) -> None:
        """Evict the cheapest queued tails while demotions left more than global_queue queued."""
        while self._queued_total > self._config.global_queue:
            found = self._cheapest(TxStatus.QUEUED, None, None)
            if found is None:  # unreachable: queued_total > 0 means some sender has a queued tail
                break
            acct, entry = found
            self._evict(acct, entry)
            dropped.append(Dropped(entry.tx.hash, Reason.EVICTED))

    def _prune(self, sender: bytes, acct: _Sender) -> None:
        # With a callable the node's state is the source of truth, so empty records are not kept.
        if not acct.txs and self._state_fn is not None:
            del self._senders[sender]
            self._starved.pop(sender, None)

    # --- eviction

    def _evict_for(self, tx: Transaction, klass: TxStatus) -> bytes | None:
        """Evict the cheapest tail of class ``klass`` of another sender if ``tx`` pays more; its hash."""
        fee_cap = tx.max_fee_per_gas
        price = (min(tx.max_priority_fee_per_gas, fee_cap - self._base_fee), fee_cap)
        found = self._cheapest(klass, tx.sender, price)
        if found is None:
            return None
        acct, entry = found
        self._evict(acct, entry)
        return entry.tx.hash

    def _evict(self, acct: _Sender, entry: _Entry) -> None:
        self._remove(acct, entry)
        self._evictions += 1
        self._drops[Reason.EVICTED] += 1
        self._push_tails(acct)
        self._prune(entry.tx.sender, acct)

    def _cheapest(
        self, klass: TxStatus, exclude: bytes | None, below: tuple[int, int] | None
    ) -> tuple[_Sender, _Entry] | None:
        """Pop the cheapest live tail of ``klass`` not sent by ``exclude`` and priced under ``below``."""
        pending = klass is TxStatus.PENDING
        heap = self._evict_pending if pending else self._evict_queued
        live = self._pending_total if pending else self._queued_total
        if not self._heaps_live or len(heap) > 2 * live + 64:
            self._rebuild_heaps()
            heap = self._evict_pending if pending else self._evict_queued
        skipped: list[_EvictItem] = []
        found: tuple[_Sender, _Entry] | None = None
        while heap:
            item = heap[0]
            entry = item[3]
            acct = self._senders.get(entry.tx.sender)
            if acct is None or not self._is_tail(acct, entry, pending):
                heapq.heappop(heap)  # stale: replaced, removed, or no longer its class's tail
            elif entry.tx.sender == exclude:
                skipped.append(heapq.heappop(heap))
            else:
                if below is None or (item[0], item[1]) < below:
                    heapq.heappop(heap)
                    found = (acct, entry)
                break
        for item in skipped:
            heapq.heappush(heap, item)
        return found

    @staticmethod
    def _is_tail(acct: _Sender, entry: _Entry, pending: bool) -> bool:
        nonce = entry.tx.nonce
        if acct.txs.get(nonce) is not entry:
            return False
        if pending:
            return nonce == acct.pending_end - 1
        return nonce == acct.top and nonce >= acct.pending_end

    def _push_tails(self, acct: _Sender) -> None:
        if not self._heaps_live:
            return
        if acct.pending_end > acct.nonce:
            heapq.heappush(self._evict_pending, _evict_item(acct.txs[acct.pending_end - 1], self._base_fee))
        if acct.top >= acct.pending_end:
            heapq.heappush(self._evict_queued, _evict_item(acct.txs[acct.top], self._base_fee))

    def _rebuild_heaps(self) -> None:
        base_fee = self._base_fee
        pending: list[_EvictItem] = []
        queued: list[_EvictItem] = []
        for acct in self._senders.values():
            if acct.pending_end > acct.nonce:
                pending.append(_evict_item(acct.txs[acct.pending_end - 1], base_fee))
            if acct.top >= acct.pending_end:
                queued.append(_evict_item(acct.txs[acct.top], base_fee))
        heapq.heapify(pending)
        heapq.heapify(queued)
        self._evict_pending = pending
        self._evict_queued = queued
        self._heaps_live = True

    def _kill_heaps(self) -> None:
        self._heaps_live = False
        self._evict_pending = []
        self._evict_queued = []

    # ------------------------------------------------------------------ checking

    def audit(self) -> None:
        """Check every invariant, O(pool); raises AssertionError. For tests and debugging."""

        def check(ok: bool, what: str) -> None:
            if not ok:
                raise AssertionError(what)

        cfg = self._config
        pending_total = queued_total = 0
        seen = 0
        for sender, acct in self._senders.items():
            txs = acct.txs
            check(acct.nonce <= acct.pending_end, "pending_end behind nonce")
            check(all(n >= acct.nonce for n in txs), "stale nonce held")
            check(all(n in txs for n in range(acct.nonce, acct.pending_end)), "gap in pending")
            check(acct.pending_count <= cfg.account_slots, "account_slots exceeded")
            check(acct.queued_count <= cfg.account_queue, "account_queue exceeded")
            pending_cost = sum(txs[n].cost for n in range(acct.nonce, acct.pending_end))
            check(acct.pending_cost == pending_cost, "pending_cost out of date")
            check(pending_cost <= acct.balance, "pending run not affordable")
            check(acct.queued_cost == sum(e.cost for e in txs.values()) - pending_cost, "queued_cost out of date")
            check(acct.top == max(txs, default=acct.nonce - 1), "top out of date")
            for n, entry in txs.items():
                check(entry.tx.nonce == n and entry.tx.sender == sender, "entry filed wrongly")
                check(self._by_hash.get(entry.tx.hash) is entry, "hash index out of date")
            check(bool(txs) or self._state_fn is None, "empty record kept")
            pending_total += acct.pending_count
            queued_total += acct.queued_count
            seen += len(txs)
        check(seen == len(self._by_hash), "hash index holds strays")
        check(pending_total == self._pending_total, "pending total out of date")
        check(queued_total == self._queued_total, "queued total out of date")
        check(pending_total <= cfg.global_slots, "global_slots exceeded")
        check(queued_total <= cfg.global_queue, "global_queue exceeded")
        check(not self._starved or pending_total == cfg.global_slots, "starved sender while slots are free")
