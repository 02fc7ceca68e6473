"""Who is online, their names and states, channels, routing, and fan-out.

Fan-out encodes a message once and hands the same bytes to every recipient's
session; the I/O layer queues them and writes each recipient once per event-loop
pass, so a broadcast never waits on any one client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from classcord import __version__, texts
from classcord.accounts import Accounts
from classcord.config import Settings
from classcord.protocol import (
    DEFAULT_CHANNEL,
    FEATURES,
    ClientError,
    History,
    Typing,
    chat_reply,
    encode,
    is_valid_name,
    name_key,
    normalize_channel,
    notice_reply,
    status_reply,
)
from classcord.session import Pending, Session, State
from classcord.storage import MessageRecord, StorageWorker, private_conversation

log = logging.getLogger("classcord.hub")

HISTORY_DEFAULT_LIMIT = 50
HISTORY_MAX_LIMIT = 200


def now_timestamp() -> str:
    # Always with microseconds: isoformat() drops them when they are zero, and one
    # client splits the timestamp on "T" and expects a stable shape.
    return datetime.now().isoformat(timespec="microseconds")


@dataclass
class OnlineName:
    """A name in use: a user's account (possibly on several connections) or a guest."""

    name: str
    guest: bool
    state: str = "online"
    sessions: list[Session] = field(default_factory=list)

    @property
    def visible(self) -> bool:
        return self.state != "invisible"


@dataclass
class Counters:
    messages: int = 0
    deliveries: int = 0
    private_messages: int = 0


class Hub:
    def __init__(
        self,
        settings: Settings,
        accounts: Accounts,
        storage: StorageWorker | None = None,
        timestamp: Callable[[], str] = now_timestamp,
    ) -> None:
        self.settings = settings
        self.accounts = accounts
        self.storage = storage
        self.sessions: set[Session] = set()
        self.counters = Counters()
        self.started_at = time.time()
        self._timestamp = timestamp
        self._names: dict[str, OnlineName] = {}
        self._channels: dict[str, set[Session]] = {DEFAULT_CHANNEL: set()}
        self._pending_history: list[MessageRecord] = []

    # --- membership ---------------------------------------------------------------

    def connect(self, session: Session) -> None:
        self.sessions.add(session)

    def disconnect(self, session: Session) -> None:
        self.sessions.discard(session)
        session.release_claim()
        if session.identified:
            self._drop_identity(session)
        session.state = State.CLOSING

    def is_reserved(self, name: str) -> bool:
        return name_key(name) == name_key(texts.SERVER_NAME)

    def is_online(self, name: str) -> bool:
        return name_key(name) in self._names

    def _name_taken(self, name: str) -> bool:
        return self.is_reserved(name) or self.is_online(name) or self.accounts.is_claimed(name)

    def online(self, name: str) -> OnlineName | None:
        return self._names.get(name_key(name))

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

    def make_guest(self, session: Session, requested: str | None) -> None:
        name = self.guest_name(requested)
        session.state = State.GUEST
        self._take_name(session, name)
        log.info("guest: name=%s addr=%s conn=%d", name, session.peer.address, session.peer.conn_id)

    def log_in(self, session: Session, name: str) -> None:
        """Called once the login reply is queued: only now does the session join the
        broadcast set (clients read that reply synchronously)."""
        if session.identified:
            self._drop_identity(session)
        session.state = State.USER
        self._take_name(session, name)

    def _take_name(self, session: Session, name: str) -> None:
        guest = session.state is State.GUEST
        entry = self._names.get(name_key(name))
        if entry is not None and (entry.guest or guest):
            # Guest names avoid every claimed name, so this is a bug elsewhere; an
            # account must still never share its entry (and private messages) with
            # a guest: the account wins.
            log.error("name conflict on %r: closing the guest connections", name)
            for other in list(entry.sessions):
                other.peer.close("guest name conflict")
                self._drop_identity(other)
                other.state = State.CLOSING
            entry = None
        first = entry is None
        if entry is None:
            entry = self._names[name_key(name)] = OnlineName(name, guest)
        entry.sessions.append(session)
        session.name = entry.name
        self._join(session, DEFAULT_CHANNEL)
        if first:
            self._broadcast(encode(status_reply(entry.name, "online")), exclude=entry.sessions)

    def _drop_identity(self, session: Session) -> None:
        for channel in list(session.channels):
            self._leave(session, channel)
        entry = self._names.get(name_key(session.name))
        if entry is None or session not in entry.sessions:
            return
        entry.sessions.remove(session)
        if not entry.sessions:
            del self._names[name_key(session.name)]
            if entry.visible:
                self._broadcast(encode(status_reply(entry.name, "offline")))

    def kick(self, name: str, reason: str) -> int:
        """Close every connection of ``name`` after a notice; returns how many."""
        entry = self.online(name)
        if entry is None:
            return 0
        sessions = list(entry.sessions)
        suffix = f" : {reason}" if reason else ""
        for session in sessions:
            self.notify(session, texts.KICKED.format(reason=suffix))
            session.peer.close(f"kicked by admin{suffix}")
        return len(sessions)

    # --- presence -----------------------------------------------------------------

    def set_status(self, session: Session, state: str) -> None:
        entry = self.online(session.name)
        if entry is None:
            return
        was_visible = entry.visible
        entry.state = state
        if entry.visible or was_visible:
            shown = state if entry.visible else "offline"
            self._broadcast(encode(status_reply(entry.name, shown)), exclude=(session,))

    def users_reply(self, session: Session, reply_type: str) -> dict[str, Any]:
        shown = [
            entry for entry in self._names.values() if entry.visible or session in entry.sessions
        ]
        shown.sort(key=lambda entry: name_key(entry.name))
        return {
            "type": reply_type,
            "users": [entry.name for entry in shown],
            "states": {entry.name: entry.state for entry in shown},
        }

    def hello_reply(self, session: Session) -> dict[str, Any]:
        settings = self.settings
        return {
            "type": "hello",
            "features": sorted(session.features),
            "available": list(FEATURES),
            "server": f"classcord/{__version__}",
            "default_channel": DEFAULT_CHANNEL,
            "limits": {
                "max_line_bytes": settings.max_line_bytes,
                "max_content_chars": settings.max_content_chars,
                "max_name_chars": settings.max_name_chars,
                "rate_per_second": settings.rate_per_second,
                "rate_burst": settings.rate_burst,
            },
        }

    # --- messages -----------------------------------------------------------------

    def _broadcast(self, data: bytes, exclude: Iterable[Session] = ()) -> None:
        """To every identified session (presence goes to all channels)."""
        skip = set(exclude)
        for entry in self._names.values():
            for member in entry.sessions:
                if member not in skip:
                    member.deliver(data)

    def _fan_out(self, data: bytes, recipients: Iterable[Session], sender: Session) -> int:
        count = 0
        for member in recipients:
            if member is not sender:
                member.deliver(data)
                count += 1
        self.counters.deliveries += count
        return count

    def send_channel(self, session: Session, channel: str, content: str) -> None:
        canonical = normalize_channel(channel)
        if canonical is None or canonical not in session.channels:
            raise ClientError(texts.NOT_IN_CHANNEL.format(channel=channel))
        timestamp = self._timestamp()
        # Legacy clients never name a channel: their messages stay exactly as before.
        shown_channel = None if canonical == DEFAULT_CHANNEL else canonical
        data = encode(chat_reply(session.name, content, timestamp, channel=shown_channel))
        self.counters.messages += 1
        self._fan_out(data, self._channels[canonical], session)
        self._record(timestamp, canonical, session.name, None, canonical, content)
        log.debug(
            "message: conn=%d from=%s channel=%s", session.peer.conn_id, session.name, canonical
        )

    def send_private(self, session: Session, to: str, content: str) -> None:
        target = self.online(to)
        registered = self.accounts.is_registered(to)
        if target is None and not registered:
            raise ClientError(texts.UNKNOWN_RECIPIENT.format(name=to))
        timestamp = self._timestamp()
        # ``to`` is relayed exactly as sent: client family B shows a private message
        # only when ``to`` or ``from`` equals its user.
        data = encode(chat_reply(session.name, content, timestamp, private_to=to))
        self.counters.private_messages += 1
        conversation = private_conversation(name_key(session.name), name_key(to))
        self._record(timestamp, conversation, session.name, to, None, content)
        if target is None:
            session.error(texts.RECIPIENT_OFFLINE.format(name=to))
            return
        self._fan_out(data, target.sessions, session)

    def relay_typing(self, session: Session, request: Typing) -> None:
        payload: dict[str, Any] = {"type": "typing", "user": session.name}
        if request.to is not None:
            target = self.online(request.to)
            recipients: Iterable[Session] = target.sessions if target else ()
            payload["to"] = request.to
        else:
            channel = normalize_channel(request.channel or DEFAULT_CHANNEL)
            if channel is None or channel not in session.channels:
                return
            recipients = self._channels[channel]
            payload["channel"] = channel
        data = encode(payload)
        for member in recipients:
            if member is not session and "typing" in member.features:
                member.deliver(data)

    def notify(self, session: Session, content: str) -> None:
        """A notice for people: a ``system`` line to clients that asked for it, an
        ordinary message from Serveur to everyone else."""
        session.deliver(encode(self._notice_payload(session, content)))

    def _notice_payload(self, session: Session, content: str) -> dict[str, Any]:
        timestamp = self._timestamp()
        if "system" in session.features:
            return {"type": "system", "content": content, "timestamp": timestamp}
        return notice_reply(content, timestamp)

    def notify_all(self, content: str, include_anonymous: bool = False) -> int:
        """To every guest and user; anonymous connections only when they are about to
        be closed anyway (shutdown): clients A and C take the first line after their
        login request as its reply, so nothing unasked may reach them before it."""
        legacy = encode(notice_reply(content, self._timestamp()))
        system: bytes | None = None
        count = 0
        for session in self.sessions:
            if not (session.identified or include_anonymous):
                continue
            count += 1
            if "system" in session.features:
                system = system or encode(self._notice_payload(session, content))
                session.deliver(system)
            else:
                session.deliver(legacy)
        return count

    # --- channels -------------------------------------------------------------------

    def _join(self, session: Session, channel: str) -> None:
        self._channels.setdefault(channel, set()).add(session)
        session.channels.add(channel)

    def _leave(self, session: Session, channel: str) -> None:
        members = self._channels.get(channel)
        if members is not None:
            members.discard(session)
            if not members and channel != DEFAULT_CHANNEL:
                del self._channels[channel]
        session.channels.discard(channel)

    def _channel_or_error(self, channel: str) -> str:
        canonical = normalize_channel(channel)
        if canonical is None:
            raise ClientError(texts.CHANNEL_INVALID.format(channel=channel))
        allowed = self.settings.allowed_channels
        if allowed and canonical not in allowed and canonical != DEFAULT_CHANNEL:
            raise ClientError(texts.CHANNEL_NOT_ALLOWED.format(channel=canonical))
        return canonical

    def join_channel(
        self, session: Session, channel: str, slash_command: bool = False
    ) -> Pending | None:
        canonical = self._channel_or_error(channel)
        self._join(session, canonical)
        self._channel_answer(session, "join_channel", canonical, slash_command)
        if "history_on_join" in session.features and self.storage is not None:
            return self._send_history(session, canonical, HISTORY_DEFAULT_LIMIT)
        return None

    def leave_channel(self, session: Session, channel: str, slash_command: bool = False) -> None:
        canonical = self._channel_or_error(channel)
        if canonical == DEFAULT_CHANNEL:
            raise ClientError(texts.CANNOT_LEAVE_DEFAULT.format(channel=DEFAULT_CHANNEL))
        self._leave(session, canonical)
        self._channel_answer(session, "leave_channel", canonical, slash_command)

    def _channel_answer(self, session: Session, kind: str, channel: str, slash: bool) -> None:
        if slash:
            # Typed as "/join #dev" by a legacy client: an unknown reply type would be
            # printed raw by client A, so answer with an ordinary notice.
            text = texts.JOINED if kind == "join_channel" else texts.LEFT
            self.notify(session, text.format(channel=channel))
            return
        members = self._channels.get(channel, set())
        session.reply({"type": kind, "status": "ok", "channel": channel, "members": len(members)})

    def channels_reply(self, reply_type: str) -> dict[str, Any]:
        listed = {name: len(members) for name, members in self._channels.items()}
        for name in self.settings.allowed_channels:
            listed.setdefault(name, 0)
        return {
            "type": reply_type,
            "channels": [
                {"name": name, "members": count} for name, count in sorted(listed.items())
            ],
        }

    def channel_members(self, channel: str) -> set[Session]:
        return self._channels.get(channel, set())

    def channel_names(self) -> list[str]:
        return sorted(self._channels)

    # --- history --------------------------------------------------------------------

    def _record(
        self,
        timestamp: str,
        conversation: str,
        sender: str,
        recipient: str | None,
        channel: str | None,
        content: str,
    ) -> None:
        self._pending_history.append(
            MessageRecord(time.time(), timestamp, conversation, sender, recipient, channel, content)
        )

    def take_pending_history(self) -> list[MessageRecord]:
        pending, self._pending_history = self._pending_history, []
        return pending

    def history(self, session: Session, request: History) -> Pending:
        limit = request.limit or HISTORY_DEFAULT_LIMIT
        limit = max(1, min(limit, HISTORY_MAX_LIMIT))
        if request.with_user is not None:
            if session.state is not State.USER:
                raise ClientError(texts.HISTORY_PRIVATE_NEEDS_LOGIN)
            conversation = private_conversation(name_key(session.name), name_key(request.with_user))
            return self._send_history(session, conversation, limit, with_user=request.with_user)
        channel = self._channel_or_error(request.channel or DEFAULT_CHANNEL)
        if channel not in session.channels:
            raise ClientError(texts.NOT_IN_CHANNEL.format(channel=channel))
        return self._send_history(session, channel, limit)

    async def _send_history(
        self, session: Session, conversation: str, limit: int, with_user: str | None = None
    ) -> None:
        if self.storage is None:
            records: list[MessageRecord] = []
        else:
            # Messages not yet committed are part of the conversation too.
            await self.flush_history()
            records = await self.storage.call(self.storage.storage.history, conversation, limit)
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
        session.reply(reply)

    async def flush_history(self) -> int:
        """Commit every message recorded so far; returns how many."""
        pending = self.take_pending_history()
        if pending and self.storage is not None:
            try:
                await self.storage.call(self.storage.storage.add_messages, pending)
            except Exception:
                # Keep them for the next flush rather than lose them.
                self._pending_history[:0] = pending
                raise
        return len(pending)
