"""Memory and CPU of a process, read from ``/proc`` (Linux; same machine only)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
PAGE_BYTES: Final = os.sysconf("SC_PAGE_SIZE")
MIB: Final = 1024 * 1024
# /proc/PID/stat fields after the ")" that closes the command name (0-based there).
_UTIME_FIELD: Final = 11
_STIME_FIELD: Final = 12
_THREADS_FIELD: Final = 17


@dataclass(frozen=True)
class ProcSample:
    at: float  # time.monotonic()
    rss_bytes: int
    cpu_seconds: float  # user + system since the process started
    threads: int
    system_seconds: float = 0.0  # the kernel's share of cpu_seconds


def sample(pid: int) -> ProcSample | None:
    """One reading, or None when the process is gone or /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    system = int(fields[_STIME_FIELD]) / CLOCK_TICKS
    cpu = int(fields[_UTIME_FIELD]) / CLOCK_TICKS + system
    threads = int(fields[_THREADS_FIELD])
    rss = int(statm.split()[1]) * PAGE_BYTES
    return ProcSample(time.monotonic(), rss, cpu, threads, system)


class ProcWatch:
    """Samples one process; keeps the peak RSS, the series and CPU between marks."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.first: ProcSample | None = None
        self.last: ProcSample | None = None
        self.peak_rss = 0
        self.series: list[ProcSample] = []

    def poll(self) -> ProcSample | None:
        if self.pid is None:
            return None
        current = sample(self.pid)
        if current is None:
            return None
        if self.first is None:
            self.first = current
        self.last = current
        self.peak_rss = max(self.peak_rss, current.rss_bytes)
        self.series.append(current)
        return current

    def cpu_percent_since(self, start: ProcSample | None) -> float | None:
        """Average CPU use (100 = one core) between ``start`` and the last sample."""
        end = self.last
        if start is None or end is None or end.at <= start.at:
            return None
        return round(100 * (end.cpu_seconds - start.cpu_seconds) / (end.at - start.at), 1)


def raise_nofile_limit() -> tuple[int, int]:
    """Raise this process's open-file soft limit to its hard limit; return both."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft, hard
