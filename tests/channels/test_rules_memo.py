"""Rules remembers the last states' HTLCs and digests by their record's HTLC tuple (_rules._Memo):
a remembered digest is only ever the digest of that very content, whatever tuples come and go."""

from __future__ import annotations

import gc
import os

from protocol import ChannelState, Htlc, recover_signer, state_digest
from services.channels._records import StateRecord
from services.channels._rules import MEMO_STATES, Rules

KEY = bytes(range(1, 33))
RULES = Rules(31337, b"\x11" * 20, KEY)
CID = b"\x22" * 32


def fresh(record: StateRecord) -> bytes:
    """The digest computed from nothing remembered."""
    return state_digest(ChannelState(record.channel_id, record.sequence, record.balance_a, record.balance_b,
                                     tuple(Htlc(*h) for h in record.htlcs)), RULES.domain)


def htlcs(n: int, expiry: int = 2_000_000_000) -> tuple[tuple[bool, int, bytes, int], ...]:
    return tuple((i % 2 == 0, 1_000 + i, os.urandom(32), expiry + i) for i in range(n))


def test_a_digest_is_its_content_s_for_states_that_share_or_reuse_tuples() -> None:
    shared = htlcs(40)
    # The same tuple in states of other sequences and balances: each its own digest.
    records = [StateRecord(CID, seq, 10**18 - seq, seq, shared) for seq in range(1, 5)]
    assert len({RULES.digest(r) for r in records}) == 4
    for record in records:
        assert RULES.digest(record) == fresh(record)
        signed = record.signed(True, RULES.sign(record))  # a signed copy keeps the tuple: the same digest
        assert RULES.digest(signed) == fresh(record)
        assert recover_signer(RULES.digest(signed), signed.sig_a) == RULES.signer_of(signed, signed.sig_a)
    # An equal tuple that is another object, and tuples freed and made again (their ids reused):
    # never a remembered digest of other content.
    for round_ in range(3 * MEMO_STATES):
        made = tuple(list(shared[: round_ % 7 + 1]))
        record = StateRecord(CID, 7, 5, 6, made)
        assert RULES.digest(record) == fresh(record)
        assert RULES.state(record).htlcs == tuple(Htlc(*h) for h in made)
        del made, record
        gc.collect()


def test_a_record_made_from_protocol_s_state_hashes_as_that_state() -> None:
    state = ChannelState(CID, 9, 123, 456, tuple(Htlc(*h) for h in htlcs(12)))
    record = RULES.record(state, 11)
    assert RULES.digest(record) == state_digest(ChannelState(CID, 11, 123, 456, state.htlcs), RULES.domain)
    assert RULES.state(record).htlcs == state.htlcs
