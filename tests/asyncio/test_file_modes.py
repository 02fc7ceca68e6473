"""The data folder is private whatever the umask, files of other users are refused,
and both ends of the admin socket check who is on the other side (issue 11)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from classcord.admin_client import request
from classcord.cli import start_server
from classcord.errors import ImpostorSocket, StorageError
from classcord.storage import Storage
from tests.conftest import make_settings, require_system


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o000)
    yield
    os.umask(previous)


def test_folder_and_files_are_private_whatever_the_umask(tmp_path: Path, loose_umask: None) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o777)
    storage = Storage(folder / "classcord.db")
    storage.add_user("alice", "alice", "h")
    try:
        assert mode(folder) == 0o700
        for name in ("classcord.db", "classcord.db-wal", "classcord.db-shm"):
            assert mode(folder / name) == 0o600, name
    finally:
        storage.close()


def test_existing_loose_files_are_made_private(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    Storage(folder / "classcord.db").close()
    (folder / "classcord.db").chmod(0o666)
    folder.chmod(0o777)
    Storage(folder / "classcord.db").close()
    assert mode(folder) == 0o700
    assert mode(folder / "classcord.db") == 0o600


def test_a_database_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        require_system("needs root to create a file of another user")
    folder = tmp_path / "data"
    folder.mkdir()
    planted = folder / "classcord.db"
    planted.touch()
    os.chown(planted, 65534, 65534)
    with pytest.raises(StorageError, match=r"belongs to user 65534"):
        Storage(planted)


def test_a_symlinked_database_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "classcord.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(StorageError, match="symbolic link"):
        Storage(folder / "classcord.db")


def test_the_admin_client_refuses_a_socket_of_another_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        require_system("needs root to create a socket of another user")
    path = tmp_path / "admin.sock"
    squatter = socket.socket(socket.AF_UNIX)
    squatter.bind(str(path))
    squatter.listen()
    os.chown(path, 65534, 65534)
    try:
        with pytest.raises(ImpostorSocket, match="belongs to user 65534"):
            request(path, "who", [])
    finally:
        squatter.close()


async def test_the_server_refuses_an_admin_peer_of_another_uid() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        require_system("needs root and setpriv to connect as another user")
    # pytest's own folder is closed to other users: use one they can traverse.
    parent = Path(tempfile.mkdtemp(prefix="classcord-peer-"))
    server = await start_server(make_settings(parent / "data"))
    try:
        path = server.settings.admin_socket_path
        for opened, wanted in ((path, 0o777), (path.parent, 0o755), (parent, 0o755)):
            os.chmod(opened, wanted)  # even a socket opened by mistake stays closed
        probe = "\n".join(
            [
                "import socket, sys",
                "s = socket.socket(socket.AF_UNIX)",
                "s.connect(sys.argv[1])",
                "try:",
                '    s.sendall(b\'{"command": "stats"}\\n\')',
                "    print(repr(s.recv(100)))",
                "except OSError:",
                "    print(repr(b''))",
            ]
        )
        result = await asyncio.to_thread(
            subprocess.run,
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
             sys.executable, "-c", probe, str(path)],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        assert result.stdout.strip() == "b''", result
        # Our own uid still gets an answer.
        reply = await asyncio.to_thread(request, path, "stats", [])
        assert reply["ok"] is True
    finally:
        await server.shutdown()
        shutil.rmtree(parent)


async def test_a_planted_admin_socket_is_replaced_by_the_servers_own(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        require_system("needs root to create a socket of another user")
    settings = make_settings(tmp_path / "data")
    settings.data_path.mkdir(mode=0o700)
    squatter = socket.socket(socket.AF_UNIX)
    squatter.bind(str(settings.admin_socket_path))
    squatter.listen()
    os.chown(settings.admin_socket_path, 65534, 65534)
    server = await start_server(settings)
    try:
        assert settings.admin_socket_path.lstat().st_uid == os.geteuid()
        reply = await asyncio.to_thread(request, settings.admin_socket_path, "stats", [])
        assert reply["ok"] is True
    finally:
        squatter.close()
        await server.shutdown()
