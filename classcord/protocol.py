"""The wire protocol with no I/O: bytes in, typed requests out; replies in, bytes out.

Framing splits on ``\\n`` and checks the byte limit while searching, so a line never
grows a buffer past the limit by more than one read. Lines are decoded whole, so a
UTF-8 character split across TCP segments survives; a line that is not UTF-8 is read
as cp1252 (Java clients on Windows write their platform charset). Output is
ASCII-escaped JSON, which every client family decodes correctly whatever its charset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from classcord import texts
from classcord.errors import AbuseError, ClientError
from classcord.identity import is_reserved_name, is_valid_name, name_key

# The identity rule lives in identity.py; these names are part of the protocol's API.
__all__ = ["is_reserved_name", "is_valid_name", "name_key"]

STATUS_VALUES: Final = ("online", "away", "dnd", "invisible")
# What an older version of client family C sends for its "do not disturb" and
# "Invisible" choices.
STATUS_ALIASES: Final = {"do not disturb": "dnd", "offline": "invisible"}
DEFAULT_CHANNEL: Final = "#general"
FEATURES: Final = ("system", "history_on_join", "typing", "moderation")
# A global message "/join #x" or "/leave #x" typed in an old client is that command.
SLASH_COMMAND: Final = re.compile(r"^/(join|leave)\s+(\S+)\s*$")


# --- framing -----------------------------------------------------------------


class LineTooLong:
    """Framing event: a line passed the byte limit; its rest is being discarded."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "LINE_TOO_LONG"


LINE_TOO_LONG: Final = LineTooLong()
FrameEvent = bytes | LineTooLong


class LineFramer:
    """Splits a byte stream into lines, one at a time, never holding more than one
    long line: bytes wait here, compact, until the session is ready for the next
    line, instead of waiting as Python objects."""

    __slots__ = ("_abuse_bytes", "_buffer", "_discarded", "_discarding", "_max_bytes", "_start")

    def __init__(self, max_line_bytes: int, abuse_line_bytes: int) -> None:
        self._max_bytes = max_line_bytes
        self._abuse_bytes = abuse_line_bytes
        self._buffer = bytearray()
        self._start = 0
        self._discarding = False
        self._discarded = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._start

    def push(self, data: bytes) -> None:
        """Take bytes as they arrive. Raises AbuseError when one line goes on past
        ``abuse_line_bytes``: that is endless input, not a long paste."""
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                self._note_discarded(len(data))
                return
            self._note_discarded(newline)
            self._discarding = False
            self._discarded = 0
            data = data[newline + 1 :]
        self._buffer += data

    def next_event(self) -> FrameEvent | None:
        """The next complete line (without ``\n`` or a final ``\r``), LINE_TOO_LONG,
        or None when no complete line is buffered."""
        buffer, start = self._buffer, self._start
        newline = buffer.find(b"\n", start)
        if newline < 0:
            if start:
                del buffer[:start]
                self._start = 0
            if len(buffer) > self._max_bytes:
                self._discarding = True
                self._discarded = 0
                self._note_discarded(len(buffer))
                buffer.clear()
                return LINE_TOO_LONG
            return None
        end = newline - 1 if newline > start and buffer[newline - 1] == 0x0D else newline
        line = LINE_TOO_LONG if end - start > self._max_bytes else bytes(buffer[start:end])
        self._start = newline + 1
        if self._start > self._max_bytes:  # amortised: the consumed head goes
            del buffer[: self._start]
            self._start = 0
        return line

    def finish(self) -> None:
        """End of input: a last line without its newline still counts."""
        if not self._discarding and self.buffered:
            self._buffer += b"\n"

    def feed(self, data: bytes) -> list[FrameEvent]:
        """Every event ``data`` completes (push, then drain): for tests and tools."""
        self.push(data)
        events: list[FrameEvent] = []
        while (event := self.next_event()) is not None:
            events.append(event)
        return events

    def _note_discarded(self, count: int) -> None:
        self._discarded += count
        if self._discarded > self._abuse_bytes:
            raise AbuseError(f"line longer than {self._abuse_bytes} bytes")


def decode_line(raw: bytes) -> str:
    """UTF-8 first; anything else is read as cp1252, never rejected."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return text.removeprefix("\ufeff")


# --- requests ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Login:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Chat:
    content: str
    private_to: str | None
    requested_name: str | None
    channel: str | None


@dataclass(frozen=True, slots=True)
class SetStatus:
    state: str


@dataclass(frozen=True, slots=True)
class ListUsers:
    reply_type: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Hello:
    features: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JoinChannel:
    channel: str


@dataclass(frozen=True, slots=True)
class LeaveChannel:
    channel: str


@dataclass(frozen=True, slots=True)
class ListChannels:
    reply_type: str


@dataclass(frozen=True, slots=True)
class ChannelHistory:
    channel: str | None
    limit: int | None


@dataclass(frozen=True, slots=True)
class PrivateHistory:
    """Split from ChannelHistory because its rule depends on the state: it needs an
    account (a guest's conversations end with the guest)."""

    with_user: str
    limit: int | None


@dataclass(frozen=True, slots=True)
class Typing:
    channel: str | None
    to: str | None


@dataclass(frozen=True, slots=True)
class Moderate:
    """A moderation command as a request (``{"type":"moderate","command":"mute Léa
    10m"}``): the same words as typed in a chat, the slash optional."""

    command: str


@dataclass(frozen=True, slots=True)
class Unknown:
    type_name: str


Request = (
    Register
    | Login
    | Chat
    | SetStatus
    | ListUsers
    | Ping
    | Hello
    | JoinChannel
    | LeaveChannel
    | ListChannels
    | ChannelHistory
    | PrivateHistory
    | Typing
    | Moderate
    | Unknown
)


# A UTF-16 surrogate left alone: JSON's "\ud800" escape decodes to one, and a Java
# client that cuts a string inside an emoji sends exactly that. No codec, SQLite
# or scrypt included, can encode it, so none gets past this module.
_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER: Final = "\ufffd"


def has_lone_surrogate(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def _no_surrogate(value: str, key: str, request: str) -> str:
    """Names, passwords and the like are refused: replacing a character would make
    them another name or another password."""
    if has_lone_surrogate(value):
        raise ClientError(texts.LONE_SURROGATE.format(request=request, field=key))
    return value


def _text(obj: Mapping[str, Any], key: str, request: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ClientError(texts.FIELD_REQUIRED.format(request=request, field=key))
    return _no_surrogate(value, key, request)


def _optional_text(obj: Mapping[str, Any], key: str, request: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ClientError(
            texts.FIELD_WRONG_TYPE.format(request=request, field=key, expected="un texte")
        )
    return _no_surrogate(value, key, request)


def _chat(obj: Mapping[str, Any]) -> Chat:
    content = obj.get("content", "")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise ClientError(
            texts.FIELD_WRONG_TYPE.format(request="message", field="content", expected="un texte")
        )
    # Chat text keeps the message: each lone surrogate becomes U+FFFD.
    content = _LONE_SURROGATE.sub(REPLACEMENT_CHARACTER, content)
    requested = obj.get("from")
    requested_name = requested if isinstance(requested, str) and requested.strip() else None
    if requested_name is not None and has_lone_surrogate(requested_name):
        requested_name = None  # the guest gets the default name, as for any invalid one
    private_to = None
    if obj.get("subtype") == "private":
        private_to = _text(obj, "to", "message")
    return Chat(content, private_to, requested_name, _optional_text(obj, "channel", "message"))


def _status(obj: Mapping[str, Any]) -> SetStatus:
    state = _text(obj, "state", "status")
    state = STATUS_ALIASES.get(state, state)
    if state not in STATUS_VALUES:
        raise ClientError(
            texts.STATUS_INVALID.format(state=state, allowed=", ".join(STATUS_VALUES))
        )
    return SetStatus(state)


def _hello(obj: Mapping[str, Any]) -> Hello:
    features = obj.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ClientError(
            texts.FIELD_WRONG_TYPE.format(
                request="hello", field="features", expected="une liste de textes"
            )
        )
    return Hello(tuple(features))


def _history(obj: Mapping[str, Any], kind: str) -> ChannelHistory | PrivateHistory:
    limit = obj.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise ClientError(
            texts.FIELD_WRONG_TYPE.format(request=kind, field="limit", expected="un entier")
        )
    with_user = _optional_text(obj, "with", kind)
    if with_user is not None:
        return PrivateHistory(with_user, limit)
    return ChannelHistory(_optional_text(obj, "channel", kind), limit)


def _credentials(obj: Mapping[str, Any], kind: str) -> tuple[str, str]:
    return _text(obj, "username", kind), _text(obj, "password", kind)


@dataclass(frozen=True, slots=True)
class RequestType:
    """One entry of the registry: the wire ``type`` values a request arrives with (the
    first is the one texts name back to the client), its parser, and the classes the
    parser can return."""

    wire_types: tuple[str, ...]
    parse: Callable[[Mapping[str, Any], str], Request]
    classes: tuple[type, ...]


# The one registry of requests: the parser, the session's handler table, the docs
# test and the table-coverage test all read it.
REQUEST_TYPES: Final[tuple[RequestType, ...]] = (
    RequestType(("register",), lambda obj, kind: Register(*_credentials(obj, kind)), (Register,)),
    RequestType(("login",), lambda obj, kind: Login(*_credentials(obj, kind)), (Login,)),
    RequestType(("message",), lambda obj, kind: _chat(obj), (Chat,)),
    RequestType(("status",), lambda obj, kind: _status(obj), (SetStatus,)),
    RequestType(
        ("users", "list_users", "userlist"), lambda obj, kind: ListUsers(kind), (ListUsers,)
    ),
    RequestType(("ping",), lambda obj, kind: Ping(), (Ping,)),
    RequestType(("hello",), lambda obj, kind: _hello(obj), (Hello,)),
    RequestType(
        ("join_channel",),
        lambda obj, kind: JoinChannel(_text(obj, "channel", kind)),
        (JoinChannel,),
    ),
    RequestType(
        ("leave_channel",),
        lambda obj, kind: LeaveChannel(_text(obj, "channel", kind)),
        (LeaveChannel,),
    ),
    RequestType(
        ("channels", "list_channels", "channel_list"),
        lambda obj, kind: ListChannels(kind),
        (ListChannels,),
    ),
    RequestType(("history",), _history, (ChannelHistory, PrivateHistory)),
    RequestType(
        ("typing",),
        lambda obj, kind: Typing(
            _optional_text(obj, "channel", kind), _optional_text(obj, "to", kind)
        ),
        (Typing,),
    ),
    RequestType(
        ("moderate",), lambda obj, kind: Moderate(_text(obj, "command", kind)), (Moderate,)
    ),
)

_BY_WIRE_TYPE: Final = {wire: entry for entry in REQUEST_TYPES for wire in entry.wire_types}

# The ``type`` a request arrives with, for texts that name it back to the client.
WIRE_TYPE: Final[dict[type, str]] = {
    cls: entry.wire_types[0] for entry in REQUEST_TYPES for cls in entry.classes
}

# Every class parse_request can return: the session's table must have a row for each.
REQUEST_CLASSES: Final = frozenset(WIRE_TYPE) | {Unknown}


def wire_types_of(cls: type) -> tuple[str, ...]:
    """Every ``type`` value that gives a request of class ``cls``."""
    return next(entry.wire_types for entry in REQUEST_TYPES if cls in entry.classes)


USERS_TYPES: Final = frozenset(wire_types_of(ListUsers))
CHANNELS_TYPES: Final = frozenset(wire_types_of(ListChannels))


def parse_request(text: str) -> Request | None:
    """Parse one decoded line. Blank lines give None; mistakes raise ClientError."""
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientError(texts.INVALID_JSON.format(column=exc.colno)) from None
    except RecursionError:
        raise ClientError(texts.TOO_DEEP) from None
    except ValueError:  # e.g. an integer literal past Python's digit limit
        raise ClientError(texts.INVALID_JSON.format(column=1)) from None
    if not isinstance(obj, dict):
        raise ClientError(texts.NOT_AN_OBJECT)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ClientError(texts.MISSING_TYPE)
    entry = _BY_WIRE_TYPE.get(kind)
    return Unknown(kind) if entry is None else entry.parse(obj, kind)


# --- validation shared by sessions and accounts -------------------------------


def normalize_channel(name: str, max_chars: int) -> str | None:
    """``dev``, ``#dev`` and ``#Dev`` are one channel, ``#dev``; None if not a valid name."""
    bare = name.strip().removeprefix("#").lower()
    if not 0 < len(bare) <= max_chars:
        return None
    if not all(ch.isalnum() or ch in "-_" for ch in bare):
        return None
    return "#" + bare


def loggable(text: str, limit: int = 80) -> str:
    """Client text made safe for one log line: anything unprintable is escaped, so a
    name with a newline cannot forge a line (and a fail2ban ban) of its own."""
    shown = text[:limit]
    return shown if shown.isprintable() else ascii(shown)


# --- replies -------------------------------------------------------------------


def encode(reply: Mapping[str, Any]) -> bytes:
    """One reply as one line of ASCII JSON (default separators, like the reference)."""
    return (json.dumps(reply, ensure_ascii=True) + "\n").encode("ascii")


def error_reply(message: str) -> dict[str, Any]:
    # Client A reads "error", the others "message": both carry the same text.
    return {"type": "error", "message": message, "error": message}


def chat_reply(
    sender: str,
    content: str,
    timestamp: str,
    private_to: str | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "type": "message",
        "subtype": "private" if private_to is not None else "global",
        "from": sender,
        "content": content,
        "timestamp": timestamp,
    }
    if private_to is not None:
        reply["to"] = private_to
    if channel is not None:
        reply["channel"] = channel
    return reply


def status_reply(user: str, state: str) -> dict[str, Any]:
    return {"type": "status", "user": user, "state": state}


def notice_reply(content: str, timestamp: str) -> dict[str, Any]:
    """A notice for people, shaped as an ordinary global message every client shows."""
    return chat_reply(texts.SERVER_NAME, content, timestamp)


def notice_for(features: frozenset[str], content: str, timestamp: str) -> dict[str, Any]:
    """A ``system`` line for a client that asked for them, else an ordinary message
    from Serveur, which every legacy client shows."""
    if "system" in features:
        return {"type": "system", "content": content, "timestamp": timestamp}
    return notice_reply(content, timestamp)


def now_timestamp() -> str:
    # Always with microseconds: isoformat() drops them when they are zero, and one
    # client splits the timestamp on "T" and expects a stable shape.
    return datetime.now().isoformat(timespec="microseconds")
