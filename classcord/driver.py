"""The request driver: one connection's bytes to its session, in order.

Shared by the server's ``Connection`` and the tests, so that what the tests drive is
what runs. Bytes wait unframed in the framer; lines are taken one at a time, so no
line is framed before the session is ready for it:

- a handler that must wait (hashing, the database) is awaited before the next line;
  meanwhile at most ``pending_input_bytes`` wait, then reading stops;
- at most ``lines_per_turn`` lines are handled before other connections get the
  loop back, so one flooding connection cannot hold it;
- at the end of input (a half-close, ``nc -N``), every request received before it
  is answered, then the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from classcord import texts
from classcord.errors import AbuseError, ClientError
from classcord.protocol import LINE_TOO_LONG, LineFramer
from classcord.session import Pending, Session

log = logging.getLogger("classcord.driver")


class Reader(Protocol):
    """The reading side of a connection, as the driver controls it."""

    @property
    def closed(self) -> bool: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self, reason: str) -> None:
        """Flush what is queued, then close."""

    def cut_off(self, reason: str) -> None:
        """Abuse: the replies queued so far and the reason go out, then the end."""


class RequestDriver:
    __slots__ = (
        "_after_request",
        "_end_of_input",
        "_framer",
        "_lines_per_turn",
        "_paused",
        "_pending",
        "_pending_input_bytes",
        "_reader",
        "_turn_scheduled",
        "session",
    )

    def __init__(
        self,
        session: Session,
        reader: Reader,
        framer: LineFramer,
        after_request: Callable[[], None] = lambda: None,
    ) -> None:
        self.session = session
        self._reader = reader
        self._framer = framer
        self._after_request = after_request
        self._pending: asyncio.Task[None] | None = None
        self._paused = False
        self._turn_scheduled = False
        self._end_of_input = False
        settings = session.settings
        self._pending_input_bytes = settings.pending_input_bytes
        self._lines_per_turn = settings.lines_per_turn

    @property
    def busy(self) -> bool:
        return self._pending is not None or self._turn_scheduled

    def feed(self, data: bytes) -> None:
        """Bytes as they arrive; endless input (AbuseError) ends the connection."""
        try:
            self._framer.push(data)
        except AbuseError as exc:
            self._reader.cut_off(exc.reason)
            return
        if not self._turn_scheduled:
            self._process()

    def end_of_input(self) -> None:
        """The client half-closed: answer what it sent, then close."""
        self._end_of_input = True
        self._framer.finish()
        if not self._turn_scheduled:
            self._process()

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._reader.pause_reading()

    def _resume(self) -> None:
        if self._paused and not self._reader.closed:
            self._paused = False
            self._reader.resume_reading()

    def _next_turn(self) -> None:
        self._turn_scheduled = False
        if not self._reader.closed:
            self._process()

    def _process(self) -> None:
        session = self.session
        handled = 0
        while self._pending is None and not self._reader.closed:
            if handled >= self._lines_per_turn:
                # Fairness: let the other connections have the loop, then go on.
                self._pause()
                self._turn_scheduled = True
                asyncio.get_running_loop().call_soon(self._next_turn)
                return
            event = self._framer.next_event()
            if event is None:
                break
            handled += 1
            try:
                if event is LINE_TOO_LONG:
                    session.line_too_long()
                    continue
                assert isinstance(event, bytes)
                waiting = session.receive_line(event)
                self._after_request()
            except AbuseError as exc:
                self._reader.cut_off(exc.reason)
                return
            except Exception:
                log.exception("bug while handling a request on conn=%d", session.peer.conn_id)
                session.error(texts.INTERNAL_ERROR)
                continue
            if waiting is not None:
                self._pending = asyncio.get_running_loop().create_task(self._wait(waiting))
        if self._reader.closed:
            return
        if self._pending is not None:
            if self._framer.buffered > self._pending_input_bytes:
                # Lines keep their order: stop reading until the slow handler is done.
                self._pause()
            return
        self._resume()
        if self._end_of_input:
            self._reader.close("client finished sending (half-close)")

    async def _wait(self, waiting: Pending) -> None:
        try:
            await waiting
        except ClientError as exc:
            self.session.error(exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("bug while handling a request on conn=%d", self.session.peer.conn_id)
            self.session.error(texts.INTERNAL_ERROR)
        finally:
            self._pending = None
        if not self._reader.closed and not self._turn_scheduled:
            self._process()

    async def idle(self) -> None:
        """Until every line fed so far has been handled (for tests and shutdown)."""
        while self.busy:
            if self._pending is not None:
                await asyncio.wait({self._pending})
            else:
                await asyncio.sleep(0)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
