"""The watchtower this channels worker hosts for other nodes (``tower_enabled``): a ``Tower``
(``_tower``: T1-T8) with its own SQLite file beside the worker's database, run as a supervised
task, and ``TowerService`` on the worker's port (channels.proto).

The tower sends its challenges from this node's channel key, the key the worker's own L1
transactions (open, fund, close, challenge, conclude) are sent from. Two senders of one key would
race on its nonce (the tower's own rule picks ``max(pending count, stored + 1)`` while the
worker's TxSender counts locally: both could sign one nonce, and the later one would fail or
replace the other). So the tower shares the worker's one TxSender: ``TxSender.sign_next`` hands
it each nonce under the sender's lock, and the tower still stores the signed bytes before it sends
them (T6).

Who may appoint: the request is signed (``sender_signature``, as PeerService's) by the channel's
``a`` or ``b``, and ``a``, ``b`` and the nonce hash to the state's channel id, so a stranger cannot
name itself a participant; the tower then checks them against the adjudicator's view (T1).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from protocol import ChannelRefused, Reason
from protos.l2node.channels.v1 import channels_pb2 as pb
from protos.l2node.channels.v1 import channels_pb2_grpc
from services.l1 import OUTAGE, Deployment, FollowerConfig, L1Error, LocalSigner
from services.runtime import InvalidArgument, PermissionDenied, Unavailable
from supervisor import ChildSpec, task

from ._channels import Channels
from ._peer import seal, sender_of
from ._records import StateRecord
from ._rules import Rules
from ._settings import ChannelsSettings
from ._tower import Appointment, Tower, TowerConfig
from ._wire import hex0x, parse_hex, state_of_pb, state_pb

#: A close seen with less than this part of the challenge period left is logged at ERROR (T5).
_MARGIN_PART: Final = 4
_MAX_MARGIN_S: Final = 600


class HostedTower:
    """The worker's Tower, on the worker's L1 client and its channel key's one sender."""

    def __init__(self, tower: Tower, rules: Rules) -> None:
        self.tower = tower
        self.rules = rules

    @classmethod
    def open(cls, settings: ChannelsSettings, channels: Channels, db_path: Path,
             logger: logging.Logger) -> HostedTower | None:
        """The tower, if ``tower_enabled`` and the worker has an L1, an adjudicator and a key."""
        adjudicator, rules = channels.adjudicator, channels.rules
        if not settings.tower_enabled:
            return None
        if adjudicator is None or rules is None:
            logger.warning("tower_enabled, but no L1, adjudicator or channel key: no tower hosted")
            return None
        deployed = Deployment.load(str(settings.l1["contracts"]))
        config = TowerConfig(
            safety_margin_s=min(_MAX_MARGIN_S, channels.challenge_period_s // _MARGIN_PART),
            retry_s=settings.tower_retry_s, start_block=deployed.block_number,
            follower=FollowerConfig(poll_interval_s=settings.tower_poll_s, idle_poll_s=4 * settings.tower_poll_s))
        tower = Tower(adjudicator.l1, LocalSigner(rules.key), db_path, adjudicator.address, config=config,
                      sender=adjudicator.sender)
        logger.info("watchtower hosted", extra={"db": str(db_path), "start_block": deployed.block_number})
        return cls(tower, rules)

    def tasks(self) -> Sequence[ChildSpec]:
        return [ChildSpec(id="tower", start=task(self.tower.run))]

    def close(self) -> None:
        self.tower.close()


def _refused(exc: ChannelRefused) -> NoReturn:
    raise exc.reason.error(exc.message, reason=str(exc.reason)) from None


class TowerServicer(channels_pb2_grpc.TowerServiceServicer):
    """TowerService: appointments from a participant of the channel only, answers signed."""

    def __init__(self, hosted: HostedTower | None) -> None:
        self._hosted = hosted

    def _host(self) -> HostedTower:
        if self._hosted is None:
            raise Unavailable("this channels worker hosts no tower (tower_enabled, an L1 and a channel key needed)",
                              reason="NOT_CONFIGURED")
        return self._hosted

    async def Appoint(self, request: pb.AppointRequest, context: Any) -> pb.AppointResponse:
        host = self._host()
        rules, tower = host.rules, host.tower
        adjudicator = parse_hex(request.adjudicator, 20, "adjudicator")
        if adjudicator != rules.adjudicator:
            raise InvalidArgument(f"this tower watches the adjudicator {hex0x(rules.adjudicator)}, not "
                                  f"{request.adjudicator}", reason=str(Reason.CHANNEL_MISMATCH))
        a, b = parse_hex(request.a, 20, "a"), parse_hex(request.b, 20, "b")
        record = state_of_pb(request.state)
        if rules.channel_id(a, b, request.nonce) != record.channel_id:
            raise InvalidArgument("a, b and nonce do not hash to the state's channel id (C1)",
                                  reason=str(Reason.CHANNEL_MISMATCH))
        signer = sender_of(request)
        if signer not in (a, b):
            shown = "no valid signature" if signer is None else hex0x(signer)
            raise PermissionDenied(f"the appointment is signed by {shown}, not by a participant of the channel",
                                   reason=str(Reason.NOT_A_PARTICIPANT))
        try:
            held = await tower.accept(Appointment(adjudicator, request.nonce, rules.state(record),
                                                  request.signature_a, request.signature_b))
        except ChannelRefused as exc:
            _refused(exc)
        except (*OUTAGE, L1Error) as exc:
            raise Unavailable(f"the tower cannot read L1: {type(exc).__name__}", reason="L1_UNAVAILABLE",
                              retry_delay_s=1.0) from None
        return seal(rules, pb.AppointResponse(channel_id=hex0x(record.channel_id), sequence=held.state.sequence,
                                              tower=hex0x(tower.address)))

    async def GetAppointment(self, request: pb.GetAppointmentRequest, context: Any) -> pb.GetAppointmentResponse:
        host = self._host()
        channel_id = parse_hex(request.channel_id, 32, "channel_id")
        try:
            view = await host.tower.view(channel_id)
        except (*OUTAGE, L1Error) as exc:
            raise Unavailable(f"the tower cannot read L1: {type(exc).__name__}", reason="L1_UNAVAILABLE",
                              retry_delay_s=1.0) from None
        signer = sender_of(request)
        if signer is None or signer not in (view.a, view.b):
            raise PermissionDenied("only a participant of the channel may read its appointment",
                                   reason=str(Reason.NOT_A_PARTICIPANT))
        held = host.tower.appointment(channel_id)
        answer = pb.GetAppointmentResponse(tower=hex0x(host.tower.address))
        if held is not None:
            s = held.state
            state = StateRecord(s.channel_id, s.sequence, s.balance_a, s.balance_b,
                                tuple((h.from_a, h.amount, h.payment_hash, h.expiry) for h in s.htlcs))
            answer = pb.GetAppointmentResponse(held=True, state=state_pb(state), signature_a=held.sig_a,
                                               signature_b=held.sig_b, tower=hex0x(host.tower.address))
        return seal(host.rules, answer)
