"""``classcord import-users`` validates everything first, imports in one
transaction, and refuses while a server holds the data folder (issue 11)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from classcord.bench.spawn import child_env
from classcord.storage import Storage

from .conftest import Spawn


def import_users(legacy: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "classcord", "import-users", str(legacy), "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**child_env(), "CLASSCORD_SCRYPT_N": "1024"},
    )  # fmt: skip


def names(data: Path) -> set[str]:
    storage = Storage(data / "classcord.db")
    try:
        return {name for _, name in storage.user_ids()}
    finally:
        storage.close()


def test_reserved_names_and_surrogate_passwords_are_skipped_with_a_reason(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "users.pkl"
    users = {
        "alice": "pw",
        "Serveur": "pw",  # notices come from this name
        "SERVEUR": "pw",
        "bob": "bad\ud800",  # a lone surrogate cannot be typed nor hashed
        "zo\ud800e": "pw",
        "Alice": "pw2",  # the same name as alice under the name rule
    }
    legacy.write_bytes(pickle.dumps(users))
    result = import_users(legacy, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "imported 1 users" in result.stdout
    assert "'Serveur': reserved name" in result.stdout
    assert "lone surrogate" in result.stdout
    assert names(tmp_path / "data") == {"alice"} or names(tmp_path / "data") == {"Alice"}


@pytest.mark.parametrize(
    "payload",
    [
        b"P0\n.",  # a persistent id
        pickle.dumps({"alice": {"pw"}}),  # a set
        pickle.dumps({b"alice": "pw"}),  # bytes
        pickle.dumps({"alice": "pw"})[:-3],  # truncated
        b"\x80\x05\x95" + b"\xff" * 20,  # garbage frame
    ],
)
def test_anything_but_a_dict_of_strings_is_one_line(payload: bytes, tmp_path: Path) -> None:
    legacy = tmp_path / "users.pkl"
    legacy.write_bytes(payload)
    result = import_users(legacy, tmp_path / "data")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("classcord import-users: ")


def test_import_is_refused_while_a_server_runs(spawn: Spawn, tmp_path: Path) -> None:
    server = spawn()
    legacy = tmp_path / "users.pkl"
    legacy.write_bytes(pickle.dumps({"carol": "pw"}))
    result = import_users(legacy, tmp_path / "data")
    assert result.returncode == 1
    assert f"pid {server.pid}" in result.stderr
    assert "stop it, import, then start it again" in result.stderr
    server.stop()
    assert "carol" not in names(tmp_path / "data")
    assert import_users(legacy, tmp_path / "data").returncode == 0
    assert "carol" in names(tmp_path / "data")


def test_add_users_is_one_transaction(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "data" / "classcord.db")
    try:
        with pytest.raises(Exception, match="NOT NULL"):
            storage.add_users([("a", "a", "h"), ("b", "b", None)])  # type: ignore[list-item]
        assert storage.user_ids() == []
    finally:
        storage.close()
