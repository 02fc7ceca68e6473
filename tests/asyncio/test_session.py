"""Ring 2: sessions and the hub, driven through their public entry points."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from classcord import texts
from classcord.session import HANDLERS, State
from tests.support.harness import TIMESTAMP, Harness

TS = Harness.timestamp()


def error(message: str) -> dict[str, str]:
    return {"type": "error", "message": message, "error": message}


async def test_register_login_and_presence(harness: Harness) -> None:
    alice, alice_peer = await harness.user("alice")
    _bob, bob_peer = await harness.user("bob")
    assert alice_peer.take() == [{"type": "status", "user": "bob", "state": "online"}]
    assert bob_peer.take() == []  # no echo of one's own presence
    assert alice.state is State.USER


async def test_duplicate_registration_keeps_the_exact_text(harness: Harness) -> None:
    await harness.user("alice")
    session, peer = harness.connect()
    await harness.send(session, {"type": "register", "username": "Alice", "password": "x"})
    assert peer.take() == [error("Username already exists.")]


async def test_wrong_password_and_unknown_user_both_answer_login_failed(harness: Harness) -> None:
    await harness.user("alice", "right")
    session, peer = harness.connect()
    await harness.send(session, {"type": "login", "username": "alice", "password": "wrong"})
    await harness.send(session, {"type": "login", "username": "nobody", "password": "x"})
    assert peer.take() == [error("Login failed.")] * 2
    assert session.state is State.ANONYMOUS


async def test_account_locks_after_repeated_failures_then_unlocks(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.user("alice", "right")
    session, peer = harness.connect()
    for _ in range(harness.settings.login_max_failures):
        await harness.send(session, {"type": "login", "username": "alice", "password": "bad"})
    await harness.send(session, {"type": "login", "username": "alice", "password": "right"})
    assert peer.take()[-1] == error("Login failed.")  # locked, even with the right password
    assert "login lockout: user=alice locked for 60 s after 5 failed logins" in caplog.text
    assert "reason=locked" in caplog.text
    harness.clock_now += harness.settings.login_lockout_seconds + 1
    await harness.send(session, {"type": "login", "username": "alice", "password": "right"})
    assert peer.take() == [{"type": "login", "status": "ok", "username": "alice"}]


async def test_global_message_goes_to_others_with_from_and_timestamp(harness: Harness) -> None:
    alice, alice_peer = await harness.user("alice")
    _bob, bob_peer = await harness.user("bob")
    alice_peer.take()
    await harness.send(
        alice,
        {
            "type": "message",
            "subtype": "global",
            "content": "salut",
            "from": "mallory",
            "timestamp": "forged",
            "user": "forged",
        },
    )
    assert alice_peer.take() == []  # no echo
    assert bob_peer.take() == [
        {
            "type": "message",
            "subtype": "global",
            "from": "alice",
            "content": "salut",
            "timestamp": TS,
        }
    ]


async def test_private_message_reaches_every_session_of_the_recipient_only(
    harness: Harness,
) -> None:
    alice, _ = await harness.user("alice")
    _bob1, bob1 = await harness.user("bob")
    bob2_session, bob2 = harness.connect()
    await harness.send(bob2_session, {"type": "login", "username": "bob", "password": "pw"})
    carol_session, carol = harness.connect()
    await harness.send(carol_session, {"type": "users"})
    for peer in (bob1, bob2, carol):
        peer.take()
    await harness.send(
        alice, {"type": "message", "subtype": "private", "to": "bob", "content": "psst"}
    )
    expected = {
        "type": "message",
        "subtype": "private",
        "from": "alice",
        "content": "psst",
        "timestamp": TS,
        "to": "bob",
    }
    assert bob1.take() == [expected]
    assert bob2.take() == [expected]
    assert carol.take() == []


async def test_offline_goes_out_only_when_the_last_session_closes(harness: Harness) -> None:
    _alice, alice_peer = await harness.user("alice")
    bob1, _ = await harness.user("bob")
    bob2, bob2_peer = harness.connect()
    await harness.send(bob2, {"type": "login", "username": "bob", "password": "pw"})
    assert bob2_peer.take() == [{"type": "login", "status": "ok", "username": "bob"}]
    alice_peer.take()
    harness.disconnect(bob1)
    assert alice_peer.take() == []
    harness.disconnect(bob2)
    assert alice_peer.take() == [{"type": "status", "user": "bob", "state": "offline"}]


def server_private(to: str, content: str) -> dict[str, str]:
    """Feedback as legacy clients render it: a private message from Serveur."""
    return {
        "type": "message",
        "subtype": "private",
        "from": "Serveur",
        "to": to,
        "content": content,
        "timestamp": TIMESTAMP,
    }


async def test_private_to_unknown_user_is_a_notice_from_serveur(harness: Harness) -> None:
    # Client family A prints an error line raw in its chat window.
    alice, peer = await harness.user("alice")
    await harness.send(
        alice, {"type": "message", "subtype": "private", "to": "zed", "content": "x"}
    )
    assert peer.take() == [server_private("alice", texts.UNKNOWN_RECIPIENT.format(name="zed"))]


async def test_a_client_that_said_hello_keeps_the_error_line(harness: Harness) -> None:
    alice, peer = await harness.user("alice")
    await harness.send(alice, {"type": "hello", "features": []})
    peer.take()
    await harness.send(
        alice, {"type": "message", "subtype": "private", "to": "zed", "content": "x"}
    )
    assert peer.take() == [error(texts.UNKNOWN_RECIPIENT.format(name="zed"))]


async def test_private_to_offline_user_is_kept_and_the_sender_told(harness: Harness) -> None:
    bob, _ = await harness.user("bob")
    harness.disconnect(bob)
    alice, peer = await harness.user("alice")
    await harness.send(
        alice, {"type": "message", "subtype": "private", "to": "bob", "content": "x"}
    )
    assert peer.take() == [server_private("alice", texts.RECIPIENT_OFFLINE.format(name="bob"))]
    assert await harness.history.flush() == 1


async def test_invisible_is_indistinguishable_from_offline(harness: Harness) -> None:
    bob, bob_peer = await harness.user("bob")
    await harness.send(bob, {"type": "join_channel", "channel": "#dev"})
    await harness.send(bob, {"type": "status", "state": "invisible"})
    alice, peer = await harness.user("alice")
    peer.take()
    bob_peer.take()
    await harness.send(
        alice, {"type": "message", "subtype": "private", "to": "bob", "content": "coucou"}
    )
    # The same answer as for an offline account, and the message still arrives.
    assert peer.take() == [server_private("alice", texts.RECIPIENT_OFFLINE.format(name="bob"))]
    assert [m["content"] for m in bob_peer.take()] == ["coucou"]
    await harness.send(alice, {"type": "join_channel", "channel": "#dev"})
    assert peer.take()[0]["members"] == 1  # alice alone, as if bob were away
    await harness.send(alice, {"type": "channels"})
    listed = {c["name"]: c["members"] for c in peer.take()[0]["channels"]}
    assert listed == {"#dev": 1, "#general": 1}


async def test_guest_names_never_impersonate(harness: Harness) -> None:
    await harness.user("alice")
    names = []
    for requested in ("alice", "ALICE", None, None, "Serveur", "Zoé", "Zoé", "a\x00b"):
        session, _ = harness.connect()
        message = {"type": "message", "content": ""}
        if requested is not None:
            message["from"] = requested
        await harness.send(session, message)
        assert session.state is State.GUEST
        names.append(session.name)
    assert names == [
        "alice_2",
        "ALICE_3",
        "invité",
        "invité_2",
        "Serveur_2",
        "Zoé",
        "Zoé_2",
        "invité_3",
    ]


async def test_guest_name_is_fixed_by_its_first_message(harness: Harness) -> None:
    _alice, alice_peer = await harness.user("alice")
    guest, _ = harness.connect()
    await harness.send(guest, {"type": "message", "content": "", "from": "Invité42"})
    await harness.send(guest, {"type": "message", "content": "coucou", "from": "Invité77"})
    lines = alice_peer.take()
    assert lines[0] == {"type": "status", "user": "Invité42", "state": "online"}
    assert lines[1]["from"] == "Invité42"
    assert len(lines) == 2  # the empty announce itself is not broadcast


async def test_guest_then_login_gets_its_login_reply_first(harness: Harness) -> None:
    """A broadcast arriving while the password is hashed waits behind the reply."""
    await harness.user("bob", "pw")
    chatter, _ = await harness.user("chatter")
    guest, guest_peer = harness.connect()
    await harness.send(guest, {"type": "message", "content": "", "from": "g"})
    guest_peer.take()
    login = asyncio.ensure_future(
        harness.send(guest, {"type": "login", "username": "bob", "password": "pw"})
    )
    await asyncio.sleep(0)  # the login is now waiting for its hash
    await harness.send(chatter, {"type": "message", "content": "pendant"})
    await login
    lines = guest_peer.take()
    assert lines[0] == {"type": "login", "status": "ok", "username": "bob"}
    assert {
        "type": "message",
        "subtype": "global",
        "from": "chatter",
        "content": "pendant",
        "timestamp": TS,
    } in lines[1:]


async def test_status_and_invisible_presence(harness: Harness) -> None:
    alice, _alice_peer = await harness.user("alice")
    bob, bob_peer = await harness.user("bob")
    bob_peer.take()
    await harness.send(alice, {"type": "status", "user": "ignored", "state": "away"})
    assert bob_peer.take() == [{"type": "status", "user": "alice", "state": "away"}]
    await harness.send(alice, {"type": "status", "state": "invisible"})
    assert bob_peer.take() == [{"type": "status", "user": "alice", "state": "offline"}]
    await harness.send(bob, {"type": "users"})
    assert bob_peer.take() == [{"type": "users", "users": ["bob"], "states": {"bob": "online"}}]
    await harness.send(alice, {"type": "status", "state": "online"})
    assert bob_peer.take() == [{"type": "status", "user": "alice", "state": "online"}]


async def test_users_before_login_and_aliases(harness: Harness) -> None:
    await harness.user("bob")
    await harness.user("Alice")
    session, peer = harness.connect()
    for kind in ("users", "list_users", "userlist"):
        await harness.send(session, {"type": kind})
    for kind, reply in zip(("users", "list_users", "userlist"), peer.take(), strict=True):
        assert reply["type"] == kind
        assert reply["users"] == ["Alice", "bob"]
        assert all(isinstance(name, str) for name in reply["users"])


async def test_status_before_login_is_an_error_and_unknown_types_are_ignored(
    harness: Harness,
) -> None:
    session, peer = harness.connect()
    await harness.send(session, {"type": "status", "state": "away"})
    await harness.send(session, {"type": "whatever", "x": 1})
    assert peer.take() == [error(texts.NOT_LOGGED_IN.format(request="status"))]


async def test_bad_input_gets_error_lines_and_the_session_goes_on(harness: Harness) -> None:
    alice, peer = await harness.user("alice")
    await harness.feed(alice, b"not json\n[1]\n\n   \n" + b"x" * 20_000 + b"\n\xff\xfe\n")
    await harness.send(alice, {"type": "message", "content": "x" * 2001})
    await harness.send(alice, {"type": "ping"})
    replies = peer.take()
    assert [r["type"] for r in replies] == ["error"] * 5 + ["pong"]
    assert alice.state is State.USER
    assert peer.closed_reason is None


async def test_rate_limit_answers_then_flooding_closes(tmp_path: Path) -> None:
    h = Harness(tmp_path, rate_per_second=1.0, rate_burst=3, flood_disconnect_after=5)
    try:
        await h.accounts.load()
        session, peer = h.connect()
        for _ in range(3):
            await h.send(session, {"type": "ping"})
        await h.send(session, {"type": "ping"})
        assert peer.take() == [{"type": "pong"}] * 3 + [error(texts.RATE_LIMITED)]
        h.clock_now += 1.0  # one token back: the session is fine again
        await h.send(session, {"type": "ping"})
        assert peer.take() == [{"type": "pong"}]
        for _ in range(10):
            await h.send(session, {"type": "ping"})
        assert peer.aborted_reason is not None
        assert "flooding" in peer.aborted_reason
    finally:
        await h.close()


async def test_history_is_recorded_for_global_and_private(harness: Harness) -> None:
    alice, _ = await harness.user("alice")
    await harness.user("bob")
    await harness.send(alice, {"type": "message", "content": "un"})
    await harness.send(
        alice, {"type": "message", "subtype": "private", "to": "bob", "content": "deux"}
    )
    assert await harness.history.flush() == 2
    assert harness.storage.storage.count_messages() == 2


def test_anonymous_connections_may_do_what_legacy_clients_do_before_login() -> None:
    anonymous_allowed = {kind.__name__ for kind, row in HANDLERS.items() if row[0] is not None}
    assert {"Register", "Login", "Chat", "ListUsers", "Ping"} <= anonymous_allowed


async def test_a_registration_claims_its_name_at_once_and_a_dropped_one_frees_it(
    harness: Harness,
) -> None:
    owner, _ = harness.connect()
    pending = owner.receive_line(b'{"type": "register", "username": "alice", "password": "pw"}')
    assert pending is not None
    guest, _ = harness.connect()
    await harness.send(guest, {"type": "message", "content": "", "from": "alice"})
    assert guest.name == "alice_2"  # the name is claimed before the hash is computed
    pending.close()  # the connection died before its task ever ran
    harness.disconnect(owner)
    assert harness.accounts.claim("alice")


async def test_a_guest_conversation_never_passes_to_whoever_registers_its_name(
    harness: Harness,
) -> None:
    alice, alice_peer = await harness.user("alice")
    carol_guest, _ = harness.connect()
    await harness.send(carol_guest, {"type": "message", "from": "carol", "content": ""})
    assert carol_guest.name == "carol"
    await harness.send(
        carol_guest,
        {"type": "message", "subtype": "private", "to": "alice", "content": "mon secret"},
    )
    await harness.send(alice, {"type": "history", "with": "carol"})
    shown = [m["content"] for m in alice_peer.take()[-1]["messages"]]
    assert shown == ["mon secret"]  # while the guest is here, it is her conversation
    harness.disconnect(carol_guest)
    impostor, impostor_peer = await harness.user("carol")
    await harness.send(impostor, {"type": "history", "with": "alice"})
    assert impostor_peer.take()[-1]["messages"] == []
    alice_peer.take()
    await harness.send(alice, {"type": "history", "with": "carol"})
    assert alice_peer.take()[-1]["messages"] == []  # the account carol is someone else


async def test_private_history_between_accounts_survives_a_change_of_spelling(
    harness: Harness,
) -> None:
    alice, _ = await harness.user("alice")
    bob, bob_peer = await harness.user("bob")
    await harness.send(
        alice, {"type": "message", "subtype": "private", "to": "BOB", "content": "salut"}
    )
    bob_peer.take()
    await harness.send(bob, {"type": "history", "with": "ALICE"})
    assert [m["content"] for m in bob_peer.take()[-1]["messages"]] == ["salut"]
