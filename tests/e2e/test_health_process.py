"""``python3 -m classcord healthcheck`` against the real server process, as the
container's HEALTHCHECK runs it (issue 9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from classcord.bench.spawn import child_env

from .conftest import Spawn


def healthcheck(port: int, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "classcord", "healthcheck", "--timeout", "3",
         "--port", str(port), "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=20, env=child_env(), check=False,
    )  # fmt: skip


def test_healthcheck_reports_database_and_disk(spawn: Spawn, tmp_path: Path) -> None:
    server = spawn()
    result = healthcheck(server.port, tmp_path / "data")
    assert result.returncode == 0, result
    assert result.stdout.startswith("healthy: "), result.stdout
    assert "database writable" in result.stdout
    assert result.stdout.count("\n") == 1


def test_healthcheck_fails_with_one_line_when_space_is_short(spawn: Spawn, tmp_path: Path) -> None:
    server = spawn("--health-min-free-bytes", str(10**18))
    result = healthcheck(server.port, tmp_path / "data")
    assert result.returncode == 1, result
    assert result.stdout.startswith("unhealthy: data folder "), result.stdout
    assert result.stdout.count("\n") == 1
    assert "Traceback" not in result.stderr
