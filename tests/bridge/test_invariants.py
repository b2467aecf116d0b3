"""The bridge's invariants, over random plans of deposits, withdrawals, kills and L1 reorgs, on one
real `l2node up` tree (its anvil, sequencer, rollups and bridge worker, relayer on).

Where the value is (protocol/_execution.py): every wei on L2 sits in an account's balance, except
base fees, which are burned. A deposit mints. A withdrawal moves its value from the sender to
MESSAGE_PASSER, which has no key: its balance is the L2 total of everything withdrawn. Tips go to
FEE_VAULT, an ordinary account. Only this test sends L2 transactions, so with G the genesis total:

    L2   sum of every balance + base fees burned == G + the mint of each canonical deposit, once
         balance(MESSAGE_PASSER)                 == the value of every recorded message
    L1   balance(DepositPortal)                  == canonical deposits - paid out (target call
                                                    succeeded, or refunded to the sender)

and once every withdrawal is paid out (each example settles all of its own), the ETH locked on L1
is exactly the L2 value that entered and has not left: sum of balances + burned - G - MESSAGE_PASSER.
Every deposit canonical on L1 is credited exactly once (every L2 transaction that is not one of
this test's own is a canonical deposit, each in exactly one block); a deposit reorged out of L1
before its depth is credited nowhere. Every withdrawal is finalized at most once (per hash at most
one WithdrawalFinalized(success) or WithdrawalRefunded, never both), and the relayer sent no L1
transaction twice: its L1 nonce equals the number of its distinct (withdrawal, action) events.

Kills land at random points: between plan steps (SIGKILL of the bridge or the sequencer worker)
and while the relayer proves and finalizes (just after a withdrawal turns IN_OUTPUT or READY).
Reorgs (1 or 2 blocks, under the depth of 4 everything irreversible waits for) land between plan
steps, over a deposit just mined (dropped, or moved to another block), and just after a relayer's
prove is mined; the replaced blocks' other transactions go back to the pool, as geth does. Time is
warped on anvil (evm_increaseTime, anvil_mine) instead of waited out. Each example settles all of
its deposits and withdrawals, then checks; the tree, and so every check, spans all examples.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bench.bridge import DEPTH, ETHER, PORTAL, Tree, address_of, deposit_hash, wait_for
from l2node.node.l1 import DEVNET_BLOCK_TIME_S
from protocol import DEV_PRIVATE_KEYS, FEE_VAULT, MESSAGE_PASSER, devnet_genesis
from protos.l2node.bridge.v1 import bridge_pb2 as bpb
from services.l1 import Artifact, Contract, LocalSigner, Log, checksum
from tests.ports import free_base_port

#: Anvil dev accounts with no role in the tree (0 deploys, 1 batches, 7 relays, 8 proposes,
#: 9 challenges): the users, on both layers (same key), and the one that backs the portal.
USERS: Final = (2, 3, 4, 5)
BACKER: Final = 6
RELAYER: Final = LocalSigner(DEV_PRIVATE_KEYS[7]).address
#: The devnet's challenge window and proof maturity delay (l2node/node/params.py), and a second more.
WARP_S: Final = 21
#: The L1 gas a withdrawal's target call gets: plenty for an EOA and for the harness's bookkeeping.
TARGET_GAS: Final = 200_000
HARNESS: Final = Contract(Artifact.load("WithdrawalTargetHarness"))
SUCCEEDED, FAILED, REFUNDED = 1, 2, 3  # DepositPortal.withdrawalState


# --- the plan -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DepositOp:
    sender: int
    to: int
    wei: int


@dataclass(frozen=True)
class WithdrawOp:
    sender: int
    wei: int
    #: To the harness, told to revert: the withdrawal must end FAILED, then be retried or refunded.
    reverting: bool
    remedy: str  # "retry" | "refund"
    data: bytes


@dataclass(frozen=True)
class KillOp:
    worker: str  # "bridge" | "sequencer"
    delay_ms: int


@dataclass(frozen=True)
class ReorgOp:
    depth: int
    #: A deposit sent just before, inside the replaced blocks: dropped, or moved to a later block.
    deposit: DepositOp | None
    move: bool


Op = DepositOp | WithdrawOp | KillOp | ReorgOp


@dataclass(frozen=True)
class Plan:
    ops: tuple[Op, ...]
    #: Kills while settling: just after a withdrawal turns IN_OUTPUT (the relayer proves it) and
    #: just after one turns READY (the relayer finalizes it).
    kill_proving: KillOp | None
    kill_finalizing: KillOp
    #: A reorg of that depth as soon as a withdrawal turns PROVEN (its prove among the blocks replaced).
    reorg_proven: int | None


users = st.sampled_from(USERS)
deposits = st.builds(DepositOp, users, users, st.integers(1, 2_000).map(lambda n: n * 10**15))
withdrawals = st.builds(WithdrawOp, users, st.integers(1, 100).map(lambda n: n * 10**15), st.booleans(),
                        st.sampled_from(("retry", "refund")), st.binary(max_size=8))
kills = st.builds(KillOp, st.sampled_from(("bridge", "sequencer")), st.integers(0, 300))
reorgs = st.builds(ReorgOp, st.integers(1, 2), st.none() | deposits, st.booleans())
reorged_deposits = st.builds(ReorgOp, st.integers(1, 2), deposits, st.booleans())


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """Each plan has a deposit, a withdrawal to a reverting target, a kill of each worker and a
    reorg of a fresh deposit, plus up to four more random steps, in a random order."""
    must = [draw(deposits), replace(draw(withdrawals), reverting=True), replace(draw(kills), worker="bridge"),
            replace(draw(kills), worker="sequencer"), draw(reorged_deposits)]
    extra = draw(st.lists(st.one_of(deposits, withdrawals, kills, reorgs), max_size=4))
    return Plan(tuple(draw(st.permutations(must + extra))), draw(st.none() | kills), draw(kills),
                draw(st.none() | st.integers(1, 2)))


# --- the tree -------------------------------------------------------------------------------------

@dataclass
class Ledger:
    """What the test did, across examples (the tree is the module's): its reverting target, its own
    L2 transactions, the withdrawals still to settle, those that failed first, the deposits a reorg
    replaced."""

    harness: bytes
    l2_txs: set[bytes] = field(default_factory=set)
    #: withdrawal tx hash -> its op, for the current example.
    pending: dict[bytes, WithdrawOp] = field(default_factory=dict)
    #: Every example's withdrawal that went to a reverting target: its hash (once known).
    reverting: set[str] = field(default_factory=set)
    #: L2 hashes of deposits that a reorg replaced (dropped, or moved to another block).
    orphans: set[bytes] = field(default_factory=set)


#: Outputs as soon as a block is derived, and finalized as soon as the window allows, so that a
#: withdrawal's round trip is bound by the test's warps, not by the proposer's pace.
CONFIG: Final = ("[workers.rollups.settings]\noutput_interval_s = 1.0\npoll_interval_s = 0.25\n"
                 "idle_poll_s = 1.0\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    t = Tree(tmp_path_factory.mktemp("invariants"), free_base_port(), CONFIG)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(scope="module")
def ledger(tree: Tree) -> Ledger:
    """The reverting target, and 5 ETH deposited to back the withdrawals (which draw on the dev
    accounts' L2 genesis balances, which L1 never locked: a withdrawal needs ETH in the portal)."""
    backer = DEV_PRIVATE_KEYS[BACKER]
    receipt = tree.send_l1(backer, None, HARNESS.encode_deploy(tree.portal))
    harness = bytes.fromhex(receipt["contractAddress"][2:])
    tree.send_l1(backer, harness, HARNESS.encode_call("configure", True, 0, b""))
    tree.deposit(BACKER, BACKER, 5 * ETHER)
    settle_deposits(tree)
    return Ledger(harness)


# --- the steps ------------------------------------------------------------------------------------

def withdraw(tree: Tree, ledger: Ledger, op: WithdrawOp) -> None:
    """An L2 transaction to MESSAGE_PASSER, waited for until sealed (the next step may kill the
    sequencer: only an acknowledged, durable transaction is the test's to count)."""
    target = ledger.harness if op.reverting else os.urandom(20)
    tx = tree.withdraw(op.sender, op.wei, target, TARGET_GAS, op.data)
    ledger.l2_txs.add(tx)
    ledger.pending[tx] = op
    wait_for(lambda: tree.sealed(tx), 30, "the withdrawal sealed")


def reorg(tree: Tree, ledger: Ledger, op: ReorgOp) -> None:
    """A shallow reorg (``replace_blocks``), over the op's fresh deposit if it has one: that deposit
    is dropped for good (as if its sender had replaced it), or moved to the last new block."""
    tree.rpc("evm_setIntervalMining", 0)  # the fresh deposit's block stays the head until replaced
    try:
        if op.deposit is None:
            replace_blocks(tree, op.depth)
            return
        call = PORTAL.encode_call("depositTransaction", address_of(op.deposit.to))
        raw, fresh = tree.sign_l1(DEV_PRIVATE_KEYS[op.deposit.sender], tree.portal, call, op.deposit.wei)
        tree.rpc("eth_sendRawTransaction", "0x" + raw.hex())
        tree.mine()
        receipt = tree.l1_receipt(fresh)
        assert int(receipt["blockNumber"], 16) == tree.head()
        (log,) = [PORTAL.decode_log(Log.from_json(x)) for x in receipt["logs"]]
        assert log is not None
        ledger.orphans.add(deposit_hash(dict(log.args)))
        replace_blocks(tree, op.depth, fresh, ["0x" + raw.hex(), op.depth - 1] if op.move else None)
    finally:
        tree.rpc("evm_setIntervalMining", DEVNET_BLOCK_TIME_S)


def replace_blocks(tree: Tree, depth: int, dropped: bytes = b"", moved: list[Any] | None = None) -> None:
    """Replace the last ``depth`` blocks of L1 (fewer than DEPTH: nothing credited, derived or
    proposed from them is touched) by as many new ones, as a real L1 reorg does: the transactions of
    the replaced blocks go back to the pool (geth re-injects them; anvil_reorg drops them, so they
    are sent again here) and are mined later, in other blocks; except ``dropped``, gone for good
    (or, ``moved``, put in a new block: [raw, offset]). Anvil's block timer is paused meanwhile, so
    that the blocks read are the blocks replaced."""
    assert depth < DEPTH
    tree.rpc("evm_setIntervalMining", 0)
    try:
        head = tree.head()
        replaced = [h for n in range(head - depth + 1, head + 1)
                    for h in tree.rpc("eth_getBlockByNumber", hex(n), False)["transactions"]]
        back = [tree.rpc("eth_getRawTransactionByHash", h) for h in replaced if h != "0x" + dropped.hex()]
        tree.rpc("anvil_reorg", depth, [moved] if moved else [])
        for raw_hex in back:
            with contextlib.suppress(RuntimeError):  # already known, or its sender sent anew at its nonce
                tree.rpc("eth_sendRawTransaction", raw_hex)
    finally:
        tree.rpc("evm_setIntervalMining", DEVNET_BLOCK_TIME_S)


def run(tree: Tree, ledger: Ledger, op: Op) -> None:
    if isinstance(op, DepositOp):
        tree.deposit(op.sender, op.to, op.wei)
    elif isinstance(op, WithdrawOp):
        withdraw(tree, ledger, op)
    elif isinstance(op, KillOp):
        time.sleep(op.delay_ms / 1000)
        tree.kill(op.worker)
    else:
        reorg(tree, ledger, op)


# --- settling -------------------------------------------------------------------------------------

def settle_deposits(tree: Tree) -> None:
    """Mine past the depth; every canonical deposit is then credited on L2."""
    tree.mine(DEPTH + 1)
    hashes = [deposit_hash(d) for d in tree.logs("DepositQueued")]
    wait_for(lambda: all(tree.sealed(h) for h in hashes), 30,
             "every canonical deposit credited on L2")
    wait_for(lambda: all((r := tree.deposit_record(h)) is not None and r.status == bpb.DEPOSIT_STATUS_CREDITED
                         for h in hashes), 30, "the bridge sees every canonical deposit credited")


def settle_withdrawals(tree: Tree, ledger: Ledger, plan: Plan) -> None:
    """Drive this example's withdrawals to paid out: L1 blocks mined while they get into outputs and
    proven, a warp past the challenge window and the proof's maturity, the relayer's finalize, then
    the test's retry or refund of each FAILED one. The plan's kills fire just after the first
    withdrawal turns IN_OUTPUT and the first turns READY: the relayer is proving or finalizing."""
    messages = {m.tx_hash: m.hash for m in tree.messages()}
    hashes = {messages["0x" + tx.hex()]: op for tx, op in ledger.pending.items()}
    ledger.reverting |= {h for h, op in hashes.items() if op.reverting}

    def statuses() -> list[int]:
        return [r.status if (r := tree.withdrawal(h)) is not None else 0 for h in hashes]

    def reach(status: int, kill: KillOp | None, kill_at: int, timeout: float, what: str,
              reorg_depth: int | None = None) -> None:
        deadline = time.monotonic() + timeout
        while True:
            now = statuses()
            if kill is not None and any(s >= kill_at for s in now):
                threading.Timer(kill.delay_ms / 1000, tree.kill, (kill.worker,)).start()
                kill = None
            if reorg_depth is not None and any(s >= status for s in now):
                replace_blocks(tree, reorg_depth)  # the relayer's transaction that got it there, likely
                reorg_depth = None
                continue
            if all(s >= status for s in now):
                return
            if time.monotonic() > deadline:
                stuck = [tree.withdrawal(h) for h, s in zip(hashes, now, strict=True) if s < status]
                raise AssertionError(f"{what}: not within {timeout} s: {stuck}")
            tree.mine()  # batches and proposals reach their depth sooner than at a block a second
            time.sleep(0.2)

    reach(bpb.WITHDRAWAL_STATUS_PROVEN, plan.kill_proving, bpb.WITHDRAWAL_STATUS_IN_OUTPUT, 60,
          "proven by the relayer", plan.reorg_proven)
    tree.rpc("evm_increaseTime", WARP_S)
    tree.mine()
    reach(bpb.WITHDRAWAL_STATUS_FINALIZED, plan.kill_finalizing, bpb.WITHDRAWAL_STATUS_READY, 60,
          "finalized by the relayer")
    for h, op in hashes.items():
        record = tree.withdrawal(h)
        assert record is not None
        state = tree.read(PORTAL, tree.portal, "withdrawalState", bytes.fromhex(h[2:]))[0]
        if not op.reverting:
            assert (record.outcome, state) == (bpb.WITHDRAWAL_OUTCOME_SUCCEEDED, SUCCEEDED), h
            continue
        assert (record.outcome, state) == (bpb.WITHDRAWAL_OUTCOME_FAILED, FAILED), h  # the value waits
        sender = DEV_PRIVATE_KEYS[op.sender]
        w = withdrawal_tuple(record)
        if op.remedy == "refund":
            tree.send_l1(sender, tree.portal, PORTAL.encode_call("refundWithdrawal", w))
        else:
            tree.send_l1(sender, ledger.harness, HARNESS.encode_call("configure", False, 0, b""))
            tree.send_l1(sender, tree.portal, PORTAL.encode_call("retryWithdrawal", w))
            tree.send_l1(sender, ledger.harness, HARNESS.encode_call("configure", True, 0, b""))
        want, state = ((bpb.WITHDRAWAL_OUTCOME_REFUNDED, REFUNDED) if op.remedy == "refund"
                       else (bpb.WITHDRAWAL_OUTCOME_SUCCEEDED, SUCCEEDED))
        assert tree.read(PORTAL, tree.portal, "withdrawalState", bytes.fromhex(h[2:]))[0] == state, h
        wait_for(lambda h=h, want=want: (r := tree.withdrawal(h)) is not None and r.outcome == want, 30,  # type: ignore[misc]
                 f"the bridge sees {h}'s {op.remedy}")
    ledger.pending.clear()
    tree.mine(DEPTH)  # the remedies below the next example's reorgs


def withdrawal_tuple(record: Any) -> tuple[Any, ...]:
    return (record.nonce, bytes.fromhex(record.sender[2:]), bytes.fromhex(record.target[2:]), int(record.value),
            record.gas_limit, bytes.fromhex(record.data[2:]))


# --- the invariants -------------------------------------------------------------------------------

def check_deposits(tree: Tree, ledger: Ledger) -> str:
    """Every deposit canonical on L1 credited exactly once on L2, nothing else minted, and the L2
    supply is what L1 minted less the base fees burned. A summary of what was checked."""
    genesis = devnet_genesis()
    l1_deposits = tree.logs("DepositQueued")
    assert [d["index"] for d in l1_deposits] == list(range(len(l1_deposits)))  # no gap, no index twice
    minted = sum(d["mint"] for d in l1_deposits)
    credited = {deposit_hash(d): d for d in l1_deposits}

    # Every L2 transaction is the test's own or a canonical deposit; each deposit in one block only.
    head = tree.block().number
    seen: Counter[bytes] = Counter()
    burned = 0
    for number in range(1, head + 1):
        block = tree.block(number)
        for tx in block.transaction_hashes:
            h = bytes.fromhex(tx[2:])
            seen[h] += 1
            if h in ledger.l2_txs:
                burned += tree.receipt(h).gas_used * int(block.base_fee)  # type: ignore[union-attr]
            else:
                assert h in credited, f"L2 block {number} mints {tx}, which no canonical L1 deposit makes"
    twice = {credited[h]["index"]: seen[h] for h in credited if seen[h] != 1}
    assert twice == {}, f"canonical deposits (portal index: times credited) not credited exactly once: {twice}"
    assert [h for h in ledger.l2_txs if seen[h] != 1] == []
    for h, d in credited.items():
        record = tree.deposit_record(h)
        assert record is not None and record.status == bpb.DEPOSIT_STATUS_CREDITED, (d["index"], record)
    for h in ledger.orphans - credited.keys():  # reorged out before its depth: it never happened
        record = tree.deposit_record(h)
        assert record is None or record.status == bpb.DEPOSIT_STATUS_REORGED, record

    # L2 supply: every balance (MESSAGE_PASSER's is what was withdrawn) plus what was burned.
    holders = {a for a, _ in genesis.alloc} | {d["to"] for d in l1_deposits} | {MESSAGE_PASSER, FEE_VAULT}
    supply = sum(tree.account(a)[0] for a in holders)
    assert supply + burned - sum(b for _, b in genesis.alloc) == minted, "L2 supply moved otherwise than L1 minted"
    return (f"{len(l1_deposits)} canonical deposits ({minted} wei, {len(ledger.orphans - credited.keys())} "
            f"reorged out), {burned} wei burned, L2 head {head}")


def check_withdrawals(tree: Tree, ledger: Ledger) -> str:
    """Every withdrawal paid out on L1 exactly once (all are settled), what L1 holds is what entered
    L2 and has not left, and the relayer sent no L1 transaction twice. A summary."""
    minted = sum(d["mint"] for d in tree.logs("DepositQueued"))
    messages = {m.hash: m for m in tree.messages()}
    withdrawn = tree.account(MESSAGE_PASSER)[0]
    assert withdrawn == sum(int(m.value) for m in messages.values())

    finalized = tree.logs("WithdrawalFinalized")
    refunded = tree.logs("WithdrawalRefunded")
    paid: Counter[str] = Counter()
    for e in finalized:
        if e["success"]:
            paid["0x" + e["withdrawalHash"].hex()] += 1
    for e in refunded:
        key = "0x" + e["withdrawalHash"].hex()
        paid[key] += 1
        assert int(messages[key].value) == e["value"]
    assert [h for h, n in paid.items() if n > 1] == [], "a withdrawal paid out twice"
    assert set(paid) == set(messages), "a withdrawal not paid out, or one L2 never recorded"
    first = {}
    for e in finalized:
        first.setdefault("0x" + e["withdrawalHash"].hex(), e["success"])
    assert {h for h, ok in first.items() if not ok} == ledger.reverting  # FAILED first, exactly those
    assert tree.balance(tree.portal) == minted - withdrawn, "the ETH locked on L1 is not what L2 holds"
    for h in messages:
        record = tree.withdrawal(h)
        assert record is not None and record.status == bpb.WITHDRAWAL_STATUS_FINALIZED, (h, record)

    # The relayer: one L1 transaction per distinct (withdrawal, action), none sent twice. Nobody else
    # proves or finalizes here, so it never has to fill a nonce with a cancel: its nonce counts
    # exactly its actions, and a duplicate (which would revert, or re-prove) shows up in it.
    actions = [("prove", "0x" + e["withdrawalHash"].hex()) for e in tree.logs("WithdrawalProven")
               if e["prover"] == RELAYER]
    for e in finalized:
        tx = tree.rpc("eth_getTransactionByHash", "0x" + e["log"].tx_hash.hex())
        if bytes.fromhex(tx["from"][2:]) == RELAYER:
            actions.append(("finalize", "0x" + e["withdrawalHash"].hex()))
    assert len(set(actions)) == len(actions), "the relayer did one action twice"
    assert int(tree.rpc("eth_getTransactionCount", checksum(RELAYER), "latest"), 16) == len(actions), \
        "the relayer sent an L1 transaction that is not one of its actions (a duplicate that reverted)"
    return (f"{len(messages)} withdrawals ({withdrawn} wei; {len(ledger.reverting)} failed first, "
            f"{len(refunded)} refunded), {len(actions)} relayer transactions")


# --- the test -------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
@settings(max_examples=5, deadline=None, derandomize=True, database=None, phases=(Phase.generate,),
          suppress_health_check=list(HealthCheck))
@given(plan=plans())
def test_no_value_is_created_or_lost_and_nothing_crosses_twice(tree: Tree, ledger: Ledger, plan: Plan) -> None:
    print(f"\nplan: {plan}")
    ledger.pending.clear()  # a failed example's (hypothesis runs a failing one once more to report it)
    try:
        for op in plan.ops:
            run(tree, ledger, op)
        settle_deposits(tree)
        check_deposits(tree, ledger)  # first, so that a wrong credit fails here, by its name
        settle_withdrawals(tree, ledger, plan)
        print(f"checked: {check_deposits(tree, ledger)}; {check_withdrawals(tree, ledger)}")
    except Exception:
        # The first failure, as it happened (the report's rerun starts from the state it left).
        traceback.print_exc()
        raise
