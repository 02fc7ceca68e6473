"""Start-up mistakes of the real process: one line that says what to do, no
traceback, and the documented exit code (issue 9 and issue 11)."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from classcord.bench.spawn import child_env
from classcord.storage import Storage
from tests.conftest import require_system

from .conftest import Spawn


def serve(data_dir: Path, *flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "classcord", "--data-dir", str(data_dir), "--port", "0",
         "--host", "127.0.0.1", *flags],
        capture_output=True, text=True, timeout=60, env={**child_env(), **env}, check=False,
    )  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    lines = output.splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_an_unresolvable_host_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "classcord", "--data-dir", str(tmp_path / "data"), "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**child_env(), "CLASSCORD_HOST": "no-such-host.invalid"},
    )  # fmt: skip
    assert result.returncode == 2
    line = one_error_line(result)
    assert "'no-such-host.invalid' cannot be resolved" in line


def test_a_port_in_use_names_the_port_and_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = serve(tmp_path / "data", "--port", str(port))
    assert result.returncode == 1
    line = one_error_line(result)
    assert f"port {port} is already in use" in line
    assert f"ss -ltnp 'sport = :{port}'" in line
    assert "--port" in line
    assert "classcord doctor" in line


def test_a_second_server_on_the_same_data_folder_is_refused(spawn: Spawn, tmp_path: Path) -> None:
    first = spawn()
    result = serve(tmp_path / "data")
    assert result.returncode == 1
    line = one_error_line(result)
    assert f"another ClassCord server (pid {first.pid})" in line
    assert "stop it first" in line
    assert first.running()


def test_a_data_folder_of_another_user_is_refused_with_the_fix(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        require_system("needs root to give a folder to another user")
    folder = tmp_path / "data"
    folder.mkdir()
    os.chown(folder, 65534, 65534)
    result = serve(folder)
    assert result.returncode == 1
    line = one_error_line(result)
    assert str(folder) in line
    assert "the server runs as user 0" in line
    assert "belongs to 65534" in line
    assert "chown -R" in line


def test_a_data_folder_the_server_user_cannot_write(tmp_path: Path) -> None:
    """Run as another user (the container's 10001 case) on a root-owned folder."""
    if os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists():
        require_system("needs root and setpriv to run the server as another user")
    # pytest's own folder is closed to other users: use one they can traverse.
    parent = Path(tempfile.mkdtemp(prefix="classcord-owner-"))
    parent.chmod(0o755)
    folder = parent / "data"
    folder.mkdir()
    result = subprocess.run(
        ["setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups",
         sys.executable, "-m", "classcord", "--data-dir", str(folder), "--port", "0"],
        capture_output=True, text=True, timeout=60, env=child_env(), check=False,
    )  # fmt: skip
    shutil.rmtree(parent)
    if "Permission denied" in result.stderr and "classcord" not in result.stdout:
        require_system(f"user 10001 cannot run this checkout: {result.stderr[-200:]}")
    assert result.returncode == 1, result
    line = one_error_line(result)
    assert "the server runs as user 10001" in line, line
    assert "belongs to 0" in line, line
    assert "chown -R" in line


def test_a_page_corrupted_database_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    storage = Storage(folder / "classcord.db")
    for n in range(50):
        storage.add_user(f"user{n}", f"user{n}", "h" * 500)
    storage.close()
    data = bytearray((folder / "classcord.db").read_bytes())
    for offset in range(4096, len(data), 4096):
        data[offset : offset + 100] = b"\xff" * 100
    (folder / "classcord.db").write_bytes(bytes(data))
    result = serve(folder)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "malformed" in line
    assert "restore the latest backup" in line


@pytest.mark.slow
def test_a_database_locked_for_more_than_5_s_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    Storage(folder / "classcord.db").close()
    blocker = sqlite3.connect(folder / "classcord.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        result = serve(folder)
        elapsed = time.monotonic() - started
    finally:
        blocker.rollback()
        blocker.close()
    assert result.returncode == 1
    line = one_error_line(result)
    assert "database is locked" in line
    assert "another process holds the database" in line
    assert elapsed < 20
