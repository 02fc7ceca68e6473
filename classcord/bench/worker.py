"""A load-generator worker process: one asyncio loop driving a share of the clients.

It reads one JSON command per line on stdin and answers on stdout with the same
``id``; between answers it reports progress every ``PROGRESS_INTERVAL`` seconds.
Run by the orchestrator as ``python -m classcord.bench.worker SETUP_JSON``; not meant
for people.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from classcord.bench.client import (
    JSON_DIALECT,
    TCP_STATE_ESTABLISHED,
    BenchClient,
    Dialect,
    HandshakeError,
    LatencyBook,
    now_us,
    open_client,
)
from classcord.bench.irc import IRC_DIALECT
from classcord.bench.procstat import raise_nofile_limit
from classcord.bench.stats import Histogram

PROGRESS_INTERVAL: Final = 0.25
COMMAND_LINE_LIMIT: Final = 64 * 1024 * 1024
FLOOD_BATCH: Final = 64  # unpaced senders write this many messages a tick...
FLOOD_HIGH_WATER: Final = 256 * 1024  # ...while less than this is waiting to be sent
STALL_POLL: Final = 0.05
MAX_ERROR_SAMPLES: Final = 5
DIALECTS: Final = {d.name: d for d in (JSON_DIALECT, IRC_DIALECT)}

Json = dict[str, Any]


def emit(obj: Json) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def client_tls(cafile: str | None) -> ssl.SSLContext | None:
    """The clients' context for the TLS step: the server's throwaway certificate is
    verified like a real one (its IP address included)."""
    if not cafile:
        return None
    return ssl.create_default_context(cafile=cafile)


class Worker:
    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        prefix: str,
        tls: ssl.SSLContext | None = None,
        dialect: Dialect = JSON_DIALECT,
    ) -> None:
        self.dialect = dialect
        self.host = host
        self.port = port
        self.tls = tls
        self.password = password
        self.prefix = prefix
        self.book = LatencyBook()
        self.clients: dict[int, BenchClient] = {}
        self.retired = {"delivered": 0, "errors": 0}  # from soak clients already gone
        self.sent = 0
        self.sending = False
        self.loop_lag = Histogram()
        self.handshake = Histogram()
        self.connect_failures = 0
        self.error_samples: list[str] = []
        self.stalled: list[BenchClient] = []
        self.stall_closed: dict[int, float] = {}
        self.watching: list[BenchClient] = []

    # bookkeeping

    def name(self, index: int) -> str:
        return f"{self.prefix}{index}"

    def note_error(self, text: str) -> None:
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(text)

    def tally(self) -> Json:
        by_role: dict[str, dict[str, int]] = {}
        open_count = logged_in = 0
        for client in self.clients.values():
            row = by_role.setdefault(client.role, {"delivered": 0, "errors": 0, "closed": 0})
            row["delivered"] += client.delivered
            row["errors"] += client.errors
            row["closed"] += client.closed
            open_count += not client.closed
            logged_in += client.logged_in and not client.closed
        return {
            "open": open_count,
            "logged_in": logged_in,
            "sent": self.sent,
            "roles": by_role,
            "retired": self.retired,
            "connect_failures": self.connect_failures,
        }

    async def progress_loop(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            emit({"event": "progress", **self.tally()})

    # commands

    async def cmd_connect(self, cmd: Json) -> Json:
        """Open and identify clients, at most ``concurrency`` handshakes at once."""
        roles: dict[str, list[int]] = cmd["roles"]
        probes = set(cmd.get("probes", []))
        gate = asyncio.Semaphore(int(cmd.get("concurrency", 200)))
        timeout = float(cmd.get("timeout", 60.0))
        started = time.monotonic()
        handshake = Histogram()
        errors_before = len(self.error_samples)

        async def one(index: int, role: str) -> bool:
            client = BenchClient(
                index, self.name(index), role, index in probes, self.book, self.dialect
            )
            client.joins_room = bool(cmd.get("room", True))
            async with gate:
                begin = now_us()
                try:
                    await open_client(
                        client,
                        self.host,
                        self.port,
                        auth=cmd.get("auth", "login"),
                        password=self.password,
                        seconds=timeout,
                        recv_buffer=int(cmd.get("recv_buffer", 0)) if role == "staller" else 0,
                        tls=self.tls,
                    )
                except (OSError, TimeoutError, HandshakeError) as exc:
                    self.connect_failures += 1
                    self.note_error(f"{client.name}: {type(exc).__name__}: {exc}")
                    client.abort()
                    return False
                handshake.add(now_us() - begin)
            self.clients[index] = client
            return True

        jobs = [one(i, role) for role, indices in roles.items() for i in indices]
        results = await asyncio.gather(*jobs)
        self.handshake.merge(handshake)
        return {
            "ok": sum(results),
            "failed": len(results) - sum(results),
            "seconds": time.monotonic() - started,
            "handshake": handshake.to_json(),
            "error_samples": self.error_samples[errors_before:],
        }

    async def cmd_settle(self, cmd: Json) -> Json:
        """Ping every open client and wait for each pong: the server has caught up."""
        timeout = float(cmd.get("timeout", 60.0))
        alive = [c for c in self.clients.values() if not c.closed and c.role != "staller"]
        targets = [c.pongs + 1 for c in alive]
        for client in alive:
            client.write(self.dialect.ping_line)
        results = await asyncio.gather(
            *(c.wait_pongs(t, timeout) for c, t in zip(alive, targets, strict=True))
        )
        return {"ok": sum(results), "failed": len(results) - sum(results)}

    async def cmd_send(self, cmd: Json) -> Json:
        """Paced global messages from ``senders`` (``rate`` each a second; 0: unpaced)."""
        senders = [self.clients[i] for i in cmd["senders"] if i in self.clients]
        rate = float(cmd["rate"])
        tick = float(cmd.get("tick", 0.005))
        start_at = float(cmd["start_at"])
        end_at = start_at + float(cmd["duration"])
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        count = len(senders) or 1
        message_line = self.dialect.message_line
        offsets = [k / count / rate if rate > 0 else 0.0 for k in range(len(senders))]
        sent = [0] * len(senders)
        self.sending = True
        expected_tick = time.monotonic()
        while self.sending:
            now = time.monotonic()
            self.loop_lag.add(int((now - expected_tick) * 1_000_000))
            if now >= end_at:
                break
            stamp = int(now * 1_000_000)
            elapsed = now - start_at
            for k, client in enumerate(senders):
                if client.closed:
                    continue
                if rate > 0:
                    todo = int((elapsed + offsets[k]) * rate) + 1 - sent[k]
                else:
                    assert client.transport is not None
                    full = client.transport.get_write_buffer_size() >= FLOOD_HIGH_WATER
                    todo = 0 if full else FLOOD_BATCH
                if todo > 0:
                    first = sent[k]
                    client.write(
                        b"".join(message_line(client.index, first + j, stamp) for j in range(todo))
                    )
                    sent[k] += todo
                    self.sent += todo
            expected_tick = time.monotonic() + tick
            await asyncio.sleep(tick)
        self.sending = False
        return {
            "sent": sum(sent),
            "per_sender": {str(c.index): n for c, n in zip(senders, sent, strict=True)},
            "ended": time.monotonic(),
        }

    async def cmd_stop_send(self, cmd: Json) -> Json:
        self.sending = False
        return {}

    async def cmd_mark(self, cmd: Json) -> Json:
        self.book.switch(str(cmd["label"]))
        return {}

    async def cmd_stall(self, cmd: Json) -> Json:
        """Stop reading on the given clients and watch for the server closing them."""
        for index in cmd["clients"]:
            client = self.clients.get(index)
            if client is not None:
                client.stall()
                self.stalled.append(client)
        asyncio.get_running_loop().create_task(self._watch_stalled())
        return {"stalled": len(self.stalled)}

    async def _watch_stalled(self) -> None:
        while any(c.index not in self.stall_closed for c in self.stalled):
            for client in self.stalled:
                if client.index in self.stall_closed:
                    continue
                state = client.tcp_state()
                if client.closed or state != TCP_STATE_ESTABLISHED:
                    self.stall_closed[client.index] = time.monotonic() - client.stalled_at
            await asyncio.sleep(STALL_POLL)

    async def cmd_watch(self, cmd: Json) -> Json:
        """Have one client note when it first sees ``departed`` (a name) dropped."""
        client = self.clients[int(cmd["client"])]
        client.watch = self.dialect.departure(str(cmd["departed"]), bool(cmd.get("guest")))
        client.watch_found = 0.0
        self.watching.append(client)
        return {}

    async def cmd_roster(self, cmd: Json) -> Json:
        """Time one client's request for the list of who is online."""
        client = self.clients[int(cmd["client"])]
        client.line_mode_on()
        begin = time.monotonic()
        try:
            names = await self.dialect.roster(client, float(cmd.get("timeout", 30.0)))
        except HandshakeError as exc:
            return {"ok": False, "error": str(exc)}
        finally:
            client.count_mode()
        elapsed = time.monotonic() - begin
        return {"ok": True, "ms": round(elapsed * 1000, 2), "lengths": {"users": names}}

    async def cmd_soak(self, cmd: Json) -> Json:
        """Clients that connect, chat for a random lifetime, leave, and are replaced."""
        pool: list[int] = cmd["indices"]
        concurrent = int(cmd["concurrent"])
        deadline = time.monotonic() + float(cmd["duration"])
        life_min, life_max = float(cmd["life_min"]), float(cmd["life_max"])
        rate = float(cmd["rate"])
        guest_share = float(cmd.get("guest_share", 0.5))
        timeout = float(cmd.get("timeout", 30.0))
        rng = random.Random(int(cmd.get("seed", 0)))  # noqa: S311 - load pattern, not crypto
        sessions = [0]

        async def slot(slot_no: int) -> None:
            mine = pool[slot_no::concurrent] or [pool[slot_no % len(pool)]]
            turn = 0
            while time.monotonic() < deadline:
                index = mine[turn % len(mine)]
                turn += 1
                guest = rng.random() < guest_share
                name = self.name(index) + ("g" if guest else "")
                client = BenchClient(index, name, "chat", True, self.book, self.dialect)
                begin = now_us()
                try:
                    await open_client(
                        client,
                        self.host,
                        self.port,
                        auth="guest" if guest else "login",
                        password=self.password,
                        seconds=timeout,
                        tls=self.tls,
                    )
                except (OSError, TimeoutError, HandshakeError) as exc:
                    self.connect_failures += 1
                    self.note_error(f"{name}: {type(exc).__name__}: {exc}")
                    client.abort()
                    await asyncio.sleep(1.0)
                    continue
                self.handshake.add(now_us() - begin)
                sessions[0] += 1
                self.clients[-1 - slot_no] = client  # visible to progress while alive
                life_end = min(deadline, time.monotonic() + rng.uniform(life_min, life_max))
                seq = 0
                while time.monotonic() < life_end and not client.closed:
                    client.write(self.dialect.message_line(index, seq, now_us()))
                    seq += 1
                    self.sent += 1
                    await asyncio.sleep(rng.expovariate(rate) if rate > 0 else 1.0)
                client.close()
                self.retired["delivered"] += client.delivered
                self.retired["errors"] += client.errors
                client.delivered = client.errors = 0

        await asyncio.gather(*(slot(k) for k in range(concurrent)))
        return {"sessions": sessions[0]}

    async def cmd_stats(self, cmd: Json) -> Json:
        return {
            **self.tally(),
            "latency": {label: h.to_json() for label, h in self.book.hists.items()},
            "handshake": self.handshake.to_json(),
            "loop_lag": self.loop_lag.to_json(),
            "first_rx": self.book.first_rx,
            "last_rx": self.book.last_rx,
            "stall_closed": {str(k): v for k, v in self.stall_closed.items()},
            "stalled_at": {str(c.index): c.stalled_at for c in self.stalled},
            "watch_found": {str(c.index): c.watch_found for c in self.watching},
            "error_samples": self.error_samples,
            "close_reasons": _close_reasons(self.clients.values()),
        }

    async def cmd_reset(self, cmd: Json) -> Json:
        """Forget latencies and delivery times before a new measured step."""
        self.book.hists = {}
        self.book.switch(str(cmd.get("label", "main")))
        self.book.first_rx = self.book.last_rx = 0.0
        self.loop_lag = Histogram()
        return {}

    async def cmd_alive(self, cmd: Json) -> Json:
        role = cmd.get("role")
        return {
            "indices": [
                c.index for c in self.clients.values() if not c.closed and role in (None, c.role)
            ]
        }

    async def cmd_drop(self, cmd: Json) -> Json:
        """Close and forget the clients of one role."""
        gone = [i for i, c in self.clients.items() if c.role == cmd["role"]]
        for index in gone:
            self.clients.pop(index).close()
        await asyncio.sleep(0)
        return {"dropped": len(gone)}

    async def cmd_close(self, cmd: Json) -> Json:
        for client in self.clients.values():
            client.close()
        await asyncio.sleep(0.1)
        return {}


def _close_reasons(clients: Any) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for client in clients:
        if client.closed:
            reasons[client.close_reason] = reasons.get(client.close_reason, 0) + 1
    return reasons


COMMANDS: Final[dict[str, Callable[[Worker, Json], Awaitable[Json]]]] = {
    "connect": Worker.cmd_connect,
    "settle": Worker.cmd_settle,
    "send": Worker.cmd_send,
    "stop_send": Worker.cmd_stop_send,
    "mark": Worker.cmd_mark,
    "stall": Worker.cmd_stall,
    "watch": Worker.cmd_watch,
    "roster": Worker.cmd_roster,
    "soak": Worker.cmd_soak,
    "stats": Worker.cmd_stats,
    "reset": Worker.cmd_reset,
    "alive": Worker.cmd_alive,
    "drop": Worker.cmd_drop,
    "close": Worker.cmd_close,
}


async def serve(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=COMMAND_LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    progress = loop.create_task(worker.progress_loop())
    tasks: set[asyncio.Task[None]] = set()

    async def run(cmd: Json) -> None:
        handler = COMMANDS[cmd["cmd"]]
        try:
            result = await handler(worker, cmd)
        except Exception as exc:  # reported to the orchestrator, which fails the run
            emit({"event": "reply", "id": cmd.get("id"), "crash": f"{type(exc).__name__}: {exc}"})
            return
        emit({"event": "reply", "id": cmd.get("id"), **result})

    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "exit":
            break
        task = loop.create_task(run(cmd))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    progress.cancel()
    for client in worker.clients.values():
        client.abort()


def main() -> int:
    raise_nofile_limit()
    setup = json.loads(sys.argv[1])
    worker = Worker(
        setup["host"],
        int(setup["port"]),
        setup["password"],
        setup["prefix"],
        client_tls(setup.get("tls_cafile")),
        DIALECTS[setup.get("dialect", JSON_DIALECT.name)],
    )
    asyncio.run(serve(worker))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
