"""The parent side: worker processes, the /proc monitor and the progress display."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, Final, TextIO

from classcord.bench.procstat import ProcSample, ProcWatch
from classcord.bench.spawn import child_env

Json = dict[str, Any]
WORKER_STREAM_LIMIT: Final = 256 * 1024 * 1024
MONITOR_INTERVAL: Final = 0.5
PROGRESS_EVERY_NON_TTY: Final = 5.0
WORKER_EXIT_TIMEOUT: Final = 10.0
MIB: Final = 1024 * 1024


class WorkerFailed(RuntimeError):
    pass


class WorkerPool:
    """``count`` worker processes; client ``i`` lives in worker ``i % count``."""

    def __init__(
        self,
        count: int,
        host: str,
        port: int,
        password: str,
        prefix: str,
        tls_cafile: str | None = None,
        dialect: str = "json",
    ) -> None:
        self.count = count
        self.setup = {
            "host": host,
            "port": port,
            "password": password,
            "prefix": prefix,
            "tls_cafile": tls_cafile,
            "dialect": dialect,
        }
        self.procs: list[asyncio.subprocess.Process] = []
        self.latest: list[Json] = [{} for _ in range(count)]
        self._pending: dict[int, asyncio.Future[Json]] = {}
        self._ids = itertools.count(1)
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for w in range(self.count):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "classcord.bench.worker",
                json.dumps(self.setup),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=child_env(),
                limit=WORKER_STREAM_LIMIT,
            )
            self.procs.append(proc)
            self._readers.append(asyncio.get_running_loop().create_task(self._read(w, proc)))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def worker_of(self, index: int) -> int:
        return index % self.count

    def split(self, indices: Sequence[int]) -> list[list[int]]:
        parts: list[list[int]] = [[] for _ in range(self.count)]
        for index in indices:
            parts[self.worker_of(index)].append(index)
        return parts

    async def _read(self, w: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            event = json.loads(line)
            if event.get("event") == "progress":
                self.latest[w] = event
            elif event.get("event") == "reply":
                future = self._pending.pop(event.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(event)
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(WorkerFailed(f"worker {w} exited"))

    async def call(self, w: int, cmd: Json) -> Json:
        ident = next(self._ids)
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        stdin = self.procs[w].stdin
        assert stdin is not None
        stdin.write((json.dumps({**cmd, "id": ident}) + "\n").encode())
        await stdin.drain()
        reply = await future
        if "crash" in reply:
            raise WorkerFailed(f"worker {w}: {cmd['cmd']}: {reply['crash']}")
        return reply

    async def call_each(self, cmds: Sequence[Json]) -> list[Json]:
        return list(await asyncio.gather(*(self.call(w, c) for w, c in enumerate(cmds))))

    async def call_all(self, cmd: Json) -> list[Json]:
        return await self.call_each([cmd] * self.count)

    def totals(self) -> Json:
        """Sum of the latest progress of every worker."""
        out: Json = {"open": 0, "logged_in": 0, "sent": 0, "connect_failures": 0, "roles": {}}
        for event in self.latest:
            for key in ("open", "logged_in", "sent", "connect_failures"):
                out[key] += event.get(key, 0)
            for role, row in event.get("roles", {}).items():
                into = out["roles"].setdefault(role, {})
                for key, value in row.items():
                    into[key] = into.get(key, 0) + value
            for key, value in event.get("retired", {}).items():
                out.setdefault("retired", {})
                out["retired"][key] = out["retired"].get(key, 0) + value
        return out

    def delivered(self, role: str = "chat") -> int:
        return int(self.totals()["roles"].get(role, {}).get("delivered", 0))

    async def close(self) -> None:
        for proc in self.procs:
            if proc.returncode is None and proc.stdin is not None:
                try:
                    proc.stdin.write(b'{"cmd": "exit"}\n')
                    await proc.stdin.drain()
                    proc.stdin.close()
                except (BrokenPipeError, ConnectionResetError):
                    pass
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), WORKER_EXIT_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for task in self._readers:
            task.cancel()


class Monitor:
    """Samples the server and the workers from /proc, and shows progress to people."""

    def __init__(
        self,
        server_pid: int | None,
        label: str,
        stream: TextIO | None,
    ) -> None:
        self.server = ProcWatch(server_pid)
        self.workers: list[ProcWatch] = []
        self.label = label
        self.phase = "start"
        self.stream = stream
        self.pool: WorkerPool | None = None
        self.started = time.monotonic()
        self._last_line = 0.0
        self._task: asyncio.Task[None] | None = None
        self.timeline: list[Json] = []  # one row per sample: time, rss, open clients

    def attach(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.workers = [ProcWatch(pid) for pid in pool.pids]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self.tick()
        if self._task is not None:
            self._task.cancel()
        if self.stream is not None and self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()

    def mark(self) -> tuple[ProcSample | None, list[ProcSample | None]]:
        """Current samples, to compute CPU use over a phase later."""
        self.tick()
        return self.server.last, [w.last for w in self.workers]

    def tick(self) -> None:
        current = self.server.poll()
        for watch in self.workers:
            watch.poll()
        totals = self.pool.totals() if self.pool is not None else {}
        self.timeline.append(
            {
                "t": round(time.monotonic() - self.started, 2),
                "rss_mb": round(current.rss_bytes / MIB, 1) if current else None,
                "open": totals.get("open", 0),
                "sent": totals.get("sent", 0),
            }
        )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL)
            self.tick()
            self._show()

    def _show(self) -> None:
        if self.stream is None:
            return
        tty = self.stream.isatty()
        now = time.monotonic()
        if not tty and now - self._last_line < PROGRESS_EVERY_NON_TTY:
            return
        self._last_line = now
        totals = self.pool.totals() if self.pool is not None else {}
        delivered = sum(r.get("delivered", 0) for r in totals.get("roles", {}).values())
        delivered += totals.get("retired", {}).get("delivered", 0)
        last = self.server.last
        rss = f"{last.rss_bytes / MIB:.0f}MB" if last else "?"
        text = (
            f"[{self.label}] {now - self.started:6.1f}s {self.phase:<10} "
            f"open={totals.get('open', 0)} sent={totals.get('sent', 0)} "
            f"delivered={delivered} server_rss={rss}"
        )
        if tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
