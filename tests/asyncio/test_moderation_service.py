"""Ring 2: the classroom controls through real sessions, hub, accounts and storage.

Time is the harness's injected wall clock (``wall_now``): expiry is tested by moving
it and calling ``tick``, never by sleeping."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from classcord import texts
from classcord.moderation import Role
from classcord.session import Session
from tests.support.harness import Harness, RecordingPeer


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.close()


def messages(peer: RecordingPeer) -> list[tuple[str, str | None, str]]:
    """(from, to, content) of every chat line sent since the last call."""
    return [(m["from"], m.get("to"), m["content"]) for m in peer.take() if m["type"] == "message"]


async def say(h: Harness, session: Session, content: str, **fields: Any) -> None:
    await h.send(session, {"type": "message", "subtype": "global", "content": content, **fields})


async def private(h: Harness, session: Session, to: str, content: str) -> None:
    await h.send(session, {"type": "message", "subtype": "private", "to": to, "content": content})


async def classroom(h: Harness) -> dict[str, tuple[Session, RecordingPeer]]:
    """A teacher, a moderator and two students, logged in; every buffer emptied."""
    people = {name: await h.user(name) for name in ("prof", "modo", "lea", "tom")}
    assert (await h.moderation.admin_set_role("prof", Role.TEACHER)).ok
    assert (await h.moderation.admin_set_role("modo", Role.MODERATOR)).ok
    for _, peer in people.values():
        peer.take()
    return people


def private_notice(name: str, text: str) -> tuple[str, str | None, str]:
    return (texts.SERVER_NAME, name, text)


async def test_a_student_cannot_use_a_command_whatever_the_spelling(harness: Harness) -> None:
    people = await classroom(harness)
    lea, lea_peer = people["lea"]
    for typed in ("/mute tom", "/MUTE tom", "/ｍｕｔｅ tom", "  /mute tom 10m", "/ban tom"):
        await say(harness, lea, typed)
        verb = "ban" if "ban" in typed else "mute"
        assert messages(lea_peer) == [
            private_notice("lea", texts.MOD_RESERVED.format(verb=verb))
        ], typed
    guest, guest_peer = harness.connect()
    await say(harness, guest, "/silence", **{"from": "prof"})
    assert messages(guest_peer) == [
        private_notice(guest.name, texts.MOD_RESERVED.format(verb="silence"))
    ]
    assert guest.role is Role.STUDENT
    assert guest.name != "prof"
    # Nothing was broadcast, and no rule exists.
    assert messages(people["tom"][1]) == []
    assert not harness.moderation.state.active


async def test_a_moderator_cannot_act_on_a_teacher_nor_ban(harness: Harness) -> None:
    people = await classroom(harness)
    modo, modo_peer = people["modo"]
    await say(harness, modo, "/mute prof 10m")
    refusal = texts.MOD_NOT_ON_TARGET.format(name="prof", role="professeur")
    assert messages(modo_peer) == [private_notice("modo", refusal)]
    await say(harness, modo, "/ban tom")
    assert messages(modo_peer) == [
        private_notice("modo", texts.MOD_TEACHER_ONLY.format(verb="ban"))
    ]
    await say(harness, modo, "/role tom moderator")
    assert messages(modo_peer) == [
        private_notice("modo", texts.MOD_TEACHER_ONLY.format(verb="role"))
    ]
    assert harness.moderation.state.mute_of("prof") is None


async def test_a_typo_gets_the_usage_line_and_is_never_broadcast(harness: Harness) -> None:
    people = await classroom(harness)
    prof, prof_peer = people["prof"]
    await say(harness, prof, "/mute")
    (notice,) = messages(prof_peer)
    assert notice[:2] == (texts.SERVER_NAME, "prof")
    assert texts.MOD_USAGE_MUTE in notice[2]
    await say(harness, prof, "/mutee tom")
    (notice,) = messages(prof_peer)
    assert texts.MOD_UNKNOWN_COMMAND.format(verb="mutee") in notice[2]
    assert messages(people["lea"][1]) == []


async def test_a_timed_mute_blocks_posts_not_reading_and_expires(harness: Harness) -> None:
    people = await classroom(harness)
    prof, _ = people["prof"]
    lea, lea_peer = people["lea"]
    tom, tom_peer = people["tom"]
    await say(harness, prof, "/mute lea 10m bavardages")
    assert (texts.SERVER_NAME, None, "lea est en sourdine jusqu'à 08:10.") in messages(tom_peer)
    assert private_notice(
        "lea",
        "Vous êtes en sourdine jusqu'à 08:10 (raison : bavardages). Vous pouvez"
        " toujours lire le chat.",
    ) in messages(lea_peer)
    await say(harness, lea, "coucou")
    assert messages(tom_peer) == []  # nothing broadcast
    assert messages(lea_peer) == [
        private_notice("lea", texts.MOD_MUTED_POST.format(until=" jusqu'à 08:10"))
    ]
    await say(harness, tom, "je parle")  # the others still can, and lea still reads
    assert messages(lea_peer) == [("tom", None, "je parle")]
    await private(harness, lea, "prof", "pardon")  # the teacher can still be reached
    assert messages(people["prof"][1])[-1] == ("lea", "prof", "pardon")
    await private(harness, lea, "tom", "psst")
    assert messages(tom_peer) == []
    assert messages(lea_peer) == [
        private_notice("lea", texts.MOD_MUTED_PRIVATE.format(until=" jusqu'à 08:10"))
    ]
    harness.wall_now += 9 * 60
    assert await harness.moderation.tick() == 0
    harness.wall_now += 61
    assert await harness.moderation.tick() == 1
    assert (texts.SERVER_NAME, None, "lea n'est plus en sourdine.") in messages(tom_peer)
    await say(harness, lea, "merci")
    assert messages(tom_peer) == [("lea", None, "merci")]


async def test_silence_lets_staff_speak_and_ends_on_command(harness: Harness) -> None:
    people = await classroom(harness)
    prof, _ = people["prof"]
    modo, _ = people["modo"]
    lea, lea_peer = people["lea"]
    await say(harness, prof, "/silence")
    lea_peer.take()
    await say(harness, lea, "hé")
    assert messages(lea_peer) == [
        private_notice("lea", texts.MOD_SILENCE_POST.format(where="", until=""))
    ]
    await say(harness, modo, "silence s'il vous plaît")
    assert messages(lea_peer) == [("modo", None, "silence s'il vous plaît")]
    await say(harness, prof, "/silence off")
    assert messages(lea_peer) == [
        (texts.SERVER_NAME, None, texts.MOD_ANNOUNCE_SILENCE_OFF.format(where=""))
    ]
    await say(harness, lea, "enfin")
    assert ("lea", None, "enfin") in messages(people["tom"][1])


async def test_silence_of_one_channel_leaves_the_others_open(harness: Harness) -> None:
    people = await classroom(harness)
    prof, _ = people["prof"]
    lea, lea_peer = people["lea"]
    for name in ("prof", "lea", "tom"):
        await harness.send(people[name][0], {"type": "join_channel", "channel": "#dev"})
    await say(harness, prof, "/silence #dev")
    lea_peer.take()
    await say(harness, lea, "dans dev", channel="#dev")
    assert messages(lea_peer) == [
        private_notice("lea", texts.MOD_SILENCE_POST.format(where=" dans #dev", until=""))
    ]
    await say(harness, lea, "dans general")
    assert ("lea", None, "dans general") in messages(people["tom"][1])


async def test_slow_mode_tells_the_seconds_left(harness: Harness) -> None:
    people = await classroom(harness)
    prof, _ = people["prof"]
    lea, lea_peer = people["lea"]
    tom_peer = people["tom"][1]
    await say(harness, prof, "/slow 30")
    messages(tom_peer)
    await say(harness, lea, "un")
    harness.wall_now += 10
    await say(harness, lea, "deux")
    assert messages(tom_peer) == [("lea", None, "un")]
    assert messages(lea_peer)[-1] == private_notice(
        "lea", texts.MOD_SLOW_POST.format(where="", seconds=20)
    )
    harness.wall_now += 20
    await say(harness, lea, "trois")
    assert messages(tom_peer) == [("lea", None, "trois")]
    await say(harness, prof, "/slow off")
    await say(harness, lea, "quatre")
    assert ("lea", None, "quatre") in messages(tom_peer)


async def test_private_lock_spares_messages_to_and_from_staff(harness: Harness) -> None:
    people = await classroom(harness)
    prof, _ = people["prof"]
    lea, lea_peer = people["lea"]
    _tom, tom_peer = people["tom"]
    await say(harness, prof, "/private off")
    messages(lea_peer)
    messages(tom_peer)
    await private(harness, lea, "tom", "psst")
    assert messages(tom_peer) == []
    assert messages(lea_peer) == [private_notice("lea", texts.MOD_PRIVATE_OFF)]
    await private(harness, lea, "modo", "aide")
    assert messages(people["modo"][1])[-1] == ("lea", "modo", "aide")
    await private(harness, prof, "tom", "viens")
    assert messages(tom_peer) == [("prof", "tom", "viens")]
    await say(harness, prof, "/private on")
    await private(harness, lea, "tom", "ok")
    assert ("lea", "tom", "ok") in messages(tom_peer)


async def test_delete_removes_from_history_and_tells_opted_in_clients(harness: Harness) -> None:
    people = await classroom(harness)
    prof, _ = people["prof"]
    lea, _ = people["lea"]
    watcher, watcher_peer = await harness.user("watcher")
    await harness.send(watcher, {"type": "hello", "features": ["moderation"]})
    for word in ("un", "deux", "trois"):
        await say(harness, lea, word)
    watcher_peer.take()
    await say(harness, prof, "/delete lea 2")
    (event,) = [m for m in watcher_peer.take() if m["type"] == "moderation"]
    assert event["event"] == "messages_removed"
    assert event["user"] == "lea"
    assert event["count"] == 2
    assert event["actor"] == "prof"
    assert [m["channel"] for m in event["messages"]] == ["#general", "#general"]
    assert event["text"] == texts.MOD_ANNOUNCE_MESSAGES_REMOVED.format(name="lea", count=2)
    await harness.send(watcher, {"type": "history"})
    (history,) = [m for m in watcher_peer.take() if m["type"] == "history"]
    assert [m["content"] for m in history["messages"]] == ["un"]
    # A legacy client reads the same news as a message from Serveur.
    assert (
        texts.SERVER_NAME,
        None,
        texts.MOD_ANNOUNCE_MESSAGES_REMOVED.format(name="lea", count=2),
    ) in messages(people["tom"][1])


async def test_kick_and_timed_ban_by_account(harness: Harness) -> None:
    people = await classroom(harness)
    prof, prof_peer = people["prof"]
    _tom, tom_peer = people["tom"]
    await say(harness, prof, "/kick tom calme-toi")
    assert tom_peer.closed_reason == "kick by prof"
    assert private_notice("tom", texts.MOD_YOU_KICKED.format(reason=" (raison : calme-toi)")) in (
        messages(tom_peer)
    )
    await say(harness, prof, "/ban tom 1h triche")
    again, again_peer = harness.connect()
    await harness.send(again, {"type": "login", "username": "tom", "password": "pw"})
    assert again_peer.take() == [
        {"type": "error", "message": texts.LOGIN_FAILED, "error": texts.LOGIN_FAILED}
    ]
    guest, _ = harness.connect()
    await say(harness, guest, "", **{"from": "invite"})
    await say(harness, prof, f"/ban {guest.name}")
    assert messages(prof_peer)[-1] == private_notice(
        "prof", texts.MOD_NO_ACCOUNT.format(name=guest.name)
    )
    harness.wall_now += 3601
    assert await harness.moderation.tick() == 1
    await harness.send(again, {"type": "login", "username": "tom", "password": "pw"})
    assert again_peer.take()[0]["status"] == "ok"


async def test_rules_roles_and_the_log_survive_a_restart(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    people = await classroom(first)
    prof, _ = people["prof"]
    await say(first, prof, "/mute lea 1h")
    await say(first, prof, "/slow 20 #dev")
    await say(first, prof, "/private off tom")
    await first.close()

    second = Harness(tmp_path)
    second.wall_now = first.wall_now + 60
    try:
        await second.accounts.load()
        await second.moderation.load()
        state = second.moderation.state
        assert state.mute_of("LEA") is not None
        assert state.slow_of("#dev") is not None
        assert not state.private_allowed("tom")
        assert second.moderation.role_of("prof") is Role.TEACHER
        lea, lea_peer = await second_login(second, "lea")
        await say(second, lea, "je suis revenue")
        assert messages(lea_peer)[-1][2].startswith("Vous êtes en sourdine")
        actions = [e.action.value for e in await second.moderation.log_entries(None, 100)]
        assert actions == ["role", "role", "mute", "slow", "private_off"]
        second.wall_now += 3600
        assert await second.moderation.tick() == 1
    finally:
        await second.close()
    db = sqlite3.connect(second.settings.database_path)
    kinds = sorted(row[0] for row in db.execute("SELECT kind FROM moderation_rules"))
    db.close()
    assert kinds == ["private", "slow"]


async def second_login(h: Harness, name: str) -> tuple[Session, RecordingPeer]:
    session, peer = h.connect()
    await h.send(session, {"type": "login", "username": name, "password": "pw"})
    assert peer.take()[0]["status"] == "ok"
    return session, peer


async def test_each_action_is_one_log_line_a_filter_can_read(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    people = await classroom(harness)
    caplog.set_level(logging.INFO, logger="classcord.moderation")
    await say(harness, people["prof"][0], '/mute tom 10m "parle\nfort" actor=admin')
    (line,) = [r.getMessage() for r in caplog.records if r.name == "classcord.moderation"]
    assert line.startswith("moderation: actor=prof action=mute target=tom until=")
    assert "\n" not in line
    assert line.count("actor=") == 1


async def test_the_moderate_request_and_typed_events(harness: Harness) -> None:
    people = await classroom(harness)
    prof, prof_peer = people["prof"]
    await harness.send(prof, {"type": "hello", "features": ["moderation"]})
    (hello,) = prof_peer.take()
    assert hello["role"] == "teacher"
    assert "moderation" in hello["features"]
    lea, lea_peer = people["lea"]
    await harness.send(lea, {"type": "hello", "features": ["moderation"]})
    lea_peer.take()
    await harness.send(prof, {"type": "moderate", "command": "mute lea 5m"})
    replies = prof_peer.take()
    assert replies[-1]["type"] == "moderate"
    assert replies[-1]["status"] == "ok"
    told = lea_peer.take()
    (muted,) = [m for m in told if m["type"] == "moderation"]  # the class's news, typed
    assert muted["event"] == "muted"
    assert muted["user"] == "lea"
    assert muted["until"] is not None
    assert told[-1]["to"] == "lea"  # and hers, in words
    await say(harness, lea, "hé")
    (refused,) = lea_peer.take()
    assert refused["event"] == "refused"
    assert refused["reason"] == "muted"
    assert refused["until"] is not None
    await harness.send(lea, {"type": "moderate", "command": "unmute lea"})
    (reply,) = lea_peer.take()
    assert reply == {
        "type": "moderate",
        "status": "refused",
        "lines": [texts.MOD_RESERVED.format(verb="unmute")],
    }
    await harness.send(prof, {"type": "moderate", "command": "who"})
    who = prof_peer.take()[-1]
    assert any(line.startswith("lea (élève, online), en sourdine") for line in who["lines"])


async def test_nobody_moderated_means_no_new_line_for_legacy_clients(harness: Harness) -> None:
    lea, _ = await harness.user("lea")
    _tom, tom_peer = await harness.user("tom")
    tom_peer.take()
    await say(harness, lea, "/join #dev")
    await say(harness, lea, "/who")  # a student's /who is reserved, not broadcast
    await say(harness, lea, "/shrug")  # not one of ours: an ordinary message
    assert messages(tom_peer) == [("lea", None, "/shrug")]


async def test_backup_keeps_the_log_and_retention_prunes_it(harness: Harness) -> None:
    people = await classroom(harness)
    await say(harness, people["prof"][0], "/mute lea 1h")
    storage = harness.storage.storage
    copy = harness.settings.data_path / "copy.db"
    await harness.storage.call(storage.backup_to, copy)
    db = sqlite3.connect(copy)
    try:
        actions = [row[0] for row in db.execute("SELECT action FROM moderation_log ORDER BY id")]
        rules = [row[0] for row in db.execute("SELECT kind FROM moderation_rules")]
    finally:
        db.close()
    assert actions == ["role", "role", "mute"]
    assert rules == ["mute"]
    # The log is kept as long as the history is: a year later it is gone.
    await harness.storage.call(storage.prune, 365, 0, harness.wall_now + 366 * 86_400)
    assert await harness.moderation.log_entries(None, 100) == []


# Each command as a ``moderate`` request and from the admin socket: (words, a text
# that proves the effect, read by a student as a message from Serveur).
EVERY_COMMAND = [
    ("announce Pause", "Pause"),
    ("mute lea 10m", "lea est en sourdine jusqu'à"),
    ("unmute lea", texts.MOD_ANNOUNCE_UNMUTED.format(name="lea")),
    ("silence 5m", "Silence jusqu'à"),
    ("silence off", texts.MOD_ANNOUNCE_SILENCE_OFF.format(where="")),
    ("slow 30 #general", texts.MOD_ANNOUNCE_SLOW_ON.format(where=" dans #general", seconds=30)),
    ("slow off #general", texts.MOD_ANNOUNCE_SLOW_OFF.format(where=" dans #general")),
    ("private off", texts.MOD_ANNOUNCE_PRIVATE_OFF),
    ("private on", texts.MOD_ANNOUNCE_PRIVATE_ON),
    ("delete tom", texts.MOD_ANNOUNCE_MESSAGE_REMOVED.format(name="tom")),
    ("role lea moderator", texts.MOD_ANNOUNCE_ROLE.format(name="lea", role="modérateur")),
    ("role lea student", texts.MOD_ANNOUNCE_ROLE.format(name="lea", role="élève")),
    ("kick tom", texts.MOD_ANNOUNCE_KICKED.format(name="tom")),
    ("ban tom 1h", "tom a été banni jusqu'à"),
    ("unban tom", None),
]


async def test_every_command_as_a_moderate_request(harness: Harness) -> None:
    people = await classroom(harness)
    prof, prof_peer = people["prof"]
    await harness.send(prof, {"type": "hello", "features": []})
    prof_peer.take()
    lea_peer = people["lea"][1]
    await say(harness, people["tom"][0], "un message à retirer")
    for words, proof in EVERY_COMMAND:
        await harness.send(prof, {"type": "moderate", "command": words})
        reply = [m for m in prof_peer.take() if m["type"] == "moderate"]
        assert reply[0]["status"] == "ok", (words, reply)
        if proof is not None:
            assert any(
                f == texts.SERVER_NAME and to is None and c.startswith(proof)
                for f, to, c in messages(lea_peer)
            ), words
    assert [e.action.value for e in await harness.moderation.log_entries(None, 100)][2:] == [
        "announce", "mute", "unmute", "silence", "unsilence", "slow", "unslow",
        "private_off", "private_on", "delete", "role", "role", "kick", "ban", "unban",
    ]  # fmt: skip
    for word in ("modlog 3", "who", "aide"):
        await harness.send(prof, {"type": "moderate", "command": word})
        (reply,) = [m for m in prof_peer.take() if m["type"] == "moderate"]
        assert reply["status"] == "ok"
        assert reply["lines"], word


async def test_every_command_from_the_admin_socket(tmp_path: Path) -> None:
    from classcord import admin_client
    from classcord.cli import start_server
    from tests.conftest import make_settings
    from tests.support.clients import LineClient

    server = await start_server(make_settings(tmp_path / "data"))
    try:
        clients = {}
        for name in ("lea", "tom", "zoe"):
            clients[name] = await LineClient.connect(server.port)
            await clients[name].account(name)
        await clients["tom"].send({"type": "message", "content": "à retirer"})
        path = server.settings.admin_socket_path
        for words, proof in EVERY_COMMAND:
            command, *args = words.split()
            reply = await asyncio.to_thread(admin_client.request, path, command, args)
            assert reply["ok"], (words, reply)
            if proof is not None:
                while True:
                    line = await clients["zoe"].recv_type("message")
                    if line["from"] == texts.SERVER_NAME and line["content"].startswith(proof):
                        break
        reply = await asyncio.to_thread(admin_client.request, path, "modlog", ["2"])
        assert [row["action"] for row in reply["result"]] == ["ban", "unban"]
        assert reply["result"][1]["actor"] == "admin"
        for client in clients.values():
            await client.close()
    finally:
        await server.shutdown()


async def test_a_silence_expires_on_time_and_survives_a_restart(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    people = await classroom(first)
    await say(first, people["prof"][0], "/silence #general 30m")
    await first.close()
    second = Harness(tmp_path)
    second.wall_now = first.wall_now + 29 * 60
    try:
        await second.accounts.load()
        await second.moderation.load()
        assert second.moderation.state.silence_of("#general") is not None
        lea, lea_peer = await second_login(second, "lea")
        tom, tom_peer = await second_login(second, "tom")
        await say(second, lea, "je peux ?")
        assert messages(lea_peer)[-1][2].startswith("Silence dans #general jusqu'à")
        second.wall_now += 61
        assert await second.moderation.tick() == 1
        assert messages(tom_peer)[-1] == (
            texts.SERVER_NAME,
            None,
            texts.MOD_ANNOUNCE_SILENCE_OFF.format(where=" dans #general"),
        )
        await say(second, lea, "merci")
        assert messages(tom_peer) == [("lea", None, "merci")]
        assert tom.role is Role.STUDENT
    finally:
        await second.close()


async def test_a_role_spelled_differently_in_the_database_grants_nothing(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    await first.user("prof")
    await first.close()
    db = sqlite3.connect(tmp_path / "data" / "classcord.db")
    db.execute("UPDATE users SET role = 'Teacher ' WHERE name = 'prof'")
    db.commit()
    db.close()
    second = Harness(tmp_path)
    try:
        await second.accounts.load()
        await second.moderation.load()
        prof, prof_peer = await second_login(second, "prof")
        assert prof.role is Role.STUDENT
        await say(second, prof, "/silence")
        assert messages(prof_peer) == [
            private_notice("prof", texts.MOD_RESERVED.format(verb="silence"))
        ]
    finally:
        await second.close()


async def test_a_look_alike_of_the_teacher_is_a_student(harness: Harness) -> None:
    people = await classroom(harness)
    # Fullwidth letters are the same name under the identity rule; a Greek rho for
    # the p mixes look-alike scripts: both refused...
    fake, fake_peer = harness.connect()
    await harness.send(fake, {"type": "register", "username": "ｐｒｏｆ", "password": "x"})
    assert fake_peer.take()[0]["message"] == texts.USERNAME_EXISTS
    await harness.send(fake, {"type": "register", "username": "ρrof", "password": "x"})
    assert fake_peer.take()[0]["message"].startswith("Nom invalide")
    # ...and as a guest it gets another name, and no role.
    await say(harness, fake, "/mute lea", **{"from": "ρrof"})
    assert fake.name != "ρrof"
    assert fake.role is Role.STUDENT
    assert harness.moderation.state.mute_of("lea") is None
    assert messages(people["lea"][1]) == []


async def test_a_ban_made_before_moderation_existed_is_kept(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    await first.user("tom")
    await first.close()
    db = sqlite3.connect(tmp_path / "data" / "classcord.db")
    # As schema 2 left it: the admin's ban was a column.
    db.execute("DROP TABLE moderation_rules")
    db.execute("DROP TABLE moderation_log")
    db.execute("ALTER TABLE users DROP COLUMN role")
    db.execute("UPDATE users SET banned = 1")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    second = Harness(tmp_path)
    try:
        await second.accounts.load()
        await second.moderation.load()
        assert second.moderation.state.ban_of("tom") is not None
        again, peer = second.connect()
        await second.send(again, {"type": "login", "username": "tom", "password": "pw"})
        assert peer.take()[0]["message"] == texts.LOGIN_FAILED
    finally:
        await second.close()


# --- found by review ---------------------------------------------------------------------


async def test_a_muted_moderator_can_look_but_not_speak(harness: Harness) -> None:
    people = await classroom(harness)
    modo, modo_peer = people["modo"]
    lea_peer = people["lea"][1]
    await say(harness, people["prof"][0], "/mute modo 1h")
    messages(modo_peer)
    messages(lea_peer)
    for typed in ("/announce JE SUIS MUET", "/silence", "/private off"):
        await say(harness, modo, typed)
        assert messages(modo_peer) == [private_notice("modo", texts.MOD_MUTED_COMMAND)]
    await private(harness, modo, "lea", "psst")
    assert messages(lea_peer) == []
    await private(harness, modo, "prof", "pardon")
    assert messages(people["prof"][1])[-1] == ("modo", "prof", "pardon")
    await say(harness, modo, "/who")
    assert any("modo (modérateur, online), en sourdine" in c for _, _, c in messages(modo_peer))
    assert not harness.moderation.state.silence_of(None)


async def test_delete_reaches_a_guest_who_left(harness: Harness) -> None:
    people = await classroom(harness)
    troll, _ = harness.connect()
    await say(harness, troll, "insulte 1", **{"from": "troll"})
    await say(harness, troll, "insulte 2")
    harness.disconnect(troll)
    await say(harness, people["prof"][0], "/delete troll 2")
    assert (
        texts.SERVER_NAME,
        None,
        texts.MOD_ANNOUNCE_MESSAGES_REMOVED.format(name="troll", count=2),
    ) in messages(people["lea"][1])
    lea = people["lea"][0]
    await harness.send(lea, {"type": "history"})
    (history,) = [m for m in people["lea"][1].take() if m["type"] == "history"]
    assert [m["from"] for m in history["messages"] if m["from"] == "troll"] == []


async def test_delete_during_an_outage_removes_nothing_or_everything(harness: Harness) -> None:
    people = await classroom(harness)
    tom = people["tom"][0]
    storage = harness.storage.storage
    working = storage.add_messages, storage.delete_latest

    def outage(*args: object) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    storage.add_messages = outage  # type: ignore[assignment]
    storage.delete_latest = outage  # type: ignore[assignment]
    try:
        for word in ("un", "deux", "trois"):
            await say(harness, tom, word)
        await say(harness, people["prof"][0], "/delete tom 5")  # 3 in memory, more wanted
        assert messages(people["prof"][1])[-1][2].startswith("Messages non retirés")
        assert harness.history.pending_count == 3  # nothing was lost
        await say(harness, people["prof"][0], "/delete tom 2")  # all in memory: done
        assert harness.history.pending_count == 1
    finally:
        storage.add_messages, storage.delete_latest = working  # type: ignore[method-assign]


async def test_a_rule_set_again_is_not_announced_as_ended(harness: Harness) -> None:
    people = await classroom(harness)
    prof = people["prof"][0]
    lea, lea_peer = people["lea"]
    await say(harness, prof, "/mute lea 1m")
    harness.wall_now += 61
    await say(harness, lea, "libre ?")  # drops the old mute on the way
    await say(harness, prof, "/mute lea 10m")
    messages(lea_peer)
    await harness.moderation.tick()
    assert messages(lea_peer) == []  # no "lea n'est plus en sourdine"
    assert harness.moderation.state.mute_of("lea") is not None


async def test_slow_mode_does_not_count_a_refused_post(harness: Harness) -> None:
    people = await classroom(harness)
    await say(harness, people["prof"][0], "/slow 60")
    tom, tom_peer = people["tom"]
    tom_peer.take()
    await say(harness, tom, "ailleurs", channel="#nope")
    assert tom_peer.take()[0]["type"] == "error"
    await say(harness, tom, "ici")
    assert ("tom", None, "ici") in messages(people["lea"][1])


async def test_a_muted_user_types_unseen(harness: Harness) -> None:
    people = await classroom(harness)
    watcher, watcher_peer = await harness.user("watcher")
    await harness.send(watcher, {"type": "hello", "features": ["typing"]})
    await say(harness, people["prof"][0], "/mute lea")
    watcher_peer.take()
    await harness.send(people["lea"][0], {"type": "typing"})
    await harness.send(people["tom"][0], {"type": "typing"})
    assert [m["user"] for m in watcher_peer.take() if m["type"] == "typing"] == ["tom"]


async def test_a_long_moderate_command_is_an_error(harness: Harness) -> None:
    people = await classroom(harness)
    prof, prof_peer = people["prof"]
    await harness.send(prof, {"type": "moderate", "command": "announce " + "x" * 5000})
    (error,) = prof_peer.take()
    assert error["type"] == "error"
    assert messages(people["lea"][1]) == []


async def test_admin_words_are_kept_as_typed_and_bad_ones_refused(tmp_path: Path) -> None:
    from classcord import admin_client
    from classcord.cli import start_server
    from tests.conftest import make_settings
    from tests.support.clients import LineClient

    server = await start_server(make_settings(tmp_path / "data"))
    try:
        lea = await LineClient.connect(server.port)
        await lea.account("lea")
        path = server.settings.admin_socket_path

        async def admin(command: str, *args: str) -> dict[str, Any]:
            return await asyncio.to_thread(admin_client.request, path, command, list(args))

        assert (await admin("announce", "Le cours reprend à 14h"))["ok"]
        assert (await lea.recv_type("message"))["content"] == "Le cours reprend à 14h"
        assert (await admin("mute", "lea", "10m", "parle trop"))["ok"]
        (entry,) = await server.moderation.log_entries(None, 1)
        assert entry.reason == "parle trop"
        refused = await admin("mute", "lea", "1h", "bad\ud800")
        assert refused["ok"] is False
        assert "surrogate" in refused["error"]
        for count in ("99999999999999999999", "²", "0x10"):
            assert (await admin("modlog", count))["ok"] is False, count
        assert len((await admin("modlog", "1"))["result"]) == 1
        await lea.close()
    finally:
        await server.shutdown()
