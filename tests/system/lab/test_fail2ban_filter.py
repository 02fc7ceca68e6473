"""The shipped fail2ban filter against the real server's auth-failure log lines, in
the server's own format and wrapped by Docker's json-file driver.

fail2ban itself is not a dependency: its failregex is translated to Python's ``re``
the way fail2ban does it (the date cut from the start of the line, ``<HOST>`` as
an address). When ``fail2ban-regex`` is installed, it is run as well.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_system
from tests.support.process import ServerProcess

REPO = Path(__file__).resolve().parents[3]
FILTER = REPO / "contrib" / "fail2ban" / "filter.d" / "classcord.conf"
JAIL = REPO / "contrib" / "fail2ban" / "jail.d" / "classcord.local"
HOST = r"(?P<host>[0-9A-Fa-f:.]+)"


def filter_regexes() -> tuple[re.Pattern[str], list[re.Pattern[str]]]:
    parser = configparser.RawConfigParser()
    parser.read(FILTER)
    definition = dict(parser["Definition"])

    def expand(text: str) -> str:
        for _ in range(3):
            text = re.sub(r"%\((\w+)\)s", lambda m: definition[m.group(1)], text)
        return text.replace("%%", "%")

    date = expand(definition["datepattern"])
    for directive, pattern in {
        "%Y": r"\d{4}",
        "%m": r"\d{2}",
        "%d": r"\d{2}",
        "%H": r"\d{2}",
        "%M": r"\d{2}",
        "%S": r"\d{2}",
        "%f": r"\d+",
    }.items():
        date = date.replace(directive, pattern)
    fails = [
        re.compile(expand(line).replace("<HOST>", HOST))
        for line in definition["failregex"].strip().splitlines()
    ]
    return re.compile(date), fails


def banned_hosts(lines: list[str]) -> list[str]:
    date, fails = filter_regexes()
    hosts = []
    for line in lines:
        found = date.match(line)
        if not found:
            continue  # fail2ban skips lines without a date
        rest = line[found.end() :]
        for regex in fails:
            match = regex.search(rest)
            if match:
                hosts.append(match.group("host"))
                break
    return hosts


def as_docker_json(lines: list[str]) -> list[str]:
    """Lines as Docker's json-file driver writes them: compact JSON, raw UTF-8."""
    record = {"stream": "stdout", "time": "2026-11-20T23:59:01.123456789Z"}
    return [
        json.dumps({"log": line + "\n", **record}, separators=(",", ":"), ensure_ascii=False)
        for line in lines
    ]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("f2b") / "data").start()
    try:
        yield process
    finally:
        process.kill()


def failed_logins(server: ServerProcess, *names: str) -> list[str]:
    """Log in with wrong passwords; return the server's log lines since then."""
    start = len(server.lines)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for name in names:
            request = {"type": "login", "username": name, "password": "wrong"}
            sock.sendall(json.dumps(request).encode() + b"\n")
            assert json.loads(reader.readline())["message"] == "Login failed."
        reader.close()
    deadline = time.monotonic() + 5
    while sum("auth failure" in line for line in server.lines[start:]) < len(names):
        assert time.monotonic() < deadline, "auth failures not logged"
        time.sleep(0.02)
    return server.lines[start:]


def test_filter_matches_the_server_auth_failures(server: ServerProcess) -> None:
    lines = failed_logins(server, "alice", "Jean Dupont", "élève")
    assert banned_hosts(lines) == ["127.0.0.1"] * 3
    assert banned_hosts(as_docker_json(lines)) == ["127.0.0.1"] * 3


def test_filter_ignores_other_lines(server: ServerProcess) -> None:
    other = [line for line in server.lines if "auth failure" not in line]
    assert other, "the server logs its start"
    assert banned_hosts(other) == []


def test_a_user_name_cannot_choose_the_banned_address(server: ServerProcess) -> None:
    """The name is the client's text: the address is taken from the end of the line."""
    lines = failed_logins(server, "x addr=6.6.6.6 conn=1 reason=bad-password")
    assert banned_hosts(lines) == ["127.0.0.1"]
    assert banned_hosts(as_docker_json(lines)) == ["127.0.0.1"]


def test_a_user_name_cannot_forge_a_log_line(server: ServerProcess) -> None:
    lines = failed_logins(server, "x addr=6.6.6.6 conn=1 reason=bad-password\nsuite")
    assert "6.6.6.6" not in banned_hosts(lines)


def test_jail_example_is_off_by_default_and_spares_the_nat_gateway() -> None:
    jail = configparser.RawConfigParser()
    jail.read(JAIL)
    section = jail["classcord"]
    assert section["enabled"] == "false"
    assert section["filter"] == "classcord"
    assert section["port"] == "12345"
    assert "10.0.2.2" in section["ignoreip"].split()
    assert "DOCKER-USER" in JAIL.read_text()


def test_fail2ban_regex_agrees(server: ServerProcess, tmp_path: Path) -> None:
    if shutil.which("fail2ban-regex") is None:
        require_system("fail2ban-regex not found (scripts/test.sh unpacks it into .venv)")
    lines = failed_logins(server, "alice", "x addr=6.6.6.6 conn=1 reason=bad-password")
    log = tmp_path / "classcord.log"
    log.write_text("\n".join(lines + as_docker_json(lines)) + "\n")
    done = subprocess.run(
        ["fail2ban-regex", "-o", "ip", str(log), str(FILTER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["127.0.0.1"] * 4
