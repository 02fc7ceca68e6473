"""Run the real ``python3 -m classcord`` process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

READY_MARKER = "listening on"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server subprocess whose log is collected line by line."""

    def __init__(self, data_dir: Path, port: int | None = None, *extra: str) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra = extra
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._collector: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> ServerProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = [
            sys.executable,
            "-m",
            "classcord",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--scrypt-n",
            "1024",
            *self.extra,
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self._collector = threading.Thread(target=self._collect, daemon=True)
        self._collector.start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError("server did not start:\n" + self.log)
        return self

    def _collect(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if READY_MARKER in line:
                self._ready.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self._finish()
        return code

    def kill(self) -> None:
        """SIGKILL (no clean shutdown): also the fixtures' last-resort cleanup."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
            self._finish()

    def _finish(self) -> None:
        if self._collector is not None:
            self._collector.join(10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def wait_for_log(self, fragment: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if fragment in self.log:
                return True
            time.sleep(0.02)
        return False
