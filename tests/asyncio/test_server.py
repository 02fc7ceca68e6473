"""Ring 3: the asyncio layer over real sockets on 127.0.0.1, in process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from classcord import texts
from classcord.cli import start_server
from classcord.server import ClassCordServer, Connection
from tests.conftest import make_settings
from tests.support.clients import LineClient


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.buffered = 0  # what the kernel has not taken yet
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("192.0.2.1", 5555) if name == "peername" else default

    def close(self) -> None:
        pass


async def test_many_messages_to_one_client_in_one_pass_are_one_write(
    server: ClassCordServer,
) -> None:
    connection = Connection(server, 999)
    transport = RecordingTransport()
    connection.connection_made(transport)
    for n in range(3):
        connection.send(f"line {n}\n".encode())
    assert transport.writes == []  # queued until the loop pass ends
    await asyncio.sleep(0)
    assert transport.writes == [b"line 0\nline 1\nline 2\n"]
    connection.connection_lost(None)


async def test_a_client_that_caught_up_is_not_cut_off_for_its_old_backlog(
    server: ClassCordServer,
) -> None:
    limit = server.settings.send_queue_bytes
    connection = Connection(server, 998)
    transport = RecordingTransport()
    connection.connection_made(transport)
    transport.buffered = limit * 9 // 10  # behind after this flush...
    connection.send(b"x\n")
    await asyncio.sleep(0)
    transport.buffered = 0  # ...then the kernel drained it all
    connection.send(b"y" * (limit // 5))  # a burst that fits once caught up
    assert not transport.aborted
    transport.buffered = limit + 1  # really behind now: cut off at this pass's flush
    connection.send(b"z" * (limit // 5))
    await asyncio.sleep(0)
    assert transport.aborted
    connection.connection_lost(None)


class KernelLikeTransport(RecordingTransport):
    """Takes ``room`` bytes and buffers the rest; past the high-water mark the
    connection sets, it pauses its protocol as asyncio's transport does (64 KiB
    until told otherwise); ``drain`` is the client reading."""

    def __init__(self, protocol: Connection, room: int) -> None:
        super().__init__()
        self.protocol = protocol
        self.room = room
        self.delivered = bytearray()
        self.paused = False
        self.high = 64 * 1024

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = 64 * 1024 if high is None else high

    def write(self, data: Any) -> None:
        super().write(data)
        taken = min(self.room, len(data))
        self.room -= taken
        self.delivered += bytes(data[:taken])
        self.pending = getattr(self, "pending", b"") + bytes(data[taken:])
        self.buffered = len(self.pending)
        if self.buffered > self.high and not self.paused:
            self.paused = True
            self.protocol.pause_writing()

    def drain(self, room: int) -> None:
        self.delivered += self.pending
        self.pending = b""
        self.buffered = 0
        self.room = room
        self.paused = False
        self.protocol.resume_writing()


def connect_behind(
    server: ClassCordServer, conn_id: int, room: int
) -> tuple[Connection, KernelLikeTransport]:
    """A connection whose kernel takes ``room`` bytes before it is full."""
    connection = Connection(server, conn_id)
    transport = KernelLikeTransport(connection, room)
    connection.connection_made(transport)
    return connection, transport


async def test_a_client_behind_keeps_its_lines_queued_here_then_gets_them_all_in_order(
    tmp_path: Path,
) -> None:
    chunk = 8_192  # below the shared block, which is then written a chunk at a time
    server = await start(tmp_path, write_chunk_bytes=chunk)
    connection, transport = connect_behind(server, 997, room=3_000)
    lines = [f"{n:04d}".encode() + b"x" * 995 + b"\n" for n in range(100)]
    shared = b"".join(lines[50:])  # one block shared with other clients
    for line in lines[:50]:
        connection.send(line)
    connection.send(shared)
    await asyncio.sleep(0)
    # One chunk went to the kernel, which took 3,000 bytes: the rest stays queued
    # here (not copied into the transport) until it drains.
    assert len(transport.writes) == 1
    assert len(transport.writes[0]) <= chunk
    assert connection.queued_bytes() == 100_000 - 3_000
    assert transport.buffered < chunk
    transport.drain(room=10**9)
    await asyncio.sleep(0)
    assert bytes(transport.delivered) == b"".join(lines)
    assert all(len(write) <= chunk for write in transport.writes)
    assert connection.queued_bytes() == 0
    assert not transport.aborted
    connection.connection_lost(None)
    await server.shutdown()


async def test_a_close_while_behind_still_writes_everything_queued(
    server: ClassCordServer,
) -> None:
    connection, transport = connect_behind(server, 996, room=0)
    for n in range(20):
        connection.send(b"%d" % n + b"y" * 999 + b"\n")
    await asyncio.sleep(0)
    connection.close("bye")
    transport.drain(room=10**9)
    assert bytes(transport.delivered).count(b"\n") == 20
    connection.connection_lost(None)


async def test_a_burst_of_one_pass_past_the_send_queue_cuts_a_client_that_reads_nothing(
    server: ClassCordServer,
) -> None:
    limit = server.settings.send_queue_bytes
    connection, transport = connect_behind(server, 994, room=0)
    line = b"z" * 1_023 + b"\n"
    for _ in range(2 * limit // len(line)):
        connection.send(line)  # all within one pass: the room is checked at flush
    await asyncio.sleep(0)
    assert transport.aborted
    connection.connection_lost(None)


async def test_a_client_behind_past_the_send_queue_is_still_cut_off(
    server: ClassCordServer,
) -> None:
    limit = server.settings.send_queue_bytes
    connection, transport = connect_behind(server, 995, room=0)
    connection.send(b"a" * 100 + b"\n")
    await asyncio.sleep(0)
    assert transport.paused
    block = b"b" * 4_095 + b"\n"
    for _ in range(limit // len(block) + 2):
        connection.send(block)
    assert transport.aborted
    connection.connection_lost(None)


async def start(tmp_path: Path, **changes: Any) -> ClassCordServer:
    return await start_server(make_settings(tmp_path / "data", **changes))


async def test_chat_over_sockets_with_split_utf8_and_crlf(server: ClassCordServer) -> None:
    alice = await LineClient.connect(server.port)
    bob = await LineClient.connect(server.port)
    await alice.account("alice")
    await bob.account("bob")
    await alice.recv_type("status")
    line = '{"type": "message", "content": "caf\u00e9 \u2615"}\r\n'.encode()
    for byte in range(len(line)):  # one byte per TCP segment
        await bob.send_raw(line[byte : byte + 1])
        await asyncio.sleep(0)
    received = await alice.recv()
    assert received["content"] == "caf\u00e9 \u2615"
    assert received["from"] == "bob"
    await alice.close()
    await bob.close()


async def test_a_stalled_reader_is_cut_off_and_nobody_else_notices(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start(
        tmp_path, send_queue_bytes=256 * 1024, rate_per_second=100_000.0, rate_burst=100_000
    )
    caplog.set_level(logging.WARNING, "classcord.server")
    try:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(b'{"type": "message", "content": "", "from": "lent"}\n')
        sender = await LineClient.connect(server.port)
        watcher = await LineClient.connect(server.port)
        await sender.send({"type": "message", "content": "", "from": "bavard"})
        await watcher.send({"type": "message", "content": "", "from": "veilleur"})
        for client in (sender, watcher):  # both are guests before anything is sent
            await client.send({"type": "ping"})
            await client.recv_type("pong")
        payload = "x" * 1500
        total = 6000  # about 9 MB: more than the kernel buffers of the stalled client

        async def watch() -> int:
            seen = 0
            while seen < total:
                message = await watcher.recv_type("message")
                seen += message["content"] == payload
            return seen

        watching = asyncio.ensure_future(watch())
        for _ in range(total):
            await sender.send({"type": "message", "content": payload})
        assert await asyncio.wait_for(watching, 30) == total
        await sender.send({"type": "ping"})
        assert (await sender.recv_type("pong"))["type"] == "pong"
        assert not any(c.session.name == "lent" for c in server.connections)
        assert "user=lent closed: send queue full" in caplog.text
        assert "user=veilleur" not in caplog.text
        # The cut-off is a reset, not a close that would leave megabytes in the
        # kernel for a reader that never comes back.
        stalled.settimeout(5)
        with pytest.raises(ConnectionResetError):
            while stalled.recv(1 << 20):
                pass
        stalled.close()
        await sender.close()
        await watcher.close()
    finally:
        await server.shutdown()


async def test_connection_limits_answer_with_an_error_line(tmp_path: Path) -> None:
    server = await start(tmp_path, max_connections=5, max_connections_per_address=2)
    try:
        first = await LineClient.connect(server.port)
        second = await LineClient.connect(server.port)
        for client in (first, second):  # connections that spoke are never evicted
            assert await client.ping_ms() >= 0
        third = await LineClient.connect(server.port)
        assert await third.recv() == {
            "type": "error",
            "message": texts.TOO_MANY_FROM_ADDRESS,
            "error": texts.TOO_MANY_FROM_ADDRESS,
        }
        assert await third.closed()
        await first.send({"type": "ping"})
        assert await first.recv() == {"type": "pong"}
        for client in (first, second, third):
            await client.close()
    finally:
        await server.shutdown()


async def test_at_the_address_limit_a_newcomer_takes_the_place_of_the_oldest_silent_one(
    tmp_path: Path,
) -> None:
    """One student's silent sockets cannot lock out a class behind one NAT address."""
    server = await start(tmp_path, max_connections_per_address=3)
    try:
        talker = await LineClient.connect(server.port)
        await talker.ping_ms()
        silent_old = await LineClient.connect(server.port)
        await asyncio.sleep(0.01)
        silent_new = await LineClient.connect(server.port)
        await asyncio.sleep(0.01)
        newcomer = await LineClient.connect(server.port)
        assert await newcomer.ping_ms() >= 0
        assert await silent_old.closed()
        await silent_new.expect_silence()  # still connected, nothing unasked
        assert await talker.ping_ms() >= 0
        for client in (talker, silent_old, silent_new, newcomer):
            await client.close()
    finally:
        await server.shutdown()


async def test_silent_connections_are_closed_after_the_timeout(tmp_path: Path) -> None:
    server = await start(tmp_path, silent_connection_timeout=1.0)
    try:
        silent = await LineClient.connect(server.port)
        waiting = await LineClient.connect(server.port)
        await waiting.send({"type": "users"})  # a login screen that asked once
        assert (await waiting.recv())["type"] == "users"
        assert await silent.closed(timeout=5)
        assert await waiting.ping_ms() >= 0
        await waiting.close()
        await silent.close()
    finally:
        await server.shutdown()


async def test_an_endless_line_is_answered_then_cut_as_abuse(tmp_path: Path) -> None:
    server = await start(
        tmp_path, max_line_bytes=1024, abuse_line_bytes=64 * 1024, cut_off_grace_seconds=0.5
    )
    try:
        client = await LineClient.connect(server.port)
        await client.send_raw(b"a" * 2000)
        assert (await client.recv())["message"] == texts.LINE_TOO_LONG.format(limit=1024)
        with contextlib.suppress(ConnectionError):
            for _ in range(100):
                await client.send_raw(b"a" * 4096)
                await asyncio.sleep(0.001)
        # The client can read why, then the end of the stream, before the reset.
        assert await client.lines_until_closed() == [
            {"type": "error", "message": texts.CUT_OFF, "error": texts.CUT_OFF}
        ]
        await client.close()
    finally:
        await server.shutdown()


async def test_keepalive_is_on_for_client_sockets(server: ClassCordServer) -> None:
    client = await LineClient.connect(server.port)
    await client.send({"type": "ping"})
    await client.recv()
    (connection,) = server.connections
    assert connection.transport is not None
    sock = connection.transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    await client.close()


async def test_shutdown_notifies_everyone_then_closes(tmp_path: Path) -> None:
    server = await start(tmp_path)
    anonymous = await LineClient.connect(server.port)
    alice = await LineClient.connect(server.port)
    await alice.account("alice")
    await anonymous.send({"type": "ping"})
    await anonymous.recv()
    await server.shutdown()
    for client in (anonymous, alice):
        notice = await client.recv()
        assert notice["type"] == "message"
        assert notice["from"] == "Serveur"
        assert notice["content"] == texts.SHUTDOWN_NOTICE
        assert await client.closed()
        await client.close()


async def test_messages_survive_a_restart_in_history(tmp_path: Path) -> None:
    server = await start(tmp_path)
    alice = await LineClient.connect(server.port)
    await alice.account("alice")
    await alice.send({"type": "message", "content": "gardé"})
    await alice.send({"type": "ping"})
    await alice.recv_type("pong")
    await server.shutdown()
    await alice.close()
    again = await start(tmp_path)
    try:
        assert again.accounts.is_registered("alice")
        assert again.storage.storage.count_messages() == 1
    finally:
        await again.shutdown()


async def test_health_checks_stay_out_of_the_info_log(
    server: ClassCordServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "classcord.server")
    probe = await LineClient.connect(server.port)
    await probe.send({"type": "ping"})
    await probe.recv()
    await probe.close()
    person = await LineClient.connect(server.port)
    await person.send({"type": "users"})
    await person.recv()
    await person.close()
    for _ in range(100):
        if not server.connections:
            break
        await asyncio.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [line.split(":")[0] for line in lines] == ["open", "close"]
    assert all("conn=2 " in line for line in lines)
