"""Derivation checkpoints (services/rollups/_checkpoints.py): restarts and disputes resume from them.

- A dispute's traces from the nearest checkpoint (the state loaded from SQLite; the inputs the
  chain holds, or re-read from L1 after a resume) are the genesis traces, snapshot for snapshot and
  one-step proof for one-step proof.
- A dispute opened after a restart starts from a checkpoint, not genesis, and wins on L1 against
  a wrong output.
- A real rollups worker killed with SIGKILL resumes from its latest checkpoint: it reads L1 again
  only from there (not from the deployment block), and goes on to propose what L1 derives.
- A reorg that removes a checkpoint's L1 block: the restarted worker drops it and resumes from an
  older one, and derives the new chain.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from bench.rollup_dispute import PARAMS
from l2node.node.deploy import DEVNET_BATCHER_KEY, DEVNET_CHALLENGER_KEY, DEVNET_PROPOSER_KEY
from protocol import BatchBlock, devnet_genesis, keccak256
from services.rollups._challenger import Challenger
from services.rollups._checkpoints import CheckpointStore
from services.rollups._contracts import GameStatus, OutputRecord, OutputStatus, Side
from services.rollups._trace import DerivedChain, Traces
from services.rollups._witness import step_proof
from services.runtime import Storage
from tests.l1.anvil import Anvil, mining_anvil
from tests.ports import free_port
from tests.rollups._rollup import ROGUE, Rollup, rollup, sender

ROOT = pathlib.Path(__file__).resolve().parents[2]


def store_chain(r: Rollup, path: pathlib.Path) -> DerivedChain:
    """A derivation like the worker's: its checkpoints in ``path``, one at every sync."""
    store = CheckpointStore(Storage(path), b"test deployment")
    return DerivedChain(r.l1, r.inbox, r.portal, devnet_genesis(), r.chain.rules, 0, 0, store=store,
                        checkpoint_interval_s=0)


def same_traces(genesis: Traces, resumed: Traces, start: int, target: int, length: int) -> None:
    assert resumed.snapshots(start, target, length) == genesis.snapshots(start, target, length)
    for position in range(length + 1):
        proofs = [step_proof(t.machine_before(start, target, position), target) for t in (genesis, resumed)]
        assert proofs[0] == proofs[1], f"the one-step proofs at position {position} differ"


async def test_a_dispute_from_a_checkpoint_has_the_genesis_traces_and_proofs(chain: Anvil,
                                                                              tmp_path: pathlib.Path) -> None:
    r = await rollup(chain.url, tmp_path)
    async with r.l1:
        derived = store_chain(r, tmp_path / "rollups.db")
        for count, per_block in ((3, 2), (2, 3), (2, 2)):  # checkpoints at blocks 3, 5 and 7
            await r.extend(count, per_block)
            await derived.sync()
        assert derived.store is not None
        assert [c.l2_block for c in derived.store.checkpoints()] == [3, 5, 7]
        limit, horizon = r.chain.batch_count, r.chain.horizon
        length = r.derived(7).step - r.derived(4).step + 2  # padded with no-ops, as outputs may be
        # From block 4: the checkpoint at block 3, with the inputs the chain holds.
        resumed = await derived.dispute_traces(limit, horizon, 4)
        assert resumed._base is not None and resumed._base[0].number == 3
        same_traces(derived.traces(limit, horizon), resumed, 4, 7, length)

        # A new process: it resumes at block 7 (reading L1 again only from that checkpoint on) ...
        again = store_chain(r, tmp_path / "rollups.db")
        assert await again.sync() == 0
        assert again.head.header.number == 7 and again.head.hash == r.derived(7).hash
        assert again.stats["resumed_l2_block"] == 7 and again.stats["l1_blocks_read"] <= 2
        assert "state_load_s" not in again.stats  # nothing new: the state was not needed
        for n in (2, 5):  # from the store (a restored block has no transaction hashes: nothing reads them)
            assert again.block(n) == replace(r.derived(n), tx_hashes=())
        for n in range(8):  # what judging an output reads: in memory, then in the store
            for kind in (False, True):
                ours, theirs = (c._last_of_kind(n, made_by_derivation=kind) for c in (again, derived))
                assert (ours and ours.hash) == (theirs and theirs.hash)
        # ... and its disputes from before it resumed read their inputs from L1 again.
        for start in (4, 6):  # the checkpoints at blocks 3 (batch 0) and 5 (batch 1)
            resumed = await again.dispute_traces(limit, horizon, start)
            base = r.derived(start - 1).snapshot
            assert resumed.inputs.batches is not again.inputs.batches and resumed.inputs.batch_base == base.batch_index
            length = r.derived(7).step - r.derived(start).step + 2
            same_traces(derived.traces(limit, horizon), resumed, start, 7, length)
        assert base.batch_index == 1
        # It derives on from the checkpoint's state, loaded now, to what genesis derives.
        await r.extend(2, 3)
        assert await again.sync() == 2
        assert "state_load_s" in again.stats
        assert again.head.snapshot == r.derived(9).snapshot and again.head.step == r.derived(9).step


async def test_a_dispute_after_a_restart_starts_from_a_checkpoint_and_wins(chain: Anvil,
                                                                           tmp_path: pathlib.Path) -> None:
    r = await rollup(chain.url, tmp_path)
    async with r.l1:
        derived = store_chain(r, tmp_path / "rollups.db")
        await r.extend(2)
        await derived.sync()  # a checkpoint at block 2
        assert await r.proposer.propose_once() == 1
        await r.pass_time(r.params.challenge_window_s + 1)
        assert await r.proposer.finalize_ready() == [1]  # later outputs start from block 2
        await r.extend(2)
        await derived.sync()  # and one at block 4
        assert derived.store is not None
        assert [c.l2_block for c in derived.store.checkpoints()] == [2, 4]
        # A lie about block 4, proposed from the start at block 2.
        liar = await sender(r.l1, ROGUE)
        block4 = r.derived(4)
        wrong = replace(block4.snapshot, state_root=keccak256(b"after the restart"))
        index = await r.propose(liar, wrong, block4.step - r.derived(2).step)

        # A new process: its derivation resumes at block 4, and its challenger finds the lie.
        again = store_chain(r, tmp_path / "rollups.db")
        assert await again.sync() == 0 and again.stats["resumed_l2_block"] == 4
        restarted = Challenger(again, r.registry, r.challenger.sender, r.challenger.settings, step_proof)
        ((game_id, side, out),) = await restarted.check()
        assert (side, out.index, out.start_index) == (Side.CHALLENGER, index, 1)
        # The traces it plays start from the checkpoint at block 2 (the state loaded from SQLite,
        # the inputs read from L1 again: from before it resumed), not from genesis ...
        traces = await again.dispute_traces(out.batch_limit, out.l1_horizon, 2)
        assert traces._base is not None and traces._base[0].number == 2
        assert traces.inputs.batches is not again.inputs.batches
        assert traces.inputs.batch_base == r.derived(2).snapshot.batch_index
        # ... and it wins on L1 against the liar defending L1's trace with its own end claim.
        claims = await r.honest_claims(out)
        claims[-1] = out.snapshot_hash
        address = await r.registry.game_address(game_id)
        results = await asyncio.gather(restarted.play(game_id, Side.CHALLENGER, out),
                                       r.defend(liar, out, claims, address))
        assert results == [GameStatus.CHALLENGER_WON] * 2
        assert (await r.registry.output(index)).status == OutputStatus.INVALIDATED


# --- a real worker, killed ----------------------------------------------------------------------


def start_worker(tmp_path: pathlib.Path, l1: Anvil) -> subprocess.Popen[bytes]:
    keys = tmp_path / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "proposer.key").write_text(DEVNET_PROPOSER_KEY)
    (keys / "challenger.key").write_text(DEVNET_CHALLENGER_KEY)
    config = {"service": "rollups", "address": f"127.0.0.1:{free_port()}", "data_dir": str(tmp_path / "rollups"),
              "settings": {"chain_id": PARAMS.chain_id, "output_interval_blocks": 2, "output_interval_s": 1.0,
                           "poll_interval_s": 0.2, "idle_poll_s": 0.5, "confirmation_depth": 0,
                           "checkpoint_interval_s": 0, "proposer_key_file": str(keys / "proposer.key"),
                           "challenger_key_file": str(keys / "challenger.key"),
                           "l1": {"rpc": l1.url, "contracts": str(tmp_path / "l1" / "contracts.json")}}}
    log = tmp_path / "rollups.log"
    return subprocess.Popen([sys.executable, "-m", "services.runtime", "services.rollups:WORKER",
                             "--config-json", json.dumps(config)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=log.open("ab"), env=dict(os.environ))


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def stored(tmp_path: pathlib.Path, sql: str) -> list[Any]:
    path = tmp_path / "rollups" / "rollups.db"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # the worker has not made its tables yet
        return []
    finally:
        db.close()


def logged(tmp_path: pathlib.Path, message: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "rollups.log").read_text().splitlines()
    return [doc for doc in map(json.loads, (line for line in lines if line.startswith("{")))
            if doc.get("message") == message]


async def wait_for(what: str, check: Callable[[], Any], within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return value


def checkpointed(tmp_path: pathlib.Path, l2_block: int) -> Callable[[], Any]:
    return lambda: stored(tmp_path, f"SELECT l1_block FROM checkpoints WHERE l2_block = {l2_block}")


@pytest.fixture
def l1() -> Iterator[Anvil]:
    with mining_anvil() as node:
        yield node


async def test_a_killed_worker_resumes_from_its_checkpoint(l1: Anvil, tmp_path: pathlib.Path) -> None:
    r = await rollup(l1.url, tmp_path)
    async with r.l1:
        await r.l1.request("anvil_mine", 300)  # L1 blocks a derivation from the deployment would read again
        worker = start_worker(tmp_path, l1)
        try:
            await r.extend(3)
            await r.extend(3)
            ((checkpoint_l1,),) = await wait_for("a checkpoint at block 6", checkpointed(tmp_path, 6))
            kill(worker)
            await r.extend(2)  # while it is down
            worker = start_worker(tmp_path, l1)
            (resumed,) = await wait_for("the resume", lambda: logged(tmp_path, "derivation resumed from a checkpoint"))
            assert resumed["l2_block"] == 6 and resumed["l1_block"] >= checkpoint_l1
            # It reads L1 again from the checkpoint, not from the deployment block 300 blocks back.
            (_, caught) = await wait_for("the catch-up", lambda: logged(tmp_path, "derivation caught up")[1:] and
                                         logged(tmp_path, "derivation caught up"))
            assert caught["l2_block"] >= 8 and caught["l1_blocks_read"] < 100
            # What it derived, before and after the kill, is what L1 derives from genesis.
            await wait_for("block 8 stored", checkpointed(tmp_path, 8))
            rows = stored(tmp_path, "SELECT number, hash, step FROM derived_blocks ORDER BY number")
            assert [(n, bytes(h), s) for n, h, s in rows] == [(n, r.derived(n).hash, r.derived(n).step)
                                                               for n in range(9)]
            # And it proposes on from there: an output at block 8, L1's own.
            out = await until("an output at block 8", lambda: output_at(r, 8))
            assert out.snapshot_hash == r.derived(8).snapshot.commitment()
            assert not logged(tmp_path, "output challenged")
        finally:
            if worker.poll() is None:
                kill(worker)


async def output_at(r: Rollup, l2_block: int) -> OutputRecord | None:
    for index in range(1, await r.registry.output_count()):
        out = await r.registry.output(index)
        if out.l2_block == l2_block:
            return out
    return None


async def until(what: str, check: Callable[[], Awaitable[Any]], within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while not (value := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return value


async def test_a_checkpoint_reorged_out_of_l1_is_dropped(l1: Anvil, tmp_path: pathlib.Path) -> None:
    r = await rollup(l1.url, tmp_path)
    async with r.l1:
        worker = start_worker(tmp_path, l1)
        try:
            await r.extend(3)
            ((kept_l1,),) = await wait_for("a checkpoint at block 3", checkpointed(tmp_path, 3))
            fork = await r.l1.request("evm_snapshot")
            await r.extend(3)
            ((reorged_l1,),) = await wait_for("a checkpoint at block 6", checkpointed(tmp_path, 6))
            kill(worker)
            # The reorg: back to before the second batch; another batch in its place, and a longer chain.
            await r.l1.request("evm_revert", fork)
            r.batcher = await sender(r.l1, DEVNET_BATCHER_KEY)  # its nonce went back too
            head = await r.l1.get_block("latest")
            assert head is not None
            await r.post([BatchBlock(n, 100 + n, head.number, head.hash, (r._txs[n + 2],)) for n in (4, 5)])
            await r.l1.request("anvil_mine", reorged_l1 + 5 - await r.l1.block_number())
            worker = start_worker(tmp_path, l1)
            (dropped,) = await wait_for("the drop", lambda: logged(
                tmp_path, "derivation checkpoint no longer on L1's chain: dropped"))
            assert dropped["l2_block"] == 6 and dropped["l1_block"] == reorged_l1
            (resumed,) = await wait_for("the resume", lambda: logged(tmp_path, "derivation resumed from a checkpoint"))
            assert resumed["l2_block"] == 3 and kept_l1 <= resumed["l1_block"] < reorged_l1
            await wait_for("the catch-up", lambda: logged(tmp_path, "derivation caught up")[1:])
            # What it derives now is the new chain, as a derivation from genesis reads it.
            fresh = DerivedChain(r.l1, r.inbox, r.portal, devnet_genesis(), r.chain.rules, 0, 0)
            await fresh.sync()
            assert fresh.head.header.number == 5
            await wait_for("block 5 stored", checkpointed(tmp_path, 5))
            rows = stored(tmp_path, "SELECT number, hash FROM derived_blocks ORDER BY number")
            assert [(n, bytes(h)) for n, h in rows] == [(n, fresh.block(n).hash) for n in range(6)]  # type: ignore[union-attr]
        finally:
            if worker.poll() is None:
                kill(worker)
