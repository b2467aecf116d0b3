"""N real `l2node up` trees on one anvil, for the multi-node channels tests and the benchmark.

    with Trees(tmp_path, 3) as trees:
        a, b, c = trees
        a.cli("channels", "open", b.channels, "--amount", "1ether")

Tree 1 is the default `l2node up` (its local anvil, the contracts deployed with a 20 s channel
challenge period, every built-in service; its channel key is the devnet's, dev account 6). Trees
2..N are `l2node up --l1-rpc <tree 1's anvil>` with ``[l1] contracts`` = tree 1's contracts.json,
only the channels worker, and each its own data dir, base port and channel key: anvil dev accounts
2, 3, 4, 5 in turn (tree 1's roles sign with 0, 1, 6, 7, 8 and 9: l2node/node/deploy.py).

Each tree's channels address (``Tree.channels``) and channel key address (``Tree.address``) are
known before any tree starts, so one tree's settings may name another's (``settings_of``: a
watchtower); once up, its endpoints.json must list the same address. A tree can be taken down
and brought back on its data dir and ports (``stop``, ``start``, ``wait_ready``: a node offline);
``freeze`` stops the whole tree without a word (SIGSTOP: connections stay open, nothing answers),
``frozen`` and ``offline`` for the length of a block;
``pid_and_address`` names a worker to kill -9; ``follow`` runs a streaming command (``--follow``).
The shared anvil: ``Trees.rpc``, ``now``, ``pass_time`` (a challenge period runs out), ``balance``,
``gas_spent`` (what an account paid for its L1 transactions: every wei of a payout accounted for),
``on_chain`` (the adjudicator's view of a channel); ``held_by_tower`` asks a tree's watchtower.

Every tree is stopped at the end (SIGTERM to its process group, then SIGKILL), trees 2..N first:
tree 1 owns the anvil they all use.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pathlib
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import grpc

from l2node.cli import CliError, status_document
from protocol import DEV_ACCOUNTS, DEV_PRIVATE_KEYS
from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc as pb_grpc
from services.channels import Rules, seal
from services.l1 import Artifact, Contract, Deployment
from tests.channels._nodes import adjudicator_view
from tests.conftest import json_rpc
from tests.node.test_up import L2NODE, cli, stop_tree, wait_for
from tests.ports import free_base_port

#: The channel keys of trees 2..N: the dev accounts no role of tree 1 signs with.
PEER_KEY_INDEXES: Final = (2, 3, 4, 5)
#: Tree 1's channel key: l2node/node/deploy.py's DEVNET_CHANNELS_KEY.
TREE1_KEY_INDEX: Final = 6
#: The adjudicator's challenge period tree 1 deploys (l2node/node/params.py's devnet default).
PERIOD: Final = 20
#: What the channels workers run with unless told: L1 looked at often, a silent peer given up on soon,
#: a channel announced soon after it opens.
CHANNELS_SETTINGS: Final = {"poll_interval_s": 0.1, "peer_deadline_s": 2.0, "gossip_interval_s": 0.5}
_START_S: Final = 120.0


def _toml(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, numbers and booleans read back the same in TOML


class Tree:
    """One `l2node up`: its files, its ports and keys (known before it starts), its process."""

    def __init__(self, tmp: pathlib.Path, name: str, key_index: int, channels_only: bool) -> None:
        self.name = name
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        self.config_file = self.dir / "l2node.toml"
        self.log_path = self.dir / "up.log"
        self.base_port = free_base_port()
        #: The channels worker's address (host:port): what PEER is. The worker listens at base_port
        #: + 1 + its index among the tree's services (sequencer, rollups, bridge, channels); once
        #: up, its endpoints.json says the same (checked).
        self.channels = f"127.0.0.1:{self.base_port + 1 + (0 if channels_only else 3)}"
        #: The channel key's address (0x-hex): what `l2node pay --to` takes.
        self.address = "0x" + DEV_ACCOUNTS[key_index].hex()
        self.key = DEV_PRIVATE_KEYS[key_index]
        self.l1_rpc: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.followers: list[Follower] = []
        self.is_frozen = False

    def configure(self, config: str, l1_rpc: str | None) -> None:
        # [jsonrpc] port 0: trees of tests running at once do not race for 8547.
        self.config_file.write_text(f"[node]\nbase_port = {self.base_port}\n[jsonrpc]\nport = 0\n{config}")
        self.l1_rpc = l1_rpc

    def start(self) -> None:
        """`l2node up` with this tree's config and data dir (again, after ``stop``: it resumes from
        its data dir on the same ports). Returns at once; ``wait_ready`` waits."""
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [*L2NODE, "up", "--data-dir", str(self.data_dir), "--config", str(self.config_file),
                 *(["--l1-rpc", self.l1_rpc] if self.l1_rpc else [])],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self) -> bool:
        """What `l2node status` says (asked in-process: a poll is no interpreter start)."""
        assert self.proc is not None and self.proc.poll() is None, \
            f"tree {self.name} exited:\n{self.log_path.read_text()[-5000:]}"
        try:
            return bool(status_document(self.data_dir)["ready"])
        except CliError:  # no endpoints.json yet, or the control plane not answering yet
            return False

    def wait_ready(self) -> None:
        wait_for(self.ready, _START_S, f"{self.name} up and ready")
        listed = self.pid_and_address("channels")[1]
        assert listed == self.channels, f"{self.name}: endpoints.json lists channels at {listed}, not {self.channels}"

    def endpoints(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.data_dir / "run" / "endpoints.json").read_text())
        return doc

    def pid_and_address(self, child: str) -> tuple[int, str]:
        """A child's pid and address, as endpoints.json lists them (e.g. to kill -9 the channels worker)."""
        row = next(c for c in self.endpoints()["children"] if c["id"] == child)
        return int(row["pid"]), str(row["address"])

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``l2node ARGS --data-dir`` this tree's, a subprocess; with ``check``, it must exit 0."""
        return cli(self.data_dir, *args, check=check)

    def cli_json(self, *args: str) -> Any:
        """``l2node ARGS --json``, which must exit 0: its output read as JSON."""
        return json.loads(self.cli(*args, "--json").stdout)

    def follow(self, *args: str) -> Follower:
        """``l2node ARGS --data-dir`` this tree's, left running (e.g. ``channels --follow --json``) until
        its ``stop``, or the tree's."""
        follower = Follower([*L2NODE, *args, "--data-dir", str(self.data_dir)])
        self.followers.append(follower)
        return follower

    def freeze(self, frozen: bool) -> None:
        """Every process of the tree stopped (SIGSTOP: offline without a word, its connections open
        and unanswered), or continued (SIGCONT) where it was: `up`'s process group, the supervisor
        first, and each child (in its own session: supervisor/_zygote.py)."""
        assert self.proc is not None and self.proc.poll() is None, f"tree {self.name} is not running"
        children = [int(c["pid"]) for c in self.endpoints()["children"] if c.get("pid")]
        if frozen:
            os.killpg(self.proc.pid, signal.SIGSTOP)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)
        if not frozen:
            os.killpg(self.proc.pid, signal.SIGCONT)
        self.is_frozen = frozen

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """``freeze``: the tree frozen for the block, continued after it (when the block fails too)."""
        self.freeze(True)
        try:
            yield
        finally:
            self.freeze(False)

    @contextlib.contextmanager
    def offline(self) -> Iterator[None]:
        """The tree down (``stop``) for the block, back and ready after it (when the block fails too:
        the trees are shared, and the next test needs it)."""
        self.stop()
        try:
            yield
        finally:
            self.start()
            self.wait_ready()

    def stop(self) -> None:
        """The whole tree down (SIGTERM, then SIGKILL after 30 s); ``start`` brings it back."""
        for follower in self.followers:
            follower.stop()
        if self.proc is not None:
            if self.is_frozen and self.proc.poll() is None:
                self.freeze(False)  # a stopped process group would sit on its SIGTERM
            stop_tree(self.proc)


class Follower:
    """A command that streams lines (``--follow``): its lines as they come, read by a thread."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, match: Callable[[str], bool], timeout_s: float, what: str) -> str:
        return str(wait_for(lambda: next((line for line in self.lines if match(line)), None), timeout_s, what))

    def stop(self) -> int:
        """Ctrl-C (SIGINT), as a user ends it; its exit code (SIGKILL after 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


#: A tree's own ``[workers.channels] settings`` over the common ones, from its index (0 = tree 1)
#: and every tree (their addresses are known before any starts: e.g. ``tower`` = another's channels).
SettingsOf = Callable[[int, Sequence[Tree]], Mapping[str, Any]]


class Trees:
    """``n`` trees on tree 1's anvil (1 <= n <= 5), started and ready on entry, stopped on exit.

    ``channels_settings`` is every tree's ``[workers.channels] settings``, ``settings_of`` a tree's
    own on top; ``channels_only`` leaves tree 1's other services out too (a test about channels
    alone spares the machine an L2)."""

    def __init__(self, tmp: pathlib.Path, n: int, channels_settings: Mapping[str, Any] = CHANNELS_SETTINGS,
                 settings_of: SettingsOf | None = None, channels_only: bool = False) -> None:
        if not 1 <= n <= 1 + len(PEER_KEY_INDEXES):
            raise ValueError(f"{n} trees: one anvil has dev keys for 1 to {1 + len(PEER_KEY_INDEXES)}")
        keys = (TREE1_KEY_INDEX, *PEER_KEY_INDEXES)
        self.trees = [Tree(tmp, f"tree{i + 1}", keys[i], channels_only or i > 0) for i in range(n)]
        self.tmp, self.channels_only = tmp, channels_only
        self.channels_settings = dict(channels_settings)
        self.settings_of = settings_of
        #: Tree 1's anvil, which every tree uses, and the contracts `up` deployed on it (set on entry).
        self.l1_rpc = ""
        self.contracts = self.trees[0].data_dir / "l1" / "contracts.json"

    def __enter__(self) -> Trees:
        try:
            self._start()
        except BaseException:
            self.close()  # trees that never came up must not outlive their test
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Tree]:
        return iter(self.trees)

    def __getitem__(self, index: int) -> Tree:
        return self.trees[index]

    def _settings(self, index: int) -> str:
        own = self.settings_of(index, self.trees) if self.settings_of else {}
        return f"[workers.channels]\nsettings = {_toml({**self.channels_settings, **own})}\n"

    def _start(self) -> None:
        others_off = "".join(f"[workers.{w}]\nenabled = false\n" for w in ("sequencer", "rollups", "bridge"))
        first = self.trees[0]
        first.configure("[l1]\nport = 0\n" + (others_off if self.channels_only else "") + self._settings(0), None)
        first.start()
        first.wait_ready()
        self.l1_rpc = str(first.endpoints()["l1_rpc"])
        for i, tree in enumerate(self.trees[1:], start=1):
            key_file = tree.dir / "channels.key"
            key_file.write_text("0x" + tree.key.hex() + "\n")
            key_file.chmod(0o600)
            tree.configure(f"[l1]\ncontracts = {json.dumps(str(self.contracts))}\n"
                           f"channels_key_file = {json.dumps(str(key_file))}\n" + others_off + self._settings(i),
                           self.l1_rpc)
            tree.start()
        for tree in self.trees[1:]:  # they start at once; each must come up
            tree.wait_ready()

    def close(self) -> None:
        for tree in reversed(self.trees):  # tree 1 last: its anvil is everyone's L1
            tree.stop()

    # --- L1 --------------------------------------------------------------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call to the shared anvil."""
        return json_rpc(self.l1_rpc, method, *params)

    def pass_time(self, seconds: int) -> None:
        """L1 time moves ``seconds`` on, and a block is mined at it (a challenge period runs out)."""
        self.rpc("evm_increaseTime", seconds)
        self.rpc("anvil_mine", "0x1")

    def balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", address, "latest"), 16)

    def now(self) -> int:
        """The latest block's timestamp (what an HTLC's expiry is compared with)."""
        return int(self.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def block(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def gas_spent(self, address: str, after_block: int) -> int:
        """Wei ``address`` paid for the gas of its transactions in the blocks after ``after_block``:
        with what it was paid out, its balance's whole change."""
        spent = 0
        for number in range(after_block + 1, self.block() + 1):
            for tx in self.rpc("eth_getBlockByNumber", hex(number), True)["transactions"]:
                if tx["from"].lower() == address.lower():
                    receipt = self.rpc("eth_getTransactionReceipt", tx["hash"])
                    spent += int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        return spent

    def nonce(self, address: str) -> int:
        return int(self.rpc("eth_getTransactionCount", address, "latest"), 16)

    @functools.cached_property
    def adjudicator(self) -> Contract:
        return Contract(Artifact.load("ChannelAdjudicator"),
                        Deployment.load(str(self.contracts)).address_of("ChannelAdjudicator"))

    def on_chain(self, channel_id: str) -> tuple[Any, ...]:
        """The adjudicator's ChannelView of a channel (tests/channels/_nodes.py: L1_CLOSING, ...)."""
        return adjudicator_view(self, self.adjudicator, channel_id)

    def held_by_tower(self, tower: Tree, asker: Tree, channel_id: str) -> int:
        """The sequence of the channel's state ``tower``'s watchtower holds (-1: none), asked as
        ``asker`` (a participant of the channel: no one else may read it)."""
        rules = Rules(int(self.rpc("eth_chainId"), 16), self.adjudicator.address or b"", asker.key)
        with grpc.insecure_channel(tower.channels) as channel:
            answer = pb_grpc.TowerServiceStub(channel).GetAppointment(
                seal(rules, pb.GetAppointmentRequest(channel_id=channel_id)), timeout=10)
        return int(answer.state.sequence) if answer.held else -1
