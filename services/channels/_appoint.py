"""This node's side of a watchtower (setting ``tower``: another node's channels address): every
channel's newest co-signed state handed to that node's TowerService (``Appoint``).

A supervised task follows the store (``changed()``: every payment, open and close records an
event): ``tower_delay_s`` after a change it looks at every live channel and appoints the newest
co-signed state of each whose sequence is above the one delivered. Latest wins, and coalesced: a
burst of a thousand payments in a second is one or two Appoint calls per channel; a payment never
waits for it (it only reads what the payment stored). What was delivered is durable (its own
table in the worker's database), so a restart resumes with what the tower does not hold yet. A
call the tower does not answer (down, its breaker open: the call policy "tower HOST:PORT") is
tried again every ``tower_retry_s`` until delivered; one it refuses (its reason logged: a state
older than one it holds, a channel it cannot see on L1) is not sent again, the next state is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

import grpc

from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc
from services.runtime import BreakerOpen, CallPolicy, DeadlineExceeded, PolicyConfig, Storage, call_unary
from supervisor import ChildSpec, task

from ._peer import seal
from ._records import ChannelRecord, ChannelStatus, StateRecord
from ._rules import Rules
from ._settings import ChannelsSettings
from ._store import ChannelsStore
from ._wire import hex0x, state_pb

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS tower_delivered (
    tower TEXT NOT NULL, channel_id BLOB NOT NULL, sequence TEXT NOT NULL, outcome TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (tower, channel_id));
"""
#: The channels a counterparty may still close with a stale state.
_LIVE: Final = (ChannelStatus.OPEN, ChannelStatus.CLOSING, ChannelStatus.DISPUTED)
#: The tower refused the state (an answer, not an outage): sent once, never again.
_REFUSALS: Final = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)
#: Nothing changed for this long: look anyway (a change that recorded no event).
_RESCAN_S: Final = 60.0
#: Attempts per Appoint call: it is idempotent (the same state, the same answer).
_ATTEMPTS: Final = 3
_OK: Final = "OK"


class Appointer:
    """Hands the tower at ``settings.tower`` the newest co-signed state of each channel."""

    def __init__(self, settings: ChannelsSettings, store: ChannelsStore, storage: Storage, rules: Rules,
                 channel: Callable[[str], grpc.aio.Channel], logger: logging.Logger) -> None:
        self.tower = settings.tower
        self._settings = settings
        self._store = store
        self._storage = storage
        self._rules = rules
        self._log = logger
        self._stub = channels_pb2_grpc.TowerServiceStub(channel(self.tower))
        self._policy = CallPolicy.for_target(f"tower {self.tower}", PolicyConfig(
            deadline_s=settings.peer_deadline_s, max_attempts=_ATTEMPTS))
        self._failing = False
        storage.connection.executescript(_SCHEMA)

    def tasks(self) -> Sequence[ChildSpec]:
        return [ChildSpec(id="appoint", start=task(self.run))]

    def delivered(self, channel_id: bytes) -> int:
        """The highest sequence of the channel handed to the tower (delivered or refused); -1: none."""
        row = self._storage.connection.execute("SELECT sequence FROM tower_delivered WHERE tower = ? AND "
                                               "channel_id = ?", (self.tower, channel_id)).fetchone()
        return -1 if row is None else int(row[0])

    def due(self) -> list[tuple[ChannelRecord, StateRecord]]:
        """Each live channel whose newest co-signed state the tower does not hold yet."""
        found = []
        for record in self._store.channels_in(_LIVE):
            latest = self._store.latest_cosigned(record.channel_id)
            # The funding state (sequence 0) answers no close: nothing to hand over before a payment.
            if latest is not None and latest.sequence > 0 and latest.sequence > self.delivered(record.channel_id):
                found.append((record, latest))
        return found

    async def run(self) -> None:
        """Forever: appoint what is due; then wait for a change (and ``tower_delay_s`` more, so a
        burst is one round), or ``tower_retry_s`` after a round that left something undelivered."""
        while True:
            changed = self._store.changed()  # taken before the round: a change during it is seen
            if await self.round():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), _RESCAN_S)
                await asyncio.sleep(self._settings.tower_delay_s)
            else:
                await asyncio.sleep(self._settings.tower_retry_s)

    async def round(self) -> bool:
        """One pass over what is due; True if everything was delivered (or refused)."""
        complete = True
        for record, state in self.due():
            complete = await self._appoint(record, state) and complete
        return complete

    async def _appoint(self, record: ChannelRecord, state: StateRecord) -> bool:
        request = seal(self._rules, pb.AppointRequest(
            adjudicator=hex0x(self._rules.adjudicator), a=hex0x(record.a), b=hex0x(record.b), nonce=record.nonce,
            state=state_pb(state), signature_a=state.sig_a, signature_b=state.sig_b))
        fields = {"tower": self.tower, "channel_id": hex0x(record.channel_id), "sequence": state.sequence}
        try:
            await call_unary(self._policy, self._stub.Appoint, request, deadline_s=self._settings.peer_deadline_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _REFUSALS:
                return self._undelivered(fields, exc.code().name)
            self._log.warning("the tower refused the appointment: %s", exc.details(), extra=fields)
            self._record(record.channel_id, state.sequence, exc.code().name)
            return True
        except (BreakerOpen, DeadlineExceeded) as exc:
            return self._undelivered(fields, type(exc).__name__)
        if self._failing:
            self._log.info("the tower answers again", extra=fields)
            self._failing = False
        self._record(record.channel_id, state.sequence, _OK)
        return True

    def _undelivered(self, fields: dict[str, object], why: str) -> bool:
        if not self._failing:  # once per outage, not once per retry
            self._log.warning("the tower does not answer (%s): appointments retried every %ss", why,
                              self._settings.tower_retry_s, extra=fields)
            self._failing = True
        return False

    def _record(self, channel_id: bytes, sequence: int, outcome: str) -> None:
        with self._storage.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tower_delivered (tower, channel_id, sequence, outcome, at) "
                       "VALUES (?, ?, ?, ?, ?)", (self.tower, channel_id, str(sequence), outcome, time.time()))
