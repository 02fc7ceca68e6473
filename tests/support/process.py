"""The real ``python3 -m classcord`` process for end-to-end tests.

One implementation of "start a server child and wait until it listens":
``classcord.bench.spawn``, which starts it on port 0 and reads the port it got from
its ``listening on`` line, so no test reserves a port and races to reuse it. This
adds what the tests read: the log, and a SIGTERM stop that returns the exit code.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from classcord.bench import child, spawn

# Cheap hashing: these tests are not about hashing cost (the default is 2**14).
TEST_FLAGS = ("--scrypt-n", "1024")


class ServerProcess(spawn.ServerProcess):
    """A ClassCord server child on 127.0.0.1; ``port`` 0 lets it pick one."""

    def __init__(self, data_dir: Path, port: int = 0, *extra: str) -> None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(
            "classcord", port=port, data_dir=str(data_dir), extra_args=(*TEST_FLAGS, *extra)
        )
        self.data_path = Path(data_dir)

    def start(self, timeout: float = spawn.READY_TIMEOUT) -> ServerProcess:
        super().start(timeout)
        return self

    @property
    def log(self) -> str:
        return self.read_log()

    @property
    def lines(self) -> list[str]:
        return self.log.splitlines()

    def terminate(self, timeout: float = child.STOP_TIMEOUT) -> int:
        """SIGTERM and wait; returns the exit code. A server that does not stop in
        time is a failure, but is killed first, so no test leaves one behind."""
        assert self.proc is not None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def wait_for_log(self, fragment: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if fragment in self.log:
                return True
            time.sleep(0.02)
        return False


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port that refuses connections for as long as the block runs: bound, never
    listening, so no other process can start listening on it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port
