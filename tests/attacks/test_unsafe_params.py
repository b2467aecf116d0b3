"""Issue 12, item 7: running with parameters that are only safe on the devnet.

The L1 here is anvil as chain 1 (not a local devnet, though on loopback) whose blocks are 12 s
apart (anvil_setBlockTimestampInterval, no waiting). On it:

- the issue's scenario, played for real: with the devnet's clocks an attacker challenges a
  *correct* output and the honest defender, moving in every 12 s block, runs out of clock long
  before the 20 bisections a 2**20 trace can need, and loses its bond; with the clock the check
  demands (rounds x 12 s x the margin) the same attack loses;
- `l2node deploy` (and the deploy `l2node up` runs) refuses the devnet parameters, naming the
  clock and the rounds, and deploys the production preset;
- the rollups worker refuses to start on contracts deployed with unsafe values.
On a local devnet (chain 31337 on loopback) the same values deploy with a warning.
"""

from __future__ import annotations

import json
import logging
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from l2node.node.deploy import DEVNET_BATCHER, DEVNET_DEPLOYER_KEY, DeployError, deploy_new
from l2node.node.params import PRESETS, RollupParams
from protocol import DEV_PRIVATE_KEYS, UnsafeParams, check_deployed, devnet_genesis, game_rounds
from protocol._safe_params import min_clock_s
from services.l1 import L1Client, LocalSigner
from services.rollups import Roles, RollupsSettings
from services.rollups._contracts import GameStatus, OutputStatus
from services.rollups._rollups import Rollups
from tests.contracts._game import ALICE, ANCHOR, BOB, Params, Registry, Trace, honest_claims, play
from tests.l1.anvil import Anvil

BLOCK_TIME_S = 12
DEVNET = PRESETS["devnet"]
DEPLOYER = LocalSigner(DEVNET_DEPLOYER_KEY).address


@pytest.fixture(scope="module")
def mainnet_like() -> Iterator[Anvil]:
    """anvil as chain 1, every block 12 s after the last, 64 of them already there to measure."""
    node = Anvil(args=("--chain-id", "1"))
    node.start()
    try:
        node.rpc("anvil_setBlockTimestampInterval", BLOCK_TIME_S)
        node.rpc("anvil_mine", 64)
        yield node
    finally:
        node.stop()


@pytest.fixture
def chain12(mainnet_like: Anvil) -> Iterator[Anvil]:
    with mainnet_like.snapshot():
        yield mainnet_like


@pytest.fixture
async def l1(chain12: Anvil) -> AsyncIterator[L1Client]:
    async with L1Client(chain12.url) as client:
        yield client


async def test_the_l1_measures_12_s_blocks(l1: L1Client) -> None:
    head = await l1.get_block("latest")
    old = await l1.get_block(0)
    assert head is not None and old is not None and await l1.chain_id() == 1
    assert (head.timestamp - old.timestamp) / head.number == BLOCK_TIME_S


async def test_the_issue_s_defender_runs_out_of_clock_with_devnet_clocks_and_not_with_the_checked_ones(
        l1: L1Client, chain12: Anvil) -> None:
    length = DEVNET.max_trace_length
    rounds = game_rounds(length)
    assert rounds == 20
    trace = Trace(ANCHOR, target=ANCHOR.number + length, length=length)

    # The devnet's values, deployed straight to the contracts (no check in the way).
    reg = await Registry.deploy(l1, chain12, Params(window=DEVNET.challenge_window_s, clock=DEVNET.max_clock_s,
                                                    max_trace_length=length))
    index = await reg.propose(ALICE, trace.snapshot(length), length)  # a correct output
    game = await reg.challenge(BOB, index)  # the attacker disagrees with every claim
    moves = 0
    while True:
        (round_,) = await game.read(l1, "round")
        (mid,) = await game.read(l1, "mid")
        (bond,) = await game.read(l1, "moveBond", round_)
        bisect = await reg.transact(ALICE, game, "bisect", trace.claim(mid), value=bond, gas=300_000)
        if not bisect.success:
            break
        moves += 1
        assert (await reg.transact(BOB, game, "choose", False, value=bond)).success
    # one move per 12 s block: 90 s of clock is 7 moves of the 20 the defender needs
    assert moves == DEVNET.max_clock_s // BLOCK_TIME_S == 7 < rounds
    timeout = await reg.transact(BOB, game, "claimTimeout")
    assert ("Resolved", {"status": GameStatus.CHALLENGER_WON}) in reg.events(timeout, game)
    assert await reg.status(index) == OutputStatus.INVALIDATED
    assert await reg.read("credit", BOB.address) == reg.params.proposal_bond  # the honest bond, to the attacker

    # With the clock the check asks for on this L1 (21 moves x 12 s x 4 blocks), the attack fails.
    clock = int(min_clock_s(length, BLOCK_TIME_S))
    assert clock == (rounds + 1) * BLOCK_TIME_S * 4 == 1008
    reg = await Registry.deploy(l1, chain12, Params(window=DEVNET.challenge_window_s, clock=clock,
                                                    max_trace_length=length))
    index = await reg.propose(ALICE, trace.snapshot(length), length)
    game = await reg.challenge(BOB, index)
    played = await play(reg, game, trace, ALICE, BOB, claims=honest_claims(trace),
                        agrees=lambda mid, claim: False, stepper=ALICE)
    assert (played.status, played.rounds) == (GameStatus.DEFENDER_WON, rounds)
    assert await reg.status(index) == OutputStatus.PROPOSED
    (defender_left, _) = await game.read(l1, "clocks")
    assert defender_left == clock - rounds * BLOCK_TIME_S  # 20 bisections, 12 s each (the step is on BOB's)


async def test_deploy_refuses_devnet_parameters_naming_the_clock_and_the_rounds(l1: L1Client) -> None:
    nonce = await l1.get_transaction_count(DEPLOYER, "latest")
    with pytest.raises(DeployError) as refused:
        await deploy_new(l1, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, DEVNET)
    message = str(refused.value)
    assert message.startswith("refused: [rollups] ") and "on L1 chain 1 (block time 12 s, measured)" in message
    assert "max_clock_s 90 is below 1008 s: max_trace_length 1048576 makes 20 rounds" in message
    assert "90 s lasts 7 of the 21 moves" in message
    assert "challenge_window_s 20 is below 96 s" in message
    assert await l1.get_transaction_count(DEPLOYER, "latest") == nonce  # nothing was sent


def l2node_deploy(url: str, out: pathlib.Path, config: str) -> subprocess.CompletedProcess[str]:
    key = out.parent / f"{out.name}.key"
    key.write_text(DEVNET_DEPLOYER_KEY + "\n")
    toml = out.parent / f"{out.name}.toml"
    toml.write_text(config)
    return subprocess.run([sys.executable, "-m", "l2node.cli", "deploy", "--l1-rpc", url, "--key-file", str(key),
                           "--batcher-address", "0x" + DEVNET_BATCHER.hex(), "--config", str(toml), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)


async def test_l2node_deploy_refuses_the_devnet_values_and_deploys_the_production_preset(
        l1: L1Client, chain12: Anvil, tmp_path: pathlib.Path) -> None:
    refused = l2node_deploy(chain12.url, tmp_path / "devnet", "[rollups]\nchallenge_window_s = 600\n")
    assert refused.returncode != 0 and not (tmp_path / "devnet" / "contracts.json").exists()
    assert "deploy: refused:" in refused.stderr and "20 rounds" in refused.stderr
    assert "max_clock_s 90 is below 1008 s" in refused.stderr
    assert "challenge_window_s 600 is below" not in refused.stderr  # 600 s is enough: only the clock is named

    done = l2node_deploy(chain12.url, tmp_path / "prod", '[rollups]\npreset = "production"\n')
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "prod" / "contracts.json").read_text())
    assert doc["rollups"] == PRESETS["production"].to_json()
    # and the worker's start check, reading the deployed values, agrees
    assert await check_deployed(l1, bytes.fromhex(doc["contracts"]["OutputRegistry"][2:]),
                                bytes.fromhex(doc["contracts"]["StepVerifier"][2:]), genesis_origin=0,
                                deploy_block=doc["block_number"]) == []


def worker_settings(tmp_path: pathlib.Path, url: str, addresses_doc: dict[str, object]) -> RollupsSettings:
    tmp_path.mkdir()
    contracts = tmp_path / "contracts.json"
    contracts.write_text(json.dumps(addresses_doc))
    keys = {}
    for role, index in (("proposer", 8), ("challenger", 9)):
        keys[f"{role}_key_file"] = str(tmp_path / f"{role}.key")
        pathlib.Path(keys[f"{role}_key_file"]).write_text("0x" + DEV_PRIVATE_KEYS[index].hex())
    return RollupsSettings.from_mapping({"l1": {"rpc": url, "contracts": str(contracts), **keys}})


async def open_worker(settings: RollupsSettings) -> Rollups:
    return await Rollups.open(settings, devnet_genesis(settings.chain_id), logging.getLogger("test.rollups"),
                              lambda address: pytest.fail("no sequencer channel wanted"), Roles())


async def test_the_rollups_worker_refuses_to_start_on_contracts_deployed_unsafe(
        l1: L1Client, chain12: Anvil, tmp_path: pathlib.Path) -> None:
    # Deployed while the chain called itself a devnet (a warning then), run once it is chain 1.
    chain12.rpc("anvil_setChainId", 31337)
    try:
        unsafe = await deploy_new(l1, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, DEVNET)
    finally:
        chain12.rpc("anvil_setChainId", 1)
    with pytest.raises(UnsafeParams) as refused:
        await open_worker(worker_settings(tmp_path / "unsafe", chain12.url, unsafe.to_json()))
    message = str(refused.value)
    assert message.startswith("the deployed contracts' {'challenge_window_s': 20, 'max_clock_s': 90")
    assert "max_clock_s 90 is below 1008 s" in message and "20 rounds" in message

    safe = await deploy_new(l1, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, PRESETS["production"])
    rollups = await open_worker(worker_settings(tmp_path / "safe", chain12.url, safe.to_json()))
    try:
        assert rollups.registry is not None and len(rollups.tasks()) == 2  # proposer and challenger
    finally:
        await rollups.aclose()


async def test_on_a_local_devnet_unsafe_values_deploy_with_a_warning(
        chain: Anvil, caplog: pytest.LogCaptureFixture) -> None:
    chain.rpc("evm_mine")  # a block to measure from (an automining chain counts as 1 s blocks)
    async with L1Client(chain.url) as devnet:
        with caplog.at_level(logging.WARNING, logger="l2node.params"):
            deployed = await deploy_new(devnet, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER,
                                        RollupParams(challenge_window_s=5, max_clock_s=8))
    assert deployed.chain_id == 31337 and deployed.rollups.max_clock_s == 8
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "l2node.params"]
    # (an automining anvil's block time is whatever its transactions' pace was: at least 1 s)
    assert "only safe on a local devnet" in warning and "max_clock_s 8 is below" in warning
    assert "20 rounds" in warning and "challenge_window_s 5 is below" in warning


@pytest.mark.parametrize(("chain_id", "refused"), [(5, True), (31337, False)])
async def test_an_l1_without_a_block_to_measure_is_refused_unless_a_fresh_local_devnet(
        chain_id: int, refused: bool) -> None:
    fresh = Anvil(args=("--chain-id", str(chain_id)))
    fresh.start()
    try:
        async with L1Client(fresh.url) as l1:
            assert await l1.block_number() == 0
            if refused:  # no history: the block time cannot be measured, so nothing is deployed
                with pytest.raises(DeployError, match="no block after genesis to measure its block time from"):
                    await deploy_new(l1, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, PRESETS["production"])
            else:  # `l2node up`'s own anvil, just started: the worker's start check comes once it has blocks
                assert (await deploy_new(l1, DEVNET_DEPLOYER_KEY, DEVNET_BATCHER, DEVNET)).chain_id == 31337
    finally:
        fresh.stop()
