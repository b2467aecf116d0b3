"""The pending log: durable appends in arrival order, shared commits, lazy forgetting."""

from __future__ import annotations

import asyncio
import pathlib
import sqlite3

from services.sequencer._pending_log import Entry, PendingLog


def test_it_lives_beside_the_store() -> None:
    assert PendingLog.beside(pathlib.Path("/d/sequencer.db")) == pathlib.Path("/d/sequencer.pending.db")


async def test_appended_entries_come_back_in_arrival_order(tmp_path: pathlib.Path) -> None:
    log = PendingLog(tmp_path / "s.pending.db")
    await log.append([Entry(3, b"c"), Entry(1, b"a")])
    await log.append([Entry(2, b"b")])
    await log.close()
    reopened = PendingLog(tmp_path / "s.pending.db")
    assert reopened.entries() == [(1, b"a"), (2, b"b"), (3, b"c")]
    assert reopened.max_seq() == 3
    await reopened.close()


async def test_concurrent_appends_share_commits_and_each_is_durable_when_it_returns(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.pending.db"
    log = PendingLog(path)
    seen: list[int] = []

    async def one(seq: int) -> None:
        await log.append([Entry(seq, b"x%d" % seq)])
        # another connection, as a restarted process would read it
        reader = sqlite3.connect(path)
        seen.append(reader.execute("SELECT COUNT(*) FROM pending WHERE seq = ?", (seq,)).fetchone()[0])
        reader.close()

    await asyncio.gather(*(one(seq) for seq in range(1, 51)))
    stats = log.statistics()
    assert seen == [1] * 50
    assert stats.appended == 50 and stats.commits < 50  # grouped
    await log.close()


async def test_forgotten_entries_go_with_the_next_commit(tmp_path: pathlib.Path) -> None:
    log = PendingLog(tmp_path / "s.pending.db")
    await log.append([Entry(1, b"a"), Entry(2, b"b"), Entry(3, b"c")])
    log.forget([1, 3])
    assert log.statistics().forgetting == 2
    assert [seq for seq, _ in log.entries()] == [1, 2, 3]  # lazily: nothing deleted yet
    await log.append([Entry(4, b"d")])
    assert log.entries() == [(2, b"b"), (4, b"d")]
    assert log.statistics().forgetting == 0
    await log.close()


async def test_an_entry_logged_twice_is_one_entry(tmp_path: pathlib.Path) -> None:
    # a migration repeated after a crash appends the same seq again
    log = PendingLog(tmp_path / "s.pending.db")
    await log.append([Entry(7, b"raw")])
    await log.append([Entry(7, b"raw")])
    assert log.entries() == [(7, b"raw")]
    await log.close()


async def test_an_entry_forgotten_before_its_append_commits_is_gone_with_that_commit(tmp_path: pathlib.Path) -> None:
    # the block sealing a transaction can be durable before the transaction's own append
    log = PendingLog(tmp_path / "s.pending.db")
    appending = asyncio.ensure_future(log.append([Entry(1, b"a"), Entry(2, b"b")]))
    log.forget([1])  # queued while the append waits for its commit
    await appending
    assert log.entries() == [(2, b"b")]
    await log.close()


async def test_forgotten_entries_go_without_waiting_for_an_append(tmp_path: pathlib.Path) -> None:
    # a burst that ended: nothing more is appended, and its sealed entries must not wait for a restart
    log = PendingLog(tmp_path / "s.pending.db")
    await log.append([Entry(1, b"a"), Entry(2, b"b"), Entry(3, b"c")])
    log.forget([1, 2])
    for _ in range(200):  # the idle writer's commit of its own
        if log.statistics().forgetting == 0 and len(log.entries()) == 1:
            break
        await asyncio.sleep(0.01)
    assert log.entries() == [(3, b"c")]
    log.forget([3])
    await log.close()  # waits for the deletion it started
    reopened = PendingLog(tmp_path / "s.pending.db")
    assert reopened.entries() == []
    await reopened.close()
