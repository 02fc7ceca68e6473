"""The load generator's arithmetic: histograms, percentiles and marker counting."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from classcord.bench.client import BenchClient, LatencyBook, message_line
from classcord.bench.scenarios import expected_global, slope_per_minute, spread
from classcord.bench.stats import Histogram, bucket


def test_bucket_keeps_seven_significant_bits() -> None:
    assert bucket(0) == 0
    assert bucket(127) == 127
    assert bucket(1_000_000) <= 1_000_000
    assert 1_000_000 - bucket(1_000_000) < 1_000_000 / 64


def test_percentiles_of_a_known_distribution() -> None:
    hist = Histogram()
    for value in range(1, 101):
        hist.add(value)  # below 128: exact
    assert hist.percentile(50) == 50
    assert hist.percentile(99) == 99
    assert hist.percentile(100) == 100
    assert hist.max_us == 100


def test_histograms_merge_through_json() -> None:
    a, b = Histogram(), Histogram()
    for v in (5, 500, 50_000):
        a.add(v)
    b.add(7_000_000)
    merged = Histogram.merged([Histogram.from_json(a.to_json()), Histogram.from_json(b.to_json())])
    assert merged.total == 4
    assert merged.max_us == 7_000_000


def _fed(data: bytes, cuts: list[int], probe: bool = False) -> BenchClient:
    client = BenchClient(0, "c", "chat", probe, LatencyBook())
    client.count_mode()
    position = 0
    for cut in sorted(cuts):
        client.data_received(data[position:cut])
        position = cut
    client.data_received(data[position:])
    return client


@given(st.lists(st.integers(0, 10_000), max_size=40), st.integers(1, 30))
def test_markers_are_counted_once_however_the_bytes_are_cut(cuts: list[int], n: int) -> None:
    lines = []
    for i in range(n):
        lines.append(message_line(1, i, 10))
        lines.append(b'{"type": "pong"}\n')
        lines.append(b'{"type": "status", "user": "x", "state": "online"}\n')
    data = b"".join(lines) + b'{"type": "error", "message": "m", "error": "m"}\n'
    client = _fed(data, [c % (len(data) + 1) for c in cuts])
    assert client.delivered == data.count(b"~b~")
    assert client.pongs == n
    assert client.errors == 1


def test_probes_read_send_times_and_skip_truncated_ones() -> None:
    line = message_line(3, 9, 1)  # sent at t=1 us: latency is "now"
    inside_the_third = len(line) * 2 + line.index(b"~b~") + 5
    client = _fed(line * 5, [inside_the_third], probe=True)
    assert client.delivered == 5
    assert client.book.current.total == 4  # the one cut in two is not misread


def test_spread_and_expected_deliveries() -> None:
    assert spread(10, 100) == list(range(0, 100, 10))
    assert spread(0, 5) == []
    assert spread(9, 3) == [0, 1, 2]
    # two senders among four receivers, no echo: each message reaches three
    assert expected_global({"0": 10, "1": 5}, {0, 1, 2, 3}) == 45
    # a sender that is not a receiver reaches all four
    assert expected_global({"9": 2}, {0, 1, 2, 3}) == 8


def test_slope_finds_a_leak() -> None:
    rng = random.Random(1)
    rows = [{"t": t, "rss_mb": 50 + t / 60 * 3 + rng.uniform(-0.1, 0.1)} for t in range(0, 600, 5)]
    slope = slope_per_minute(rows)
    assert slope is not None
    assert 2.9 < slope < 3.1
    flat = [{"t": t, "rss_mb": 50.0} for t in range(10)]
    assert slope_per_minute(flat) == 0.0
