"""The classroom controls at work (issue 12): the commands, the checks, expiry and
the moderation log, joined to the hub, the accounts, the history and storage.

``moderation.py`` decides and ``moderation_commands.py`` parses, both without I/O;
this module does what they decide:

- **Checks** on the hot path (``refuse_post``, ``refuse_private``): the session
  calls them only while ``ModerationState`` says rules of that kind exist, so a
  class nobody moderates pays one attribute test per message.
- **Commands** arrive three ways and run through ``run``: typed as chat content (the
  session calls ``intercept``), as a ``moderate`` request from a client that said
  ``hello``, and from the admin socket (actor ``admin``, above every role).
- **Effects** reach everyone in a form their client already renders: a global
  message from Serveur for what the class must know, a private one for the one
  concerned; clients that asked for ``moderation`` get typed events instead
  (``{"type":"moderation","event":...}``, with the same French text).
- **Persistence**: after a change the rules in force are saved whole, with the log
  entry, in one transaction, before anyone is told; ``load`` reads them back at
  start-up. Every entry is also one ``moderation:`` line in the server log.
- **Expiry**: ``expire_forever`` sleeps until the next rule ends (``tick`` does the
  work, so tests move an injected clock and call it, never sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, Final, Protocol

from classcord import texts
from classcord.accounts import Accounts
from classcord.config import Settings
from classcord.errors import StorageError
from classcord.history import History
from classcord.hub import Hub, Member
from classcord.identity import name_key
from classcord.moderation import (
    Action,
    Decision,
    Expiry,
    LogEntry,
    ModerationLimits,
    ModerationState,
    Role,
    RuleKind,
    expiry_announcement,
    expiry_entry,
    format_log_line,
    format_modlog,
    iso_time,
    until_phrase,
    where_phrase,
)
from classcord.moderation_commands import (
    USAGE,
    Announce,
    BadUsage,
    Ban,
    Command,
    Delete,
    Help,
    Intercepted,
    Kick,
    ModLog,
    Mute,
    Outcome,
    Private,
    Reserved,
    SetRole,
    Who,
    apply_rule,
    authorize,
    intercept,
    outcome_announce,
    outcome_delete,
    outcome_kick,
    outcome_role,
    parse_command,
    target_of,
)
from classcord.protocol import DEFAULT_CHANNEL, normalize_channel
from classcord.storage import StorageWorker

log = logging.getLogger("classcord.moderation")

Pending = Coroutine[Any, Any, None]

# Who acts from the admin socket: the VM's operator, above every role.
ADMIN_ACTOR: Final = "admin"
# The longest the expiry timer sleeps without a rule ending (a clock jump is caught).
EXPIRY_CHECK_SECONDS: Final = 60.0

# The ``event`` of each action's typed event (PROTOCOL.md, "Classroom controls").
EVENTS: Final = {
    Action.MUTE: "muted",
    Action.UNMUTE: "unmuted",
    Action.SILENCE: "silence_on",
    Action.UNSILENCE: "silence_off",
    Action.SLOW: "slow_on",
    Action.UNSLOW: "slow_off",
    Action.PRIVATE_OFF: "private_off",
    Action.PRIVATE_ON: "private_on",
    Action.DELETE: "messages_removed",
    Action.KICK: "kicked",
    Action.BAN: "banned",
    Action.UNBAN: "unbanned",
    Action.ANNOUNCE: "announcement",
    Action.ROLE: "role_changed",
}
# Targeted commands whose target must exist now (online, or an account).
_NEEDS_SOMEONE: Final = (Mute, Kick, Private)
# What a muted moderator or teacher may still do: look, not speak.
_WHILE_MUTED: Final = (Who, ModLog, Help)
_NEEDS_ACCOUNT: Final = (Ban, SetRole)


class Actor(Protocol):
    """Who typed a command: a session (the admin socket acts as ``None``)."""

    @property
    def name(self) -> str: ...

    role: Role


def limits_from(settings: Settings) -> ModerationLimits:
    return ModerationLimits(
        max_duration_seconds=settings.moderation_max_duration_seconds,
        max_slow_seconds=settings.moderation_max_slow_seconds,
        max_delete_messages=settings.moderation_max_delete,
        max_modlog_entries=settings.moderation_max_modlog,
        max_reason_chars=settings.moderation_max_reason_chars,
        max_channel_chars=settings.max_channel_chars,
    )


@dataclass
class Result:
    """What the actor reads: ``ok`` False when nothing was done. ``lines`` reach
    no one else; ``announced`` is what everyone online (the actor too, when it is a
    connection) was told, for the admin socket and the ``moderate`` reply."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    announced: str | None = None

    def everything(self) -> list[str]:
        return [self.announced, *self.lines] if self.announced else self.lines


class Refused(Exception):
    """A command that cannot be run as typed: ``message`` tells the actor why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModerationService:
    def __init__(
        self,
        settings: Settings,
        hub: Hub,
        accounts: Accounts,
        history: History,
        storage: StorageWorker | None,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
    ) -> None:
        self.hub = hub
        self.accounts = accounts
        self.history = history
        self.storage = storage
        self.limits = limits_from(settings)
        self.clock = clock
        self.tz = tz
        self.state = ModerationState(clock, tz)
        self._roles: dict[str, Role] = {}
        self._saved_version = 0
        self._rules_changed = asyncio.Event()

    async def load(self) -> None:
        """Roles and rules from the database; rules that ended meanwhile expire now."""
        if self.storage is None:
            return
        rows = await self.storage.call(self.storage.storage.moderation_rules)
        self.state = ModerationState.from_rows(rows, self.clock, self.tz)
        self._saved_version = self.state.version
        roles = await self.accounts.roles()
        self._roles = {key: Role.from_stored(value) for key, value in roles.items()}
        await self.tick()

    # --- roles -------------------------------------------------------------------

    def role_of(self, name: str) -> Role:
        """The role of the account ``name`` designates; a student for anyone else
        (guests, and names with no account, are always students)."""
        return self._roles.get(name_key(name), Role.STUDENT)

    def ban_of_account(self, name: str) -> str | None:
        """Why the account may not log in (the French text), or None."""
        ban = self.state.ban_of(name)
        if ban is None:
            return None
        reason = texts.MOD_REASON.format(reason=ban.reason) if ban.reason else ""
        return texts.MOD_YOU_BANNED.format(
            until=until_phrase(ban.until, self.clock(), self.tz), reason=reason
        )

    # --- the hot path ------------------------------------------------------------

    def refuse_post(self, member: Member, channel: str) -> bool:
        """True when ``member`` may not post to ``channel`` now (it was told why).
        Call only while ``state.posting_restricted``."""
        canonical = normalize_channel(channel, self.limits.max_channel_chars) or DEFAULT_CHANNEL
        return self._refused(member, self.state.may_post(member.name, member.role, canonical))

    def refuse_private(self, member: Member, to: str) -> bool:
        """The same for a private message. Call only while ``state.private_restricted``."""
        decision = self.state.may_private(member.name, member.role, to, self.role_of(to))
        return self._refused(member, decision)

    def _refused(self, member: Member, decision: Decision) -> bool:
        if decision.allowed:
            return False
        event: dict[str, Any] = {
            "type": "moderation",
            "event": "refused",
            "reason": decision.refusal.value if decision.refusal else None,
            "until": None if decision.until is None else iso_time(decision.until, self.tz),
            "retry_after": decision.retry_after,
        }
        self.hub.notify_private(member, decision.notice, event)
        return True

    # --- commands ------------------------------------------------------------------

    def command_in(self, member: Member, content: str) -> Intercepted | None:
        """The command a chat's content is, if any (None: send it as usual)."""
        return intercept(content, member.role, self.limits)

    def answer_in_chat(self, member: Member, found: Intercepted) -> Pending | None:
        """Run a command typed in a chat; its answers come as notices from Serveur."""
        if isinstance(found, BadUsage | Reserved):
            self.hub.notify_private(member, found.message)
            return None
        return self._run_in_chat(member, found)

    async def _run_in_chat(self, member: Member, command: Command) -> None:
        result = await self.run(member, command)
        for line in result.lines:
            self.hub.notify_private(member, line)

    async def run_text(self, actor: Actor | None, text: str) -> Result:
        """A command written out (``mute Léa 10m``, the slash optional): the
        ``moderate`` request and the admin socket."""
        content = text if text.lstrip().startswith("/") else "/" + text.lstrip()
        if actor is None:
            found: Intercepted | None = parse_command(content, self.limits)
        else:
            found = intercept(content, actor.role, self.limits)
        if found is None:
            verb = content.lstrip()[1:].split(maxsplit=1)[:1] or [""]
            unknown = texts.MOD_UNKNOWN_COMMAND.format(verb=verb[0])
            return Result(False, [f"{unknown} {texts.MOD_HELP}"])
        if isinstance(found, BadUsage | Reserved):
            return Result(False, [found.message])
        return await self.run(actor, found)

    async def run(self, actor: Actor | None, command: Command) -> Result:
        """Authorise and execute one command; what the actor reads comes back."""
        actor_name = ADMIN_ACTOR if actor is None else actor.name
        try:
            if (
                actor is not None
                and not isinstance(command, _WHILE_MUTED)
                and self.state.mute_of(actor.name) is not None
            ):
                raise Refused(texts.MOD_MUTED_COMMAND)
            shown = self._target_shown(command)
            if actor is not None:
                target = target_of(command)
                refusal = authorize(
                    actor.role, command, None if target is None else self.role_of(target)
                )
                if refusal is not None:
                    raise Refused(refusal)
            return await self._execute(command, actor_name, shown)
        except Refused as refused:
            return Result(False, [refused.message])
        except StorageError as exc:
            log.error(
                "moderation: %s failed, the database refused: %s", type(command).__name__, exc
            )
            return Result(False, [texts.MOD_STORAGE_FAILED.format(reason=type(exc).__name__)])

    def _target_shown(self, command: Command) -> str | None:
        """The target as the class knows it (the online or registered spelling)."""
        target = target_of(command)
        if target is None:
            return None
        account = self.accounts.account_name(target)
        if isinstance(command, _NEEDS_ACCOUNT):
            if account is None:
                raise Refused(texts.MOD_NO_ACCOUNT.format(name=target))
            return account
        entry = self.hub.online(target)
        if entry is not None:
            return entry.name
        if account is not None:
            return account
        if isinstance(command, _NEEDS_SOMEONE):
            raise Refused(texts.MOD_NO_SUCH_USER.format(name=target))
        if isinstance(command, Delete):
            return target  # a guest who left: their messages are kept under that name
        return None  # unmute, unban: the rule's own spelling is used

    async def _execute(self, command: Command, actor: str, shown: str | None) -> Result:
        now = self.clock()
        extra: dict[str, Any] = {}
        if isinstance(command, Who):
            return Result(True, self.who_lines())
        if isinstance(command, ModLog):
            entries = await self.log_entries(None, command.count)
            return Result(True, format_modlog(entries, now, self.tz))
        if isinstance(command, Help):
            return Result(True, [texts.MOD_HELP, *USAGE.values()])
        if isinstance(command, Kick):
            assert shown is not None
            if self.hub.online(shown) is None:
                raise Refused(texts.MOD_NOT_ONLINE.format(name=shown))
            outcome = outcome_kick(shown, command.reason, actor, now)
        elif isinstance(command, Delete):
            assert shown is not None
            try:
                removed = await self.history.delete_latest(shown, command.count)
            except Exception as exc:
                log.error("moderation: /delete of %s failed, nothing removed: %s", shown, exc)
                raise Refused(texts.MOD_DELETE_FAILED.format(reason=type(exc).__name__)) from None
            outcome = outcome_delete(shown, len(removed), actor, now)
            extra["messages"] = [{"timestamp": ts, "channel": ch} for ts, ch in removed]
        elif isinstance(command, Announce):
            outcome = outcome_announce(command.text, actor, now)
        elif isinstance(command, SetRole):
            assert shown is not None
            outcome = await self.set_role(shown, command.role, actor)
        else:
            outcome = apply_rule(command, self.state, actor, now, shown)
        return await self._conclude(outcome, shown, extra, evict=isinstance(command, Kick | Ban))

    async def _conclude(
        self, outcome: Outcome, target: str | None, extra: dict[str, Any], evict: bool = False
    ) -> Result:
        """Save and log, then tell everyone concerned, then close a kicked or banned
        user's connections (after their notice)."""
        failures = await self._record(outcome.entry)
        self._deliver(outcome, target, extra)
        if evict and outcome.entry is not None and target is not None:
            self._evict(target, f"{outcome.entry.action.value} by {outcome.entry.actor}")
        lines = [outcome.actor] if outcome.actor else []
        return Result(outcome.entry is not None, lines + failures, outcome.everyone)

    async def admin_set_role(self, name: str, role: Role) -> Result:
        """``admin role NAME teacher|moderator|student``: the one way to a teacher."""
        try:
            outcome = await self.set_role(name, role, ADMIN_ACTOR)
        except Refused as refused:
            return Result(False, [refused.message])
        return await self._conclude(outcome, outcome.entry.target if outcome.entry else None, {})

    async def set_role(self, name: str, role: Role, actor: str) -> Outcome:
        """Store ``role`` for the account (``admin role`` may name a teacher)."""
        try:
            stored = await self.accounts.set_role(name, role.value)
        except Exception as exc:
            raise StorageError(f"role not stored: {exc}") from exc
        if stored is None:
            raise Refused(texts.MOD_NO_ACCOUNT.format(name=name))
        key = name_key(stored)
        if role is Role.STUDENT:
            self._roles.pop(key, None)
        else:
            self._roles[key] = role
        entry = self.hub.online(stored)
        for member in entry.members if entry is not None else ():
            member.role = role
        return outcome_role(stored, role, actor, self.clock())

    def _evict(self, name: str, reason: str) -> None:
        entry = self.hub.online(name)
        for member in list(entry.members) if entry is not None else ():
            member.evict(reason)

    def _event(self, entry: LogEntry, extra: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "moderation",
            "event": EVENTS[entry.action],
            "actor": entry.actor,
            "user": entry.target or None,
            "channel": entry.channel or None,
            "until": None if entry.until is None else iso_time(entry.until, self.tz),
            "reason": entry.reason or None,
        }
        if entry.action is Action.SLOW:
            event["seconds"] = int(entry.detail)
        elif entry.action is Action.ROLE:
            event["role"] = entry.detail
        elif entry.action is Action.DELETE:
            event["count"] = int(entry.detail)
        return {**event, **extra}

    def _deliver(self, outcome: Outcome, target: str | None, extra: dict[str, Any]) -> None:
        event = None if outcome.entry is None else self._event(outcome.entry, extra)
        if outcome.everyone is not None:
            self.hub.notify_all(outcome.everyone, event)
        if outcome.target is not None and target is not None:
            entry = self.hub.online(target)
            # The event went to everyone already; the one concerned gets it only when
            # nobody else was told.
            personal = event if outcome.everyone is None else None
            for member in entry.members if entry is not None else ():
                self.hub.notify_private(member, outcome.target, personal)

    async def _record(self, *entries: LogEntry | None) -> list[str]:
        """Save the rules (when they changed) and the entries, then log each entry;
        the lines the actor must read about a failure come back."""
        kept = [entry for entry in entries if entry is not None]
        version = self.state.version
        rules = None if version == self._saved_version else self.state.to_rows()
        for entry in kept:
            log.info(format_log_line(entry, self.tz, self.limits.log_value_chars))
        if self.storage is None or (rules is None and not kept):
            if rules is not None:
                self._rules_changed.set()
            return []
        if rules is not None:
            self._rules_changed.set()  # the timer looks at the new ends, saved or not
        try:
            await self.storage.call(
                self.storage.storage.save_moderation,
                None if rules is None else [row.as_tuple() for row in rules],
                [entry.as_tuple() for entry in kept],
            )
        except Exception as exc:
            log.error("moderation: the database refused the rules or the log (%s)", exc)
            return [texts.MOD_NOT_SAVED.format(reason=type(exc).__name__)]
        self._saved_version = max(self._saved_version, version)
        return []

    async def log_entries(self, since: float | None, limit: int) -> list[LogEntry]:
        """The latest entries; StorageError when the database cannot answer."""
        if self.storage is None:
            return []
        try:
            rows = await self.storage.call(self.storage.storage.moderation_log, since, limit)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"moderation log unreadable: {exc}") from exc
        return [LogEntry.from_tuple(row) for row in rows]

    # --- /who ------------------------------------------------------------------------

    def who_lines(self) -> list[str]:
        now = self.clock()
        lines = []
        for entry in self.hub.online_names():
            notes = ""
            mute = self.state.mute_of(entry.name, now)
            if mute is not None:
                notes += texts.MOD_WHO_MUTED.format(until=until_phrase(mute.until, now, self.tz))
            if not self.state.private_allowed(entry.name):
                notes += texts.MOD_WHO_PRIVATE_OFF
            if entry.guest:
                notes += texts.MOD_WHO_GUEST
            role = Role.STUDENT if entry.guest else self.role_of(entry.name)
            lines.append(
                texts.MOD_WHO_LINE.format(
                    name=entry.name, role=role.label, state=entry.state, notes=notes
                )
            )
        rules = [
            texts.MOD_WHO_RULE_SILENCE.format(
                where=where_phrase(rule.channel), until=until_phrase(rule.until, now, self.tz)
            )
            for rule in self.state.silences()
        ]
        rules += [
            texts.MOD_WHO_RULE_SLOW.format(where=where_phrase(rule.channel), seconds=rule.seconds)
            for rule in self.state.slow_modes()
        ]
        if not self.state.private_allowed_for_all:
            rules.append(texts.MOD_WHO_RULE_PRIVATE_OFF)
        if rules:
            lines.append(texts.MOD_WHO_RULES.format(rules=", ".join(rules)))
        return lines or [texts.MOD_WHO_NOBODY]

    # --- time ----------------------------------------------------------------------

    async def tick(self) -> int:
        """Announce, log and save every rule that ended; returns how many. A rule
        that ended but was set again since (a new /mute) is not announced: the
        class would read that someone may speak who may not."""
        expired = [expiry for expiry in self.state.expire() if not self._set_again(expiry)]
        entries = [expiry_entry(expiry) for expiry in expired]
        await self._record(*entries)
        for expiry, entry in zip(expired, entries, strict=True):
            text = expiry_announcement(expiry)
            if text is not None:
                self.hub.notify_all(text, self._event(entry, {}))
            if expiry.kind is RuleKind.MUTE:
                online = self.hub.online(expiry.name)
                for member in online.members if online is not None else ():
                    self.hub.notify_private(member, texts.MOD_YOU_UNMUTED)
        return len(expired)

    def _set_again(self, expiry: Expiry) -> bool:
        if expiry.kind is RuleKind.MUTE:
            return self.state.mute_of(expiry.name) is not None
        if expiry.kind is RuleKind.BAN:
            return self.state.ban_of(expiry.name) is not None
        return self.state.silence_of(expiry.channel) is not None

    async def expire_forever(self) -> None:
        """The server's one timer: wakes when the next rule ends or the rules change."""
        while True:
            self._rules_changed.clear()  # before reading the ends: no change is missed
            ends = self.state.next_expiry()
            delay = EXPIRY_CHECK_SECONDS
            if ends is not None:
                delay = min(delay, max(0.0, ends - self.clock()))
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a
            # cancellation that lands as the event is set, and shutdown would wait.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._rules_changed.wait()
            try:
                await self.tick()
            except Exception:
                log.exception("moderation: expiry check failed")
