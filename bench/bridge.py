"""The bridge on a real devnet (`l2node up`: anvil, sequencer, rollups, bridge with its relayer).

    .venv/bin/python bench/bridge.py [--deposits 30] [--withdrawals 3]

1. Deposit latency: each deposit is mined in L1 block B; this script then mines the blocks up to
   B + depth at once (anvil_mine) and times from there (the deposit just reached the depth at
   which the sequencer may mint it) to the L2 block holding it, as SubscribeBlocks delivers it,
   and to the bridge's CREDITED event (SubscribeEvents). p50 / p99 over ``--deposits``.
2. The withdrawal round trip on the devnet as it runs (its 1 s L1 blocks, the proposer's pace, the
   devnet's 20 s challenge window and 10 s proof maturity; no time warp): ``--withdrawals`` sent
   at once, each phase's wall time from the bridge's events (INITIATED -> IN_OUTPUT -> PROVEN ->
   READY -> FINALIZED), proven and finalized by the relayer.
3. The L1 gas of the relayer's prove and finalize transactions in that round trip, and
   bench/portal_gas.py's measure() (the portal alone on a fresh anvil), beside Optimism's published
   figures.

``Tree`` (start a tree, reach its parts, send on L1 and L2) is also the invariant test's
(tests/bridge/test_invariants.py).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any, Final, TypeVar

import grpc

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from l2node.node.l1 import free_loopback_port
from protocol import DEV_PRIVATE_KEYS, MESSAGE_PASSER, Deposit, encode_withdrawal_call, intrinsic_gas
from protos.l2node.bridge.v1 import bridge_pb2 as bpb
from protos.l2node.bridge.v1 import bridge_pb2_grpc as bpb_grpc
from protos.l2node.sequencer.v1 import sequencer_pb2 as spb
from protos.l2node.sequencer.v1 import sequencer_pb2_grpc as spb_grpc
from protos.l2node.supervisor.v1 import supervisor_pb2 as cpb
from protos.l2node.supervisor.v1 import supervisor_pb2_grpc as cpb_grpc
from services.l1 import GWEI, Artifact, Contract, LocalSigner, Log, UnsignedTransaction, checksum
from tests.node.test_up import stop_tree

T = TypeVar("T")
ETHER: Final = 10**18
L1_CHAIN_ID: Final = 31337
L2_CHAIN_ID: Final = 901
#: The tree's L1 depth for deposits (the sequencer's and the bridge's default confirmation_depth).
DEPTH: Final = 4
PORTAL: Final = Contract(Artifact.load("DepositPortal"))
ROOT: Final = pathlib.Path(__file__).resolve().parents[1]


def wait_for(pred: Callable[[], T | None], timeout: float, what: str, poll_s: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(poll_s)


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
    """A channel that reconnects within a fraction of a second to a restarted worker (gRPC's default
    backoff grows to minutes)."""
    return grpc.insecure_channel(address, options=[("grpc.initial_reconnect_backoff_ms", 50),
                                                   ("grpc.min_reconnect_backoff_ms", 50),
                                                   ("grpc.max_reconnect_backoff_ms", 500)])


def address_of(dev: int) -> bytes:
    return LocalSigner(DEV_PRIVATE_KEYS[dev]).address


def deposit_hash(log: dict[str, Any]) -> bytes:
    """The L2 transaction hash of a decoded DepositQueued log."""
    return Deposit(log["sourceHash"], log["to"], log["mint"]).hash()


class Tree:
    """`l2node up` with its own anvil (in ``tmp``); handles on L1, the sequencer, the bridge and the
    control plane. ``config`` is appended to the node's configuration."""

    def __init__(self, tmp: pathlib.Path, base_port: int, config: str = "") -> None:
        self.data_dir = tmp / "data"
        self._killed: dict[str, int] = {}  # worker -> the pid last SIGKILLed
        path = tmp / "l2node.toml"
        path.write_text(f"[node]\nbase_port = {base_port}\nperiod_s = 5.0\nintensity = 50\n[l1]\nport = 0\n{config}")
        self.log = open(tmp / "up.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "l2node.cli", "up", "--data-dir", str(self.data_dir), "--config", str(path)],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT)
        try:
            wait_for(self._up, 90, "tree up")
            doc = json.loads((self.data_dir / "run" / "endpoints.json").read_text())
            self.l1_url: str = doc["l1_rpc"]
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
        if self.proc.poll() is not None:
            raise RuntimeError(f"l2node up exited: see {self.log.name}")
        try:
            rows = json.loads((self.data_dir / "run" / "endpoints.json").read_text())["children"]
        except (FileNotFoundError, json.JSONDecodeError):
            return False
        return "bridge" in {c["id"] for c in rows} and all(c["state"] == "running" for c in rows)

    def close(self) -> None:
        stop_tree(self.proc)
        self.log.close()

    # L1

    def rpc(self, method: str, *params: Any) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).encode()
        request = urllib.request.Request(self.l1_url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def head(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def l1_receipt(self, tx_hash: bytes, timeout: float = 30.0) -> dict[str, Any]:
        found: dict[str, Any] = wait_for(lambda: self.rpc("eth_getTransactionReceipt", "0x" + tx_hash.hex()), timeout,
                                         f"an L1 receipt for 0x{tx_hash.hex()}", 0.02)
        return found

    def sign_l1(self, key: bytes, to: bytes | None, data: bytes, value: int = 0) -> tuple[bytes, bytes]:
        """(raw, hash) of an L1 transaction from ``key`` at its next nonce."""
        signer = LocalSigner(key)
        sender = checksum(signer.address)
        nonce = int(self.rpc("eth_getTransactionCount", sender, "pending"), 16)
        base = int(self.rpc("eth_getBlockByNumber", "latest", False)["baseFeePerGas"], 16)
        call = {"from": sender, "data": "0x" + data.hex(), "value": hex(value)} | ({"to": checksum(to)} if to else {})
        gas = int(self.rpc("eth_estimateGas", call), 16)
        signed = signer.sign(UnsignedTransaction(L1_CHAIN_ID, nonce, GWEI, 2 * base + GWEI, gas * 3 // 2, to, value,
                                                 data))
        return signed.raw, signed.hash

    def send_l1(self, key: bytes, to: bytes | None, data: bytes, value: int = 0) -> dict[str, Any]:
        """Send, mine it at once, and its receipt (which must be a success)."""
        raw, tx_hash = self.sign_l1(key, to, data, value)
        self.rpc("eth_sendRawTransaction", "0x" + raw.hex())
        self.mine()
        receipt = self.l1_receipt(tx_hash)
        if receipt["status"] != "0x1":
            raise RuntimeError(f"L1 transaction reverted: {receipt}")
        return receipt

    def deposit(self, sender: int, to: int, wei: int) -> dict[str, Any]:
        """DepositPortal.depositTransaction from dev account ``sender`` to dev account ``to``; its receipt."""
        return self.send_l1(DEV_PRIVATE_KEYS[sender], self.portal,
                            PORTAL.encode_call("depositTransaction", address_of(to)), wei)

    def read(self, contract: Contract, address: bytes, function: str, *args: Any) -> tuple[Any, ...]:
        data = "0x" + contract.encode_call(function, *args).hex()
        out = self.rpc("eth_call", {"to": checksum(address), "data": data}, "latest")
        return contract.decode_output(function, bytes.fromhex(out[2:]))

    def logs(self, event: str) -> list[dict[str, Any]]:
        """The portal's ``event`` logs on the canonical chain, decoded (``log``: the log itself)."""
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

    # the tree

    def kill(self, worker: str) -> None:
        """SIGKILL ``worker``'s process (its pid from the control plane, once it has one: pid 0 is
        a child being restarted, and kill(0) would hit this process's own group); the supervisor
        restarts it. Two kills in a row: the control plane may still list the pid just killed
        (and already reaped) until the supervisor sees the exit, so that pid is never the answer,
        and a pid that vanished before the signal is read again."""
        def pid() -> int:
            children = retried(lambda: self.control.WhichChildren(cpb.WhichChildrenRequest(), timeout=5)).children
            (child,) = [c for c in children if c.id == worker]
            return 0 if child.pid == self._killed.get(worker) else int(child.pid)

        def signalled() -> bool:
            target = wait_for(pid, 30, f"{worker} running")
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                return False
            self._killed[worker] = target
            return True

        wait_for(signalled, 30, f"{worker} killed")

    # L2

    def account(self, address: bytes) -> tuple[int, int]:
        """(balance, nonce) on L2."""
        reply = retried(lambda: self.seq.GetAccount(spb.GetAccountRequest(address="0x" + address.hex()), timeout=5))
        return int(reply.balance), reply.nonce

    def receipt(self, tx_hash: bytes) -> Any | None:
        """The sequencer's receipt of an L2 transaction (a deposit's too), None if it has none."""
        try:
            return retried(lambda: self.seq.GetTransactionReceipt(
                spb.GetTransactionReceiptRequest(tx_hash="0x" + tx_hash.hex()), timeout=5)).receipt
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def sealed(self, tx_hash: bytes) -> bool:
        """Whether an L2 transaction (a deposit's too) is in a sealed block."""
        receipt = self.receipt(tx_hash)
        return receipt is not None and receipt.HasField("block_number")

    def block(self, number: int | None = None) -> Any:
        request = spb.GetBlockRequest(latest=True) if number is None else spb.GetBlockRequest(number=number)
        return retried(lambda: self.seq.GetBlock(request, timeout=5)).block

    def messages(self) -> list[Any]:
        """Every L2 -> L1 message the sequencer's chain recorded, in nonce order."""
        out: list[Any] = []
        while True:
            request = spb.ListMessagesRequest(from_nonce=len(out))
            page = retried(lambda: self.seq.ListMessages(request, timeout=5))  # noqa: B023 (called at once)
            out += page.messages
            if not page.messages or len(out) >= page.message_count:
                return out

    def withdraw(self, sender: int, wei: int, target: bytes, gas_limit: int, data: bytes = b"") -> bytes:
        """An L2 transaction from dev account ``sender`` to MESSAGE_PASSER, acknowledged (durable);
        its hash."""
        calldata = encode_withdrawal_call(target, gas_limit, data)
        _, nonce = self.account(address_of(sender))
        base = int(retried(lambda: self.seq.GetChainInfo(spb.GetChainInfoRequest(), timeout=5)).base_fee)
        signed = LocalSigner(DEV_PRIVATE_KEYS[sender]).sign(UnsignedTransaction(
            L2_CHAIN_ID, nonce, GWEI, 2 * base + GWEI, intrinsic_gas(calldata, ()), MESSAGE_PASSER, wei, calldata))
        retried(lambda: self.seq.SendRawTransaction(spb.SendRawTransactionRequest(raw_transaction=signed.raw),
                                                    timeout=5))
        return signed.hash

    def deposit_record(self, deposit_hash: bytes) -> Any | None:
        """The bridge's record of a deposit (by its L2 hash), None if it has none."""
        try:
            return retried(lambda: self.bridge.GetDeposit(bpb.GetDepositRequest(deposit_hash="0x" + deposit_hash.hex()),
                                                          timeout=5)).deposit
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def withdrawal(self, withdrawal_hash: str) -> Any | None:
        """The bridge's record of a withdrawal (0x-hex hash), None if it has none."""
        try:
            return retried(lambda: self.bridge.GetWithdrawal(
                bpb.GetWithdrawalRequest(withdrawal_hash=withdrawal_hash), timeout=5)).withdrawal
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise


# --- the bench ------------------------------------------------------------------------------------

class Arrivals:
    """When each L2 transaction hash first arrived in a sealed block (SubscribeBlocks) and each
    bridge status change (SubscribeEvents), by a monotonic clock, from background streams."""

    def __init__(self, tree: Tree) -> None:
        self.blocks: dict[str, float] = {}
        self.events: dict[tuple[str, int], float] = {}
        self._streams = [tree.seq.SubscribeBlocks(spb.SubscribeBlocksRequest()),
                         tree.bridge.SubscribeEvents(bpb.SubscribeEventsRequest())]
        threading.Thread(target=self._blocks, daemon=True).start()
        threading.Thread(target=self._events, daemon=True).start()

    def _blocks(self) -> None:
        try:
            for reply in self._streams[0]:
                now = time.monotonic()
                for tx in reply.block.transaction_hashes:
                    self.blocks.setdefault(tx, now)
        except grpc.RpcError:
            pass

    def _events(self) -> None:
        try:
            for reply in self._streams[1]:
                now = time.monotonic()
                if reply.HasField("deposit"):
                    self.events.setdefault((reply.deposit.deposit_hash, reply.deposit.status), now)
                else:
                    w = reply.withdrawal
                    self.events.setdefault((w.withdrawal_hash, w.status), now)
        except grpc.RpcError:
            pass

    def close(self) -> None:
        for stream in self._streams:
            stream.cancel()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def deposit_latency(tree: Tree, arrivals: Arrivals, count: int) -> tuple[list[float], list[float]]:
    """(to the L2 block, to the bridge's CREDITED) in ms, one pair per deposit."""
    to_block, to_bridge = [], []
    users = (2, 3, 4, 5)
    while len(to_block) < count:
        i = len(to_block)
        receipt = tree.deposit(users[i % 4], users[(i + 1) % 4], ETHER // 10)
        mined = int(receipt["blockNumber"], 16)
        (log,) = [PORTAL.decode_log(Log.from_json(x)) for x in receipt["logs"]]
        assert log is not None
        h = "0x" + deposit_hash(dict(log.args)).hex()
        # As `l2node deposit` does: hand the deposit to the bridge, which then watches L1 closely.
        track = bpb.TrackDepositRequest(l1_tx_hash=receipt["transactionHash"])
        retried(lambda: tree.bridge.TrackDeposit(track, timeout=10))  # noqa: B023 (called at once)
        missing = mined + DEPTH - tree.head()
        if missing <= 0:  # anvil's own block timer got there first: the start is unknown
            continue
        tree.mine(missing)
        start = time.monotonic()
        wait_for(lambda h=h: h in arrivals.blocks and (h, bpb.DEPOSIT_STATUS_CREDITED) in arrivals.events,  # type: ignore[misc]
                 30, "the deposit credited", 0.005)
        to_block.append((arrivals.blocks[h] - start) * 1000)
        to_bridge.append((arrivals.events[(h, bpb.DEPOSIT_STATUS_CREDITED)] - start) * 1000)
        time.sleep(0.2 + (i % 7) * 0.05)  # not in step with the pollers
    return to_block, to_bridge


PHASES: Final = (("sent -> INITIATED (sealed)", bpb.WITHDRAWAL_STATUS_INITIATED),
                 ("INITIATED -> IN_OUTPUT", bpb.WITHDRAWAL_STATUS_IN_OUTPUT),
                 ("IN_OUTPUT -> PROVEN", bpb.WITHDRAWAL_STATUS_PROVEN),
                 ("PROVEN -> READY", bpb.WITHDRAWAL_STATUS_READY),
                 ("READY -> FINALIZED", bpb.WITHDRAWAL_STATUS_FINALIZED))


def round_trip(tree: Tree, arrivals: Arrivals, count: int) -> tuple[list[list[float]], list[int], list[int]]:
    """``count`` withdrawals at once; per withdrawal the seconds of each phase, and the L1 gas of
    the relayer's prove and finalize transactions."""
    sent = {}
    for i in range(count):
        tx = tree.withdraw(2 + i % 4, ETHER // 100, os.urandom(20), 100_000)
        sent[tx] = time.monotonic()
    by_tx = {}

    def hashes() -> bool:
        by_tx.update({bytes.fromhex(m.tx_hash[2:]): m.hash for m in tree.messages()})
        return all(tx in by_tx for tx in sent)

    wait_for(hashes, 30, "the withdrawals sealed", 0.05)
    final = bpb.WITHDRAWAL_STATUS_FINALIZED
    wait_for(lambda: all((by_tx[tx], final) in arrivals.events for tx in sent), 300, "every withdrawal finalized", 0.1)
    phases, prove_gas, finalize_gas = [], [], []
    for tx, t0 in sent.items():
        h = by_tx[tx]
        times = [t0] + [arrivals.events.get((h, status), float("nan")) for _, status in PHASES]
        phases.append([b - a for a, b in itertools.pairwise(times)] + [times[-1] - t0])
        record = tree.withdrawal(h)
        assert record is not None
        for tx_hash, out in ((record.proven_l1_tx_hash, prove_gas), (record.finalized_l1_tx_hash, finalize_gas)):
            out.append(int(tree.l1_receipt(bytes.fromhex(tx_hash[2:]))["gasUsed"], 16))
    return phases, prove_gas, finalize_gas


#: Optimism's published figures (contracts-bedrock snapshots), for comparison.
OPTIMISM: Final = {
    "prove": ("169,229", "GasBenchMark_OptimismPortal:test_proveWithdrawalTransaction_benchmark, "
                         "packages/contracts-bedrock/.gas-snapshot @ 9ae0a566 (Bedrock, Merkle-Patricia proof)"),
    "finalize": ("156,495", '"optimism-portal-unthrottled", packages/contracts-bedrock/snapshots/'
                            "WithdrawalFinalizationGas.json @ 22ccca39"),
}


def on_the_devnet(tree: Tree, deposits: int, withdrawals: int) -> None:
    arrivals = Arrivals(tree)
    to_block, to_bridge = deposit_latency(tree, arrivals, deposits)
    print(f"deposit latency, L1 depth reached -> in a sealed L2 block, over {len(to_block)}: "
          f"p50 {percentile(to_block, 50):.0f} ms, p99 {percentile(to_block, 99):.0f} ms "
          f"(min {min(to_block):.0f}, max {max(to_block):.0f})")
    print(f"deposit latency, L1 depth reached -> the bridge's CREDITED event, over {len(to_bridge)}: "
          f"p50 {percentile(to_bridge, 50):.0f} ms, p99 {percentile(to_bridge, 99):.0f} ms")
    phases, prove_gas, finalize_gas = round_trip(tree, arrivals, withdrawals)
    print(f"withdrawal round trip on the devnet, {len(phases)} at once, relayer on (median, min-max, s):")
    for i, (name, _) in enumerate([*PHASES, ("total", 0)]):
        column = [p[i] for p in phases]
        print(f"  {name:<28} {statistics.median(column):6.1f}  ({min(column):.1f}-{max(column):.1f})")
    print(f"L1 gas, the relayer's transactions: prove {sorted(set(prove_gas))}, "
          f"finalize {sorted(set(finalize_gas))} (finalize includes the target's call: an EOA)")
    arrivals.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deposits", type=int, default=30)
    ap.add_argument("--withdrawals", type=int, default=3)
    args = ap.parse_args()
    command = " ".join(["python", "bench/bridge.py", *sys.argv[1:]])
    print(f"$ {command}")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-bridge-"))  # kept on failure: up.log says why
    tree = Tree(tmp, free_loopback_port())
    try:
        on_the_devnet(tree, args.deposits, args.withdrawals)
    finally:
        tree.close()
    shutil.rmtree(tmp)
    from bench.portal_gas import measure, report  # the portal alone, on a fresh anvil (b13-contracts')
    from tests.l1.anvil import Anvil

    chain = Anvil()
    chain.start()
    try:
        print("the portal alone (bench/portal_gas.py's measure(), 1,000 messages in the output's tree):")
        print(report(asyncio.run(measure(chain.url, chain))))
    finally:
        chain.stop()
    for action, (gas, where) in OPTIMISM.items():
        print(f"Optimism {action}: {gas} gas ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
