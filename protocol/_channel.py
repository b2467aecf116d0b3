"""Payment channels: the channel, its co-signed states, **where a channel update is checked**.

A channel is fixed when it is opened on L1 (``ChannelAdjudicator.open``): two participants A and
B (their channel keys, secp256k1 EOAs), a ``nonce`` the opener picks so one pair can open many
channels, and what each one deposits. Its id binds the chain and the adjudicator::

    channelId = keccak256(abi.encode(uint256 chainId, address adjudicator, address a, address b,
                                     uint64 nonce))

A state is what both sign, as EIP-712 typed data (contracts/ChannelAdjudicator.sol hashes the
same bytes: ``stateDigest``)::

    domain  EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
            name "l2node channels", version "1", chainId = L1's, verifyingContract = adjudicator
    Htlc(bool fromA,uint256 amount,bytes32 paymentHash,uint64 expiry)
    State(bytes32 channelId,uint64 sequence,uint256 balanceA,uint256 balanceB,Htlc[] htlcs)

    hashStruct(Htlc)  = keccak256(HTLC_TYPEHASH || fromA || amount || paymentHash || expiry)
    hashStruct(State) = keccak256(STATE_TYPEHASH || channelId || sequence || balanceA || balanceB
                                  || keccak256(hashStruct(htlcs[0]) || hashStruct(htlcs[1]) || ...))
    digest            = keccak256(0x1901 || domainSeparator || hashStruct(State))

(an array of structs, per EIP-712, is the keccak256 of its elements' hashStructs concatenated;
STATE_TYPEHASH's type string has Htlc's appended, as EIP-712's encodeType orders referenced
types). The chain id and the adjudicator are in the domain and the channel id in the state, so a
signature replayed on another channel, chain or adjudicator recovers to someone else.

An HTLC pays ``amount`` from its offerer (A if ``fromA``) to the other side against the
``preimage`` of ``paymentHash = sha256(preimage)`` (as Lightning: a 32-byte preimage) until
``expiry`` (L1 unix seconds); after it, the offerer takes it back. A closing state's HTLCs are
kept on L1 as ``htlcs_hash`` = keccak256(abi.encode(Htlc[])).

Rules of a channel state and of an update (the worker and the contract cite them by number;
each refusal is a ``Reason``, raised as ``ChannelRefused``):

- **C0** Every field is in range: addresses 20 bytes, hashes 32, uint64 and uint256 fields
  unsigned and within their width (FIELD_OUT_OF_RANGE; checked when a record is built, so no
  ``ChannelState`` in existence encodes ambiguously).
- **C1** The state names the channel: ``channelId == channel.id`` (CHANNEL_MISMATCH).
- **C2** The sequence strictly increases over the last co-signed state's (STALE_SEQUENCE).
  Sequence 0 is the funding state (``Channel.funding_state``), co-signed by no one.
- **C3** Nothing is created or lost: ``balanceA + balanceB + sum(htlc.amount)`` equals the
  channel's funding ``amount_a + amount_b`` (FUNDS_NOT_CONSERVED).
- **C4** Every HTLC amount is above zero (HTLC_AMOUNT_ZERO); balances may be zero.
- **C5** At most ``MAX_HTLCS`` = 483 HTLCs (BOLT 2's max_accepted_htlcs; TOO_MANY_HTLCS). It
  bounds the calldata of a close and a claim on L1 as much as a node's memory.
- **C6** No two HTLCs with the same paymentHash and direction (DUPLICATE_HTLC): one payment is
  one HTLC per direction, so a preimage settles exactly one, and (fromA, paymentHash) names it.
- **C7** An HTLC added by the update (in the new state, not in the previous one) expires at least
  ``expiry_delta`` seconds after ``now`` (HTLC_EXPIRY_TOO_SOON): time left to claim it on L1
  after a close and its challenge period. HTLCs carried over are not re-checked: expiring is
  what they do.
- **C8** A signature is 65 bytes r || s || v, v in {27, 28}, 0 < r < n, 0 < s < n
  (INVALID_SIGNATURE) with s <= n/2 (HIGH_S: its malleable twin (r, n - s) is refused, so a state
  has exactly one signature per key).
- **C9** A signature recovers to the participant it claims to be from: to neither participant is
  NOT_A_PARTICIPANT (a stranger's, or one over another channel's, chain's or adjudicator's
  digest), to the other one is SIGNER_MISMATCH.

- **C10** A state at ``FINAL_SEQUENCE`` = 2**64 - 1 is *final* (the adjudicator's A9: the only
  state ``closeCooperative`` pays at once, as Nitro's isFinal, Lightning's closing_signed): it
  carries no HTLC (HTLCS_PENDING). It follows any state by C2, and nothing follows it (no
  sequence is above it: STALE_SEQUENCE).

``check_state`` is C1, C3-C6 and C10 on one state (the funding state, a state a watchtower is
handed); ``check_update`` is those and C2 and C7 between the last co-signed state and a proposed
one; ``check_signature`` is C8 and C9. These are the rules any co-signed state obeys, whoever
proposed it.

Who may propose what is ``check_proposal``'s, on top of ``check_update``: the rules a party
checks before counter-signing its peer's proposal (the proposer is the peer, identified by the
signature on its message):

- **P0** The proposer is a participant (NOT_A_PARTICIPANT).
- **P1** An update makes exactly one change (UPDATE_NOT_ONE_CHANGE), as ``describe_update``
  reads it off the two states: a TRANSFER (one balance down, the other up by as much, HTLCs as
  they were), an ADD_HTLC (one HTLC appended, its amount taken from its offerer's balance), a
  SETTLE_HTLC (one HTLC removed, its amount to its receiver), a FAIL_HTLC (one removed, its
  amount back to its offerer), or FINAL (the final state: balances as they were, no HTLC before
  or after; HTLCS_PENDING if some are in flight). The other HTLCs stay as they were, in their
  order (an HTLC's index is its identity on L1, A14-A16). Nothing else: an update that changes
  nothing, two things, or an HTLC in place is refused. Lightning batches any number of
  update_add/fulfill/fail messages into one commitment_signed for throughput; here too, as a
  chain (P7, ``_channel_chain``): HTLC changes applied one by one, each judged by the rules that
  would judge it as an update of its own, one state signed. So every signature has one
  explanation, the list of its one-change steps (what the worker logs and stores with it, what a
  dispute has to explain), and a refusal names the one change it refuses. The sequence may skip
  (C2 only): a refused proposal's sequence stays taken by the worker, never signed twice.
- **P2** A TRANSFER debits its proposer: nobody pays from the other's balance (PROPOSER_NOT_PAYER).
- **P3** An ADD_HTLC is offered by its proposer, from its own balance (``fromA`` is the
  proposer's side: PROPOSER_NOT_PAYER).
- **P4** A SETTLE_HTLC is proposed by the HTLC's receiver (PROPOSER_NOT_RECEIVER) with its
  preimage: one of ``preimages_known`` hashes to its paymentHash (PREIMAGE_MISSING); the preimage
  is in the returned ``Update`` (the offerer settles upstream with it). A late settle is not
  refused: the preimage is the proof of payment, and the offerer's upstream HTLC expires a
  safety delta later.
- **P5** A FAIL_HTLC is proposed by the HTLC's receiver at any time (it gives the payment up),
  or by its offerer only after its expiry (``now > expiry``, as the adjudicator's refund, A15;
  HTLC_NOT_EXPIRED): until then the receiver may still settle it.
- **P6** FINAL is proposed by either party (a cooperative close), once no HTLC is in flight.

The next state of each kind of update is built by ``ChannelState``'s ``transfer``, ``add_htlc``,
``settle_htlc`` (by preimage), ``fail_htlc`` and ``final``: sequence + 1 (``final``:
FINAL_SEQUENCE), refused when the payer's balance does not cover it (INSUFFICIENT_FUNDS), the
HTLC is not held (UNKNOWN_HTLC), HTLCs are in flight (``final``: HTLCS_PENDING) or only the
final state may follow (STALE_SEQUENCE).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from coincurve import PublicKey
from coincurve._libsecp256k1 import ffi, lib  # type: ignore[import-not-found]
from coincurve.context import GLOBAL_CONTEXT

from ._keccak import keccak256
from ._reasons import Reason
from ._rules import SECP256K1_HALF_N, SECP256K1_N, UINT64_MAX, UINT256_MAX

#: BOLT 2's cap on the HTLCs one side accepts in flight; here on a channel's whole state (C5).
MAX_HTLCS: Final = 483
#: The sequence of a final state (C10; the adjudicator's FINAL_SEQUENCE, A9).
FINAL_SEQUENCE: Final = UINT64_MAX
#: The EIP-712 domain's name and version (the adjudicator's constructor hashes the same).
DOMAIN_NAME: Final = "l2node channels"
DOMAIN_VERSION: Final = "1"

DOMAIN_TYPE: Final = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
HTLC_TYPE: Final = "Htlc(bool fromA,uint256 amount,bytes32 paymentHash,uint64 expiry)"
STATE_TYPE: Final = "State(bytes32 channelId,uint64 sequence,uint256 balanceA,uint256 balanceB,Htlc[] htlcs)"
DOMAIN_TYPEHASH: Final = keccak256(DOMAIN_TYPE.encode())
HTLC_TYPEHASH: Final = keccak256(HTLC_TYPE.encode())
#: encodeType(State): the referenced Htlc type appended.
STATE_TYPEHASH: Final = keccak256((STATE_TYPE + HTLC_TYPE).encode())

_WORD = 32
_ZERO_PAD = bytes(12)  # an address's 12 leading zero bytes in its ABI word
_TRUE = (1).to_bytes(_WORD, "big")
_FALSE = bytes(_WORD)
_ARRAY_OFFSET = _WORD.to_bytes(_WORD, "big")  # abi.encode(T[]): one dynamic argument, its tail at 0x20
_EMPTY_ARRAY_HASH = keccak256(b"")
#: coincurve's libsecp256k1 context (made for signing and verifying), shared as ``_secp256k1`` does.
_CTX: Any = GLOBAL_CONTEXT.ctx


class ChannelRefused(ValueError):
    """A channel record, state, update or signature refused by a rule (C0-C9). ``reason`` is
    stable (the wire's ErrorInfo reason; ``reason.error`` its runtime error); ``message`` is for
    humans."""

    reason: Reason
    message: str

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(reason, message)  # args kept: the exception pickles
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def _uint(value: int, limit: int, name: str) -> None:
    if type(value) is not int or not 0 <= value <= limit:  # a bool is an int: refused as one
        raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, f"{name} must be an integer in [0, {limit}], not {value!r}")


def _fixed(value: bytes, size: int, name: str) -> None:
    if type(value) is not bytes or len(value) != size:
        raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, f"{name} must be {size} bytes, not {value!r}")


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain of one adjudicator on one chain; ``separator`` is its hashStruct."""

    chain_id: int
    #: The adjudicator's address (EIP-712's verifyingContract).
    adjudicator: bytes
    separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _uint(self.chain_id, UINT256_MAX, "chain_id")
        _fixed(self.adjudicator, 20, "adjudicator")
        object.__setattr__(self, "separator", keccak256(
            DOMAIN_TYPEHASH
            + keccak256(DOMAIN_NAME.encode())
            + keccak256(DOMAIN_VERSION.encode())
            + self.chain_id.to_bytes(_WORD, "big")
            + _ZERO_PAD + self.adjudicator
        ))


def channel_id(chain_id: int, adjudicator: bytes, a: bytes, b: bytes, nonce: int) -> bytes:
    """keccak256(abi.encode(uint256 chainId, address adjudicator, address a, address b, uint64 nonce))."""
    _uint(chain_id, UINT256_MAX, "chain_id")
    _uint(nonce, UINT64_MAX, "nonce")
    for name, address in (("adjudicator", adjudicator), ("a", a), ("b", b)):
        _fixed(address, 20, name)
    return keccak256(
        chain_id.to_bytes(_WORD, "big") + _ZERO_PAD + adjudicator + _ZERO_PAD + a + _ZERO_PAD + b
        + nonce.to_bytes(_WORD, "big")
    )


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel as opened on L1: fixed for its life. ``id`` and ``domain`` are derived."""

    chain_id: int
    adjudicator: bytes
    #: Participant A: the opener, who pays ``amount_a`` (``open``); B pays ``amount_b`` (``fund``).
    a: bytes
    b: bytes
    nonce: int
    amount_a: int
    amount_b: int
    id: bytes = field(init=False, repr=False, compare=False)
    domain: Domain = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _uint(self.amount_a, UINT256_MAX, "amount_a")
        _uint(self.amount_b, UINT256_MAX, "amount_b")
        _uint(self.amount_a + self.amount_b, UINT256_MAX, "amount_a + amount_b")
        if self.a == self.b:
            raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, "a channel's two participants must differ")
        object.__setattr__(self, "id", channel_id(self.chain_id, self.adjudicator, self.a, self.b, self.nonce))
        object.__setattr__(self, "domain", Domain(self.chain_id, self.adjudicator))

    @property
    def total(self) -> int:
        """What the channel holds on L1, hence what every state divides (C3)."""
        return self.amount_a + self.amount_b

    def funding_state(self) -> ChannelState:
        """Sequence 0: the balances as funded, no HTLCs. Valid without signatures."""
        return ChannelState(self.id, 0, self.amount_a, self.amount_b)


@dataclass(frozen=True, slots=True)
class Htlc:
    """A hashed time-locked payment in flight, from A to B if ``from_a`` (else B to A)."""

    from_a: bool
    amount: int
    #: sha256(preimage), the preimage 32 bytes.
    payment_hash: bytes
    #: L1 unix seconds: claimable with the preimage at or before it, refunded after it.
    expiry: int

    def __post_init__(self) -> None:
        if type(self.from_a) is not bool:
            raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, f"from_a must be a bool, not {self.from_a!r}")
        _uint(self.amount, UINT256_MAX, "htlc amount")
        _fixed(self.payment_hash, 32, "payment_hash")
        _uint(self.expiry, UINT64_MAX, "htlc expiry")

    def encode(self) -> bytes:
        """The four ABI words (a static struct's encoding, and EIP-712's encodeData)."""
        return (
            (_TRUE if self.from_a else _FALSE)
            + self.amount.to_bytes(_WORD, "big")
            + self.payment_hash
            + self.expiry.to_bytes(_WORD, "big")
        )

    def struct_hash(self) -> bytes:
        """EIP-712 hashStruct(Htlc)."""
        return keccak256(HTLC_TYPEHASH + self.encode())


@dataclass(frozen=True, slots=True)
class ChannelState:
    """One state of a channel: what both participants sign (C0 holds for every instance)."""

    channel_id: bytes
    sequence: int
    balance_a: int
    balance_b: int
    htlcs: tuple[Htlc, ...] = ()

    def __post_init__(self) -> None:
        _fixed(self.channel_id, 32, "channel_id")
        _uint(self.sequence, UINT64_MAX, "sequence")
        _uint(self.balance_a, UINT256_MAX, "balance_a")
        _uint(self.balance_b, UINT256_MAX, "balance_b")
        if type(self.htlcs) is not tuple or not all(type(h) is Htlc for h in self.htlcs):
            raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, "htlcs must be a tuple of Htlc")

    # The next state, for each kind of update: sequence + 1. They refuse what no state could hold
    # (INSUFFICIENT_FUNDS, UNKNOWN_HTLC, HTLCS_PENDING) and what may not follow (STALE_SEQUENCE);
    # the rules on the result are check_update's.

    def transfer(self, from_a: bool, amount: int) -> ChannelState:
        """``amount`` paid outright from A to B (``from_a``) or from B to A."""
        if type(amount) is not int or amount <= 0:
            raise ChannelRefused(Reason.FIELD_OUT_OF_RANGE, f"a payment's amount is above zero, not {amount!r}")
        balance_a, balance_b = self._debit(from_a, amount)
        return ChannelState(self.channel_id, self._next(), *_credit(balance_a, balance_b, not from_a, amount),
                            self.htlcs)

    def add_htlc(self, htlc: Htlc) -> ChannelState:
        """``htlc`` offered: its amount leaves the offerer's balance for the HTLC."""
        balance_a, balance_b = self._debit(htlc.from_a, htlc.amount)
        return ChannelState(self.channel_id, self._next(), balance_a, balance_b, (*self.htlcs, htlc))

    def settle_htlc(self, from_a: bool, preimage: bytes) -> ChannelState:
        """The HTLC from A (``from_a``) or B with paymentHash sha256(``preimage``) paid to its receiver."""
        return self._released(from_a, payment_hash(preimage), to_a=not from_a)

    def fail_htlc(self, from_a: bool, hash_: bytes) -> ChannelState:
        """The HTLC from A (``from_a``) or B with paymentHash ``hash_`` returned to its offerer."""
        return self._released(from_a, hash_, to_a=from_a)

    def final(self) -> ChannelState:
        """The final state (C10): these balances at FINAL_SEQUENCE, what a cooperative close pays.
        Refused while HTLCs are in flight (settle or fail them first) and after a final state."""
        if self.sequence == FINAL_SEQUENCE:
            raise ChannelRefused(Reason.STALE_SEQUENCE, "the state is final already: nothing follows it")
        if self.htlcs:
            raise ChannelRefused(
                Reason.HTLCS_PENDING, f"{len(self.htlcs)} HTLCs in flight: a final state carries none")
        return ChannelState(self.channel_id, FINAL_SEQUENCE, self.balance_a, self.balance_b)

    def _next(self) -> int:
        # FINAL_SEQUENCE is the final state's alone: a payment built at it would read as a close.
        if self.sequence >= FINAL_SEQUENCE - 1:
            raise ChannelRefused(
                Reason.STALE_SEQUENCE, f"after sequence {self.sequence} only the final state may follow")
        return self.sequence + 1

    def _debit(self, from_a: bool, amount: int) -> tuple[int, int]:
        balance = self.balance_a if from_a else self.balance_b
        if amount > balance:
            raise ChannelRefused(
                Reason.INSUFFICIENT_FUNDS, f"{'A' if from_a else 'B'} holds {balance}, not the {amount} it would pay")
        return (self.balance_a - amount, self.balance_b) if from_a else (self.balance_a, self.balance_b - amount)

    def _released(self, from_a: bool, hash_: bytes, *, to_a: bool) -> ChannelState:
        for htlc in self.htlcs:
            if htlc.from_a == from_a and htlc.payment_hash == hash_:
                rest = tuple(h for h in self.htlcs if h is not htlc)
                balances = _credit(self.balance_a, self.balance_b, to_a, htlc.amount)
                return ChannelState(self.channel_id, self._next(), *balances, rest)
        raise ChannelRefused(
            Reason.UNKNOWN_HTLC, f"no HTLC from {'A' if from_a else 'B'} with payment hash 0x{hash_.hex()}")

    def struct_hash(self) -> bytes:
        """EIP-712 hashStruct(State)."""
        htlcs = keccak256(b"".join(_htlc_hash(h) for h in self.htlcs)) if self.htlcs else _EMPTY_ARRAY_HASH
        return keccak256(
            STATE_TYPEHASH
            + self.channel_id
            + self.sequence.to_bytes(_WORD, "big")
            + self.balance_a.to_bytes(_WORD, "big")
            + self.balance_b.to_bytes(_WORD, "big")
            + htlcs
        )


@functools.lru_cache(maxsize=16384)
def _htlc_hash(htlc: Htlc) -> bytes:
    """``htlc.struct_hash()``, remembered: an HTLC in flight is in every state until it settles,
    and every state is hashed several times a round trip (signed, checked, counter-signed)."""
    return htlc.struct_hash()


def _credit(balance_a: int, balance_b: int, to_a: bool, amount: int) -> tuple[int, int]:
    return (balance_a + amount, balance_b) if to_a else (balance_a, balance_b + amount)


def payment_hash(preimage: bytes) -> bytes:
    """sha256(preimage), the preimage 32 bytes (as Lightning's; the adjudicator's claimHtlc checks it)."""
    _fixed(preimage, 32, "preimage")
    return hashlib.sha256(preimage).digest()


def state_digest(state: ChannelState, domain: Domain) -> bytes:
    """The EIP-712 digest both participants sign: keccak256(0x1901 || separator || hashStruct(state))."""
    return keccak256(b"\x19\x01" + domain.separator + state.struct_hash())


def htlcs_hash(htlcs: Iterable[Htlc]) -> bytes:
    """keccak256(abi.encode(Htlc[])): what the adjudicator keeps of a closing state's HTLCs."""
    items = tuple(htlcs)
    return keccak256(
        _ARRAY_OFFSET + len(items).to_bytes(_WORD, "big") + b"".join(h.encode() for h in items)
    )


def sign_state(digest: bytes, key: bytes) -> bytes:
    """A 65-byte signature r || s || v (v 27 or 28) of ``digest`` by the 32-byte secp256k1 ``key``.

    libsecp256k1 signs deterministically (RFC 6979) with a low s, so C8 holds for what it signs.
    It is called directly (as ``_secp256k1`` does): coincurve's ``PrivateKey(key)`` derives two
    public keys first, ~45 us of a ~80 us signature here, per payment (bench/channels_ceiling.py).
    """
    _fixed(digest, 32, "digest")
    if type(key) is not bytes or len(key) != 32:  # the C function reads 32 bytes, whatever it is handed
        raise ValueError("a private key is 32 bytes")
    recoverable = ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not lib.secp256k1_ecdsa_sign_recoverable(_CTX, recoverable, digest, key, ffi.NULL, ffi.NULL):
        raise ValueError("not a valid secp256k1 private key (zero, or not below the group order)")
    compact = ffi.new("unsigned char[64]")
    recovery_id = ffi.new("int *")
    lib.secp256k1_ecdsa_recoverable_signature_serialize_compact(_CTX, compact, recovery_id, recoverable)
    return bytes(compact) + bytes((27 + recovery_id[0],))


def recover_signer(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key signed ``digest``; a signature breaking C8 is refused."""
    _fixed(digest, 32, "digest")
    if type(signature) is not bytes or len(signature) != 65:
        raise ChannelRefused(Reason.INVALID_SIGNATURE, "a signature is 65 bytes: r || s || v")
    v = signature[64]
    if v not in (27, 28):
        raise ChannelRefused(Reason.INVALID_SIGNATURE, f"v must be 27 or 28, not {v}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N:
        raise ChannelRefused(Reason.INVALID_SIGNATURE, "r out of range (0 < r < secp256k1n)")
    if not 0 < s < SECP256K1_N:
        raise ChannelRefused(Reason.INVALID_SIGNATURE, "s out of range (0 < s < secp256k1n)")
    if s > SECP256K1_HALF_N:
        raise ChannelRefused(Reason.HIGH_S, "s above secp256k1n/2: the malleable form of a signature")
    try:
        public = PublicKey.from_signature_and_message(signature[:64] + bytes((v - 27,)), digest, hasher=None)
    except ValueError:  # no point on the curve has this r
        raise ChannelRefused(Reason.INVALID_SIGNATURE, "no public key recovers from this signature") from None
    return keccak256(public.format(compressed=False)[1:])[12:]


def check_signature(channel: Channel, digest: bytes, signature: bytes, signer: bytes) -> None:
    """C8 and C9: ``signature`` over ``digest`` is by ``signer``, one of ``channel``'s participants."""
    if signer not in (channel.a, channel.b):
        raise ChannelRefused(Reason.NOT_A_PARTICIPANT, f"0x{signer.hex()} is not a participant of the channel")
    recovered = recover_signer(digest, signature)
    if recovered == signer:
        return
    if recovered in (channel.a, channel.b):
        raise ChannelRefused(Reason.SIGNER_MISMATCH, f"signed by the other participant 0x{recovered.hex()}")
    raise ChannelRefused(
        Reason.NOT_A_PARTICIPANT,
        f"signed by 0x{recovered.hex()}, not a participant (or over another channel, chain or adjudicator)",
    )


def check_state(state: ChannelState, channel: Channel) -> None:
    """C1, C3-C6 and C10: ``state`` is a valid state of ``channel`` on its own."""
    if state.channel_id != channel.id:
        raise ChannelRefused(
            Reason.CHANNEL_MISMATCH, f"state of channel 0x{state.channel_id.hex()}, not 0x{channel.id.hex()}")
    htlcs = state.htlcs
    if len(htlcs) > MAX_HTLCS:
        raise ChannelRefused(Reason.TOO_MANY_HTLCS, f"{len(htlcs)} HTLCs, at most {MAX_HTLCS}")
    if htlcs and state.sequence == FINAL_SEQUENCE:
        raise ChannelRefused(Reason.HTLCS_PENDING, f"a final state with {len(htlcs)} HTLCs: it carries none")
    held = 0
    seen: set[tuple[bool, bytes]] = set()
    for htlc in htlcs:
        if htlc.amount == 0:
            raise ChannelRefused(Reason.HTLC_AMOUNT_ZERO, f"HTLC 0x{htlc.payment_hash.hex()} has amount 0")
        key = (htlc.from_a, htlc.payment_hash)
        if key in seen:
            raise ChannelRefused(
                Reason.DUPLICATE_HTLC,
                f"two HTLCs from {'A' if htlc.from_a else 'B'} with payment hash 0x{htlc.payment_hash.hex()}",
            )
        seen.add(key)
        held += htlc.amount
    total = state.balance_a + state.balance_b + held
    if total != channel.total:
        raise ChannelRefused(
            Reason.FUNDS_NOT_CONSERVED, f"balances and HTLCs add up to {total}, the channel holds {channel.total}")


def check_update(prev: ChannelState, new: ChannelState, channel: Channel, *, now: int, expiry_delta: int) -> None:
    """C1-C7 and C10: ``new`` may follow ``prev``, the last state of ``channel`` both signed (or its
    funding state). ``now`` is L1 unix seconds; ``expiry_delta`` the least time an added HTLC
    must have left. Signatures are ``check_signature``'s (C8, C9)."""
    check_state(new, channel)
    if new.sequence <= prev.sequence:
        raise ChannelRefused(
            Reason.STALE_SEQUENCE, f"sequence {new.sequence} does not follow the last co-signed {prev.sequence}")
    if new.htlcs:
        carried = set(prev.htlcs)
        deadline = now + expiry_delta
        for htlc in new.htlcs:
            if htlc not in carried and htlc.expiry < deadline:
                raise ChannelRefused(
                    Reason.HTLC_EXPIRY_TOO_SOON,
                    f"HTLC 0x{htlc.payment_hash.hex()} expires at {htlc.expiry}, before now + delta = {deadline}",
                )


class UpdateKind(StrEnum):
    """The one change an update makes (P1)."""

    TRANSFER = "TRANSFER"
    ADD_HTLC = "ADD_HTLC"
    SETTLE_HTLC = "SETTLE_HTLC"
    FAIL_HTLC = "FAIL_HTLC"
    FINAL = "FINAL"


@dataclass(frozen=True, slots=True)
class Update:
    """What one update does (``describe_update``): the worker logs it, ``check_proposal`` judges it."""

    kind: UpdateKind
    #: What moves: the transfer's, the HTLC's; 0 for FINAL.
    amount: int
    #: The side that pays: the transfer's payer, the HTLC's offerer (``htlc.from_a``); None for FINAL.
    from_a: bool | None
    #: The HTLC added, settled or failed; None for TRANSFER and FINAL.
    htlc: Htlc | None = None
    #: A settled HTLC's preimage, as ``check_proposal`` found it among the known ones (P4).
    preimage: bytes | None = None

    def __str__(self) -> str:
        """One log line's worth: ``ADD_HTLC 1000 A->B 0x<hash> expiry 1800003600``."""
        if self.from_a is None:
            return str(self.kind)
        line = f"{self.kind} {self.amount} {'A->B' if self.from_a else 'B->A'}"
        return line if self.htlc is None else f"{line} 0x{self.htlc.payment_hash.hex()} expiry {self.htlc.expiry}"


def _one_change(message: str) -> ChannelRefused:
    return ChannelRefused(Reason.UPDATE_NOT_ONE_CHANGE, message)


def describe_update(prev: ChannelState, new: ChannelState) -> Update:
    """P1: the one change from ``prev`` to ``new``, read off their balances and HTLCs (not their
    sequences, C2's, beyond FINAL_SEQUENCE marking FINAL). Refused if it is none or several
    (UPDATE_NOT_ONE_CHANGE), if value appears or vanishes (FUNDS_NOT_CONSERVED), and for a final
    state while HTLCs are in flight (HTLCS_PENDING)."""
    before = prev.balance_a + prev.balance_b + sum(h.amount for h in prev.htlcs)
    after = new.balance_a + new.balance_b + sum(h.amount for h in new.htlcs)
    if before != after:
        raise ChannelRefused(Reason.FUNDS_NOT_CONSERVED, f"the update turns {before} into {after}")
    delta_a = new.balance_a - prev.balance_a
    delta_b = new.balance_b - prev.balance_b
    old, now_held = prev.htlcs, new.htlcs
    if new.sequence == FINAL_SEQUENCE:
        if old or now_held:
            raise ChannelRefused(
                Reason.HTLCS_PENDING, f"{len(old) or len(now_held)} HTLCs in flight: a final state carries none")
        if delta_a or delta_b:
            raise _one_change("a final state keeps the last balances")
        return Update(UpdateKind.FINAL, 0, None)
    if len(now_held) == len(old):
        if now_held != old:
            raise _one_change("the HTLCs changed in place (or were reordered)")
        if delta_a == 0:
            raise _one_change("the update changes nothing")
        return Update(UpdateKind.TRANSFER, abs(delta_a), delta_a < 0)
    if len(now_held) == len(old) + 1:
        added = now_held[-1]
        paid = (delta_a, delta_b) if added.from_a else (delta_b, delta_a)
        if now_held[:-1] != old or paid != (-added.amount, 0):
            raise _one_change("not one HTLC appended from its offerer's balance, the others as they were")
        return Update(UpdateKind.ADD_HTLC, added.amount, added.from_a, added)
    if len(now_held) == len(old) - 1:
        index = next((i for i, (h, k) in enumerate(zip(old, now_held, strict=False)) if h != k), len(now_held))
        removed = old[index]
        if now_held != old[:index] + old[index + 1:]:
            raise _one_change("not one HTLC removed, the others as they were")
        to_offerer = (delta_a, delta_b) == ((removed.amount, 0) if removed.from_a else (0, removed.amount))
        to_receiver = (delta_a, delta_b) == ((0, removed.amount) if removed.from_a else (removed.amount, 0))
        if to_receiver:
            return Update(UpdateKind.SETTLE_HTLC, removed.amount, removed.from_a, removed)
        if to_offerer:
            return Update(UpdateKind.FAIL_HTLC, removed.amount, removed.from_a, removed)
        raise _one_change("an HTLC removed, its amount paid to neither side whole")
    raise _one_change(f"{len(old)} HTLCs became {len(now_held)}: more than one added or removed")


def check_proposal(
    prev: ChannelState,
    new: ChannelState,
    channel: Channel,
    proposer: bytes,
    *,
    preimages_known: Iterable[bytes] = (),
    now: int,
    expiry_delta: int,
) -> Update:
    """P0-P6 on top of ``check_update`` (C1-C7, C10): ``proposer`` (a participant's address) may
    propose ``new`` after ``prev``, the last co-signed state. ``preimages_known`` are the preimages
    that came with the proposal (a settle's, P4). Returns the update, a settle's preimage in it."""
    if proposer not in (channel.a, channel.b):
        raise ChannelRefused(Reason.NOT_A_PARTICIPANT, f"0x{proposer.hex()} is not a participant of the channel")
    check_update(prev, new, channel, now=now, expiry_delta=expiry_delta)
    update = describe_update(prev, new)
    by_a = proposer == channel.a
    side = "A" if by_a else "B"
    htlc = update.htlc
    if update.kind is UpdateKind.TRANSFER and update.from_a != by_a:
        raise ChannelRefused(Reason.PROPOSER_NOT_PAYER, f"{side} proposed a payment from the other side's balance")
    if update.kind is UpdateKind.ADD_HTLC and update.from_a != by_a:
        raise ChannelRefused(Reason.PROPOSER_NOT_PAYER, f"{side} proposed an HTLC from the other side's balance")
    if update.kind is UpdateKind.SETTLE_HTLC and htlc is not None:
        if htlc.from_a == by_a:
            raise ChannelRefused(Reason.PROPOSER_NOT_RECEIVER, f"{side} settles its own HTLC: only its receiver does")
        for preimage in preimages_known:
            if type(preimage) is bytes and len(preimage) == 32 and payment_hash(preimage) == htlc.payment_hash:
                return replace(update, preimage=preimage)
        raise ChannelRefused(
            Reason.PREIMAGE_MISSING, f"no preimage given hashes to the settled HTLC's 0x{htlc.payment_hash.hex()}")
    if update.kind is UpdateKind.FAIL_HTLC and htlc is not None and htlc.from_a == by_a and now <= htlc.expiry:
        raise ChannelRefused(
            Reason.HTLC_NOT_EXPIRED,
            f"{side} fails its own HTLC at {now}, not after its expiry {htlc.expiry}: its receiver may still settle it",
        )
    return update
