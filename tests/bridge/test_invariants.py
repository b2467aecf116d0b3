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
and while the relayer proves and finalizes (just after a withdrawal turns IN_OUTPUT or READY). Time
is warped on anvil (evm_increaseTime, anvil_mine) instead of waited out.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

import grpc
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from protocol import (
    DEV_PRIVATE_KEYS,
    FEE_VAULT,
    MESSAGE_PASSER,
    Deposit,
    devnet_genesis,
    encode_withdrawal_call,
    intrinsic_gas,
)
from protos.l2node.bridge.v1 import bridge_pb2 as bpb
from protos.l2node.bridge.v1 import bridge_pb2_grpc as bpb_grpc
from protos.l2node.sequencer.v1 import sequencer_pb2 as spb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as spb_grpc
from protos.l2node.supervisor.v1 import supervisor_pb2 as cpb
from protos.l2node.supervisor.v1 import supervisor_pb2_grpc as cpb_grpc
from services.l1 import GWEI, Artifact, Contract, LocalSigner, Log, UnsignedTransaction, checksum
from tests.l1.anvil import Anvil
from tests.ports import free_base_port

T = TypeVar("T")
ETHER: Final = 10**18
#: Anvil dev accounts with no role in the tree (0 deploys, 1 batches, 7 relays, 8 proposes,
#: 9 challenges): the users, on both layers (same key), and the one that backs the portal.
USERS: Final = (2, 3, 4, 5)
BACKER: Final = 6
RELAYER: Final = LocalSigner(DEV_PRIVATE_KEYS[7]).address
#: The tree's L1 depth for deposits and derivation (sequencer, rollups and bridge defaults).
DEPTH: Final = 4
#: The devnet's challenge window and proof maturity delay (l2node/node/params.py), and a second more.
WARP_S: Final = 21
#: The L1 gas a withdrawal's target call gets: plenty for an EOA and for the harness's bookkeeping.
TARGET_GAS: Final = 200_000
PORTAL: Final = Contract(Artifact.load("DepositPortal"))
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


users = st.sampled_from(USERS)
deposits = st.builds(DepositOp, users, users, st.integers(1, 2_000).map(lambda n: n * 10**15))
withdrawals = st.builds(WithdrawOp, users, st.integers(1, 100).map(lambda n: n * 10**15), st.booleans(),
                        st.sampled_from(("retry", "refund")), st.binary(max_size=8))
kills = st.builds(KillOp, st.sampled_from(("bridge", "sequencer")), st.integers(0, 300))
reorgs = st.builds(ReorgOp, st.integers(1, 2), st.none() | deposits, st.booleans())


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """Each plan has a deposit, a withdrawal to a reverting target, a kill and a reorg, plus up
    to four more random steps, in a random order."""
    must = [draw(deposits), replace(draw(withdrawals), reverting=True), draw(kills), draw(reorgs)]
    extra = draw(st.lists(st.one_of(deposits, withdrawals, kills, reorgs), max_size=4))
    return Plan(tuple(draw(st.permutations(must + extra))), draw(st.none() | kills), draw(kills))


# --- the tree -------------------------------------------------------------------------------------

def wait_for(pred: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def retried(call: Callable[[], T], timeout: float = 30.0) -> T:
    """A gRPC call to a worker that may be restarting (killed on purpose): UNAVAILABLE is retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                    or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def channel(address: str) -> grpc.Channel:
    """A channel that reconnects within a fraction of a second to a worker the test killed (gRPC's
    default backoff grows to minutes)."""
    return grpc.insecure_channel(address, options=[("grpc.initial_reconnect_backoff_ms", 50),
                                                   ("grpc.min_reconnect_backoff_ms", 50),
                                                   ("grpc.max_reconnect_backoff_ms", 500)])


class Tree:
    """`l2node up` with its own anvil; the test's handles on L1, the sequencer, the bridge and the
    control plane."""

    def __init__(self, tmp: pathlib.Path) -> None:
        self.data_dir = tmp / "data"
        config = tmp / "l2node.toml"
        # Outputs as soon as a block is derived, and finalized as soon as the window allows, so
        # that a withdrawal's round trip is bound by the warps, not by the proposer's pace.
        config.write_text(f"[node]\nbase_port = {free_base_port()}\nperiod_s = 5.0\nintensity = 50\n"
                          "[l1]\nport = 0\n"
                          "[workers.rollups.settings]\noutput_interval_s = 1.0\npoll_interval_s = 0.25\n"
                          "idle_poll_s = 1.0\n")
        self.log = open(tmp / "up.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "l2node.cli", "up", "--data-dir", str(self.data_dir), "--config", str(config)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(self._up, 90, "tree up")
            doc = json.loads((self.data_dir / "run" / "endpoints.json").read_text())
            self.l1 = Anvil(int(doc["l1_rpc"].rsplit(":", 1)[1]))
            self.control = cpb_grpc.SupervisorServiceStub(channel(doc["control"]))
            address = {c["id"]: c["address"] for c in doc["children"]}
            self.seq = spb_grpc.SequencerServiceStub(channel(address["sequencer"]))
            self.bridge = bpb_grpc.BridgeServiceStub(channel(address["bridge"]))
            contracts = json.loads((self.data_dir / "l1" / "contracts.json").read_text())["contracts"]
            self.portal = bytes.fromhex(contracts["DepositPortal"][2:])
        except BaseException:
            self.close()
            raise

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.name
        try:
            rows = json.loads((self.data_dir / "run" / "endpoints.json").read_text())["children"]
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return "bridge" in {c["id"] for c in rows} and all(c["state"] == "running" for c in rows)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    # L1

    def rpc(self, method: str, *params: Any) -> Any:
        return self.l1.rpc(method, *params)

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def sign_l1(self, key: bytes, to: bytes, data: bytes, value: int = 0) -> tuple[bytes, bytes]:
        """(raw, hash) of an L1 transaction from ``key`` at its next nonce."""
        signer = LocalSigner(key)
        sender = checksum(signer.address)
        nonce = int(self.rpc("eth_getTransactionCount", sender, "pending"), 16)
        base = int(self.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
        gas = int(self.rpc("eth_estimateGas", {"from": sender, "to": checksum(to), "data": "0x" + data.hex(),
                                               "value": hex(value)}), 16)
        signed = signer.sign(UnsignedTransaction(31337, nonce, GWEI, 2 * base + GWEI, gas * 3 // 2, to, value, data))
        return signed.raw, signed.hash

    def send_l1(self, key: bytes, to: bytes, data: bytes, value: int = 0) -> dict[str, Any]:
        """Send, mine it at once, and its receipt (which must be a success)."""
        raw, tx_hash = self.sign_l1(key, to, data, value)
        self.rpc("eth_sendRawTransaction", "0x" + raw.hex())
        self.mine()
        receipt = self.l1.receipt("0x" + tx_hash.hex())
        assert receipt["status"] == "0x1", receipt
        return dict(receipt)

    def read(self, contract: Contract, address: bytes, function: str, *args: Any) -> tuple[Any, ...]:
        data = "0x" + contract.encode_call(function, *args).hex()
        out = self.rpc("eth_call", {"to": checksum(address), "data": data}, "latest")
        return contract.decode_output(function, bytes.fromhex(out[2:]))

    def logs(self, event: str) -> list[dict[str, Any]]:
        """The portal's ``event`` logs on the canonical chain, decoded (plus the log itself)."""
        raw = self.rpc("eth_getLogs", {"address": checksum(self.portal), "fromBlock": "0x0", "toBlock": "latest",
                                       "topics": ["0x" + PORTAL.topic(event).hex()]})
        out = []
        for doc in raw:
            decoded = PORTAL.decode_log(Log.from_json(doc))
            assert decoded is not None
            out.append({**decoded.args, "log": decoded.log})
        return out

    def balance(self, address: bytes) -> int:
        return int(self.rpc("eth_getBalance", checksum(address), "latest"), 16)

    def canonical_deposits(self) -> list[dict[str, Any]]:
        return self.logs("DepositQueued")

    # the tree

    def kill(self, worker: str) -> None:
        """SIGKILL ``worker``'s process (its pid from the control plane); the supervisor restarts it."""
        children = retried(lambda: self.control.WhichChildren(cpb.WhichChildrenRequest(), timeout=5)).children
        (child,) = [c for c in children if c.id == worker]
        assert child.pid > 0, child
        os.kill(child.pid, signal.SIGKILL)

    # L2

    def account(self, address: bytes) -> tuple[int, int]:
        """(balance, nonce) on L2."""
        reply = retried(lambda: self.seq.GetAccount(spb.GetAccountRequest(address="0x" + address.hex()), timeout=5))
        return int(reply.balance), reply.nonce

    def receipt(self, tx_hash: bytes) -> Any:
        return retried(lambda: self.seq.GetTransactionReceipt(
            spb.GetTransactionReceiptRequest(tx_hash="0x" + tx_hash.hex()), timeout=5)).receipt

    def block(self, number: int) -> Any:
        return retried(lambda: self.seq.GetBlock(spb.GetBlockRequest(number=number), timeout=5)).block

    def messages(self) -> list[Any]:
        out: list[Any] = []
        while True:
            request = spb.ListMessagesRequest(from_nonce=len(out))
            page = retried(lambda: self.seq.ListMessages(request, timeout=5))  # noqa: B023 (called at once)
            out += page.messages
            if not page.messages or len(out) >= page.message_count:
                return out

    def deposit_record(self, deposit_hash: bytes) -> Any | None:
        try:
            return retried(lambda: self.bridge.GetDeposit(bpb.GetDepositRequest(deposit_hash="0x" + deposit_hash.hex()),
                                                          timeout=5)).deposit
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def withdrawal(self, withdrawal_hash: str) -> Any | None:
        try:
            return retried(lambda: self.bridge.GetWithdrawal(
                bpb.GetWithdrawalRequest(withdrawal_hash=withdrawal_hash), timeout=5)).withdrawal
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise


@dataclass
class Ledger:
    """What the test did, across examples (the tree is the module's): its own L2 transactions, the
    withdrawals still to settle, and the L2 blocks scanned so far."""

    harness: bytes
    l2_txs: set[bytes] = field(default_factory=set)
    #: withdrawal tx hash -> its op, for the current example.
    pending: dict[bytes, WithdrawOp] = field(default_factory=dict)
    #: Every example's withdrawal that went to a reverting target: its hash (once known).
    reverting: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    t = Tree(tmp_path_factory.mktemp("invariants"))
    try:
        yield t
    finally:
        t.close()


@pytest.fixture(scope="module")
def ledger(tree: Tree) -> Ledger:
    """The reverting target, and 5 ETH deposited to back the withdrawals (which draw on the dev
    accounts' L2 genesis balances, which L1 never locked: a withdrawal needs ETH in the portal)."""
    backer = DEV_PRIVATE_KEYS[BACKER]
    harness = deploy(tree, backer, HARNESS.encode_deploy(tree.portal))
    tree.send_l1(backer, harness, HARNESS.encode_call("configure", True, 0, b""))
    deposit(tree, DepositOp(BACKER, BACKER, 5 * ETHER))
    settle_deposits(tree)
    return Ledger(harness)


def deploy(tree: Tree, key: bytes, code: bytes) -> bytes:
    signer = LocalSigner(key)
    sender = checksum(signer.address)
    nonce = int(tree.rpc("eth_getTransactionCount", sender, "pending"), 16)
    base = int(tree.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
    signed = signer.sign(UnsignedTransaction(31337, nonce, GWEI, 2 * base + GWEI, 3_000_000, None, 0, code))
    tree.rpc("eth_sendRawTransaction", "0x" + signed.raw.hex())
    tree.mine()
    receipt = tree.l1.receipt("0x" + signed.hash.hex())
    assert receipt["status"] == "0x1", receipt
    return bytes.fromhex(receipt["contractAddress"][2:])


# --- the steps ------------------------------------------------------------------------------------

def address_of(index: int) -> bytes:
    return LocalSigner(DEV_PRIVATE_KEYS[index]).address


def deposit(tree: Tree, op: DepositOp) -> None:
    tree.send_l1(DEV_PRIVATE_KEYS[op.sender], tree.portal, PORTAL.encode_call("depositTransaction", address_of(op.to)),
                 op.wei)


def withdraw(tree: Tree, ledger: Ledger, op: WithdrawOp) -> None:
    """An L2 transaction to MESSAGE_PASSER, waited for until sealed (the next step may kill the
    sequencer: only an acknowledged, durable transaction is the test's to count)."""
    key = DEV_PRIVATE_KEYS[op.sender]
    target = ledger.harness if op.reverting else os.urandom(20)
    data = encode_withdrawal_call(target, TARGET_GAS, op.data)
    _, nonce = tree.account(address_of(op.sender))
    base = int(retried(lambda: tree.seq.GetChainInfo(spb.GetChainInfoRequest(), timeout=5)).base_fee)
    signed = LocalSigner(key).sign(UnsignedTransaction(901, nonce, GWEI, 2 * base + GWEI, intrinsic_gas(data, ()),
                                                       MESSAGE_PASSER, op.wei, data))
    retried(lambda: tree.seq.SendRawTransaction(spb.SendRawTransactionRequest(raw_transaction=signed.raw), timeout=5))
    ledger.l2_txs.add(signed.hash)
    ledger.pending[signed.hash] = op
    wait_for(lambda: tree.receipt(signed.hash).HasField("block_number"), 30, "the withdrawal sealed")


def reorg(tree: Tree, op: ReorgOp) -> None:
    """Replace the last blocks of L1 (fewer than DEPTH: no deposit credited, no batch derived is
    touched), with the op's fresh deposit in them dropped or moved to a later block."""
    if op.deposit is None:
        tree.rpc("anvil_reorg", op.depth, [])
        return
    raw, tx_hash = tree.sign_l1(DEV_PRIVATE_KEYS[op.deposit.sender], tree.portal,
                                PORTAL.encode_call("depositTransaction", address_of(op.deposit.to)), op.deposit.wei)
    tree.rpc("eth_sendRawTransaction", "0x" + raw.hex())
    tree.mine()
    mined = int(tree.l1.receipt("0x" + tx_hash.hex())["blockNumber"], 16)
    depth = max(op.depth, tree.head() - mined + 1)
    assert depth < DEPTH, f"the deposit is already {depth} blocks deep"
    tree.rpc("anvil_reorg", depth, [["0x" + raw.hex(), depth - 1]] if op.move else [])


def run(tree: Tree, ledger: Ledger, op: Op) -> None:
    if isinstance(op, DepositOp):
        deposit(tree, op)
    elif isinstance(op, WithdrawOp):
        withdraw(tree, ledger, op)
    elif isinstance(op, KillOp):
        time.sleep(op.delay_ms / 1000)
        tree.kill(op.worker)
    else:
        reorg(tree, op)


# --- settling -------------------------------------------------------------------------------------

def settle_deposits(tree: Tree) -> None:
    """Mine past the depth; every canonical deposit is then credited on L2."""
    tree.mine(DEPTH + 1)
    hashes = [deposit_hash(d) for d in tree.canonical_deposits()]
    wait_for(lambda: all(tree.receipt(h).HasField("block_number") for h in hashes), 30,
             "every canonical deposit credited on L2")
    wait_for(lambda: all((r := tree.deposit_record(h)) is not None and r.status == bpb.DEPOSIT_STATUS_CREDITED
                         for h in hashes), 30, "the bridge sees every canonical deposit credited")


def deposit_hash(log: dict[str, Any]) -> bytes:
    return Deposit(log["sourceHash"], log["to"], log["mint"]).hash()


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

    def reach(status: int, kill: KillOp | None, kill_at: int, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            now = statuses()
            if kill is not None and any(s >= kill_at for s in now):
                threading.Timer(kill.delay_ms / 1000, tree.kill, (kill.worker,)).start()
                kill = None
            if all(s >= status for s in now):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout} s ({now})")
            tree.mine()  # batches and proposals reach their depth sooner than at a block a second
            time.sleep(0.2)

    reach(bpb.WITHDRAWAL_STATUS_PROVEN, plan.kill_proving, bpb.WITHDRAWAL_STATUS_IN_OUTPUT, 60,
          "proven by the relayer")
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
        want = bpb.WITHDRAWAL_OUTCOME_REFUNDED if op.remedy == "refund" else bpb.WITHDRAWAL_OUTCOME_SUCCEEDED
        wait_for(lambda h=h, want=want: (r := tree.withdrawal(h)) is not None and r.outcome == want, 30,  # type: ignore[misc]
                 f"the bridge sees {h}'s {op.remedy}")
    ledger.pending.clear()


def withdrawal_tuple(record: Any) -> tuple[Any, ...]:
    return (record.nonce, bytes.fromhex(record.sender[2:]), bytes.fromhex(record.target[2:]), int(record.value),
            record.gas_limit, bytes.fromhex(record.data[2:]))


# --- the invariants -------------------------------------------------------------------------------

def check(tree: Tree, ledger: Ledger) -> None:
    genesis = devnet_genesis()
    l1_deposits = tree.canonical_deposits()
    assert [d["index"] for d in l1_deposits] == list(range(len(l1_deposits)))  # no gap, no index twice
    minted = sum(d["mint"] for d in l1_deposits)
    credited = {deposit_hash(d): d for d in l1_deposits}
    messages = {m.hash: m for m in tree.messages()}

    # Every L2 transaction is the test's own or a canonical deposit; each deposit in one block only.
    head = retried(lambda: tree.seq.GetBlock(spb.GetBlockRequest(latest=True), timeout=5)).block.number
    seen: Counter[bytes] = Counter()
    burned = 0
    for number in range(1, head + 1):
        block = tree.block(number)
        for tx in block.transaction_hashes:
            h = bytes.fromhex(tx[2:])
            seen[h] += 1
            if h in ledger.l2_txs:
                burned += tree.receipt(h).gas_used * int(block.base_fee)
            else:
                assert h in credited, f"L2 block {number} mints {tx}, which no canonical L1 deposit makes"
    assert [h for h in credited if seen[h] != 1] == [], "a canonical deposit not credited exactly once"
    assert [h for h in ledger.l2_txs if seen[h] != 1] == []
    for h, d in credited.items():
        record = tree.deposit_record(h)
        assert record is not None and record.status == bpb.DEPOSIT_STATUS_CREDITED, (d["index"], record)

    # L2 supply: what L1 minted, less the base fees burned; MESSAGE_PASSER holds what was withdrawn.
    holders = {a for a, _ in genesis.alloc} | {d["to"] for d in l1_deposits} | {MESSAGE_PASSER, FEE_VAULT}
    supply = sum(tree.account(a)[0] for a in holders)
    assert supply + burned == sum(b for _, b in genesis.alloc) + minted
    withdrawn = tree.account(MESSAGE_PASSER)[0]
    assert withdrawn == sum(int(m.value) for m in messages.values())

    # L1: each withdrawal paid out at most once, and (all settled) exactly once; nothing else left.
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
    assert tree.balance(tree.portal) == minted - withdrawn == minted - sum(int(messages[h].value) for h in paid)

    # The relayer: one L1 transaction per distinct (withdrawal, action), none sent twice.
    actions = [("prove", "0x" + e["withdrawalHash"].hex()) for e in tree.logs("WithdrawalProven")
               if e["prover"] == RELAYER]
    for e in finalized:
        tx = tree.rpc("eth_getTransactionByHash", "0x" + e["log"].tx_hash.hex())
        if bytes.fromhex(tx["from"][2:]) == RELAYER:
            actions.append(("finalize", "0x" + e["withdrawalHash"].hex()))
    assert len(set(actions)) == len(actions), "the relayer did one action twice"
    assert int(tree.rpc("eth_getTransactionCount", checksum(RELAYER), "latest"), 16) == len(actions)
    for h in messages:
        record = tree.withdrawal(h)
        assert record is not None and record.status == bpb.WITHDRAWAL_STATUS_FINALIZED, (h, record)


# --- the test -------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
@settings(max_examples=3, deadline=None, derandomize=True, database=None, phases=(Phase.generate,),
          suppress_health_check=list(HealthCheck))
@given(plan=plans())
def test_no_value_is_created_or_lost_and_nothing_crosses_twice(tree: Tree, ledger: Ledger, plan: Plan) -> None:
    for op in plan.ops:
        run(tree, ledger, op)
    settle_deposits(tree)
    settle_withdrawals(tree, ledger, plan)
    check(tree, ledger)
