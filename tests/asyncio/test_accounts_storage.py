"""Accounts and storage: hashes, throttling, upgrades, retention, migrations."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from classcord.accounts import (
    LoginOutcome,
    LoginThrottle,
    RegisterOutcome,
    ScryptParams,
    hash_params,
    hash_password,
    verify_password,
)
from classcord.errors import StorageError
from classcord.storage import SCHEMA_VERSION, MessageRecord, Storage
from tests.support.harness import Harness

FAST = ScryptParams(1024, 8, 1)


def test_hash_carries_its_parameters_and_a_fresh_salt() -> None:
    first, second = hash_password("pw", FAST), hash_password("pw", FAST)
    assert first != second  # per-user salt
    assert hash_params(first) == FAST
    assert verify_password("pw", first)
    assert not verify_password("PW", first)
    assert not verify_password("pw", "plain-text-from-the-old-pickle")


def test_throttle_locks_then_forgets() -> None:
    now = [0.0]
    throttle = LoginThrottle(3, window=60, lockout=30, clock=lambda: now[0])
    assert not throttle.failure("alice")
    now[0] = 100.0  # the first failure left the window
    assert not throttle.failure("alice")
    assert not throttle.failure("alice")
    assert throttle.failure("alice")
    assert throttle.is_locked("alice")
    assert not throttle.is_locked("bob")  # per account, never per address
    now[0] = 131.0
    assert not throttle.is_locked("alice")
    throttle.forget_stale()
    assert not throttle.failure("alice")


async def test_raised_parameters_upgrade_the_hash_at_next_login(tmp_path: Path) -> None:
    old = Harness(tmp_path, scrypt_n=1024)
    await old.accounts.load()
    assert await old.accounts.register("alice", "pw") is RegisterOutcome.OK
    await old.close()
    new = Harness(tmp_path, scrypt_n=2048)
    await new.accounts.load()
    assert await new.accounts.authenticate("alice", "pw") == LoginOutcome.OK
    record = new.storage.storage.get_user("alice")
    assert record is not None
    assert hash_params(record.password_hash) == ScryptParams(2048, 8, 1)
    assert await new.accounts.authenticate("alice", "pw") == LoginOutcome.OK
    await new.close()


def record(conversation: str, created: float, content: str = "x") -> MessageRecord:
    return MessageRecord(
        created, "2025-06-20T14:52:43.123456", conversation, "a", None, conversation, content
    )


def test_retention_by_age_and_by_count(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "c.db")
    storage.add_messages([record("#general", t, str(t)) for t in range(10)])
    # a day after t=5: the five messages created before t=5 go
    assert storage.prune(retention_days=1, max_messages=0, now=86_400 + 5) == 5
    assert storage.prune(retention_days=0, max_messages=2, now=0) == 3
    assert [m.content for m in storage.history("#general", 10)] == ["8", "9"]
    storage.close()


def test_schema_version_and_refusal_of_a_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    Storage(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StorageError, match="newer"):
        Storage(path)


def test_unwritable_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="cannot open database"):
        Storage(blocker / "data" / "c.db")


async def test_hash_threads_run_at_a_lower_priority(tmp_path: Path) -> None:
    import os
    import threading

    harness = Harness(tmp_path)
    try:
        loop = asyncio.get_running_loop()
        niceness = await loop.run_in_executor(
            harness.accounts._hashers,
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
        )
        assert niceness >= os.getpriority(os.PRIO_PROCESS, 0) + 1
    finally:
        await harness.close()


async def test_registrations_at_once_share_a_commit_and_each_is_durable(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    storage = h.storage.storage
    batches: list[int] = []
    original = storage.add_user_batch
    disk = threading.Event()  # the first commit's fsync lasts until every other waits

    def slow_first_commit(users: list[tuple[str, str, str]]) -> list[int | None]:
        if not batches:
            disk.wait(10)
        batches.append(len(users))
        return original(users)

    storage.add_user_batch = slow_first_commit  # type: ignore[method-assign]
    try:
        names = [f"eleve{n}" for n in range(20)]
        registering = asyncio.gather(*(h.accounts.register(n, "pw") for n in names))
        while len(h.accounts._to_commit) < 19:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0.01)
        disk.set()
        assert set(await registering) == {RegisterOutcome.OK}
        assert batches == [1, 19]  # one fsync for the 19 that waited
        assert await h.accounts.register("ELEVE0", "pw") is RegisterOutcome.EXISTS
    finally:
        disk.set()
        await h.close()
    reopened = Storage(tmp_path / "data" / "classcord.db")
    try:
        assert sorted(reopened.user_name_keys()) == sorted(names)
    finally:
        reopened.close()


async def test_a_failed_group_commit_fails_each_registration_and_recovers(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    storage = h.storage.storage
    original = storage.add_user_batch

    def full_disk(users: list[tuple[str, str, str]]) -> list[int | None]:
        raise sqlite3.OperationalError("database or disk is full")

    storage.add_user_batch = full_disk  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(
            *(h.accounts.register(f"x{n}", "pw") for n in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, sqlite3.OperationalError) for r in results)
        assert not h.accounts.is_registered("x0")
        storage.add_user_batch = original  # type: ignore[method-assign]
        assert await h.accounts.register("x0", "pw") is RegisterOutcome.OK
        assert h.accounts.account_id("x0") is not None
    finally:
        await h.close()


async def test_the_hash_pipeline_grows_only_for_fast_hashes() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from classcord.accounts import HashScheduler

    with ThreadPoolExecutor(1) as executor:
        fast = HashScheduler(executor, 1, capacity=100, depth=8, pipeline_seconds=0.25)
        for _ in range(20):
            await fast.run(0, sum, (1, 2))
        # Microsecond hashes: up to half the bound on waiting, the other half stays a
        # queue where a classmate's login can take an attacker's place.
        assert fast._workers == 50
        slow = HashScheduler(executor, 1, capacity=100, depth=8, pipeline_seconds=0.25)
        for _ in range(3):
            await slow.run(0, time.sleep, 0.1)  # like default scrypt: about 50-100 ms
        assert slow._workers == 8  # 0.25 s buys fewer than the depth: the depth stays
