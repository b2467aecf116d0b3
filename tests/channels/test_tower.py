"""The watchtower (services/channels/_tower.py, rules T1-T8) on a real anvil with the real
ChannelAdjudicator: Alice (the owner, offline) hands her newest state to the tower; Bob (the
counterparty) closes with an older one that pays him more.

Run as a module, this file is the tower in its own process for the kill -9 tests:

    TOWER_KILL_AT=stored python -m tests.channels.test_tower RPC DB TOWER_KEY ADJUDICATOR
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pathlib
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from protocol import DEV_PRIVATE_KEYS, ChannelRefused, ChannelState, Domain, Reason, sign_state, state_digest
from services.channels._tower import Appointment, ChallengeState, L1Status, Tower, TowerConfig
from services.l1 import FollowerConfig, L1Client, LocalSigner, Receipt, TxSender, policy_config
from services.runtime import CallPolicy
from tests.conftest import running
from tests.contracts._adjudicator import ALICE, BOB, ETHER, KEYS, MALLORY, PERIOD, Adjudicator, adjudicator
from tests.l1.anvil import Anvil

KILL_ENV = "TOWER_KILL_AT"
TOWER_KEY = DEV_PRIVATE_KEYS[6]
TOWER = LocalSigner(TOWER_KEY)
#: finality_depth 0: the stored resume block passes a close as soon as it is handled, so a test
#: can wait for "seen and decided" (the production default keeps the node's finalized tag).
FOLLOW = FollowerConfig(confirmation_depth=0, use_finalized_tag=False, finality_depth=0, poll_interval_s=0.01,
                        idle_poll_s=0.05)
CONFIG = TowerConfig(safety_margin_s=600, retry_s=0.05, follower=FOLLOW)
#: Alice pays Bob 2 (sequence 1), then Bob pays Alice 4 (sequence 2): the stale one is Bob's best.
STALE, NEWEST = (1, 3 * ETHER, 5 * ETHER), (2, 7 * ETHER, 1 * ETHER)


def client(url: str) -> L1Client:
    policy = CallPolicy(f"tower-{uuid.uuid4().hex[:8]}",
                        policy_config(backoff_initial_s=0.001, backoff_max_s=0.01, breaker_reset_s=0.1))
    return L1Client(url, policy=policy)


def state(channel_id: bytes, fields: tuple[int, int, int]) -> ChannelState:
    return ChannelState(channel_id, *fields)


def appointment(adj: Adjudicator, s: ChannelState, signers: tuple[LocalSigner, LocalSigner] = (ALICE, BOB), *,
                nonce: int = 1) -> Appointment:
    digest = state_digest(s, Domain(adj.chain_id, adj.address))
    sig_a, sig_b = (sign_state(digest, KEYS[signer.address]) for signer in signers)
    return Appointment(adj.address, nonce, s, sig_a, sig_b)


def abi(s: ChannelState) -> tuple[Any, ...]:
    return (s.channel_id, s.sequence, s.balance_a, s.balance_b, [])


async def close(adj: Adjudicator, a: Appointment, by: LocalSigner = BOB) -> Receipt:
    return await adj.send(by, "closeUnilateral", abi(a.state), a.sig_a, a.sig_b)


async def until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 10.0) -> None:
    for _ in range(int(limit_s / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {limit_s}s: {what}")


async def handled(tower: Tower, receipt: Receipt) -> None:
    """The tower has read and decided on every log up to ``receipt``'s block."""
    async def past() -> bool:
        return tower.resume_block() > receipt.block_number
    await until(past, f"the tower past block {receipt.block_number}")


async def tower_nonce(adj: Adjudicator) -> int:
    return await adj.l1.get_transaction_count(TOWER.address, "latest")


@pytest.fixture
async def adj(chain: Anvil) -> AsyncIterator[Adjudicator]:
    async with adjudicator(chain) as deployed:
        await deployed.l1.request("anvil_setBalance", "0x" + TOWER.address.hex(), hex(10 * ETHER))
        yield deployed


@pytest.fixture
async def tower(adj: Adjudicator, tmp_path: pathlib.Path) -> AsyncIterator[Tower]:
    async with client(adj.chain.url) as l1:
        t = Tower(l1, TOWER, tmp_path / "tower.db", adj.address, config=CONFIG)
        try:
            yield t
        finally:
            t.close()


# --- answering a stale close -----------------------------------------------------------------------


async def test_a_stale_close_while_the_owner_is_offline_is_challenged_in_time_and_pays_the_newer_state(
        adj: Adjudicator, tower: Tower) -> None:
    channel_id = await adj.open()
    stale, newest = appointment(adj, state(channel_id, STALE)), appointment(adj, state(channel_id, NEWEST))
    assert await tower.accept(newest) == newest
    async with running(tower.run()):
        closing = await close(adj, stale)
        ((_, closed),) = adj.events(closing)
        ends_at = closed["endsAt"]

        async def answered() -> bool:
            return (await tower.view(channel_id)).sequence == 2
        await until(answered, "the tower's challenge mined")
        await until(lambda: _confirmed(tower), "the challenge recorded")
    (challenge,) = tower.challenges()
    receipt = await adj.l1.get_receipt(challenge.tx_hash)
    assert receipt is not None and receipt.success and receipt.sender == TOWER.address
    assert [name for name, _ in adj.events(receipt)] == ["ChannelChallenged"]
    mined = await adj.l1.get_block(receipt.block_number)
    assert mined is not None and mined.timestamp < ends_at  # within the period

    bob_before = await adj.l1.get_balance(BOB.address)
    await adj.l1.request("evm_increaseTime", PERIOD)
    concluded = await adj.send(MALLORY, "conclude", channel_id, [])  # anyone concludes
    (_, args), = adj.events(concluded)
    assert (args["sequence"], args["balanceA"], args["balanceB"]) == NEWEST
    assert await adj.l1.get_balance(BOB.address) - bob_before == NEWEST[2]  # not STALE's 5: the closer gained nothing
    view = await tower.view(channel_id)
    assert view.status is L1Status.CONCLUDED


async def _confirmed(tower: Tower) -> bool:
    return [c.state for c in tower.challenges()] == [ChallengeState.CONFIRMED]


async def test_a_tower_sharing_its_key_takes_each_nonce_from_the_keys_one_sender(
        adj: Adjudicator, tmp_path: pathlib.Path) -> None:
    # The channels worker's tower sends from the node's channel key, which the worker's TxSender
    # also sends from. With blocks held back, its transactions wait in the pool: a tower counting
    # nonces on its own would sign the sender's next one, and one of the two sends would fail.
    sender = await TxSender.create(adj.l1, TOWER)
    tower = Tower(adj.l1, TOWER, tmp_path / "tower.db", adj.address, config=CONFIG, sender=sender)
    channel_id = await adj.open()
    await tower.accept(appointment(adj, state(channel_id, NEWEST)))
    await close(adj, appointment(adj, state(channel_id, STALE)))
    await adj.l1.request("evm_setAutomine", False)
    try:
        before = await sender.send(MALLORY.address, value=1)  # nonce 0, pending
        async with running(tower.run()):
            await until(lambda: _stored(tower), "the challenge signed and sent")
            after = await sender.send(MALLORY.address, value=1)  # the sender's next, not the tower's
            await adj.l1.request("evm_setAutomine", True)
            await adj.l1.request("anvil_mine", "0x1")
            await until(lambda: _confirmed(tower), "the challenge recorded")
        for tx in (before, after):
            assert (await sender.wait_receipt(tx, 5)).success
        (challenge,) = tower.challenges()
    finally:
        await adj.l1.request("evm_setAutomine", True)
        tower.close()
    assert challenge.nonce == 1 and await tower_nonce(adj) == 3
    assert (await tower.view(channel_id)).sequence == 2


async def _stored(tower: Tower) -> bool:
    return len(tower.challenges()) == 1


async def test_a_challenge_reorged_out_of_l1_is_sent_again_with_the_same_bytes(
        adj: Adjudicator, tmp_path: pathlib.Path) -> None:
    # Blocks above latest - 4 may be reorged (with finality_depth 0, any reorg is too deep).
    deep = TowerConfig(retry_s=0.05, follower=dataclasses.replace(FOLLOW, finality_depth=4))
    tower = Tower(adj.l1, TOWER, tmp_path / "tower.db", adj.address, config=deep)
    try:
        channel_id = await adj.open()
        await tower.accept(appointment(adj, state(channel_id, NEWEST)))
        await close(adj, appointment(adj, state(channel_id, STALE)))
        before = adj.chain.rpc("evm_snapshot")  # the chain with the stale close, without the challenge
        async with running(tower.run()):
            await until(lambda: _confirmed(tower), "the challenge recorded")
            (first,) = tower.challenges()
            assert adj.chain.rpc("evm_revert", before)  # a reorg: the challenge's block is gone
            assert (await tower.view(channel_id)).sequence == 1
            await adj.l1.request("anvil_mine", "0x1")  # the new branch moves on, without the challenge

            async def again() -> bool:
                return (await tower.view(channel_id)).sequence == 2 and await _confirmed(tower)
            await until(again, "the challenge mined again")
        (challenge,) = tower.challenges()
    finally:
        tower.close()
    assert challenge.tx_hash == first.tx_hash and await tower_nonce(adj) == 1


async def test_an_appointment_for_a_channel_already_closing_stale_is_answered_at_once(
        adj: Adjudicator, tower: Tower) -> None:
    channel_id = await adj.open()
    await close(adj, appointment(adj, state(channel_id, STALE)))
    await tower.accept(appointment(adj, state(channel_id, NEWEST)))
    async with running(tower.run()):
        await until(lambda: _confirmed(tower), "the challenge recorded")
    assert (await tower.view(channel_id)).sequence == 2 and await tower_nonce(adj) == 1


async def test_a_stale_close_below_the_block_it_starts_from_is_found_at_start(
        adj: Adjudicator, tmp_path: pathlib.Path) -> None:
    channel_id = await adj.open()
    first = Tower(adj.l1, TOWER, tmp_path / "tower.db", adj.address, config=CONFIG)
    await first.accept(appointment(adj, state(channel_id, NEWEST)))  # while OPEN: nothing to answer yet
    first.close()
    receipt = await close(adj, appointment(adj, state(channel_id, STALE)))
    late = dataclasses.replace(CONFIG, start_block=receipt.block_number + 1)  # its log is never read
    async with client(adj.chain.url) as l1:
        tower = Tower(l1, TOWER, tmp_path / "tower.db", adj.address, config=late)
        try:
            async with running(tower.run()):
                await until(lambda: _confirmed(tower), "the challenge recorded")
        finally:
            tower.close()
    assert (await adj.read("channel", channel_id))[5] == 2


async def test_a_close_with_the_newest_state_is_not_challenged(adj: Adjudicator, tower: Tower) -> None:
    channel_id = await adj.open()
    newest = appointment(adj, state(channel_id, NEWEST))
    await tower.accept(newest)
    async with running(tower.run()):
        await handled(tower, await close(adj, newest))
    assert tower.challenges() == [] and await tower_nonce(adj) == 0
    assert (await tower.view(channel_id)).sequence == 2


async def test_a_close_seen_after_its_period_ended_is_logged_and_nothing_is_sent(
        adj: Adjudicator, tower: Tower, caplog: pytest.LogCaptureFixture) -> None:
    channel_id = await adj.open()
    await tower.accept(appointment(adj, state(channel_id, NEWEST)))
    receipt = await close(adj, appointment(adj, state(channel_id, STALE)))
    await adj.l1.request("evm_increaseTime", PERIOD + 1)
    await adj.l1.request("anvil_mine", "0x1")
    with caplog.at_level(logging.ERROR, logger="l2node.channels.tower"):
        async with running(tower.run()):
            await handled(tower, receipt)
    assert any("after its challenge period ended" in r.getMessage() for r in caplog.records)
    assert tower.challenges() == [] and await tower_nonce(adj) == 0
    assert (await tower.view(channel_id)).sequence == 1


async def test_a_close_seen_within_the_safety_margin_is_logged_loudly_and_still_answered(
        adj: Adjudicator, tower: Tower, caplog: pytest.LogCaptureFixture) -> None:
    channel_id = await adj.open()
    await tower.accept(appointment(adj, state(channel_id, NEWEST)))
    await close(adj, appointment(adj, state(channel_id, STALE)))
    await adj.l1.request("evm_increaseTime", PERIOD - CONFIG.safety_margin_s // 2)
    await adj.l1.request("anvil_mine", "0x1")
    with caplog.at_level(logging.ERROR, logger="l2node.channels.tower"):
        async with running(tower.run()):
            await until(lambda: _confirmed(tower), "the late challenge recorded")
    assert any("within the safety margin" in r.getMessage() for r in caplog.records)
    assert (await tower.view(channel_id)).sequence == 2


# --- appointments ----------------------------------------------------------------------------------


async def test_forged_appointments_are_refused_by_name_and_nothing_is_kept(adj: Adjudicator, tower: Tower) -> None:
    channel_id = await adj.open()
    other_id = await adj.open(nonce=2)
    newest = state(channel_id, NEWEST)
    elsewhere = appointment(adj, state(other_id, NEWEST), nonce=2)  # the same balances, another channel
    unbalanced = ChannelState(channel_id, 2, 9 * ETHER, 9 * ETHER)
    forged = {
        "a stranger's signature": (appointment(adj, newest, (ALICE, MALLORY)), Reason.NOT_A_PARTICIPANT),
        "the signatures swapped": (appointment(adj, newest, (BOB, ALICE)), Reason.SIGNER_MISMATCH),
        "another channel's signatures": (
            Appointment(adj.address, 1, newest, elsewhere.sig_a, elsewhere.sig_b), Reason.NOT_A_PARTICIPANT),
        "an unbalanced state, co-signed": (appointment(adj, unbalanced), Reason.FUNDS_NOT_CONSERVED),
        "a nonce naming another channel": (appointment(adj, newest, nonce=2), Reason.CHANNEL_MISMATCH),
        "another adjudicator": (Appointment(MALLORY.address, 1, newest, b"", b""), Reason.CHANNEL_MISMATCH),
        "a channel not on L1": (appointment(adj, state(b"\x07" * 32, NEWEST)), Reason.CHANNEL_MISMATCH),
        "the funding state": (
            Appointment(adj.address, 1, ChannelState(channel_id, 0, 5 * ETHER, 3 * ETHER), b"", b""),
            Reason.STALE_SEQUENCE),
    }
    for what, (forgery, reason) in forged.items():
        with pytest.raises(ChannelRefused) as refused:
            await tower.accept(forgery)
        assert refused.value.reason is reason, what
    assert tower.appointment(channel_id) is None and tower.appointment(other_id) is None
    assert await tower.accept(appointment(adj, newest)) == appointment(adj, newest)  # the genuine one passes


async def test_an_older_appointment_does_not_replace_a_newer_one(adj: Adjudicator, tower: Tower,
                                                                 tmp_path: pathlib.Path) -> None:
    channel_id = await adj.open()
    stale, newest = appointment(adj, state(channel_id, STALE)), appointment(adj, state(channel_id, NEWEST))
    await tower.accept(stale)
    await tower.accept(newest)  # a newer one replaces
    with pytest.raises(ChannelRefused) as refused:
        await tower.accept(stale)
    assert refused.value.reason is Reason.STALE_SEQUENCE
    assert await tower.accept(newest) == newest  # the same again: acknowledged, kept
    tower.close()
    reopened = Tower(tower.l1, TOWER, tmp_path / "tower.db", adj.address, config=CONFIG)  # durable (T3)
    try:
        assert reopened.appointment(channel_id) == newest
    finally:
        reopened.close()


# --- an L1 outage ----------------------------------------------------------------------------------


class Link:
    """A TCP relay to anvil that can be cut: the tower's own path to L1 fails (connections
    dropped on arrival, open ones closed) while L1 itself goes on for everyone else."""

    def __init__(self, port: int) -> None:
        self.port, self.up = port, True
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    def cut(self) -> None:
        self.up = False
        for writer in self._open:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._open |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._open -= {writer, up_writer}


async def test_an_l1_outage_is_waited_out_and_the_close_made_during_it_is_answered(
        adj: Adjudicator, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two outages of the tower's link: one while Bob closes (the follower waits it out), one
    between seeing the close and sending the challenge (the round fails and is read again)."""
    channel_id = await adj.open()
    link = Link(adj.chain.port)
    cuts: list[str] = []

    def checkpoint(point: str) -> None:
        if point == "seen" and not cuts:
            cuts.append(point)
            link.cut()

    def logged(text: str, more_than: int = 0) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return count(text) > more_than
        return check

    def count(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    async with link as url, client(url) as l1:
        tower = Tower(l1, TOWER, tmp_path / "tower.db", adj.address, config=CONFIG, checkpoint=checkpoint)

        async def rejected() -> bool:
            return l1.policy.statistics().rejected > 0
        try:
            await tower.accept(appointment(adj, state(channel_id, NEWEST)))
            with caplog.at_level(logging.WARNING):
                async with running(tower.run()):
                    link.cut()
                    closing = await close(adj, appointment(adj, state(channel_id, STALE)))  # L1 is up for Bob
                    await until(rejected, "the tower's breaker open")
                    assert (await adj.read("channel", channel_id))[5] == 1  # unanswered while the link is down
                    failed = count("tower round failed")
                    link.up = True

                    async def seen() -> bool:
                        return cuts == ["seen"]
                    await until(seen, "the stale close seen, and the link cut again")
                    await until(logged("tower round failed", failed), "the second outage, at the challenge")
                    assert tower.challenges() == []
                    link.up = True
                    await until(lambda: _confirmed(tower), "the challenge after the outages")
            assert (await tower.view(channel_id)).sequence == 2 and await tower_nonce(adj) == 1
            mined = await adj.l1.get_receipt(tower.challenges()[0].tx_hash)
            ((_, closed),) = adj.events(closing)
            block = await adj.l1.get_block(mined.block_number) if mined else None
            assert block is not None and block.timestamp < closed["endsAt"]
        finally:
            tower.close()


# --- kill -9 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["seen", "stored"])
async def test_killed_after_seeing_the_close_and_before_sending_it_challenges_once_after_a_restart(
        adj: Adjudicator, tower: Tower, tmp_path: pathlib.Path, point: str) -> None:
    channel_id = await adj.open()
    await tower.accept(appointment(adj, state(channel_id, NEWEST)))
    await close(adj, appointment(adj, state(channel_id, STALE)))
    env = {**os.environ, KILL_ENV: point}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.channels.test_tower", adj.chain.url,
                                                str(tmp_path / "tower.db"), TOWER_KEY.hex(), adj.address.hex(),
                                                env=env)
    try:
        assert await asyncio.wait_for(proc.wait(), 20) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stored = tower.challenges()  # the killed process's, read from the file
    assert [c.state for c in stored] == ([ChallengeState.OPEN] if point == "stored" else [])
    assert await tower_nonce(adj) == 0 and (await tower.view(channel_id)).sequence == 1  # nothing sent

    async with running(tower.run()):  # the restart
        await until(lambda: _confirmed(tower), "the challenge recorded")
    (challenge,) = tower.challenges()
    if stored:
        assert challenge.tx_hash == stored[0].tx_hash  # the same signed bytes
    assert await tower_nonce(adj) == 1  # one transaction from the tower, ever
    challenged = await adj.l1.get_logs(0, "latest", address=adj.address,
                                       topics=[adj.contract.topic("ChannelChallenged")])
    assert len(challenged) == 1 and (await tower.view(channel_id)).sequence == 2


# --- the driver (a tower in its own process) ------------------------------------------------------


def _checkpoint(point: str) -> None:
    if os.environ.get(KILL_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


async def _drive(url: str, db: str, key: str, address: str) -> None:
    async with client(url) as l1:
        tower = Tower(l1, LocalSigner(bytes.fromhex(key)), pathlib.Path(db), bytes.fromhex(address), config=CONFIG,
                      checkpoint=_checkpoint)
        try:
            await tower.run()
        finally:
            tower.close()


if __name__ == "__main__":
    asyncio.run(_drive(*sys.argv[1:5]))
