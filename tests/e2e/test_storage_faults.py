"""The real process with its storage in trouble: SIGTERM still ends within
``shutdown_timeout`` plus ``shutdown_storage_seconds`` and says what was lost; a full
disk is one log line per episode and recovers (issue 11)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_system
from tests.support.clients import LineClient

from .conftest import Spawn

SHUTDOWN_S = 1.0
STORAGE_S = 1.0
MARGIN_S = 3.0  # interpreter start-up of the signal, exit, a loaded CI machine


async def _chat(port: int, count: int, size: int = 100) -> tuple[LineClient, LineClient]:
    alice, bob = await LineClient.connect(port), await LineClient.connect(port)
    await alice.sign_in("alice")
    await bob.sign_in("bob")
    for n in range(count):
        await alice.send({"type": "message", "content": f"{n:04d}" + "x" * size})
    await alice.ping_ms()
    return alice, bob


async def test_sigterm_ends_in_time_while_the_database_is_locked(
    spawn: Spawn, tmp_path: Path
) -> None:
    server = spawn(
        "--shutdown-timeout", str(SHUTDOWN_S), "--shutdown-storage-seconds", str(STORAGE_S),
        "--history-flush-ms", "50",
    )  # fmt: skip
    alice, bob = await _chat(server.port, 3)
    await asyncio.sleep(0.3)  # flushed
    blocker = sqlite3.connect(tmp_path / "data" / "classcord.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        for n in range(4):
            await alice.send({"type": "message", "content": f"late {n}"})
        await alice.ping_ms()
        await asyncio.sleep(0.3)  # the storage thread now waits on the lock
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.wait, SHUTDOWN_S + STORAGE_S + MARGIN_S)
        elapsed = time.monotonic() - started
    finally:
        blocker.rollback()
        blocker.close()
    assert code is not None, "still running"
    assert elapsed < SHUTDOWN_S + STORAGE_S + MARGIN_S
    log = server.read_log()
    assert "shutdown: 4 messages could not be written" in log, log[-2000:]
    assert "Traceback" not in log
    await alice.close()
    await bob.close()


@contextlib.contextmanager
def tiny_disk(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        require_system(f"cannot mount a tmpfs (root needed): {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
            os.fsync(out.fileno())
    return filler


@pytest.mark.system
async def test_a_full_disk_is_one_episode_then_recovers(spawn: Spawn, tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "small", "3m") as data:
        server = spawn(
            "--history-flush-ms", "50", "--history-retry-initial-seconds", "0.1",
            "--history-retry-max-seconds", "0.4", "--health-min-free-bytes", "0",
            "--rate-per-second", "100000", "--rate-burst", "100000",
            data_dir=data,
        )  # fmt: skip
        alice, bob = await _chat(server.port, 2)
        await asyncio.sleep(0.3)
        filler = fill(data)
        for n in range(300):
            await alice.send({"type": "message", "content": f"{n:04d}" + "y" * 1500})
        await alice.ping_ms()
        assert await _wait_log(server, "history: cannot write messages")
        await asyncio.sleep(1.5)  # several retries
        log = server.read_log()
        assert log.count("history: cannot write messages") == 1, log[-3000:]
        # History answers during the outage.
        await alice.send({"type": "history"})
        reply = await alice.recv_type("history")
        assert reply["messages"][-1]["content"].startswith("0299")
        filler.unlink()
        assert await _wait_log(server, "history: writing again")
        server.signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait, 10) == 0
        assert "could not be written" not in server.read_log()
        stored = sqlite3.connect(data / "classcord.db")
        assert stored.execute("SELECT count(*) FROM messages").fetchone()[0] == 302
        stored.close()
        await alice.close()
        await bob.close()


async def _wait_log(server: object, fragment: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fragment in server.read_log():  # type: ignore[attr-defined]
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.system
async def test_sigterm_with_the_disk_full_ends_and_says_what_is_lost(
    spawn: Spawn, tmp_path: Path
) -> None:
    with tiny_disk(tmp_path / "small", "3m") as data:
        server = spawn(
            "--shutdown-timeout", str(SHUTDOWN_S), "--shutdown-storage-seconds", str(STORAGE_S),
            "--history-flush-ms", "50", "--rate-per-second", "100000", "--rate-burst", "100000",
            data_dir=data,
        )  # fmt: skip
        alice, bob = await _chat(server.port, 2)
        await asyncio.sleep(0.3)
        fill(data)
        for n in range(300):
            await alice.send({"type": "message", "content": f"{n:04d}" + "z" * 1500})
        await alice.ping_ms()
        assert await _wait_log(server, "history: cannot write messages")
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.wait, SHUTDOWN_S + STORAGE_S + MARGIN_S)
        assert code is not None, "still running"
        assert time.monotonic() - started < SHUTDOWN_S + STORAGE_S + MARGIN_S
        log = server.read_log()
        assert "messages could not be written" in log, log[-2000:]
        assert "Traceback" not in log
        await alice.close()
        await bob.close()
