"""The request driver under hostile input: what waits behind a slow request is bytes,
bounded; one connection's flood cannot hold the loop; a half-close is answered."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.support.clients import LineClient
from tests.support.harness import Harness


async def test_lines_behind_a_slow_request_wait_as_bytes_and_reading_stops(
    tmp_path: Path,
) -> None:
    harness = Harness(tmp_path, rate_burst=1_000_000, pending_input_bytes=4096)
    await harness.accounts.load()
    try:
        session, peer = harness.connect()
        driver = harness.drivers[session]
        login = b'{"type": "login", "username": "nobody", "password": "pw"}\n'
        driver.feed(login + b"ab\n" * 50_000)  # 150 kB of pipelined tiny lines
        assert driver.busy  # the login is hashing
        assert peer.paused  # past pending_input_bytes: the kernel holds the rest
        # Nothing was framed ahead: the tiny lines are still one compact buffer.
        assert harness.drivers[session]._framer.buffered == 150_000
        await driver.idle()
        assert not peer.paused
        replies = peer.take()
        assert replies[0]["message"] == "Login failed."
        assert len(replies) == 1 + 50_000  # each "ab" is invalid JSON, answered in order
    finally:
        await harness.close()


async def test_a_flood_in_one_read_is_handled_a_turn_at_a_time(tmp_path: Path) -> None:
    harness = Harness(tmp_path, rate_burst=1_000_000, lines_per_turn=10)
    await harness.accounts.load()
    try:
        flooder, flooder_peer = harness.connect()
        driver = harness.drivers[flooder]
        driver.feed(b'{"type": "ping"}\n' * 35)
        assert len(flooder_peer.take()) == 10  # one turn, then the loop is given back
        assert flooder_peer.paused
        await asyncio.sleep(0)
        assert len(flooder_peer.take()) == 10
        await driver.idle()
        assert len(flooder_peer.take()) == 15
        assert not flooder_peer.paused
    finally:
        await harness.close()


async def test_end_of_input_answers_everything_then_closes(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    await harness.accounts.load()
    try:
        session, peer = harness.connect()
        driver = harness.drivers[session]
        driver.feed(b'{"type": "register", "username": "nc", "password": "pw"}\n{"type": "ping"}')
        driver.end_of_input()  # the last line had no newline: it still counts
        await driver.idle()
        assert peer.take() == [{"type": "register", "status": "ok"}, {"type": "pong"}]
        assert peer.closed_reason == "client finished sending (half-close)"
    finally:
        await harness.close()


async def test_debug_logs_requests_and_replies_never_passwords_and_one_open_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from classcord.cli import start_server

    server = await start_server(make_settings(tmp_path / "data", log_level="debug"))
    try:
        with caplog.at_level(logging.DEBUG, logger="classcord"):
            client = await LineClient.connect(server.port)
            await client.account("alice", "hunter2-secret")
            await client.send({"type": "status", "state": "away"})
            await client.send({"type": "message", "content": "bonjour"})
            await client.ping_ms()
            await client.close()
            await asyncio.sleep(0.05)
        text = caplog.text
        assert "hunter2-secret" not in text
        assert "request: conn=1 state=anonymous type=register" in text
        assert "reply: conn=1 type=login" in text
        assert "status: conn=1 user=alice state=away" in text
        assert "message: conn=1 from=alice channel='#general'" in text or (
            "message: conn=1 from=alice channel=#general" in text
        )
        assert text.count("open: conn=1 ") == 1
    finally:
        await server.shutdown()
