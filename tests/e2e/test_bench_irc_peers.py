"""``classcord bench`` against the real IRC daemons (Debian's inspircd and ngircd),
on tiny loads: every message delivered and every figure reported. No timing is
asserted. Skipped when a daemon is not installed, failed instead under
CLASSCORD_REQUIRE_SYSTEM_TESTS=1 (``scripts/test.sh`` installs both)."""

from __future__ import annotations

import socket
import subprocess

import pytest

from classcord.bench import ircd
from tests.conftest import require_system
from tests.e2e.test_bench_smoke import bench


def need_daemons(*kinds: str) -> None:
    for kind in kinds:
        if ircd.binary(kind) is None:
            require_system(f"{kind} is not installed (apt-get install {ircd.PACKAGES[kind]})")


def test_fanout_against_both_daemons_counts_every_delivery() -> None:
    need_daemons(*ircd.KINDS)
    doc = bench(
        "fanout", "--spawn", "inspircd,classcord,ngircd", "--clients", "6", "--senders", "2",
        "--rate", "40,80", "--duration", "0.5", "--probes", "3", "--workers", "2",
    )  # fmt: skip
    assert [r["server"] for r in doc["runs"]] == ["inspircd", "classcord", "ngircd"]
    for run in doc["runs"]:
        result = run["result"]
        assert result["handshake"]["ok"] == 6, result["handshake"]
        assert len(result["steps"]) == 2
        for step in result["steps"]:
            assert step["messages_sent"] > 0
            assert step["deliveries_expected"] == step["messages_sent"] * 5  # no echo
            assert step["deliveries_received"] == step["deliveries_expected"]
            assert (step["errors"], step["disconnected"]) == (0, 0)
            assert step["latency_ms"]["samples"] > 0
            assert step["latency_ms"]["p99_ms"] is not None
            assert step["deliveries_per_second"] > 0
            assert "deliveries_per_cpu_second" in step
            assert step["server"]["rss_mb_peak"] > 0
            assert step["loadgen"]["workers"] == 2
            assert len(step["loadgen"]["cpu_percent"]) == 2
            assert step["loadgen"]["tick_lag_ms"]["samples"] > 0
    irc_runs = [r for r in doc["runs"] if r["server"] in ircd.KINDS]
    for run in irc_runs:
        assert "checks" not in run  # the targets are ClassCord's
        assert "127.0.0.1" in run["server_config"]


def test_idle_lists_every_client_through_names() -> None:
    need_daemons(*ircd.KINDS)
    doc = bench("idle", "--spawn", "inspircd,ngircd", "--clients", "30", "--hold", "0.2")
    for run in doc["runs"]:
        result = run["result"]
        assert result["clients_open"] == 30
        assert result["users_request"]["ok"]
        assert result["users_request"]["lengths"]["users"] == 30
        assert result["ping_after_hold"] == {
            "ok": 30,
            "failed": 0,
            "seconds": pytest.approx(0, abs=60),
        }
        assert result["server"]["rss_mb_peak"] > 0


def test_a_login_storm_is_not_applicable_to_irc() -> None:
    doc = bench("storm", "--spawn", "ngircd", "--clients", "2", "--storm", "2")
    (run,) = doc["runs"]
    assert "IRC has no accounts" in run["result"]["not_applicable"]


@pytest.mark.parametrize("kind", ircd.KINDS)
def test_a_taken_port_is_retried_and_no_daemon_is_left(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the port-0 trick leaves: someone takes the port before the daemon
    binds it. Here we hold it, so the first attempt must fail and the next succeed."""
    need_daemons(kind)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = ircd.free_port
        monkeypatch.setattr(ircd, "free_port", lambda host: next(ports, 0) or real_free_port(host))
        launched: list[tuple[int, subprocess.Popen[bytes] | None]] = []
        real_launch = ircd.IrcdProcess._launch

        def spy(self: ircd.IrcdProcess, port: int, timeout: float) -> bool:
            ok = real_launch(self, port, timeout)
            launched.append((port, self.proc))
            return ok

        monkeypatch.setattr(ircd.IrcdProcess, "_launch", spy)
        server = ircd.IrcdProcess(kind)
        try:
            server.start()
            assert server.port != taken
            assert ircd.listens_on(server.pid, "127.0.0.1", server.port)
        finally:
            server.cleanup()
    assert [port for port, _ in launched[:1]] == [taken]
    assert len(launched) == 2
    for _, proc in launched:
        assert proc is not None
        assert proc.poll() is not None  # stopped, not left behind
