"""End to end: the real ``python3 -m classcord`` process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from classcord import __version__, texts
from classcord.config import Settings, env_name
from classcord.storage import Storage
from tests.support.clients import LineClient
from tests.support.process import ServerProcess


def classcord(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "classcord", *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        cwd=cwd,
        env=dict(os.environ, **env),
    )


@pytest.fixture
def running(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data").start()
    yield server
    server.kill()


def test_version_and_help_document_every_setting() -> None:
    assert classcord("--version").stdout.strip() == f"classcord {__version__}"
    help_text = classcord("--help").stdout
    for name in Settings.__dataclass_fields__:
        assert env_name(name) in help_text
        assert "--" + name.replace("_", "-") in help_text
    assert "healthcheck" in help_text


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["--port", "seventy"], {}, "--port"),
        (["--port", "70000"], {}, "port must be between"),
        ([], {"CLASSCORD_RATE_BURST": "0"}, "rate_burst must be at least"),
        ([], {"CLASSCORD_TCP_KEEPALIVE": "maybe"}, "CLASSCORD_TCP_KEEPALIVE"),
        (["--scrypt-n", "1000"], {}, "power of two"),
    ],
)
def test_invalid_settings_give_one_line_and_exit_2(
    args: list[str], env: dict[str, str], fragment: str, tmp_path: Path
) -> None:
    result = classcord(*args, cwd=tmp_path, **env)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_real_process_chat_and_sigterm_notice(running: ServerProcess) -> None:
    alice = await LineClient.connect(running.port)
    bob = await LineClient.connect(running.port)
    await alice.account("alice")
    await bob.account("bob")
    await alice.recv_type("status")
    await bob.send({"type": "message", "content": "bonjour"})
    assert (await alice.recv())["content"] == "bonjour"
    started = time.monotonic()
    assert running.terminate() == 0
    assert time.monotonic() - started < 5
    for client in (alice, bob):
        notice = await client.recv_type("message")
        assert notice["from"] == "Serveur"
        assert notice["content"] == texts.SHUTDOWN_NOTICE
        await client.close()
    assert "auth failure" not in running.log
    assert "secret" not in running.log  # passwords are never logged


async def test_auth_failures_are_logged_for_fail2ban(running: ServerProcess) -> None:
    client = await LineClient.connect(running.port)
    assert (await client.login("ghost", "secret"))["message"] == "Login failed."
    await client.close()
    assert running.wait_for_log("auth failure: user=ghost addr=127.0.0.1 conn=")


def test_healthcheck_exit_codes(running: ServerProcess) -> None:
    ok = classcord("healthcheck", "--port", str(running.port))
    assert ok.returncode == 0, ok.stdout
    running.terminate()
    down = classcord("healthcheck", "--port", str(running.port), "--timeout", "1")
    assert down.returncode == 1


def test_healthcheck_reads_the_port_variable(running: ServerProcess) -> None:
    assert classcord("healthcheck", CLASSCORD_PORT=str(running.port)).returncode == 0


def test_default_data_folder_is_data_in_the_working_directory(tmp_path: Path) -> None:
    server = ServerProcess(Path("data"))
    server.start()
    try:
        assert server.wait_for_log("database data/classcord.db")
    finally:
        server.terminate()
    assert Path("data/classcord.db").exists()


def _pickle(obj: object) -> bytes:
    return pickle.dumps(obj)


def test_import_users_hashes_the_old_pickle(tmp_path: Path) -> None:
    legacy = tmp_path / "users.pkl"
    legacy.write_bytes(_pickle({"alice": "pw1", "bob": "pw2", "bad\nname": "x", "empty": ""}))
    data = tmp_path / "data"
    result = classcord(
        "import-users", str(legacy), "--data-dir", str(data), CLASSCORD_SCRYPT_N="1024"
    )
    assert result.returncode == 0, result.stderr
    assert "imported 2 users" in result.stdout
    storage = Storage(data / "classcord.db")
    try:
        alice = storage.get_user("alice")
        assert alice is not None
        assert alice.password_hash.startswith("scrypt$1024$")
        assert "pw1" not in alice.password_hash
    finally:
        storage.close()
    again = classcord("import-users", str(legacy), "--data-dir", str(data))
    assert "2 already existed" in again.stdout


class Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/classcord-pwned",))


@pytest.mark.parametrize(
    "payload",
    [_pickle(Exploit()), _pickle(["alice", "pw"]), _pickle({"alice": 3}), b"not a pickle"],
)
def test_import_users_refuses_anything_but_a_dict_of_strings(
    payload: bytes, tmp_path: Path
) -> None:
    legacy = tmp_path / "users.pkl"
    legacy.write_bytes(payload)
    result = classcord("import-users", str(legacy), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "classcord import-users:" in result.stderr
    assert not Path("/tmp/classcord-pwned").exists()


async def test_backup_makes_a_restorable_copy_with_retention(running: ServerProcess) -> None:
    client = await LineClient.connect(running.port)
    await client.account("alice")
    await client.close()
    data = running.data_path
    for _ in range(3):
        result = classcord("backup", "--data-dir", str(data), "--keep", "2")
        assert result.returncode == 0, result.stderr
        await asyncio.sleep(1.05)  # backup names have one-second resolution
    backups = sorted((data / "backups").glob("classcord-*.db"))
    assert len(backups) == 2
    copy = Storage(backups[-1])
    try:
        assert copy.get_user("alice") is not None
        assert copy.integrity_ok()
    finally:
        copy.close()


def test_backup_without_a_database_fails(tmp_path: Path) -> None:
    result = classcord("backup", "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "no database" in result.stderr


async def test_log_file_gets_the_same_lines_as_stdout(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "classcord.log"
    server = ServerProcess(tmp_path / "data", 0, "--log-file", str(log_file)).start()
    try:
        client = await LineClient.connect(server.port)
        await client.login("ghost", "hunter2")
        await client.close()
        assert server.wait_for_log("auth failure: user=ghost")
    finally:
        assert server.terminate() == 0
    written = log_file.read_text(encoding="utf-8")
    assert "listening on 127.0.0.1" in written
    assert "auth failure: user=ghost" in written
    assert "hunter2" not in written


def test_check_names_reports_accounts_an_earlier_rule_let_in(tmp_path: Path) -> None:
    data = tmp_path / "data"
    storage = Storage(data / "classcord.db")
    try:
        # As the casefold-only rule stored them: three accounts, one name now.
        for name in ("alice", "ａlice", "bob", "Serveur2", "zoe\u0301"):
            storage.add_user(name, name.casefold(), "scrypt$2$1$1$AAAA$AAAA")
    finally:
        storage.close()
    done = classcord("check-names", "--data-dir", str(data))
    assert done.returncode == 1
    assert "alice, ａlice" in done.stdout
    assert "bob" not in done.stdout
    empty = tmp_path / "empty"
    Storage(empty / "classcord.db").close()
    assert classcord("check-names", "--data-dir", str(empty)).returncode == 0


async def test_start_up_brings_name_keys_up_to_date_and_reports_clashes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    storage = Storage(data / "classcord.db")
    try:
        storage.add_user("alice", "alice", "scrypt$2$1$1$AAAA$AAAA")
        storage.add_user("ａlice", "ａlice", "scrypt$2$1$1$AAAA$AAAA")
        storage.add_user("𝐛𝐨𝐛", "𝐛𝐨𝐛", "scrypt$2$1$1$AAAA$AAAA")
    finally:
        storage.close()
    server = ServerProcess(data).start()
    try:
        assert server.wait_for_log("names: account ａlice is the same name as alice")
        guest = await LineClient.connect(server.port)
        # The math-bold account's key is now "bob": a guest asking for bob is bob_2.
        await guest.send({"type": "message", "from": "bob", "content": ""})
        await guest.send({"type": "users"})
        assert (await guest.recv_type("users"))["users"] == ["bob_2"]
        await guest.close()
    finally:
        server.kill()
