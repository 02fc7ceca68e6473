"""One connection to the server: requests out, and each reply matched to its request.

A task reads every line the server sends and shows it, except the reply a request
is waiting for (``quiet`` requests take their reply off the screen; errors are
always shown). The command loop awaits the reply of each request that has one, so
a piped script runs in order (``/login`` is answered before the next line is sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from classcord.client.console import Console
from classcord.client.display import error_line, pretty, unknown_line
from classcord.client.pacing import Pacer
from classcord.client.texts import NO_REPLY
from classcord.protocol import encode


@dataclass
class Waiter:
    """A reply the command loop waits for; ``then``, a second reply due right after
    it, is waited for from the same read (both can arrive in one segment)."""

    types: frozenset[str]
    future: asyncio.Future[dict[str, Any] | None]
    quiet: bool
    then: Waiter | None = None


class ServerLink:
    """The line connection to one server, for the chat client. ``show`` displays a
    line from the server that no request took."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        console: Console,
        timeout: float,
        show: Callable[[dict[str, Any]], None],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._console = console
        self._timeout = timeout
        self._show = show
        self.pacer = Pacer(20.0, 60)
        self.closed = asyncio.Event()
        # Set once the server answered hello: it then answers ping too.
        self.extensions = False
        # Set when we are leaving: a read error is then not worth showing.
        self.quitting = False
        self._waiter: Waiter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader_task = asyncio.get_running_loop().create_task(self._read_server())

    # server -> screen

    async def _read_server(self) -> None:
        try:
            while line := await self._reader.readline():
                self._on_line(line)
        except (ConnectionError, ValueError) as exc:  # ValueError: line over the read limit
            if not self.quitting:
                self._console.show(error_line(str(exc)))
        finally:
            self.closed.set()
            self._settle(None)

    def _settle(self, reply: dict[str, Any] | None) -> bool:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.future.done():
            return False
        waiter.future.set_result(reply)
        if waiter.then is not None:
            if reply is not None and reply.get("type") != "error":
                self._waiter = waiter.then
            else:
                waiter.then.future.set_result(None)
        return waiter.quiet and (reply is None or reply.get("type") != "error")

    def _on_line(self, line: bytes) -> None:
        try:
            obj = json.loads(line)
        except ValueError:
            self._console.show(pretty(line))
            return
        if not isinstance(obj, dict):
            self._console.show(unknown_line(obj))
            return
        quiet = False
        waiter = self._waiter
        if waiter is not None and obj.get("type") in waiter.types:
            quiet = self._settle(obj)
        if not quiet:
            self._show(obj)

    # screen -> server

    async def send(self, payload: dict[str, Any]) -> bool:
        """Send one request, paced under the server's rate; False if the connection
        is gone."""
        if self.closed.is_set():
            return False
        delay = self.pacer.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            self._writer.write(encode(payload))
            await self._writer.drain()
        except ConnectionError:
            return False
        return True

    async def ask(
        self,
        payload: dict[str, Any],
        types: Iterable[str],
        quiet: bool = False,
        timeout: float | None = None,
        then: Waiter | None = None,
    ) -> dict[str, Any] | None:
        """Send a request and wait for its reply or an error line. None: no reply."""
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._waiter = Waiter(frozenset(types) | {"error"}, future, quiet, then)
        if not await self.send(payload):
            self._settle(None)
        return await self.wait(future, timeout)

    async def wait(
        self, future: asyncio.Future[dict[str, Any] | None], timeout: float | None = None
    ) -> dict[str, Any] | None:
        """A reply, or None after ``timeout`` (by default the link's own, and then
        the user is told the server did not answer)."""
        limit = self._timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            if self._waiter is not None and self._waiter.future is future:
                self._waiter = None
            if not self.closed.is_set() and timeout is None:
                self._console.show(error_line(NO_REPLY.format(timeout=limit)))
            return None

    def follow_up(self, types: Iterable[str]) -> Waiter:
        """A second reply to wait for after a request's own (``then``)."""
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        return Waiter(frozenset(types) | {"error"}, future, quiet=True)

    async def request(
        self,
        payload: dict[str, Any],
        types: Iterable[str],
        quiet: bool = False,
        then: Waiter | None = None,
    ) -> dict[str, Any] | None:
        """Like ``ask``, after a ping: an error line still due for an earlier message
        (unknown recipient...) is shown before, never taken for this reply."""
        await self.barrier()
        return await self.ask(payload, types, quiet, then=then)

    async def barrier(self) -> None:
        """Wait until the server has answered everything sent so far (if it can say)."""
        if self.extensions:
            await self.ask({"type": "ping"}, {"pong"}, quiet=True)

    def address(self) -> str:
        peer = self._writer.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return "?"

    async def close(self) -> None:
        self.quitting = True
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
