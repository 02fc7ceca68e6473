"""Health that means "can serve and keep data": the admin ``health`` command and
``classcord healthcheck`` against an in-process server (issue 9)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from classcord.admin import AdminService
from classcord.cli import healthcheck, start_server
from classcord.history import HistoryStatus
from classcord.server import ClassCordServer
from tests.conftest import make_settings


async def _check(server: ClassCordServer, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = await asyncio.to_thread(
        healthcheck, "127.0.0.1", server.port, 3.0, server.settings.data_dir
    )
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out
    return code, out.strip()


async def test_a_healthy_server(
    server: ClassCordServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = await _check(server, capsys)
    assert code == 0
    assert line.startswith("healthy: "), line
    assert "database writable" in line
    result = await AdminService(server).execute({"command": "health"})
    assert result["healthy"] is True
    assert result["write_probe"] == "ok"
    assert result["history"]["pending"] == 0


async def test_a_database_that_cannot_be_written_is_unhealthy(
    server: ClassCordServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def readonly(now: float) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(server.storage.storage, "write_probe", readonly)
    code, line = await _check(server, capsys)
    assert code == 1
    assert line.startswith("unhealthy: database "), line
    assert "readonly" in line


async def test_low_disk_space_is_unhealthy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await start_server(make_settings(tmp_path / "data", health_min_free_bytes=10**18))
    try:
        code, line = await _check(server, capsys)
    finally:
        await server.shutdown()
    assert code == 1
    assert line.startswith("unhealthy: data folder "), line
    assert "MB free" in line


async def test_messages_waiting_too_long_are_unhealthy(
    server: ClassCordServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = HistoryStatus(12, 90.0, 90.0, "OperationalError: database or disk is full", 0, 0)
    monkeypatch.setattr(server.history, "status", lambda: stuck)
    code, line = await _check(server, capsys)
    assert code == 1
    assert "12 messages have waited 90 s" in line, line
    assert "disk is full" in line


async def test_a_stuck_storage_thread_is_unhealthy_within_the_timeout(
    server: ClassCordServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    gate = threading.Event()
    server.storage.submit(gate.wait)
    try:
        code, line = await _check(server, capsys)
    finally:
        gate.set()
    assert code == 1
    assert "did not answer a write" in line, line


async def test_without_the_admin_socket_the_ping_and_the_disk_decide(
    server: ClassCordServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.settings.admin_socket_path.unlink()
    code, line = await _check(server, capsys)
    assert code == 0
    assert "admin socket" in line
    assert "database not checked" in line
