"""A Node.js client (@grpc/grpc-js + ethers.js) against real workers: the protos and the
transaction format are usable from another language, with no help from this repo's Python."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import grpc

from tests.ports import free_port
from tests.sequencer.test_service import ROOT, Sequencer
from tests.serving import wait_serving


def start_rollups_without_l1(tmp_path: pathlib.Path) -> tuple[subprocess.Popen[bytes], str]:
    """A rollups worker with no registry configured: it serves, and says so with a reason."""
    address = f"127.0.0.1:{free_port()}"
    config = {"service": "rollups", "address": address, "data_dir": str(tmp_path / "rollups"), "settings": {}}
    proc = subprocess.Popen([sys.executable, "-m", "services.runtime", "services.rollups:WORKER",
                             "--config-json", json.dumps(config)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "rollups.log").open("ab"))
    with grpc.insecure_channel(address) as channel:
        wait_serving(channel, proc=proc)
    return proc, address


def test_a_node_js_client_signs_with_ethers_and_calls_both_services(tmp_path: pathlib.Path) -> None:
    node = shutil.which("node")
    assert node is not None, "node is installed with the npm packages (see README)"
    sequencer = Sequencer(tmp_path / "seq", free_port(), tmp_path / "sequencer.log", {})
    rollups, rollups_address = start_rollups_without_l1(tmp_path)
    try:
        out = subprocess.run([node, str(ROOT / "tests" / "clients" / "client.mjs"), sequencer.address,
                              rollups_address], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        seen = json.loads(out.stdout)
    finally:
        sequencer.stop()
        rollups.terminate()
        rollups.wait(30)
    # ethers.js signs for the L2 unchanged: same hashes, its sender recovered, all sealed.
    assert seen["sent_hashes"] == seen["ethers_hashes"]
    assert seen["statuses"] == ["RECEIPT_STATUS_SEALED"] * 5
    assert {s.lower() for s in seen["senders"]} == {seen["sender"].lower()}
    assert seen["balance"] == str(sum(1000 + n for n in range(5)))
    # Errors arrive as gRPC status codes with a reason, in any language.
    assert seen["garbage"]["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert seen["replay"]["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]  # sealed: its nonce is used
    assert seen["outputs"]["code"] == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "registry" in seen["outputs"]["details"]
