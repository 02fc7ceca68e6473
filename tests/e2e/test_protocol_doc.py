"""PROTOCOL.md cannot drift from the server: every example in it is run.

Each fenced block tagged ``jsonl`` is an exchange (the convention is explained at the
top of PROTOCOL.md): ``> `` lines are sent, ``< `` lines must be the next line that
connection receives, ``"<timestamp>"`` and ``"<any>"`` stand for values that change.
Every block runs against its own fresh server process (default settings), each
label is one connection, and at the end no connection may have an unlisted line
waiting. The limits table, the JSON shapes and the netcat paste blocks are checked
too, and every request type the parser knows must appear in an example.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from classcord import admin_client, protocol
from classcord.config import Settings
from tests.support.clients import LineClient
from tests.support.process import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "PROTOCOL.md"
FENCE = re.compile(r"^```(?P<info>\S*)\s*$")
STEP = re.compile(r"^(?P<label>[a-z][a-z0-9_]*)?(?P<arrow>[<>])(?: (?P<body>.*))?$")
PASTE = re.compile(r"^<!-- paste: (?P<label>[a-z][a-z0-9_]*) -->$")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")
CLOSE = "(closes the connection)"
CLOSED = "(connection closed by the server)"
STOP = "! the server is stopped"
# "! admin role prof teacher": the operator runs ``python3 -m classcord admin ...``.
ADMIN = "! admin "
DEFAULT_LABEL = "you"
REPLY_TIMEOUT = 5.0
SILENCE = 0.3


@dataclass(frozen=True)
class Step:
    lineno: int
    label: str
    arrow: str  # ">" send, "<" expect, "!" operator action
    body: str


@dataclass(frozen=True)
class Block:
    lineno: int
    info: str
    heading: str
    lines: tuple[tuple[int, str], ...]
    paste_label: str | None


def read_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    heading = ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if fence is None:
            index += 1
            continue
        previous = lines[index - 1] if index else ""
        paste = PASTE.match(previous)
        start = index + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        assert end < len(lines), f"PROTOCOL.md:{index + 1}: fence never closed"
        body = tuple((number + 1, lines[number]) for number in range(start, end))
        blocks.append(
            Block(
                index + 1,
                fence.group("info"),
                heading,
                body,
                paste.group("label") if paste else None,
            )
        )
        index = end + 1
    return blocks


def parse_steps(block: Block) -> list[Step]:
    steps = []
    for lineno, line in block.lines:
        if not line.strip() or line.startswith("#"):
            continue
        if line == STOP or line.startswith(ADMIN):
            steps.append(Step(lineno, "", "!", line))
            continue
        match = STEP.match(line)
        assert match is not None, f"PROTOCOL.md:{lineno}: not an example line: {line!r}"
        label = match["label"] or DEFAULT_LABEL
        step = Step(lineno, label, match["arrow"], match["body"] or "")  # ">" alone: blank line
        if step.arrow == "<" and step.body != CLOSED:
            try:
                json.loads(step.body)
            except ValueError as exc:
                raise AssertionError(f"PROTOCOL.md:{lineno}: reply is not JSON: {exc}") from None
        steps.append(step)
    return steps


BLOCKS = read_blocks(DOC.read_text(encoding="utf-8"))
EXAMPLES = [block for block in BLOCKS if block.info == "jsonl"]


def example_id(block: Block) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", block.heading.lower()).strip("-")
    return f"L{block.lineno}-{slug[:40]}"


def matches(expected: Any, actual: Any) -> bool:
    if expected == "<any>":
        return True
    if expected == "<timestamp>":
        return isinstance(actual, str) and TIMESTAMP.fullmatch(actual) is not None
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(matches(value, actual[key]) for key, value in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    same_kind = isinstance(expected, bool) == isinstance(actual, bool)
    return same_kind and bool(expected == actual)


async def silent(client: LineClient) -> bytes | None:
    """The line waiting on a connection, if any (the end of the stream is silence)."""
    try:
        line = await asyncio.wait_for(client.reader.readline(), SILENCE)
    except TimeoutError:
        return None
    return line or None


async def run_example(
    block: Block, server: ServerProcess, reply_timeout: float = REPLY_TIMEOUT
) -> None:
    connections: dict[str, LineClient] = {}
    closed: set[str] = set()
    try:
        for step in parse_steps(block):
            where = f"PROTOCOL.md:{step.lineno}"
            if step.arrow == "!" and step.body.startswith(ADMIN):
                command, *args = step.body.removeprefix(ADMIN).split()
                socket_path = server.data_path / "admin.sock"
                reply = await asyncio.to_thread(admin_client.request, socket_path, command, args)
                assert reply["ok"], f"{where}: {reply}"
                continue
            if step.arrow == "!":
                assert await asyncio.to_thread(server.terminate) == 0, where
                continue
            if step.label not in connections:
                connections[step.label] = await LineClient.connect(server.port)
            client = connections[step.label]
            if step.arrow == ">":
                if step.body == CLOSE:
                    await client.close()
                    closed.add(step.label)
                else:
                    await client.send_raw(step.body.encode("utf-8") + b"\n")
                continue
            try:
                raw = await asyncio.wait_for(client.reader.readline(), reply_timeout)
            except TimeoutError:
                raise AssertionError(f"{where}: nothing received, expected {step.body}") from None
            if step.body == CLOSED:
                assert raw == b"", f"{where}: expected the end of the connection, got {raw!r}"
                closed.add(step.label)
                continue
            assert raw.endswith(b"\n"), f"{where}: {raw!r}"
            assert raw.isascii(), f"{where}: server output must be ASCII: {raw!r}"
            actual = json.loads(raw)
            expected = json.loads(step.body)
            assert matches(expected, actual), (
                f"{where}: on {step.label!r}\n  expected {step.body}\n  received {raw.decode()}"
            )
        leftovers = {
            label: await silent(client)
            for label, client in connections.items()
            if label not in closed
        }
        unlisted = {label: line for label, line in leftovers.items() if line is not None}
        assert not unlisted, f"PROTOCOL.md:{block.lineno}: lines not in the example: {unlisted}"
    finally:
        for label, client in connections.items():
            if label not in closed or not client.writer.is_closing():
                await client.close()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data").start()
    yield server
    server.kill()


@pytest.mark.parametrize("block", EXAMPLES, ids=example_id)
async def test_example(block: Block, fresh_server: ServerProcess) -> None:
    await run_example(block, fresh_server)


def test_the_guide_has_examples_of_every_request() -> None:
    assert len(EXAMPLES) >= 15
    sent: set[str] = set()
    received: set[str] = set()
    for block in EXAMPLES:
        for step in parse_steps(block):
            if step.arrow == "!" or step.body in {CLOSE, CLOSED}:
                continue
            with contextlib.suppress(ValueError):
                obj = json.loads(step.body)
                if isinstance(obj, dict) and isinstance(obj.get("type"), str):
                    (sent if step.arrow == ">" else received).add(obj["type"])
    # Every type of the parser's registry, so a new one needs an example.
    known = {wire for entry in protocol.REQUEST_TYPES for wire in entry.wire_types}
    assert known - sent == set(), "request types without an example"
    replies = {"register", "login", "error", "message", "status", "pong", "hello", "system"}
    replies |= {"join_channel", "leave_channel", "history", "typing", "guest"}
    replies |= {"moderate", "moderation"}
    replies |= protocol.USERS_TYPES | protocol.CHANNELS_TYPES
    assert replies - received == set(), "reply types without an example"
    text = DOC.read_text(encoding="utf-8")
    for feature in protocol.FEATURES:
        assert f'"{feature}"' in text


def test_json_blocks_are_valid_json() -> None:
    shapes = [block for block in BLOCKS if block.info == "json"]
    assert shapes
    for block in shapes:
        text = "\n".join(line for _, line in block.lines)
        try:
            json.loads(text)
        except ValueError:
            for lineno, line in block.lines:  # or one object per line
                try:
                    json.loads(line)
                except ValueError as exc:
                    raise AssertionError(f"PROTOCOL.md:{lineno}: {exc}") from None


def test_paste_blocks_are_what_the_walkthrough_sends() -> None:
    """The paste blocks before an example, per connection and in order, are exactly
    what that connection sends in it."""
    pastes = [block for block in BLOCKS if block.paste_label is not None]
    assert pastes, "the netcat walk-through has paste blocks"
    pasted: dict[tuple[int, str], list[str]] = {}
    for block in pastes:
        following = [b for b in EXAMPLES if b.lineno > block.lineno]
        assert following, f"PROTOCOL.md:{block.lineno}: no example after the paste block"
        assert block.paste_label is not None
        key = (following[0].lineno, block.paste_label)
        pasted.setdefault(key, []).extend(line for _, line in block.lines)
    for (lineno, label), lines in pasted.items():
        (example,) = [b for b in EXAMPLES if b.lineno == lineno]
        sent = [
            step.body
            for step in parse_steps(example)
            if step.arrow == ">" and step.label == label and step.body != CLOSE
        ]
        assert lines == sent, f"PROTOCOL.md:{lineno}: {label}'s paste blocks differ from it"


def limits_table() -> dict[str, str]:
    """``| `name` | default | ...`` rows of the limits table."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `(?P<name>[a-z_]+)` \| (?P<value>[^|]+?) \|", line)
        if match:
            rows[match["name"]] = match["value"].replace(",", "").replace(" ", "")
    return rows


def test_limits_table_matches_the_defaults() -> None:
    rows = limits_table()
    defaults = Settings()
    assert len(rows) >= 12
    for name, shown in rows.items():
        value = getattr(defaults, name)
        assert float(shown) == float(value), f"{name}: PROTOCOL.md says {shown}, default {value}"


def block_of(*lines: str) -> Block:
    return Block(1, "jsonl", "self-test", tuple(enumerate(lines, start=1)), None)


async def test_the_runner_catches_a_wrong_reply_and_an_unlisted_line(
    fresh_server: ServerProcess,
) -> None:
    """The runner itself must fail when the server and an example disagree."""
    with pytest.raises(AssertionError, match="expected"):
        await run_example(block_of('> {"type":"ping"}', '< {"type": "pang"}'), fresh_server)
    with pytest.raises(AssertionError, match="lines not in the example"):
        await run_example(block_of('> {"type":"ping"}'), fresh_server)
    with pytest.raises(AssertionError, match="nothing received"):
        await run_example(block_of('> {"type":"dance"}', '< {"type": "pong"}'), fresh_server, 0.5)
    await run_example(block_of('> {"type":"ping"}', '< {"type": "pong"}'), fresh_server)


def test_placeholders() -> None:
    assert matches({"t": "<timestamp>"}, {"t": "2025-06-20T14:52:43.123456"})
    assert not matches({"t": "<timestamp>"}, {"t": "2025-06-20 14:52:43"})
    assert matches({"v": "<any>"}, {"v": [1, 2]})
    assert not matches({"a": 1}, {"a": 1, "b": 2})
    assert not matches({"a": 1}, {"a": True})
    assert matches({"rate": 20.0}, {"rate": 20.0})
