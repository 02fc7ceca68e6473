"""Ring 2: the hub hands a pass's fan-out out in one push per member, and every
client still reads its lines in the order the hub produced them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from classcord.session import Session
from tests.support.harness import Harness, RecordingPeer


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
    before = harness.hub.counters.deliveries
    await harness.send(alice, say("un"))
    await harness.send(bob, say("deux"))
    await harness.send(alice, say("trois"))
    assert carol_peer.sent == []  # the pass has not ended
    harness.hub.flush_pending()
    assert len(carol_peer.sent) == 1
    assert shown(carol_peer.take()) == ["un", "deux", "trois"]
    assert shown(alice_peer.take()) == ["deux"]
    assert shown(bob_peer.take()) == ["un", "trois"]
    assert harness.hub.counters.deliveries - before == 6


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
    assert shown(dave_peer.take()) == ["après", "eve:online"]
    assert shown(eve_peer.take()) == []


async def test_who_leaves_during_the_pass_gets_what_came_before(harness: Harness) -> None:
    (alice, _), (bob, bob_peer), (_carol, carol_peer) = await three_users(harness)
    await harness.send(alice, say("dernier mot"))
    harness.disconnect(bob)
    await harness.send(alice, say("après"))
    assert shown(bob_peer.take()) == ["dernier mot"]
    assert shown(carol_peer.take()) == ["dernier mot", "bob:offline", "après"]


async def test_a_login_waiting_for_its_hash_gets_what_it_was_owed_first(
    harness: Harness,
) -> None:
    (alice, _), (bob, bob_peer), _ = await three_users(harness)
    await harness.send(alice, say("avant"))
    await harness.send(bob, {"type": "login", "username": "bob", "password": "pw"})
    assert shown(bob_peer.take()) == ["avant", "login"]


async def test_a_connection_closed_while_its_login_hashes_gets_what_was_held(
    harness: Harness,
) -> None:
    (alice, _), (bob, bob_peer), _ = await three_users(harness)
    harness.drivers[bob].feed(b'{"type": "login", "username": "bob", "password": "pw"}\n')
    await harness.send(alice, say("pendant"))  # held for bob until his reply
    harness.hub.flush_pending()
    bob.release_before_close()  # what the connection does when it closes
    assert "pendant" in shown(bob_peer.take())


# The differential test: one random script, run with every fan-out handed out at
# once (the hub without an event loop) and with the pass's pending block; every
# client must read exactly the same lines, and the counters must agree.
NAMES = ("alice", "bob", "carol", "invité", "")
ADMIN = ("kick {name}", "announce hop", "mute {name} 10m", "unmute {name}", "silence 1m")


def random_request(rng: random.Random, step: int) -> dict[str, Any] | str:
    """A request, or a word: "connect", "disconnect", "end-pass", "admin ..."."""
    kind = rng.choice(
        ["connect", "connect", "say", "say", "say", "channel", "private", "status", "join",
         "leave", "slash", "users", "hello", "typing", "login", "login", "disconnect",
         "end-pass", "end-pass", "admin"]
    )  # fmt: skip
    requests: dict[str, Any] = {
        "say": {**say(f"m{step}"), "from": rng.choice(NAMES)},
        "channel": {**say(f"c{step}"), "channel": "#dev"},
        "private": {"type": "message", "subtype": "private", "to": rng.choice(NAMES),
                    "content": f"p{step}"},
        "status": {"type": "status", "state": rng.choice(["online", "away", "invisible"])},
        "join": {"type": "join_channel", "channel": "#dev"},
        "leave": {"type": "leave_channel", "channel": "#dev"},
        "slash": say(rng.choice(["/join #dev", "/leave #dev"])),
        "users": {"type": "users"},
        "hello": {"type": "hello", "features": rng.sample(
            ["system", "typing", "history_on_join", "moderation"], rng.randint(0, 4))},
        "typing": rng.choice([{"type": "typing", "channel": "#dev"}, {"type": "typing"},
                              {"type": "typing", "to": rng.choice(NAMES)}]),
        "login": {"type": "login", "username": rng.choice(["alice", "bob"]),
                  "password": rng.choice(["pw", "pw", "wrong"])},
    }  # fmt: skip
    if kind == "admin":
        return "admin " + rng.choice(ADMIN).format(name=rng.choice(NAMES[:4]))
    return requests.get(kind, kind)


async def run_script(tmp: Path, seed: int, pending: bool) -> tuple[list[list[str]], int, int]:
    harness = Harness(tmp, rate_burst=10**6, rate_per_second=10**6.0)
    await harness.accounts.load()
    for name in ("alice", "bob"):
        await harness.accounts.register(name, "pw")
    if not pending:
        harness.hub.schedule_flush = None
    rng = random.Random(seed)
    live: list[Session] = []
    peers: list[RecordingPeer] = []
    for step in range(60):
        request = random_request(rng, step)
        if request == "connect" or not live:
            session, peer = harness.connect()
            live.append(session)
            peers.append(peer)
        elif request == "disconnect":
            harness.disconnect(live.pop(rng.randrange(len(live))))
        elif request == "end-pass":
            harness.hub.flush_pending()
        elif isinstance(request, str):
            await harness.moderation.run_text(None, request.removeprefix("admin "))
        else:
            await harness.send(rng.choice(live), request)
    lines = [[json.dumps(line, sort_keys=True) for line in peer.take()] for peer in peers]
    counters = harness.hub.counters
    await harness.close()
    return lines, counters.deliveries, counters.messages


async def test_the_pending_block_changes_nothing_any_client_reads(tmp_path: Path) -> None:
    for seed in range(40):
        at_once = await run_script(tmp_path / f"{seed}-at-once", seed, pending=False)
        pending = await run_script(tmp_path / f"{seed}-pending", seed, pending=True)
        assert pending == at_once, f"seed {seed}"
