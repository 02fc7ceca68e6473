"""One load-generator client: cheap to run, because it counts instead of parsing.

During the handshake a client reads whole lines (a handful). After it, it only
counts markers in the bytes it receives: benchmark messages, ``pong`` and ``error``
lines. A marker split across two reads is still counted once (a few bytes are
carried over). Probe clients also read the send timestamp inside each benchmark
message to measure latency; the others never look inside a line.

What the bytes look like is a ``Dialect``: ClassCord's JSON lines are defined here;
IRC, for the C daemons measured beside ClassCord, is ``classcord.bench.irc``. Both
carry the same ``~b~<sender> <seq> <send time>~`` payload, so latency and delivery
counts are computed by the same code for every server.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from classcord.bench.stats import Histogram

# A benchmark message: "~b~<sender> <seq> <send time, monotonic microseconds>~".
MESSAGE_MARK: Final = b"~b~"
PONG_MARK: Final = b'"type": "pong"'
ERROR_MARK: Final = b'"type": "error"'
PROBE_PATTERN: Final = re.compile(rb"~b~\d+ \d+ (\d+)~")
MESSAGE_LINE: Final = b'{"type": "message", "subtype": "global", "content": "~b~%d %d %d~"}\n'
PING_LINE: Final = b'{"type": "ping"}\n'
MAX_HANDSHAKE_LINE: Final = 4 * 1024 * 1024
TCP_STATE_ESTABLISHED: Final = 1
# What each counted marker stands for.
DELIVERY: Final = "delivery"
PONG: Final = "pong"
ERROR: Final = "error"
SERVER_PING: Final = "server-ping"  # the server asks for a PONG (IRC)


def now_us() -> int:
    return time.monotonic_ns() // 1000


def message_line(sender: int, seq: int, sent_us: int) -> bytes:
    return MESSAGE_LINE % (sender, seq, sent_us)


class HandshakeError(Exception):
    pass


@dataclass(frozen=True)
class Dialect:
    """How one family of servers is spoken to, as far as the benchmark needs."""

    name: str
    # (marker, DELIVERY | PONG | ERROR | SERVER_PING): counted in every read.
    marks: tuple[tuple[bytes, str], ...]
    message_format: bytes  # % (sender, seq, send time in µs): one benchmark message
    ping_line: bytes  # asks the server for a pong (the settle phase's round trip)
    pong_line: bytes  # the answer to a server's own ping
    # Identify a connected client: (client, auth mode, password, timeout seconds).
    handshake: Callable[[BenchClient, str, str, float], Awaitable[None]]
    # Ask for the list of who is online; the number of names listed.
    roster: Callable[[BenchClient, float], Awaitable[int]]
    # What an observer receives when ``name`` (a guest when True) is dropped.
    departure: Callable[[str, bool], bytes]

    def message_line(self, sender: int, seq: int, sent_us: int) -> bytes:
        return self.message_format % (sender, seq, sent_us)

    @property
    def carry_bytes(self) -> int:
        return max(len(mark) for mark, _ in self.marks) - 1


class LatencyBook:
    """Where probe clients put their samples: one histogram per phase label."""

    def __init__(self) -> None:
        self.label = "main"
        self.hists: dict[str, Histogram] = {"main": Histogram()}
        self.current = self.hists["main"]
        self.last_rx = 0.0
        self.first_rx = 0.0

    def switch(self, label: str) -> None:
        self.label = label
        self.current = self.hists.setdefault(label, Histogram())


class BenchClient(asyncio.Protocol):
    def __init__(
        self,
        index: int,
        name: str,
        role: str,
        probe: bool,
        book: LatencyBook,
        dialect: Dialect | None = None,
    ) -> None:
        self.dialect = dialect or JSON_DIALECT
        self._carry_bytes = self.dialect.carry_bytes
        self.index = index
        self.name = name
        self.role = role
        self.probe = probe
        self.book = book
        self.transport: asyncio.Transport | None = None
        self.line_mode = True
        self._buffer = bytearray()
        self._lines: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._carry = b""
        self.delivered = 0
        self.pongs = 0
        self.errors = 0
        self.bytes_in = 0
        self.closed = False
        self.closed_at = 0.0
        self.close_reason = ""
        self.stalled_at = 0.0
        self.logged_in = False
        # IRC only: join the one room (ClassCord's clients are always all together).
        self.joins_room = True
        self.watch: bytes | None = None  # a byte string to spot once, e.g. a status line
        self.watch_found = 0.0
        self._watch_tail = b""

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.closed_at = time.monotonic()
        self.close_reason = type(exc).__name__ if exc else "eof"
        self._wake()

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self.line_mode:
            self._buffer += data
            if len(self._buffer) > MAX_HANDSHAKE_LINE:
                self.close_reason = "handshake line too long"
                self.abort()
                return
            while (newline := self._buffer.find(b"\n")) >= 0:
                self._lines.append(bytes(self._buffer[: newline + 1]))
                del self._buffer[: newline + 1]
            self._wake()
            return
        if self.watch is not None:
            self._look_for_watch(data)
        self._count(data)

    def _look_for_watch(self, data: bytes) -> None:
        assert self.watch is not None
        if (self._watch_tail + data).find(self.watch) >= 0:
            self.watch_found = time.monotonic()
            self.watch = None
        else:
            self._watch_tail = data[-(len(self.watch) - 1) :]

    def _count(self, data: bytes) -> None:
        carry_bytes = self._carry_bytes
        head = data[:carry_bytes]
        joined = self._carry + head
        delivered = pongs = errors = pings = 0
        for mark, meaning in self.dialect.marks:
            found = data.count(mark)
            if self._carry:
                # a marker that starts in the carried bytes and ends in this read
                found += joined.count(mark) - self._carry.count(mark) - head.count(mark)
            if not found:
                continue
            if meaning == DELIVERY:
                delivered += found
            elif meaning == PONG:
                pongs += found
            elif meaning == ERROR:
                errors += found
            else:
                pings += found
        self._carry = (
            data[-carry_bytes:] if len(data) >= carry_bytes else (self._carry + data)[-carry_bytes:]
        )
        if delivered:
            self.delivered += delivered
            book = self.book
            now = time.monotonic()
            book.last_rx = now
            if not book.first_rx:
                book.first_rx = now
            if self.probe:
                now_micro = int(now * 1_000_000)
                hist = book.current
                for match in PROBE_PATTERN.finditer(data):
                    hist.add(now_micro - int(match.group(1)))
        if pongs:
            self.pongs += pongs
            self._wake()
        if errors:
            self.errors += errors
        if pings:
            # An idle IRC client must answer, or the daemon drops it as timed out.
            self.write(self.dialect.pong_line * pings)

    # helpers

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    async def _wait(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            await asyncio.wait_for(self._waiter, seconds)
        finally:
            self._waiter = None

    async def read_line(self, seconds: float) -> bytes:
        deadline = time.monotonic() + seconds
        while not self._lines:
            if self.closed:
                raise HandshakeError(f"closed by server ({self.close_reason})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HandshakeError("timed out waiting for a reply")
            try:
                await self._wait(remaining)
            except TimeoutError:
                raise HandshakeError("timed out waiting for a reply") from None
        return self._lines.popleft()

    async def read_reply(self, seconds: float, types: tuple[str, ...]) -> dict[str, Any]:
        """The next line whose type is one of ``types`` (others skipped), or an error line."""
        while True:
            line = await self.read_line(seconds)
            try:
                obj = json.loads(line)
            except ValueError:
                raise HandshakeError(f"invalid JSON from server: {line[:80]!r}") from None
            if isinstance(obj, dict) and obj.get("type") in (*types, "error"):
                return obj

    def count_mode(self) -> None:
        """Stop reading lines; count markers from now on (leftovers counted too)."""
        self.line_mode = False
        rest = b"".join(self._lines) + bytes(self._buffer)
        self._lines.clear()
        self._buffer.clear()
        if rest:
            self._count(rest)

    def line_mode_on(self) -> None:
        self.line_mode = True
        self._carry = b""

    async def wait_pongs(self, target: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.pongs < target:
            remaining = deadline - time.monotonic()
            if self.closed or remaining <= 0:
                return False
            try:
                await self._wait(remaining)
            except TimeoutError:
                return False
        return True

    def stall(self) -> None:
        """Stop reading: the kernel buffers fill, then the server's send queue does."""
        if self.transport is not None:
            self.transport.pause_reading()
            self.stalled_at = time.monotonic()

    def tcp_state(self) -> int | None:
        """The socket's TCP state (1: established); None when unknown."""
        if self.transport is None:
            return None
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return None
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except OSError:
            return None
        return int(info[0])


async def open_client(
    client: BenchClient,
    host: str,
    port: int,
    *,
    auth: str,
    password: str,
    seconds: float,
    recv_buffer: int = 0,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Connect ``client`` and identify it in its dialect. ClassCord's ``auth`` modes:
    ``login`` (register first, "already exists" is fine), ``login-only``,
    ``register`` (only), ``guest`` (an empty announce message) or ``none``."""
    loop = asyncio.get_running_loop()
    if recv_buffer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), seconds)
        except BaseException:
            sock.close()
            raise
        await loop.create_connection(
            lambda: client, sock=sock, ssl=tls, server_hostname=host if tls else None
        )
    else:
        await asyncio.wait_for(
            loop.create_connection(
                lambda: client, host, port, ssl=tls, server_hostname=host if tls else None
            ),
            seconds,
        )
    await client.dialect.handshake(client, auth, password, seconds)
    client.count_mode()


async def json_handshake(client: BenchClient, auth: str, password: str, seconds: float) -> None:
    """ClassCord's identification, by ``auth`` mode (see ``open_client``)."""
    name = client.name
    if auth in ("login", "login-only", "register"):
        if auth in ("login", "register"):
            client.write(_line({"type": "register", "username": name, "password": password}))
            reply = await client.read_reply(seconds, ("register",))
            if reply.get("type") == "error" and "already exists" not in str(reply.get("message")):
                raise HandshakeError(f"register refused: {reply.get('message')}")
            if auth == "register":
                return
        client.write(_line({"type": "login", "username": name, "password": password}))
        reply = await client.read_reply(seconds, ("login",))
        if reply.get("status") != "ok":
            raise HandshakeError(f"login refused: {reply.get('message')}")
        client.logged_in = True
    elif auth == "guest":
        announce = {"type": "message", "subtype": "global", "content": "", "from": name}
        client.write(_line(announce) + PING_LINE)
        await client.read_reply(seconds, ("pong",))
        client.logged_in = True
    elif auth != "none":
        raise ValueError(f"unknown auth mode {auth!r}")


async def json_roster(client: BenchClient, seconds: float) -> int:
    """A ``users`` request; the number of names in its reply."""
    client.write(_line({"type": "users"}))
    reply = await client.read_reply(seconds, ("users",))
    users = reply.get("users")
    if not isinstance(users, list):
        raise HandshakeError(f"no users list in the reply: {str(reply)[:80]}")
    return len(users)


def json_departure(name: str, guest: bool) -> bytes:
    """The ``offline`` status line of a dropped client (a guest's has no user name
    the observer can know in advance)."""
    if guest:
        return b'"state": "offline"'
    return f'"user": "{name}", "state": "offline"'.encode()


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj) + "\n").encode("utf-8")


JSON_DIALECT: Final = Dialect(
    name="json",
    marks=((MESSAGE_MARK, DELIVERY), (PONG_MARK, PONG), (ERROR_MARK, ERROR)),
    message_format=MESSAGE_LINE,
    ping_line=PING_LINE,
    pong_line=b"",
    handshake=json_handshake,
    roster=json_roster,
    departure=json_departure,
)
