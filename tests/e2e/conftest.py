"""Fault tests run the real ``python3 -m classcord`` process on 127.0.0.1 with a
temporary data folder, through the same spawner the benchmarks use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

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
