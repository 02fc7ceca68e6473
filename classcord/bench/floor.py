"""The memory floor of holding idle TCP clients in Python, without ClassCord.

``python3 -m classcord.bench.floor --clients 10000`` starts, one at a time, a child
interpreter that accepts ``--clients`` connections on 127.0.0.1 and holds them:

- ``interpreter``: no connections, the interpreter with asyncio imported;
- ``asyncio``: an ``asyncio.Protocol`` per connection that keeps its transport and
  does nothing else (what any asyncio server pays before its own objects);
- ``selectors``: the sockets registered in a bare ``selectors`` loop, no asyncio.

It prints each child's resident memory (``VmRSS``) once all are connected; the
difference to ClassCord's figure is ClassCord's own per-client state.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

from classcord.bench.procstat import raise_nofile_limit, sample

CHILD = r"""
import asyncio, selectors, socket, sys
kind, clients = sys.argv[1], int(sys.argv[2])
if kind == "selectors":
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    print(listener.getsockname()[1], flush=True)
    selector = selectors.DefaultSelector()
    held = []
    while len(held) < clients:
        conn, _ = listener.accept()
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ)
        held.append(conn)
    print("held", flush=True)
    sys.stdin.read()
else:
    class Idle(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
    async def main():
        loop = asyncio.get_running_loop()
        if kind == "interpreter":
            print(0, flush=True)
            print("held", flush=True)
        else:
            server = await loop.create_server(Idle, "127.0.0.1", 0, backlog=4096)
            print(server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
    asyncio.run(main())
"""

KINDS = ("interpreter", "asyncio", "selectors")


def measure(kind: str, clients: int) -> int:
    """The child's RSS in bytes while it holds ``clients`` connections."""
    raise_nofile_limit()  # inherited by the child: both ends of each connection
    sockets: list[socket.socket] = []
    with subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CHILD, kind, str(clients)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        try:
            port = int(child.stdout.readline())
            if kind != "interpreter":
                for _ in range(clients):
                    sockets.append(socket.create_connection(("127.0.0.1", port)))
            if kind == "selectors":
                child.stdout.readline()
            else:
                time.sleep(1.0)  # the loop accepts what the kernel queued
            reading = sample(child.pid)
            assert reading is not None, "the child is gone"
            return reading.rss_bytes
        finally:
            child.stdin.close()
            for sock in sockets:
                sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m classcord.bench.floor", description=__doc__)
    parser.add_argument("--clients", type=int, default=10_000)
    args = parser.parse_args(argv)
    where = f"{args.clients:,} idle connections; {Path(sys.executable)}"
    print(f"{'child':<12} {'RSS MB':>8}  ({where})")
    for kind in KINDS:
        print(f"{kind:<12} {measure(kind, args.clients) / 1e6:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
