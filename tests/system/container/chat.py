"""A blocking line client for the container tests: what a student's client does,
through the port Docker publishes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

TIMEOUT = 10.0

Message = dict[str, Any]


class ChatClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def send(self, obj: Message) -> None:
        self.sock.sendall(json.dumps(obj).encode("utf-8") + b"\n")

    def recv(self) -> Message:
        line = self.reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        return obj

    def recv_until(self, wanted: Callable[[Message], bool], timeout: float = TIMEOUT) -> Message:
        """Skip other lines (presence, notices) until one that ``wanted`` accepts."""
        deadline = time.monotonic() + timeout
        seen: list[Message] = []
        while time.monotonic() < deadline:
            obj = self.recv()
            if wanted(obj):
                return obj
            seen.append(obj)
        raise AssertionError(f"no wanted line within {timeout} s; got {seen}")

    def read_until_closed(self) -> list[Message]:
        """Every line up to the server closing the connection."""
        lines: list[Message] = []
        while True:
            try:
                lines.append(self.recv())
            except ConnectionError:
                return lines

    def register(self, name: str, password: str) -> Message:
        self.send({"type": "register", "username": name, "password": password})
        return self.recv()

    def login(self, name: str, password: str) -> Message:
        self.send({"type": "login", "username": name, "password": password})
        return self.recv()

    def account(self, name: str, password: str) -> None:
        assert self.register(name, password) == {"type": "register", "status": "ok"}
        reply = self.login(name, password)
        assert reply["type"] == "login", reply
        assert reply["status"] == "ok", reply

    def history(self) -> list[Message]:
        self.send({"type": "history"})
        reply = self.recv_until(lambda m: m.get("type") == "history")
        messages = reply["messages"]
        assert isinstance(messages, list)
        return messages


def ping(port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bool:
    try:
        with ChatClient(port, host, timeout) as client:
            client.send({"type": "ping"})
            return client.recv().get("type") == "pong"
    except (OSError, ValueError):
        return False


def wait_answering(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(port):
            return
        time.sleep(0.5)
    raise AssertionError(f"nothing answers ping on 127.0.0.1:{port} after {timeout} s")
