"""A real ClassCord client for the classroom lab, run inside a namespace:

    ip netns exec LAB-slam python3 tests/system/lab/chat_client.py HOST PORT --user alice --peer bob

Two connections from the same machine, as two students would: both register and
log in, the first sends a global message and the second must receive it with the
right ``from``. Prints one JSON line: {"ok": true, ...} or {"ok": false, "stage":
..., "error": ...} where error is refused, timeout, unreachable, closed or protocol.
Standard library only: it runs with whatever python3 the namespace has.
"""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import sys
import time
from typing import Any


class Failure(Exception):
    def __init__(self, stage: str, error: str, detail: str = "") -> None:
        super().__init__(f"{stage}: {error} {detail}")
        self.stage = stage
        self.error = error
        self.detail = detail


class Client:
    def __init__(self, host: str, port: int, timeout: float, name: str) -> None:
        self.name = name
        self.timeout = timeout
        self.buffer = b""
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError as exc:
            raise Failure("connect", "refused", str(exc)) from exc
        except TimeoutError as exc:
            raise Failure("connect", "timeout", str(exc)) from exc
        except OSError as exc:
            raise Failure("connect", "unreachable", str(exc)) from exc

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def read(self, stage: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure(stage, "timeout", f"{self.name}: no line")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError as exc:
                raise Failure(stage, "timeout", f"{self.name}: no line") from exc
            except ConnectionResetError as exc:
                raise Failure(stage, "closed", f"{self.name}: reset") from exc
            if not chunk:
                raise Failure(stage, "closed", f"{self.name}: connection closed")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise Failure(stage, "protocol", f"not JSON: {line[:80]!r}") from exc
        if not isinstance(message, dict):
            raise Failure(stage, "protocol", f"not an object: {line[:80]!r}")
        return message

    def wait_for(self, stage: str, wanted: dict[str, Any]) -> dict[str, Any]:
        """Read lines until one has every key/value of ``wanted`` (others are skipped)."""
        while True:
            message = self.read(stage)
            if all(message.get(k) == v for k, v in wanted.items()):
                return message

    def register_and_login(self, password: str) -> None:
        self.send({"type": "register", "username": self.name, "password": password})
        reply = self.read("register")
        if reply.get("type") == "error" and "already exists" not in str(reply.get("message")):
            raise Failure("register", "protocol", json.dumps(reply))
        self.send({"type": "login", "username": self.name, "password": password})
        reply = self.read("login")
        if reply.get("type") != "login" or reply.get("status") != "ok":
            raise Failure("login", "protocol", json.dumps(reply))

    def close(self) -> None:
        self.sock.close()


def chat(host: str, port: int, user: str, peer: str, timeout: float) -> dict[str, Any]:
    password = "mot-de-passe-" + user
    alice = Client(host, port, timeout, user)
    try:
        alice.register_and_login(password)
        bob = Client(host, port, timeout, peer)
        try:
            bob.register_and_login("mot-de-passe-" + peer)
            content = f"Bonjour depuis le labo {secrets.token_hex(4)}"
            alice.send({"type": "message", "subtype": "global", "content": content})
            got = bob.wait_for("message", {"type": "message", "content": content})
            if got.get("from") != user:
                raise Failure("message", "protocol", json.dumps(got))
            bob.send({"type": "message", "subtype": "private", "to": user, "content": "merci"})
            alice.wait_for("private", {"type": "message", "content": "merci", "from": peer})
        finally:
            bob.close()
    finally:
        alice.close()
    return {"ok": True, "host": host, "port": port, "user": user, "peer": peer}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--user", default="alice")
    parser.add_argument("--peer", default="bob")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    try:
        result = chat(args.host, args.port, args.user, args.peer, args.timeout)
    except Failure as exc:
        result = {"ok": False, "stage": exc.stage, "error": exc.error, "detail": exc.detail}
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
