"""The worker's one door to protocol's channel rules (protocol/_channel.py, C0-C9): a stored
StateRecord as protocol's ChannelState, its EIP-712 digest, signing and recovery, and the update
check. The peer messages' own signatures (over their content) use the same secp256k1 signing."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Final, TypeVar

from protocol import (
    Channel,
    ChannelRefused,
    ChannelState,
    Domain,
    Htlc,
    channel_id,
    keccak256,
    recover_signer,
    sign_state,
    state_digest,
)

from ._records import ChannelRecord, HtlcTuple, StateRecord

#: What a peer message's signature is over (see PeerService in channels.proto).
PEER_DOMAIN: Final = b"l2node channels peer v1"

__all__ = ["ChannelRefused", "Rules", "message_digest"]

T = TypeVar("T")
V = TypeVar("V")


@functools.lru_cache(maxsize=16384)
def _htlc(fields: tuple[bool, int, bytes, int]) -> Htlc:
    """A record's HTLC as protocol's (C0 checked once): an HTLC in flight is in every state
    until it settles, and a round trip reads each state several times."""
    return Htlc(*fields)


#: The states a Rules remembers (``_Memo``): a round trip's few, on each channel.
MEMO_STATES: Final = 64


class _Memo:
    """The last states' HTLCs as protocol's, and their digests, by their record's HTLC tuple: a
    state is signed, checked, counter-signed and its signature checked again in one round trip, each
    O(HTLCs in flight) to convert and hash (a StateRecord signed anew keeps its tuple). Each entry
    holds the tuple itself, so the identity it is found by is never another tuple's."""

    __slots__ = ("digests", "htlcs")

    def __init__(self) -> None:
        self.htlcs: dict[int, tuple[tuple[HtlcTuple, ...], tuple[Htlc, ...]]] = {}
        self.digests: dict[tuple[int, bytes, int, int, int], tuple[tuple[HtlcTuple, ...], bytes]] = {}

    def protocols(self, htlcs: tuple[HtlcTuple, ...]) -> tuple[Htlc, ...]:
        found = self.htlcs.get(id(htlcs))
        if found is not None and found[0] is htlcs:
            return found[1]
        made = tuple(map(_htlc, htlcs))
        self.keep(htlcs, made)
        return made

    def keep(self, htlcs: tuple[HtlcTuple, ...], made: tuple[Htlc, ...]) -> None:
        _bounded(self.htlcs)[id(htlcs)] = (htlcs, made)

    def digest(self, record: StateRecord, compute: functools.partial[bytes]) -> bytes:
        key = (id(record.htlcs), record.channel_id, record.sequence, record.balance_a, record.balance_b)
        found = self.digests.get(key)
        if found is not None and found[0] is record.htlcs:
            return found[1]
        digest = compute()
        _bounded(self.digests)[key] = (record.htlcs, digest)
        return digest


def _bounded(memo: dict[T, V]) -> dict[T, V]:
    """``memo`` with its oldest entry dropped at MEMO_STATES (dicts keep insertion order)."""
    if len(memo) >= MEMO_STATES:
        del memo[next(iter(memo))]
    return memo


def message_digest(name: str, content: bytes) -> bytes:
    """keccak256("l2node channels peer v1" || name || content): what a peer message's sender signs."""
    return keccak256(PEER_DOMAIN + name.encode() + content)


@dataclass(frozen=True, slots=True)
class Rules:
    """The channel rules of one L1 chain and adjudicator, with this node's channel key."""

    chain_id: int
    adjudicator: bytes
    key: bytes
    #: C7's delta: an HTLC added by an update has at least this long left (L1 seconds).
    expiry_delta_s: int = 0
    _memo: _Memo = field(default_factory=_Memo, init=False, repr=False, compare=False)

    @property
    def domain(self) -> Domain:
        return Domain(self.chain_id, self.adjudicator)

    def channel_id(self, a: bytes, b: bytes, nonce: int) -> bytes:
        return channel_id(self.chain_id, self.adjudicator, a, b, nonce)

    def channel(self, record: ChannelRecord) -> Channel:
        return Channel(self.chain_id, self.adjudicator, record.a, record.b, record.nonce, record.amount_a,
                       record.amount_b)

    def state(self, record: StateRecord) -> ChannelState:
        """ChannelRefused (FIELD_OUT_OF_RANGE) if a field is out of its width (C0)."""
        return ChannelState(record.channel_id, record.sequence, record.balance_a, record.balance_b,
                            self._memo.protocols(record.htlcs))

    def record(self, state: ChannelState, sequence: int) -> StateRecord:
        """protocol's ``state`` as a record at ``sequence`` (the next free one: C2 lets it skip)."""
        htlcs = tuple((h.from_a, h.amount, h.payment_hash, h.expiry) for h in state.htlcs)
        self._memo.keep(htlcs, state.htlcs)
        return StateRecord(state.channel_id, sequence, state.balance_a, state.balance_b, htlcs)

    def digest(self, record: StateRecord) -> bytes:
        return self._memo.digest(record, functools.partial(self._digest, record))

    def _digest(self, record: StateRecord) -> bytes:
        return state_digest(self.state(record), self.domain)

    def sign(self, record: StateRecord) -> bytes:
        return sign_state(self.digest(record), self.key)

    def signer_of(self, record: StateRecord, signature: bytes) -> bytes | None:
        """Who signed ``record`` (None: no valid signature (C8), or a state out of range (C0))."""
        try:
            return recover_signer(self.digest(record), signature)
        except ChannelRefused:
            return None

    def sign_message(self, name: str, content: bytes) -> bytes:
        return sign_state(message_digest(name, content), self.key)

    @staticmethod
    def message_signer(name: str, content: bytes, signature: bytes) -> bytes | None:
        try:
            return recover_signer(message_digest(name, content), signature)
        except ChannelRefused:
            return None

