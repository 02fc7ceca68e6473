"""Ring 1: the pure protocol core, fed byte by byte, with no socket."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from classcord import texts
from classcord.config import Settings
from classcord.errors import AbuseError, ClientError
from classcord.protocol import (
    LINE_TOO_LONG,
    ChannelHistory,
    Chat,
    FrameEvent,
    Hello,
    LineFramer,
    ListUsers,
    Login,
    PrivateHistory,
    Register,
    SetStatus,
    Unknown,
    decode_line,
    encode,
    error_reply,
    is_valid_name,
    loggable,
    normalize_channel,
    parse_request,
)


def feed_in_chunks(framer: LineFramer, data: bytes, sizes: list[int]) -> list[FrameEvent]:
    events: list[FrameEvent] = []
    position = 0
    for size in sizes:
        events += framer.feed(data[position : position + size])
        position += size
    events += framer.feed(data[position:])
    return events


def test_framer_one_byte_at_a_time_gives_the_same_lines() -> None:
    data = b'{"type": "ping"}\r\n\n{"type": "users"}\nrest'
    framer = LineFramer(100, 1000)
    events = feed_in_chunks(framer, data, [1] * len(data))
    assert events == [b'{"type": "ping"}', b"", b'{"type": "users"}']
    assert framer.buffered == 4


def test_framer_strips_one_trailing_cr_only() -> None:
    assert LineFramer(100, 1000).feed(b"a\r\r\n") == [b"a\r"]


def test_overlong_line_is_reported_once_and_the_next_line_survives() -> None:
    framer = LineFramer(10, 10_000)
    events = feed_in_chunks(framer, b"x" * 50 + b"\n" + b"ok\n", [7] * 8)
    assert events == [LINE_TOO_LONG, b"ok"]


def test_overlong_line_within_one_chunk() -> None:
    assert LineFramer(10, 10_000).feed(b"y" * 11 + b"\nok\n") == [LINE_TOO_LONG, b"ok"]


def test_line_exactly_at_the_limit_is_accepted() -> None:
    assert LineFramer(10, 100).feed(b"z" * 10 + b"\r\n") == [b"z" * 10]


def test_endless_line_is_abuse_and_the_buffer_stays_bounded() -> None:
    framer = LineFramer(10, 1000)
    with pytest.raises(AbuseError):
        for _ in range(200):
            framer.feed(b"a" * 64)
            assert framer.buffered <= 10 + 64


def test_utf8_split_across_reads_survives() -> None:
    data = '{"content": "café ☕"}\n'.encode()
    framer = LineFramer(100, 1000)
    cut = data.index(b"\xc3") + 1  # inside the two-byte é
    (line,) = framer.feed(data[:cut]) + framer.feed(data[cut:])
    assert isinstance(line, bytes)
    assert decode_line(line) == '{"content": "café ☕"}'


def test_cp1252_input_is_decoded() -> None:
    assert decode_line("déjà vu €".encode("cp1252")) == "déjà vu €"


def test_utf8_bom_is_dropped() -> None:
    assert decode_line(b"\xef\xbb\xbf{}") == "{}"


@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=30))
def test_framing_never_depends_on_chunking(data: bytes, sizes: list[int]) -> None:
    whole = LineFramer(64, 1 << 20).feed(data)
    chunked = feed_in_chunks(LineFramer(64, 1 << 20), data, sizes)
    assert chunked == whole


@given(st.binary(max_size=500))
def test_any_bytes_decode_and_parse_or_raise_client_error(data: bytes) -> None:
    for event in LineFramer(256, 1 << 20).feed(data + b"\n"):
        if isinstance(event, bytes):
            try:
                parse_request(decode_line(event))
            except ClientError as exc:
                assert exc.message


@given(st.text(max_size=80), st.lists(st.integers(1, 9), max_size=20))
def test_any_text_round_trips_through_framing(content: str, sizes: list[int]) -> None:
    line = encode({"type": "message", "content": content})
    (event,) = feed_in_chunks(LineFramer(4096, 1 << 20), line, sizes)
    assert isinstance(event, bytes)
    request = parse_request(decode_line(event))
    assert isinstance(request, Chat)
    assert request.content == content


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"type":"register","username":"a","password":"p"}', Register("a", "p")),
        ('{"type":"login","username":"a","password":"p","extra":1}', Login("a", "p")),
        ('{"type":"message","content":"hi"}', Chat("hi", None, None, None)),
        (
            '{"type":"message","subtype":"global","content":"hi","from":"x"}',
            Chat("hi", None, "x", None),
        ),
        (
            '{"type":"message","subtype":"private","to":"b","content":"hi"}',
            Chat("hi", "b", None, None),
        ),
        ('{"type":"message","content":"","from":"Bob"}', Chat("", None, "Bob", None)),
        ('{"type":"message","from":""}', Chat("", None, None, None)),
        ('{"type":"status","user":"z","state":"away"}', SetStatus("away")),
        ('{"type":"users"}', ListUsers("users")),
        ('{"type":"list_users"}', ListUsers("list_users")),
        ('{"type":"userlist"}', ListUsers("userlist")),
        ('{"type":"hello","features":["system"]}', Hello(("system",))),
        ('{"type":"typing_indicator_v9"}', Unknown("typing_indicator_v9")),
    ],
)
def test_requests_seen_in_the_wild_parse(line: str, expected: object) -> None:
    assert parse_request(line) == expected


@pytest.mark.parametrize("blank", ["", " ", "\t", "   \r"])
def test_blank_lines_are_ignored(blank: str) -> None:
    assert parse_request(blank) is None


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "JSON invalide"),
        ("[1, 2]", "objet JSON"),
        ('"text"', "objet JSON"),
        ("{}", "'type'"),
        ('{"type": 5}', "'type'"),
        ('{"type":"login","username":"a"}', "'password'"),
        ('{"type":"register","username":3,"password":"p"}', "'username'"),
        ('{"type":"message","content":42}', "'content'"),
        ('{"type":"message","subtype":"private","content":"x"}', "'to'"),
        ('{"type":"status","state":"sleeping"}', "Statut invalide"),
        ('{"type":"hello","features":"system"}', "'features'"),
        ("[" * 5000 + "]" * 5000, "JSON invalide"),
        ('{"type":"x","n":' + "1" * 5000 + "}", "JSON invalide"),
    ],
)
def test_bad_requests_raise_client_errors_with_a_clear_message(line: str, fragment: str) -> None:
    with pytest.raises(ClientError) as caught:
        parse_request(line)
    assert fragment in caught.value.message


def test_encode_is_ascii_json_with_one_newline() -> None:
    data = encode({"type": "message", "content": "é☕"})
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert data.decode("ascii")
    assert json.loads(data) == {"type": "message", "content": "é☕"}


def test_error_reply_carries_the_text_twice() -> None:
    assert error_reply(texts.LOGIN_FAILED) == {
        "type": "error",
        "message": "Login failed.",
        "error": "Login failed.",
    }


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("alice", True),
        ("Invité_Bob_1718900000000", True),
        ("", False),
        (" a", False),
        ("a\nb", False),
        ("a\u200bb", False),
        ("x" * 65, False),
    ],
)
def test_name_rules(name: str, valid: bool) -> None:
    assert is_valid_name(name, 64) is valid


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("dev", "#dev"),
        ("#Dev", "#dev"),
        ("#a-b_c", "#a-b_c"),
        ("#", None),
        ("#a b", None),
        ("#" + "x" * 33, None),
    ],
)
def test_channel_names(raw: str, canonical: str | None) -> None:
    assert normalize_channel(raw, Settings().max_channel_chars) == canonical


@pytest.mark.parametrize(
    ("text", "shown"),
    [("alice", "alice"), ("zoé", "zoé"), ("a\nb", "'a\\nb'"), ("x\r\x1b[31m", "'x\\r\\x1b[31m'")],
)
def test_client_text_is_escaped_for_the_log(text: str, shown: str) -> None:
    assert loggable(text) == shown
    assert "\n" not in loggable(text)


def test_texts_sent_unformatted_have_no_doubled_braces() -> None:
    """A text with no fields is sent as is: escaped braces would reach the client."""
    for name, value in vars(texts).items():
        if name.isupper() and isinstance(value, str):
            fields = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
            if not fields:
                assert "{{" not in value, name
                assert "}}" not in value, name


def test_history_is_two_requests_because_their_rules_differ() -> None:
    assert parse_request('{"type": "history", "channel": "#dev", "limit": 5}') == ChannelHistory(
        "#dev", 5
    )
    assert parse_request('{"type": "history"}') == ChannelHistory(None, None)
    assert parse_request('{"type": "history", "with": "bob"}') == PrivateHistory("bob", None)
    with pytest.raises(ClientError, match="limit"):
        parse_request('{"type": "history", "limit": true}')


@pytest.mark.parametrize(
    "line",
    [
        r'{"type": "register", "username": "al\ud800", "password": "pw"}',
        r'{"type": "login", "username": "alice", "password": "\udfff"}',
        r'{"type": "history", "with": "\ud800"}',
        r'{"type": "message", "subtype": "private", "to": "b\ud83d", "content": "x"}',
        r'{"type": "status", "state": "\ud800"}',
        r'{"type": "join_channel", "channel": "#\ud800"}',
    ],
)
def test_a_lone_surrogate_in_a_name_or_password_is_refused(line: str) -> None:
    with pytest.raises(ClientError, match="demi-paire UTF-16"):
        parse_request(line)


def test_a_lone_surrogate_in_chat_text_becomes_the_replacement_character() -> None:
    # A Java client that cuts a string inside an emoji's pair: the message is kept.
    request = parse_request(r'{"type": "message", "content": "ok \ud83d then \ude00 \ud83d\ude00"}')
    assert isinstance(request, Chat)
    assert request.content == "ok \ufffd then \ufffd \U0001f600"
    request.content.encode("utf-8")  # storable, hashable, printable


@given(st.text(alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=8))
def test_no_parsed_string_holds_a_lone_surrogate(text: str) -> None:
    escaped = json.dumps(text)  # \\udxxx escapes, as a client would send them
    for template in (
        '{{"type": "message", "content": {0}, "from": {0}}}',
        '{{"type": "message", "subtype": "private", "to": {0}, "content": {0}}}',
        '{{"type": "register", "username": {0}, "password": {0}}}',
        '{{"type": "history", "with": {0}}}',
    ):
        try:
            request = parse_request(template.format(escaped))
        except ClientError:
            continue
        for slot in type(request).__slots__:
            value = getattr(request, slot)
            if isinstance(value, str):
                value.encode("utf-8")  # raises on a lone surrogate
