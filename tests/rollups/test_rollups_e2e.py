"""The rollups service end to end on anvil: real sequencer, real rollups workers, real contracts.

Honest outputs are proposed and finalize; a faulty proposer is challenged by an independent
challenger node and loses its output and bond; a faulty challenger loses its bond against an
honest output (faults come from the test worker tests/workers/faulty_rollups.py). The L1 mines
a block every second, as `l2node up`'s does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from l2node.node.deploy import DEVNET_CHALLENGER_KEY, DEVNET_PROPOSER_KEY, RollupParams
from protos.l2node.rollups.v1 import rollups_pb2 as rpb
from protos.l2node.rollups.v1 import rollups_pb2_grpc as rpb_grpc
from protos.l2node.sequencer.v1 import sequencer_pb2 as pb
from services.l1 import L1Client, LocalSigner, address
from services.rollups._contracts import Registry
from tests.l1.anvil import Anvil, mining_anvil
from tests.ports import free_port
from tests.sequencer.test_batcher import start_sequencer
from tests.sequencer.test_service import DEV_KEYS, ROOT, sign
from tests.serving import wait_serving

#: Short enough for a test, long enough for the challenger to see an output and act.
PARAMS = RollupParams(challenge_window_s=12, max_clock_s=40)
PAYEE = "0x000000000000000000000000000000000000bEEF"
#: The rollups worker with fault switches (faulty_output, faulty_challenger): a test-only definition.
FAULTY = "tests.workers.faulty_rollups:WORKER"


@pytest.fixture
def l1() -> Iterator[Anvil]:
    with mining_anvil() as node:
        yield node


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], channel: grpc.Channel, log: pathlib.Path) -> None:
        self.proc, self.channel, self.log = proc, channel, log
        self.stub = rpb_grpc.RollupsServiceStub(channel)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.channel.close()

    def outputs(self) -> list[Any]:
        return list(self.stub.ListOutputs(rpb.ListOutputsRequest(page_size=500), timeout=10).outputs)


def start_rollups(tmp_path: pathlib.Path, l1: Anvil, name: str, definition: str = "services.rollups:WORKER",
                  **settings: Any) -> Worker:
    keys = tmp_path / f"{name}-keys"
    keys.mkdir()
    (keys / "proposer.key").write_text(DEVNET_PROPOSER_KEY)
    (keys / "challenger.key").write_text(DEVNET_CHALLENGER_KEY)
    address = f"127.0.0.1:{free_port()}"
    config = {"service": name, "address": address, "data_dir": str(tmp_path / name), "settings": {
        "output_interval_blocks": 3, "output_interval_s": 1.0, "poll_interval_s": 0.2, "confirmation_depth": 1,
        "proposer_key_file": str(keys / "proposer.key"), "challenger_key_file": str(keys / "challenger.key"),
        "l1": {"rpc": l1.url, "contracts": str(tmp_path / "l1" / "contracts.json")}, **settings}}
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "services.runtime", definition,
                             "--config-json", json.dumps(config)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=log.open("ab"), env=dict(os.environ))
    channel = grpc.insecure_channel(address)
    wait_serving(channel, proc=proc)
    return Worker(proc, channel, log)


@contextlib.contextmanager
def cluster(tmp_path: pathlib.Path, l1: Anvil, params: RollupParams = PARAMS, **nodes: dict[str, Any]
            ) -> Iterator[tuple[Any, dict[str, Worker]]]:
    """A sequencer (contracts deployed with ``params``) and one rollups worker per keyword (its
    settings, and optionally its ``definition``)."""
    seq, stub, channel = start_sequencer(tmp_path, l1, params=params)
    workers: dict[str, Worker] = {}
    try:
        for name, settings in nodes.items():
            workers[name] = start_rollups(tmp_path, l1, name, **settings)
        yield stub, workers
    finally:
        for w in workers.values():
            w.stop()
        seq.send_signal(signal.SIGTERM)
        seq.wait(30)
        channel.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def send_transfers(stub: Any, key: str, count: int, start_nonce: int = 0) -> None:
    for n in range(start_nonce, start_nonce + count):
        stub.SendRawTransaction(pb.SendRawTransactionRequest(raw_transaction=sign(key, n, PAYEE, 1 + n)), timeout=10)
        time.sleep(0.06)  # spread over a few blocks


def status(o: Any) -> str:
    return str(rpb.OutputStatus.Name(o.status))


def registry_credit(tmp_path: pathlib.Path, l1: Anvil, key: str) -> int:
    """What the registry owes the holder of ``key`` (bonds won or refunded, not yet withdrawn)."""
    doc = json.loads((tmp_path / "l1" / "contracts.json").read_text())

    async def read() -> int:
        async with L1Client(l1.url) as client:
            registry = Registry(client, address(doc["contracts"]["OutputRegistry"]))
            (owed,) = await registry.contract.read(client, "credit", LocalSigner(key).address)
            return int(owed)

    return asyncio.run(read())


def test_honest_outputs_are_proposed_match_the_sequencer_and_finalize(tmp_path: pathlib.Path, l1: Anvil) -> None:
    with cluster(tmp_path, l1, rollups={}) as (stub, nodes):
        node = nodes["rollups"]
        send_transfers(stub, DEV_KEYS[0], 8)
        outputs = wait_for("two outputs", lambda: [o for o in node.outputs() if o.index > 0][:2] or None)
        first = outputs[0]
        assert first.parent_index == 0 and first.trace_length > 0 and status(first) == "OUTPUT_STATUS_PROPOSED"
        # The output root's preimage is the sequencer's own block: same state root, same hash.
        at = node.stub.GetOutputAtBlock(rpb.GetOutputAtBlockRequest(l2_block=first.l2_block), timeout=10)
        block = stub.GetBlock(pb.GetBlockRequest(number=first.l2_block), timeout=10).block
        assert at.output.index == first.index
        assert (at.preimage.state_root, at.preimage.block_hash) == (block.state_root, block.hash)
        final = wait_for("the first output to finalize", lambda: next(
            (o for o in node.outputs() if o.index == first.index and status(o) == "OUTPUT_STATUS_FINALIZED"), None))
        assert final.output_root == first.output_root
        with pytest.raises(grpc.RpcError) as caught:
            node.stub.GetOutput(rpb.GetOutputRequest(index=10_000), timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_faulty_proposer_loses_to_an_independent_challenger(tmp_path: pathlib.Path, l1: Anvil) -> None:
    nodes = {"proposer": {"definition": FAULTY, "challenge": False, "faulty_output": 1},
             "challenger": {"propose": False}}
    with cluster(tmp_path, l1, **nodes) as (stub, workers):
        challenger = workers["challenger"]
        send_transfers(stub, DEV_KEYS[0], 8)
        bad = wait_for("output 1 invalidated", lambda: next(
            (o for o in challenger.outputs() if o.index == 1 and status(o) == "OUTPUT_STATUS_INVALIDATED"), None),
            timeout=150)
        (dispute_id,) = bad.dispute_ids
        dispute = challenger.stub.GetDispute(rpb.GetDisputeRequest(id=dispute_id), timeout=10).dispute
        assert rpb.DisputeStatus.Name(dispute.status) == "DISPUTE_STATUS_CHALLENGER_WON"
        kinds = [rpb.MoveKind.Name(m.kind) for m in dispute.moves]
        assert kinds[-1] == "MOVE_KIND_STEP" and kinds.count("MOVE_KIND_BISECT") <= dispute.max_rounds
        # The proposer's bond went to the challenger.
        assert registry_credit(tmp_path, l1, DEVNET_CHALLENGER_KEY) >= PARAMS.proposal_bond
        # The proposer's next outputs were proposed meanwhile, from the anchor or a later finalized
        # output, never from output 1; they finalize, and output 1's loss took none of them down.
        wait_for("a correct output after the invalidated one to finalize", lambda: next(
            (o for o in challenger.outputs() if o.index > 1 and status(o) == "OUTPUT_STATUS_FINALIZED"), None),
            timeout=120)
        outputs = challenger.outputs()
        assert all(o.parent_index != 1 for o in outputs)
        assert [o.index for o in outputs if status(o) == "OUTPUT_STATUS_INVALIDATED"] == [1]


def test_a_faulty_challenger_loses_against_an_honest_output(tmp_path: pathlib.Path, l1: Anvil) -> None:
    nodes = {"proposer": {"challenge": False},
             "challenger": {"definition": FAULTY, "propose": False, "faulty_challenger": True}}
    with cluster(tmp_path, l1, **nodes) as (stub, workers):
        proposer, challenger = workers["proposer"], workers["challenger"]
        send_transfers(stub, DEV_KEYS[0], 6)
        disputed = wait_for("a challenged output", lambda: next(
            (o for o in challenger.outputs() if o.dispute_ids), None), timeout=90)
        final = wait_for("the honest output to finalize anyway", lambda: next(
            (o for o in proposer.outputs() if o.index == disputed.index and status(o) == "OUTPUT_STATUS_FINALIZED"),
            None), timeout=150)
        dispute = challenger.stub.GetDispute(rpb.GetDisputeRequest(id=final.dispute_ids[0]), timeout=10).dispute
        assert rpb.DisputeStatus.Name(dispute.status) == "DISPUTE_STATUS_DEFENDER_WON"
        # The challenger's bond and moves are the proposer's: it holds them all as the winner.
        assert int(dispute.bonds) >= PARAMS.challenge_bond


def test_a_proposer_that_stops_answering_loses_on_time(tmp_path: pathlib.Path, l1: Anvil) -> None:
    nodes = {"proposer": {"definition": FAULTY, "challenge": False, "faulty_output": 1},
             "challenger": {"propose": False}}
    with cluster(tmp_path, l1, RollupParams(challenge_window_s=12, max_clock_s=8), **nodes) as (stub, workers):
        challenger = workers["challenger"]
        send_transfers(stub, DEV_KEYS[0], 4)
        challenged = wait_for("output 1 challenged", lambda: next(
            (o for o in challenger.outputs() if o.index == 1 and o.dispute_ids), None))
        workers["proposer"].stop()  # the defender goes silent: its chess clock runs out
        wait_for("output 1 invalidated", lambda: next(
            (o for o in challenger.outputs() if o.index == 1 and status(o) == "OUTPUT_STATUS_INVALIDATED"), None))
        dispute = challenger.stub.GetDispute(rpb.GetDisputeRequest(id=challenged.dispute_ids[0]), timeout=10).dispute
        assert rpb.DisputeStatus.Name(dispute.status) == "DISPUTE_STATUS_CHALLENGER_WON"
        last = dispute.moves[-1]
        assert rpb.MoveKind.Name(last.kind) == "MOVE_KIND_TIMEOUT" and rpb.Side.Name(last.side) == "SIDE_DEFENDER"
        assert dispute.defender_clock_remaining_s == 0 and dispute.challenger_clock_remaining_s > 0
