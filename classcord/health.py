"""Health that means "can serve and keep data" (issue 9).

The server side answers the admin socket's ``health`` command: what ``History``
reports, a real committed write of the database, and the free space of the data
folder. ``python3 -m classcord healthcheck`` pings the chat port, then asks for
that; when the admin socket cannot be reached it falls back to the ping and a local
free-space check, and says so. Legacy clients see nothing new on the chat port.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from classcord.server import ClassCordServer


def megabytes(count: int) -> str:
    """Free space as people read it (decimal MB, like ``df -H``)."""
    return f"{count / 1e6:.1f} MB"


@dataclass(frozen=True, slots=True)
class DiskSpace:
    free_bytes: int
    problem: str | None


def check_disk(folder: Path, min_free_bytes: int) -> DiskSpace:
    try:
        info = os.statvfs(folder)
    except OSError as exc:
        return DiskSpace(0, f"cannot read the free space of {folder}: {exc.strerror}")
    free = info.f_bavail * info.f_frsize
    if free < min_free_bytes:
        return DiskSpace(
            free,
            f"data folder {folder} has {megabytes(free)} free, below the"
            f" {megabytes(min_free_bytes)} of health_min_free_bytes",
        )
    return DiskSpace(free, None)


async def server_health(server: ClassCordServer, timeout: float | None = None) -> dict[str, Any]:
    """The ``health`` admin command: healthy, the problems in one line each, the facts."""
    settings = server.settings
    bound = settings.storage_timeout_seconds
    if timeout is not None:
        bound = max(0.05, min(bound, timeout))
    problems: list[str] = []
    disk = check_disk(settings.data_path, settings.health_min_free_bytes)
    if disk.problem:
        problems.append(disk.problem)
    probe = "ok"
    try:
        await asyncio.wait_for(
            server.storage.call(server.storage.storage.write_probe, time.time()), bound
        )
    except TimeoutError:
        probe = f"the database did not answer a write within {bound:.1f} s"
    except Exception as exc:
        probe = f"{type(exc).__name__}: {exc}"
    if probe != "ok":
        problems.append(f"database {settings.database_path} cannot be written: {probe}")
    status = server.history.status()
    if status.oldest_pending_seconds > settings.health_max_pending_seconds:
        problems.append(
            f"{status.pending} messages have waited {status.oldest_pending_seconds:.0f} s to be"
            f" stored (health_max_pending_seconds {settings.health_max_pending_seconds:.0f})"
            + (f": {status.last_error}" if status.last_error else "")
        )
    return {
        "healthy": not problems,
        "problems": problems,
        "free_bytes": disk.free_bytes,
        "write_probe": probe,
        "history": status.as_dict(),
        "connections": len(server.connections),
    }
