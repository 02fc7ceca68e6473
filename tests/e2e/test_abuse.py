"""Abusive clients against the real server: each is answered or cut off as
PROTOCOL-COMPAT.md documents, memory stays bounded, and the others don't notice."""

from __future__ import annotations

import asyncio
import contextlib
import random

from classcord import texts
from tests.support.clients import LineClient

from .conftest import Spawn, rss_mb

# What "the others don't notice" means here: a ping answered this fast (generous
# for a shared CI machine; an event loop blocked by the abuse takes seconds).
OTHERS_PING_MS = 500.0
# Bounded memory: what the server may grow by while being abused.
GROWTH_MB = 30.0
LINE_LIMIT = 16_384  # default --max-line-bytes
ABUSE_LIMIT = 1_048_576  # --abuse-line-bytes for the endless-line test (default 64 MiB)


async def _bystanders(port: int) -> tuple[LineClient, LineClient]:
    alice, bob = await LineClient.connect(port), await LineClient.connect(port)
    await alice.sign_in("alice")
    await bob.sign_in("bob")
    await alice.recv_type("status")  # bob online
    return alice, bob


async def _others_fine(alice: LineClient, bob: LineClient, tag: str) -> None:
    assert await alice.ping_ms() < OTHERS_PING_MS
    await alice.send({"type": "message", "subtype": "global", "content": tag})
    got = await bob.recv_type("message")
    assert (got["from"], got["content"]) == ("alice", tag)


async def test_endless_line_gets_one_error_then_is_cut_off(spawn: Spawn) -> None:
    server = spawn("--abuse-line-bytes", str(ABUSE_LIMIT))
    alice, bob = await _bystanders(server.port)
    before = rss_mb(server)
    abuser = await LineClient.connect(server.port)
    reading = asyncio.create_task(abuser.lines_until_closed())
    chunk = b"A" * 65_536
    sent = 0
    try:
        # Far past the abuse limit, never a newline, until the server ends the stream.
        while sent < 8 * ABUSE_LIMIT and not reading.done():
            await abuser.send_raw(chunk)
            sent += len(chunk)
    except ConnectionError:
        pass  # cut off while still sending: fine
    lines = await reading
    assert lines is not None, "the server kept an endless line open"
    # The "line too long" error at once, then why it is cut off, then the end.
    assert all(line["type"] == "error" for line in lines)
    assert lines[-1]["message"] == texts.CUT_OFF
    assert sent > ABUSE_LIMIT
    assert f"line longer than {ABUSE_LIMIT} bytes" in server.read_log()
    assert rss_mb(server) - before < GROWTH_MB
    await _others_fine(alice, bob, "after the endless line")
    await abuser.close()
    await alice.close()
    await bob.close()


async def test_a_pasted_2_mib_line_is_answered_and_the_session_continues(spawn: Spawn) -> None:
    """A large paste or a base64 image is a mistake, not abuse (default limits)."""
    server = spawn()
    client = await LineClient.connect(server.port)
    await client.send_raw(b'{"type": "message", "content": "' + b"x" * (2 << 20) + b'"}\n')
    error = await client.recv(15)
    assert error["message"] == texts.LINE_TOO_LONG.format(limit=LINE_LIMIT)
    assert await client.ping_ms() < OTHERS_PING_MS
    await client.close()


async def test_overlong_line_is_answered_and_the_session_continues(spawn: Spawn) -> None:
    server = spawn()
    client = await LineClient.connect(server.port)
    await client.send_raw(b'{"type": "message", "content": "' + b"x" * (4 * LINE_LIMIT) + b'"}\n')
    error = await client.recv()
    assert error["type"] == "error"
    assert error["error"] == error["message"]
    assert await client.ping_ms() < OTHERS_PING_MS
    await client.close()


async def test_binary_garbage_gets_error_lines_and_keeps_the_connection(spawn: Spawn) -> None:
    server = spawn()
    alice, bob = await _bystanders(server.port)
    rng = random.Random(6)
    client = await LineClient.connect(server.port)
    # 40 lines of random bytes (every byte value, \r and NUL included): under the
    # rate burst, so this is bad input, not abuse.
    lines = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(40)]
    lines = [line.replace(b"\n", b"") for line in lines]
    for line in lines:
        await client.send_raw(line + b"\n")
    await client.send({"type": "ping"})
    replies = []
    while (reply := await client.recv())["type"] != "pong":
        replies.append(reply)
    assert replies, "garbage went unanswered"
    assert all(r["type"] == "error" and r["error"] == r["message"] for r in replies)
    assert len(replies) <= len(lines)  # blank garbage lines are ignored silently
    await _others_fine(alice, bob, "after the garbage")
    for c in (client, alice, bob):
        await c.close()


async def test_flood_past_the_rate_limit_is_cut_off_and_others_are_spared(spawn: Spawn) -> None:
    server = spawn()  # default limits: 20/s, burst 60, cut after 200 rejected, no pause
    alice, bob = await _bystanders(server.port)
    flooder = await LineClient.connect(server.port)
    await flooder.sign_in("flooder")
    await alice.recv_type("status")
    await bob.recv_type("status")
    flood = b"".join(
        b'{"type": "message", "subtype": "global", "content": "flood %d"}\n' % i
        for i in range(2000)
    )
    with contextlib.suppress(ConnectionError):
        await flooder.send_raw(flood)
    lines = await flooder.lines_until_closed()
    assert lines is not None, "a flooder past the limit was not disconnected"
    assert all(line["type"] in ("error", "status", "message") for line in lines)
    errors = [line["message"] for line in lines if line["type"] == "error"]
    # One "slow down" for the episode (not one per dropped line), then why it ends.
    assert errors == [texts.RATE_LIMITED, texts.CUT_OFF], errors
    assert "flooding" in server.read_log()
    # bob saw at most the burst (plus what the rate refilled), then flooder going offline
    seen = 0
    while True:
        got = await bob.recv(5)
        if got["type"] == "status" and got["user"] == "flooder":
            assert got["state"] == "offline"
            break
        if got["type"] == "message":
            seen += 1
    assert 0 < seen <= 100
    await _others_fine(alice, bob, "after the flood")
    for c in (flooder, alice, bob):
        await c.close()


async def test_a_paced_flooder_is_cut_off_too(spawn: Spawn) -> None:
    """Sending just after each token refills used to reset the count forever."""
    server = spawn("--rate-per-second", "20", "--rate-burst", "5", "--flood-disconnect-after", "50")
    flooder = await LineClient.connect(server.port)
    reading = asyncio.create_task(flooder.lines_until_closed(15))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    with contextlib.suppress(ConnectionError):
        while loop.time() < deadline and not reading.done():
            for _ in range(20):  # 20 lines every 20 ms: 1,000 a second, paced
                flooder.writer.write(b'{"type": "ping"}\n')
            await flooder.writer.drain()
            await asyncio.sleep(0.02)
    lines = await reading
    assert lines is not None, "a paced flooder was never cut off"
    assert "flooding" in server.read_log()
    assert sum(1 for line in lines if line.get("message") == texts.RATE_LIMITED) < 60
    await flooder.close()


async def test_a_half_closed_request_is_still_answered(spawn: Spawn) -> None:
    """printf '{"type":"register",...}\\n' | nc -N host 12345"""
    server = spawn()
    client = await LineClient.connect(server.port)
    await client.send_raw(b'{"type": "register", "username": "nc", "password": "pw"}\n')
    client.writer.write_eof()
    assert await client.lines_until_closed() == [{"type": "register", "status": "ok"}]
    await client.close()
    again = await LineClient.connect(server.port)
    assert (await again.login("nc", "pw"))["status"] == "ok"
    await again.close()


async def test_a_thousand_slow_connections_dribbling_bytes(spawn: Spawn) -> None:
    count = 1000
    server = spawn("--max-connections-per-address", "2000", "--max-connections", "2000")
    alice, bob = await _bystanders(server.port)
    before = rss_mb(server)
    slow = await asyncio.gather(*(LineClient.connect(server.port) for _ in range(count)))
    request = b'{"type": "ping"}\n'
    pings: list[float] = []

    async def dribble_all() -> None:
        for i in range(len(request)):  # one byte per connection per round
            for client in slow:
                client.writer.write(request[i : i + 1])
            await asyncio.gather(*(c.writer.drain() for c in slow))
            pings.append(await alice.ping_ms())
            await asyncio.sleep(0.05)

    await dribble_all()
    replies = await asyncio.gather(*(c.recv(15) for c in slow))
    assert all(r == {"type": "pong"} for r in replies)
    assert max(pings) < OTHERS_PING_MS, pings
    assert rss_mb(server) - before < GROWTH_MB
    await _others_fine(alice, bob, "after the dribblers")
    await asyncio.gather(*(c.close() for c in slow))
    await alice.close()
    await bob.close()
