"""Who is online, their names and states, channels, routing, and fan-out.

Theory of operation
-------------------
The hub is the one place that knows about more than one connection. It owns:

- the online names (``OnlineName``): an account on one or more connections, or a
  guest, with its presence state;
- the channels and their members;
- routing: a channel message goes to the channel's members, a private one to every
  connection of the recipient, presence to everybody online;
- the history of what was said (through ``History``).

It knows its members only through the small ``Member`` interface below, never as
sessions: a session decides *when* it becomes a guest or a user (``session.py`` holds
the whole state machine) and then asks the hub to ``enter`` it under a name or to
let it ``leave``. The hub never changes a member's state; when it must get rid of
one (a kick, a guest holding a name an account now needs) it calls ``evict``.

Fan-out encodes a message once. Channel messages and presence are not handed out
one by one: the lines a pass sends to one audience wait in a ``PendingFanOut``, and
when the pass ends each recipient gets them all in one push (the same joined bytes
for everyone who sent none of them). Before anything else reaches a member who is
owed some of those lines (a reply, a private message, a notice), they are handed out
first, so every client reads its lines in the order the hub produced them. The I/O
layer queues what is pushed and writes each recipient once per event-loop pass, so a
broadcast never waits on any one client.

    message ─▶ pending (one audience) ─┬─ pass ends ───────────┐
    presence ─▶ (other audience: hand   ├─ reply/notice to an  ├─▶ one push per member
                 out the pending first)  │  owed member         │   (its own lines left out)
                                         └─ join/leave ─────────┘
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from classcord import texts
from classcord.config import Settings
from classcord.errors import ClientError, RecipientUnavailable
from classcord.history import History, PendingHistory
from classcord.identity import is_reserved_for_guests
from classcord.moderation import Role
from classcord.protocol import (
    DEFAULT_CHANNEL,
    Typing,
    chat_reply,
    encode,
    is_valid_name,
    name_key,
    normalize_channel,
    notice_for,
    notice_reply,
    now_timestamp,
    status_reply,
)
from classcord.storage import MessageRecord, account_token, private_conversation

# A conversation key no message ever has (keys start with "@", "#" or "orphan:").
NO_CONVERSATION = "none:"

log = logging.getLogger("classcord.hub")


class Member(Protocol):
    """What the hub needs from a connection that is online under a name."""

    @property
    def name(self) -> str: ...

    # The hub's own bookkeeping, kept on the member so routing checks cost nothing.
    # Immutable, so that the common sets (just #general) are one object for all.
    channels: frozenset[str]
    # Moderation's (moderation_service.py), kept on the member for the same reason.
    role: Role

    @property
    def features(self) -> frozenset[str]: ...

    @property
    def token(self) -> str:
        """Its identity in private conversations (an account id, or a guest's own)."""

    def deliver(self, data: bytes) -> None:
        """A push from someone else (may be held until a pending reply is sent)."""

    # ``deliver`` itself, as a plain callable: the fan-out calls it once per recipient
    # and pass, with the pass's lines in one block (or a view of its tail).
    push: Callable[[bytes | memoryview], None]

    def reply(self, payload: dict[str, Any]) -> None:
        """An answer to the member's own request."""

    def evict(self, reason: str) -> None:
        """Leave the hub and close the connection (after flushing what is queued)."""


class Directory(Protocol):
    """The accounts, as far as names are concerned."""

    def is_registered(self, name: str) -> bool: ...

    def is_claimed(self, name: str) -> bool: ...

    def account_id(self, name: str) -> int | None: ...


@dataclass(slots=True)
class OnlineName:
    """A name in use: a user's account (possibly on several connections) or a guest."""

    name: str
    guest: bool
    state: str = "online"
    members: list[Member] = field(default_factory=list)

    @property
    def visible(self) -> bool:
        return self.state != "invisible"


class PendingFanOut:
    """The lines of one pass for one audience, not handed out yet."""

    __slots__ = ("audience", "lines", "skipped", "start")

    def __init__(self, audience: set[Member] | None) -> None:
        self.audience = audience  # a channel's member set, or None: everyone online
        self.lines: list[bytes] = []
        # A member who came in after the first lines gets only the later ones.
        self.start: dict[Member, int] = {}
        # Lines a member must not get: its own message, its own presence.
        self.skipped: dict[Member, set[int]] = {}

    def add(self, data: bytes, skip: Iterable[Member]) -> None:
        index = len(self.lines)
        self.lines.append(data)
        for member in skip:
            if self.start.get(member, 0) == index:
                self.start[member] = index + 1
            else:
                self.skipped.setdefault(member, set()).add(index)

    def arrived(self, member: Member) -> None:
        self.start[member] = len(self.lines)

    def owed_count(self, member: Member) -> int:
        """Lines ``member`` is owed, if it is in the audience (skipped lines are
        always at or after its start)."""
        return len(self.lines) - self.start.get(member, 0) - len(self.skipped.get(member, ()))

    def lines_for(self, member: Member) -> bytes:
        start = self.start.get(member, 0)
        skipped = self.skipped.get(member, ())
        return b"".join(
            line for index, line in enumerate(self.lines[start:], start) if index not in skipped
        )


@dataclass
class Counters:
    messages: int = 0
    deliveries: int = 0
    private_messages: int = 0


class Hub:
    def __init__(
        self,
        settings: Settings,
        directory: Directory,
        history: History,
        timestamp: Callable[[], str] = now_timestamp,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.history = history
        self.counters = Counters()
        self.started_at = time.time()
        self._timestamp = timestamp
        self._names: dict[str, OnlineName] = {}
        self._channels: dict[str, set[Member]] = {DEFAULT_CHANNEL: set()}
        self._single: dict[frozenset[str], frozenset[str]] = {}  # see _shared
        self._pending: PendingFanOut | None = None
        # Set by the I/O layer: asks for ``flush_pending`` at the end of the pass.
        # Without it (no event loop) every fan-out is handed out at once.
        self.schedule_flush: Callable[[], None] | None = None

    # --- names ----------------------------------------------------------------------

    def is_online(self, name: str) -> bool:
        return name_key(name) in self._names

    def online(self, name: str) -> OnlineName | None:
        return self._names.get(name_key(name))

    def online_count(self) -> int:
        return len(self._names)

    def _name_taken(self, name: str) -> bool:
        return (
            is_reserved_for_guests(name) or self.is_online(name) or self.directory.is_claimed(name)
        )

    def guest_name(self, requested: str | None) -> str:
        """The requested name if free, else the first free ``name_2``, ``name_3``...:
        a guest can never pose as a registered or online name."""
        limit = self.settings.max_name_chars
        base = requested.strip() if requested else texts.GUEST_NAME
        if not is_valid_name(base, limit):
            base = texts.GUEST_NAME
        candidate, suffix = base, 2
        while self._name_taken(candidate):
            tail = f"_{suffix}"
            candidate = base[: limit - len(tail)] + tail
            suffix += 1
        return candidate

    def enter(self, member: Member, name: str, guest: bool) -> str:
        """Put ``member`` online under ``name``; returns the name as shown to others.

        Called by a session that has just become a guest or a user: for a user, once
        its login reply is queued, so the reply stays the first line it reads."""
        entry = self._names.get(name_key(name))
        if entry is not None and (entry.guest or guest):
            # Guest names avoid every claimed name, so this is a bug elsewhere; an
            # account must still never share its entry (and private messages) with
            # a guest: the account wins.
            log.error("name conflict on %r: closing the guest connections", name)
            for other in list(entry.members):
                other.evict("guest name conflict")
            entry = self._names.get(name_key(name))
        first = entry is None
        if entry is None:
            entry = self._names[name_key(name)] = OnlineName(name, guest)
        entry.members.append(member)
        if self._pending is not None and self._pending.audience is None:
            self._pending.arrived(member)
        self._join(member, DEFAULT_CHANNEL)
        if first:
            self._broadcast(encode(status_reply(entry.name, "online")), exclude=entry.members)
        return entry.name

    def leave(self, member: Member) -> None:
        """Take ``member`` offline; harmless when it is not online."""
        self.flush_pending()
        for channel in list(member.channels):
            self._leave(member, channel)
        entry = self._names.get(name_key(member.name))
        if entry is None or member not in entry.members:
            return
        entry.members.remove(member)
        if not entry.members:
            del self._names[name_key(member.name)]
            if entry.visible:
                self._broadcast(encode(status_reply(entry.name, "offline")))

    # --- presence -------------------------------------------------------------------

    def set_status(self, member: Member, state: str) -> None:
        entry = self.online(member.name)
        if entry is None:
            return
        was_visible = entry.visible
        entry.state = state
        if entry.visible or was_visible:
            shown = state if entry.visible else "offline"
            self._broadcast(encode(status_reply(entry.name, shown)), exclude=(member,))

    def users_reply(self, asker: object, reply_type: str) -> dict[str, Any]:
        """Everyone visible, plus the asker's own name even when invisible."""
        # The table's keys are the names' keys already: sorting them costs no key.
        shown = [
            entry
            for _key, entry in sorted(self._names.items())
            if entry.visible or asker in entry.members
        ]
        return {
            "type": reply_type,
            "users": [entry.name for entry in shown],
            "states": {entry.name: entry.state for entry in shown},
        }

    # --- messages -------------------------------------------------------------------

    def _broadcast(self, data: bytes, exclude: Iterable[Member] = ()) -> None:
        """To every member (presence goes to all channels)."""
        self._queue(data, None, exclude)

    def _queue(self, data: bytes, audience: set[Member] | None, skip: Iterable[Member]) -> None:
        pending = self._pending
        if pending is None or pending.audience is not audience:
            self.flush_pending()
            pending = self._pending = PendingFanOut(audience)
            if self.schedule_flush is not None:
                self.schedule_flush()
        pending.add(data, skip)
        if self.schedule_flush is None:
            self.flush_pending()

    def _audience(self, pending: PendingFanOut) -> set[Member]:
        # Everyone online is in the default channel: nobody can leave it.
        return self._channels[DEFAULT_CHANNEL] if pending.audience is None else pending.audience

    def flush_pending(self) -> None:
        """Hand out the pending lines: one push per member (called when the pass
        ends, and before anything else reaches a member who is owed some)."""
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        lines = pending.lines
        block = lines[0] if len(lines) == 1 else b"".join(lines)
        special = pending.start.keys() | pending.skipped.keys()
        offsets: list[int] | None = None
        # The loop every delivery goes through: nothing in it but the push.
        for member in self._audience(pending):
            if member not in special:
                member.push(block)
            elif pending.owed_count(member) <= 0:
                continue
            elif member in pending.skipped:
                member.push(pending.lines_for(member))
            else:
                # Came in during the pass: the tail of the same block, not a copy
                # (a burst of arrivals would otherwise copy its lines quadratically).
                if offsets is None:
                    offsets = list(itertools.accumulate(map(len, lines), initial=0))
                member.push(memoryview(block)[offsets[pending.start[member]] :])

    def settle_for(self, member: Member) -> None:
        """Called before a line reaches ``member`` by another way: when it is owed
        pending lines, they go first."""
        pending = self._pending
        if pending is None:
            return
        if member in self._audience(pending) and pending.owed_count(member) > 0:
            self.flush_pending()

    def _fan_out(self, data: bytes, recipients: Collection[Member], sender: Member) -> int:
        self.flush_pending()
        for member in recipients:
            if member is not sender:
                member.push(data)
        return self._count_deliveries(recipients, sender)

    def _count_deliveries(self, recipients: Collection[Member], sender: Member) -> int:
        count = len(recipients) - (sender in recipients)
        self.counters.deliveries += count
        return count

    def member_channel(self, member: Member, channel: str) -> str:
        """The channel as the hub names it, when ``member`` is in it; else the
        ClientError that a message there gets."""
        canonical = normalize_channel(channel, self.settings.max_channel_chars)
        if canonical is None or canonical not in member.channels:
            raise ClientError(texts.NOT_IN_CHANNEL.format(channel=channel))
        return canonical

    def send_channel(self, member: Member, channel: str, content: str) -> None:
        canonical = self.member_channel(member, channel)
        timestamp = self._timestamp()
        # Legacy clients never name a channel: their messages stay exactly as before.
        shown_channel = None if canonical == DEFAULT_CHANNEL else canonical
        data = encode(chat_reply(member.name, content, timestamp, channel=shown_channel))
        self.counters.messages += 1
        recipients = self._channels[canonical]
        self._queue(data, recipients, (member,))
        self._count_deliveries(recipients, member)
        self.history.record(
            MessageRecord(time.time(), timestamp, canonical, member.name, None, canonical, content)
        )

    def send_private(self, member: Member, to: str, content: str) -> None:
        target = self.online(to)
        registered = self.directory.is_registered(to)
        if target is None and not registered:
            raise RecipientUnavailable(texts.UNKNOWN_RECIPIENT.format(name=to))
        timestamp = self._timestamp()
        # ``to`` is relayed exactly as sent: client family B shows a private message
        # only when ``to`` or ``from`` equals its user.
        data = encode(chat_reply(member.name, content, timestamp, private_to=to))
        self.counters.private_messages += 1
        recipient = self._token_of(to)
        assert recipient is not None  # online, or registered: checked above
        conversation = private_conversation(member.token, recipient)
        self.history.record(
            MessageRecord(time.time(), timestamp, conversation, member.name, to, None, content)
        )
        if target is not None:
            self._fan_out(data, target.members, member)
        if target is None or not target.visible:
            # Invisible answers exactly as offline does (the message is delivered).
            text = texts.RECIPIENT_OFFLINE if registered else texts.UNKNOWN_RECIPIENT
            raise RecipientUnavailable(text.format(name=to))

    def relay_typing(self, member: Member, request: Typing) -> None:
        payload: dict[str, Any] = {"type": "typing", "user": member.name}
        recipients: Iterable[Member]
        if request.to is not None:
            target = self.online(request.to)
            recipients = target.members if target else ()
            payload["to"] = request.to
        else:
            channel = normalize_channel(
                request.channel or DEFAULT_CHANNEL, self.settings.max_channel_chars
            )
            if channel is None or channel not in member.channels:
                return
            recipients = self._channels[channel]
            payload["channel"] = channel
        data = encode(payload)
        self.flush_pending()
        for other in recipients:
            if other is not member and "typing" in other.features:
                other.deliver(data)

    def notify(self, member: Member, content: str) -> None:
        """A notice for people: a ``system`` line to clients that asked for it, an
        ordinary message from Serveur to everyone else."""
        self.settle_for(member)
        member.deliver(encode(notice_for(member.features, content, self._timestamp())))

    def notify_private(
        self, member: Member, content: str, event: dict[str, Any] | None = None
    ) -> None:
        """A notice for this member alone: the typed ``event`` (with the text) to a
        client that asked for ``moderation``, a ``system`` line to one that asked for
        those, else a private message from Serveur, which every legacy client shows."""
        self.settle_for(member)
        timestamp = self._timestamp()
        features = member.features
        if event is not None and "moderation" in features:
            member.deliver(encode({**event, "text": content, "timestamp": timestamp}))
        elif "system" in features:
            member.deliver(encode(notice_for(features, content, timestamp)))
        else:
            member.deliver(
                encode(chat_reply(texts.SERVER_NAME, content, timestamp, private_to=member.name))
            )

    def notify_all(self, content: str, event: dict[str, Any] | None = None) -> int:
        """To every guest and user, never to anonymous connections: clients A and C
        take the first line after their login request as its reply. A client that
        asked for ``moderation`` gets ``event`` (with the text) instead, when given."""
        timestamp = self._timestamp()
        legacy = encode(notice_reply(content, timestamp))
        system: bytes | None = None
        typed = None
        if event is not None:
            typed = encode({**event, "text": content, "timestamp": timestamp})
        count = 0
        self.flush_pending()
        for entry in self._names.values():
            for member in entry.members:
                count += 1
                if typed is not None and "moderation" in member.features:
                    member.deliver(typed)
                elif "system" in member.features:
                    system = system or encode(notice_for(member.features, content, timestamp))
                    member.deliver(system)
                else:
                    member.deliver(legacy)
        return count

    def online_names(self) -> list[OnlineName]:
        """Every name online, by key."""
        return [entry for _key, entry in sorted(self._names.items())]

    # --- channels -------------------------------------------------------------------

    def _visible_count(self, members: Iterable[Member], asker: Member | None = None) -> int:
        """Members as others may see them: invisible ones are not counted."""
        count = 0
        for other in members:
            entry = self._names.get(name_key(other.name))
            if other is asker or entry is None or entry.visible:
                count += 1
        return count

    def _shared(self, channels: frozenset[str]) -> frozenset[str]:
        """One object for every member in the same single channel: a set costs more
        than the rest of an idle connection's own objects."""
        if len(channels) != 1:
            return channels
        return self._single.setdefault(channels, channels)

    def _join(self, member: Member, channel: str) -> None:
        members = self._channels.setdefault(channel, set())
        pending = self._pending
        if pending is not None and pending.audience is members and member not in members:
            pending.arrived(member)
        members.add(member)
        if channel not in member.channels:
            member.channels = self._shared(member.channels | {channel})

    def _leave(self, member: Member, channel: str) -> None:
        self.flush_pending()
        members = self._channels.get(channel)
        if members is not None:
            members.discard(member)
            if not members and channel != DEFAULT_CHANNEL:
                del self._channels[channel]
                self._single.pop(frozenset((channel,)), None)
        if channel in member.channels:
            member.channels = self._shared(member.channels - {channel})

    def _channel_or_error(self, channel: str) -> str:
        canonical = normalize_channel(channel, self.settings.max_channel_chars)
        if canonical is None:
            raise ClientError(texts.CHANNEL_INVALID.format(channel=channel))
        allowed = self.settings.allowed_channels
        if allowed and canonical not in allowed and canonical != DEFAULT_CHANNEL:
            raise ClientError(texts.CHANNEL_NOT_ALLOWED.format(channel=canonical))
        return canonical

    def join_channel(
        self, member: Member, channel: str, slash_command: bool = False
    ) -> PendingHistory | None:
        canonical = self._channel_or_error(channel)
        settings = self.settings
        if canonical not in member.channels:
            if len(member.channels) >= settings.max_channels_per_member:
                raise ClientError(
                    texts.TOO_MANY_JOINED.format(limit=settings.max_channels_per_member)
                )
            if canonical not in self._channels and len(self._channels) >= settings.max_channels:
                raise ClientError(texts.TOO_MANY_CHANNELS.format(limit=settings.max_channels))
        self._join(member, canonical)
        self._channel_answer(member, "join_channel", canonical, slash_command)
        if "history_on_join" in member.features:
            return self._send_history(member, canonical, self.settings.history_default_limit)
        return None

    def leave_channel(self, member: Member, channel: str, slash_command: bool = False) -> None:
        canonical = self._channel_or_error(channel)
        if canonical == DEFAULT_CHANNEL:
            raise ClientError(texts.CANNOT_LEAVE_DEFAULT.format(channel=DEFAULT_CHANNEL))
        self._leave(member, canonical)
        self._channel_answer(member, "leave_channel", canonical, slash_command)

    def _channel_answer(self, member: Member, kind: str, channel: str, slash: bool) -> None:
        if slash:
            # Typed as "/join #dev" by a legacy client: an unknown reply type would be
            # printed raw by client A, so answer with an ordinary notice.
            text = texts.JOINED if kind == "join_channel" else texts.LEFT
            self.notify(member, text.format(channel=channel))
            return
        count = self._visible_count(self._channels.get(channel, set()), member)
        member.reply({"type": kind, "status": "ok", "channel": channel, "members": count})

    def channels_reply(self, reply_type: str, asker: Member | None = None) -> dict[str, Any]:
        """The most populated channels first, at most ``channels_list_max``."""
        listed = {
            name: self._visible_count(members, asker) for name, members in self._channels.items()
        }
        for name in self.settings.allowed_channels:
            listed.setdefault(name, 0)
        ranked = sorted(listed.items(), key=lambda item: (-item[1], item[0]))
        shown = sorted(ranked[: self.settings.channels_list_max])
        reply: dict[str, Any] = {
            "type": reply_type,
            "channels": [{"name": name, "members": count} for name, count in shown],
        }
        if len(ranked) > len(shown):
            reply["more"] = len(ranked) - len(shown)
        return reply

    def channel_members(self, channel: str) -> set[Member]:
        return self._channels.get(channel, set())

    def channel_names(self) -> list[str]:
        return sorted(self._channels)

    # --- history --------------------------------------------------------------------

    def _history_limit(self, requested: int | None) -> int:
        limit = requested or self.settings.history_default_limit
        return max(1, min(limit, self.settings.history_max_limit))

    def channel_history(
        self, member: Member, channel: str | None, limit: int | None
    ) -> PendingHistory:
        canonical = self._channel_or_error(channel or DEFAULT_CHANNEL)
        if canonical not in member.channels:
            raise ClientError(texts.NOT_IN_CHANNEL.format(channel=canonical))
        return self._send_history(member, canonical, self._history_limit(limit))

    def _token_of(self, name: str) -> str | None:
        """The identity behind a name now: the online guest holding it, else the
        account of that name, else nobody."""
        entry = self.online(name)
        if entry is not None and entry.guest:
            return entry.members[0].token
        account = self.directory.account_id(name)
        return account_token(account) if account is not None else None

    def private_history(self, member: Member, with_user: str, limit: int | None) -> PendingHistory:
        other = self._token_of(with_user)
        # Nobody by that name now: no conversation to show (a guest's ended with it).
        conversation = private_conversation(member.token, other) if other else NO_CONVERSATION
        return self._send_history(
            member, conversation, self._history_limit(limit), with_user=with_user
        )

    async def _send_history(
        self, member: Member, conversation: str, limit: int, with_user: str | None = None
    ) -> None:
        records = await self.history.latest(conversation, limit)
        reply: dict[str, Any] = {
            "type": "history",
            "messages": [
                chat_reply(
                    r.sender,
                    r.content,
                    r.timestamp,
                    private_to=r.recipient,
                    channel=r.channel if r.channel != DEFAULT_CHANNEL else None,
                )
                for r in records
            ],
        }
        if with_user is not None:
            reply["with"] = with_user
        else:
            reply["channel"] = conversation
        member.reply(reply)
