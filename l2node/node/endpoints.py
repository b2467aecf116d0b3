"""DATA_DIR/run/endpoints.json: how other programs find the running tree.

    {"control": "HOST:PORT", "pid": SUPERVISOR_PID, "l1_rpc": URL, "metrics": "http://HOST:PORT/metrics",
     "jsonrpc": "http://HOST:PORT" (Ethereum JSON-RPC, HTTP; ws:// on the same port; null without one),
     "children": [{"id": "sequencer", "kind": "worker", "pid": 123, "address": "HOST:PORT"}, ...]}

Every process in the tree, flattened, nested ids as paths. External checks read these key
names: keep them.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from services.runtime import redact_url
from supervisor import ChildKind, Supervisor

PROCESS_KINDS = (ChildKind.WORKER, ChildKind.EXTERNAL, ChildKind.ZYGOTE)


def path(run_dir: pathlib.Path) -> pathlib.Path:
    return run_dir / "endpoints.json"


def document(root: Supervisor, control: str, l1_rpc: str | None, metrics: str | None = None,
             jsonrpc: str | None = None) -> dict[str, Any]:
    """The file's content; URLs with their credentials redacted (the file is for reading, not for
    connecting with a provider's key)."""
    children = [
        {"id": c.path, "kind": c.kind.value, "pid": c.pid or 0, "address": redact_url(c.address),
         "state": c.state.value}
        for c in root.walk() if c.kind in PROCESS_KINDS
    ]
    return {"control": control, "pid": os.getpid(), "l1_rpc": l1_rpc and redact_url(l1_rpc), "metrics": metrics,
            "jsonrpc": jsonrpc, "children": children}


def write(run_dir: pathlib.Path, doc: dict[str, Any]) -> None:
    """Atomically: a reader never sees half a file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".endpoints.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path(run_dir))


def read(run_dir: pathlib.Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path(run_dir).read_text())
    return doc


def remove(run_dir: pathlib.Path) -> None:
    path(run_dir).unlink(missing_ok=True)
