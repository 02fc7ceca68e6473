"""Property tests of the whole stack under one connection object: arbitrary bytes and
request sequences, cut into random chunks and interleaved across connections, go
through the real ``Connection`` (framing, decoding, sessions, hub, accounts, SQLite)
with a fake transport that honours flow control.

For any such non-abusive input: no exception escapes (nothing is logged as a bug),
no connection is closed, every line sent back is ASCII JSON, names and presence stay
consistent while connected, and once everyone has left nobody is listed online and a
watcher has seen an ``offline`` for every ``online`` (no ghost users).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classcord.cli import start_server
from classcord.protocol import is_valid_name, name_key
from classcord.server import ClassCordServer, Connection
from classcord.session import State
from tests.conftest import make_settings

MAX_LINE = 512  # small limits keep over-long lines cheap to generate...
ABUSE_LINE = 64 * 1024  # ...and far from the abuse cut-off
SETTLE_SECONDS = 20.0

# Look-alikes of alice and Serveur (fullwidth, Cyrillic, math bold, invisible, NFD)
# and lone surrogates: none may pose as another name or reach the storage.
NAMES = st.sampled_from(
    [
        "alice", "Alice", "bob", "invité", "Serveur", "zoé", "", " x", "a\tb",
        "ａlice", "\u0430lice", "𝐚𝐥𝐢𝐜𝐞", "alice\u034f", "S\u0435rveur", "zoe\u0301",
        "\ud800", "al\udfffice",
    ]
)  # fmt: skip
PASSWORDS = st.sampled_from(["pw", "wrong", "", "\ud83d"])
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
REQUESTS = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["register", "login"]), "username": NAMES, "password": PASSWORDS}
    ),
    st.fixed_dictionaries(
        {"type": st.just("message"), "content": st.sampled_from(["", "hi", "é€", "\ud83d!"])},
        optional={
            "from": NAMES,
            "subtype": st.sampled_from(["global", "private", "weird"]),
            "to": NAMES,
            "channel": st.sampled_from(["#dev", "#general", "bad name"]),
            "timestamp": st.just("2025-01-01T00:00:00"),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.just("status"), "state": st.sampled_from(["online", "away", "invisible", "x"])}
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["users", "list_users", "userlist", "ping", "channels", "nope"])}
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["join_channel", "leave_channel", "history", "typing"])},
        optional={"channel": st.sampled_from(["#dev", "general", "bad name", ""])},
    ),
    st.fixed_dictionaries({"type": st.just("hello"), "features": st.lists(st.text(max_size=8))}),
    st.dictionaries(st.sampled_from(["type", "username", "content", "to"]), ANY_JSON),
)


def _encode(request: dict[str, Any], how: str) -> bytes:
    if how == "cp1252":
        return json.dumps(request, ensure_ascii=False).encode("cp1252", errors="replace") + b"\n"
    return json.dumps(request).encode() + (b"\r\n" if how == "crlf" else b"\n")


def _account(name: str) -> bytes:
    """Register then log in: the common path, generated often on purpose."""
    return b"".join(
        _encode({"type": kind, "username": name, "password": "pw"}, "lf")
        for kind in ("register", "login")
    )


def _chat(content: str, sender: str | None) -> bytes:
    request = {"type": "message", "subtype": "global", "content": content}
    if sender is not None:
        request["from"] = sender
    return _encode(request, "lf")


SEGMENTS = st.one_of(
    st.builds(_account, st.sampled_from(["alice", "bob", "carol", "Alice"])),
    st.builds(_chat, st.sampled_from(["", "salut", "é"]), st.none() | NAMES),
    st.builds(_encode, REQUESTS, st.sampled_from(["lf", "crlf", "cp1252"])),
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"") + b"\n"),  # garbage line
    st.sampled_from([b"\n", b"   \n", b"\r\n", b"\t\n", b"\xef\xbb\xbf\n"]),
    st.integers(MAX_LINE + 1, 4 * MAX_LINE).map(lambda n: b"x" * n + b"\n"),  # over-long
    st.sampled_from([b"[1, 2]\n", b'"text"\n', b"null\n", b"{\n", b'{"type": 5}\n']),
)
STREAMS = st.lists(st.lists(SEGMENTS, max_size=16), min_size=1, max_size=4)


class FlowControlledTransport(asyncio.Transport):
    """Collects writes; its owner stops delivering bytes while reading is paused."""

    def __init__(self, protocol: Connection, port: int) -> None:
        super().__init__()
        self.protocol = protocol
        self.port = port
        self.out = bytearray()
        self.paused = False
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", self.port) if name == "peername" else default


class BugCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _lines(out: bytes) -> list[dict[str, Any]]:
    lines = []
    for raw in out.split(b"\n")[:-1]:
        raw.decode("ascii")
        obj = json.loads(raw)
        assert isinstance(obj, dict)
        lines.append(obj)
    assert out.endswith(b"\n") or not out
    return lines


async def _scenario(
    folder: Path, streams: list[list[bytes]], chunk_sizes: list[int], order: list[int]
) -> None:
    server = await start_server(
        make_settings(
            folder,
            scrypt_n=16,
            scrypt_r=1,
            rate_burst=1_000_000,
            max_line_bytes=MAX_LINE,
            abuse_line_bytes=ABUSE_LINE,
        )
    )
    catcher = BugCatcher()
    logging.getLogger("classcord").addHandler(catcher)
    try:
        await _drive(server, streams, chunk_sizes, order)
    finally:
        logging.getLogger("classcord").removeHandler(catcher)
        await server.shutdown()
    assert not catcher.records, [r.getMessage() for r in catcher.records]


def _connect(server: ClassCordServer, conn_id: int) -> tuple[Connection, FlowControlledTransport]:
    connection = Connection(server, conn_id)
    transport = FlowControlledTransport(connection, 40_000 + conn_id)
    connection.connection_made(transport)
    return connection, transport


async def _idle(pairs: list[tuple[Connection, FlowControlledTransport]]) -> None:
    """Run the loop until no connection has a slow request pending."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while any(c.driver.busy for c, _ in pairs):
        assert loop.time() < deadline, "a request never completed"
        await asyncio.sleep(0.001)
    await asyncio.sleep(0)


async def _drive(
    server: ClassCordServer, streams: list[list[bytes]], chunk_sizes: list[int], order: list[int]
) -> None:
    # A watcher, logged in first, sees every presence change of the run.
    watcher, watcher_transport = _connect(server, 1)
    for line in (b'{"type":"register","username":"watcher","password":"pw"}\n',
                 b'{"type":"login","username":"watcher","password":"pw"}\n'):  # fmt: skip
        watcher.data_received(line)
        await _idle([(watcher, watcher_transport)])
    pairs = [_connect(server, 2 + k) for k in range(len(streams))]

    # Cut every stream into chunks; deliver them in the generated interleaving,
    # never to a connection whose reading is paused (flow control).
    inboxes: list[deque[bytes]] = []
    sizes = iter(chunk_sizes * 50 or [7])
    for stream in streams:
        data, chunks = b"".join(stream), deque[bytes]()
        while data:
            size = max(1, next(sizes, 7))
            chunks.append(data[:size])
            data = data[size:]
        inboxes.append(chunks)
    picks = iter(order * 200)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while any(inboxes):
        assert loop.time() < deadline, "input never fully delivered"
        k = next(picks, 0) % len(pairs)
        connection, transport = pairs[k]
        if not inboxes[k] or transport.paused:
            k = next((i for i, box in enumerate(inboxes) if box and not pairs[i][1].paused), -1)
            if k < 0:
                await asyncio.sleep(0.001)  # everyone with input waits on a slow request
                continue
            connection, transport = pairs[k]
        connection.data_received(inboxes[k].popleft())
        await asyncio.sleep(0)
    await _idle([*pairs, (watcher, watcher_transport)])

    # Non-abusive input never closes a connection, and every reply is ASCII JSON.
    for _, transport in pairs:
        assert not transport.closed, "closed for non-abusive input"
        _lines(bytes(transport.out))

    # Names and presence are consistent while everyone is connected.
    hub = server.hub
    sessions = [c.session for c, _ in pairs] + [watcher.session]
    identified = [s for s in sessions if s.identified]
    for session in identified:
        entry = hub.online(session.name)
        assert entry is not None
        assert session in entry.members
    keys = [name_key(s.name) for s in identified if s.state is State.GUEST]
    assert len(set(keys)) == len(keys), "two guests share a name"
    for session in identified:
        session.name.encode("utf-8")  # no lone surrogate in any name
        assert is_valid_name(session.name, server.settings.max_name_chars), session.name
        if session.state is State.GUEST:
            assert not server.accounts.is_registered(session.name), "a guest holds an account name"
            assert name_key(session.name) != name_key("Serveur"), "a guest poses as Serveur"
    # Whatever was said can be stored: the batch commits.
    assert await server.history.flush() >= 0
    listed = hub.users_reply(watcher.session, "users")["users"]
    assert all(isinstance(n, str) for n in listed)
    assert len({name_key(n) for n in listed}) == len(listed), "a name listed twice"
    assert {name_key(n) for n in listed} <= {name_key(s.name) for s in identified}

    # Everyone but the watcher leaves: no ghost is left online or listed.
    for _, transport in pairs:
        transport.close()
    await asyncio.sleep(0.01)
    await _idle([(watcher, watcher_transport)])
    assert server.stats()["connections"] == 1
    assert hub.users_reply(watcher.session, "users")["users"] == ["watcher"]
    presence: dict[str, str] = {}
    for seen in _lines(bytes(watcher_transport.out)):
        if seen.get("type") == "status":
            presence[name_key(seen["user"])] = seen["state"]
    ghosts = {user for user, state in presence.items() if state != "offline"}
    assert not ghosts, f"still shown online to the watcher: {ghosts}"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    streams=STREAMS,
    chunk_sizes=st.lists(st.integers(1, 64), min_size=1, max_size=20),
    order=st.lists(st.integers(0, 3), min_size=1, max_size=20),
)
def test_any_non_abusive_input_in_any_chunks_keeps_the_server_consistent(
    streams: list[list[bytes]], chunk_sizes: list[int], order: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp) / "data", streams, chunk_sizes, order))


async def test_race_guest_vs_pending_registration(tmp_path: Path) -> None:
    """Found by the property test above (fixed in 2b15456). While ``alice`` was being
    registered (hashing off the loop), a guest announcing itself as ``alice`` got
    that very name; the registration then succeeded, and once alice logged in, the
    guest shared her entry and read her private messages."""
    server = await start_server(make_settings(tmp_path / "data", scrypt_n=16, scrypt_r=1))
    try:
        owner, owner_transport = _connect(server, 1)
        guest, guest_transport = _connect(server, 2)
        carol, _ = _connect(server, 3)
        owner.data_received(b'{"type":"register","username":"alice","password":"pw"}\n')
        guest.data_received(b'{"type":"message","content":"","from":"alice"}\n')
        await _idle([(owner, owner_transport)])
        owner.data_received(b'{"type":"login","username":"alice","password":"pw"}\n')
        await _idle([(owner, owner_transport)])
        carol.data_received(b'{"type":"message","content":"","from":"carol"}\n')
        carol.data_received(b'{"type":"message","subtype":"private","to":"alice","content":"s"}\n')
        await asyncio.sleep(0.01)
        leaked = [m for m in _lines(bytes(guest_transport.out)) if m.get("content") == "s"]
        assert not (guest.session.name == "alice" and server.accounts.is_registered("alice"))
        assert not leaked, "alice's private message reached a guest"
    finally:
        await server.shutdown()
