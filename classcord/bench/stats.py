"""Latency histograms that merge across processes, and the percentiles read from them.

Values are microseconds kept with ``SIGNIFICANT_BITS`` significant bits (under 1 %
error), so a histogram of millions of samples is a dict of a few hundred keys that
travels as JSON between worker and orchestrator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

SIGNIFICANT_BITS: Final = 7
PERCENTILES: Final = (50.0, 90.0, 99.0)


def bucket(value_us: int) -> int:
    """Round ``value_us`` down to ``SIGNIFICANT_BITS`` significant bits."""
    if value_us <= 0:
        return 0
    shift = value_us.bit_length() - SIGNIFICANT_BITS
    if shift <= 0:
        return value_us
    return (value_us >> shift) << shift


class Histogram:
    """Counts of bucketed microsecond values, plus the exact maximum."""

    __slots__ = ("counts", "max_us", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max_us = 0

    def add(self, value_us: int) -> None:
        key = bucket(value_us)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.total += 1
        self.max_us = max(self.max_us, value_us)

    def merge(self, other: Histogram) -> None:
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, pct: float) -> int | None:
        """The smallest bucket at or below which ``pct`` % of the values fall."""
        if not self.total:
            return None
        rank = max(1, -(-self.total * pct // 100))  # ceil, at least the first value
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return key
        return self.max_us

    def to_json(self) -> dict[str, object]:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "max_us": self.max_us}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Histogram:
        hist = cls()
        counts = data.get("counts", {})
        assert isinstance(counts, dict)
        for key, count in counts.items():
            hist.counts[int(key)] = int(count)
            hist.total += int(count)
        max_us = data.get("max_us", 0)
        assert isinstance(max_us, int)
        hist.max_us = max_us
        return hist

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        out = cls()
        for part in parts:
            out.merge(part)
        return out


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds, as reported; None when nothing was measured."""

    samples: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, hist: Histogram) -> LatencySummary:
        def ms(value: int | None) -> float | None:
            return None if value is None else round(value / 1000, 2)

        return cls(
            samples=hist.total,
            p50_ms=ms(hist.percentile(50)),
            p90_ms=ms(hist.percentile(90)),
            p99_ms=ms(hist.percentile(99)),
            max_ms=ms(hist.max_us) if hist.total else None,
        )
