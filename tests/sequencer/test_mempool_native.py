"""The pool's common cases in C against its rules in Python: the add (protocol.add_pending, run by
Mempool.add_many) against ``_add``, and a block's account updates (protocol.settle_included, run
by Mempool.on_block) against ``_reset``. Two pools, one with C's paths and one without, go
through the same random operations (the mempool's state machine, plus batches of mixed adds in
one call) and must answer alike and end alike, down to every internal field, after every step.
The first tests show that C really does its part (a pool whose C paths did nothing could not
pass) and where it hands over to Python.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from protocol import Transaction, add_pending, settle_included
from services.sequencer._mempool import (
    FCFS,
    AccountState,
    AddOutcome,
    AddResult,
    FeePriority,
    Mempool,
    MempoolConfig,
    MempoolRejected,
    OrderingPolicy,
)
from tests.sequencer.test_mempool import RICH, SENDERS, SMALL, MempoolMachine, addr, tx

A, B = addr(0xA0), addr(0xA1)


def in_c(pool: Mempool, txs: list[Transaction], now: float = 0.0) -> tuple[int, list[AddOutcome]]:
    """How far add_pending alone goes into ``txs``, and what it added."""
    out: list[AddOutcome] = []
    cfg = pool.config
    index = add_pending(pool, pool._senders, pool._by_hash, pool._state_fn, txs, 0, now, out, cfg.min_tip,
                        cfg.block_gas_limit, cfg.account_slots, cfg.max_tx_size, cfg.global_slots)
    return index, out


def funded(_sender: bytes) -> AccountState:
    return AccountState(0, RICH)


def test_the_common_add_is_made_in_c_and_the_rest_left_to_python() -> None:
    pool = Mempool(MempoolConfig(account_slots=2), account_state=funded)
    run = [tx(A, 0), tx(A, 1), tx(B, 0), tx(A, 2)]  # A's third is beyond account_slots: queued, by Python
    index, added = in_c(pool, run)
    assert index == 3 and [r.hash for r in added if isinstance(r, AddResult)] == [t.hash for t in run[:3]]
    pool.audit()
    assert in_c(pool, [run[0]]) == (0, [])  # already known
    assert in_c(pool, [tx(A, 1, tip=50, fee=200)]) == (0, [])  # a replacement
    assert in_c(pool, [tx(B, 2)]) == (0, [])  # behind a gap
    assert in_c(pool, [tx(B, 1, tip=0)]) == (0, [])  # under the pool's minimum tip
    assert in_c(Mempool(account_state=lambda _: AccountState(0, 0)), [tx(A, 0)]) == (0, [])  # not affordable
    assert in_c(Mempool(), [tx(A, 0)]) == (0, [])  # no account_state: Python's _load


def test_add_many_answers_as_add_does_around_what_python_takes() -> None:
    run = [tx(A, 0), tx(A, 1), tx(A, 2), tx(B, 5), tx(B, 0), tx(A, 1), tx(B, 1)]
    fast = Mempool(MempoolConfig(account_slots=2), account_state=funded)
    slow = PythonPool(MempoolConfig(account_slots=2), account_state=funded)
    assert same(fast.add_many(run, 1.0), [slow._add(t, 1.0) for t in run])
    assert snapshot(fast) == snapshot(slow)


def test_a_block_that_took_a_senders_whole_run_forgets_it_in_c() -> None:
    pool = Mempool(account_state=funded)
    run = [tx(A, 0), tx(A, 1), tx(B, 0), tx(B, 1)]
    pool.add_many(run, 0.0)
    items = [(A, AccountState(2, RICH)), (B, AccountState(1, RICH)), (addr(1), AccountState(0, 0))]
    floor = {A: 2, B: 1}
    included = {t.hash for t in run[:3]}
    # A: its whole run included, in C; B: one of its two left, Python's _reset
    assert settle_included(pool, pool._senders, pool._by_hash, pool._starved, items, 0, floor, included) == 1
    assert pool.senders() == (B,) and len(pool) == 2 and pool.statistics().included == 2
    assert settle_included(pool, pool._senders, pool._by_hash, pool._starved, items, 2, floor, included) == 3


class PythonPool(Mempool):
    """The pool without C's on_block and select paths (its add_many's is left out by calling ``_add``)."""

    _settle_included = staticmethod(lambda *args: args[5])
    _select_pending = staticmethod(lambda *args: None)


@pytest.mark.parametrize("policy", [FeePriority(), FCFS()])
def test_select_in_c_takes_what_python_takes(policy: OrderingPolicy) -> None:
    """Senders with runs of mixed fees, some under the base fee, gas limits that end runs: both
    pools select the same transactions in the same order, at several base fees and gas limits."""
    pools = [cls(MempoolConfig(account_slots=8), policy=policy, account_state=funded) for cls in (Mempool, PythonPool)]
    run = [tx(addr(s), n, tip=(s * 7 + n * 3) % 11, fee=5 + (s * 5 + n) % 9, gas=21_000 + 9_000 * ((s + n) % 3))
           for s in range(1, 9) for n in range(6)]
    for pool in pools:
        pool.add_many(run, 0.0)
    cases = [(0, 10**9, 100), (6, 10**9, 100), (9, 200_000, 100), (3, 10**9, 7), (20, 10**9, 5)]
    for base_fee, gas_limit, count in cases:
        fast, slow = (pool.select(base_fee, gas_limit, count) for pool in pools)
        assert fast == slow
        assert fast or base_fee == 20  # (every fee cap is under 20)


def same(got: list[AddOutcome], expected: list[AddOutcome]) -> bool:
    def key(o: AddOutcome) -> Any:
        return (o.reason, o.message) if isinstance(o, MempoolRejected) else o

    return [key(o) for o in got] == [key(o) for o in expected]


def snapshot(pool: Mempool) -> Any:
    """Everything the pool holds, by value (entries by their fields, not their identity)."""
    senders = [(s, a.nonce, a.balance, a.pending_end, a.pending_cost, a.queued_cost, a.top,
                [(n, e.tx.hash, e.seq, e.arrived, e.cost) for n, e in a.txs.items()])
               for s, a in pool._senders.items()]
    heaps = [[(i[0], i[1], i[2], i[3].tx.hash) for i in heap] for heap in (pool._evict_pending, pool._evict_queued)]
    return (senders, list(pool._by_hash), pool._seq, pool._pending_total, pool._queued_total, list(pool._starved),
            pool._heaps_live, heaps, pool.statistics(), pool.base_fee)


class _Twin:
    """Mempool's calls made on both pools: add_many on one, ``_add`` per transaction on the other (a
    PythonPool); every answer compared, and the pools compared after each call."""

    def __init__(self, fast: Mempool, slow: Mempool) -> None:
        self.fast, self.slow = fast, slow

    def add_many(self, txs: list[Transaction], now: float) -> list[AddOutcome]:
        got = self.fast.add_many(txs, now)
        assert same(got, [self.slow._add(t, now) for t in txs])
        assert snapshot(self.fast) == snapshot(self.slow)
        return got

    def __len__(self) -> int:
        return len(self.fast)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self.fast

    def __getattr__(self, name: str) -> Any:
        fast, slow = getattr(self.fast, name), getattr(self.slow, name)
        if not callable(fast):
            assert fast == slow
            return fast

        def both(*args: Any) -> Any:
            got = fast(*args)
            assert got == slow(*args)
            assert snapshot(self.fast) == snapshot(self.slow)
            return got

        return both


class TwinMachine(MempoolMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pool = _Twin(self.pool, PythonPool(SMALL, account_state=self.chain, base_fee=10))  # type: ignore[assignment]

    @rule(adds=st.lists(st.tuples(st.sampled_from(SENDERS), st.integers(-1, 4), st.integers(0, 12),
                                  st.integers(0, 3 * 10**7)), min_size=2, max_size=8))
    def add_batch(self, adds: list[tuple[bytes, int, int, int]]) -> None:
        """Several senders' transactions in one call, as SendRawTransactions hands them over."""
        batch = [tx(s, max(0, self.chain.accounts[s].nonce + ahead), tip=tip, fee=tip + 10, value=value)
                 for s, ahead, tip, value in adds]
        self.pool.add_many(batch, self.now)

    @invariant()
    def twins_agree(self) -> None:
        assert snapshot(self.pool.fast) == snapshot(self.pool.slow)  # type: ignore[attr-defined]


TestTwinMachine = TwinMachine.TestCase
TestTwinMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
