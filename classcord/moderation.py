"""Classroom moderation (issue 12): roles, the rules in force and the moderation log.

Pure: no I/O, no asyncio, no SQLite. Time is a dependency (a clock returning Unix
seconds, ``time.time`` by default, and a time zone for the HH:MM students read), so
tests never sleep. The session, the hub, storage and the admin socket call it; the
chat commands that change it are parsed in ``moderation_commands.py``.

Theory of operation
-------------------
- **Roles.** Everyone is a ``student`` (guests always are); a ``teacher`` is named
  from the VM only (the admin socket); a teacher names and removes ``moderator``\\s.
  ``may_act_on`` is the whole permission matrix: an actor acts only on a role
  strictly below its own, so a moderator never acts on a teacher or on another
  moderator, a teacher never on another teacher, and a student on nobody.
- **Rules.** ``ModerationState`` holds the rules in force: mutes (per account or
  guest name, with an optional end and a reason), bans (by account, never by
  address: a NAT class shares one), silence (server-wide or one channel), slow mode
  (server-wide or one channel, with each student's last post) and the private
  message lock (for everyone, with exceptions per student). Every user is named
  by ``identity.name_key``: a look-alike name is the same user.
- **Hot path.** ``may_post`` and ``may_private`` start with one boolean test and
  return the shared ``ALLOWED`` when no rule of their kind exists: no clock read,
  no name key, no dict lookup. With rules in force they cost a few dict lookups.
- **Expiry** is lazy: a rule past its end is dropped the moment a query meets it,
  and ``expire`` drops the rest and returns everything that ended since its last
  call, so the server can announce "Léa n'est plus en sourdine" and log it. The
  server calls it from a timer set to ``next_expiry``.
- **Persistence.** ``to_rows`` and ``from_rows`` turn the rules into plain
  ``RuleRow`` tuples for one SQLite table (see ``RuleRow``); ``version`` changes on
  every change, so the server knows when to save. Slow mode's last-post times are
  not saved: after a restart every student may post once straight away.
- **The log.** ``LogEntry`` is one moderation action; ``format_log_line`` gives the
  one line for the server log, which a person and fail2ban can read and which no
  name or reason can split or forge.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Final, TypeVar

from classcord import texts
from classcord.errors import StorageError
from classcord.identity import name_key

# --- roles -------------------------------------------------------------------------


class Role(enum.Enum):
    """Who may moderate. The value is what the database and the admin socket hold."""

    STUDENT = "student"
    MODERATOR = "moderator"
    TEACHER = "teacher"

    @property
    def is_staff(self) -> bool:
        """A moderator or a teacher: may moderate, is exempt from silence and slow
        mode, and can always be written to in private."""
        return self is not Role.STUDENT

    @property
    def label(self) -> str:
        """The French name students read: élève, modérateur, professeur."""
        return texts.ROLE_LABELS[self.value]

    @classmethod
    def from_stored(cls, value: object) -> Role:
        """A role read back from storage. Anything but an exact value is a student:
        a role spelled differently never grants anything."""
        for role in cls:
            if value == role.value:
                return role
        return cls.STUDENT


_RANK: Final = {Role.STUDENT: 0, Role.MODERATOR: 1, Role.TEACHER: 2}

# Words accepted for a role in ``/role`` and ``admin role``, compared by name_key
# (so "Modérateur", "MODO" and a Cyrillic look-alike of "teacher" are recognised).
_ROLE_WORDS: Final = {
    name_key(word): role
    for role, words in (
        (Role.STUDENT, ("student", "élève", "eleve")),
        (Role.MODERATOR, ("moderator", "modérateur", "moderateur", "modo")),
        (Role.TEACHER, ("teacher", "professeur", "prof", "enseignant")),
    )
    for word in words
}


def parse_role(word: str) -> Role | None:
    """The role a person typed (English or French, any case), or None. Recognising
    ``teacher`` lets ``/role`` refuse it with the right text; granting it is only
    ever the admin socket's business."""
    return _ROLE_WORDS.get(name_key(word.strip()))


def may_act_on(actor: Role, target: Role) -> bool:
    """The permission matrix: staff act only on a role strictly below their own.

    ======== ======= ========= =======
    actor    student moderator teacher
    ======== ======= ========= =======
    student  no      no        no
    moderator yes    no        no
    teacher  yes     yes       no
    ======== ======= ========= =======
    """
    return actor.is_staff and _RANK[actor] > _RANK[target]


def may_grant(actor: Role, target: Role, new_role: Role) -> bool:
    """``/role`` from a chat: a teacher turns a student into a moderator or back.
    Nobody grants ``teacher`` from a chat, and nobody changes a teacher's role."""
    return actor is Role.TEACHER and new_role is not Role.TEACHER and target is not Role.TEACHER


# --- limits and time -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModerationLimits:
    """Every bound of moderation, named; the server fills it from its Settings."""

    max_duration_seconds: int = 30 * 86_400  # longest mute, silence or timed ban
    max_slow_seconds: int = 3_600  # slowest slow mode
    max_delete_messages: int = 50  # most messages one /delete removes
    default_delete_messages: int = 1
    max_modlog_entries: int = 100  # most lines one /modlog shows
    default_modlog_entries: int = 20
    max_reason_chars: int = 200
    max_channel_chars: int = 32  # as Settings.max_channel_chars
    log_value_chars: int = 200  # one value of a log line is cut past this


_DURATION: Final = re.compile(r"(?:[0-9]{1,7}(?:sec|min|mn|s|m|h|d|j))+", re.IGNORECASE)
_DURATION_PART: Final = re.compile(r"([0-9]+)(sec|min|mn|s|m|h|d|j)", re.IGNORECASE)
_UNIT_SECONDS: Final = {
    **dict.fromkeys(("s", "sec"), 1),
    **dict.fromkeys(("m", "mn", "min"), 60),
    "h": 3_600,
    **dict.fromkeys(("d", "j"), 86_400),
}


def parse_duration(text: str, max_seconds: int) -> int | None:
    """``30s``, ``10m`` (or ``10mn``, ``10min``), ``1h30m``, ``2d`` or ``2j`` in
    seconds; None unless it is such a duration, above zero and at most ``max_seconds``."""
    if _DURATION.fullmatch(text) is None:
        return None
    seconds = sum(
        int(number) * _UNIT_SECONDS[unit.lower()] for number, unit in _DURATION_PART.findall(text)
    )
    return seconds if 0 < seconds <= max_seconds else None


def format_duration(seconds: float) -> str:
    """A duration for people: ``45 s``, ``10 min``, ``1 h 30 min``, ``2 j``."""
    whole = max(0, math.ceil(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{value} {unit}"
        for value, unit in ((days, "j"), (hours, "h"), (minutes, "min"), (secs, "s"))
        if value
    ]
    return " ".join(parts) or "0 s"


def until_phrase(until: float | None, now: float, tz: tzinfo | None = None) -> str:
    """`` jusqu'à 14:30`` (today) or `` jusqu'au 03/12 à 14:30``; empty when the rule
    has no end. ``tz`` None is the server's local time zone. The minute is rounded
    up, so a student who waits until the time shown is free."""
    if until is None:
        return ""
    end = datetime.fromtimestamp(math.ceil(until / 60) * 60, tz)
    clock = end.strftime("%H:%M")
    if end.date() == datetime.fromtimestamp(now, tz).date():
        return texts.MOD_UNTIL_TIME.format(time=clock)
    return texts.MOD_UNTIL_DATE.format(date=end.strftime("%d/%m"), time=clock)


def where_phrase(channel: str | None) -> str:
    """`` dans #dev`` for a channel rule, empty for a server-wide one."""
    return texts.MOD_IN_CHANNEL.format(channel=channel) if channel else ""


# --- decisions -------------------------------------------------------------------------


class Refusal(enum.Enum):
    """Why a message was not sent (the ``hello`` clients' typed event can carry it)."""

    MUTED = "muted"
    SILENCE = "silence"
    SLOW = "slow"
    PRIVATE_OFF = "private_off"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of ``may_post`` and ``may_private``.

    Refused: nothing is sent, and the sender alone gets ``notice`` (French) as a
    private message from Serveur. ``until`` is when the rule ends (None: until it is
    lifted); ``retry_after`` is slow mode's seconds left, rounded up."""

    allowed: bool
    refusal: Refusal | None = None
    notice: str = ""
    until: float | None = None
    retry_after: int | None = None


ALLOWED: Final = Decision(True)


# --- rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MuteRule:
    name: str  # as shown, for announcements
    until: float | None
    reason: str
    actor: str
    since: float


@dataclass(frozen=True, slots=True)
class BanRule:
    name: str
    until: float | None
    reason: str
    actor: str
    since: float


@dataclass(frozen=True, slots=True)
class SilenceRule:
    channel: str | None  # None: server-wide
    until: float | None
    actor: str
    since: float


@dataclass(frozen=True, slots=True)
class SlowRule:
    channel: str | None  # None: server-wide
    seconds: int
    actor: str
    since: float


@dataclass(frozen=True, slots=True)
class PrivateRule:
    """A student's own setting, different from the server-wide one."""

    name: str
    allowed: bool
    actor: str
    since: float


# The rules that can end by themselves, and every rule (for the shared helpers).
_Timed = TypeVar("_Timed", MuteRule, BanRule, SilenceRule)
_Rule = TypeVar("_Rule", MuteRule, BanRule, SilenceRule, SlowRule)


class RuleKind(enum.Enum):
    MUTE = "mute"
    BAN = "ban"
    SILENCE = "silence"
    SLOW = "slow"
    PRIVATE = "private"


@dataclass(frozen=True, slots=True)
class Expiry:
    """A rule that reached its end: the server announces and logs it."""

    kind: RuleKind  # MUTE, BAN or SILENCE: the kinds that can have an end
    name: str  # the user as shown (mute, ban); empty for silence
    channel: str | None  # silence of one channel; None otherwise
    until: float


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One rule as one plain row, for one SQLite table::

        CREATE TABLE moderation_rules (
            kind TEXT NOT NULL,     -- mute | ban | silence | slow | private
            target TEXT NOT NULL,   -- name_key of the user (mute, ban, private); ''
            name TEXT NOT NULL,     -- the user's name as shown; ''
            channel TEXT NOT NULL,  -- '#dev' for a channel rule; '' server-wide
            until REAL,             -- Unix time the rule ends; NULL: until lifted
            value INTEGER NOT NULL, -- slow: seconds; private: 1 allowed, 0 locked; 0
            reason TEXT NOT NULL,
            actor TEXT NOT NULL,
            since REAL NOT NULL     -- Unix time it was set
        )

    A ``private`` row with an empty target is the server-wide lock (only saved
    while private messages are off); one with a target is a student's exception.
    Save with ``as_tuple`` (columns in this order), load with ``from_tuple``."""

    kind: str
    target: str
    name: str
    channel: str
    until: float | None
    value: int
    reason: str
    actor: str
    since: float

    def as_tuple(self) -> tuple[str, str, str, str, float | None, int, str, str, float]:
        return (
            self.kind,
            self.target,
            self.name,
            self.channel,
            self.until,
            self.value,
            self.reason,
            self.actor,
            self.since,
        )

    @classmethod
    def from_tuple(cls, row: Sequence[object]) -> RuleRow:
        """A row read back from the database; a malformed one raises StorageError."""
        if len(row) != 9:
            raise StorageError(f"moderation rule row has {len(row)} columns, not 9")
        kind, target, name, channel, until, value, reason, actor, since = row
        texts_ok = all(isinstance(v, str) for v in (kind, target, name, channel, reason, actor))
        until_ok = until is None or _is_number(until)
        if not (texts_ok and until_ok and _is_number(since) and type(value) is int):
            raise StorageError(f"malformed moderation rule row: {row!r}")
        if kind not in {k.value for k in RuleKind}:
            raise StorageError(f"unknown moderation rule kind: {kind!r}")
        return cls(
            str(kind),
            str(target),
            str(name),
            str(channel),
            None if until is None else _float(until),
            value,
            str(reason),
            str(actor),
            _float(since),
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float(value: object) -> float:
    if not isinstance(value, (int, float)):  # pragma: no cover - checked by the caller
        raise StorageError(f"not a number: {value!r}")
    return float(value)


def _ended(until: float | None, now: float) -> bool:
    return until is not None and until <= now


class ModerationState:
    """The moderation rules in force, in memory, with an injected clock.

    Users are given by name in any spelling: every method compares them by
    ``identity.name_key``. Channels are given normalised (``protocol.normalize_channel``),
    None meaning the whole server. Every ``now`` defaults to the clock."""

    def __init__(self, clock: Callable[[], float] = time.time, tz: tzinfo | None = None) -> None:
        self._clock = clock
        self.tz = tz
        self._mutes: dict[str, MuteRule] = {}
        self._bans: dict[str, BanRule] = {}
        self._silences: dict[str | None, SilenceRule] = {}
        self._slow: dict[str | None, SlowRule] = {}
        self._last_post: dict[tuple[str, str | None], float] = {}
        self._private_allowed = True  # the server-wide setting
        self._private_lock: PrivateRule | None = None  # who turned it off, and when
        self._private: dict[str, PrivateRule] = {}  # exceptions to the server-wide one
        self._expired: list[Expiry] = []
        # The hot path's only test when nothing is moderated.
        self._post_rules = False
        self._private_rules = False
        self.version = 0

    def _changed(self) -> None:
        self._post_rules = bool(self._mutes or self._silences or self._slow)
        self._private_rules = bool(self._mutes or self._private) or not self._private_allowed
        self.version += 1

    def now(self) -> float:
        return self._clock()

    @property
    def posting_restricted(self) -> bool:
        """Any mute, silence or slow mode: only then must a post be checked."""
        return self._post_rules

    @property
    def private_restricted(self) -> bool:
        """Any mute or private lock: only then must a private message be checked."""
        return self._private_rules

    @property
    def active(self) -> bool:
        """Any rule in force (bans aside, which only matter at login)."""
        return self._post_rules or self._private_rules

    # --- queries on the hot path -------------------------------------------------

    def may_post(
        self, name: str, role: Role, channel: str | None = None, now: float | None = None
    ) -> Decision:
        """May ``name`` send a global or channel message to ``channel`` now?

        Call it last, just before the message is sent: under slow mode an allowed
        post is recorded as the user's last one. Mutes apply to every role (only a
        higher role can have set one); silence and slow mode to students only."""
        if not self._post_rules:
            return ALLOWED
        if now is None:
            now = self._clock()
        key = name_key(name)
        muted = self._mute(key, now)
        if muted is not None:
            return Decision(
                False,
                Refusal.MUTED,
                texts.MOD_MUTED_POST.format(until=until_phrase(muted.until, now, self.tz)),
                muted.until,
            )
        if role.is_staff:
            return ALLOWED
        for scope in (None, channel) if channel is not None else (None,):
            silence = self._silence(scope, now)
            if silence is not None:
                return Decision(
                    False,
                    Refusal.SILENCE,
                    texts.MOD_SILENCE_POST.format(
                        where=where_phrase(scope), until=until_phrase(silence.until, now, self.tz)
                    ),
                    silence.until,
                )
        if self._slow:
            return self._slow_post(key, channel, now)
        return ALLOWED

    def _slow_post(self, key: str, channel: str | None, now: float) -> Decision:
        scopes = [
            s for s in ((None, channel) if channel is not None else (None,)) if s in self._slow
        ]
        worst: tuple[float, str | None] | None = None
        for scope in scopes:
            last = self._last_post.get((key, scope))
            if last is None:
                continue
            left = self._slow[scope].seconds - (now - last)
            if left > 0 and (worst is None or left > worst[0]):
                worst = (left, scope)
        if worst is not None:
            seconds = math.ceil(worst[0])
            return Decision(
                False,
                Refusal.SLOW,
                texts.MOD_SLOW_POST.format(where=where_phrase(worst[1]), seconds=seconds),
                retry_after=seconds,
            )
        for scope in scopes:
            self._last_post[(key, scope)] = now
        return ALLOWED

    def may_private(
        self,
        sender: str,
        sender_role: Role,
        recipient: str,
        recipient_role: Role,
        now: float | None = None,
    ) -> Decision:
        """May ``sender`` send a private message to ``recipient``?

        A message to a moderator or teacher always goes through, so a muted or
        locked student can still reach the teacher. A muted sender (staff included:
        a muted moderator must not reach the class in private either) is refused;
        between students, so is a sender or recipient whose private messages are off."""
        if not self._private_rules or recipient_role.is_staff:
            return ALLOWED
        if now is None:
            now = self._clock()
        sender_key = name_key(sender)
        muted = self._mute(sender_key, now) if self._mutes else None
        if muted is not None:
            return Decision(
                False,
                Refusal.MUTED,
                texts.MOD_MUTED_PRIVATE.format(until=until_phrase(muted.until, now, self.tz)),
                muted.until,
            )
        if sender_role.is_staff:
            return ALLOWED
        if not self.private_allowed(sender_key):
            return Decision(False, Refusal.PRIVATE_OFF, texts.MOD_PRIVATE_OFF)
        if not self.private_allowed(recipient):
            return Decision(
                False,
                Refusal.PRIVATE_OFF,
                texts.MOD_PRIVATE_OFF_RECIPIENT.format(name=recipient),
            )
        return ALLOWED

    def ban_of(self, name: str, now: float | None = None) -> BanRule | None:
        """The ban on this account, if any (checked at login)."""
        if not self._bans:
            return None
        return self._ban(name_key(name), self._clock() if now is None else now)

    # --- reading the rules -------------------------------------------------------

    def _in_force(
        self, table: dict[Any, _Timed], key: Any, kind: RuleKind, now: float
    ) -> _Timed | None:
        """The rule under ``key`` unless it has ended; an ended one is dropped here
        and kept for ``expire`` to report (every query expires lazily)."""
        rule = table.get(key)
        if rule is None or not _ended(rule.until, now):
            return rule
        del table[key]
        name = "" if isinstance(rule, SilenceRule) else rule.name
        channel = rule.channel if isinstance(rule, SilenceRule) else None
        self._expired.append(Expiry(kind, name, channel, rule.until or 0.0))
        self._changed()
        return None

    def _ban(self, key: str, now: float) -> BanRule | None:
        return self._in_force(self._bans, key, RuleKind.BAN, now)

    def _mute(self, key: str, now: float) -> MuteRule | None:
        return self._in_force(self._mutes, key, RuleKind.MUTE, now)

    def _silence(self, channel: str | None, now: float) -> SilenceRule | None:
        return self._in_force(self._silences, channel, RuleKind.SILENCE, now)

    def _lift(self, table: dict[Any, _Rule], key: Any) -> _Rule | None:
        """Remove a rule by hand; returns it, or None if there was none."""
        rule = table.pop(key, None)
        if rule is not None:
            self._changed()
        return rule

    def mute_of(self, name: str, now: float | None = None) -> MuteRule | None:
        """The mute on ``name`` still in force, if any."""
        return self._mute(name_key(name), self._clock() if now is None else now)

    def silence_of(self, channel: str | None, now: float | None = None) -> SilenceRule | None:
        """The silence of ``channel`` (None: server-wide) still in force, if any."""
        return self._silence(channel, self._clock() if now is None else now)

    def slow_of(self, channel: str | None) -> SlowRule | None:
        return self._slow.get(channel)

    def private_allowed(self, name: str) -> bool:
        """Whether this student's private messages are on (staff are never locked:
        ``may_private`` lets them through before asking)."""
        rule = self._private.get(name_key(name)) if self._private else None
        return self._private_allowed if rule is None else rule.allowed

    @property
    def private_allowed_for_all(self) -> bool:
        return self._private_allowed

    def mutes(self) -> list[MuteRule]:
        return list(self._mutes.values())

    def bans(self) -> list[BanRule]:
        return list(self._bans.values())

    def silences(self) -> list[SilenceRule]:
        return list(self._silences.values())

    def slow_modes(self) -> list[SlowRule]:
        return list(self._slow.values())

    def private_exceptions(self) -> list[PrivateRule]:
        return list(self._private.values())

    # --- changes -----------------------------------------------------------------

    def mute(
        self,
        name: str,
        until: float | None,
        reason: str = "",
        actor: str = "",
        now: float | None = None,
    ) -> MuteRule:
        """Mute ``name`` (replacing an earlier mute); ``until`` None: until unmuted."""
        rule = MuteRule(name, until, reason, actor, self._clock() if now is None else now)
        self._mutes[name_key(name)] = rule
        self._changed()
        return rule

    def unmute(self, name: str) -> MuteRule | None:
        """Lift the mute on ``name``; returns it, or None if there was none."""
        return self._lift(self._mutes, name_key(name))

    def ban(
        self,
        name: str,
        until: float | None,
        reason: str = "",
        actor: str = "",
        now: float | None = None,
    ) -> BanRule:
        """Ban the account ``name`` (by account, never by address)."""
        rule = BanRule(name, until, reason, actor, self._clock() if now is None else now)
        self._bans[name_key(name)] = rule
        self._changed()
        return rule

    def unban(self, name: str) -> BanRule | None:
        return self._lift(self._bans, name_key(name))

    def silence(
        self,
        channel: str | None,
        until: float | None,
        actor: str = "",
        now: float | None = None,
    ) -> SilenceRule:
        """Silence ``channel`` (None: the whole server) for students."""
        rule = SilenceRule(channel, until, actor, self._clock() if now is None else now)
        self._silences[channel] = rule
        self._changed()
        return rule

    def unsilence(self, channel: str | None) -> SilenceRule | None:
        return self._lift(self._silences, channel)

    def set_slow(
        self, channel: str | None, seconds: int, actor: str = "", now: float | None = None
    ) -> SlowRule:
        """Slow mode: each student posts at most once every ``seconds`` there."""
        rule = SlowRule(channel, seconds, actor, self._clock() if now is None else now)
        self._slow[channel] = rule
        self._changed()
        return rule

    def clear_slow(self, channel: str | None) -> SlowRule | None:
        rule = self._lift(self._slow, channel)
        if rule is not None:
            for entry in [e for e in self._last_post if e[1] == channel]:
                del self._last_post[entry]
        return rule

    def set_private(
        self,
        allowed: bool,
        name: str | None = None,
        actor: str = "",
        now: float | None = None,
    ) -> bool:
        """Private messages between students on or off, for everyone (``name`` None)
        or for one student. The server-wide setting keeps the exceptions that
        differ from it (a student locked alone stays locked after ``/private on``)
        and drops those it makes pointless. Returns whether anything changed."""
        since = self._clock() if now is None else now
        if name is None:
            if allowed == self._private_allowed:
                return False
            self._private_allowed = allowed
            self._private_lock = None if allowed else PrivateRule("", False, actor, since)
            for key in [k for k, r in self._private.items() if r.allowed == allowed]:
                del self._private[key]
        else:
            key = name_key(name)
            if self.private_allowed(key) == allowed:
                return False
            if allowed == self._private_allowed:
                del self._private[key]
            else:
                self._private[key] = PrivateRule(name, allowed, actor, since)
        self._changed()
        return True

    # --- time ----------------------------------------------------------------------

    def expire(self, now: float | None = None) -> list[Expiry]:
        """Drop every rule past its end; return all that ended since the last call
        (including those a query dropped on the way), oldest end first."""
        if now is None:
            now = self._clock()
        for key in [k for k, r in self._mutes.items() if _ended(r.until, now)]:
            self._mute(key, now)
        for key in [k for k, r in self._bans.items() if _ended(r.until, now)]:
            self._ban(key, now)
        for channel in [c for c, r in self._silences.items() if _ended(r.until, now)]:
            self._silence(channel, now)
        if self._last_post:
            stale = [
                entry
                for entry, last in self._last_post.items()
                if entry[1] not in self._slow or now - last >= self._slow[entry[1]].seconds
            ]
            for entry in stale:
                del self._last_post[entry]
        expired, self._expired = self._expired, []
        return sorted(expired, key=lambda e: e.until)

    def next_expiry(self) -> float | None:
        """When the next timed rule ends (for the server's one timer), or None."""
        ends: list[float] = []
        for rules in (self._mutes.values(), self._bans.values(), self._silences.values()):
            ends += [r.until for r in rules if r.until is not None]
        return min(ends, default=None)

    # --- persistence -----------------------------------------------------------------

    def to_rows(self) -> list[RuleRow]:
        """Every rule as rows (see ``RuleRow``): save them all in one transaction."""
        rows = [
            RuleRow("mute", k, r.name, "", r.until, 0, r.reason, r.actor, r.since)
            for k, r in self._mutes.items()
        ]
        rows += [
            RuleRow("ban", k, r.name, "", r.until, 0, r.reason, r.actor, r.since)
            for k, r in self._bans.items()
        ]
        rows += [
            RuleRow("silence", "", "", r.channel or "", r.until, 0, "", r.actor, r.since)
            for r in self._silences.values()
        ]
        rows += [
            RuleRow("slow", "", "", r.channel or "", None, r.seconds, "", r.actor, r.since)
            for r in self._slow.values()
        ]
        if self._private_lock is not None:
            lock = self._private_lock
            rows.append(RuleRow("private", "", "", "", None, 0, "", lock.actor, lock.since))
        rows += [
            RuleRow("private", k, r.name, "", None, int(r.allowed), "", r.actor, r.since)
            for k, r in self._private.items()
        ]
        return rows

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[RuleRow | Sequence[object]],
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
    ) -> ModerationState:
        """The state saved by ``to_rows`` (rows or plain tuples from SQLite). Rules
        that ended while the server was down come out of the first ``expire``."""
        state = cls(clock, tz)
        parsed = [r if isinstance(r, RuleRow) else RuleRow.from_tuple(r) for r in rows]
        # Keyed by the current identity rule, not by the one that saved them.
        parsed = [dataclasses.replace(r, target=name_key(r.name)) if r.name else r for r in parsed]
        # The server-wide private setting first: exceptions are relative to it.
        for row in sorted(parsed, key=lambda r: r.kind != "private" or r.target != ""):
            channel = row.channel or None
            if row.kind == "mute":
                state._mutes[row.target] = MuteRule(
                    row.name, row.until, row.reason, row.actor, row.since
                )
            elif row.kind == "ban":
                state._bans[row.target] = BanRule(
                    row.name, row.until, row.reason, row.actor, row.since
                )
            elif row.kind == "silence":
                state._silences[channel] = SilenceRule(channel, row.until, row.actor, row.since)
            elif row.kind == "slow":
                state._slow[channel] = SlowRule(channel, row.value, row.actor, row.since)
            elif row.target == "":
                state._private_allowed = False
                state._private_lock = PrivateRule("", False, row.actor, row.since)
            elif bool(row.value) != state._private_allowed:
                state._private[row.target] = PrivateRule(
                    row.name, bool(row.value), row.actor, row.since
                )
        state._changed()
        state.version = 0
        return state


# --- the moderation log ------------------------------------------------------------------


class Action(enum.Enum):
    """What a log entry records (its value is the ``action=`` word of the log line)."""

    MUTE = "mute"
    UNMUTE = "unmute"
    SILENCE = "silence"
    UNSILENCE = "unsilence"
    SLOW = "slow"
    UNSLOW = "unslow"
    PRIVATE_OFF = "private_off"
    PRIVATE_ON = "private_on"
    DELETE = "delete"
    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    ANNOUNCE = "announce"
    ROLE = "role"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One moderation action: who did what to whom, when, why and until when.

    ``actor`` is the name as shown (``Serveur`` for an expiry, ``admin`` from the
    admin socket); ``target`` a user's name, empty for silence and slow mode;
    ``channel`` empty when server-wide or not about a channel; ``detail`` what the
    action needs besides: slow mode's seconds, /delete's count, /role's new role,
    /announce's text. Stored as ``as_tuple`` (this field order); shown by /modlog
    and ``admin modlog --json`` (``as_json``)."""

    time: float
    actor: str
    action: Action
    target: str = ""
    until: float | None = None
    reason: str = ""
    channel: str = ""
    detail: str = ""

    def as_tuple(self) -> tuple[float, str, str, str, float | None, str, str, str]:
        return (
            self.time,
            self.actor,
            self.action.value,
            self.target,
            self.until,
            self.reason,
            self.channel,
            self.detail,
        )

    @classmethod
    def from_tuple(cls, row: Sequence[object]) -> LogEntry:
        if len(row) != 8:
            raise StorageError(f"moderation log row has {len(row)} columns, not 8")
        when, actor, action, target, until, reason, channel, detail = row
        strings = (actor, action, target, reason, channel, detail)
        if not (
            _is_number(when)
            and (until is None or _is_number(until))
            and all(isinstance(v, str) for v in strings)
        ):
            raise StorageError(f"malformed moderation log row: {row!r}")
        try:
            kind = Action(action)
        except ValueError:
            raise StorageError(f"unknown moderation action: {action!r}") from None
        return cls(
            _float(when),
            str(actor),
            kind,
            str(target),
            None if until is None else _float(until),
            str(reason),
            str(channel),
            str(detail),
        )

    def as_json(self, tz: tzinfo | None = None) -> dict[str, Any]:
        """For ``admin modlog --json``: ISO times, None for no end."""
        return {
            "time": iso_time(self.time, tz),
            "actor": self.actor,
            "action": self.action.value,
            "target": self.target,
            "until": None if self.until is None else iso_time(self.until, tz),
            "reason": self.reason,
            "channel": self.channel,
            "detail": self.detail,
        }


def iso_time(when: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(when, tz).isoformat(timespec="seconds")


def log_value(text: str, max_chars: int) -> str:
    """One value of a log line, safe on one line: ``-`` when empty; bare when it is
    printable with no space, quote, backslash or ``=``; otherwise in double quotes
    with ``\\`` and ``"`` escaped, ``=`` written ``\\x3d`` (so the line has exactly
    one ``=`` per field) and every unprintable character (newlines, U+2028, bidi
    overrides, odd spaces) written as ``\\xNN``/``\\uNNNN``. Accents stay
    readable. Cut to ``max_chars`` characters first, marked with ``...``."""
    if not text:
        return "-"
    shown = text if len(text) <= max_chars else text[:max_chars] + "..."
    if shown.isprintable() and not any(c in shown for c in ' "\\='):
        return shown
    out = []
    for char in shown:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "=":
            out.append("\\x3d")  # no value holds a "key=" a filter could match
        elif char == " " or char.isprintable():
            out.append(char)
        else:
            out.append(ascii(char)[1:-1])
    return '"' + "".join(out) + '"'


def format_log_line(entry: LogEntry, tz: tzinfo | None = None, max_chars: int = 200) -> str:
    """The one server-log line of an action, for people and for fail2ban::

        moderation: actor=prof action=mute target=Léa until=2026-12-01T14:30:00 \
reason="bavardages" channel=- detail=-

    Fields are always all present, in this order; ``-`` is empty (``until=-``: no
    end). The logger adds the time of the action."""
    until = "-" if entry.until is None else iso_time(entry.until, tz)
    fields = (
        ("actor", log_value(entry.actor, max_chars)),
        ("action", entry.action.value),
        ("target", log_value(entry.target, max_chars)),
        ("until", until),
        ("reason", log_value(entry.reason, max_chars)),
        ("channel", log_value(entry.channel, max_chars)),
        ("detail", log_value(entry.detail, max_chars)),
    )
    return "moderation: " + " ".join(f"{key}={value}" for key, value in fields)


def expiry_entry(expiry: Expiry) -> LogEntry:
    """The log entry of a rule that ended by itself (actor Serveur, reason expiré)."""
    action = {
        RuleKind.MUTE: Action.UNMUTE,
        RuleKind.BAN: Action.UNBAN,
        RuleKind.SILENCE: Action.UNSILENCE,
    }.get(expiry.kind, Action.UNSILENCE)
    return LogEntry(
        expiry.until,
        texts.SERVER_NAME,
        action,
        target=expiry.name,
        reason=texts.MOD_EXPIRED,
        channel=expiry.channel or "",
    )


def expiry_announcement(expiry: Expiry) -> str | None:
    """What everybody reads when a rule ends by itself (a ban ends silently)."""
    if expiry.kind is RuleKind.MUTE:
        return texts.MOD_ANNOUNCE_UNMUTED.format(name=expiry.name)
    if expiry.kind is RuleKind.SILENCE:
        return texts.MOD_ANNOUNCE_SILENCE_OFF.format(where=where_phrase(expiry.channel))
    return None


def format_modlog(entries: Iterable[LogEntry], now: float, tz: tzinfo | None = None) -> list[str]:
    """/modlog's reply, one French line per entry (oldest first), or the empty text."""
    lines = []
    for entry in entries:
        when = datetime.fromtimestamp(entry.time, tz).strftime("%d/%m %H:%M")
        reason = texts.MOD_REASON.format(reason=entry.reason) if entry.reason else ""
        target = entry.target or entry.detail
        lines.append(
            texts.MOD_LOG_LINE.format(
                time=when,
                actor=entry.actor,
                action=entry.action.value,
                target=target,
                where=where_phrase(entry.channel),
                until=until_phrase(entry.until, now, tz),
                reason=reason,
            ).rstrip()
        )
    return lines or [texts.MOD_LOG_EMPTY]
