"""The request driver: one connection's bytes to its session, in order.

Shared by the server's ``Connection`` and the tests, so that what the tests drive is
what runs. Bytes are framed, each line goes to the session, and a handler that must
wait (hashing, the database) is awaited before the next line: while it runs, the
driver stops reading from that connection instead of buffering what it sends.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from classcord import texts
from classcord.errors import AbuseError, ClientError
from classcord.protocol import LINE_TOO_LONG, FrameEvent, LineFramer
from classcord.session import Pending, Session

log = logging.getLogger("classcord.driver")


class Reader(Protocol):
    """The reading side of a connection, as the driver controls it."""

    @property
    def closed(self) -> bool: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def abort(self, reason: str) -> None: ...


class RequestDriver:
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
        self._events: deque[FrameEvent] = deque()
        self._pending: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._pending is not None

    def feed(self, data: bytes) -> None:
        """Bytes as they arrive; AbuseError from the framer ends the connection."""
        try:
            self._events.extend(self._framer.feed(data))
        except AbuseError as exc:
            self._reader.abort(exc.reason)
            return
        self._process()

    def _process(self) -> None:
        session = self.session
        while self._events and self._pending is None and not self._reader.closed:
            event = self._events.popleft()
            try:
                if event is LINE_TOO_LONG:
                    session.line_too_long()
                    continue
                assert isinstance(event, bytes)
                waiting = session.receive_line(event)
                self._after_request()
            except AbuseError as exc:
                self._reader.abort(exc.reason)
                return
            except Exception:
                log.exception("bug while handling a request on conn=%d", session.peer.conn_id)
                session.error(texts.INTERNAL_ERROR)
                continue
            if waiting is not None:
                self._pending = asyncio.get_running_loop().create_task(self._wait(waiting))
        if self._pending is not None and self._events:
            # Lines keep their order: stop reading until the slow handler is done.
            self._reader.pause_reading()

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
        if not self._reader.closed:
            self._reader.resume_reading()
            self._process()

    async def idle(self) -> None:
        """Until every line fed so far has been handled (for tests and shutdown)."""
        while self._pending is not None:
            await asyncio.wait({self._pending})

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
