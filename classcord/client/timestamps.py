"""The time shown in front of each line, from the server's timestamp."""

from __future__ import annotations

import re
from datetime import datetime


def clock(timestamp: object, now: datetime | None = None, with_date: bool = False) -> str:
    """``HH:MM:SS`` from the server's ISO timestamp (local time when missing or odd).

    With ``with_date`` (history), a timestamp from another day also shows its date."""
    now = now or datetime.now()
    if isinstance(timestamp, str):
        try:
            when = datetime.fromisoformat(timestamp)
        except ValueError:
            time_part = timestamp.partition("T")[2][:8]
            return time_part if re.fullmatch(r"\d\d:\d\d:\d\d", time_part) else timestamp[:19]
        if with_date and when.date() != now.date():
            return when.strftime("%Y-%m-%d %H:%M:%S")
        return when.strftime("%H:%M:%S")
    return now.strftime("%H:%M:%S")
