"""A relay outbox (or relayer) in its own process, for the kill -9 tests: it SIGKILLs itself at
the fault point named by ``RELAY_KILL_AT`` (see services/bridge/_outbox.py's docstring), so each
test stops it at one chosen step rather than racing a timer.

    RELAY_KILL_AT=stored python -m tests.bridge.relay_driver send RPC DB KEY HASH TO VALUE
    python -m tests.bridge.relay_driver relay RPC DB KEY PORTAL JOB.json   # prove or finalize

Prints the action's intent as one JSON line when it has settled (mined or dropped).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import signal
import sys
import uuid
from typing import Any

from protocol import WithdrawalMessage
from services.bridge._outbox import Intent, Outbox
from services.bridge._records import OutputRootProof, WithdrawalProof, WithdrawalRecord, WithdrawalStatus
from services.bridge._relayer import Relayer
from services.l1 import Artifact, Contract, L1Client, LocalSigner, SenderConfig, policy_config
from services.runtime import CallPolicy

KILL_ENV = "RELAY_KILL_AT"
REPLACE_ENV = "RELAY_REPLACE_AFTER_S"


def checkpoint(point: str) -> None:
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def client(rpc: str) -> L1Client:
    policy = CallPolicy(f"relay-driver-{uuid.uuid4().hex[:8]}",
                        policy_config(backoff_initial_s=0.001, backoff_max_s=0.01, breaker_reset_s=0.1))
    return L1Client(rpc, policy=policy)


def transfer_outbox(l1: L1Client, db: pathlib.Path, key: str) -> Outbox:
    """An outbox whose actions are value transfers; one counts as done by anyone once its target
    holds at least the value (each test's targets are fresh addresses)."""
    async def done(intent: Intent) -> bool:
        return await l1.get_balance(intent.to) >= intent.value

    replace_after_s = float(os.environ.get(REPLACE_ENV, "30"))  # tiny: every check bumps
    return Outbox(l1, LocalSigner(key), db, done, checkpoint=checkpoint, logger=logging.getLogger("relay_driver"),
                  config=SenderConfig(replace_after_s=replace_after_s))


def describe(intent: Intent | None) -> dict[str, Any]:
    if intent is None:
        return {"state": None}
    return {"state": str(intent.state), "nonce": intent.nonce, "attempt": intent.attempt,
            "tx_hash": intent.tx_hash.hex(), "versions": [v.tx_hash.hex() for v in intent.versions]}


async def settle(outbox: Outbox) -> None:
    for _ in range(500):
        if not outbox.open_intents():
            return
        await outbox.sweep()
        await asyncio.sleep(0.01)
    raise RuntimeError("intents still open")


async def send(rpc: str, db: str, key: str, withdrawal_hash: str, to: str, value: str) -> dict[str, Any]:
    async with client(rpc) as l1:
        outbox = transfer_outbox(l1, pathlib.Path(db), key)
        await outbox.resume()
        action = (bytes.fromhex(withdrawal_hash), "prove")
        await outbox.submit(action, bytes.fromhex(to), b"", value=int(value))
        await settle(outbox)
        return describe(outbox.latest(action))


def job(record: WithdrawalRecord, proof: WithdrawalProof | None) -> dict[str, Any]:
    """A prove (with ``proof``) or finalize (without) of ``record``, as JSON."""
    m = record.message
    doc: dict[str, Any] = {"message": [m.nonce, m.sender.hex(), m.target.hex(), m.value, m.gas_limit, m.data.hex()],
                           "prover": record.prover.hex(), "traceparent": record.traceparent}
    if proof is not None:
        r = proof.root_proof
        doc["proof"] = {"output_index": proof.output_index, "output_root": proof.output_root.hex(),
                        "output_l2_block": proof.output_l2_block, "index": proof.index, "count": proof.count,
                        "root_proof": [x.hex() for x in (r.version, r.state_root, r.message_passer_root, r.block_hash)],
                        "siblings": [x.hex() for x in proof.siblings]}
    return doc


def from_job(doc: dict[str, Any]) -> tuple[WithdrawalRecord, WithdrawalProof | None]:
    nonce, sender, target, value, gas_limit, data = doc["message"]
    m = WithdrawalMessage(nonce, bytes.fromhex(sender), bytes.fromhex(target), value, gas_limit, bytes.fromhex(data))
    record = WithdrawalRecord(m, m.hash(), WithdrawalStatus.IN_OUTPUT, 1, b"", prover=bytes.fromhex(doc["prover"]),
                              traceparent=doc["traceparent"])
    p = doc.get("proof")
    if p is None:
        return record, None
    root = OutputRootProof(*(bytes.fromhex(x) for x in p["root_proof"]))
    return record, WithdrawalProof(record, p["output_index"], bytes.fromhex(p["output_root"]), p["output_l2_block"],
                                   "FINALIZED", root, p["index"], p["count"],
                                   tuple(bytes.fromhex(x) for x in p["siblings"]))


async def relay(rpc: str, db: str, key: str, portal: str, doc: dict[str, Any]) -> dict[str, Any]:
    record, proof = from_job(doc)
    async with client(rpc) as l1:
        contract = Contract(Artifact.load("DepositPortal"), bytes.fromhex(portal))
        relayer = Relayer(l1, LocalSigner(key), contract, pathlib.Path(db), lambda _: True,
                          logging.getLogger("relay_driver"), checkpoint=checkpoint)
        await relayer.resume()
        intent = await relayer.prove(proof) if proof is not None else await relayer.finalize(record)
        await relayer.aclose()
        return describe(intent)


def main(argv: list[str]) -> None:
    command, *args = argv
    if command == "send":
        result = asyncio.run(send(*args))
    elif command == "relay":
        rpc, db, key, portal, job_file = args
        result = asyncio.run(relay(rpc, db, key, portal, json.loads(pathlib.Path(job_file).read_text())))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
