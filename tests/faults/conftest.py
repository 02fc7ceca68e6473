"""Fault tests run the real ``python3 -m classcord`` process on 127.0.0.1 with a
temporary data folder, through the same spawner the benchmarks use."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from classcord.bench.procstat import sample
from classcord.bench.spawn import ServerProcess

# Cheap hashing: these tests are about faults, not about hashing cost.
FAST_FLAGS = ("--scrypt-n", "16", "--scrypt-r", "1")
MIB = 1024 * 1024

Spawn = Callable[..., ServerProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start servers (``spawn(*flags, port=0, data_dir=None)``); all stopped at the end."""
    started: list[ServerProcess] = []

    def start(*flags: str, port: int = 0, data_dir: Path | None = None) -> ServerProcess:
        folder = data_dir or tmp_path / "data"
        folder.mkdir(parents=True, exist_ok=True)
        server = ServerProcess(
            "classcord", port=port, data_dir=str(folder), extra_args=(*FAST_FLAGS, *flags)
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.kill()


def rss_mb(server: ServerProcess) -> float:
    reading = sample(server.pid)
    assert reading is not None, "server process is gone"
    return reading.rss_bytes / MIB


class RawClient:
    """A line client that also reports how the server ended the connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, **kwargs: Any) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22, **kwargs)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, obj: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(obj).encode() + b"\n")

    async def recv(self, seconds: float = 5.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), seconds)
        if not line:
            raise ConnectionError("closed by the server")
        line.decode("ascii")  # every line the server sends is ASCII...
        obj = json.loads(line)  # ...and JSON
        assert isinstance(obj, dict)
        return obj

    async def recv_type(self, kind: str, seconds: float = 5.0) -> dict[str, Any]:
        while True:
            obj = await self.recv(seconds)
            if obj.get("type") == kind:
                return obj

    async def lines_until_closed(self, seconds: float = 10.0) -> list[dict[str, Any]] | None:
        """Every line until the server closes; None if it has not closed in time."""
        lines: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(seconds):
                while line := await self.reader.readline():
                    lines.append(json.loads(line))
        except TimeoutError:
            return None
        except ConnectionResetError:
            pass
        return lines

    async def ping_ms(self, seconds: float = 5.0) -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await self.send({"type": "ping"})
        await self.recv_type("pong", seconds)
        return (loop.time() - start) * 1000

    async def login(self, name: str, password: str = "secret") -> None:
        await self.send({"type": "register", "username": name, "password": password})
        reply = await self.recv()
        assert reply.get("status") == "ok" or "already exists" in reply.get("message", ""), reply
        await self.send({"type": "login", "username": name, "password": password})
        reply = await self.recv()
        assert reply == {"type": "login", "status": "ok", "username": name}, reply

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
