"""The asyncio adapter: bytes between transports and sessions, timers, shutdown.

The server builds none of its collaborators: ``cli.py`` composes storage, accounts,
history, hub and server, and starts the admin socket. Reading goes through the
request driver (``driver.py``), the same one the tests drive.

Writes are coalesced: ``send`` only queues bytes and marks the connection dirty;
once per event-loop pass every dirty connection gets one ``transport.write``. A
client whose unsent bytes pass ``send_queue_bytes`` is cut off alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import resource
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

from classcord import texts
from classcord.accounts import Accounts
from classcord.config import Settings
from classcord.driver import RequestDriver
from classcord.errors import SettingsError
from classcord.history import History
from classcord.hub import Hub
from classcord.moderation_service import ModerationService
from classcord.protocol import LineFramer, encode, error_reply
from classcord.session import Session
from classcord.storage import StorageWorker

if TYPE_CHECKING:
    from classcord.tls import TlsEndpoint

log = logging.getLogger("classcord.server")

# The messages-per-second figure of `admin stats`: one sample a second, a minute kept.
RATE_SAMPLE_SECONDS = 1.0
RATE_SAMPLES_KEPT = 61
LINGER_RESET = struct.pack("ii", 1, 0)


# No backlog in the kernel's way: queue freely until the next flush looks again.
_NO_LIMIT: Final = float("inf")


class WriteScheduler:
    """Flushes every connection that has queued bytes: once per loop pass, or, with
    ``delay`` seconds, that long after the first line queued (each write system call
    then carries several lines, which is most of the cost of a delivery)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float = 0.0,
        before_flush: Callable[[], None] = lambda: None,
    ) -> None:
        self._loop = loop
        self._delay = delay
        self._before_flush = before_flush  # the hub's pending fan-out
        self._dirty: list[Connection] = []
        self._scheduled = False

    def mark(self, connection: Connection) -> None:
        self._dirty.append(connection)
        self.request()

    def request(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            if self._delay:
                self._loop.call_later(self._delay, self.flush)
            else:
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        # Still scheduled while the hub hands out its pending lines: their marks
        # join this flush instead of asking for another.
        try:
            self._before_flush()
        finally:
            dirty, self._dirty = self._dirty, []
            self._scheduled = False
            for connection in dirty:
                connection.flush()


class Connection(asyncio.Protocol):
    # Slots: one per client, so its size is the server's memory per idle client.
    __slots__ = (
        "_address",
        "_announced",
        "_backlog",
        "_close_reason",
        "_closed",
        "_conn_id",
        "_dirty",
        "_early",
        "_out",
        "_out_bytes",
        "_room",
        "_write_paused",
        "admitted",
        "bytes_received",
        "driver",
        "opened_at",
        "server",
        "session",
        "transport",
    )

    def __init__(self, server: ClassCordServer, conn_id: int) -> None:
        self.server = server
        self._conn_id = conn_id
        self._address = "?"
        self.transport: asyncio.Transport | None = None
        settings = server.settings
        self.session = Session(self, server.hub, server.accounts, settings, server.moderation)
        self.driver = RequestDriver(
            self.session,
            self,
            LineFramer(settings.max_line_bytes, settings.abuse_line_bytes),
            after_request=self._after_request,
        )
        self._out: list[bytes | memoryview] = []
        self._out_bytes = 0
        self._backlog = 0
        self._room = _NO_LIMIT  # bytes that may be queued before the backlog is checked
        self._dirty = False
        self._write_paused = False
        self._closed = False
        self._close_reason = "client closed the connection"
        self.admitted = False
        self._announced = False
        self.opened_at = time.monotonic()
        self.bytes_received = 0
        self._early: list[bytes] | None = None  # only on the TLS port, rarely

    # Peer interface used by the session

    @property
    def conn_id(self) -> int:
        return self._conn_id

    @property
    def address(self) -> str:
        return self._address

    def queued_bytes(self) -> int:
        return self._out_bytes + self._transport_backlog()

    @property
    def tls_port(self) -> int | None:
        """The TLS port to point this client to: None when it is on it already."""
        if self.transport is not None and self.transport.get_extra_info("sslcontext"):
            return None
        return self.server.tls.port if self.server.tls is not None else None

    # Reader interface used by the driver

    @property
    def closed(self) -> bool:
        return self._closed or self.transport is None

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def _transport_backlog(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def send(self, data: bytes | memoryview) -> None:
        # The hot path of every delivery: one test against the room left.
        if self._closed:
            return
        self._out.append(data)
        self._out_bytes += len(data)
        if self._out_bytes > self._room:
            self._check_room()
        if not self._dirty:
            self._dirty = True
            self.server.writer.mark(self)

    def _check_room(self) -> None:
        """Past the room seen at the last flush: the backlog may have drained since,
        and only a client the kernel still refuses bytes to is behind. A burst queued
        within one loop pass for a client that keeps up is not a stalled reader."""
        self._set_room()
        if self._out_bytes > self._room:
            self.abort(f"send queue full ({self._out_bytes + self._backlog} bytes unsent)")

    def _set_room(self) -> None:
        self._backlog = self._transport_backlog()
        limit = self.server.settings.send_queue_bytes
        self._room = limit - self._backlog if self._backlog else _NO_LIMIT

    def flush(self) -> None:
        self._dirty = False
        if self._closed or self.transport is None or not self._out:
            return
        if self._write_paused:
            return  # resume_writing marks it again
        out = self._out
        if len(out) == 1 and len(out[0]) <= self.server.settings.write_chunk_bytes:
            data = out[0]
            out.clear()
            self._out_bytes = 0
            self.transport.write(data)
        else:
            self._write_chunks()
        self._set_room()
        # What waits here while the kernel is full counts too: a burst of one pass
        # to a client that reads nothing is cut off now, not at its next line.
        unsent = self._backlog + self._out_bytes
        if unsent > self.server.settings.send_queue_bytes:
            self.abort(f"send queue full ({unsent} bytes unsent)")

    def _write_chunks(self) -> None:
        """Hand the socket at most a chunk at a time, and stop once the kernel's
        buffer is full (the transport then pauses us): what is left stays queued as
        references to the fan-out's shared blocks, one copy for every client behind,
        instead of a copy in each transport."""
        assert self.transport is not None
        chunk = self.server.settings.write_chunk_bytes
        out = self._out
        taken = 0
        while taken < len(out) and not self._write_paused:
            size = 0
            end = taken
            while end < len(out) and (end == taken or size + len(out[end]) <= chunk):
                size += len(out[end])
                end += 1
            data: bytes | memoryview
            if end - taken == 1:
                data = out[taken]
                if len(data) > chunk:
                    view = memoryview(data)
                    data, out[taken] = view[:chunk], view[chunk:]
                    end = taken  # the rest of this line stays first in the queue
                    size = chunk
            else:
                data = b"".join(out[taken:end])
            taken = end
            self._out_bytes -= size
            self.transport.write(data)
        del out[:taken]

    def pause_writing(self) -> None:
        # asyncio calls it when the kernel took less than was written (the limits
        # set in connection_made make any leftover count).
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._out and not self._dirty:
            self._dirty = True
            self.server.writer.mark(self)

    def _write_all(self) -> None:
        """Everything queued, whatever the kernel's buffer: before a close."""
        self._write_paused = False
        if self._out and self.transport is not None:
            self.transport.write(b"".join(self._out))
            self._out.clear()
            self._out_bytes = 0

    @property
    def silent(self) -> bool:
        """Connected, and never sent a single byte."""
        return self.bytes_received == 0 and not self._closed

    def cut_off(self, reason: str) -> None:
        """Abuse: what is queued goes out, then a line that says why, then the end of
        the stream; the reset that frees the socket comes after a short grace, so the
        client can read it all (an immediate close with unread input is a bare reset)."""
        if self._closed or self.transport is None:
            return
        self._log_limit(reason)
        self._close_reason = reason
        self.session.release_before_close()
        self._out.append(encode(error_reply(texts.CUT_OFF)))
        self._write_all()
        self._closed = True
        transport = self.transport
        transport.pause_reading()
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(
            self.server.settings.cut_off_grace_seconds, self._reset
        )

    def _reset(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._reset_on_close()
            self.transport.abort()

    def _reset_on_close(self) -> None:
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is not None:
            # Linger 0 makes the close a reset: without it the kernel keeps the socket
            # in FIN-WAIT-1 with up to its whole send buffer (megabytes) for a client
            # that reads nothing.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)

    def close(self, reason: str) -> None:
        """Flush what is queued, then close."""
        if self._closed or self.transport is None:
            return
        self.session.release_before_close()
        self._write_all()
        self._close_reason = reason
        self._closed = True
        self.transport.close()

    def _log_limit(self, reason: str) -> None:
        log.warning(
            "limit: conn=%d addr=%s user=%s closed: %s",
            self._conn_id,
            self._address,
            self.session.name or "-",
            reason,
        )

    def abort(self, reason: str) -> None:
        """Cut the connection now, discarding what is unsent (a stalled reader)."""
        if self._closed or self.transport is None:
            return
        self._log_limit(reason)
        self._close_reason = reason
        self._closed = True
        self._out.clear()
        self._reset_on_close()
        self.transport.abort()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self._address = str(peer[0]) if isinstance(peer, tuple) else "local"
        refusal = self.server.admit(self)
        if refusal is not None:
            log.warning("refused: conn=%d addr=%s: %s", self._conn_id, self._address, refusal)
            transport.write(encode(error_reply(refusal)))
            self._close_reason = "refused"
            self._closed = True
            transport.close()
            return
        self.admitted = True
        # Paused as soon as anything is left in the transport (see _write_chunks),
        # resumed once it is empty. Not high=0: the TLS transport pauses at a size
        # >= its mark, so 0 would pause it after every write, empty or not.
        transport.set_write_buffer_limits(high=1, low=0)
        sock = transport.get_extra_info("socket")
        if sock is not None and self.server.settings.tcp_keepalive:
            _enable_keepalive(sock, self.server.settings)
        early, self._early = self._early, None
        for data in early or ():
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            # On the TLS port, data can arrive with the end of the handshake, before
            # the acceptor hands the transport over: keep it for connection_made.
            if self._early is None:
                self._early = []
            self._early.append(data)
            return
        if not self._closed:
            self.bytes_received += len(data)
            self.driver.feed(data)

    def eof_received(self) -> bool:
        # Half-close (`nc -N`, a script that writes then shuts down its side): the
        # requests sent before the FIN are still answered, then the driver closes.
        if self._closed:
            return False
        self.driver.end_of_input()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.driver.cancel()
        if exc is not None and self._close_reason == "client closed the connection":
            self._close_reason = f"connection error: {exc}"
        if not self.admitted:
            return
        self.server.release(self)
        # A container health check every 10 s would otherwise write two lines each time.
        level = logging.DEBUG if self.session.only_pinged else logging.INFO
        if level == logging.INFO:
            self._announce()
        log.log(
            level,
            "close: conn=%d addr=%s user=%s reason=%s",
            self._conn_id,
            self._address,
            self.session.name or "-",
            self._close_reason,
        )

    def _announce(self) -> None:
        """The 'open' line, at the first request that is not a ping."""
        if not self._announced:
            self._announced = True
            log.info("open: conn=%d addr=%s", self._conn_id, self._address)

    def _after_request(self) -> None:
        if self.session.requests > self.session.pings:
            self._announce()


def _enable_keepalive(sock: socket.socket, settings: Settings) -> None:
    # Dead peers (a PC switched off mid-lesson) are found without an idle timeout,
    # which real clients would hit while waiting at their login screen.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, settings.keepalive_idle_seconds
            )
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, settings.keepalive_interval_seconds
            )
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, settings.keepalive_probes)


def raise_open_file_limit() -> int:
    """Lift the soft descriptor limit to the hard one; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


class Closable(Protocol):
    def close(self) -> None: ...


class ClassCordServer:
    """Owns the listening socket and every connection; closes its collaborators at
    shutdown, in order."""

    def __init__(
        self,
        settings: Settings,
        storage: StorageWorker,
        accounts: Accounts,
        history: History,
        hub: Hub,
        moderation: ModerationService,
        tls: TlsEndpoint | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.accounts = accounts
        self.history = history
        self.hub = hub
        self.moderation = moderation
        self.connections: set[Connection] = set()
        self.per_address: Counter[str] = Counter()
        self.writer: WriteScheduler
        self.port = settings.port
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = asyncio.Event()
        self._all_released = asyncio.Event()
        self._shutdown_task: asyncio.Task[None] | None = None
        self._shutting_down = False
        self._listeners: list[Closable] = []
        self.tls = tls
        self._rate_samples: deque[tuple[float, int]] = deque(maxlen=RATE_SAMPLES_KEPT)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.writer = WriteScheduler(
            loop, self.settings.write_coalesce_ms / 1000, before_flush=self.hub.flush_pending
        )
        self.hub.schedule_flush = self.writer.request
        await self.accounts.load()
        await self.moderation.load()
        await self._prune()
        limit = raise_open_file_limit()
        if limit < self.settings.max_connections + 64:
            log.warning(
                "open file limit %d is below max_connections %d: raise it (ulimit -n)",
                limit,
                self.settings.max_connections,
            )
        settings = self.settings
        if not settings.tls_only:
            self._server = await loop.create_server(
                self.new_connection,
                settings.host,
                settings.port,
                reuse_address=True,
                backlog=1024,
            )
            sockets = self._server.sockets
            self.port = sockets[0].getsockname()[1] if sockets else settings.port
        if self.tls is not None:
            try:
                await self.tls.start(settings.host, settings.tls_port, self.new_connection)
            except BaseException:
                if self._server is not None:
                    self._server.close()
                raise
            self.close_at_shutdown(self.tls)
            if settings.tls_only:
                self.port = self.tls.port or settings.tls_port
        self._tasks = [
            loop.create_task(self._flush_history_forever()),
            loop.create_task(self._prune_forever()),
            loop.create_task(self._sample_rates_forever()),
            loop.create_task(self._close_silent_forever()),
            loop.create_task(self.moderation.expire_forever()),
        ]

    def announce_ready(self) -> None:
        """The line scripts wait for: logged once everything answers, the admin
        socket included (``cli.start_server`` calls it last)."""
        settings = self.settings
        log.info(
            "listening on %s:%d%s (database %s, %d accounts)",
            settings.host,
            self.port,
            " with TLS only" if settings.tls_only else "",
            settings.database_path,
            self.accounts.registered_count(),
        )

    def reload_tls(self) -> str:
        """SIGHUP and ``admin reload-tls``: the certificate and key read again, the
        connections kept; SettingsError (the old certificate stays) on a mistake."""
        if self.tls is None:
            raise SettingsError("TLS is off: start with --tls-cert-file and --tls-key-file")
        return self.tls.reload()

    def new_connection(self) -> Connection:
        """A protocol for one accepted socket (the TLS listener hands its
        connections over after their handshake)."""
        return Connection(self, next(self._ids))

    def close_at_shutdown(self, listener: Closable) -> None:
        """Another listener (the admin socket) to stop with this server's own."""
        self._listeners.append(listener)

    def admit(self, connection: Connection) -> str | None:
        if self._shutting_down:
            return texts.SHUTDOWN_NOTICE
        if len(self.connections) >= self.settings.max_connections:
            return texts.SERVER_FULL
        if self.per_address[connection.address] >= self.settings.max_connections_per_address:
            # Behind NAT the address is the whole class: a newcomer takes the place of
            # the oldest connection of that address that never sent anything.
            silent = [c for c in self.connections if c.address == connection.address and c.silent]
            if not silent:
                return texts.TOO_MANY_FROM_ADDRESS
            oldest = min(silent, key=lambda c: c.opened_at)
            log.warning(
                "limit: conn=%d addr=%s closed: silent, its place taken by conn=%d"
                " (%d connections from this address)",
                oldest.conn_id,
                oldest.address,
                connection.conn_id,
                self.per_address[connection.address],
            )
            oldest.close("evicted: silent connection at the per-address limit")
            self.release(oldest)
        self.connections.add(connection)
        self.per_address[connection.address] += 1
        return None

    def release(self, connection: Connection) -> None:
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        self.per_address[connection.address] -= 1
        if self.per_address[connection.address] <= 0:
            del self.per_address[connection.address]
        connection.session.disconnected()
        if not self.connections:
            self._all_released.set()

    async def _flush_history_forever(self) -> None:
        # History.flush never raises and backs off by itself during an outage.
        interval = self.settings.history_flush_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self.history.flush()

    async def _prune(self) -> None:
        settings = self.settings
        deleted = await self.storage.call(
            self.storage.storage.prune,
            settings.history_retention_days,
            settings.history_max_messages,
            time.time(),
        )
        if deleted:
            log.info("retention: deleted %d old messages", deleted)
        self.accounts.forget_stale()

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.prune_interval_seconds)
            try:
                await self._prune()
            except Exception:
                log.exception("retention pass failed")

    async def _close_silent_forever(self) -> None:
        """Connections that never send a byte are closed after a generous time: real
        clients wait minutes at their login screen, leaked sockets wait forever."""
        timeout = self.settings.silent_connection_timeout
        while True:
            await asyncio.sleep(min(timeout / 4, 30.0))
            deadline = time.monotonic() - timeout
            for connection in [c for c in self.connections if c.silent]:
                if connection.opened_at < deadline:
                    connection.close(f"silent for {timeout:g} s")

    async def _sample_rates_forever(self) -> None:
        while True:
            self._rate_samples.append((time.monotonic(), self.hub.counters.messages))
            await asyncio.sleep(RATE_SAMPLE_SECONDS)

    def messages_per_second(self) -> float:
        """Average over the last minute of samples."""
        if len(self._rate_samples) < 2:
            return 0.0
        (first_time, first_count), (last_time, last_count) = (
            self._rate_samples[0],
            self._rate_samples[-1],
        )
        return round((last_count - first_count) / max(last_time - first_time, 1e-9), 2)

    def request_shutdown(self, why: str = "shutdown requested") -> None:
        """Safe to call from a signal handler, and more than once."""
        if self._shutting_down:
            return
        log.info("%s: stopping", why)
        self._shutdown_task = asyncio.get_running_loop().create_task(self.shutdown())

    async def shutdown(self) -> None:
        """Stop accepting, tell the clients, flush storage, close within the deadline."""
        if self._shutting_down:
            await self._closed.wait()
            return
        self._shutting_down = True
        if self._server is not None:
            self._server.close()
        for listener in self._listeners:
            listener.close()
        notified = 0
        for connection in list(self.connections):
            # Every connection, anonymous ones too: they are about to be closed.
            connection.session.notify(texts.SHUTDOWN_NOTICE)
            notified += 1
            connection.close("server shutdown")
        if self.connections:
            self._all_released.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_released.wait(), self.settings.shutdown_timeout)
        for connection in list(self.connections):
            connection.abort("shutdown deadline passed")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.hub.schedule_flush = None  # the loop that flushed it is going away
        flushed = await self._close_storage()
        self.accounts.close()
        log.info("stopped: %d clients notified, %d messages flushed", notified, flushed)
        self._closed.set()

    # Set when the database did not close in time: cli.serve then exits at once.
    storage_wedged: bool = False
    # Released after the database is closed (the data folder's lock).
    _held_until_closed: tuple[Closable, ...] = ()

    def hold_until_closed(self, held: Closable) -> None:
        self._held_until_closed = (*self._held_until_closed, held)

    async def _close_storage(self) -> int:
        """The last flush and the database close, within ``shutdown_storage_seconds``
        together, whatever the disk does; says what could not be written."""
        loop = asyncio.get_running_loop()
        bound = self.settings.shutdown_storage_seconds
        deadline = loop.time() + bound
        flushed = 0
        with contextlib.suppress(TimeoutError):
            flushed = await asyncio.wait_for(self.history.flush(force=True), bound)
        left = self.history.pending_count
        try:
            closed = await self.storage.close(max(0.05, deadline - loop.time()))
        except Exception as exc:
            log.error("shutdown: closing the database failed: %s", exc)
            closed = True
        if left:
            status = self.history.status()
            log.error(
                "shutdown: %d messages could not be written to %s and are lost (%s)",
                left,
                self.settings.database_path,
                status.last_error or f"the database did not answer within {bound:.1f} s",
            )
        if not closed:
            self.storage_wedged = True
            log.error(
                "shutdown: the database did not close within %.1f s; exiting without it",
                bound,
            )
        for held in self._held_until_closed:
            with contextlib.suppress(Exception):
                held.close()
        return flushed

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def stats(self) -> dict[str, Any]:
        counters = self.hub.counters
        return {
            "connections": len(self.connections),
            "addresses": len(self.per_address),
            "online_names": self.hub.online_count(),
            "messages": counters.messages,
            "messages_per_second": self.messages_per_second(),
            "private_messages": counters.private_messages,
            "deliveries": counters.deliveries,
            "queued_bytes": sum(c.queued_bytes() for c in self.connections),
            "largest_queue_bytes": max((c.queued_bytes() for c in self.connections), default=0),
            "accounts": self.accounts.registered_count(),
            "uptime_seconds": round(time.time() - self.hub.started_at, 1),
        }
