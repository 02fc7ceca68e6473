"""A small asyncio line client for tests, speaking the wire protocol as bytes."""

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
    async def connect(cls, port: int, host: str = "127.0.0.1") -> LineClient:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
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

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
