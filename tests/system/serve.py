"""The real server as a child process on 127.0.0.1 port 0, for the system tests
(this ring keeps its own small helper, independent of the other rings')."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def serve_command(data_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "classcord", "serve", "--host", "127.0.0.1", "--port", "0",
        "--data-dir", str(data_dir), "--scrypt-n", "1024",
    ]  # fmt: skip


def start(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    umask: int = -1,
    timeout: float = 20.0,
) -> tuple[subprocess.Popen[str], int]:
    """Start the server; return it and the port from its "listening on" line."""
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        umask=umask,
    )
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = LISTENING.search(line)
        if found:
            return process, int(found.group(1))
    stop(process)
    raise AssertionError("the server did not start:\n" + "".join(seen))


def stop(process: subprocess.Popen[str]) -> None:
    """Kill it if it still runs; close its pipe."""
    if process.poll() is None:
        process.kill()
        process.wait(5)
    if process.stdout is not None:
        process.stdout.close()
