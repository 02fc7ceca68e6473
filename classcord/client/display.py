"""What to show for each line the server sends: one or more display lines, no I/O.

Everything from the server is escaped with ``clean`` before it reaches the screen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from classcord.client.escape import clean, clean_block, text_of
from classcord.client.texts import (
    CHANNELS,
    ERROR,
    HISTORY_EMPTY,
    HISTORY_HEAD,
    HISTORY_TAIL,
    NOBODY,
    NON_JSON,
    ONLINE,
    STATUS_SHORT,
    STATUS_WORDS,
    YOU,
)
from classcord.client.timestamps import clock
from classcord.protocol import CHANNELS_TYPES, DEFAULT_CHANNEL, USERS_TYPES, name_key
from classcord.texts import SERVER_NAME


def speech_line(stamp: str, tag: str, sender: str, content: str) -> str:
    """``[stamp] tag<sender> content``; ``sender`` already clean, ``content`` not.
    The content's continuation lines are indented under its first."""
    prefix = f"[{stamp}] {tag}<{sender}> "
    return prefix + clean_block(content, len(prefix))


def notice_line(stamp: str, content: str) -> str:
    """``[stamp] *** content``: a notice from the server, not from a person."""
    prefix = f"[{stamp}] *** "
    return prefix + clean_block(content, len(prefix))


def error_line(message: str) -> str:
    """An error, stamped now; ``message`` must already be clean."""
    return f"[{clock(None)}] " + ERROR.format(message=message)


def unknown_line(obj: object) -> str:
    """A line this client does not know how to show: its JSON, escaped."""
    return f"[?] {clean(json.dumps(obj, ensure_ascii=False))}"


def _message_line(obj: Mapping[str, Any], me: str, with_date: bool = False) -> str:
    stamp = clock(obj.get("timestamp"), with_date=with_date)
    sender = clean(text_of(obj.get("from")) or "?")
    content = text_of(obj.get("content"))
    channel = obj.get("channel")
    if obj.get("subtype") == "private":
        to = clean(text_of(obj.get("to")))
        mine = bool(me) and name_key(sender) == name_key(me)
        tag = f"[privé → {to}] " if mine else "[privé] "
    elif sender == SERVER_NAME and not channel:
        return notice_line(stamp, content)
    else:
        tag = f"{clean(channel)} " if isinstance(channel, str) and channel else ""
    return speech_line(stamp, tag, sender, content)


def _users_line(obj: Mapping[str, Any], me: str) -> str:
    users = obj.get("users")
    states = obj.get("states")
    states = states if isinstance(states, dict) else {}
    shown = []
    for user in users if isinstance(users, list) else []:
        name = text_of(user)
        notes = []
        state = states.get(name)
        if isinstance(state, str) and state != "online":
            notes.append(STATUS_SHORT.get(state, state))
        if me and name_key(name) == name_key(me):
            notes.append(YOU)
        shown.append(clean(name) + (f" ({', '.join(notes)})" if notes else ""))
    if not shown:
        return f"*** {NOBODY}"
    return "*** " + ONLINE.format(count=len(shown), names=", ".join(shown))


def _channels_line(obj: Mapping[str, Any], joined: Iterable[str], current: str) -> str:
    entries = obj.get("channels")
    joined_set = set(joined)
    shown = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        name = text_of(entry.get("name"))
        notes = [f"{entry.get('members', '?')} membre(s)"]
        if name == current:
            notes.append("salon courant")
        elif name in joined_set:
            notes.append("rejoint")
        shown.append(f"{clean(name)} ({', '.join(notes)})")
    return "*** " + CHANNELS.format(channels=", ".join(shown) or "aucun")


def _history_lines(obj: Mapping[str, Any], me: str) -> list[str]:
    what = clean(text_of(obj.get("channel") or obj.get("with")) or "?")
    messages = obj.get("messages")
    messages = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    if not messages:
        return [f"*** {HISTORY_EMPTY.format(what=what)}"]
    lines = [f"*** {HISTORY_HEAD.format(what=what, count=len(messages))}"]
    lines.extend("    " + _message_line(m, me, with_date=True) for m in messages)
    lines.append(f"*** {HISTORY_TAIL}")
    return lines


def describe(
    obj: Mapping[str, Any],
    me: str = "",
    joined: Iterable[str] = (DEFAULT_CHANNEL,),
    current: str = DEFAULT_CHANNEL,
) -> list[str]:
    """What to show for one line from the server (empty: nothing to show)."""
    kind = obj.get("type")
    if not isinstance(kind, str):
        return [unknown_line(obj)]
    if kind == "message":
        return [_message_line(obj, me)]
    if kind == "system":
        return [notice_line(clock(obj.get("timestamp")), text_of(obj.get("content")))]
    if kind == "moderation":  # a typed event carries the text people read
        return [notice_line(clock(obj.get("timestamp")), text_of(obj.get("text")))]
    if kind == "moderate":
        lines = obj.get("lines")
        shown = lines if isinstance(lines, list) else []
        return [notice_line(clock(None), text_of(line)) for line in shown]
    if kind == "status":
        user = clean(text_of(obj.get("user")) or "?")
        state = text_of(obj.get("state"))
        words = STATUS_WORDS.get(state, f"a le statut {clean(state)}")
        return [f"[{clock(None)}] *** {user} {words}."]
    if kind == "error":
        message = text_of(obj.get("message") or obj.get("error")) or "?"
        return [error_line(clean_block(message, 13))]
    if kind in USERS_TYPES:
        return [_users_line(obj, me)]
    if kind in CHANNELS_TYPES:
        return [_channels_line(obj, joined, current)]
    if kind == "history":
        return _history_lines(obj, me)
    if kind in {"pong", "typing", "hello", "login", "register", "join_channel", "leave_channel"}:
        return []  # shown by the client, which knows what it asked for
    return [unknown_line(obj)]


def pretty(line: bytes) -> str:
    """``--raw`` display: indented JSON, or the line itself when it is not JSON."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        obj = json.loads(text)
    except ValueError:
        return NON_JSON.format(line=clean(text))
    return clean_block(json.dumps(obj, indent=2, ensure_ascii=False), 0)
