"""The one asyncio line client of the tests, speaking the wire protocol as bytes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

DEFAULT_TIMEOUT = 5.0


class LineClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1", **kwargs: Any) -> LineClient:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22, **kwargs)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, obj: dict[str, Any], ending: bytes = b"\n") -> None:
        await self.send_raw(json.dumps(obj).encode("utf-8") + ending)

    async def recv_raw(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise ConnectionError("server closed the connection")
        return line

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next line, which must be ASCII JSON (every line the server sends is)."""
        line = await self.recv_raw(timeout)
        assert line.endswith(b"\n")
        line.decode("ascii")  # output must be pure ASCII
        obj = json.loads(line)
        assert isinstance(obj, dict)
        return obj

    async def recv_type(self, kind: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Skip lines of other types (presence, notices) until one of ``kind``."""
        while True:
            obj = await self.recv(timeout)
            if obj.get("type") == kind:
                return obj

    async def expect_silence(self, duration: float = 0.3) -> None:
        try:
            line = await asyncio.wait_for(self.reader.readline(), duration)
        except TimeoutError:
            return
        raise AssertionError(f"expected no line, got {line!r}")

    async def lines_until_closed(self, timeout: float = 10.0) -> list[dict[str, Any]] | None:
        """Every line until the server closes; None if it has not closed in time."""
        lines: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while line := await self.reader.readline():
                    lines.append(json.loads(line))
        except TimeoutError:
            return None
        except ConnectionResetError:
            pass
        return lines

    async def ping_ms(self, timeout: float = DEFAULT_TIMEOUT) -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self.send({"type": "ping"})
        await self.recv_type("pong", timeout)
        return (loop.time() - start) * 1000

    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True once the server has closed the connection (draining what is left)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except (ConnectionError, TimeoutError):
            return False
        return True

    async def register(self, name: str, password: str = "secret") -> dict[str, Any]:
        await self.send({"type": "register", "username": name, "password": password})
        return await self.recv()

    async def login(self, name: str, password: str = "secret") -> dict[str, Any]:
        await self.send({"type": "login", "username": name, "password": password})
        return await self.recv()

    async def account(self, name: str, password: str = "secret") -> None:
        assert (await self.register(name, password))["status"] == "ok"
        assert (await self.login(name, password))["status"] == "ok"

    async def sign_in(self, name: str, password: str = "secret") -> None:
        """Register (or find the account already there), then log in."""
        reply = await self.register(name, password)
        assert reply.get("status") == "ok" or "already exists" in reply.get("message", ""), reply
        reply = await self.login(name, password)
        assert reply == {"type": "login", "status": "ok", "username": name}, reply

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
