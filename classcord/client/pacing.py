"""Pacing under the server's rate limit, so a piped file is sent without rejections.

The server announces its limit in the hello reply; the client keeps a margin below
it (a share of the rate and of the burst). Time is injected, so tests don't sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

PACE_RATE_SHARE: Final = 0.9
PACE_BURST_SHARE: Final = 0.75


class Pacer:
    """A token bucket that makes the sender wait instead of hitting the server's limit."""

    def __init__(
        self, rate: float, burst: int, clock_fn: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock_fn
        self.configure(rate, burst)
        self._tokens = float(self._burst)
        self._stamp = clock_fn()

    def configure(self, rate: float, burst: int) -> None:
        self._rate = max(rate * PACE_RATE_SHARE, 0.001)
        self._burst = max(int(burst * PACE_BURST_SHARE), 1)

    def reserve(self) -> float:
        """Take one token; returns how long to wait before sending (0: now)."""
        now = self._clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
