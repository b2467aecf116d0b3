"""The relay outbox on a real anvil and a real SQLite file: one L1 transaction per action across
kill -9 at each step, no nonce gap after a crash, reverts recorded and not resent, fee bumps at
the same nonce, and an L1 outage waited out with the same signed bytes."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import uuid

import pytest

from protocol import DEV_PRIVATE_KEYS
from services.bridge._outbox import IntentState, Outbox
from services.l1 import OUTAGE, L1Client, LocalSigner, RpcError, SenderConfig, keccak
from tests.bridge.relay_driver import KILL_ENV, REPLACE_ENV, client, transfer_outbox
from tests.l1.anvil import Anvil

RELAYER_KEY = "0x" + DEV_PRIVATE_KEYS[7].hex()
RELAYER = LocalSigner(RELAYER_KEY).address
ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Reverts once storage slot 0 is set: PUSH1 0 SLOAD PUSH1 7 JUMPI STOP JUMPDEST PUSH1 0 DUP1 REVERT.
FLIPPABLE = bytes.fromhex("600054600757005b600080fd")
VALUE = 12345


def fresh_address() -> bytes:
    return keccak(uuid.uuid4().bytes)[12:]


def nonce(chain: Anvil) -> int:
    return int(chain.rpc("eth_getTransactionCount", "0x" + RELAYER.hex(), "latest"), 16)


def balance(chain: Anvil, address: bytes) -> int:
    return int(chain.rpc("eth_getBalance", "0x" + address.hex(), "latest"), 16)


def drive(chain: Anvil, db: pathlib.Path, action: bytes, to: bytes, kill_at: str | None = None,
          replace_after_s: float | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (KILL_ENV, REPLACE_ENV)}
    if kill_at is not None:
        env[KILL_ENV] = kill_at
    if replace_after_s is not None:
        env[REPLACE_ENV] = str(replace_after_s)
    return subprocess.run(
        [sys.executable, "-m", "tests.bridge.relay_driver", "send", chain.url, str(db), RELAYER_KEY, action.hex(),
         to.hex(), str(VALUE)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("point", ["sign", "stored", "broadcast", "receipt"])
def test_kill_at_any_step_then_restart_sends_one_transaction(chain: Anvil, tmp_path: pathlib.Path, point: str
                                                              ) -> None:
    db, action, to = tmp_path / "bridge.db", keccak(point.encode()), fresh_address()
    before = nonce(chain)
    killed = drive(chain, db, action, to, kill_at=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    restarted = drive(chain, db, action, to)
    assert restarted.returncode == 0, restarted.stderr
    outcome = json.loads(restarted.stdout)
    assert outcome["state"] == "confirmed" and outcome["attempt"] == 0 and len(outcome["versions"]) == 1
    assert nonce(chain) == before + 1  # one transaction from the relayer, ...
    assert balance(chain, to) == VALUE  # ... which did the action once
    receipt = chain.rpc("eth_getTransactionReceipt", "0x" + outcome["tx_hash"])
    assert int(receipt["status"], 16) == 1 and int(outcome["nonce"]) == before
    again = drive(chain, db, action, to)  # a polling loop asking again: nothing new
    assert again.returncode == 0 and json.loads(again.stdout) == outcome and nonce(chain) == before + 1


def test_kill_between_storing_a_fee_bump_and_sending_it(chain: Anvil, tmp_path: pathlib.Path) -> None:
    db, action, to = tmp_path / "bridge.db", b"\x06" * 32, fresh_address()
    before = nonce(chain)
    chain.rpc("evm_setAutomine", False)  # the first version waits in the pool: the next check bumps it
    killed = drive(chain, db, action, to, kill_at="bumped", replace_after_s=0.001)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with sqlite3.connect(db) as stored:
        versions = [bytes(h).hex() for (h,) in stored.execute("SELECT tx_hash FROM relay_txs ORDER BY version")]
    assert len(versions) == 2  # the bump was stored before it was sent
    chain.rpc("evm_setAutomine", True)
    restarted = drive(chain, db, action, to)
    assert restarted.returncode == 0, restarted.stderr
    outcome = json.loads(restarted.stdout)
    assert outcome["state"] == "confirmed" and outcome["versions"] == versions and outcome["tx_hash"] in versions
    assert nonce(chain) == before + 1 and balance(chain, to) == VALUE  # one of the two, once


def test_an_intent_done_by_someone_else_is_cancelled_at_its_nonce_leaving_no_gap(
        chain: Anvil, tmp_path: pathlib.Path) -> None:
    db, first, second = tmp_path / "bridge.db", fresh_address(), fresh_address()
    before = nonce(chain)
    killed = drive(chain, db, b"\x01" * 32, first, kill_at="stored")  # signed, stored, never sent
    assert killed.returncode == -signal.SIGKILL
    # Someone else does the first action meanwhile.
    chain.receipt(chain.rpc("eth_sendTransaction", {"from": chain.rpc("eth_accounts")[0], "to": "0x" + first.hex(),
                                                    "value": hex(VALUE)}))
    restarted = drive(chain, db, b"\x02" * 32, second)
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["nonce"] == before + 1  # after the cancel's nonce: no hole
    assert nonce(chain) == before + 2  # the cancel and the second action: both mined, nothing waits
    assert balance(chain, first) == VALUE and balance(chain, second) == VALUE


async def test_a_revert_is_recorded_and_not_resent(chain: Anvil, l1_client: L1Client, tmp_path: pathlib.Path) -> None:
    target = fresh_address()
    chain.rpc("anvil_setCode", "0x" + target.hex(), "0x" + FLIPPABLE.hex())
    outbox = transfer_outbox(l1_client, tmp_path / "bridge.db", RELAYER_KEY)
    before = nonce(chain)
    chain.rpc("evm_setAutomine", False)
    intent = await outbox.submit((b"\x03" * 32, "finalize"), target, b"\x01")
    chain.rpc("anvil_setStorageAt", "0x" + target.hex(), "0x0", "0x" + "00" * 31 + "01")  # now it reverts
    chain.rpc("evm_mine")
    intent = await outbox.check(intent)
    assert intent.state is IntentState.REVERTED and intent.mined_tx_hash == intent.versions[0].tx_hash
    assert await outbox.resume() == [] and (await outbox.sweep()) == []  # closed: nothing resends it
    assert await outbox.submit(intent.key, target, b"\x01") == intent  # asked again: the recorded outcome
    with pytest.raises(RpcError):  # a new attempt is simulated first: it would revert, so none is made
        await outbox.submit(intent.key, target, b"\x01", again=True)
    assert outbox.attempts(intent.key) == 1 and nonce(chain) == before + 1
    stats = outbox.statistics()
    assert (stats.sent, stats.reverted, stats.outstanding) == (1, 1, 0)
    outbox.close()


async def test_a_stuck_transaction_is_re_signed_at_the_same_nonce(chain: Anvil, l1_client: L1Client,
                                                                  tmp_path: pathlib.Path) -> None:
    async def never(_: object) -> bool:
        return False

    outbox = Outbox(l1_client, LocalSigner(RELAYER_KEY), tmp_path / "bridge.db", never,
                    config=SenderConfig(replace_after_s=0.01))
    before, to = nonce(chain), fresh_address()
    chain.rpc("evm_setAutomine", False)
    intent = await outbox.submit((b"\x04" * 32, "prove"), to, b"", value=VALUE)
    await asyncio.sleep(0.02)
    intent = await outbox.check(intent)
    assert len(intent.versions) == 2 and intent.state is IntentState.OPEN
    old, new = intent.versions
    assert new.fees.max_fee_per_gas >= old.fees.max_fee_per_gas * 110 // 100
    assert new.fees.max_priority_fee_per_gas >= old.fees.max_priority_fee_per_gas * 110 // 100
    chain.rpc("evm_mine")
    intent = await outbox.check(intent)
    assert intent.state is IntentState.CONFIRMED and intent.mined_tx_hash in (old.tx_hash, new.tx_hash)
    assert nonce(chain) == before + 1 and balance(chain, to) == VALUE
    outbox.close()


async def test_an_l1_outage_is_waited_out_with_the_same_signed_bytes(tmp_path: pathlib.Path) -> None:
    node = Anvil()
    node.start()
    try:
        async with client(node.url) as l1:
            outbox = transfer_outbox(l1, tmp_path / "bridge.db", RELAYER_KEY)
            node.rpc("evm_setAutomine", False)
            to = fresh_address()
            sent = await outbox.submit((b"\x05" * 32, "prove"), to, b"", value=VALUE)
            state = node.rpc("anvil_dumpState")
            node.stop()  # L1 gone, the transaction with it (it was in the pool only)
            for _ in range(8):
                with pytest.raises(OUTAGE):
                    await outbox.sweep()
            assert [i.versions for i in outbox.open_intents()] == [sent.versions]  # nothing lost
            node.start()
            node.rpc("anvil_loadState", state)
            for _ in range(200):  # the breaker lets calls through again after its reset time
                try:
                    await outbox.resume()
                    break
                except OUTAGE:
                    await asyncio.sleep(0.02)
            for _ in range(200):
                if not outbox.open_intents():
                    break
                await outbox.sweep()
                await asyncio.sleep(0.01)
            intent = outbox.latest(sent.key)
            assert intent is not None and intent.state is IntentState.CONFIRMED
            assert intent.mined_tx_hash == sent.versions[0].tx_hash  # the stored bytes, re-sent
            assert outbox.statistics().rebroadcast >= 1
            assert node.rpc("eth_getTransactionCount", "0x" + RELAYER.hex(), "latest") == "0x1"
            assert int(node.rpc("eth_getBalance", "0x" + to.hex(), "latest"), 16) == VALUE
            outbox.close()
    finally:
        node.stop()

