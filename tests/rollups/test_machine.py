"""The derivation machine's rules, one by one, and its trace mode against its fast mode."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from protocol import (
    FEE_VAULT,
    BatchBlock,
    BatchDataError,
    BlockLeaf,
    Deposit,
    Leaf,
    QueuedDeposit,
    QueuedForced,
    State,
    TxLeaf,
    batch_leaves,
    devnet_genesis,
    input_root,
    keccak256,
    next_base_fee,
)
from services.l1 import UnsignedTransaction, sign_transaction
from services.rollups._machine import (
    DEFAULT_RULES,
    L1Inputs,
    Machine,
    Rules,
    StepKind,
    genesis_snapshot,
)
from services.rollups._snapshot import Phase, Snapshot
from tests.rollups.test_derivation import KEY, transfer

TO = b"\x22" * 20
ORIGIN_HASH = b"\x33" * 32
Block = tuple[int, int, int, bytes, tuple[bytes, ...]]


def machine(rules: Rules = DEFAULT_RULES, *, trace: bool = False, **genesis_fields: Any) -> Machine:
    genesis = replace(devnet_genesis(), **genesis_fields)
    state = genesis.state()
    return Machine(genesis_snapshot(genesis, state), state, L1Inputs(), rules, trace=trace)


def post(m: Machine, blocks: list[Block], l1_block: int = 10) -> None:
    post_leaves(m, tuple(batch_leaves([BatchBlock(*b) for b in blocks])), l1_block)


def post_leaves(m: Machine, leaves: tuple[Leaf, ...], l1_block: int = 10) -> None:
    m.inputs.add_batch(len(m.inputs.batches), l1_block, input_root(leaves), leaves)


def kinds(m: Machine, target: int = 2**63) -> list[StepKind]:
    out = []
    while (kind := m.step(target)) is not StepKind.NOOP:
        out.append(kind)
    return out


def test_a_block_goes_start_deposits_forced_batch_seal() -> None:
    m = machine()
    m.inputs.add_deposit(QueuedDeposit(0, 5, b"\x01" * 20, Deposit(b"\x44" * 32, TO, 10**18)))
    m.inputs.add_deposit(QueuedDeposit(1, 9, b"\x01" * 20, Deposit(b"\x55" * 32, TO, 1)))  # after the origin
    m.inputs.add_forced(QueuedForced(0, 6, transfer(0, 3)))
    post(m, [(1, 100, 8, ORIGIN_HASH, (transfer(1, 4), transfer(1, 4)))])
    assert kinds(m) == [StepKind.START, StepKind.DEPOSIT, StepKind.DEPOSITS_DONE, StepKind.FORCED_APPLIED,
                        StepKind.FORCED_DONE, StepKind.TX_APPLIED, StepKind.TX_SKIPPED, StepKind.SEAL,
                        StepKind.NEXT_BATCH]
    (block,) = m.sealed
    assert block.header.number == 1 and len(block.tx_hashes) == 3 and block.step == 8
    assert m.state.get(TO).balance == 10**18 + 7
    assert m.snapshot.deposit_index == 1 and m.snapshot.forced_index == 1 and m.snapshot.phase == Phase.IDLE
    assert m.snapshot.batch_index == 1 and m.snapshot.item_index == 0
    assert [s.reason for s in m.skipped] == ["NONCE_TOO_LOW"]


def test_trace_mode_gives_the_same_blocks_and_exact_snapshots_at_every_step() -> None:
    blocks: list[Block] = [(1, 100, 8, ORIGIN_HASH, (transfer(0), transfer(1), b"\x02junk")),
                           (2, 101, 9, ORIGIN_HASH, (transfer(2), transfer(3)))]
    fast, traced = machine(), machine(trace=True)
    snapshots: list[Snapshot] = []
    for m in (fast, traced):
        m.inputs.add_deposit(QueuedDeposit(0, 9, b"\x01" * 20, Deposit(b"\x44" * 32, TO, 5)))
        post(m, blocks)
    while traced.step(2**63) is not StepKind.NOOP:
        snapshots.append(traced.snapshot)
    fast.run()
    assert [b.snapshot for b in fast.sealed] == [b.snapshot for b in traced.sealed]
    assert [b.step for b in fast.sealed] == [b.step for b in traced.sealed]
    assert len(set(snapshots)) == len(snapshots)  # every step changes the snapshot
    # Traced, the state root moves within block 1 transaction by transaction (two applied).
    assert len({s.state_root for s in snapshots[: traced.sealed[0].step]}) == 3


def test_duplicates_gaps_invalid_blocks_and_stray_leaves_are_skipped_by_rule() -> None:
    m = machine(Rules(sequencer_window=5), l1_origin_number=5)
    post(m, [(1, 100, 8, ORIGIN_HASH, (transfer(0),))])
    post(m, [(1, 100, 8, ORIGIN_HASH, (transfer(0),)), (2, 101, 8, ORIGIN_HASH, (transfer(1),))])  # 1 repeats
    post(m, [(4, 102, 8, ORIGIN_HASH, ())])  # a gap: block 3 is missing
    post(m, [(3, 99, 8, ORIGIN_HASH, ())])  # timestamp before block 2's
    post(m, [(3, 103, 30, ORIGIN_HASH, ())], l1_block=11)  # origin after the batch's own L1 block
    post(m, [(3, 103, 7, ORIGIN_HASH, ())], l1_block=12)  # origin before block 2's: origins never go back
    post_leaves(m, (BlockLeaf(3, 2**64, 8, ORIGIN_HASH, 0),), l1_block=12)  # a timestamp the snapshot cannot hold
    post_leaves(m, (TxLeaf(transfer(2)), BlockLeaf(3, 2**64 - 1, 9, ORIGIN_HASH, 0)), l1_block=13)  # a stray leaf
    steps = kinds(m)
    assert steps.count(StepKind.SKIP_BLOCK) == 5 and steps.count(StepKind.SKIP_REST) == 1
    assert steps.count(StepKind.SKIP_LEAF) == 1 and [b.header.number for b in m.sealed] == [1, 2, 3]
    assert StepKind.FORCED_BLOCK not in steps and m.sealed[-1].header.timestamp == 2**64 - 1


def test_a_block_claiming_more_transactions_than_its_batch_holds_ends_with_the_batch() -> None:
    m = machine()
    post_leaves(m, (BlockLeaf(1, 100, 8, ORIGIN_HASH, 5), TxLeaf(transfer(0))))
    assert kinds(m)[-3:] == [StepKind.TXS_CUT, StepKind.SEAL, StepKind.NEXT_BATCH]
    assert len(m.sealed[0].tx_hashes) == 1


def test_leaves_that_miss_their_root_are_an_error_not_a_batch_to_stop_at() -> None:
    """The inbox computes the root from the calldata the leaves are read from: leaves that miss it
    mean a broken L1 client, raised (derivation never halts quietly on a batch)."""
    m = machine()
    leaves = tuple(batch_leaves([BatchBlock(1, 100, 8, ORIGIN_HASH, (transfer(0),))]))
    with pytest.raises(BatchDataError, match="batch 0"):
        m.inputs.add_batch(0, 10, keccak256(b"another root"), leaves)
    assert m.inputs.batches == []
    post(m, [(1, 100, 8, ORIGIN_HASH, (transfer(0),))])  # the same batch, as L1 holds it
    m.run()
    assert [b.header.number for b in m.sealed] == [1]


def test_past_its_target_the_trace_is_padded_with_no_ops() -> None:
    m = machine()
    post(m, [(1, 100, 8, ORIGIN_HASH, ()), (2, 101, 8, ORIGIN_HASH, ())])
    m.run(target=1)
    assert m.snapshot.number == 1 and m.step(1) is StepKind.NOOP and m.snapshot.number == 1
    assert m.run() > 0 and m.snapshot.number == 2


def test_when_the_window_lapses_with_nothing_posted_derivation_makes_the_blocks() -> None:
    """Rule F (issue 12 item 2): a silent sequencer cannot keep deposits and forced transactions out.
    One block per L1 origin past the window, each taking what is due at its origin."""
    m = machine(Rules(sequencer_window=5), trace=True, l1_origin_number=0)
    m.inputs.add_deposit(QueuedDeposit(0, 2, b"\x01" * 20, Deposit(b"\x44" * 32, TO, 10**18)))
    m.inputs.add_forced(QueuedForced(0, 3, transfer(0, 9)))
    m.inputs.l1_horizon = 4  # a block posted by L1 block 5 = 0 + W may still come: nothing to do
    assert kinds(m) == [] and not m.window_lapsed()
    m.inputs.l1_horizon = 8  # every origin o with o + 5 <= 8 lapsed: blocks of origins 1..4
    steps = kinds(m)
    assert [b.header.l1_origin_number for b in m.sealed] == [1, 2, 3, 4]
    empty = [StepKind.FORCED_BLOCK, StepKind.DEPOSITS_DONE, StepKind.FORCED_DONE, StepKind.SEAL]
    assert steps == [*empty,
                     StepKind.FORCED_BLOCK, StepKind.DEPOSIT, StepKind.DEPOSITS_DONE, StepKind.FORCED_DONE,
                     StepKind.SEAL,
                     StepKind.FORCED_BLOCK, StepKind.DEPOSITS_DONE, StepKind.FORCED_APPLIED, StepKind.FORCED_DONE,
                     StepKind.SEAL, *empty]
    genesis = devnet_genesis()
    parent = genesis.header()
    for block in m.sealed:
        h = block.header
        assert (h.number, h.parent_hash, h.timestamp, h.l1_origin_hash) == (parent.number + 1, parent.hash(),
                                                                            genesis.timestamp, bytes(32))
        assert h.base_fee == next_base_fee(parent.base_fee, parent.gas_used, parent.gas_limit)
        parent = h
    assert [len(b.tx_hashes) for b in m.sealed] == [0, 1, 1, 0] and m.state.get(TO).balance == 10**18 + 9
    assert m.snapshot.batch_index == 0 and m.snapshot.item_index == 0  # cursors unchanged


def test_a_larger_horizon_only_extends_the_derived_chain() -> None:
    def at(horizon: int) -> list[bytes]:
        m = machine(Rules(sequencer_window=5))
        m.inputs.add_forced(QueuedForced(0, 3, transfer(0, 9)))
        m.inputs.l1_horizon = horizon
        m.run()
        return [b.hash for b in m.sealed]

    chains = [at(h) for h in (4, 5, 8, 12, 20)]
    assert [len(c) for c in chains] == [0, 1, 4, 8, 16]  # h - W + 1 blocks from origin 0
    assert all(longer[: len(shorter)] == shorter for shorter, longer in itertools.pairwise(chains))
    # And growing the horizon of one machine gives the same chain as starting over with the larger one.
    m = machine(Rules(sequencer_window=5))
    m.inputs.add_forced(QueuedForced(0, 3, transfer(0, 9)))
    for horizon in (8, 12, 20):
        m.inputs.l1_horizon = horizon
        m.run()
    assert [b.hash for b in m.sealed] == chains[-1]


def test_a_batch_posted_after_the_window_finds_the_derived_blocks_in_its_place() -> None:
    """Posted at L1 block 20 for a parent of origin 8 (window 5): derivation made blocks with origins
    9..15 itself, so the sequencer's block 2 is a duplicate (5a); a block after them that keeps
    origins moving forward continues the chain."""
    m = machine(Rules(sequencer_window=5), l1_origin_number=7)
    m.inputs.add_forced(QueuedForced(0, 12, transfer(0, 9)))
    post(m, [(1, 100, 8, ORIGIN_HASH, ())], l1_block=12)  # origin 8 < 12: not due yet
    post(m, [(2, 101, 8, ORIGIN_HASH, (transfer(0, 1),))], l1_block=20)  # too late: derivation's blocks first
    post(m, [(8, 102, 15, ORIGIN_HASH, ()), (9, 102, 15, ORIGIN_HASH, (transfer(1, 1),))], l1_block=20)
    steps = kinds(m)
    assert [b.header.l1_origin_number for b in m.sealed] == [8, 9, 10, 11, 12, 13, 14, 15, 15]
    assert steps.count(StepKind.FORCED_BLOCK) == 7 and steps.count(StepKind.SKIP_BLOCK) == 2
    assert [len(b.tx_hashes) for b in m.sealed] == [0, 0, 0, 0, 1, 0, 0, 0, 1]  # the forced one at origin 12
    assert m.state.get(TO).balance == 10


def test_forced_transactions_that_never_fit_are_dropped_and_a_full_block_s_lead_the_next() -> None:
    """Issue 12 item 5 with a genesis gas limit under 30M: the queue always advances."""
    m = machine(Rules(sequencer_window=5), gas_limit=15_000_000, l1_origin_number=5)
    poor = keccak256(b"a key with no L2 funds")
    big = sign_transaction(UnsignedTransaction(901, 0, 0, 10 * 10**9, 20_000_000, TO, 0), poor)
    # 21,000 gas used by the first: the second (a whole block's gas limit) waits for block 2, where it is first.
    fits = [sign_transaction(UnsignedTransaction(901, n, 0, 10 * 10**9, gas, TO, 1), KEY)
            for n, gas in ((0, 21_000), (1, 15_000_000))]
    for i, raw in enumerate((big, *fits)):
        m.inputs.add_forced(QueuedForced(i, 6, raw))
    post(m, [(1, 100, 8, ORIGIN_HASH, ()), (2, 101, 8, ORIGIN_HASH, ())])
    steps = kinds(m)
    assert steps.count(StepKind.FORCED_SKIPPED) == 1 and steps.count(StepKind.FORCED_FULL) == 1
    assert [len(b.tx_hashes) for b in m.sealed] == [1, 1] and m.snapshot.forced_index == 3
    assert [(s.block, s.source, s.reason) for s in m.skipped] == [
        (1, "forced", "GAS_LIMIT_ABOVE_BLOCK"), (1, "forced", "BLOCK_GAS_LIMIT_REACHED")]


def test_a_forced_transaction_under_the_base_fee_is_included_at_its_fee_cap() -> None:
    """Issue 12 item 6: the base fee (the sequencer's to push up) cannot drop a forced transaction."""
    m = machine(base_fee=100 * 10**9, l1_origin_number=5)
    m.inputs.add_forced(QueuedForced(0, 6, transfer(0, 9)))  # fee cap 10 gwei
    post(m, [(1, 100, 8, ORIGIN_HASH, (transfer(1, 1),))])  # a batch transaction under it: refused
    steps = kinds(m)
    assert StepKind.FORCED_APPLIED in steps and StepKind.TX_SKIPPED in steps
    assert [s.reason for s in m.skipped] == ["FEE_CAP_BELOW_BASE_FEE"]
    assert m.state.get(TO).balance == 9 and m.state.get(FEE_VAULT).balance == 0  # paid its cap, no tip


def test_a_lazily_loaded_state_is_loaded_once_whichever_threads_want_it() -> None:
    """A resumed machine's state is read by a background preload and by a step at once
    (DerivedChain.sync): one load, the same state for both; a failed load is tried again."""
    genesis = devnet_genesis()
    state = genesis.state()
    loading, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def load() -> State:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the first load fails")
        loading.set()
        assert release.wait(10)
        return state

    m = Machine(genesis_snapshot(genesis, state), load, L1Inputs())
    with pytest.raises(OSError):
        m.state  # noqa: B018 (the property loads)
    assert not m.state_loaded
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(lambda: m.state)
        assert loading.wait(10)  # the first is inside the load
        second = pool.submit(lambda: m.state)
        release.set()
        assert first.result(10) is state and second.result(10) is state
    assert len(calls) == 2 and m.state_loaded
