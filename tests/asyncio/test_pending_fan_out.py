"""Ring 2: the hub hands a pass's fan-out out in one push per member, and every
client still reads its lines in the order the hub produced them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from classcord.session import Session
from tests.support.harness import Harness, RecordingPeer


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    await h.accounts.load()
    yield h
    await h.close()


def say(content: str) -> dict[str, str]:
    return {"type": "message", "subtype": "global", "content": content}


def announce(name: str) -> dict[str, str]:
    """A legacy guest's first line: a message with an empty content and its name."""
    return {"type": "message", "subtype": "global", "content": "", "from": name}


def shown(lines: list[dict[str, Any]]) -> list[str]:
    """Each line as a short label: a message's content, a status, a reply's type."""
    labels = []
    for line in lines:
        if line["type"] == "message":
            labels.append(line["content"])
        elif line["type"] == "status":
            labels.append(f"{line['user']}:{line['state']}")
        else:
            labels.append(line["type"])
    return labels


async def three_users(harness: Harness) -> list[tuple[Session, RecordingPeer]]:
    users = [await harness.user(name) for name in ("alice", "bob", "carol")]
    for _session, peer in users:
        peer.take()
    return users


async def test_a_pass_of_messages_is_one_push_per_member_without_its_own(
    harness: Harness,
) -> None:
    (alice, alice_peer), (bob, bob_peer), (_carol, carol_peer) = await three_users(harness)
    await harness.send(alice, say("un"))
    await harness.send(bob, say("deux"))
    await harness.send(alice, say("trois"))
    assert carol_peer.sent == []  # the pass has not ended
    harness.hub.flush_pending()
    assert len(carol_peer.sent) == 1
    assert shown(carol_peer.take()) == ["un", "deux", "trois"]
    assert shown(alice_peer.take()) == ["deux"]
    assert shown(bob_peer.take()) == ["un", "trois"]
    assert harness.hub.counters.deliveries >= 6


async def test_what_a_member_is_owed_goes_before_its_reply(harness: Harness) -> None:
    (alice, _), (bob, bob_peer), _ = await three_users(harness)
    await harness.send(alice, say("avant"))
    await harness.send(bob, {"type": "users"})
    await harness.send(alice, say("après"))
    assert shown(bob_peer.take()) == ["avant", "users", "après"]


async def test_presence_between_messages_keeps_its_place(harness: Harness) -> None:
    (alice, _), (_bob, bob_peer), (carol, _) = await three_users(harness)
    await harness.send(alice, say("1"))
    await harness.send(carol, {"type": "status", "state": "away"})
    await harness.send(alice, say("2"))
    assert shown(bob_peer.take()) == ["1", "carol:away", "2"]


async def test_a_private_message_comes_after_the_pending_public_one(harness: Harness) -> None:
    (alice, _), (_bob, bob_peer), _ = await three_users(harness)
    await harness.send(alice, say("public"))
    private = {"type": "message", "subtype": "private", "to": "bob", "content": "secret"}
    await harness.send(alice, private)
    assert shown(bob_peer.take()) == ["public", "secret"]


async def test_who_arrives_during_the_pass_gets_only_what_follows(harness: Harness) -> None:
    (alice, _), (_bob, bob_peer), _ = await three_users(harness)
    await harness.send(alice, say("avant"))
    dave, dave_peer = harness.connect()
    await harness.send(dave, announce("dave"))
    await harness.send(alice, say("après"))
    eve, eve_peer = harness.connect()
    await harness.send(eve, announce("eve"))
    assert shown(bob_peer.take()) == ["avant", "dave:online", "après", "eve:online"]
    assert [line for line in shown(dave_peer.take()) if line != "users"] == [
        "après",
        "eve:online",
    ]
    assert shown(eve_peer.take()) == []


async def test_who_leaves_during_the_pass_gets_what_came_before(harness: Harness) -> None:
    (alice, _), (bob, bob_peer), (_carol, carol_peer) = await three_users(harness)
    await harness.send(alice, say("dernier mot"))
    harness.disconnect(bob)
    await harness.send(alice, say("après"))
    assert shown(bob_peer.take()) == ["dernier mot"]
    assert shown(carol_peer.take()) == ["dernier mot", "bob:offline", "après"]
