"""One verdict about one hop: its status, a sentence for people and the fix."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

TITLES = {
    "server": "server",
    "listen": "listening address",
    "docker": "Docker",
    "firewall": "VM firewall (ufw)",
    "network": "VM network",
}


class Status(enum.Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclasses.dataclass(frozen=True)
class Check:
    """One verdict about one hop."""

    hop: str
    status: Status
    summary: str
    fix: str = ""
    details: tuple[str, ...] = ()
    title: str = ""  # how the hop is named for people; defaults to ``hop``

    @property
    def label(self) -> str:
        return self.title or TITLES.get(self.hop, self.hop)

    def as_dict(self) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "title": self.label,
            "status": self.status.value,
            "summary": self.summary,
            "fix": self.fix,
            "details": list(self.details),
        }
