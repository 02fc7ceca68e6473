"""Extensions (channels, history, hello, typing, admin) end to end over sockets.
Legacy clients, who never opt in, must see nothing new."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

from classcord import admin_client, texts
from classcord.cli import start_server
from classcord.server import ClassCordServer
from tests.conftest import make_settings
from tests.support.clients import LineClient


async def connected(
    server: ClassCordServer, name: str, hello: list[str] | None = None
) -> LineClient:
    client = await LineClient.connect(server.port)
    if hello is not None:
        await client.send({"type": "hello", "features": hello})
        await client.recv_type("hello")
    await client.account(name)
    return client


async def settle(*clients: LineClient) -> None:
    """Every request sent so far has been handled (ping round trips)."""
    for client in clients:
        await client.send({"type": "ping"})
        await client.recv_type("pong")


async def drain(client: LineClient) -> list[dict[str, Any]]:
    await client.send({"type": "ping"})
    lines = []
    while (line := await client.recv())["type"] != "pong":
        lines.append(line)
    return lines


async def test_channels_route_only_to_members_and_legacy_clients_keep_the_default(
    server: ClassCordServer,
) -> None:
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    legacy = await connected(server, "legacy")
    await alice.send({"type": "join_channel", "channel": "#dev"})
    assert await alice.recv_type("join_channel") == {
        "type": "join_channel",
        "status": "ok",
        "channel": "#dev",
        "members": 1,
    }
    await bob.send({"type": "join_channel", "channel": "Dev"})
    assert (await bob.recv_type("join_channel"))["members"] == 2
    await alice.send({"type": "message", "subtype": "global", "channel": "#dev", "content": "dev!"})
    got = await bob.recv_type("message")
    assert (got["channel"], got["content"], got["from"]) == ("#dev", "dev!", "alice")
    await alice.send({"type": "message", "content": "tout le monde"})
    assert (await legacy.recv_type("message"))["content"] == "tout le monde"
    assert all(line.get("channel") != "#dev" for line in await drain(legacy))
    await legacy.send({"type": "channels"})
    channels = (await legacy.recv_type("channels"))["channels"]
    assert {"name": "#dev", "members": 2} in channels
    assert {"name": "#general", "members": 3} in channels
    for client in (alice, bob, legacy):
        await client.close()


async def test_channel_errors_keep_the_session(server: ClassCordServer) -> None:
    alice = await connected(server, "alice")
    await alice.send({"type": "message", "channel": "#secret", "content": "x"})
    assert (await alice.recv())["message"] == texts.NOT_IN_CHANNEL.format(channel="#secret")
    await alice.send({"type": "join_channel", "channel": "#a b"})
    assert (await alice.recv())["type"] == "error"
    await alice.send({"type": "leave_channel", "channel": "#general"})
    assert (await alice.recv())["type"] == "error"
    await settle(alice)
    await alice.close()


async def test_channel_allowlist(tmp_path: Path) -> None:
    server = await start_server(make_settings(tmp_path / "d", channel_allowlist="#dev,#reseau"))
    try:
        alice = await connected(server, "alice")
        await alice.send({"type": "join_channel", "channel": "#jeux"})
        assert (await alice.recv())["message"] == texts.CHANNEL_NOT_ALLOWED.format(channel="#jeux")
        await alice.send({"type": "list_channels"})
        names = [c["name"] for c in (await alice.recv())["channels"]]
        assert names == ["#dev", "#general", "#reseau"]
        await alice.close()
    finally:
        await server.shutdown()


async def test_slash_join_typed_by_a_legacy_client_answers_with_a_plain_notice(
    server: ClassCordServer,
) -> None:
    legacy = await connected(server, "legacy")
    other = await connected(server, "other")
    await legacy.send({"type": "message", "subtype": "global", "content": "/join #dev"})
    notice = await legacy.recv_type("message")
    assert notice["from"] == "Serveur"
    assert notice["content"] == texts.JOINED.format(channel="#dev")
    assert all(line.get("content") != "/join #dev" for line in await drain(other))
    await other.send({"type": "join_channel", "channel": "#dev"})
    await other.recv_type("join_channel")
    await other.send({"type": "message", "channel": "#dev", "content": "salut #dev"})
    assert (await legacy.recv_type("message"))["channel"] == "#dev"
    await legacy.close()
    await other.close()


async def test_slash_join_answers_in_the_system_shape_after_opting_in(
    server: ClassCordServer,
) -> None:
    modern = await connected(server, "modern", hello=["system"])
    await modern.send({"type": "message", "content": "/join #dev"})
    notice = await modern.recv_type("system")
    assert notice["content"] == texts.JOINED.format(channel="#dev")
    await modern.close()


async def test_history_of_channels_and_own_private_conversations_only(
    server: ClassCordServer,
) -> None:
    alice = await connected(server, "alice")
    bob = await connected(server, "bob")
    carol = await connected(server, "carol")
    for n in range(5):
        await alice.send({"type": "message", "content": f"m{n}"})
    await alice.send({"type": "message", "subtype": "private", "to": "bob", "content": "secret"})
    await settle(alice)
    await bob.send({"type": "history", "limit": 3})
    history = await bob.recv_type("history")
    assert history["channel"] == "#general"
    assert [m["content"] for m in history["messages"]] == ["m2", "m3", "m4"]
    await bob.send({"type": "history", "with": "alice"})
    private = await bob.recv_type("history")
    assert [(m["from"], m["to"], m["content"]) for m in private["messages"]] == [
        ("alice", "bob", "secret")
    ]
    await carol.send({"type": "history", "with": "bob"})
    assert (await carol.recv_type("history"))["messages"] == []  # not carol's conversation
    await carol.send({"type": "history", "channel": "#nowhere"})
    assert (await carol.recv())["type"] == "error"
    for client in (alice, bob, carol):
        await client.close()


async def test_hello_grants_known_features_and_system_notices(server: ClassCordServer) -> None:
    modern = await LineClient.connect(server.port)
    await modern.send({"type": "hello", "features": ["system", "teleport"]})
    hello = await modern.recv()
    assert hello["type"] == "hello"
    assert hello["features"] == ["system"]
    await modern.account("modern")
    legacy = await connected(server, "legacy")
    waiting_at_login = await LineClient.connect(server.port)
    await drain(modern)
    notified = await asyncio.to_thread(
        admin_client.request, server.settings.admin_socket_path, "say", ["Pause de 10 minutes"]
    )
    assert notified == {"ok": True, "result": {"notified": 2}}
    system = await modern.recv_type("system")
    assert system["content"] == "Pause de 10 minutes"
    plain = await legacy.recv_type("message")
    assert (plain["from"], plain["content"]) == ("Serveur", "Pause de 10 minutes")
    # A client still at its login screen reads its login reply first, not the notice.
    assert (await waiting_at_login.login("legacy"))["type"] == "login"
    await waiting_at_login.close()
    await modern.close()
    await legacy.close()


async def test_typing_only_reaches_clients_that_opted_in(server: ClassCordServer) -> None:
    typist = await connected(server, "typist", hello=["typing"])
    watcher = await connected(server, "watcher", hello=["typing"])
    legacy = await connected(server, "legacy")
    await typist.send({"type": "typing"})
    assert await watcher.recv_type("typing") == {
        "type": "typing",
        "user": "typist",
        "channel": "#general",
    }
    assert all(line["type"] != "typing" for line in await drain(legacy))
    for client in (typist, watcher, legacy):
        await client.close()


async def test_history_on_join(server: ClassCordServer) -> None:
    alice = await connected(server, "alice")
    await alice.send({"type": "join_channel", "channel": "#dev"})
    await alice.send({"type": "message", "channel": "#dev", "content": "avant"})
    await settle(alice)
    late = await connected(server, "late", hello=["history_on_join"])
    await late.send({"type": "join_channel", "channel": "#dev"})
    await late.recv_type("join_channel")
    history = await late.recv_type("history")
    assert [m["content"] for m in history["messages"]] == ["avant"]
    await alice.close()
    await late.close()


async def test_admin_socket_is_owner_only_and_answers_commands(server: ClassCordServer) -> None:
    path = server.settings.admin_socket_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    alice = await connected(server, "alice")

    async def call(command: str, *args: str) -> dict[str, Any]:
        return await asyncio.to_thread(admin_client.request, path, command, list(args))

    who = await call("who")
    assert [row["name"] for row in who["result"]] == ["alice"]
    assert who["result"][0]["address"] == "127.0.0.1"
    stats = (await call("stats"))["result"]
    assert stats["connections"] == 1
    assert "messages_per_second" in stats
    assert (await call("channels"))["result"] == [{"channel": "#general", "members": ["alice"]}]
    assert (await call("kick", "nobody"))["ok"] is False
    kicked = (await call("kick", "alice", "spam"))["result"]
    assert kicked == {"closed": 1, "done": [texts.MOD_ANNOUNCE_KICKED.format(name="alice")]}
    lines = await alice.lines_until_closed()
    assert lines is not None
    assert [(m.get("to"), m["content"]) for m in lines if m["type"] == "message"] == [
        (None, texts.MOD_ANNOUNCE_KICKED.format(name="alice")),
        ("alice", texts.MOD_YOU_KICKED.format(reason=" (raison : spam)")),
    ]
    await alice.close()
    assert (await call("ban", "alice"))["result"]["banned"] is True
    again = await LineClient.connect(server.port)
    assert (await again.login("alice"))["message"] == "Login failed."
    assert (await call("unban", "alice"))["ok"] is True
    assert (await again.login("alice"))["status"] == "ok"
    await again.close()
    assert (await call("dance"))["ok"] is False


async def test_ban_and_kick_find_the_account_whatever_the_spelling(server: ClassCordServer) -> None:
    alice = await connected(server, "alice")
    path = server.settings.admin_socket_path
    reply = await asyncio.to_thread(admin_client.request, path, "ban", ["ＡLICE"])
    assert reply["ok"], reply
    assert reply["result"]["closed"] == 1  # kicked too, found by the name's key
    assert await alice.closed()
    again = await LineClient.connect(server.port)
    assert (await again.login("alice"))["message"] == texts.LOGIN_FAILED
    reply = await asyncio.to_thread(admin_client.request, path, "unban", ["Alice"])
    assert reply["ok"], reply
    assert (await again.login("alice"))["status"] == "ok"
    await again.close()
    await alice.close()
