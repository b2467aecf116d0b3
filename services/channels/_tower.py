"""The watchtower: answers a stale unilateral close for a node that is offline.

A node hands the tower, per channel, the minimum needed to answer a close (an ``Appointment``:
the adjudicator, the channel's nonce, its latest co-signed state and both signatures). The tower
follows the adjudicator's ChannelClosing and ChannelChallenged events on L1 and, when the closing
state is older than the one it holds, submits ``challenge(state, sigA, sigB)`` from its own key
(the adjudicator lets anyone challenge: A11). Rules (the worker and the tests cite them):

- **T1** An appointment is checked before it is kept, trusting nothing the client says about the
  channel: it names the adjudicator this tower watches (CHANNEL_MISMATCH), the channel exists
  there and is OPEN or CLOSING (its participants and funding read from the adjudicator's
  ``channel(id)`` view, not from the client; CHANNEL_MISMATCH), the nonce with those
  participants hashes to the state's channel id (C1: CHANNEL_MISMATCH), the state is valid on its
  own (``check_state``: C3-C6), it is a co-signed one (sequence >= 1: the funding state answers
  nothing; STALE_SEQUENCE), and sigA recovers to A, sigB to B (``check_signature``: C8, C9:
  NOT_A_PARTICIPANT, SIGNER_MISMATCH, INVALID_SIGNATURE, HIGH_S). Each refusal is a
  ``ChannelRefused`` with its Reason.
- **T2** One appointment per channel, the newest: a lower sequence never replaces a higher one
  (STALE_SEQUENCE); the same sequence again keeps the one held (both parties signed both, so
  either answers the same closes) and is acknowledged.
- **T3** An appointment is durable (its own table, ``tower_appointments``, in a WAL SQLite file,
  synchronous=FULL) before ``accept`` returns: acknowledged means kept across a crash.
- **T4** A channel is challenged when the adjudicator's closing state (read from its view when a
  ChannelClosing or ChannelChallenged log of the channel arrives, or when an appointment for a
  CLOSING channel is accepted) has a lower sequence than the appointment's and the period runs
  (L1's latest block time < endsAt). A close with the newest state (or newer: the owner's own
  challenge) is left alone. The decision is made from the view, not from the log, so a log
  delivered twice (a restart, a reorg) decides the same, and a log a reorg removed is decided
  again. A challenge mined in a block above the finalized head is looked at after each update:
  if a reorg took its receipt away, it is open again and its same bytes are re-sent (T6).
- **T5** At once, early: the challenge is sent when the close is seen; there is nothing to wait
  for (A11 fixes endsAt at the first close). A close seen with less than ``safety_margin_s``
  left is logged at ERROR (the challenge may not be mined in time) and still answered; one seen
  after its period ended is logged at ERROR and nothing is sent (L1 would refuse it).
- **T6** Exactly once per (channel, sequence), across kill -9: the transaction is signed (nonce
  ``max(L1 pending count, highest stored + 1)``), stored in ``tower_challenges``, and only then
  sent. After a restart, an open challenge is settled before anything else: its receipt is
  recorded, or the same signed bytes are sent again if L1 does not hold them (L1 takes them for
  what they are: one transaction). A challenge whose simulation fails (someone else answered
  first, the period ended) is not sent: logged, nothing stored. The tower's key is its own, or
  shared through one ``TxSender`` (the channels worker's: its node's channel key), whose
  ``sign_next`` hands the nonce out under the sender's lock, so the two never sign one nonce
  twice. A nonce taken by a transaction the tower did not sign (a restart's race, the key used
  elsewhere) closes the challenge DROPPED, logged, and the channel is looked at again: a new
  challenge at a new nonce while the period runs.
- **T7** L1 outages are waited out: every L1 call goes through the "l1" call policy (its
  breaker); a failed round is logged and retried after ``retry_s`` from the last stored block
  (what was not fully handled is read again: T4 makes that harmless).
- **T8** It resumes after a restart from its stored block (the follower's finalized head + 1,
  stored after each update is handled, so a close never falls between the stored block and
  the next read) and its stored appointments and challenges; at start it reads the view of every
  channel it holds, so a close below the stored block that was never answered is found too.

Fault points (``checkpoint``): ``seen`` (a close to answer found, nothing stored), ``stored``
(the signed challenge stored, not sent), ``sent`` (sent, receipt not read). The kill -9 tests
stop the tower at each of the first two.

Left for later: a stuck challenge is re-sent as is, never fee-bumped (SenderConfig's fee
multiplier absorbs six full blocks of base-fee rises). The Tower itself does not ask who hands
an appointment in (a co-signed state only helps its channel's parties); TowerService
(``_tower_host``) keeps only those signed by a participant of the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, Final

from protocol import (
    Channel,
    ChannelRefused,
    ChannelState,
    Htlc,
    Reason,
    check_signature,
    check_state,
    state_digest,
)
from services.l1 import (
    ALREADY_KNOWN,
    NONCE_TOO_LOW,
    OUTAGE,
    Artifact,
    Contract,
    FollowerConfig,
    L1Client,
    L1Error,
    LocalSigner,
    Log,
    LogFollower,
    RpcError,
    SenderConfig,
    TxSender,
    UnsignedTransaction,
    current_fees,
)
from services.runtime import Storage

_log = logging.getLogger("l2node.channels.tower")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tower_appointments (
    channel_id BLOB PRIMARY KEY, adjudicator BLOB NOT NULL, nonce TEXT NOT NULL, sequence TEXT NOT NULL,
    balance_a TEXT NOT NULL, balance_b TEXT NOT NULL, htlcs TEXT NOT NULL, sig_a BLOB NOT NULL, sig_b BLOB NOT NULL,
    accepted REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tower_challenges (
    channel_id BLOB NOT NULL, sequence TEXT NOT NULL, sender BLOB NOT NULL, nonce INTEGER NOT NULL,
    raw BLOB NOT NULL, tx_hash BLOB NOT NULL, state TEXT NOT NULL, created REAL NOT NULL,
    l1_block INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (channel_id, sequence));
CREATE TABLE IF NOT EXISTS tower_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_RESUME_KEY: Final = "resume_block"


class L1Status(IntEnum):
    """ChannelAdjudicator.Status."""

    NONE = 0
    OPENING = 1
    OPEN = 2
    CLOSING = 3
    CONCLUDED = 4
    CANCELLED = 5


class ChallengeState(StrEnum):
    OPEN = "open"  # signed and stored; sent, or to be sent (T6)
    CONFIRMED = "confirmed"  # mined and succeeded
    REVERTED = "reverted"  # mined and reverted (someone answered first within the block)
    DROPPED = "dropped"  # its nonce was used by a transaction the tower did not sign


@dataclass(frozen=True, slots=True)
class TowerConfig:
    #: A close seen with less than this left of its period is logged at ERROR (T5).
    safety_margin_s: int = 600
    #: Pause after a failed round (an L1 outage) before reading again from the stored block (T7).
    retry_s: float = 1.0
    #: Where to start following when nothing is stored yet: the adjudicator's deployment block.
    start_block: int = 0
    follower: FollowerConfig = field(default_factory=FollowerConfig)
    sender: SenderConfig = field(default_factory=SenderConfig)


@dataclass(frozen=True, slots=True)
class Appointment:
    """What a node hands the tower for one channel (T1): the newest co-signed state."""

    adjudicator: bytes
    #: The channel's nonce (ChannelAdjudicator.open): with the participants L1 names, the id.
    nonce: int
    state: ChannelState
    sig_a: bytes
    sig_b: bytes

    @property
    def channel_id(self) -> bytes:
        return self.state.channel_id


@dataclass(frozen=True, slots=True)
class OnChain:
    """The adjudicator's view of a channel (ChannelView), the fields the tower needs."""

    a: bytes
    b: bytes
    amount_a: int
    amount_b: int
    status: L1Status
    sequence: int
    ends_at: int


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge transaction, stored before it is sent (T6)."""

    channel_id: bytes
    sequence: int
    nonce: int
    raw: bytes
    tx_hash: bytes
    state: ChallengeState
    l1_block: int = 0


def _no_checkpoint(point: str) -> None:
    del point


class Tower:
    """Watches one adjudicator for the channels it holds appointments for (``run``)."""

    def __init__(self, l1: L1Client, signer: LocalSigner, db_path: Path, adjudicator: bytes, *,
                 config: TowerConfig | None = None, checkpoint: Callable[[str], None] | None = None,
                 sender: TxSender | None = None) -> None:
        if sender is not None and sender.address != signer.address:
            raise ValueError("the tower's sender must hold the tower's key")
        self.l1, self.signer, self.adjudicator = l1, signer, adjudicator
        #: The key's one sender when the key is shared (T6): it hands out the nonces.
        self.sender = sender
        self.config: Final = config or TowerConfig()
        self.checkpoint = checkpoint or _no_checkpoint
        self.contract: Final = Contract(Artifact.load("ChannelAdjudicator"), adjudicator)
        self._topics = (self.contract.topic("ChannelClosing"), self.contract.topic("ChannelChallenged"))
        self._chain_id: int | None = None
        self._lock = asyncio.Lock()  # one writer of appointments and challenges at a time
        self._due: set[bytes] = set()  # channels whose answer failed for want of L1: tried again
        self._storage = Storage(db_path)
        self._db = self._storage.connection
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._storage.close()

    @property
    def address(self) -> bytes:
        return self.signer.address

    # --- appointments ----------------------------------------------------------------------------

    async def accept(self, appointment: Appointment) -> Appointment:
        """Check (T1) and keep (T2, T3) an appointment; the one held for its channel afterwards.
        Refusals raise ChannelRefused; L1 errors propagate (nothing is kept then)."""
        if appointment.adjudicator != self.adjudicator:
            raise ChannelRefused(Reason.CHANNEL_MISMATCH, f"this tower watches the adjudicator "
                                 f"0x{self.adjudicator.hex()}, not 0x{appointment.adjudicator.hex()}")
        state = appointment.state
        view = await self.view(state.channel_id)
        if view.status not in (L1Status.OPEN, L1Status.CLOSING):
            raise ChannelRefused(Reason.CHANNEL_MISMATCH,
                                 f"channel 0x{state.channel_id.hex()} is {view.status.name} on the adjudicator")
        channel = Channel(await self._chain(), self.adjudicator, view.a, view.b, appointment.nonce, view.amount_a,
                          view.amount_b)
        check_state(state, channel)
        if state.sequence == 0:
            raise ChannelRefused(Reason.STALE_SEQUENCE, "the funding state (sequence 0) answers no close")
        digest = state_digest(state, channel.domain)
        check_signature(channel, digest, appointment.sig_a, channel.a)
        check_signature(channel, digest, appointment.sig_b, channel.b)
        async with self._lock:
            held = self.appointment(state.channel_id)
            if held is not None and held.state.sequence > state.sequence:
                raise ChannelRefused(Reason.STALE_SEQUENCE, f"sequence {state.sequence} is older than the "
                                     f"{held.state.sequence} held for this channel")
            if held is not None and held.state.sequence == state.sequence:
                return held
            with self._storage.transaction() as db:
                db.execute("INSERT OR REPLACE INTO tower_appointments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           _appointment_row(appointment))
        _log.info("appointment kept", extra={"channel_id": _hex(state.channel_id), "sequence": state.sequence})
        if view.status is L1Status.CLOSING:  # closed before we held anything: answer it now (T4)
            self._due.add(state.channel_id)
            with contextlib.suppress(*OUTAGE, L1Error):
                await self._answer_due()
        return appointment

    def appointment(self, channel_id: bytes) -> Appointment | None:
        row = self._db.execute("SELECT * FROM tower_appointments WHERE channel_id = ?", (channel_id,)).fetchone()
        return None if row is None else _appointment_of(row)

    def challenges(self) -> list[Challenge]:
        rows = self._db.execute("SELECT channel_id, sequence, nonce, raw, tx_hash, state, l1_block "
                                "FROM tower_challenges WHERE sender = ? ORDER BY nonce", (self.address,)).fetchall()
        return [_challenge_of(row) for row in rows]

    def resume_block(self) -> int:
        row = self._db.execute("SELECT value FROM tower_meta WHERE key = ?", (_RESUME_KEY,)).fetchone()
        return self.config.start_block if row is None else int(row[0])

    async def view(self, channel_id: bytes) -> OnChain:
        (v,) = await self.contract.read(self.l1, "channel", channel_id)
        return OnChain(v[0], v[1], v[2], v[3], L1Status(v[4]), v[5], v[7])

    # --- following L1 ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Forever: settle open challenges (T6), then follow the adjudicator's closes from the
        stored block (T8), answering each stale one (T4); an L1 outage is waited out (T7)."""
        # Every held channel is looked at once first: a close whose log lies below the stored
        # block but whose answer never went out (an accept's answer cut short by L1, then a
        # restart) is found by its view (T4, T8).
        self._due.update(bytes(row[0]) for row in self._db.execute("SELECT channel_id FROM tower_appointments"))
        while True:
            try:
                await self._settle()
                await self._answer_due()
                follower = LogFollower(self.l1, address=self.adjudicator, topics=[self._topics],
                                       start_block=self.resume_block(), config=self.config.follower)
                async for update in follower.updates():  # it holds nothing to close: no aclosing
                    self._handle((*update.removed, *update.added))  # a reorged-out close or challenge too
                    await self._answer_due()
                    await self._settle()
                    self._store_resume(update.heads.finalized + 1)
            except (*OUTAGE, L1Error) as exc:
                _log.warning("tower round failed; resuming from block %d", self.resume_block(),
                             extra={"error": f"{type(exc).__name__}: {exc}"})
                await asyncio.sleep(self.config.retry_s)

    def _handle(self, logs: Sequence[Log]) -> None:
        for log in logs:
            event = self.contract.decode_log(log)
            if event is None or event.name not in ("ChannelClosing", "ChannelChallenged"):
                continue
            channel_id: bytes = event.args["channelId"]
            if self.appointment(channel_id) is not None:
                self._due.add(channel_id)

    async def _answer_due(self) -> None:
        for channel_id in sorted(self._due):
            await self._answer(channel_id)
            self._due.discard(channel_id)

    async def _answer(self, channel_id: bytes) -> None:
        """T4-T6 for one channel: a challenge if its closing state is older than the one held."""
        async with self._lock:
            held = self.appointment(channel_id)
            if held is None:
                return
            view = await self.view(channel_id)
            sequence = held.state.sequence
            if view.status is not L1Status.CLOSING or view.sequence >= sequence:
                return  # not closing, or closing with the newest state (or a newer one)
            existing = self._challenge(channel_id, sequence)
            if existing is not None and existing.state is not ChallengeState.DROPPED:
                return  # exactly once (T6): an open one is settled by _settle
            head = await self.l1.get_block("latest")
            now = head.timestamp if head is not None else int(time.time())
            fields = {"channel_id": _hex(channel_id), "closing_sequence": view.sequence, "held_sequence": sequence,
                      "ends_at": view.ends_at, "l1_time": now}
            if now >= view.ends_at:
                _log.error("stale close seen after its challenge period ended: nothing can be sent", extra=fields)
                return
            if now >= view.ends_at - self.config.safety_margin_s:
                _log.error("stale close seen within the safety margin of its period's end: challenging late",
                           extra=fields)
            _log.warning("stale close seen: challenging with the newest state", extra=fields)
            self.checkpoint("seen")
            data = self.contract.encode_call("challenge", _state_abi(held.state), held.sig_a, held.sig_b)
            try:
                estimate = await self.l1.estimate_gas(self.adjudicator, data, sender=self.address)
            except RpcError as exc:  # answered by someone else meanwhile, or the period ended
                error = self.contract.decode_error(exc.revert_data)
                _log.error("challenge would fail; not sent", extra={**fields, "error": str(error or exc)})
                return
            gas = estimate * (100 + self.config.sender.gas_margin_percent) // 100
            fees = await current_fees(self.l1, self.config.sender)
            if self.sender is not None:  # a shared key: its sender hands out the nonce (T6)
                signed = await self.sender.sign_next(self.adjudicator, data, gas, fees)
                nonce = signed.tx.nonce
            else:
                nonce = max(await self.l1.get_transaction_count(self.address, "pending"), self._next_stored_nonce())
                signed = self.signer.sign(UnsignedTransaction(
                    chain_id=await self._chain(), nonce=nonce, max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                    max_fee_per_gas=fees.max_fee_per_gas, gas_limit=gas, to=self.adjudicator, data=data))
            challenge = Challenge(channel_id, sequence, nonce, signed.raw, signed.hash, ChallengeState.OPEN)
            with self._storage.transaction() as db:
                db.execute("INSERT OR REPLACE INTO tower_challenges (channel_id, sequence, sender, nonce, raw, "
                           "tx_hash, state, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (channel_id, str(sequence), self.address, nonce, signed.raw, signed.hash,
                            str(ChallengeState.OPEN), time.time()))
            self.checkpoint("stored")
            await self._send(challenge)
            self.checkpoint("sent")
            _log.info("challenge sent", extra={**fields, "l1_tx_hash": _hex(signed.hash), "nonce": nonce})

    async def _settle(self) -> None:
        """Every open challenge: its receipt recorded, or its stored bytes sent again (T6). A
        confirmed one above the finalized head is looked at again: a reorg may have undone it."""
        async with self._lock:
            final = self.resume_block()  # the follower's finalized head + 1
            for challenge in self.challenges():
                if challenge.state is ChallengeState.CONFIRMED and challenge.l1_block >= final:
                    receipt = await self.l1.get_receipt(challenge.tx_hash)
                    if receipt is not None and receipt.block_number == challenge.l1_block:
                        continue
                    _log.warning("the tower's challenge was reorged out of L1; settling it again", extra={
                        "channel_id": _hex(challenge.channel_id), "l1_tx_hash": _hex(challenge.tx_hash)})
                    self._close(challenge, ChallengeState.OPEN, 0)
                elif challenge.state is not ChallengeState.OPEN:
                    continue
                receipt = await self.l1.get_receipt(challenge.tx_hash)
                if receipt is not None:
                    state = ChallengeState.CONFIRMED if receipt.success else ChallengeState.REVERTED
                    if not receipt.success:
                        _log.error("challenge reverted on L1", extra={"channel_id": _hex(challenge.channel_id),
                                                                      "l1_tx_hash": _hex(challenge.tx_hash)})
                    self._close(challenge, state, receipt.block_number)
                elif await self.l1.get_transaction_count(self.address, "latest") > challenge.nonce:
                    if await self.l1.get_receipt(challenge.tx_hash) is None:  # not mined between the two reads
                        _log.error("the tower's nonce was used by a transaction it did not sign: is its key used "
                                   "elsewhere?", extra={"nonce": challenge.nonce})
                        self._close(challenge, ChallengeState.DROPPED, 0)
                        self._due.add(challenge.channel_id)  # answered again at a new nonce (T6)
                elif await self.l1.get_transaction(challenge.tx_hash) is None:  # never sent, or L1 lost it
                    _log.info("challenge re-sent", extra={"channel_id": _hex(challenge.channel_id),
                                                          "l1_tx_hash": _hex(challenge.tx_hash)})
                    await self._send(challenge)

    async def _send(self, challenge: Challenge) -> None:
        try:
            await self.l1.send_raw_transaction(challenge.raw)
        except RpcError as exc:
            if exc.mentions(*ALREADY_KNOWN, *NONCE_TOO_LOW):
                return  # the same bytes held or mined; or the nonce used: the next settle says by what
            _log.error("challenge not accepted by L1; re-sent at the next round",
                       extra={"channel_id": _hex(challenge.channel_id), "error": exc.message})

    # --- storage ---------------------------------------------------------------------------------

    def _challenge(self, channel_id: bytes, sequence: int) -> Challenge | None:
        row = self._db.execute("SELECT channel_id, sequence, nonce, raw, tx_hash, state, l1_block FROM "
                               "tower_challenges WHERE channel_id = ? AND sequence = ?",
                               (channel_id, str(sequence))).fetchone()
        return None if row is None else _challenge_of(row)

    def _close(self, challenge: Challenge, state: ChallengeState, block: int) -> None:
        with self._storage.transaction() as db:
            db.execute("UPDATE tower_challenges SET state = ?, l1_block = ? WHERE channel_id = ? AND sequence = ?",
                       (str(state), block, challenge.channel_id, str(challenge.sequence)))

    def _next_stored_nonce(self) -> int:
        (highest,) = self._db.execute("SELECT MAX(nonce) FROM tower_challenges WHERE sender = ?",
                                      (self.address,)).fetchone()
        return 0 if highest is None else int(highest) + 1

    def _store_resume(self, block: int) -> None:
        if block <= self.resume_block():
            return
        with self._storage.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tower_meta (key, value) VALUES (?, ?)", (_RESUME_KEY, block))

    async def _chain(self) -> int:
        if self._chain_id is None:
            self._chain_id = await self.l1.chain_id()
        return self._chain_id


def _state_abi(state: ChannelState) -> tuple[Any, ...]:
    """The adjudicator's State struct."""
    return (state.channel_id, state.sequence, state.balance_a, state.balance_b,
            [(h.from_a, h.amount, h.payment_hash, h.expiry) for h in state.htlcs])


def _appointment_row(a: Appointment) -> tuple[Any, ...]:
    s = a.state
    htlcs = json.dumps([[h.from_a, str(h.amount), h.payment_hash.hex(), str(h.expiry)] for h in s.htlcs])
    return (s.channel_id, a.adjudicator, str(a.nonce), str(s.sequence), str(s.balance_a), str(s.balance_b), htlcs,
            a.sig_a, a.sig_b, time.time())


def _appointment_of(row: Sequence[Any]) -> Appointment:
    channel_id, adjudicator, nonce, sequence, balance_a, balance_b, htlcs, sig_a, sig_b, _ = row
    state = ChannelState(bytes(channel_id), int(sequence), int(balance_a), int(balance_b), tuple(
        Htlc(bool(f), int(amount), bytes.fromhex(h), int(expiry)) for f, amount, h, expiry in json.loads(htlcs)))
    return Appointment(bytes(adjudicator), int(nonce), state, bytes(sig_a), bytes(sig_b))


def _challenge_of(row: Sequence[Any]) -> Challenge:
    channel_id, sequence, nonce, raw, tx_hash, state, block = row
    return Challenge(bytes(channel_id), int(sequence), int(nonce), bytes(raw), bytes(tx_hash), ChallengeState(state),
                     int(block))


def _hex(data: bytes) -> str:
    return "0x" + data.hex()
