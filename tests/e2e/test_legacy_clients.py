"""One emulated client per real client behaviour in PROTOCOL-COMPAT.md, against the
real server process. Lines are compared byte for byte (timestamps normalised), so
any change to what a legacy client sees fails here."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import LineClient
from tests.support.process import ServerProcess

TIMESTAMP = re.compile(rb'"timestamp": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})"')
ANY_TIME = b'"timestamp": "<T>"'


def normalised(line: bytes) -> bytes:
    assert TIMESTAMP.search(line) or b'"timestamp"' not in line, line
    return TIMESTAMP.sub(ANY_TIME, line)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path_factory.mktemp("legacy") / "data").start()
    yield running
    running.terminate()


def unique(prefix: str) -> str:
    return f"{prefix}{time.monotonic_ns() % 10**9}"


class SyncClient:
    """Client families A and C: a blocking socket and readLine() right after a request."""

    def __init__(self, port: int, encoding: str = "utf-8", newline: bytes = b"\r\n") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")
        self.encoding = encoding
        self.newline = newline

    def request(self, obj: dict[str, str]) -> bytes:
        self.write(obj)
        return self.reader.readline()

    def write(self, obj: dict[str, str]) -> None:
        # Java's org.json writes raw non-ASCII; the platform charset encodes it.
        text = json.dumps(obj, ensure_ascii=False)
        self.sock.sendall(text.encode(self.encoding) + self.newline)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


async def test_a_and_c_read_their_login_reply_synchronously_during_a_flood(
    server: ServerProcess,
) -> None:
    """Nothing may reach a connection before its own reply, even mid-conversation."""
    chatter = await LineClient.connect(server.port)
    await chatter.send({"type": "message", "content": "", "from": unique("flood")})
    stop = threading.Event()
    failures: list[bytes] = []

    def legacy_client(n: int) -> None:
        name = unique(f"sync{n}_")
        client = SyncClient(server.port)
        try:
            reply = client.request({"type": "register", "username": name, "password": "pw"})
            if reply != b'{"type": "register", "status": "ok"}\n':
                failures.append(reply)
            reply = client.request({"type": "login", "username": name, "password": "pw"})
            if reply != b'{"type": "login", "status": "ok", "username": "%s"}\n' % name.encode():
                failures.append(reply)
        finally:
            client.close()

    async def flood() -> None:
        while not stop.is_set():
            await chatter.send({"type": "message", "content": "bruit"})
            await asyncio.sleep(0.002)

    flooding = asyncio.ensure_future(flood())
    threads = [threading.Thread(target=legacy_client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(lambda: [thread.join(30) for thread in threads])
    stop.set()
    await flooding
    await chatter.close()
    assert failures == []


async def test_crlf_and_cp1252_writer_is_read_and_answered_in_ascii(server: ServerProcess) -> None:
    reader = await LineClient.connect(server.port)
    listener = unique("lecteur")
    await reader.send({"type": "message", "content": "", "from": listener})
    await reader.send({"type": "ping"})
    await reader.recv_type("pong")
    writer = SyncClient(server.port, encoding="cp1252", newline=b"\r\n")
    writer.write({"type": "message", "subtype": "global", "content": "déjà vu, 10 €"})
    line = await reader.recv_raw()
    while b'"type": "status"' in line:
        line = await reader.recv_raw()
    assert (
        normalised(line)
        == (
            b'{"type": "message", "subtype": "global", "from": "invit\\u00e9", '
            b'"content": "d\\u00e9j\\u00e0 vu, 10 \\u20ac", "timestamp": "<T>"}\n'
        )
        or b'"from": "invit\\u00e9_' in line
    )
    writer.close()
    await reader.close()


async def test_c_guests_without_from_get_distinct_invite_names(server: ServerProcess) -> None:
    first = await LineClient.connect(server.port)
    second = await LineClient.connect(server.port)
    for client in (first, second):
        await client.send({"type": "message", "subtype": "global", "content": "salut"})
        await client.send({"type": "ping"})
        await client.recv_type("pong")
    await first.send({"type": "users"})
    users = (await first.recv_type("users"))["users"]
    guests = [name for name in users if name.startswith("invité")]
    assert len(guests) == len(set(guests)) >= 2
    await first.close()
    await second.close()


async def test_b1_empty_announce_makes_a_guest_without_a_broadcast(server: ServerProcess) -> None:
    watcher = await LineClient.connect(server.port)
    await watcher.send({"type": "message", "content": "", "from": unique("guet")})
    await watcher.send({"type": "ping"})
    await watcher.recv_type("pong")
    nickname = unique("Annonce")
    announcer = await LineClient.connect(server.port)
    await announcer.send({"type": "message", "subtype": "global", "content": "", "from": nickname})
    status = await watcher.recv_raw()
    assert status == b'{"type": "status", "user": "%s", "state": "online"}\n' % nickname.encode()
    await watcher.expect_silence()  # the empty content itself is never shown
    await announcer.send({"type": "users"})
    assert nickname in (await announcer.recv())["users"]
    await announcer.close()
    await watcher.close()


async def test_b2_repeats_its_nickname_in_every_from(server: ServerProcess) -> None:
    watcher = await LineClient.connect(server.port)
    await watcher.send({"type": "message", "content": "", "from": unique("obs")})
    nickname = f"Invité{time.monotonic_ns() % 10000}"
    b2 = await LineClient.connect(server.port)
    for text in ("un", "deux"):
        await b2.send({"type": "message", "subtype": "global", "from": nickname, "content": text})
    messages = [await watcher.recv_type("message") for _ in range(2)]
    assert {m["from"] for m in messages} == {nickname}
    await b2.close()
    await watcher.close()


async def test_b3_registers_a_guest_account_and_retries_on_already_exists(
    server: ServerProcess,
) -> None:
    name = f"Invité_zoe_{int(time.time() * 1000)}"
    client = await LineClient.connect(server.port)
    assert (await client.register(name, "guest123"))["status"] == "ok"
    again = await client.register(name, "guest123")
    assert "already exists" in again["message"]
    assert again["error"] == again["message"]
    assert await client.login(name, "guest123") == {
        "type": "login",
        "status": "ok",
        "username": name,
    }
    await client.close()


async def test_b_private_messages_keep_to_exactly_and_strict_string_lists(
    server: ServerProcess,
) -> None:
    alice_name, bob_name = unique("alice"), unique("bob")
    alice = await LineClient.connect(server.port)
    bob = await LineClient.connect(server.port)
    await alice.account(alice_name)
    await bob.account(bob_name)
    await bob.send({"type": "users"})
    users_line = await bob.recv_raw()
    users = json.loads(users_line)["users"]
    assert all(type(name) is str for name in users)
    await alice.send(
        {"type": "message", "subtype": "private", "to": bob_name, "content": "psst", "from": "faux"}
    )
    line = await bob.recv_raw()
    assert normalised(line) == (
        b'{"type": "message", "subtype": "private", "from": "%s", "content": "psst", '
        b'"timestamp": "<T>", "to": "%s"}\n' % (alice_name.encode(), bob_name.encode())
    )
    await alice.close()
    await bob.close()


async def test_status_with_user_field_and_c_online_right_after_login(
    server: ServerProcess,
) -> None:
    watcher_name, c_name = unique("w"), unique("c")
    watcher = await LineClient.connect(server.port)
    await watcher.account(watcher_name)
    c = await LineClient.connect(server.port)
    await c.account(c_name)
    await c.send({"type": "status", "state": "online"})
    await c.send({"type": "status", "user": "quelquun", "state": "dnd"})
    lines = [await watcher.recv_raw() for _ in range(3)]
    c_bytes = c_name.encode()
    assert lines == [
        b'{"type": "status", "user": "%s", "state": "online"}\n' % c_bytes,
        b'{"type": "status", "user": "%s", "state": "online"}\n' % c_bytes,
        b'{"type": "status", "user": "%s", "state": "dnd"}\n' % c_bytes,
    ]
    await c.expect_silence()  # no echo of one's own status
    await c.close()
    await watcher.close()


async def test_users_polling_before_login_gets_one_reply_each(server: ServerProcess) -> None:
    poller = await LineClient.connect(server.port)
    for _ in range(20):
        await poller.send({"type": "users"})
        reply = json.loads(await poller.recv_raw())
        assert reply["type"] == "users"
        assert isinstance(reply["users"], list)
    await poller.expect_silence()
    await poller.close()


async def test_a_reads_the_error_field_and_bad_lines_never_close(server: ServerProcess) -> None:
    client = await LineClient.connect(server.port)
    for bad in (b"{oops\n", b"\n", b"[]\r\n", b'{"type":"login"}\n', b"\x00\xff\xfe\n"):
        await client.send_raw(bad)
        if bad.strip():
            reply = await client.recv()
            assert reply["type"] == "error"
            assert reply["error"] == reply["message"]
    await client.send({"type": "ping"})
    assert await client.recv_raw() == b'{"type": "pong"}\n'
    await client.close()


def test_the_reference_login_failure_text_is_kept_word_for_word(server: ServerProcess) -> None:
    client = SyncClient(server.port)
    reply = client.request({"type": "login", "username": "nobody_here", "password": "x"})
    assert reply == b'{"type": "error", "message": "Login failed.", "error": "Login failed."}\n'
    client.close()


def test_every_line_sent_in_this_module_was_logged_without_passwords(
    server: ServerProcess,
) -> None:
    assert "guest123" not in server.log
    assert not Path(server.data_path / "users.pkl").exists()
