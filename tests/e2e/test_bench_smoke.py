"""``classcord bench`` runs end to end on tiny loads and reports sane JSON. No timing
is asserted: benchmarks are not tests (BENCHMARKS.md has the numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from classcord.bench.spawn import child_env

RUN_TIMEOUT = 120


def bench(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "classcord", "bench", *args, "--json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=child_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads(done.stdout)
    assert isinstance(document, dict)
    return document


def test_the_tls_step_goes_through_the_tls_port_and_counts_every_delivery() -> None:
    doc = bench(
        "fanout", "--spawn", "classcord,classcord-tls", "--clients", "6", "--senders", "2",
        "--rate", "40", "--duration", "0.5", "--probes", "3", "--workers", "2",
    )  # fmt: skip
    plain, tls = doc["runs"]
    assert (plain["server"], tls["server"]) == ("classcord", "classcord-tls")
    assert (plain["tls"], tls["tls"]) == (False, True)  # clients went through TLS
    for run in (plain, tls):
        (step,) = run["result"]["steps"]
        assert run["result"]["handshake"]["ok"] == 6
        assert step["deliveries_received"] == step["deliveries_expected"] > 0


def test_a_source_tree_can_be_measured_beside_the_current_one(tmp_path: Path) -> None:
    """--spawn classcord@DIR: here DIR is this very tree, so both runs must agree."""
    root = Path(__file__).resolve().parents[2]
    doc = bench(
        "fanout", "--spawn", f"classcord@{root},classcord", "--clients", "4", "--senders", "1",
        "--rate", "20", "--duration", "0.3", "--probes", "2",
    )  # fmt: skip
    assert [r["server"] for r in doc["runs"]] == [f"classcord@{root}", "classcord"]
    for run in doc["runs"]:
        (step,) = run["result"]["steps"]
        assert step["deliveries_received"] == step["deliveries_expected"] > 0


def test_fanout_against_both_servers_counts_every_delivery() -> None:
    doc = bench(
        "fanout", "--spawn", "classcord,baseline", "--clients", "6", "--senders", "2",
        "--rate", "40,80", "--duration", "0.5", "--probes", "3", "--workers", "2",
    )  # fmt: skip
    assert doc["machine"]["cpus"] >= 1
    assert [r["server"] for r in doc["runs"]] == ["classcord", "baseline"]
    for run in doc["runs"]:
        result = run["result"]
        assert result["handshake"]["ok"] == 6
        assert len(result["steps"]) == 2
        for step in result["steps"]:
            assert step["messages_sent"] > 0
            assert step["deliveries_expected"] == step["messages_sent"] * 5  # no echo
            assert step["deliveries_received"] == step["deliveries_expected"]
            assert step["latency_ms"]["samples"] > 0
            assert step["latency_ms"]["p50_ms"] <= step["latency_ms"]["max_ms"]
            assert step["server"]["rss_mb_peak"] > 0
            assert step["errors"] == 0
    assert doc["comparisons"][0]["ratio"] is not None
    assert {c["name"] for c in doc["runs"][0]["checks"]} >= {"p99 <= 50 ms"}


def test_idle_lists_every_client() -> None:
    doc = bench("idle", "--clients", "30", "--hold", "0.2", "--auth", "guest")
    result = doc["runs"][0]["result"]
    assert result["clients_open"] == 30
    assert result["users_request"]["ok"]
    assert result["users_request"]["lengths"]["users"] == 30


def test_stall_reports_the_others_and_the_stalled_reader() -> None:
    doc = bench("stall", "--clients", "4", "--senders", "2", "--rate", "200", "--duration", "1")
    result = doc["runs"][0]["result"]
    # Too short to fill the kernel's buffers: only the shape of the report is checked.
    assert result["step"]["deliveries_received"] == result["step"]["deliveries_expected"]
    assert {"staller_disconnected", "staller_disconnected_after_s"} <= set(result)


@pytest.mark.slow
def test_soak_and_storm_report_memory_and_logins() -> None:
    soak = bench(
        "soak", "--clients", "6", "--duration", "3", "--life", "0.3,1", "--sample-every", "1"
    )
    result = soak["runs"][0]["result"]
    assert result["sessions"] >= 6
    assert result["memory"]["series"]
    storm = bench(
        "storm", "--clients", "3", "--senders", "3", "--rate", "30", "--storm", "5",
        "--storm-at", "0.2", "--storm-after", "0.2", "--server-arg=--scrypt-n=16",
    )  # fmt: skip
    data = storm["runs"][0]["result"]
    assert data["storm_logins"]["ok"] == 5
    assert "storm" in data["latency_ms"]


def test_baseline_server_command_exists() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "classcord", "bench", "baseline-server", "--help"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=child_env(),
        check=False,
    )
    assert done.returncode == 0
    assert "thread" in done.stdout


def test_the_memory_floor_children_hold_their_connections() -> None:
    from classcord.bench import floor

    clients = 2_000
    interpreter = floor.measure("interpreter", clients)
    held = floor.measure("asyncio", clients)
    bare = floor.measure("selectors", clients)
    # Each child really accepted and held the connections: more memory than the
    # interpreter alone, asyncio's transports more than bare registered sockets.
    assert interpreter > 0
    assert held > interpreter
    assert held > bare
