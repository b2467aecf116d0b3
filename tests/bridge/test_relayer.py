"""The relayer on a real anvil, a real portal over a real OutputRegistry (tests/contracts/_portal.py)
and a real SQLite file: prove then finalize once each, with its own proof or another prover's,
kill -9 at every step of either (in a driver process), an action done by someone else meanwhile,
a revert recorded and not resent, and its spans in the withdrawal's trace."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import signal
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from protocol import DEV_PRIVATE_KEYS, WithdrawalMessage
from services.bridge._outbox import IntentState
from services.bridge._records import (
    OutputRootProof,
    WithdrawalProof,
    WithdrawalRecord,
    WithdrawalStatus,
)
from services.bridge._relayer import Relayer
from services.l1 import L1Client, LocalSigner, SenderConfig
from tests.bridge.relay_driver import KILL_ENV, client, job
from tests.contracts._game import ALICE, BOB, DAVE, ERIN
from tests.contracts._portal import DELAY, ETHER, TARGET_GAS, Bridge, Output, w_tuple
from tests.l1.anvil import Anvil

#: Not one of tests/contracts/_game.py's actors (they use dev accounts 0-7): its nonces are its own.
RELAYER_KEY = "0x" + DEV_PRIVATE_KEYS[9].hex()
RELAYER = LocalSigner(RELAYER_KEY)
ROOT = pathlib.Path(__file__).resolve().parents[2]
SUCCEEDED = 1
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def bridge(l1_client: L1Client, chain: Anvil) -> Bridge:
    return await Bridge.deploy(l1_client, chain)


def message(bridge: Bridge, nonce: int) -> WithdrawalMessage:
    return WithdrawalMessage(nonce=nonce, sender=ALICE.address, target=bridge.target_address, value=ETHER,
                             gas_limit=TARGET_GAS, data=b"relayed " + bytes([nonce]))


def record_of(m: WithdrawalMessage, *, prover: bytes = b"", traceparent: str = "") -> WithdrawalRecord:
    return WithdrawalRecord(m, m.hash(), WithdrawalStatus.IN_OUTPUT, 1, b"", prover=prover, traceparent=traceparent)


def proof_of(record: WithdrawalRecord, out: Output) -> WithdrawalProof:
    version, state_root, message_root, block_hash = out.root_proof()
    index, count, siblings = out.proof(record.message.nonce)
    return WithdrawalProof(record, out.index, out.snapshot.output_root(), out.snapshot.number, "PROPOSED",
                           OutputRootProof(version, state_root, message_root, block_hash), index, count,
                           tuple(siblings))


def sent(chain: Anvil) -> int:
    return int(chain.rpc("eth_getTransactionCount", "0x" + RELAYER.address.hex(), "latest"), 16)


async def mature(bridge: Bridge, out: Output, prover: bytes, m: WithdrawalMessage) -> None:
    """``out`` finalized and ``prover``'s proof of ``m`` matured."""
    await bridge.finalize_output(out)
    (_, _, proven_at) = await bridge.read("provenWithdrawal", m.hash(), prover)
    assert proven_at != 0
    bridge.reg.mine_at(max(await bridge.reg.now() + 1, proven_at + DELAY))


def relayer_for(l1: L1Client, bridge: Bridge, db: pathlib.Path, *, settle_timeout_s: float = 30.0,
                config: SenderConfig | None = None, tracer: trace.Tracer | None = None) -> Relayer:
    return Relayer(l1, RELAYER, bridge.portal, db, lambda _: True, logging.getLogger("test.relayer"),
                   settle_timeout_s=settle_timeout_s, config=config, tracer=tracer)


async def test_prove_then_finalize_once_each_in_the_withdrawals_trace(
        l1_client: L1Client, chain: Anvil, bridge: Bridge, tmp_path: pathlib.Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    relayer = relayer_for(l1_client, bridge, tmp_path / "bridge.db", tracer=provider.get_tracer("test"))
    await relayer.resume()
    messages = [message(bridge, n) for n in range(3)]
    out = await bridge.propose(messages, ERIN)
    record = record_of(messages[1], traceparent=TRACEPARENT)
    before = sent(chain)

    proved = await relayer.prove(proof_of(record, out))
    assert proved is not None and proved.state is IntentState.CONFIRMED
    (index, _, proven_at) = await bridge.read("provenWithdrawal", record.withdrawal_hash, RELAYER.address)
    assert index == out.index and proven_at != 0
    assert await relayer.prove(proof_of(record, out)) == proved  # the polling loop again: nothing sent
    assert sent(chain) == before + 1

    await mature(bridge, out, RELAYER.address, record.message)
    finalized = await relayer.finalize(record)  # no prover named: its own proof
    assert finalized is not None and finalized.state is IntentState.CONFIRMED
    assert await bridge.state(record.message) == SUCCEEDED and await bridge.harness("calls") == 1
    assert await relayer.finalize(record) == finalized and await relayer.prove(proof_of(record, out)) == proved
    assert sent(chain) == before + 2
    stats = relayer.statistics()
    assert (stats.sent, stats.confirmed, stats.reverted, stats.outstanding) == (2, 2, 0, 0)

    spans = {s.name: s for s in exporter.get_finished_spans() if s.name.startswith("relay.")}
    assert set(spans) == {"relay.prove", "relay.finalize"}
    for span, intent in ((spans["relay.prove"], proved), (spans["relay.finalize"], finalized)):
        assert span.context is not None and span.parent is not None
        assert f"{span.context.trace_id:032x}" == TRACEPARENT.split("-")[1]  # the withdrawal's trace
        assert f"{span.parent.span_id:016x}" == TRACEPARENT.split("-")[2]
        assert span.attributes is not None
        assert span.attributes["l2.withdrawal.hash"] == "0x" + record.withdrawal_hash.hex()
        assert span.attributes["l1.tx.hash"] == "0x" + intent.tx_hash.hex()
    await relayer.aclose()


async def test_a_proof_voided_by_its_outputs_invalidation_is_made_again_on_another_output(
        l1_client: L1Client, chain: Anvil, bridge: Bridge, tmp_path: pathlib.Path) -> None:
    m = message(bridge, 0)
    relayer = relayer_for(l1_client, bridge, tmp_path / "bridge.db")
    record = record_of(m)
    lie = await bridge.propose([m], ERIN)
    before = sent(chain)
    first = await relayer.prove(proof_of(record, lie))
    assert first is not None and first.state is IntentState.CONFIRMED
    await bridge.invalidate(lie)  # a challenger wins: the proof against it is void
    honest = await bridge.propose([m], ERIN)
    assert honest.index != lie.index
    second = await relayer.prove(proof_of(record, honest))  # what the bridge hands after the invalidation
    assert second is not None and second.state is IntentState.CONFIRMED and second.attempt == first.attempt + 1
    (index, _, _) = await bridge.read("provenWithdrawal", m.hash(), RELAYER.address)
    assert index == honest.index and sent(chain) == before + 2
    assert await relayer.prove(proof_of(record, honest)) == second  # and no third
    await mature(bridge, honest, RELAYER.address, m)
    finalized = await relayer.finalize(record)
    assert finalized is not None and finalized.state is IntentState.CONFIRMED
    assert await bridge.state(m) == SUCCEEDED and sent(chain) == before + 3
    await relayer.aclose()


async def test_finalize_uses_another_provers_proof(l1_client: L1Client, chain: Anvil, bridge: Bridge,
                                                   tmp_path: pathlib.Path) -> None:
    m = message(bridge, 0)
    out = await bridge.propose([m], ERIN)
    await bridge.prove(BOB, m, out)  # a wallet proved by itself
    await mature(bridge, out, BOB.address, m)
    relayer = relayer_for(l1_client, bridge, tmp_path / "bridge.db")
    before = sent(chain)
    finalized = await relayer.finalize(record_of(m, prover=BOB.address))
    assert finalized is not None and finalized.state is IntentState.CONFIRMED
    assert await bridge.state(m) == SUCCEEDED and sent(chain) == before + 1
    await relayer.aclose()


def drive(chain: Anvil, bridge: Bridge, db: pathlib.Path, doc: dict[str, object], kill_at: str | None = None
          ) -> subprocess.CompletedProcess[str]:
    job_file = db.with_suffix(".job.json")
    job_file.write_text(json.dumps(doc))
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at is not None:
        env[KILL_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "tests.bridge.relay_driver", "relay", chain.url, str(db), RELAYER_KEY,
         bridge.address.hex(), str(job_file)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("point", ["sign", "stored", "broadcast", "receipt"])
async def test_kill_at_any_step_of_prove_and_finalize_then_restart(
        chain: Anvil, bridge: Bridge, tmp_path: pathlib.Path, point: str) -> None:
    db = tmp_path / "bridge.db"
    m = message(bridge, 0)
    out = await bridge.propose([m], ERIN)
    record = record_of(m)
    before = sent(chain)

    killed = drive(chain, bridge, db, job(record, proof_of(record, out)), kill_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    restarted = drive(chain, bridge, db, job(record, proof_of(record, out)))
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["state"] == "confirmed"
    assert sent(chain) == before + 1  # one prove transaction
    (_, _, proven_at) = await bridge.read("provenWithdrawal", m.hash(), RELAYER.address)
    assert proven_at != 0

    await mature(bridge, out, RELAYER.address, m)
    killed = drive(chain, bridge, db, job(record, None), kill_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    restarted = drive(chain, bridge, db, job(record, None))
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["state"] == "confirmed"
    assert sent(chain) == before + 2  # and one finalize transaction
    assert await bridge.state(m) == SUCCEEDED and await bridge.harness("calls") == 1


async def test_a_finalize_done_by_someone_else_while_down_is_cancelled_not_sent(
        chain: Anvil, bridge: Bridge, tmp_path: pathlib.Path) -> None:
    db = tmp_path / "bridge.db"
    m = message(bridge, 0)
    out = await bridge.propose([m], ERIN)
    await bridge.prove(BOB, m, out)
    await mature(bridge, out, BOB.address, m)
    record = record_of(m, prover=BOB.address)
    before = sent(chain)
    killed = drive(chain, bridge, db, job(record, None), kill_at="stored")  # signed and stored, never sent
    assert killed.returncode == -signal.SIGKILL
    assert (await bridge.finalize(DAVE, m, BOB)).success  # someone else finalizes meanwhile
    restarted = drive(chain, bridge, db, job(record, None))
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["state"] == "dropped"
    # Its nonce was filled by a 0-value cancel (no gap), not by a finalize that would revert.
    assert sent(chain) == before + 1 and await bridge.harness("calls") == 1


async def test_a_reverted_finalize_is_recorded_and_not_resent(
        l1_client: L1Client, chain: Anvil, bridge: Bridge, tmp_path: pathlib.Path) -> None:
    m = message(bridge, 0)
    out = await bridge.propose([m], ERIN)
    await bridge.prove(BOB, m, out)
    await mature(bridge, out, BOB.address, m)
    relayer = relayer_for(l1_client, bridge, tmp_path / "bridge.db", settle_timeout_s=0.05,
                          config=SenderConfig(replace_after_s=3600))
    before = sent(chain)
    chain.rpc("evm_setAutomine", False)
    record = record_of(m, prover=BOB.address)
    pending = await relayer.finalize(record)  # simulated fine, sent, not mined yet
    assert pending is not None and pending.state is IntentState.OPEN
    # Someone else's finalize, with a higher tip, goes first in the same block: ours reverts.
    calldata = bridge.portal.encode_call("finalizeWithdrawal", w_tuple(m), BOB.address)
    chain.rpc("eth_sendTransaction", {"from": "0x" + DAVE.address.hex(), "to": "0x" + bridge.address.hex(),
                                      "data": "0x" + calldata.hex(), "gas": hex(1_000_000),
                                      "maxFeePerGas": hex(1000 * 10**9), "maxPriorityFeePerGas": hex(500 * 10**9)})
    chain.rpc("evm_mine")
    reverted = await relayer.finalize(record)
    assert reverted is not None and reverted.state is IntentState.REVERTED
    assert await relayer.finalize(record) == reverted  # finalized by DAVE: no second attempt
    await relayer.resume()
    assert sent(chain) == before + 1 and await bridge.harness("calls") == 1
    assert relayer.statistics().reverted == 1
    await relayer.aclose()


async def test_an_l1_outage_with_a_prove_in_flight_is_waited_out(tmp_path: pathlib.Path) -> None:
    node = Anvil()
    node.start()
    try:
        async with client(node.url) as l1:
            bridge = await Bridge.deploy(l1, node)
            m = message(bridge, 0)
            out = await bridge.propose([m], ERIN)
            record = record_of(m)
            relayer = relayer_for(l1, bridge, tmp_path / "bridge.db", settle_timeout_s=0.2)
            node.rpc("evm_setAutomine", False)
            pending = await relayer.prove(proof_of(record, out))  # sent, in the pool only
            assert pending is not None and pending.state is IntentState.OPEN
            state = node.rpc("anvil_dumpState")
            node.stop()  # L1 gone, and the pooled transaction with it
            again = await relayer.prove(proof_of(record, out))  # the polling loop meanwhile: waits, loses nothing
            assert again is not None and again.state is IntentState.OPEN and again.versions == pending.versions
            node.start()
            node.rpc("anvil_loadState", state)
            await relayer.resume()  # the same signed bytes, once L1 answers again
            done = await relayer.prove(proof_of(record, out))
            assert done is not None and done.state is IntentState.CONFIRMED
            assert done.mined_tx_hash == pending.versions[0].tx_hash
            (index, _, proven_at) = await bridge.read("provenWithdrawal", m.hash(), RELAYER.address)
            assert index == out.index and proven_at != 0
            assert node.rpc("eth_getTransactionCount", "0x" + RELAYER.address.hex(), "latest") == "0x1"
            stats = relayer.statistics()
            assert (stats.sent, stats.confirmed, stats.outstanding) == (1, 1, 0) and stats.rebroadcast >= 1
            await relayer.aclose()
    finally:
        node.stop()
