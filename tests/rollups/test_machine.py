"""The derivation machine's rules, one by one, and its trace mode against its fast mode."""

from __future__ import annotations

import pytest

from protocol import (
    BatchBlock,
    BatchDataError,
    BlockLeaf,
    Deposit,
    Leaf,
    QueuedDeposit,
    QueuedForced,
    TxLeaf,
    batch_leaves,
    devnet_genesis,
    input_root,
    keccak256,
)
from services.rollups._machine import (
    DEFAULT_RULES,
    L1Inputs,
    Machine,
    Rules,
    StepKind,
    genesis_snapshot,
)
from services.rollups._snapshot import Phase, Snapshot
from tests.rollups.test_derivation import transfer

TO = b"\x22" * 20
ORIGIN_HASH = b"\x33" * 32
Block = tuple[int, int, int, bytes, tuple[bytes, ...]]


def machine(rules: Rules = DEFAULT_RULES, *, trace: bool = False) -> Machine:
    genesis = devnet_genesis()
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
    m = machine(Rules(sequencer_window=5))
    post(m, [(1, 100, 8, ORIGIN_HASH, (transfer(0),))])
    post(m, [(1, 100, 8, ORIGIN_HASH, (transfer(0),)), (2, 101, 8, ORIGIN_HASH, (transfer(1),))])  # 1 repeats
    post(m, [(4, 102, 8, ORIGIN_HASH, ())])  # a gap: block 3 is missing
    post(m, [(3, 99, 8, ORIGIN_HASH, ())])  # timestamp before block 2's
    post(m, [(3, 103, 30, ORIGIN_HASH, ())], l1_block=20)  # origin after the batch's own L1 block
    post(m, [(3, 103, 8, ORIGIN_HASH, ())], l1_block=14)  # posted after the sequencer window
    post_leaves(m, (TxLeaf(transfer(2)), BlockLeaf(3, 103, 9, ORIGIN_HASH, 0)), l1_block=14)  # a stray leaf first
    steps = kinds(m)
    assert steps.count(StepKind.SKIP_BLOCK) == 4 and steps.count(StepKind.SKIP_REST) == 1
    assert steps.count(StepKind.SKIP_LEAF) == 1 and [b.header.number for b in m.sealed] == [1, 2, 3]


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


def test_a_forced_transaction_is_included_once_the_sequencer_window_forces_a_newer_origin() -> None:
    m = machine(Rules(sequencer_window=5))
    m.inputs.add_forced(QueuedForced(0, 12, transfer(0, 9)))
    post(m, [(1, 100, 8, ORIGIN_HASH, ())], l1_block=12)  # origin 8 < 12: not due yet
    post(m, [(2, 101, 8, ORIGIN_HASH, ())], l1_block=20)  # keeps origin 8, too late: skipped
    post(m, [(2, 101, 15, ORIGIN_HASH, ())], l1_block=20)  # a valid block must take origin >= 15
    m.run()
    assert [len(b.tx_hashes) for b in m.sealed] == [0, 1] and m.state.get(TO).balance == 9
