"""The mempool: geth's txpool rules (nonce order, limits, replacement, eviction, expiry), ordering
policies and block selection, deterministic. Transactions are built directly (the pool does not
check signatures), except in the one test that signs with eth-account."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import grpc
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from protocol import Reason, Transaction
from services.sequencer._mempool import (
    FCFS,
    AccountState,
    AddResult,
    Dropped,
    FeePriority,
    Mempool,
    MempoolConfig,
    MempoolRejected,
    OrderingPolicy,
    TxStatus,
)

RICH = 10**30
FUNDED = AccountState(0, RICH)
GAS = 21_000
_serial = itertools.count()


def addr(i: int) -> bytes:
    return i.to_bytes(20, "big")


A, B, C, D, E = (addr(0xA0 + i) for i in range(5))


def tx(
    sender: bytes,
    nonce: int,
    *,
    tip: int = 2,
    fee: int = 100,
    gas: int = GAS,
    value: int = 0,
    size: int = 110,
) -> Transaction:
    """A transaction with a fake, unique hash: every call is a different transaction."""
    tx_hash = hashlib.sha256(b"%s/%d/%d" % (sender, nonce, next(_serial))).digest()
    return Transaction(
        chain_id=901,
        nonce=nonce,
        max_priority_fee_per_gas=tip,
        max_fee_per_gas=fee,
        gas_limit=gas,
        to=addr(0xEE),
        value=value,
        data=b"",
        access_list=(),
        y_parity=0,
        r=1,
        s=1,
        sender=sender,
        hash=tx_hash,
        raw=b"\x02" + bytes(size - 1),
    )


def cost(t: Transaction) -> int:
    return t.value + t.gas_limit * t.max_fee_per_gas


class Chain:
    """The node's account state at the latest block, as the pool's account_state callable."""

    def __init__(self, default: AccountState = FUNDED) -> None:
        self.accounts: dict[bytes, AccountState] = {}
        self.default = default
        self.lookups: list[bytes] = []

    def __call__(self, sender: bytes) -> AccountState:
        self.lookups.append(sender)
        return self.accounts.get(sender, self.default)


#: What a pending transaction that waited its lifetime is dropped with: what kept it out.
STUCK = {Reason.FEE_CAP_BELOW_BASE_FEE, Reason.NONCE_GAP}


def make(
    config: MempoolConfig | None = None,
    chain: Chain | None = None,
    *,
    policy: OrderingPolicy | None = None,
    base_fee: int = 0,
) -> Mempool:
    return Mempool(config, account_state=chain if chain is not None else Chain(), policy=policy, base_fee=base_fee)


def rejected(pool: Mempool, t: Transaction, now: float = 0.0) -> Reason:
    with pytest.raises(MempoolRejected) as info:
        pool.add(t, now)
    assert t.hash not in pool or info.value.reason is Reason.ALREADY_KNOWN
    return info.value.reason


def nonces(txs: Sequence[Transaction]) -> list[int]:
    return [t.nonce for t in txs]


# --- nonce order, gaps, promotion -------------------------------------------------------------


def test_contiguous_nonces_are_pending_and_a_gap_waits_in_queued_until_filled() -> None:
    pool = make()
    assert pool.add(tx(A, 0), 0).status is TxStatus.PENDING
    assert pool.add(tx(A, 2), 0).status is TxStatus.QUEUED
    assert pool.add(tx(A, 3), 0).status is TxStatus.QUEUED
    assert (nonces(pool.pending(A)), nonces(pool.queued(A))) == ([0], [2, 3])

    assert pool.add(tx(A, 1), 0).status is TxStatus.PENDING
    assert (nonces(pool.pending(A)), pool.queued(A)) == ([0, 1, 2, 3], ())
    assert pool.statistics().promotions == 2
    pool.audit()


def test_a_nonce_below_the_account_nonce_is_refused() -> None:
    chain = Chain()
    chain.accounts[A] = AccountState(5, RICH)
    pool = make(chain=chain)
    assert rejected(pool, tx(A, 4)) is Reason.NONCE_TOO_LOW
    assert pool.add(tx(A, 5), 0).status is TxStatus.PENDING


def test_the_nonce_gap_is_counted_from_the_next_executable_nonce() -> None:
    pool = make()  # max_nonce_gap 64
    for n in range(16):
        pool.add(tx(A, n), 0)
    # 16 pending (the slot cap), so nonce 16 is next: 64 missing nonces are allowed, 65 are not.
    assert pool.add(tx(A, 16 + 64), 0).status is TxStatus.QUEUED
    assert rejected(pool, tx(A, 16 + 65)) is Reason.NONCE_GAP_TOO_LARGE
    assert Reason.NONCE_GAP_TOO_LARGE.status is grpc.StatusCode.RESOURCE_EXHAUSTED


# --- per-account and global limits, eviction ----------------------------------------------------


def test_a_sender_gets_16_executable_slots_and_64_queued() -> None:
    pool = make()
    results = [pool.add(tx(A, n), 0) for n in range(80)]
    assert [r.status for r in results] == [TxStatus.PENDING] * 16 + [TxStatus.QUEUED] * 64
    assert (pool.pending_count(A), pool.queued_count(A)) == (16, 64)
    with pytest.raises(MempoolRejected) as info:
        pool.add(tx(A, 80), 0)
    assert info.value.reason is Reason.ACCOUNT_LIMIT
    assert info.value.reason.status is grpc.StatusCode.RESOURCE_EXHAUSTED

    # A block takes the 16: the next 16 move up.
    pool.on_block(pool.select(0, 10**9, 100), {A: AccountState(16, RICH)}, 0)
    assert (nonces(pool.pending(A)), pool.queued_count(A)) == (list(range(16, 32)), 48)
    pool.audit()


def test_a_full_pending_set_evicts_the_cheapest_tail_of_another_sender() -> None:
    pool = make(MempoolConfig(global_slots=4))
    a0, a1, b0, b1 = tx(A, 0, tip=5), tx(A, 1, tip=5), tx(B, 0, tip=3), tx(B, 1, tip=3)
    pool.add_many([a0, a1, b0, b1], 0)

    result = pool.add(c0 := tx(C, 0, tip=4), 0)
    assert (result.status, result.evicted) == (TxStatus.PENDING, (b1.hash,))
    assert b1.hash not in pool and nonces(pool.pending(B)) == [0]
    stats = pool.statistics()
    assert (stats.pending, stats.evictions, stats.drops[Reason.EVICTED]) == (4, 1, 1)

    # Paying no more than the cheapest tail (b0: 3) evicts nobody: it waits for a slot.
    d0, e0 = tx(D, 0, tip=3), tx(E, 0, tip=3)
    assert pool.add(d0, 0) == AddResult(d0.hash, TxStatus.QUEUED)
    assert pool.add(e0, 0).status is TxStatus.QUEUED
    # A slot frees: the first to wait gets it.
    pool.on_block([c0], {C: AccountState(1, RICH)}, 0)
    assert pool.status(d0.hash) is TxStatus.PENDING and pool.status(e0.hash) is TxStatus.QUEUED
    pool.audit()


def test_eviction_takes_only_tails_and_never_the_senders_own() -> None:
    pool = make(MempoolConfig(global_slots=3))
    a0, a1, b0 = tx(A, 0, tip=1), tx(A, 1, tip=9), tx(B, 0, tip=5)
    pool.add_many([a0, a1, b0], 0)
    # a0 is the cheapest but a1 depends on it: only tails (a1 at 9, b0 at 5) are candidates.
    assert pool.add(tx(C, 0, tip=6), 0).evicted == (b0.hash,)
    assert nonces(pool.pending(A)) == [0, 1]

    # A sender never evicts itself: in a pool full of A's, a2 waits whatever it pays.
    own = make(MempoolConfig(global_slots=2))
    own.add_many([tx(A, 0, tip=1), tx(A, 1, tip=1)], 0)
    assert own.add(a2 := tx(A, 2, tip=1_000, fee=2_000), 0) == AddResult(a2.hash, TxStatus.QUEUED)
    own.audit()


def test_eviction_skips_candidates_that_changed_since() -> None:
    pool = make(MempoolConfig(global_slots=2))
    a0, b0 = tx(A, 0, tip=1), tx(B, 0, tip=2)
    pool.add_many([a0, b0], 0)
    c0 = tx(C, 0, tip=3)
    assert pool.add(c0, 0).evicted == (a0.hash,)
    b0b = tx(B, 0, tip=5, fee=110)
    assert pool.add(b0b, 0).replaced == b0.hash  # b0 (price 2) is now stale in the eviction order
    assert pool.add(tx(D, 0, tip=4), 0).evicted == (c0.hash,)
    pool.audit()


def test_a_freed_slot_goes_to_a_continuation_that_was_waiting_for_one() -> None:
    pool = make(MempoolConfig(global_slots=3))
    a0, a1, a3, b0 = tx(A, 0), tx(A, 1), tx(A, 3), tx(B, 0, tip=1)
    pool.add_many([a0, a1, a3, b0], 0)
    # a2 evicts b0 for a slot; a3 may follow it but no slot is left: it waits.
    assert pool.add(a2 := tx(A, 2, tip=5, fee=200), 0).evicted == (b0.hash,)
    assert (nonces(pool.pending(A)), nonces(pool.queued(A))) == ([0, 1, 2], [3])
    pool.on_block([a0], {A: AccountState(1, RICH)}, 0)
    assert pool.pending(A) == (a1, a2, a3)
    pool.audit()


def test_eviction_prices_at_the_pools_base_fee() -> None:
    pool = make(MempoolConfig(global_slots=1), base_fee=100)
    b0 = tx(B, 0, tip=10, fee=105)  # earns 5 at base fee 100
    pool.add(b0, 0)
    assert pool.add(tx(C, 0, tip=4, fee=300), 0).status is TxStatus.QUEUED  # 4 < 5: it waits
    assert pool.add(tx(D, 0, tip=6, fee=300), 0).evicted == (b0.hash,)  # 6 > 5, though b0's tip cap is 10
    # Equal effective tips: the higher fee cap (more room for the base fee to rise) counts as paying more.
    assert pool.add(tx(E, 0, tip=6, fee=301), 0).evicted != ()


def test_pool_full_when_both_classes_are_full() -> None:
    pool = make(MempoolConfig(global_slots=2, global_queue=1))
    a0, b0, c0 = tx(A, 0, tip=5), tx(B, 0, tip=5), tx(C, 0, tip=5)
    pool.add_many([a0, b0, c0], 0)
    assert pool.status(c0.hash) is TxStatus.QUEUED
    assert rejected(pool, tx(D, 0, tip=5)) is Reason.POOL_FULL
    assert Reason.POOL_FULL.status is grpc.StatusCode.RESOURCE_EXHAUSTED
    # Paying more wins a slot: of the two equally cheap tails the newer (b0) goes.
    assert pool.add(tx(D, 0, tip=6), 0).evicted == (b0.hash,)


def test_a_full_queue_evicts_the_cheapest_queued_tail() -> None:
    pool = make(MempoolConfig(global_queue=2))
    a5, b5 = tx(A, 5, tip=3), tx(B, 5, tip=4)
    pool.add_many([a5, b5], 0)
    assert rejected(pool, tx(C, 5, tip=2)) is Reason.POOL_FULL
    assert pool.add(tx(C, 5, tip=9), 0).evicted == (a5.hash,)
    assert pool.statistics().queued == 2


# --- replacement, duplicates, prices --------------------------------------------------------------


@pytest.mark.parametrize("nonce", [0, 5], ids=["pending", "queued"])
def test_replacement_needs_a_ten_percent_bump_of_both_fees(nonce: int) -> None:
    pool = make()
    old = tx(A, nonce, tip=1_000, fee=10_000)
    pool.add(old, 0)
    assert rejected(pool, tx(A, nonce, tip=1_100, fee=10_999)) is Reason.REPLACEMENT_UNDERPRICED  # fee +9.99%
    assert rejected(pool, tx(A, nonce, tip=1_099, fee=11_000)) is Reason.REPLACEMENT_UNDERPRICED  # tip +9.9%
    assert rejected(pool, tx(A, nonce, tip=5_000, fee=10_000)) is Reason.REPLACEMENT_UNDERPRICED  # fee unchanged
    new = tx(A, nonce, tip=1_100, fee=11_000)  # exactly +10% on both
    result = pool.add(new, 0)
    assert result.replaced == old.hash and result.status is pool.status(new.hash)
    assert (len(pool), pool.get(old.hash), pool.get(new.hash)) == (1, None, new)
    stats = pool.statistics()
    assert (stats.replacements, stats.rejects[Reason.REPLACEMENT_UNDERPRICED]) == (1, 3)
    pool.audit()


def test_replacement_threshold_is_exact_and_configurable() -> None:
    pool = make()
    pool.add(tx(A, 0, tip=15, fee=15), 0)
    # +10% of 15 is 16.5: 16 is refused (geth's integer division would let it through), 17 is enough.
    assert rejected(pool, tx(A, 0, tip=16, fee=17)) is Reason.REPLACEMENT_UNDERPRICED
    assert pool.add(tx(A, 0, tip=17, fee=17), 0).replaced is not None

    strict = make(MempoolConfig(price_bump_percent=25))
    strict.add(tx(A, 0, tip=100, fee=1_000), 0)
    assert rejected(strict, tx(A, 0, tip=124, fee=1_250)) is Reason.REPLACEMENT_UNDERPRICED
    assert strict.add(tx(A, 0, tip=125, fee=1_250), 0).replaced is not None


def test_a_duplicate_is_already_known() -> None:
    pool = make()
    t = tx(A, 0)
    pool.add(t, 0)
    assert rejected(pool, t) is Reason.ALREADY_KNOWN
    assert Reason.ALREADY_KNOWN.status is grpc.StatusCode.ALREADY_EXISTS
    assert pool.statistics().rejects == {Reason.ALREADY_KNOWN: 1}


@pytest.mark.parametrize(
    ("t", "reason"),
    [
        (tx(A, 0, tip=0), Reason.UNDERPRICED),
        (tx(A, 0, tip=4, fee=5), Reason.UNDERPRICED),  # min_tip 5 below
        # The pool's own limits, set below the protocol's (which the decoder enforces: test_tx).
        (tx(A, 0, tip=5, gas=1_000_001), Reason.GAS_LIMIT_ABOVE_BLOCK),
        (tx(A, 0, tip=5, size=4_097), Reason.OVERSIZED),
    ],
)
def test_static_rules(t: Transaction, reason: Reason) -> None:
    pool = make(MempoolConfig(min_tip=5, block_gas_limit=1_000_000, max_tx_size=4_096))
    assert rejected(pool, t) is reason
    assert reason.status in {grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT}
    assert pool.add(tx(A, 0, tip=5, gas=1_000_000, size=4_096), 0).status is TxStatus.PENDING  # at the limits


# --- funds --------------------------------------------------------------------------------------


def test_funds_cover_the_senders_earlier_transactions_too() -> None:
    one = cost(tx(A, 0, value=7))
    chain = Chain()
    chain.accounts[A] = AccountState(0, 3 * one)
    pool = make(chain=chain)
    pool.add(tx(A, 0, value=7), 0)
    pool.add(tx(A, 2, value=7), 0)  # queued behind the gap: counts a0
    pool.add(tx(A, 3, value=7), 0)  # counts a0 and a2: exactly the balance
    with pytest.raises(MempoolRejected) as info:
        pool.add(tx(A, 4, value=7), 0)
    assert info.value.reason is Reason.INSUFFICIENT_FUNDS
    assert info.value.reason.status is grpc.StatusCode.FAILED_PRECONDITION
    # Filling the gap is affordable itself (a0 + a1); the promotion stops where the funds do.
    pool.add(a1 := tx(A, 1, value=7), 0)
    assert (nonces(pool.pending(A)), nonces(pool.queued(A))) == ([0, 1, 2], [3])
    assert pool.statistics().pending == 3
    # A replacement may not raise the pending run's cost beyond the balance either.
    assert rejected(pool, tx(A, 1, tip=3, fee=110, value=7)) is Reason.INSUFFICIENT_FUNDS
    assert a1.hash in pool
    pool.audit()


def test_demotions_beyond_the_global_queue_evict_the_cheapest_queued_tails() -> None:
    pool = make(MempoolConfig(global_queue=2))
    a = [tx(A, n, tip=5) for n in range(3)]
    b5, c5 = tx(B, 5, tip=1), tx(C, 5, tip=9)
    pool.add_many([*a, b5, c5], 0)
    # A can now pay for a0 only: a1 and a2 go back to queued, four queued for two places.
    dropped = pool.set_account(A, 0, cost(a[0]))
    assert dropped == (Dropped(b5.hash, Reason.EVICTED), Dropped(a[2].hash, Reason.EVICTED))
    assert (pool.queued(A), pool.queued(C)) == ((a[1],), (c5,))
    pool.audit()


def test_a_nonce_that_goes_back_leaves_nothing_executable() -> None:
    chain = Chain()
    chain.accounts[A] = AccountState(5, RICH)
    pool = make(chain=chain)
    pool.add_many([tx(A, 5), tx(A, 6)], 0)
    assert pool.set_account(A, 5, RICH) == () and nonces(pool.pending(A)) == [5, 6]
    pool.set_account(A, 3, RICH)  # never expected of our own chain, but kept consistent
    assert (pool.pending(A), nonces(pool.queued(A))) == ((), [5, 6])
    pool.audit()


def test_a_falling_balance_demotes_and_a_rising_one_promotes() -> None:
    txs = [tx(A, n) for n in range(3)]
    one = cost(txs[0])
    pool = make()
    pool.add_many(txs, 0)
    assert pool.set_account(A, 0, one) == ()
    assert (nonces(pool.pending(A)), nonces(pool.queued(A))) == ([0], [1, 2])
    pool.set_account(A, 0, 3 * one)
    assert nonces(pool.pending(A)) == [0, 1, 2]
    pool.audit()


# --- expiry -------------------------------------------------------------------------------------


def test_queued_transactions_expire_after_the_lifetime_saying_why_and_executable_ones_never() -> None:
    pool = make(MempoolConfig(lifetime=100.0))
    a0, a5, a6 = tx(A, 0), tx(A, 5), tx(A, 6)
    pool.add(a0, 0.0)
    pool.add(a5, 0.0)
    pool.add(a6, 50.0)
    assert pool.expire(100.0) == ()  # waited exactly the lifetime: still there
    assert pool.expire(100.5) == (Dropped(a5.hash, Reason.NONCE_GAP),)
    a6b = tx(A, 6, tip=3, fee=110)
    pool.add(a6b, 120.0)  # a replacement restarts the wait
    assert pool.expire(200.0) == ()
    assert pool.expire(220.5) == (Dropped(a6b.hash, Reason.NONCE_GAP),)
    assert pool.expire(1e12) == () and nonces(pool.pending(A)) == [0]
    assert pool.statistics().drops == {Reason.NONCE_GAP: 2}


def test_why_a_transaction_waits() -> None:
    chain = Chain()
    chain.accounts[B] = AccountState(3, RICH)
    pool = make(MempoolConfig(account_slots=2), chain, base_fee=50)
    cheap, behind = tx(A, 0, fee=40), tx(A, 1, fee=100)
    pool.add_many([cheap, behind], 0.0)
    assert pool.waiting(cheap.hash) == (Reason.FEE_CAP_BELOW_BASE_FEE, "fee cap 40 under base fee 50", 0)
    assert pool.waiting(behind.hash) == (
        Reason.FEE_CAP_BELOW_BASE_FEE, "fee cap 40 under base fee 50 (nonce 0, before it)", 0)
    assert pool.waits_on_base_fee()
    gapped = tx(B, 5)
    pool.add(tx(B, 3), 0.0)
    pool.add(gapped, 0.0)
    assert pool.waiting(gapped.hash) == (Reason.NONCE_GAP, "nonce gap: account nonce 3, waiting for nonce 4", 4)
    c = [tx(C, n) for n in range(3)]
    pool.add_many(c, 0.0)
    assert pool.waiting(c[0].hash) is None and pool.waiting(c[1].hash) is None  # executable
    waits = pool.waiting(c[2].hash)
    assert waits is not None and waits.reason is Reason.ACCOUNT_LIMIT
    assert pool.waiting(b"\x00" * 32) is None
    pool.on_block([], {}, 40)  # the base fee fell to the fee cap
    assert pool.waiting(cheap.hash) is None and not pool.waits_on_base_fee()


def test_a_fee_cap_under_the_base_fee_is_dropped_after_the_lifetime_and_its_followers_behind_the_gap() -> None:
    pool = make(MempoolConfig(lifetime=100.0), base_fee=50)
    cheap, behind, fine = tx(A, 0, fee=40), tx(A, 1, fee=100), tx(B, 0, fee=100)
    pool.add_many([cheap, behind, fine], 0.0)
    late = tx(C, 0, fee=40)
    pool.add(late, 60.0)
    assert pool.expire(100.5) == (Dropped(cheap.hash, Reason.FEE_CAP_BELOW_BASE_FEE),
                                  Dropped(behind.hash, Reason.NONCE_GAP))
    assert fine.hash in pool and late.hash in pool  # executable; not waited long enough
    assert pool.statistics().drops == {Reason.FEE_CAP_BELOW_BASE_FEE: 1, Reason.NONCE_GAP: 1}
    pool.audit()


def test_a_pending_one_behind_a_younger_underpriced_one_stays() -> None:
    pool = make(MempoolConfig(lifetime=100.0), base_fee=50)
    first, second = tx(A, 0, fee=40), tx(A, 1, fee=100)
    pool.add_many([first, second], 0.0)
    bumped = tx(A, 0, tip=3, fee=45)
    pool.add(bumped, 90.0)  # a replacement restarts the wait; the one behind it may still go in
    assert pool.expire(150.0) == ()
    assert pool.expire(190.5) == (Dropped(bumped.hash, Reason.FEE_CAP_BELOW_BASE_FEE),
                                  Dropped(second.hash, Reason.NONCE_GAP))
    pool.audit()


def test_an_unaffordable_queued_one_expires_saying_so() -> None:
    chain = Chain()
    a0, a1 = tx(A, 0), tx(A, 1)
    chain.accounts[A] = AccountState(0, cost(a0) + cost(a1))
    pool = make(MempoolConfig(lifetime=10.0), chain)
    pool.add_many([a0, a1], 0.0)
    pool.set_account(A, 0, cost(a0))  # the balance fell: a1 waits for funds
    assert pool.waiting(a1.hash) is not None and pool.waiting(a1.hash).reason is Reason.INSUFFICIENT_FUNDS  # type: ignore[union-attr]
    assert pool.expire(11.0) == (Dropped(a1.hash, Reason.INSUFFICIENT_FUNDS),)


# --- ordering and selection ---------------------------------------------------------------------


def test_fee_priority_takes_the_highest_effective_tip_first_and_ties_by_arrival() -> None:
    a0 = tx(A, 0, tip=5, fee=200)
    b0 = tx(B, 0, tip=10, fee=103)  # earns only 3 at base fee 100
    c0 = tx(C, 0, tip=5, fee=300)  # ties with a0, arrived later
    d0 = tx(D, 0, tip=7, fee=500)
    fee_pool, fcfs_pool = make(), make(policy=FCFS())
    for pool in (fee_pool, fcfs_pool):
        pool.add_many([a0, b0, c0, d0], 0)
    assert fee_pool.select(100, 10**9, 10) == [d0, a0, c0, b0]
    assert fcfs_pool.select(100, 10**9, 10) == [a0, b0, c0, d0]
    assert (fee_pool.policy.name, fcfs_pool.policy.name, FeePriority().name) == ("fee-priority", "fcfs", "fee-priority")


def test_select_keeps_each_senders_nonce_order() -> None:
    a0, a1, b0 = tx(A, 0, tip=1), tx(A, 1, tip=90), tx(B, 0, tip=50)
    for pool in (make(), make(policy=FCFS())):
        pool.add_many([a1, a0, b0], 0)  # a1 arrives first, but needs a0
        chosen = pool.select(0, 10**9, 10)
        assert chosen.index(a0) < chosen.index(a1)
    assert make().select(0, 10**9, 10) == []


def test_select_skips_a_fee_cap_below_the_base_fee_and_keeps_it() -> None:
    pool = make()
    a0, a1, b0 = tx(A, 0, tip=5, fee=90), tx(A, 1, tip=5, fee=900), tx(B, 0, tip=1, fee=101)
    pool.add_many([a0, a1, b0], 0)
    assert pool.select(100, 10**9, 10) == [b0]  # a1 waits for a0
    # At 90, a0 is includable but earns 0: b0 (earns 1) first, then a0, then a1 (earns 5).
    assert a0.hash in pool and pool.select(90, 10**9, 10) == [b0, a0, a1]


def test_select_fills_the_gas_limit_and_max_count() -> None:
    pool = make()
    a0 = tx(A, 0, tip=3, gas=50_000)
    c0, c1 = tx(C, 0, tip=2, gas=30_000), tx(C, 1, tip=2, gas=21_000)
    b0 = tx(B, 0, tip=1, gas=21_000)
    pool.add_many([a0, c0, c1, b0], 0)
    # c0 does not fit after a0: C is done for this block (c1 may not jump it), b0 still fits.
    assert pool.select(0, 75_000, 10) == [a0, b0]
    assert pool.select(0, 60_000, 10) == [a0]
    assert pool.select(0, 10**9, 2) == [a0, c0]
    assert pool.select(0, 10**9, 10) == [a0, c0, c1, b0]  # select is pure: nothing was taken
    assert len(pool) == 4


# --- blocks, drops, accounts --------------------------------------------------------------------


def test_on_block_removes_included_drops_stale_and_promotes() -> None:
    pool = make()
    a0, a1, a3, b0 = tx(A, 0), tx(A, 1), tx(A, 3), tx(B, 0)
    pool.add_many([a0, a1, a3, b0], 0)
    other_b0 = tx(B, 0)  # e.g. a forced inclusion from L1 with the same nonce
    dropped = pool.on_block([a0, a1, other_b0], {A: AccountState(2, RICH), B: AccountState(1, RICH)}, 7)
    assert dropped == (Dropped(b0.hash, Reason.NONCE_TOO_LOW),)
    assert (pool.pending(A), nonces(pool.queued(A)), pool.base_fee) == ((), [3], 7)
    # a2 sealed from elsewhere: a3 becomes executable.
    assert pool.on_block([tx(A, 2)], {A: AccountState(3, RICH)}, 7) == ()
    assert pool.pending(A) == (a3,)
    stats = pool.statistics()
    assert (stats.included, stats.drops, stats.pending, stats.queued) == (2, {Reason.NONCE_TOO_LOW: 1}, 1, 0)
    pool.audit()


def test_on_block_without_an_accounts_entry_moves_the_nonce_past_included() -> None:
    pool = Mempool()  # no callable: the pool keeps what it is told
    pool.set_account(A, 0, RICH)
    a0, a1 = tx(A, 0), tx(A, 1)
    pool.add_many([a0, a1], 0)
    pool.on_block([a0], {}, 0)
    assert pool.account(A) == AccountState(1, RICH) and pool.pending(A) == (a1,)


def test_drop_demotes_the_rest_of_the_senders_run() -> None:
    pool = make()
    a0, a1, a2 = tx(A, 0), tx(A, 1), tx(A, 2)
    pool.add_many([a0, a1, a2], 0)
    assert pool.drop(a1.hash, Reason.NONCE_TOO_LOW) == (Dropped(a1.hash, Reason.NONCE_TOO_LOW),)
    assert (pool.pending(A), pool.queued(A)) == ((a0,), (a2,))
    assert pool.drop(a1.hash, Reason.NONCE_TOO_LOW) == ()
    assert pool.statistics().drops == {Reason.NONCE_TOO_LOW: 1}
    pool.audit()


def test_a_drop_that_overflows_the_senders_queue_drops_the_highest_nonces() -> None:
    pool = make(MempoolConfig(account_slots=4, account_queue=2))
    txs = [tx(A, n) for n in range(6)]  # 4 pending, 2 queued
    pool.add_many(txs, 0)
    dropped = pool.drop(txs[0].hash, Reason.NONCE_TOO_LOW)
    assert dropped == (
        Dropped(txs[0].hash, Reason.NONCE_TOO_LOW),
        Dropped(txs[5].hash, Reason.ACCOUNT_LIMIT),
        Dropped(txs[4].hash, Reason.ACCOUNT_LIMIT),
        Dropped(txs[3].hash, Reason.ACCOUNT_LIMIT),
    )
    assert nonces(pool.queued(A)) == [1, 2]
    pool.audit()


def test_account_state_is_looked_up_once_per_sender_and_forgotten_when_empty() -> None:
    chain = Chain()
    pool = make(chain=chain)
    a0, a1 = tx(A, 0), tx(A, 1)
    pool.add_many([a0, a1], 0)
    assert chain.lookups == [A] and pool.senders() == (A,)
    pool.on_block([a0, a1], {A: AccountState(2, RICH)}, 0)
    assert pool.senders() == () and pool.account(A) is None


def test_without_a_callable_the_pool_keeps_what_it_is_told() -> None:
    pool = Mempool()
    assert pool.account(A) is None
    assert rejected(pool, tx(A, 0)) is Reason.INSUFFICIENT_FUNDS  # unknown: nonce 0, balance 0
    pool.on_block([], {A: AccountState(3, RICH)}, 0)
    pool.set_account(B, 0, RICH)
    assert (pool.account(A), pool.senders()) == (AccountState(3, RICH), (A, B))
    pool.add(b0 := tx(B, 0), 0)
    pool.on_block([b0, tx(C, 0)], {}, 0)  # C is unknown to the pool: nothing to do
    assert pool.account(B) == AccountState(1, RICH) and len(pool) == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"account_slots": 0},
        {"global_queue": 0},
        {"max_nonce_gap": -1},
        {"price_bump_percent": -1},
        {"lifetime": 0.0},
        {"block_gas_limit": 20_999},
    ],
)
def test_config_is_checked(bad: dict[str, int | float]) -> None:
    with pytest.raises(ValueError):
        MempoolConfig(**bad)  # type: ignore[arg-type]


def test_add_many_answers_each_item_in_order() -> None:
    pool = make()
    a0 = tx(A, 0)
    out = pool.add_many([a0, a0, tx(B, 200), tx(A, 1)], 0)
    assert isinstance(out[0], AddResult) and isinstance(out[3], AddResult)
    assert isinstance(out[1], MempoolRejected) and out[1].reason is Reason.ALREADY_KNOWN
    assert isinstance(out[2], MempoolRejected) and out[2].reason is Reason.NONCE_GAP_TOO_LARGE
    assert str(out[1]).startswith("ALREADY_KNOWN: ")
    stats = pool.statistics()
    assert (stats.adds, stats.pending, stats.queued, stats.senders, len(pool)) == (2, 2, 0, 1, 2)
    assert stats.rejects == {Reason.ALREADY_KNOWN: 1, Reason.NONCE_GAP_TOO_LARGE: 1}


def test_the_same_calls_give_the_same_pool() -> None:
    def run() -> list[bytes]:
        pool = make(MempoolConfig(global_slots=8, global_queue=4))
        for i in range(40):
            sender = addr(i % 5)
            pool.add_many([tx(sender, i // 5 + (i % 3 == 0), tip=1 + i % 7, fee=200)], float(i))
        pool.expire(20.0)
        return [t.hash[:0] + bytes([t.nonce]) + t.sender for t in pool.select(50, 10**9, 100)]

    assert run() == run()


def test_a_transaction_signed_by_eth_account_goes_through() -> None:
    from eth_account import Account

    from protocol._tx import decode_transaction

    account = Account.from_key("0x" + "11" * 32)
    fields = {
        "type": 2,
        "chainId": 901,
        "nonce": 0,
        "maxPriorityFeePerGas": 2,
        "maxFeePerGas": 10**9,
        "gas": 21_000,
        "to": Account.from_key("0x" + "22" * 32).address,  # checksummed, as eth-account wants
        "value": 1,
    }
    signed = account.sign_transaction(fields)
    t = decode_transaction(bytes(signed.raw_transaction), 901)
    pool = make()
    assert pool.add(t, 0).hash == bytes(signed.hash)
    assert t.sender == bytes.fromhex(account.address[2:]) and pool.select(10**8, 10**9, 1) == [t]


# --- property: a random life of the pool keeps every invariant --------------------------------

SENDERS = [addr(i) for i in range(1, 5)]
SMALL = MempoolConfig(account_slots=3, account_queue=3, global_slots=5, global_queue=4, max_nonce_gap=3, lifetime=50.0)


class MempoolMachine(RuleBasedStateMachine):
    """Adds, replacements, duplicates, blocks, balance changes, drops and expiry at random, against
    a tiny config so every limit is hit; the chain is modelled here and told to the pool."""

    def __init__(self) -> None:
        super().__init__()
        self.chain = Chain(AccountState(0, 10**8))
        for sender in SENDERS:
            self.chain.accounts[sender] = AccountState(0, 10**8)
        self.pool = Mempool(SMALL, account_state=self.chain, base_fee=10)
        self.now = 0.0

    def pooled(self) -> list[Transaction]:
        return [t for s in SENDERS for t in (*self.pool.pending(s), *self.pool.queued(s))]

    def submit(self, t: Transaction) -> None:
        before = {x.hash for x in self.pooled()}
        (outcome,) = self.pool.add_many([t], self.now)
        after = {x.hash for x in self.pooled()}
        if isinstance(outcome, MempoolRejected):
            assert after == before
            return
        assert self.pool.status(t.hash) is outcome.status
        gone = set(outcome.evicted) | ({outcome.replaced} if outcome.replaced else set())
        assert after == (before - gone) | {t.hash} and not gone & after

    @rule(
        sender=st.sampled_from(SENDERS),
        ahead=st.integers(-1, 9),
        tip=st.integers(0, 20),
        headroom=st.integers(0, 30),
        value=st.integers(0, 3 * 10**7),
        gas=st.sampled_from([21_000, 40_000, 90_000]),
    )
    def add(self, sender: bytes, ahead: int, tip: int, headroom: int, value: int, gas: int) -> None:
        nonce = max(0, self.chain.accounts[sender].nonce + ahead)
        self.submit(tx(sender, nonce, tip=tip, fee=tip + headroom, value=value, gas=gas))

    @rule(sender=st.sampled_from(SENDERS), count=st.integers(1, 5), tip=st.integers(1, 20), skip=st.booleans())
    def add_run(self, sender: bytes, count: int, tip: int, skip: bool) -> None:
        """Several nonces in one go, from the next executable one (or one past it), to reach the limits."""
        first = self.chain.accounts[sender].nonce + self.pool.pending_count(sender) + skip
        for nonce in range(first, first + count):
            self.submit(tx(sender, nonce, tip=tip, fee=tip + 10))

    @precondition(lambda self: len(self.pool) > 0)
    @rule(data=st.data(), percent=st.integers(0, 25), value=st.integers(0, 3 * 10**7))
    def replace(self, data: st.DataObject, percent: int, value: int) -> None:
        old = data.draw(st.sampled_from(self.pooled()))
        tip = old.max_priority_fee_per_gas * (100 + percent) // 100 + 1
        fee = max(old.max_fee_per_gas * (100 + percent) // 100 + 1, tip)
        self.submit(tx(old.sender, old.nonce, tip=tip, fee=fee, value=value, gas=old.gas_limit))

    @precondition(lambda self: len(self.pool) > 0)
    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        t = data.draw(st.sampled_from(self.pooled()))
        (outcome,) = self.pool.add_many([t], self.now)
        assert isinstance(outcome, MempoolRejected) and outcome.reason is Reason.ALREADY_KNOWN

    @rule(
        base_fee=st.integers(0, 30),
        gas_limit=st.integers(0, 250_000),
        max_count=st.integers(0, 10),
        take=st.integers(0, 10),
        next_base_fee=st.integers(0, 30),
    )
    def seal(self, base_fee: int, gas_limit: int, max_count: int, take: int, next_base_fee: int) -> None:
        chosen = self.pool.select(base_fee, gas_limit, max_count)
        assert len(chosen) <= max_count and sum(t.gas_limit for t in chosen) <= gas_limit
        expected = {s: self.chain.accounts[s].nonce for s in SENDERS}
        for t in chosen:
            # never before its lower nonce; never below the base fee; always pending
            assert t.nonce == expected[t.sender] and t.max_fee_per_gas >= base_fee
            assert self.pool.status(t.hash) is TxStatus.PENDING
            expected[t.sender] += 1
        block = chosen[:take]
        changed: dict[bytes, AccountState] = {}
        for t in block:
            state = self.chain.accounts[t.sender]
            charge = t.value + t.gas_limit * min(t.max_fee_per_gas, base_fee + t.max_priority_fee_per_gas)
            assert charge <= state.balance  # pending runs are affordable at the worst case
            changed[t.sender] = self.chain.accounts[t.sender] = AccountState(state.nonce + 1, state.balance - charge)
        self.pool.on_block(block, changed, next_base_fee)
        assert not {t.hash for t in block} & {t.hash for t in self.pooled()}

    @rule(sender=st.sampled_from(SENDERS), count=st.integers(1, 4), charge=st.integers(0, 10**7))
    def forced_inclusion(self, sender: bytes, count: int, charge: int) -> None:
        """Transactions the pool never saw (from L1's forced-inclusion queue) take the next nonces."""
        state = self.chain.accounts[sender]
        foreign = [tx(sender, state.nonce + i) for i in range(count)]
        held = {t.nonce: t.hash for t in (*self.pool.pending(sender), *self.pool.queued(sender))}
        self.chain.accounts[sender] = new = AccountState(state.nonce + count, max(0, state.balance - charge))
        dropped = self.pool.on_block(foreign, {sender: new}, 10)
        stale = {held[n] for n in range(state.nonce, new.nonce) if n in held}
        assert stale <= {d.hash for d in dropped if d.reason == Reason.NONCE_TOO_LOW}

    @rule(sender=st.sampled_from(SENDERS), balance=st.integers(0, 2 * 10**8))
    def balance_changes(self, sender: bytes, balance: int) -> None:
        state = self.chain.accounts[sender]
        self.chain.accounts[sender] = AccountState(state.nonce, balance)
        self.pool.set_account(sender, state.nonce, balance)

    @precondition(lambda self: len(self.pool) > 0)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        t = data.draw(st.sampled_from(self.pooled()))
        dropped = self.pool.drop(t.hash, Reason.NONCE_TOO_LOW)
        assert dropped[0] == Dropped(t.hash, Reason.NONCE_TOO_LOW) and t.hash not in self.pool

    @rule(seconds=st.floats(0, 40))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        queued = {t.hash for s in SENDERS for t in self.pool.queued(s)}
        waiting = {t.hash for s in SENDERS for t in self.pool.pending(s) if self.pool.waiting(t.hash) is not None}
        for dropped in self.pool.expire(self.now):
            assert dropped.hash in queued or (dropped.hash in waiting and dropped.reason in STUCK)

    @invariant()
    def invariants_hold(self) -> None:
        pool = self.pool
        pool.audit()
        stats = pool.statistics()
        assert len(pool) == stats.pending + stats.queued == len(self.pooled())
        assert stats.pending == sum(pool.pending_count(s) for s in SENDERS) <= SMALL.global_slots
        assert stats.queued == sum(pool.queued_count(s) for s in SENDERS) <= SMALL.global_queue
        for sender in SENDERS:
            state = self.chain.accounts[sender]
            pending, queued = pool.pending(sender), pool.queued(sender)
            assert nonces(pending) == list(range(state.nonce, state.nonce + len(pending)))  # no gap
            assert len(pending) <= SMALL.account_slots and len(queued) <= SMALL.account_queue
            assert all(t.nonce >= state.nonce + len(pending) for t in queued)
            assert sum(cost(t) for t in pending) <= state.balance
            assert pool.account(sender) in (None, state)


TestMempoolMachine = MempoolMachine.TestCase
TestMempoolMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
