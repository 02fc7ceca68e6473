"""Moderation commands typed as chat content (issue 12), with no I/O.

Every legacy client sends chat content, so ``/mute Léa 10m`` typed in any client is
the command. The session calls ``intercept`` on the content of each global or
channel message (after its own checks, before ``/join`` and ``/leave``):

- ``None``: not a moderation command. The message goes on as today (plain text,
  ``/join #x``, ``/leave #x``, and, from a student, any ``/word`` that is not a
  moderation verb).
- ``Reserved``: a student (or a moderator, for a teacher's verb) typed a known
  verb, in any case or look-alike spelling (``/MUTE``, fullwidth, Cyrillic): they
  get ``message`` as a notice and nothing is broadcast.
- ``BadUsage``: a moderator or teacher mistyped: they get ``message`` (what is
  wrong and the usage line); nothing is broadcast. A staff ``/word`` that is no
  command at all gets the list of commands.
- a command: check it with ``authorize`` (it needs the target's role), then
  ``apply_rule`` for the rules kept in ``ModerationState`` or, for the others, the
  server does the work and builds its notices and log entry with ``outcome_*``.

A name with a space is written in double quotes where more arguments follow
(``/mute "Léa Martin" 10m``); where the name ends the command (``/unmute``,
``/unban``, ``/private``, ``/role``, ``/delete``) it may be written bare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from classcord import texts
from classcord.errors import ClientError, InternalError
from classcord.identity import name_key
from classcord.moderation import (
    Action,
    LogEntry,
    ModerationLimits,
    ModerationState,
    Role,
    format_duration,
    may_act_on,
    may_grant,
    parse_duration,
    parse_role,
    until_phrase,
    where_phrase,
)
from classcord.protocol import normalize_channel

# --- commands ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mute:
    target: str
    duration: int | None  # seconds; None: until /unmute
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unmute:
    target: str


@dataclass(frozen=True, slots=True)
class Silence:
    channel: str | None  # None: the whole server
    duration: int | None = None


@dataclass(frozen=True, slots=True)
class Unsilence:
    channel: str | None


@dataclass(frozen=True, slots=True)
class Slow:
    seconds: int
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Unslow:
    channel: str | None


@dataclass(frozen=True, slots=True)
class Private:
    allowed: bool  # /private on: True
    target: str | None = None  # None: every student


@dataclass(frozen=True, slots=True)
class Delete:
    target: str
    count: int


@dataclass(frozen=True, slots=True)
class Kick:
    target: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Ban:
    target: str
    duration: int | None  # seconds; None: until /unban
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unban:
    target: str


@dataclass(frozen=True, slots=True)
class Announce:
    text: str


@dataclass(frozen=True, slots=True)
class Who:
    pass


@dataclass(frozen=True, slots=True)
class ModLog:
    count: int


@dataclass(frozen=True, slots=True)
class SetRole:
    target: str
    role: Role  # never TEACHER: the parser refuses it


@dataclass(frozen=True, slots=True)
class Help:
    pass


Command = (
    Mute
    | Unmute
    | Silence
    | Unsilence
    | Slow
    | Unslow
    | Private
    | Delete
    | Kick
    | Ban
    | Unban
    | Announce
    | Who
    | ModLog
    | SetRole
    | Help
)
# The commands whose whole effect is a rule of ModerationState: see apply_rule.
RuleCommand = Mute | Unmute | Silence | Unsilence | Slow | Unslow | Private | Ban | Unban


@dataclass(frozen=True, slots=True)
class BadUsage:
    """A staff command mistyped: ``message`` says what is wrong and how to write it."""

    verb: str
    message: str


@dataclass(frozen=True, slots=True)
class Reserved:
    """A known verb typed by someone whose role may not use it."""

    verb: str
    message: str


Intercepted = Command | BadUsage | Reserved

# The verb of each command, as typed and as named in texts.
VERB: Final[dict[type, str]] = {
    Mute: "mute",
    Unmute: "unmute",
    Silence: "silence",
    Unsilence: "silence",
    Slow: "slow",
    Unslow: "slow",
    Private: "private",
    Delete: "delete",
    Kick: "kick",
    Ban: "ban",
    Unban: "unban",
    Announce: "announce",
    Who: "who",
    ModLog: "modlog",
    SetRole: "role",
    Help: "aide",
}
# Every verb intercepted from anyone, students included. /aide (or /help) is for
# staff only: from a student it stays an ordinary message, as today.
VERBS: Final = frozenset(v for v in VERB.values() if v != "aide")
# Verbs a moderator may not use.
TEACHER_VERBS: Final = frozenset({"ban", "unban", "role"})
# Other slash words with a meaning of their own (session.py: /join #x, /leave #x).
PASS_THROUGH_VERBS: Final = frozenset({"join", "leave"})

USAGE: Final = {
    "mute": texts.MOD_USAGE_MUTE,
    "unmute": texts.MOD_USAGE_UNMUTE,
    "silence": texts.MOD_USAGE_SILENCE,
    "slow": texts.MOD_USAGE_SLOW,
    "private": texts.MOD_USAGE_PRIVATE,
    "delete": texts.MOD_USAGE_DELETE,
    "kick": texts.MOD_USAGE_KICK,
    "ban": texts.MOD_USAGE_BAN,
    "unban": texts.MOD_USAGE_UNBAN,
    "announce": texts.MOD_USAGE_ANNOUNCE,
    "who": texts.MOD_USAGE_WHO,
    "modlog": texts.MOD_USAGE_MODLOG,
    "role": texts.MOD_USAGE_ROLE,
    "aide": texts.MOD_USAGE_HELP,
}

# --- parsing ---------------------------------------------------------------------------

_SLASH: Final = re.compile(r"\s*/(\S+)(.*)", re.DOTALL)
_OFF: Final = name_key("off")
_ON: Final = name_key("on")


class _Args:
    """The arguments after the verb: words, ``"quoted words"``, or the rest."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0

    def _skip_space(self) -> None:
        while self._pos < len(self._text) and self._text[self._pos].isspace():
            self._pos += 1

    def take(self) -> str | None:
        self._skip_space()
        text, start = self._text, self._pos
        if start >= len(text):
            return None
        if text[start] == '"':
            end = text.find('"', start + 1)
            if end < 0:
                raise ClientError(texts.MOD_UNCLOSED_QUOTE)
            self._pos = end + 1
            return text[start + 1 : end]
        end = start
        while end < len(text) and not text[end].isspace():
            end += 1
        self._pos = end
        return text[start:end]

    def peek(self) -> str | None:
        saved = self._pos
        try:
            return self.take()
        finally:
            self._pos = saved

    def words(self) -> list[str]:
        found = []
        while (word := self.take()) is not None:
            found.append(word)
        return found

    def rest(self) -> str:
        self._skip_space()
        return self._text[self._pos :].strip()

    def done(self) -> None:
        extra = self.rest()
        if extra:
            raise ClientError(texts.MOD_TOO_MANY_ARGUMENTS.format(value=extra))


def _name(value: str | None) -> str:
    name = (value or "").strip()
    if not name:
        raise ClientError(texts.MOD_MISSING_NAME)
    return name


def _bare_name(text: str) -> str:
    """A name that ends the command: the rest of the line, quotes optional."""
    text = text.strip()
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise ClientError(texts.MOD_UNCLOSED_QUOTE)
        text = text[1:-1]
    return _name(text)


def _split_last(text: str) -> tuple[str, str]:
    """``("Léa Martin", "3")`` from ``"Léa Martin 3"``; ``("", word)`` for one word."""
    parts = text.rsplit(None, 1)
    return (parts[0], parts[1]) if len(parts) == 2 else ("", text)


def _starts_like_number(word: str) -> bool:
    return word[:1].isdigit()


def _duration(word: str, limit: int) -> int:
    seconds = parse_duration(word, limit)
    if seconds is None:
        raise ClientError(texts.MOD_BAD_DURATION.format(value=word, limit=format_duration(limit)))
    return seconds


def _count(word: str, limit: int) -> int:
    if not (word.isascii() and word.isdigit() and 1 <= int(word) <= limit):
        raise ClientError(texts.MOD_BAD_NUMBER.format(value=word, limit=limit))
    return int(word)


def _channel(word: str, limits: ModerationLimits) -> str:
    channel = normalize_channel(word, limits.max_channel_chars)
    if channel is None:
        raise ClientError(texts.MOD_BAD_CHANNEL.format(value=word))
    return channel


def _reason(args: _Args, limits: ModerationLimits) -> str:
    reason = args.rest()
    if len(reason) > limits.max_reason_chars:
        raise ClientError(texts.MOD_REASON_TOO_LONG.format(limit=limits.max_reason_chars))
    return reason


def _optional_duration(args: _Args, limits: ModerationLimits) -> int | None:
    """A word that starts with a digit is a duration (``10mn`` too, so a typo is
    caught, never taken as the start of the reason)."""
    word = args.peek()
    if word is None or not _starts_like_number(word):
        return None
    args.take()
    return _duration(word, limits.max_duration_seconds)


def _mute(args: _Args, limits: ModerationLimits) -> Command:
    target = _name(args.take())
    duration = _optional_duration(args, limits)
    return Mute(target, duration, _reason(args, limits))


def _ban(args: _Args, limits: ModerationLimits) -> Command:
    target = _name(args.take())
    duration = _optional_duration(args, limits)
    return Ban(target, duration, _reason(args, limits))


def _kick(args: _Args, limits: ModerationLimits) -> Command:
    target = _name(args.take())
    return Kick(target, _reason(args, limits))


def _unmute(args: _Args, limits: ModerationLimits) -> Command:
    return Unmute(_bare_name(args.rest()))


def _unban(args: _Args, limits: ModerationLimits) -> Command:
    return Unban(_bare_name(args.rest()))


def _scope_words(args: _Args, limits: ModerationLimits) -> tuple[str | None, list[str]]:
    """/silence and /slow: an optional #channel anywhere, and the other words."""
    channel, others = None, []
    for word in args.words():
        if word.startswith("#") and channel is None:
            channel = _channel(word, limits)
        else:
            others.append(word)
    return channel, others


def _silence(args: _Args, limits: ModerationLimits) -> Command:
    channel, others = _scope_words(args, limits)
    if not others or (len(others) == 1 and name_key(others[0]) == _ON):
        return Silence(channel)
    if len(others) > 1:
        raise ClientError(texts.MOD_TOO_MANY_ARGUMENTS.format(value=" ".join(others[1:])))
    if name_key(others[0]) == _OFF:
        return Unsilence(channel)
    return Silence(channel, _duration(others[0], limits.max_duration_seconds))


def _slow(args: _Args, limits: ModerationLimits) -> Command:
    channel, others = _scope_words(args, limits)
    if not others:
        raise ClientError(texts.MOD_USAGE_SLOW)
    if len(others) > 1:
        raise ClientError(texts.MOD_TOO_MANY_ARGUMENTS.format(value=" ".join(others[1:])))
    word = others[0]
    if name_key(word) == _OFF:
        return Unslow(channel)
    if word.isascii() and word.isdigit():
        return Slow(_count(word, limits.max_slow_seconds), channel)
    return Slow(_duration(word, limits.max_slow_seconds), channel)


def _private(args: _Args, limits: ModerationLimits) -> Command:
    switch = args.take()
    key = name_key(switch or "")
    if key not in (_ON, _OFF):
        raise ClientError(texts.MOD_USAGE_PRIVATE)
    rest = args.rest()
    return Private(key == _ON, _bare_name(rest) if rest else None)


def _delete(args: _Args, limits: ModerationLimits) -> Command:
    text = args.rest()
    head, last = _split_last(text)
    if head and last.isascii() and last.isdigit() and not text.endswith('"'):
        return Delete(_bare_name(head), _count(last, limits.max_delete_messages))
    return Delete(_bare_name(text), limits.default_delete_messages)


def _announce(args: _Args, limits: ModerationLimits) -> Command:
    text = args.rest()
    if not text:
        raise ClientError(texts.MOD_MISSING_TEXT)
    return Announce(text)


def _who(args: _Args, limits: ModerationLimits) -> Command:
    args.done()
    return Who()


def _modlog(args: _Args, limits: ModerationLimits) -> Command:
    word = args.take()
    args.done()
    if word is None:
        return ModLog(limits.default_modlog_entries)
    return ModLog(_count(word, limits.max_modlog_entries))


def _role(args: _Args, limits: ModerationLimits) -> Command:
    text = args.rest()
    head, last = _split_last(text)
    if not head:
        raise ClientError(texts.MOD_USAGE_ROLE)
    role = parse_role(last)
    if role is None:
        raise ClientError(texts.MOD_BAD_ROLE.format(value=last))
    if role is Role.TEACHER:
        raise ClientError(texts.MOD_TEACHER_FROM_VM)
    return SetRole(_bare_name(head), role)


def _help(args: _Args, limits: ModerationLimits) -> Command:
    return Help()


_PARSERS: Final = {
    "mute": _mute,
    "unmute": _unmute,
    "silence": _silence,
    "slow": _slow,
    "private": _private,
    "delete": _delete,
    "kick": _kick,
    "ban": _ban,
    "unban": _unban,
    "announce": _announce,
    "who": _who,
    "modlog": _modlog,
    "role": _role,
    "aide": _help,
}
# Each verb by its name_key, so /MUTE, a fullwidth or a Cyrillic-looking /mute match.
_BY_KEY: Final = {name_key(verb): verb for verb in _PARSERS} | {name_key("help"): "aide"}


def split_verb(content: str) -> tuple[str, str] | None:
    """``("mute", " Léa 10m")`` for content that starts with ``/word`` (leading
    spaces allowed), else None. The word is as typed."""
    first = content[:1]  # the common case costs one slice
    if first != "/" and not (first.isspace() and content.lstrip().startswith("/")):
        return None
    match = _SLASH.fullmatch(content)
    return None if match is None else (match[1], match[2])


def parse_command(content: str, limits: ModerationLimits) -> Command | BadUsage | None:
    """The moderation command typed as ``content``, whoever typed it; a BadUsage
    for a known verb with wrong arguments; None when the verb is not one of ours."""
    split = split_verb(content)
    if split is None:
        return None
    verb = _BY_KEY.get(name_key(split[0]))
    if verb is None:
        return None
    try:
        return _PARSERS[verb](_Args(split[1]), limits)
    except ClientError as problem:
        usage = USAGE[verb]
        message = problem.message if problem.message == usage else f"{problem.message} {usage}"
        return BadUsage(verb, message)


def intercept(content: str, role: Role, limits: ModerationLimits) -> Intercepted | None:
    """What the session does with a global or channel message's content (see the
    module's docstring); None: send it as today."""
    split = split_verb(content)
    if split is None:
        return None
    word = split[0]
    verb = _BY_KEY.get(name_key(word))
    if verb is None or (verb == "aide" and not role.is_staff):
        if role.is_staff and word.isalpha() and name_key(word) not in PASS_THROUGH_VERBS:
            return BadUsage(word, f"{texts.MOD_UNKNOWN_COMMAND.format(verb=word)} {texts.MOD_HELP}")
        return None
    if not role.is_staff:
        return Reserved(verb, texts.MOD_RESERVED.format(verb=verb))
    if verb in TEACHER_VERBS and role is not Role.TEACHER:
        return Reserved(verb, texts.MOD_TEACHER_ONLY.format(verb=verb))
    return parse_command(content, limits)


# --- permissions -------------------------------------------------------------------------


def target_of(command: Command) -> str | None:
    """The user a command acts on (look up their role for ``authorize``), or None."""
    if isinstance(command, Mute | Unmute | Delete | Kick | Ban | Unban | SetRole):
        return command.target
    if isinstance(command, Private):
        return command.target
    return None


def authorize(actor: Role, command: Command, target_role: Role | None) -> str | None:
    """Why ``actor`` may not run ``command`` (a French notice for them), or None.

    ``target_role`` is the role of ``target_of(command)``: ``Role.STUDENT`` for a
    guest or a name with no account; None only for a command without a target."""
    verb = VERB[type(command)]
    if not actor.is_staff:
        return texts.MOD_RESERVED.format(verb=verb)
    if verb in TEACHER_VERBS and actor is not Role.TEACHER:
        return texts.MOD_TEACHER_ONLY.format(verb=verb)
    target = target_of(command)
    if target is None:
        return None
    if target_role is None:
        raise InternalError(f"authorize /{verb} {target!r} without the target's role")
    if isinstance(command, SetRole):
        if command.role is Role.TEACHER:
            return texts.MOD_TEACHER_FROM_VM
        if not may_grant(actor, target_role, command.role):
            return texts.MOD_NOT_ON_TARGET.format(name=target, role=target_role.label)
        return None
    if not may_act_on(actor, target_role):
        return texts.MOD_NOT_ON_TARGET.format(name=target, role=target_role.label)
    return None


# --- effects -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the server sends and records after a command. Each text goes out as a
    message from Serveur: ``everyone`` global, ``target`` private to the user
    concerned (if online), ``actor`` private to the one who acted. ``entry`` is
    stored and logged (``format_log_line``); None when nothing changed."""

    entry: LogEntry | None
    everyone: str | None = None
    target: str | None = None
    actor: str | None = None


def apply_rule(
    command: RuleCommand,
    state: ModerationState,
    actor: str,
    now: float | None = None,
    target_name: str | None = None,
) -> Outcome:
    """Change ``state`` as an authorised ``command`` says; ``target_name`` is the
    target as shown (the online or account name), defaulting to what was typed.
    After a Ban the server also closes the target's connections."""
    if now is None:
        now = state.now()
    tz = state.tz
    if isinstance(command, Mute | Ban):
        name = target_name or command.target
        until = None if command.duration is None else now + command.duration
        phrase = until_phrase(until, now, tz)
        reason = texts.MOD_REASON.format(reason=command.reason) if command.reason else ""
        if isinstance(command, Mute):
            state.mute(name, until, command.reason, actor, now)
            action = Action.MUTE
            everyone = texts.MOD_ANNOUNCE_MUTED.format(name=name, until=phrase)
            personal = texts.MOD_YOU_MUTED.format(until=phrase, reason=reason)
        else:
            state.ban(name, until, command.reason, actor, now)
            action = Action.BAN
            everyone = texts.MOD_ANNOUNCE_BANNED.format(name=name, until=phrase)
            personal = texts.MOD_YOU_BANNED.format(until=phrase, reason=reason)
        entry = LogEntry(now, actor, action, name, until, command.reason)
        return Outcome(entry, everyone=everyone, target=personal)
    if isinstance(command, Unmute):
        rule = state.unmute(command.target)
        name = target_name or (rule.name if rule else command.target)
        if rule is None:
            return Outcome(None, actor=texts.MOD_NOT_MUTED.format(name=name))
        return Outcome(
            LogEntry(now, actor, Action.UNMUTE, name),
            everyone=texts.MOD_ANNOUNCE_UNMUTED.format(name=name),
            target=texts.MOD_YOU_UNMUTED,
        )
    if isinstance(command, Unban):
        ban = state.unban(command.target)
        name = target_name or (ban.name if ban else command.target)
        if ban is None:
            return Outcome(None, actor=texts.MOD_NOT_BANNED.format(name=name))
        return Outcome(
            LogEntry(now, actor, Action.UNBAN, name),
            actor=texts.MOD_DONE_UNBANNED.format(name=name),
        )
    if isinstance(command, Silence | Unsilence):
        where = where_phrase(command.channel)
        channel = command.channel or ""
        if isinstance(command, Unsilence):
            if state.unsilence(command.channel) is None:
                return Outcome(None, actor=texts.MOD_NO_SILENCE.format(where=where))
            return Outcome(
                LogEntry(now, actor, Action.UNSILENCE, channel=channel),
                everyone=texts.MOD_ANNOUNCE_SILENCE_OFF.format(where=where),
            )
        until = None if command.duration is None else now + command.duration
        state.silence(command.channel, until, actor, now)
        return Outcome(
            LogEntry(now, actor, Action.SILENCE, until=until, channel=channel),
            everyone=texts.MOD_ANNOUNCE_SILENCE_ON.format(
                where=where, until=until_phrase(until, now, tz)
            ),
        )
    if isinstance(command, Slow | Unslow):
        where = where_phrase(command.channel)
        channel = command.channel or ""
        if isinstance(command, Unslow):
            if state.clear_slow(command.channel) is None:
                return Outcome(None, actor=texts.MOD_NO_SLOW.format(where=where))
            return Outcome(
                LogEntry(now, actor, Action.UNSLOW, channel=channel),
                everyone=texts.MOD_ANNOUNCE_SLOW_OFF.format(where=where),
            )
        state.set_slow(command.channel, command.seconds, actor, now)
        return Outcome(
            LogEntry(now, actor, Action.SLOW, channel=channel, detail=str(command.seconds)),
            everyone=texts.MOD_ANNOUNCE_SLOW_ON.format(where=where, seconds=command.seconds),
        )
    # Private
    action = Action.PRIVATE_ON if command.allowed else Action.PRIVATE_OFF
    if command.target is None:
        if not state.set_private(command.allowed, None, actor, now):
            return Outcome(None)
        everyone = (
            texts.MOD_ANNOUNCE_PRIVATE_ON if command.allowed else texts.MOD_ANNOUNCE_PRIVATE_OFF
        )
        return Outcome(LogEntry(now, actor, action), everyone=everyone)
    name = target_name or command.target
    state.set_private(command.allowed, name, actor, now)
    done = texts.MOD_DONE_PRIVATE_ON_FOR if command.allowed else texts.MOD_DONE_PRIVATE_OFF_FOR
    return Outcome(
        LogEntry(now, actor, action, name),
        target=texts.MOD_YOU_PRIVATE_ON if command.allowed else texts.MOD_YOU_PRIVATE_OFF,
        actor=done.format(name=name),
    )


def outcome_kick(target_name: str, reason: str, actor: str, now: float) -> Outcome:
    """After the server closed ``target_name``'s connections (send ``target`` first)."""
    suffix = texts.MOD_REASON.format(reason=reason) if reason else ""
    return Outcome(
        LogEntry(now, actor, Action.KICK, target_name, reason=reason),
        everyone=texts.MOD_ANNOUNCE_KICKED.format(name=target_name),
        target=texts.MOD_YOU_KICKED.format(reason=suffix),
    )


def outcome_delete(target_name: str, removed: int, actor: str, now: float) -> Outcome:
    """After the server removed ``removed`` of ``target_name``'s messages."""
    if removed <= 0:
        return Outcome(None, actor=texts.MOD_NO_MESSAGES.format(name=target_name))
    if removed == 1:
        everyone = texts.MOD_ANNOUNCE_MESSAGE_REMOVED.format(name=target_name)
        personal = texts.MOD_YOUR_MESSAGE_REMOVED
    else:
        everyone = texts.MOD_ANNOUNCE_MESSAGES_REMOVED.format(name=target_name, count=removed)
        personal = texts.MOD_YOUR_MESSAGES_REMOVED.format(count=removed)
    return Outcome(
        LogEntry(now, actor, Action.DELETE, target_name, detail=str(removed)),
        everyone=everyone,
        target=personal,
    )


def outcome_announce(text: str, actor: str, now: float) -> Outcome:
    """``everyone`` is the announcement itself, from Serveur."""
    return Outcome(LogEntry(now, actor, Action.ANNOUNCE, detail=text), everyone=text)


def outcome_role(target_name: str, role: Role, actor: str, now: float) -> Outcome:
    """After the server stored ``role`` for the account (from /role or the admin
    socket, where ``actor`` is ``admin`` and the role may be teacher)."""
    return Outcome(
        LogEntry(now, actor, Action.ROLE, target_name, detail=role.value),
        everyone=texts.MOD_ANNOUNCE_ROLE.format(name=target_name, role=role.label),
        target=texts.MOD_YOU_ROLE.format(role=role.label),
    )
