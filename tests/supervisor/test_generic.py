"""The supervisor is a generic library: it imports the standard library and gRPC (how its own
workers are probed), nothing of this project's domain (no L1 client, no JSON-RPC, no services)."""

from __future__ import annotations

import ast
import pathlib
import sys

import supervisor

ALLOWED = {"grpc", "grpc_health", "supervisor"}


def test_the_supervisor_imports_only_the_standard_library_and_grpc() -> None:
    imported: set[str] = set()
    for path in pathlib.Path(supervisor.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.partition(".")[0])
    assert imported - sys.stdlib_module_names - ALLOWED == set()
