"""A hypothesis state machine over sessions: random connections, logins, guests,
messages and disconnections; the hub's names and presence must stay consistent."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from classcord.protocol import name_key
from classcord.session import Session, State
from tests.support.harness import Harness, RecordingPeer

NAMES = st.sampled_from(
    ["alice", "Alice", "bob", "invité", "Serveur", "zoé", "", "ａlice", "\u0430lice", "\ud800"]
)
REQUESTS = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("message"), "content": st.sampled_from(["", "hi"]), "from": NAMES}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("status"),
            "state": st.sampled_from(["online", "away", "invisible", "bad"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("message"),
            "subtype": st.just("private"),
            "to": NAMES,
            "content": st.just("p"),
        }
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["users", "ping", "channels", "nope"])}),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["join_channel", "leave_channel"]),
            "channel": st.sampled_from(["#dev", "#general", "bad name"]),
        }
    ),
)


class SessionMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        self.harness = Harness(Path(self.tmp.name), rate_burst=10_000)
        self.loop.run_until_complete(self.harness.accounts.load())
        self.sessions: list[tuple[Session, RecordingPeer]] = []
        for name in ("alice", "bob"):
            session, _ = self.harness.connect()
            self.run(session, {"type": "register", "username": name, "password": "pw"})
            self.harness.disconnect(session)

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.loop.run_until_complete(self.harness.close())
            self.loop.close()
            self.tmp.cleanup()

    def run(self, session: Session, request: dict[str, Any]) -> None:
        self.loop.run_until_complete(self.harness.send(session, request))

    @rule()
    def connect(self) -> None:
        self.sessions.append(self.harness.connect())

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 50), request=REQUESTS)
    def send(self, index: int, request: dict[str, Any]) -> None:
        session, _ = self.sessions[index % len(self.sessions)]
        self.run(session, request)

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 50), name=st.sampled_from(["alice", "bob"]), good=st.booleans())
    def login(self, index: int, name: str, good: bool) -> None:
        session, _ = self.sessions[index % len(self.sessions)]
        self.run(session, {"type": "login", "username": name, "password": "pw" if good else "x"})
        self.harness.clock_now += 100  # past any lockout
        if good:
            assert session.state is State.USER
            assert session.name == name

    @precondition(lambda self: self.sessions)
    @rule(index=st.integers(0, 50))
    def disconnect(self, index: int) -> None:
        session, _ = self.sessions.pop(index % len(self.sessions))
        self.harness.disconnect(session)

    @invariant()
    def names_match_sessions(self) -> None:
        if not hasattr(self, "harness"):
            return
        hub = self.harness.hub
        identified = [s for s, _ in self.sessions if s.identified]
        for session in identified:
            entry = hub.online(session.name)
            assert entry is not None
            assert session in entry.members
            assert "#general" in session.channels
        guests = [s.name for s in identified if s.state is State.GUEST]
        assert len({name_key(g) for g in guests}) == len(guests)
        for guest in guests:
            assert not self.harness.accounts.is_registered(guest)
            assert name_key(guest) != name_key("Serveur")
        online_keys = {name_key(s.name) for s in identified}
        for _, peer in self.sessions:
            for data in peer.sent:
                # One push may carry several whole lines (a pass's fan-out).
                assert data.endswith(b"\n")
                for line in data.splitlines():
                    json.loads(line)  # every line is valid JSON
        assert all(hub.is_online(s.name) for s in identified)
        assert len(online_keys) == len({name_key(n) for n in online_keys})

    @invariant()
    def nobody_is_closed_for_non_abusive_input(self) -> None:
        if hasattr(self, "sessions"):
            assert all(peer.closed_reason is None for _, peer in self.sessions)


SessionMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSessionMachine = SessionMachine.TestCase
