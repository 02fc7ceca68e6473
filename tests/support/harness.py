"""Ring 2 harness: real sessions, hub, accounts and storage, driven by the server's
own request driver; a recording peer instead of a socket."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from classcord.accounts import Accounts
from classcord.config import Settings
from classcord.driver import RequestDriver
from classcord.history import History
from classcord.hub import Hub
from classcord.moderation_service import ModerationService
from classcord.protocol import LineFramer
from classcord.session import Session
from classcord.storage import Storage, StorageWorker
from tests.conftest import make_settings

_ids = itertools.count(1)

TIMESTAMP = "2025-06-20T14:52:43.123456"


class RecordingPeer:
    """The connection side of a session (``Peer``) and of its driver (``Reader``)."""

    def __init__(
        self, address: str = "10.0.2.2", end_pass: Callable[[], None] = lambda: None
    ) -> None:
        self._conn_id = next(_ids)
        self._end_pass = end_pass  # the hub's pending fan-out, as the event loop's pass end
        self._address = address
        self.sent: list[bytes] = []
        self.closed_reason: str | None = None
        self.aborted_reason: str | None = None
        self.paused = False

    @property
    def conn_id(self) -> int:
        return self._conn_id

    @property
    def address(self) -> str:
        return self._address

    @property
    def closed(self) -> bool:
        return self.closed_reason is not None or self.aborted_reason is not None

    def send(self, data: bytes | memoryview) -> None:
        assert self.closed_reason is None, "sent after close"
        self.sent.append(bytes(data))

    def close(self, reason: str) -> None:
        self.closed_reason = reason

    def cut_off(self, reason: str) -> None:
        self.aborted_reason = reason

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def queued_bytes(self) -> int:
        return 0

    @property
    def tls_port(self) -> int | None:
        return None

    def take(self) -> list[dict[str, Any]]:
        """Every line sent since the last call, decoded (the pass ends first)."""
        self._end_pass()
        lines = [json.loads(data) for data in b"".join(self.sent).splitlines()]
        self.sent.clear()
        return lines


class Harness:
    def __init__(self, tmp: Path, **changes: Any) -> None:
        self.settings: Settings = make_settings(tmp / "data", **changes)
        self.storage = StorageWorker(Storage(self.settings.database_path))
        self.clock_now = 1000.0
        self.accounts = Accounts(self.settings, self.storage, clock=self.clock)
        self.history = History(self.storage)
        self.hub = Hub(self.settings, self.accounts, self.history, timestamp=self.timestamp)
        # Fan-outs wait for the pass to end, as under the server's event loop: they
        # are handed out when a test reads what a peer got.
        self.hub.schedule_flush = lambda: None
        # Its own clock (Unix seconds, moved by the tests), as ModerationState expects.
        self.wall_now = 1_800_000_000.0
        self.moderation = ModerationService(
            self.settings,
            self.hub,
            self.accounts,
            self.history,
            self.storage,
            clock=lambda: self.wall_now,
            tz=UTC,
        )
        self.drivers: dict[Session, RequestDriver] = {}

    def clock(self) -> float:
        return self.clock_now

    @staticmethod
    def timestamp() -> str:
        return TIMESTAMP

    def connect(self, address: str = "10.0.2.2") -> tuple[Session, RecordingPeer]:
        peer = RecordingPeer(address, self.hub.flush_pending)
        session = Session(
            peer,
            self.hub,
            self.accounts,
            self.settings,
            self.moderation,
            clock=self.clock,
        )
        framer = LineFramer(self.settings.max_line_bytes, self.settings.abuse_line_bytes)
        self.drivers[session] = RequestDriver(session, peer, framer)
        return session, peer

    def disconnect(self, session: Session) -> None:
        self.drivers.pop(session).cancel()
        session.disconnected()

    async def feed(self, session: Session, data: bytes) -> None:
        """Bytes as the connection hands them over; returns once all are handled."""
        driver = self.drivers[session]
        driver.feed(data)
        await driver.idle()

    async def send(self, session: Session, obj: dict[str, Any]) -> None:
        await self.feed(session, json.dumps(obj).encode() + b"\n")

    async def user(self, name: str, password: str = "pw") -> tuple[Session, RecordingPeer]:
        session, peer = self.connect()
        await self.send(session, {"type": "register", "username": name, "password": password})
        await self.send(session, {"type": "login", "username": name, "password": password})
        replies = peer.take()
        assert replies[:2] == [
            {"type": "register", "status": "ok"},
            {"type": "login", "status": "ok", "username": name},
        ], replies
        return session, peer

    async def close(self) -> None:
        await self.history.flush()
        await self.storage.close()
        self.accounts.close()
