"""The newcomer's path: `l2node up` on a terminal says where the CLI, the dev accounts and L1 are,
and what to run next; the README's quick tour is those same commands."""

from __future__ import annotations

import json
import os
import pathlib
import pty
import re
import select
import signal
import socket
import subprocess
import time

from l2node.node import banner
from l2node.node.config import DEFAULT_L1_PORT, load
from protocol import DEV_ACCOUNTS
from services.l1 import checksum
from tests.node.test_up import L2NODE
from tests.ports import free_base_port

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_readme_quick_tour_runs_the_banners_next_steps_in_order() -> None:
    readme = (ROOT / "README.md").read_text()
    at = [readme.find(f".venv/bin/{step}") for step in banner.NEXT_STEPS]
    assert -1 not in at, [s for s, i in zip(banner.NEXT_STEPS, at, strict=True) if i < 0]
    assert at == sorted(at)


def test_the_local_l1_has_a_fixed_default_port(tmp_path: pathlib.Path) -> None:
    assert load(None, data_dir=tmp_path).l1_port == DEFAULT_L1_PORT == 8545


def test_up_on_a_terminal_ends_with_the_banner_and_says_the_l1_port_was_busy(tmp_path: pathlib.Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    config = tmp_path / "l2node.toml"
    config.write_text(f"[node]\nbase_port = {free_base_port()}\n[l1]\nport = {port}\n[jsonrpc]\nport = 0\n")
    data_dir = tmp_path / "data"
    controller, terminal = pty.openpty()
    with open(tmp_path / "up.log", "w") as log:
        proc = subprocess.Popen([*L2NODE, "up", "--data-dir", str(data_dir), "--config", str(config)],
                                stdin=subprocess.DEVNULL, stdout=terminal, stderr=log, start_new_session=True)
    os.close(terminal)
    shown = b""
    try:
        deadline = time.monotonic() + 90
        while not re.search(rb"outputs[^\n]*\n", shown):
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "up.log").read_text()
            if select.select([controller], [], [], 0.5)[0]:
                shown += os.read(controller, 65536)
        text = shown.decode().replace("\r\n", "\n")
        l1_rpc = json.loads((data_dir / "run" / "endpoints.json").read_text())["l1_rpc"]
        assert f"L1            {l1_rpc} (local anvil, chain id 31337; port {port} was busy)" in text
        assert not l1_rpc.endswith(f":{port}")
        assert f"--dev 9 {checksum(DEV_ACCOUNTS[9])}" in text and "l2node is up" in text
        for step in banner.NEXT_STEPS:  # run with the venv's CLI, on this data dir
            assert f"/l2node{step.removeprefix('l2node')} --data-dir {data_dir.resolve()}" in text
        assert "L1 port busy" in (tmp_path / "up.log").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        os.close(controller)
        busy.close()


def _recipe(target: str, *, directory: pathlib.Path = ROOT, always: bool = True) -> str:
    """What `make TARGET` would run (`make -n`: printed, not run)."""
    r = subprocess.run(["make", "-n", *(["-B"] if always else []), "-C", str(directory), target],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_make_up_installs_only_what_the_node_runs_and_make_test_the_dev_tools_too() -> None:
    up = _recipe("up")
    assert "pip install --quiet -e .\n" in up and "[dev]" not in up and "pytest" not in up
    assert "pip install --quiet -e '.[dev]'" in _recipe("test")


def test_make_test_after_make_up_still_installs_the_dev_tools(tmp_path: pathlib.Path) -> None:
    (tmp_path / "Makefile").write_text((ROOT / "Makefile").read_text())
    for name in ("pyproject.toml", "setup.py", "protocol/_native.c", "package.json", "package-lock.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
        os.utime(tmp_path / name, (1, 1))
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").write_text("")  # what `make up` left
    assert "npm" not in _recipe("up", directory=tmp_path, always=False)  # up to date
    test = _recipe("test", directory=tmp_path, always=False)
    assert "pip install --quiet -e '.[dev]'" in test and "npm" not in test


def test_the_npm_lock_lists_every_platforms_anvil_so_npm_never_rewrites_it() -> None:
    packages = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    missing = [f"{name} -> {dep}" for name, entry in packages.items()
               for dep in entry.get("optionalDependencies", {}) if f"node_modules/{dep}" not in packages]
    assert missing == []


def test_the_install_steps_npm_command_leaves_the_tracked_lock_unchanged(tmp_path: pathlib.Path) -> None:
    (line,) = [line.strip() for line in _recipe("install").splitlines()
               if "npm ci" in line and not line.strip().startswith("#")]
    command = line[line.index("npm "):]  # after the guard that skips a symlinked node_modules
    for name in ("package.json", "package-lock.json"):
        (tmp_path / name).write_text((ROOT / name).read_text())

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)

    git("init", "-q")
    git("add", "package.json", "package-lock.json")
    git("commit", "-qm", "tracked")
    env = {**os.environ, "npm_config_prefer_offline": "true"}  # what `make install` fetched is in npm's cache
    r = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "node_modules" / "@foundry-rs" / "anvil").is_dir()
    diff = git("diff", "--exit-code", "--stat")
    assert diff.returncode == 0, diff.stdout
