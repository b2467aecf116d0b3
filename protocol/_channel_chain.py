"""Chained channel updates: **where each change of a chain is checked**, in O(1) per change.

Rule P7 (on top of _channel's C0-C10 and P0-P6):

- **P7** An update may be a *chain*: a list of HTLC changes (``Change``: ADD_HTLC, SETTLE_HTLC or
  FAIL_HTLC), applied in order to the last co-signed state, and one signed state at the end.
  Each change is judged as the one-change update it is (P1), by the rules that judge it alone:
  an ADD offered by the proposer from its own balance (P3, INSUFFICIENT_FUNDS), above zero (C4),
  a payment hash not already held in its direction (C6), expiring at least the delta after now
  (C7), within MAX_HTLCS (C5); a SETTLE by the HTLC's receiver with its preimage (P4); a FAIL by
  the receiver, or by the offerer after the expiry (P5); a SETTLE or FAIL of an HTLC held
  (UNKNOWN_HTLC). The signed state must be exactly the state the changes make, at a sequence
  above the last co-signed one and below the final one (C2, C10; CHAIN_MISMATCH otherwise). A
  change removes its HTLC where it was (the others keep their order) and an ADD appends, as the
  one-change builders of ``ChannelState`` do, so a chain of one change makes the same state as
  that change's update.
- **P8** A chain may also carry a release its HTLC's receiver *asked* the offerer for
  (services/channels/_updates.py U7, one proposer per channel): the offerer settles its own HTLC
  (with the preimage: P4's hash check holds) or fails it before its expiry. Only where the judge
  was told the receiver wants that release (``wanted``: on the receiver's side, its own record of
  settling or failing that HTLC; on the offerer's, the requests it took): a settle pays the
  receiver what it asked for, and a fail it asked for gives up only what it chose to give up.
  Anywhere else P4 and P5 hold as they are (PROPOSER_NOT_RECEIVER, HTLC_NOT_EXPIRED).

Why a chain and not a state per change: with h HTLCs in flight every state costs O(h) to build,
encode, hash, sign, send, check and store; a chain of k changes costs O(k + h) once, where k
states would cost O(k h). The worker (services/channels/_updates.py U5) chains the HTLC updates
waiting on a channel, and the receiver checks the chain with this same ``Chain``, so proposer and
receiver cannot disagree on what a chain makes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._channel import (
    FINAL_SEQUENCE,
    MAX_HTLCS,
    Channel,
    ChannelRefused,
    ChannelState,
    Htlc,
    Update,
    UpdateKind,
    payment_hash,
)
from ._reasons import Reason

#: The kinds of change a chain is made of (P7): TRANSFER and FINAL are updates of their own.
CHAIN_KINDS: Final = frozenset({UpdateKind.ADD_HTLC, UpdateKind.SETTLE_HTLC, UpdateKind.FAIL_HTLC})


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a chain: an HTLC added (its terms), settled (by its preimage) or failed (by its
    direction and payment hash)."""

    kind: UpdateKind
    #: The HTLC's direction: from A (to B) or from B.
    from_a: bool
    #: Its payment hash (a SETTLE's is sha256 of ``preimage``).
    payment_hash: bytes
    #: ADD_HTLC: the amount and expiry (0 for the others: those of the HTLC held).
    amount: int = 0
    expiry: int = 0
    #: SETTLE_HTLC: the preimage.
    preimage: bytes = b""

    @classmethod
    def add(cls, htlc: Htlc) -> Change:
        return cls(UpdateKind.ADD_HTLC, htlc.from_a, htlc.payment_hash, htlc.amount, htlc.expiry)

    @classmethod
    def settle(cls, from_a: bool, preimage: bytes) -> Change:
        return cls(UpdateKind.SETTLE_HTLC, from_a, payment_hash(preimage), preimage=preimage)

    @classmethod
    def fail(cls, from_a: bool, hash_: bytes) -> Change:
        return cls(UpdateKind.FAIL_HTLC, from_a, hash_)


class Chain:
    """A chain being built or checked (P7): the last co-signed state with the changes applied so
    far. ``apply`` judges one change (ChannelRefused with its reason) and returns it as an Update;
    ``state`` is the state the changes make; ``held`` and ``holds`` answer in O(1)."""

    def __init__(self, prev: ChannelState, channel: Channel, proposer: bytes, *, now: int, expiry_delta: int,
                 trusted: bool = False, wanted: Callable[[Change], bool] | None = None) -> None:
        """``trusted``: changes judged before, applied again only to learn what they did (a node's
        own chain, re-read when the answer comes: the clock has moved since), so no rule but the
        HTLC's presence is judged again. ``wanted``: whether the HTLC's receiver asked for a
        release by its offerer (P8); None: no such release is taken."""
        if proposer not in (channel.a, channel.b):
            raise ChannelRefused(Reason.NOT_A_PARTICIPANT, f"0x{proposer.hex()} is not a participant of the channel")
        self.prev = prev
        self._by_a = proposer == channel.a
        self._deadline = now + expiry_delta
        self._now = now
        self._trusted = trusted
        self._wanted = wanted
        self._balances = [prev.balance_a, prev.balance_b]  # [A's, B's]
        # Insertion-ordered: a removal keeps the others' order, an ADD appends (as ChannelState's builders).
        self._htlcs: dict[tuple[bool, bytes], Htlc] = {(h.from_a, h.payment_hash): h for h in prev.htlcs}
        self._from_a = sum(1 for h in prev.htlcs if h.from_a)
        #: The updates applied, in order.
        self.updates: list[Update] = []

    def holds(self, from_a: bool, hash_: bytes) -> Htlc | None:
        return self._htlcs.get((from_a, hash_))

    def held(self, from_a: bool) -> int:
        """The HTLCs in flight from A (``from_a``) or from B, after the changes so far."""
        return self._from_a if from_a else len(self._htlcs) - self._from_a

    def apply(self, change: Change) -> Update:
        """``change`` judged (P7, as the one-change update it is) and applied; its Update."""
        key = (change.from_a, change.payment_hash)
        if change.kind is UpdateKind.ADD_HTLC:
            htlc = Htlc(change.from_a, change.amount, change.payment_hash, change.expiry)  # C0
            payer = 0 if htlc.from_a else 1
            if not self._trusted:
                self._judge_add(htlc, payer, key)
            self._balances[payer] -= htlc.amount
            self._htlcs[key] = htlc
            self._from_a += htlc.from_a
            update = Update(UpdateKind.ADD_HTLC, htlc.amount, htlc.from_a, htlc)
        elif change.kind in (UpdateKind.SETTLE_HTLC, UpdateKind.FAIL_HTLC):
            held = self._htlcs.get(key)
            if held is None:
                raise ChannelRefused(Reason.UNKNOWN_HTLC, f"no HTLC from {'A' if change.from_a else 'B'} with "
                                     f"payment hash 0x{change.payment_hash.hex()}")
            settle = change.kind is UpdateKind.SETTLE_HTLC
            if not self._trusted:
                self._judge_release(held, change, settle)
            del self._htlcs[key]
            self._from_a -= held.from_a
            to_a = held.from_a != settle  # a settle pays the receiver, a fail the offerer
            self._balances[0 if to_a else 1] += held.amount
            update = Update(change.kind, held.amount, held.from_a, held, change.preimage if settle else None)
        else:
            raise ChannelRefused(Reason.CHAIN_MISMATCH, f"a chain's changes are HTLC updates, not {change.kind}")
        self.updates.append(update)
        return update

    def _judge_add(self, htlc: Htlc, payer: int, key: tuple[bool, bytes]) -> None:
        side = "A" if self._by_a else "B"
        if htlc.from_a != self._by_a:
            raise ChannelRefused(Reason.PROPOSER_NOT_PAYER, f"{side} proposed an HTLC from the other side's balance")
        if htlc.amount == 0:
            raise ChannelRefused(Reason.HTLC_AMOUNT_ZERO, f"HTLC 0x{htlc.payment_hash.hex()} has amount 0")
        if htlc.amount > self._balances[payer]:
            raise ChannelRefused(Reason.INSUFFICIENT_FUNDS, f"{'A' if htlc.from_a else 'B'} holds "
                                 f"{self._balances[payer]}, not the {htlc.amount} it would pay")
        if key in self._htlcs:
            raise ChannelRefused(Reason.DUPLICATE_HTLC, f"two HTLCs from {'A' if htlc.from_a else 'B'} with "
                                 f"payment hash 0x{htlc.payment_hash.hex()}")
        if htlc.expiry < self._deadline:
            raise ChannelRefused(Reason.HTLC_EXPIRY_TOO_SOON, f"HTLC 0x{htlc.payment_hash.hex()} expires at "
                                 f"{htlc.expiry}, before now + delta = {self._deadline}")
        if len(self._htlcs) >= MAX_HTLCS:
            raise ChannelRefused(Reason.TOO_MANY_HTLCS, f"{len(self._htlcs) + 1} HTLCs, at most {MAX_HTLCS}")

    def _judge_release(self, held: Htlc, change: Change, settle: bool) -> None:
        side = "A" if self._by_a else "B"
        asked = held.from_a == self._by_a and self._wanted is not None and self._wanted(change)  # P8
        if settle and held.from_a == self._by_a and not asked:
            raise ChannelRefused(Reason.PROPOSER_NOT_RECEIVER, f"{side} settles its own HTLC: only its receiver does")
        if settle and (len(change.preimage) != 32 or payment_hash(change.preimage) != held.payment_hash):
            raise ChannelRefused(Reason.PREIMAGE_MISSING, f"no preimage given hashes to the settled HTLC's "
                                 f"0x{held.payment_hash.hex()}")
        if not settle and held.from_a == self._by_a and self._now <= held.expiry and not asked:
            raise ChannelRefused(Reason.HTLC_NOT_EXPIRED, f"{side} fails its own HTLC at {self._now}, not after "
                                 f"its expiry {held.expiry}: its receiver may still settle it")

    def state(self, sequence: int) -> ChannelState:
        """The state the changes make, at ``sequence`` (C2: above the last co-signed one; C10: not
        the final one)."""
        if not self.prev.sequence < sequence < FINAL_SEQUENCE:
            raise ChannelRefused(Reason.STALE_SEQUENCE, f"a chain's state is above sequence {self.prev.sequence} "
                                 f"and below the final one, not at {sequence}")
        return ChannelState(self.prev.channel_id, sequence, self._balances[0], self._balances[1],
                            tuple(self._htlcs.values()))

    def check(self, signed: ChannelState) -> None:
        """The signed state that ends the chain is exactly the one its changes make (CHAIN_MISMATCH)."""
        made = self.state(signed.sequence)
        if made != signed:
            raise ChannelRefused(Reason.CHAIN_MISMATCH, f"the signed state at sequence {signed.sequence} is not the "
                                 f"one the chain's {len(self.updates)} changes make")
