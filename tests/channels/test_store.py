"""The store's two crash-safety rules, on a real SQLite file: never two states at one sequence
(a different state there is refused, the same one only gains signatures), and uint64 sequences
up to the final state's kept in order."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable

import pytest

from protocol import FINAL_SEQUENCE
from services.channels import (
    ChannelRecord,
    ChannelsSettings,
    ChannelsStore,
    ChannelStatus,
    SequenceTaken,
    StateRecord,
)
from services.channels._records import (
    ForwardRecord,
    ForwardStatus,
    InvoiceRecord,
    InvoiceStatus,
    PaymentRecord,
    PaymentStatus,
    RouteHop,
)
from services.channels._store import Meaning
from services.runtime import Storage

CID = b"\x11" * 32


def store_at(path: pathlib.Path, storage: Storage | None = None) -> ChannelsStore:
    store = ChannelsStore(storage or Storage(path / "channels.db"))
    channel = ChannelRecord(CID, b"\x0a" * 20, b"\x0b" * 20, 7, True, "127.0.0.1:1", ChannelStatus.OPEN, 100, 0)
    store.add_channel(channel, StateRecord(CID, 0, 100, 0, sig_a=b"a0", sig_b=b"b0"), "CHANNEL_OPEN")
    return store


def test_one_state_per_sequence_and_the_final_one_above_every_other(tmp_path: pathlib.Path) -> None:
    store = store_at(tmp_path)
    mine = StateRecord(CID, 1, 90, 10, sig_a=b"a1")
    store.put_state(mine, b"\x22" * 32)
    assert store.pending(CID) == mine and store.payment_of(CID, 1) == b"\x22" * 32
    with pytest.raises(SequenceTaken) as taken:
        store.put_state(StateRecord(CID, 1, 80, 20, sig_a=b"other"))
    assert taken.value.existing == mine
    both = store.put_state(StateRecord(CID, 1, 90, 10, sig_b=b"b1"))  # the counter-signature
    assert both == dataclasses.replace(mine, sig_b=b"b1") and store.latest_cosigned(CID) == both
    assert store.pending(CID) is None
    final = StateRecord(CID, FINAL_SEQUENCE, 90, 10, sig_a=b"af", sig_b=b"bf")
    store.put_state(final)
    assert store.highest_sequence(CID) == FINAL_SEQUENCE and store.latest_cosigned(CID) == final
    assert store.pending(CID) is None and store.pendings(CID) == []  # nothing above the final state
    assert [s.sequence for s in store.states(CID)] == [0, 1, FINAL_SEQUENCE]
    # A restart reads back the same.
    again = ChannelsStore(Storage(tmp_path / "channels.db"))
    assert again.states(CID) == store.states(CID)


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="peer_deadline_s"):
        ChannelsSettings(peer_deadline_s=0)
    with pytest.raises(ValueError, match="endpoint"):
        ChannelsSettings(endpoint="nohostport")
    assert ChannelsSettings(l1={"rpc": "http://l1"}).missing() == []  # no channel key: no channels, nothing missing
    (reason, *_) = ChannelsSettings(l1={"rpc": "http://l1", "contracts": "/nope.json"},
                                    channels_key_file="/nope.key").missing()
    assert reason.startswith("l1.contracts:")


def test_the_lookups_by_payment_hash_and_request_key_stay_flat_as_the_states_grow(tmp_path: pathlib.Path) -> None:
    """paid() and by_request_key() run once per payment: they use their partial indexes (SQLite
    does only if the query implies the index's WHERE), so their SQLite steps do not grow with the
    channel's payments (a full scan did: each invoice payment cost more than the one before)."""
    storage = Storage(tmp_path / "channels.db")
    store, db = store_at(tmp_path, storage), storage.connection
    db.execute("PRAGMA synchronous = OFF")  # the look-ups' plans are the point here, not durability

    def steps(lookup: Callable[[], object]) -> int:
        counted = 0

        def tick() -> int:
            nonlocal counted
            counted += 1
            return 0

        db.set_progress_handler(tick, 1)
        try:
            assert lookup() is not None
        finally:
            db.set_progress_handler(None, 1)
        return counted

    def grow(upto: int) -> None:
        for i in range(len(store.states(CID)), upto + 1):
            state = store.put_state(StateRecord(CID, i, 100_000 - i, i, sig_a=b"a", sig_b=b"b"))
            store.put_parts(state, [(1, i.to_bytes(32, "big"), f"key-{i}")])

    grow(50)
    small = (steps(lambda: store.by_request_key("key-7")),)
    db.execute("UPDATE parts SET preimage = x'01'")  # as if each paid an invoice
    small += (steps(lambda: store.paid((7).to_bytes(32, "big"))),)
    grow(2_000)
    db.execute("UPDATE parts SET preimage = x'01'")  # as if each paid an invoice
    large = (steps(lambda: store.by_request_key("key-7")), steps(lambda: store.paid((7).to_bytes(32, "big"))))
    assert large[0] < 2 * small[0] and large[1] < 2 * small[1], (small, large)


def test_the_latest_co_signed_state_kept_in_memory_follows_writes_and_rollbacks(tmp_path: pathlib.Path) -> None:
    store = store_at(tmp_path)
    funding = store.latest_cosigned(CID)
    assert funding is not None and funding.sequence == 0
    store.put_state(StateRecord(CID, 1, 90, 10, sig_a=b"a1"))  # one signature: the latest stays
    assert store.latest_cosigned(CID) == funding
    both = store.put_state(StateRecord(CID, 1, 90, 10, sig_b=b"b1"))
    assert both.cosigned and store.latest_cosigned(CID) == both
    # A co-signed state written in a batch that raises: rolled back, and not kept in memory.
    with pytest.raises(RuntimeError), store.batch():
        store.put_state(StateRecord(CID, 2, 80, 20, sig_a=b"a2", sig_b=b"b2"))
        assert store.latest_cosigned(CID) == StateRecord(CID, 2, 80, 20, sig_a=b"a2", sig_b=b"b2")
        raise RuntimeError("rolled back")
    assert store.latest_cosigned(CID) == both and store.state(CID, 2) is None
    # What the memory holds is what a fresh store reads from the file.
    reopened = ChannelsStore(Storage(tmp_path / "channels.db"))
    assert reopened.latest_cosigned(CID) == both


def test_forwards_and_payments_are_written_in_place_and_the_slot_count_follows_rollbacks(
        tmp_path: pathlib.Path) -> None:
    """A forward's and a payment's row change in place (no index keyed by the payment hash is
    rewritten), H6's count of those waiting on a channel and the highest sequence are kept in
    memory: after a batch that raises, and in a fresh store, they are what the file holds."""
    store = store_at(tmp_path)
    out, h1, h2 = b"\x33" * 32, b"\x01" * 32, b"\x02" * 32
    received = ForwardRecord(CID, h1, 2_001, 10_000, (RouteHop(out, b"\x0c" * 20, 1_000, 9_000),),
                             ForwardStatus.RECEIVED)
    store.apply([store.forward_effect(received)])
    store.apply([store.forward_effect(dataclasses.replace(received, status=ForwardStatus.FORWARDED,
                                                          out_channel=out))])
    assert store.forwarded_over(out, CID) == 1 and store.forward_out(out, h1) is not None
    with pytest.raises(RuntimeError), store.batch():
        store.apply([store.forward_effect(dataclasses.replace(received, payment_hash=h2,
                                                              status=ForwardStatus.FORWARDED, out_channel=out))])
        store.put_state(StateRecord(CID, 5, 90, 10, sig_a=b"a5"))
        assert store.forwarded_over(out, CID) == 2 and store.highest_sequence(CID) == 5
        raise RuntimeError("rolled back")
    assert store.forwarded_over(out, CID) == 1 and store.highest_sequence(CID) == 0
    settling = dataclasses.replace(received, status=ForwardStatus.SETTLING, out_channel=out, preimage=b"\x09" * 32)
    store.apply([store.forward_effect(settling)])
    assert store.forwarded_over(out, CID) == 0 and store.forward_out(out, h1) is None
    payment = PaymentRecord(h2, b"\x0c" * 20, 1_000, PaymentStatus.IN_FLIGHT, fee=1, route=received.onward,
                            channel_id=CID, attempts=1)
    store.apply([store.payment_effect(payment)])
    store.apply([store.payment_effect(dataclasses.replace(payment, status=PaymentStatus.SUCCEEDED,
                                                          preimage=b"\x08" * 32))])
    reopened = ChannelsStore(Storage(tmp_path / "channels.db"))
    kept, read = store.forward(CID, h1), reopened.forward(CID, h1)
    assert kept is not None and read is not None and dataclasses.replace(read, updated_at=kept.updated_at) == kept
    assert read.status == ForwardStatus.SETTLING and read.preimage == settling.preimage
    assert reopened.forwarded_over(out, CID) == 0 and reopened.forwards_to_do() == [read]
    paid = reopened.payment(h2)
    assert paid is not None and (paid.status, paid.preimage, paid.route) == (PaymentStatus.SUCCEEDED, b"\x08" * 32,
                                                                             payment.route)


def test_an_invoice_kept_in_memory_is_paid_once_its_payment_is_recorded(tmp_path: pathlib.Path) -> None:
    store = store_at(tmp_path)
    h = b"\x04" * 32
    store.add_invoice(InvoiceRecord(h, b"\x05" * 32, 1_000, "memo", InvoiceStatus.OPEN, 1))
    opened = store.invoice(h)
    assert opened is not None and opened.status == InvoiceStatus.OPEN
    paying = StateRecord(CID, 1, 99_000, 1_000, sig_a=b"a1", sig_b=b"b1")
    with pytest.raises(RuntimeError), store.batch():
        store.record_chain(paying, [Meaning("PAYMENT_RECEIVED", h, 1_000)])
        raise RuntimeError("rolled back")
    assert store.invoice(h) == opened
    store.record_chain(paying, [Meaning("PAYMENT_RECEIVED", h, 1_000)])
    paid = store.invoice(h)
    assert paid is not None and paid.status == InvoiceStatus.PAID
    assert ChannelsStore(Storage(tmp_path / "channels.db")).invoice(h) == paid


def test_a_new_forward_replaces_a_done_row_of_its_key_unread_and_rolls_back_whole(tmp_path: pathlib.Path) -> None:
    """``forward_effect(new=True)`` (an HTLC just offered) reads no row: one of its key is DONE (C6),
    and is replaced whole, whether kept in memory or only in the file; a batch of such writes that
    raises leaves none of them, and H6's count and the rows kept are what a fresh store reads."""
    store = store_at(tmp_path)
    out, h1, h2 = b"\x33" * 32, b"\x01" * 32, b"\x02" * 32
    onward = (RouteHop(out, b"\x0c" * 20, 1_000, 9_000),)
    failed = ForwardRecord(CID, h1, 2_001, 10_000, onward, ForwardStatus.DONE, out_channel=out, reason="NO_ROUTE",
                           message="an earlier attempt")
    store.apply([store.forward_effect(failed)])
    reopened = ChannelsStore(Storage(tmp_path / "channels.db"))  # the DONE row is in the file only
    again = ForwardRecord(CID, h1, 3_001, 11_000, onward, ForwardStatus.RECEIVED)
    with pytest.raises(RuntimeError), reopened.batch():
        reopened.apply([reopened.forward_effect(again, new=True),
                        reopened.forward_effect(dataclasses.replace(again, payment_hash=h2), new=True)])
        raise RuntimeError("rolled back")
    assert reopened.forward(CID, h2) is None
    kept = reopened.forward(CID, h1)
    assert kept is not None and (kept.status, kept.amount, kept.reason) == (ForwardStatus.DONE, 2_001, "NO_ROUTE")
    reopened.apply([reopened.forward_effect(again, new=True)])
    reopened.apply([reopened.forward_effect(dataclasses.replace(again, status=ForwardStatus.FORWARDED,
                                                                out_channel=out))])
    assert reopened.forwarded_over(out, CID) == 1
    for fresh in (reopened, ChannelsStore(Storage(tmp_path / "channels.db"))):
        read = fresh.forward(CID, h1)
        assert read is not None and (read.status, read.amount, read.expiry, read.reason, read.message) == (
            ForwardStatus.FORWARDED, 3_001, 11_000, "", "")
        assert fresh.forwarded_over(out, CID) == 1 and fresh.forward_out(out, h1) == read
