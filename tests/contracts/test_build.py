"""contracts/build.mjs: the committed artifacts are what the sources compile to, and --check
says so when they are not."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"


def build(directory: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NODE_PATH": str(ROOT / "node_modules")}  # for a copy outside the checkout
    return subprocess.run(["node", str(directory / "build.mjs"), *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # solcjs: ~20 s quiet, minutes on a busy machine


def test_committed_artifacts_are_up_to_date() -> None:
    result = build(CONTRACTS, "--check")  # a rebuild is byte-identical: the output is deterministic
    assert result.returncode == 0, result.stderr
    doc = json.loads((CONTRACTS / "artifacts" / "BatchInbox.json").read_text())
    assert doc["compiler"]["version"].startswith("0.8.28+")
    assert doc["compiler"]["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    assert {"abi", "bytecode", "deployedBytecode", "immutableReferences", "sourceSha256"} <= doc.keys()


def test_check_fails_on_stale_artifacts_and_a_build_refreshes_them(tmp_path: pathlib.Path) -> None:
    copy = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, copy)
    source = copy / "BatchInbox.sol"
    source.write_text(source.read_text().replace("MAX_FORCED_TX_SIZE = 131072", "MAX_FORCED_TX_SIZE = 65536"))
    (copy / "artifacts" / "Gone.json").write_text("{}")
    stale = build(copy, "--check")
    assert stale.returncode == 1
    assert "BatchInbox.json (stale or missing)" in stale.stderr and "Gone.json (no source)" in stale.stderr
    before = (copy / "artifacts" / "BatchInbox.json").read_text()
    assert build(copy).returncode == 0
    after = (copy / "artifacts" / "BatchInbox.json").read_text()
    assert after != before and json.loads(after)["sourceSha256"] != json.loads(before)["sourceSha256"]
    assert not (copy / "artifacts" / "Gone.json").exists()
