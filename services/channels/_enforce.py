"""**Where an HTLC is enforced on L1**: what this node does when its peer withholds a settle or
a fail, so an HTLC in flight costs no one their funds (the adjudicator's A10-A16).

Each L1 round looks at every channel whose latest co-signed state holds HTLCs:

- **E1** An HTLC offered to this node whose preimage it knows (it is the payee, or it learned the
  preimage downstream) and that the peer has not let it settle off chain by ``expiry - margin``:
  this node closes the channel on L1 with its latest state (which holds the HTLC) and reveals the
  preimage (``claimHtlc`` while CLOSING, by the expiry: A14). After ``conclude`` it claims again
  and is paid.
- **E2** An HTLC this node offered whose expiry has passed: it fails it off chain (P5 lets the
  offerer, after the expiry); if the peer does not answer, it closes the channel on L1.
- **E3** In a channel CLOSING or CONCLUDED on L1, an HTLC this node offered whose preimage the
  peer revealed on chain (``HtlcClaimed``): the preimage settles this node's incoming HTLC
  upstream (its forward turns SETTLING) or completes its own payment (SUCCEEDED). That is why a
  forwarding node's upstream HTLC expires ``expiry_delta_s`` later than its downstream one.
- **E4** Once CONCLUDED: each HTLC of the closing state this node may take is taken: claimed with
  its preimage (revealed by the expiry) or refunded after the expiry when no preimage was revealed
  (A15); a refund fails the forward upstream (FAILING) or the payment (FAILED). The channel is
  CLOSED once no HTLC of its closing state is left for this node to take (A16: each is paid once;
  the peer takes its own).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from services.runtime import FailedPrecondition, Unavailable

from ._adjudicator import Adjudicator, OnChain
from ._records import ChannelRecord, ForwardStatus, PaymentStatus, StateRecord
from ._store import ChannelsStore

if TYPE_CHECKING:
    from ._channels import Channels

#: Seconds past an expiry before the offerer fails its HTLC: the peer's L1 clock may lag a block.
_GRACE_S: Final = 2


@dataclass(frozen=True, slots=True)
class _Htlc:
    index: int
    from_a: bool
    amount: int
    payment_hash: bytes
    expiry: int


def _htlcs(state: StateRecord) -> list[_Htlc]:
    return [_Htlc(i, f, amount, h, expiry) for i, (f, amount, h, expiry) in enumerate(state.htlcs)]


class Enforcer:
    """E1-E4 for one node's channels, run by the channels worker's L1 watcher."""

    def __init__(self, channels: Channels, store: ChannelsStore, adjudicator: Adjudicator, margin_s: int,
                 logger: logging.Logger) -> None:
        self._channels = channels
        self._store = store
        self._l1 = adjudicator
        self._margin = margin_s
        self._log = logger

    def preimage_of(self, record: ChannelRecord, payment_hash: bytes) -> bytes:
        """The preimage of an HTLC offered to this node in ``record``, if this node knows it."""
        forward = self._store.forward(record.channel_id, payment_hash)
        if forward is not None and forward.preimage:
            return forward.preimage
        invoice = self._store.invoice(payment_hash)
        return invoice.preimage if invoice is not None else b""

    async def open_channel(self, record: ChannelRecord) -> bool:
        """E1, E2 in an OPEN channel; True while HTLCs are in flight (the watcher looks often)."""
        latest = self._store.latest_cosigned(record.channel_id)
        if latest is None or not latest.htlcs:
            return False
        now = self._channels.l1_now()
        for htlc in _htlcs(latest):
            ours = htlc.from_a == record.we_are_a
            # The time first: the preimage is a read, and this runs over every HTLC in flight each round.
            if not ours and now >= htlc.expiry - self._margin and self.preimage_of(record, htlc.payment_hash):
                self._log.warning("channel 0x%s: the peer has not settled HTLC 0x%s by its expiry: closing on L1",
                                  record.channel_id.hex(), htlc.payment_hash.hex())
                await self._channels.close(record, force=True)  # E1
                return True
            if ours and now > htlc.expiry + _GRACE_S:
                try:
                    await self._channels.payments.fail_expired(record, htlc.payment_hash)  # E2, off chain
                except (Unavailable, FailedPrecondition) as exc:
                    self._log.warning("channel 0x%s: expired HTLC 0x%s not failed off chain (%s): closing on L1",
                                      record.channel_id.hex(), htlc.payment_hash.hex(), exc)
                    await self._channels.close(self._channels.channel(record.channel_id), force=True)
                    return True
        return True

    async def closing_channel(self, record: ChannelRecord, on_chain: OnChain) -> bool:
        """E1's reveal and E3 while the channel is CLOSING on L1 (this node's state recorded)."""
        closing = self._store.state(record.channel_id, on_chain.closing_sequence)
        if closing is None or not closing.htlcs:
            return False
        await self._learn_revealed(record, closing)
        now = self._channels.l1_now()
        for htlc in _htlcs(closing):
            if htlc.from_a == record.we_are_a or now > htlc.expiry:
                continue
            preimage = self.preimage_of(record, htlc.payment_hash)
            if preimage and not await self._l1.revealed_at(record.channel_id, htlc.payment_hash):
                await self._l1.claim_htlc(closing, htlc.index, preimage)  # the reveal (A14)
                self._log.info("channel 0x%s: preimage of HTLC 0x%s revealed on L1", record.channel_id.hex(),
                               htlc.payment_hash.hex())
        return True

    async def concluded_channel(self, record: ChannelRecord, on_chain: OnChain) -> bool:
        """E3 and E4 once CONCLUDED: True while an HTLC is left for this node to take."""
        closing = self._store.state(record.channel_id, on_chain.closing_sequence)
        if closing is None or not closing.htlcs:
            return False
        await self._learn_revealed(record, closing)
        now = self._channels.l1_now()
        left = False
        for htlc in _htlcs(closing):
            if await self._l1.htlc_settled(record.channel_id, htlc.index):
                continue
            revealed = await self._l1.revealed_at(record.channel_id, htlc.payment_hash)
            if htlc.from_a != record.we_are_a:  # offered to this node: claim if revealed in time
                if revealed and revealed <= htlc.expiry:
                    await self._l1.claim_htlc(closing, htlc.index, self.preimage_of(record, htlc.payment_hash))
                continue  # else its offerer refunds it
            if revealed and revealed <= htlc.expiry:
                continue  # the peer claims it; E3 took the preimage upstream
            if now <= htlc.expiry:
                left = True  # the receiver may still reveal
                continue
            await self._l1.refund_htlc(closing, htlc.index)
            self._refunded(record, htlc)
        return left

    async def _learn_revealed(self, record: ChannelRecord, closing: StateRecord) -> None:
        """E3: preimages the peer revealed on chain for HTLCs this node offered."""
        for htlc in _htlcs(closing):
            if htlc.from_a != record.we_are_a:
                continue
            preimage = await self._l1.revealed_preimage(record.channel_id, htlc.payment_hash)
            if preimage:
                self._settled_on_chain(record, htlc, preimage)

    def _settled_on_chain(self, record: ChannelRecord, htlc: _Htlc, preimage: bytes) -> None:
        forward = self._store.forward_out(record.channel_id, htlc.payment_hash)
        payment = self._store.payment_on(record.channel_id, htlc.payment_hash)
        effects = []
        if forward is not None:
            effects.append(self._store.forward_effect(replace(forward, status=ForwardStatus.SETTLING,
                                                                preimage=preimage)))
        if payment is not None and payment.status == PaymentStatus.IN_FLIGHT:
            effects.append(self._store.payment_effect(replace(payment, status=PaymentStatus.SUCCEEDED,
                                                                preimage=preimage)))
        if effects:
            self._store.apply(effects, "HTLC_SETTLED_ON_L1", record.channel_id, htlc.payment_hash, htlc.amount)
            self._channels.payments.wake()

    def _refunded(self, record: ChannelRecord, htlc: _Htlc) -> None:
        forward = self._store.forward_out(record.channel_id, htlc.payment_hash)
        payment = self._store.payment_on(record.channel_id, htlc.payment_hash)
        effects = []
        message = f"refunded on L1 after its expiry (channel 0x{record.channel_id.hex()})"
        if forward is not None:
            effects.append(self._store.forward_effect(replace(forward, status=ForwardStatus.FAILING,
                                                                reason="REFUNDED_ON_L1", message=message)))
        if payment is not None and payment.status == PaymentStatus.IN_FLIGHT:
            effects.append(self._store.payment_effect(replace(payment, status=PaymentStatus.FAILED,
                                                                reason="REFUNDED_ON_L1", message=message)))
        self._store.apply(effects, "HTLC_REFUNDED_ON_L1", record.channel_id, htlc.payment_hash, htlc.amount)
        self._channels.payments.wake()

