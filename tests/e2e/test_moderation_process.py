"""Ring 3: the classroom controls against the real ``python3 -m classcord`` process,
typed as content by emulations of each legacy client family, and from the admin
command line. Expiry is tested in ring 2 with an injected clock; here durations are
long and only their survival across a restart is checked."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from classcord import admin_client, texts
from tests.support.clients import LineClient
from tests.support.process import ServerProcess

# How each family writes a global message (PROTOCOL-COMPAT.md): A and C in the
# Windows charset with CRLF, B with its own "from" and a timestamp, C without "from".
FAMILIES: dict[str, dict[str, Any]] = {
    "A": {"encoding": "cp1252", "ending": b"\r\n", "extra": {}},
    "B": {"encoding": "utf-8", "ending": b"\n", "extra": {"timestamp": "2025-06-20T14:52:43"}},
    "C": {"encoding": "cp1252", "ending": b"\r\n", "extra": {}},
}


def admin(data_dir: Path, command: str, *args: str) -> int:
    parser = argparse.ArgumentParser()
    admin_client.add_arguments(parser)
    return admin_client.run(parser.parse_args([command, *args, "--data-dir", str(data_dir)]))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path_factory.mktemp("moderation") / "data").start()
    yield running
    running.terminate()


async def typed(client: LineClient, family: str, user: str, content: str) -> None:
    """A global message as that family writes it, bytes and all."""
    style = FAMILIES[family]
    message: dict[str, Any] = {"type": "message", "subtype": "global", "content": content}
    if family == "B":
        message["from"] = user
    message.update(style["extra"])
    raw = json.dumps(message, ensure_ascii=False).encode(style["encoding"]) + style["ending"]
    await client.send_raw(raw)


async def chat_lines(client: LineClient, count: int) -> list[tuple[str, str | None, str]]:
    lines = []
    while len(lines) < count:
        line = await client.recv_type("message")
        lines.append((line["from"], line.get("to"), line["content"]))
    return lines


async def teacher_and_two_students(
    server: ServerProcess, family: str, *prefixes: str
) -> dict[str, LineClient]:
    """Three logged-in clients, names unique to this test, the first one a teacher."""
    suffix = f"{family}{time.monotonic_ns() % 10**6}"
    clients = {}
    for prefix in prefixes:
        name = prefix + suffix
        clients[name] = await LineClient.connect(server.port)
        await clients[name].sign_in(name)
    teacher = next(iter(clients))
    assert await asyncio.to_thread(admin, server.data_path, "role", teacher, "teacher") == 0
    return clients


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_a_teacher_on_each_legacy_family_mutes_and_unmutes(
    server: ServerProcess, family: str
) -> None:
    clients = await teacher_and_two_students(server, family, "Prof", "Léa", "Tom")
    teacher, student, other = clients
    for name in (teacher, student, other):
        # The role's announcement reaches everyone, as a message from Serveur.
        role_news = texts.MOD_ANNOUNCE_ROLE.format(name=teacher, role="professeur")
        assert (texts.SERVER_NAME, None, role_news) in await chat_lines(
            clients[name], 1 + (name == teacher)
        )
    if family == "C":
        await clients[teacher].send({"type": "status", "state": "online"})
    await typed(clients[teacher], family, teacher, f"/mute {student} 2h bavardages")
    announced = await chat_lines(clients[other], 1)
    assert announced[0][:2] == (texts.SERVER_NAME, None)
    assert announced[0][2].startswith(f"{student} est en sourdine jusqu")
    await chat_lines(clients[student], 2)  # the class's news and hers

    await typed(clients[student], "B", student, "je parle quand même")
    (notice,) = await chat_lines(clients[student], 1)
    # Family B shows a private message only when ``to`` is its user: it is.
    assert notice[:2] == (texts.SERVER_NAME, student)
    assert notice[2].startswith("Vous êtes en sourdine jusqu")
    await clients[other].expect_silence(0.3)  # nothing was broadcast

    await typed(clients[teacher], family, teacher, f"/unmute {student}")
    unmuted = texts.MOD_ANNOUNCE_UNMUTED.format(name=student)
    assert (texts.SERVER_NAME, None, unmuted) in await chat_lines(clients[other], 1)
    await chat_lines(clients[student], 2)
    await typed(clients[student], "B", student, "merci")
    assert await chat_lines(clients[other], 1) == [(student, None, "merci")]
    for client in clients.values():
        await client.close()


async def until_said(client: LineClient, content: str, to: str | None = None) -> dict[str, Any]:
    """Read until the message from Serveur that starts with ``content`` (others skipped)."""
    while True:
        line = await client.recv_type("message")
        said = (line["from"], line.get("to"), line["content"][: len(content)])
        if said == (texts.SERVER_NAME, to, content):
            return line


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_every_command_typed_as_content_by_each_family(
    server: ServerProcess, family: str
) -> None:
    clients = await teacher_and_two_students(server, family, "Ens", "Ana", "Max")
    prof, lea, tom = clients
    teacher, student, other = clients.values()

    async def command(content: str) -> None:
        await typed(teacher, family, prof, content)

    await command("/announce Pause de 10 minutes")
    await until_said(other, "Pause de 10 minutes")
    await command("/silence")
    await until_said(other, texts.MOD_ANNOUNCE_SILENCE_ON.format(where="", until=""))
    await typed(other, "B", tom, "chut ?")
    await until_said(other, "Silence : personne ne peut", to=tom)
    await command("/silence off")
    await until_said(other, texts.MOD_ANNOUNCE_SILENCE_OFF.format(where=""))
    await command("/slow 600")
    await until_said(other, texts.MOD_ANNOUNCE_SLOW_ON.format(where="", seconds=600))
    await typed(other, "B", tom, "premier")
    await typed(other, "B", tom, "second")
    await until_said(other, "Mode lent : attendez", to=tom)
    await command("/slow off")
    await until_said(other, texts.MOD_ANNOUNCE_SLOW_OFF.format(where=""))
    await command("/private off")
    await until_said(other, texts.MOD_ANNOUNCE_PRIVATE_OFF)
    await other.send({"type": "message", "subtype": "private", "to": lea, "content": "psst"})
    await until_said(other, texts.MOD_PRIVATE_OFF, to=tom)
    await command("/private on")
    await until_said(other, texts.MOD_ANNOUNCE_PRIVATE_ON)
    await command(f"/delete {tom}")
    await until_said(student, texts.MOD_ANNOUNCE_MESSAGE_REMOVED.format(name=tom))
    await other.send({"type": "history"})
    history = await other.recv_type("history")
    assert [m["content"] for m in history["messages"] if m["from"] == tom] == []
    await command("/who")
    await until_said(teacher, f"{lea} (élève, online)", to=prof)
    await command("/modlog 2")
    await until_said(teacher, "", to=prof)
    await command(f"/role {lea} moderator")
    await until_said(other, texts.MOD_ANNOUNCE_ROLE.format(name=lea, role="modérateur"))
    await command(f"/role {lea} student")
    await until_said(other, texts.MOD_ANNOUNCE_ROLE.format(name=lea, role="élève"))
    await command(f"/kick {tom} dehors")
    assert await other.closed()
    await command(f"/ban {lea} 1h")
    assert await student.closed()
    again = await LineClient.connect(server.port)
    assert (await again.login(lea))["message"] == texts.LOGIN_FAILED
    await command(f"/unban {lea}")
    await until_said(teacher, texts.MOD_DONE_UNBANNED.format(name=lea), to=prof)
    assert (await again.login(lea))["status"] == "ok"
    for client in (teacher, student, other, again):
        await client.close()


async def test_a_student_command_is_never_broadcast(server: ServerProcess) -> None:
    lea, tom = await LineClient.connect(server.port), await LineClient.connect(server.port)
    await lea.sign_in("eleve1")
    await tom.sign_in("eleve2")
    await lea.recv_type("status")  # eleve1 saw eleve2 arrive; eleve2 reads nothing yet
    await typed(lea, "B", "eleve1", "/ｍｕｔｅ eleve2")
    (notice,) = await chat_lines(lea, 1)
    assert notice == (texts.SERVER_NAME, "eleve1", texts.MOD_RESERVED.format(verb="mute"))
    await tom.expect_silence(0.3)
    await lea.close()
    await tom.close()


async def test_rules_and_the_log_survive_a_restart_and_admin_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = ServerProcess(tmp_path / "data").start()
    try:
        prof, lea = await LineClient.connect(running.port), await LineClient.connect(running.port)
        await prof.sign_in("prof")
        await lea.sign_in("lea")
        assert await asyncio.to_thread(admin, running.data_path, "role", "prof", "teacher") == 0
        await typed(prof, "A", "prof", "/slow 30")
        assert (
            await asyncio.to_thread(admin, running.data_path, "mute", "lea", "1h", "trop", "fort")
            == 0
        )
        assert "lea est en sourdine" in capsys.readouterr().out
        assert running.wait_for_log("moderation: actor=admin action=mute target=lea until=")
        await prof.close()
        await lea.close()
    finally:
        assert running.terminate() == 0
    again = ServerProcess(tmp_path / "data").start()
    try:
        lea = await LineClient.connect(again.port)
        await lea.sign_in("lea")
        await typed(lea, "B", "lea", "re")
        (notice,) = await chat_lines(lea, 1)
        assert notice[2].startswith("Vous êtes en sourdine jusqu")
        capsys.readouterr()
        assert (
            await asyncio.to_thread(admin, again.data_path, "modlog", "--since", "1h", "--json")
            == 0
        )
        reply = json.loads(capsys.readouterr().out)
        rows = reply["result"]
        assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
            ("admin", "role", "prof"),
            ("prof", "slow", ""),
            ("admin", "mute", "lea"),
        ]
        assert rows[2]["reason"] == "trop fort"
        assert rows[2]["until"] is not None
        assert await asyncio.to_thread(admin, again.data_path, "modlog") == 0
        assert "action=mute target=lea" in capsys.readouterr().out
        assert await asyncio.to_thread(admin, again.data_path, "unmute", "lea") == 0
        await lea.close()
    finally:
        assert again.terminate() == 0
