"""The baseline: the architecture of the classroom's original reference server.

Written for measurement only, so that every ClassCord number can be read as a ratio
against this one measured in the same run. It keeps the reference's design on
purpose: one thread per client, a global lock held while a broadcast loops over
every client with a blocking ``sendall``, and a ``print`` per event. It speaks just
enough of the protocol for the benchmarks (register, login, guests, global
messages, ping, users) and fixes none of the reference's flaws except two that would
spoil a measurement: every write takes the lock (so lines never interleave), and the
listening socket sets SO_REUSEADDR (so runs can follow each other).
Never deploy it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import socket
import threading
from typing import Any, Final

RECV_BYTES: Final = 1024  # the reference read 1 KiB at a time
LISTEN_BACKLOG: Final = 128


class BaselineServer:
    def __init__(self, host: str, port: int) -> None:
        self.lock = threading.Lock()
        self.clients: dict[socket.socket, str] = {}  # socket -> name, "" until identified
        self.users: dict[str, str] = {}  # plain text passwords, as the reference had
        self.listener = socket.create_server((host, port), backlog=LISTEN_BACKLOG)

    def serve_forever(self) -> None:
        host, port = self.listener.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        while True:
            conn, addr = self.listener.accept()
            print(f"[+] connexion de {addr}")
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def send(self, conn: socket.socket, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")
        with self.lock:
            conn.sendall(data)

    def broadcast(self, sender: socket.socket, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")
        with self.lock:
            for conn, name in list(self.clients.items()):
                if conn is not sender and name:
                    with contextlib.suppress(OSError):
                        conn.sendall(data)

    def handle(self, conn: socket.socket) -> None:
        with self.lock:
            self.clients[conn] = ""
        buffer = b""
        try:
            while True:
                data = conn.recv(RECV_BYTES)
                if not data:
                    break
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self.handle_line(conn, json.loads(line))
        except (OSError, ValueError) as exc:
            print(f"[!] erreur: {exc}")
        finally:
            with self.lock:
                name = self.clients.pop(conn, "")
            conn.close()
            print(f"[-] déconnexion de {name or '?'}")
            if name:
                self.broadcast(conn, {"type": "status", "user": name, "state": "offline"})

    def handle_line(self, conn: socket.socket, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        print(f"[>] {kind} {msg.get('username') or msg.get('from') or ''}")
        if kind == "register":
            username, password = msg["username"], msg["password"]
            if username in self.users:
                self.send(conn, {"type": "error", "message": "Username already exists."})
            else:
                self.users[username] = password
                self.send(conn, {"type": "register", "status": "ok"})
        elif kind == "login":
            username = msg["username"]
            if self.users.get(username) != msg["password"]:
                self.send(conn, {"type": "error", "message": "Login failed."})
                return
            self.send(conn, {"type": "login", "status": "ok", "username": username})
            with self.lock:
                self.clients[conn] = username
            self.broadcast(conn, {"type": "status", "user": username, "state": "online"})
        elif kind == "message":
            with self.lock:
                name = self.clients.get(conn, "")
                if not name:
                    name = msg.get("from") or "invité"
                    self.clients[conn] = name
            if msg.get("content"):
                out = dict(msg)
                out["from"] = name
                out["timestamp"] = datetime.datetime.now().isoformat()
                print(f"[MSG] {name}: {out['content']}")
                self.broadcast(conn, out)
        elif kind == "users":
            with self.lock:
                names = [name for name in self.clients.values() if name]
            self.send(conn, {"type": "users", "users": names})
        elif kind == "ping":
            self.send(conn, {"type": "pong"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="classcord bench baseline-server",
        description="Thread-per-client baseline server (measurement device only).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12346)
    args = parser.parse_args(argv)
    server = BaselineServer(args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
