"""The doctor against the real server process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from classcord.doctor.diagnosis import diagnose
from classcord.doctor.facts import (
    Outcome,
    Target,
)
from classcord.doctor.report import render_text
from classcord.doctor.roundtrip import round_trip
from tests.asyncio.test_doctor import facts
from tests.support.process import ServerProcess

# --- the command against the real server ----------------------------------------


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data").start()
    try:
        yield server
    finally:
        server.kill()


def test_round_trip_to_the_real_server(real_server: ServerProcess) -> None:
    result = round_trip(Target("127.0.0.1", real_server.port), 3.0, local=True)
    assert result.outcome is Outcome.PONG


def test_doctor_command_on_the_real_server(real_server: ServerProcess, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "classcord", "doctor", "--json",
            "--port", str(real_server.port),
            "--docker-host", f"unix://{tmp_path}/no-docker.sock",
            "--ufw-rootdir", str(tmp_path / "no-ufw"),
            "--skip-own-address",  # test traffic stays on 127.0.0.1
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    checks = {check["hop"]: check for check in report["checks"]}
    # The test server listens on 127.0.0.1: exactly the classroom mistake.
    assert checks["server"]["status"] == "ok"
    assert checks["listen"]["status"] == "fail"
    assert checks[f"roundtrip 127.0.0.1:{real_server.port}"]["status"] == "ok"
    assert [hop for hop in checks if hop.startswith("roundtrip")] == [
        f"roundtrip 127.0.0.1:{real_server.port}"
    ]
    assert report["ok"] is False
    assert done.returncode == 1
    assert report["verdict"].startswith("Broken hop: listening address")


def test_doctor_text_output_and_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "classcord", "doctor", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    for flag in ("--target", "--port", "--lan", "--json", "--docker-host"):
        assert flag in done.stdout
    lines = render_text(facts(), diagnose(facts()), "verdict").splitlines()
    assert lines[0].startswith("ClassCord doctor: port 12345")
    assert any(line.startswith("[ OK ] server:") for line in lines)
