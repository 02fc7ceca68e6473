"""History storage can never be blocked by one record, an outage backs off and is
logged once, and shutdown ends whatever the disk does (issue 11)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from classcord.cli import start_server
from classcord.history import History
from classcord.storage import MessageRecord, Storage, StorageWorker
from tests.conftest import make_settings


def record(content: str, conversation: str = "#general", at: float = 1.0) -> MessageRecord:
    return MessageRecord(
        at, "2025-06-20T14:52:43.123456", conversation, "alice", None, None, content
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FlakyStorage(Storage):
    """A Storage whose disk is full while ``full`` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.full = False
        self.calls = 0

    def add_messages(self, records: Iterable[MessageRecord]) -> None:
        self.calls += 1
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        super().add_messages(records)

    def history(self, conversation: str, limit: int) -> list[MessageRecord]:
        if self.full:
            raise sqlite3.OperationalError("disk I/O error")
        return super().history(conversation, limit)


@pytest.fixture
def flaky(tmp_path: Path) -> FlakyStorage:
    return FlakyStorage(tmp_path / "data" / "classcord.db")


async def test_a_poison_record_is_dropped_and_the_others_are_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = StorageWorker(Storage(tmp_path / "data" / "classcord.db"))
    history = History(worker)
    history.record(record("before"))
    history.record(record("\ud800"))  # SQLite cannot encode a lone surrogate
    history.record(record("after"))
    with caplog.at_level(logging.WARNING):
        assert await history.flush() == 2
    assert history.pending_count == 0
    assert history.dropped == 1
    assert [r.content for r in await history.latest("#general", 10)] == ["before", "after"]
    assert sum("dropped a message" in r.message for r in caplog.records) == 1
    history.record(record("later"))
    assert await history.flush() == 1  # nothing left blocking
    await worker.close()


async def test_an_outage_keeps_every_record_backs_off_and_logs_once_per_episode(
    flaky: FlakyStorage, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    worker = StorageWorker(flaky)
    history = History(worker, retry_initial=1.0, retry_max=4.0, clock=clock)
    flaky.full = True
    caplog.set_level(logging.INFO, logger="classcord.history")
    for n in range(3):
        history.record(record(f"m{n}"))
    assert await history.flush() == 0
    assert history.pending_count == 3
    status = history.status()
    assert status.failing_since_seconds == 0.0
    assert status.last_error is not None
    assert "disk is full" in status.last_error
    # Within the back-off nothing touches the disk.
    calls = flaky.calls
    clock.now += 0.5
    assert await history.flush() == 0
    assert flaky.calls == calls
    # The delays double up to the cap: 1, 2, 4, 4.
    delays = []
    for _ in range(4):
        clock.now += history.next_retry_in
        assert await history.flush() == 0
        delays.append(history.next_retry_in)
    assert delays == [2.0, 4.0, 4.0, 4.0]
    assert history.status().oldest_pending_seconds == pytest.approx(clock.now - 100.0)
    # A read during the outage answers from memory, no error.
    assert [r.content for r in await history.latest("#general", 2)] == ["m1", "m2"]
    starts = [r for r in caplog.records if "cannot write messages" in r.message]
    assert len(starts) == 1
    assert "keeping 3 in memory" in starts[0].getMessage()
    # The disk comes back: everything is written, one recovery line.
    flaky.full = False
    history.record(record("m3"))
    clock.now += history.next_retry_in
    assert await history.flush() == 4
    assert history.pending_count == 0
    assert not history.failing
    recovered = [r for r in caplog.records if "writing again" in r.message]
    assert len(recovered) == 1
    assert "4 messages written" in recovered[0].getMessage()
    assert [r.content for r in await history.latest("#general", 10)] == ["m0", "m1", "m2", "m3"]
    await worker.close()


async def test_a_forced_flush_ignores_the_back_off(flaky: FlakyStorage) -> None:
    clock = Clock()
    worker = StorageWorker(flaky)
    history = History(worker, retry_initial=60.0, clock=clock)
    flaky.full = True
    history.record(record("kept"))
    await history.flush()
    flaky.full = False
    assert await history.flush() == 0  # backing off
    assert await history.flush(force=True) == 1  # shutdown's last attempt
    await worker.close()


async def test_cancelling_a_flush_loses_nothing(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data" / "classcord.db")
    worker = StorageWorker(storage)
    gate = threading.Event()
    worker.submit(gate.wait)  # the storage thread is busy
    history = History(worker)
    history.record(record("one"))
    task = asyncio.ensure_future(history.flush())
    await asyncio.sleep(0.05)
    task.cancel()
    gate.set()
    assert await history.flush() == 0  # the shielded flush finished the write
    assert storage.count_messages() == 1
    await worker.close()


async def test_shutdown_ends_within_its_bound_when_the_storage_thread_hangs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path / "data", shutdown_timeout=0.2, shutdown_storage_seconds=0.5)
    server = await start_server(settings)
    gate = threading.Event()
    try:
        server.storage.submit(gate.wait)  # a dead disk: the thread never returns
        for n in range(5):
            server.history.record(record(f"m{n}"))
        started = time.monotonic()
        with caplog.at_level(logging.ERROR):
            await asyncio.wait_for(server.shutdown(), 5)
        assert time.monotonic() - started < 0.2 + 0.5 + 0.5
        assert server.storage_wedged
        lost = [r.getMessage() for r in caplog.records if "could not be written" in r.message]
        assert len(lost) == 1, lost
        assert lost[0].startswith("shutdown: 5 messages"), lost
    finally:
        gate.set()


async def test_a_normal_stop_still_loses_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    server = await start_server(settings)
    for n in range(5):
        server.history.record(record(f"m{n}"))
    await server.shutdown()
    assert not server.storage_wedged
    storage = Storage(settings.database_path)
    assert storage.count_messages() == 5
    storage.close()


async def test_history_reads_answer_during_an_outage_of_the_server(tmp_path: Path) -> None:
    """The `history` request answers what it can, never the internal error."""
    from tests.support.harness import Harness

    harness = Harness(tmp_path)
    alice, alice_peer = await harness.user("alice")
    await harness.send(alice, {"type": "message", "subtype": "global", "content": "stored"})
    assert await harness.history.flush() == 1

    def full(records: Iterable[MessageRecord]) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    def unreadable(conversation: str, limit: int) -> list[MessageRecord]:
        raise sqlite3.OperationalError("disk I/O error")

    storage = harness.storage.storage
    original = storage.add_messages
    storage.add_messages = full  # type: ignore[method-assign]
    storage.history = unreadable  # type: ignore[method-assign]
    await harness.send(alice, {"type": "message", "subtype": "global", "content": "waiting"})
    await harness.send(alice, {"type": "history"})
    replies = [r for r in alice_peer.take() if r.get("type") in {"history", "error"}]
    assert len(replies) == 1, replies
    assert replies[0]["type"] == "history", replies
    assert [m["content"] for m in replies[0]["messages"]] == ["waiting"]
    storage.add_messages = original  # type: ignore[method-assign]
    await harness.close()


async def test_a_damaged_database_keeps_the_records_instead_of_dropping_them(
    flaky: FlakyStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def damaged(records: Iterable[MessageRecord]) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(flaky, "add_messages", damaged)
    worker = StorageWorker(flaky)
    history = History(worker, clock=Clock())
    history.record(record("kept"))
    assert await history.flush() == 0
    assert history.pending_count == 1
    assert history.dropped == 0
    assert history.failing
    await worker.close()


async def test_poison_records_are_isolated_in_one_transaction(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data" / "classcord.db")
    records = [record(text) for text in ("a", "\udfff", "b", "c\ud83d", "d")]
    assert [i for i, _ in storage.add_messages_isolating(records)] == [1, 3]
    assert [r.content for r in storage.history("#general", 10)] == ["a", "b", "d"]
    storage.close()


async def test_a_long_outage_keeps_memory_bounded(
    flaky: FlakyStorage, caplog: pytest.LogCaptureFixture
) -> None:
    worker = StorageWorker(flaky)
    history = History(worker, clock=Clock(), max_pending=100)
    flaky.full = True
    for n in range(1000):
        history.record(record(f"m{n}"))
    assert history.pending_count <= 100
    assert history.dropped >= 900
    assert sum("history_max_pending" in r.message for r in caplog.records) == 1
    flaky.full = False
    assert await history.flush(force=True) == history.written
    assert [r.content for r in flaky.history("#general", 1)] == ["m999"]
    await worker.close()
