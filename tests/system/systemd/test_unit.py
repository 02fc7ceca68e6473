"""contrib/systemd/classcord.service: systemd's own checks of the unit, and its
ExecStart run as the unit runs it (an unprivileged user of its own, the state
directory, the unit's environment, SIGTERM to stop). PID 1 here is not systemd,
so the service itself is never started."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_system
from tests.system import serve
from tests.system.container.chat import ChatClient

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "contrib" / "systemd" / "classcord.service"
# systemd-analyze security: 0 (locked down) to 10 (exposed); "OK" is below 2.
MAX_EXPOSURE = 2.0
# An unprivileged UID/GID no account uses, as DynamicUser= picks one (61184-65519).
UNIT_UID = 61999


def service_section() -> dict[str, list[str]]:
    """Every Key=value of [Service], repeated keys kept in order."""
    entries: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        if section == "[Service]":
            entries.setdefault(key, []).append(value)
    return entries


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        require_system("systemd-analyze is not installed (apt-get install systemd)")
        raise AssertionError("unreachable")
    return found


def test_systemd_analyze_verify_accepts_the_unit() -> None:
    done = subprocess.run(
        [systemd_analyze(), "verify", str(UNIT)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""


def test_systemd_analyze_security_rates_the_unit_ok() -> None:
    done = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r"Overall exposure level for classcord\.service: (\d+\.\d+)", done.stdout)
    assert found, done.stdout
    exposure = float(found.group(1))
    print(f"systemd-analyze security: exposure {exposure} (at most {MAX_EXPOSURE})")
    assert exposure <= MAX_EXPOSURE, done.stdout


def test_unit_settings_the_docs_promise() -> None:
    service = service_section()
    for key, value in {
        "DynamicUser": "yes",
        "StateDirectory": "classcord",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "StandardOutput": "journal",
    }.items():
        assert service[key] == [value], key
    assert float(service["TimeoutStopSec"][0]) <= 5
    assert "--data-dir ${STATE_DIRECTORY}" in service["ExecStart"][0]


def unit_environment(opt: Path) -> dict[str, str]:
    env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    for line in service_section()["Environment"]:
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            env[key] = value.replace("/opt/classcord", str(opt))
    return env


@pytest.fixture
def installed() -> Iterator[Path]:
    """/opt/classcord as the docs install it, in a folder any user can read, and
    the state directory as systemd makes it (owned by the unit's user, 0750)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        require_system("running the unit's command line needs root and setpriv")
    base = Path(tempfile.mkdtemp(prefix="classcord-unit-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        opt = base / "opt" / "classcord"
        shutil.copytree(ROOT / "classcord", opt / "classcord")
        subprocess.run(["chmod", "-R", "go+rX", str(base / "opt")], check=True)
        state = base / "var" / "lib" / "classcord"
        state.mkdir(parents=True)
        (base / "var").chmod(0o755)
        (base / "var" / "lib").chmod(0o755)
        os.chown(state, UNIT_UID, UNIT_UID)
        state.chmod(0o750)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_exec_start_runs_as_the_unit_would_and_stops_on_sigterm(installed: Path) -> None:
    service = service_section()
    opt = installed / "opt" / "classcord"
    state = installed / "var" / "lib" / "classcord"
    command = shlex.split(service["ExecStart"][0].replace("${STATE_DIRECTORY}", str(state)))
    assert command[0] == "/usr/bin/python3"
    if not Path(command[0]).exists():  # pragma: no cover - Debian always has it
        command[0] = sys.executable
    env = unit_environment(opt)
    # The unit listens on 0.0.0.0:12345; the test on 127.0.0.1, a port of its own.
    env.update(CLASSCORD_HOST="127.0.0.1", CLASSCORD_PORT="0", CLASSCORD_SCRYPT_N="1024")
    env["SYSTEMD_EXEC_PID"] = "1"  # what systemd adds; harmless to the server
    process, port = serve.start(
        [
            "setpriv", f"--reuid={UNIT_UID}", f"--regid={UNIT_UID}", "--clear-groups",
            "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", *command,
        ],
        cwd=opt,
        env=env,
        umask=0o077,
    )  # fmt: skip
    try:
        with ChatClient(port) as alice:
            alice.account("alice", "mot de passe")
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            lines = alice.read_until_closed()
            code = process.wait(timeout=float(service["TimeoutStopSec"][0]))
            stop_seconds = time.monotonic() - started
        print(f"unit's ExecStart: SIGTERM to exit in {stop_seconds:.2f} s")
        assert code == 0
        assert stop_seconds < 5
        assert any(m.get("type") == "message" for m in lines), lines
        database = state / "classcord.db"
        assert database.stat().st_uid == UNIT_UID
        assert database.stat().st_mode & 0o077 == 0, "UMask=0077: only the unit's user reads it"
    finally:
        serve.stop(process)
