"""One connection's state, and the table of (state, request type) to handler.

A session never touches a socket: it gets lines, and hands bytes to its ``Peer``.
Handlers that must wait (password hashing, the database) return a coroutine; the
I/O layer awaits it before the next line of that connection is handled, so replies
keep the order of requests.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, Protocol

from classcord import texts
from classcord.accounts import LoginOutcome, RegisterOutcome
from classcord.protocol import (
    DEFAULT_CHANNEL,
    FEATURES,
    SLASH_COMMAND,
    WIRE_TYPE,
    AbuseError,
    Chat,
    ClientError,
    Hello,
    History,
    JoinChannel,
    LeaveChannel,
    ListChannels,
    ListUsers,
    Login,
    Ping,
    Register,
    Request,
    SetStatus,
    Typing,
    Unknown,
    decode_line,
    encode,
    error_reply,
    is_valid_name,
    loggable,
    parse_request,
)

if TYPE_CHECKING:
    from classcord.hub import Hub

log = logging.getLogger("classcord.session")

Pending = Coroutine[Any, Any, None]


class State(enum.Enum):
    ANONYMOUS = "anonymous"
    GUEST = "guest"
    USER = "user"
    CLOSING = "closing"


class Peer(Protocol):
    """What a session needs from its connection."""

    @property
    def conn_id(self) -> int: ...

    @property
    def address(self) -> str: ...

    def send(self, data: bytes) -> None: ...

    def close(self, reason: str) -> None: ...

    def queued_bytes(self) -> int: ...


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; the clock is injected for tests."""

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class Session:
    def __init__(self, peer: Peer, hub: Hub, clock: Callable[[], float] = time.monotonic) -> None:
        settings = hub.settings
        self.peer = peer
        self.hub = hub
        self.state = State.ANONYMOUS
        self.name = ""
        self.channels: set[str] = set()
        self.features: frozenset[str] = frozenset()
        self.connected_at = time.time()
        self.requests = 0
        self.pings = 0
        self._bucket = TokenBucket(settings.rate_per_second, settings.rate_burst, clock)
        self._strikes = 0
        self._held: list[bytes] | None = None
        self.claimed_name: str | None = None

    def __repr__(self) -> str:
        return f"<Session #{self.peer.conn_id} {self.state.value} {self.name!r}>"

    @property
    def identified(self) -> bool:
        return self.state in (State.GUEST, State.USER)

    # output

    def reply(self, payload: dict[str, Any]) -> None:
        """An answer to this connection's own request: never held back."""
        self.peer.send(encode(payload))

    def deliver(self, data: bytes) -> None:
        """A push from someone else: held while a login reply is outstanding, so the
        reply is the first line the client reads after its request."""
        if self._held is not None:
            self._held.append(data)
        else:
            self.peer.send(data)

    def error(self, message: str) -> None:
        self.reply(error_reply(message))

    def _hold(self) -> None:
        if self._held is None:
            self._held = []

    def _release(self) -> None:
        held, self._held = self._held, None
        for data in held or ():
            self.peer.send(data)

    # input

    def receive_line(self, raw: bytes) -> Pending | None:
        """Handle one framed line; a coroutine is returned when the handler must wait."""
        if self.state is State.CLOSING:
            return None
        if not self._bucket.take():
            self._strike()
            if raw.strip():
                self.error(texts.RATE_LIMITED)
            return None
        self._strikes = 0
        try:
            request = parse_request(decode_line(raw))
        except ClientError as exc:
            self.error(exc.message)
            return None
        if request is None:
            return None
        self.requests += 1
        return self.dispatch(request)

    def line_too_long(self) -> None:
        log.info(
            "limit: conn=%d addr=%s line over %d bytes discarded",
            self.peer.conn_id,
            self.peer.address,
            self.hub.settings.max_line_bytes,
        )
        if not self._bucket.take():
            self._strike()
        self.error(texts.LINE_TOO_LONG.format(limit=self.hub.settings.max_line_bytes))

    def _strike(self) -> None:
        self._strikes += 1
        if self._strikes == 1:  # once per burst, not once per dropped line
            log.info(
                "limit: conn=%d addr=%s user=%s over the rate limit, requests dropped",
                self.peer.conn_id,
                self.peer.address,
                self.name or "-",
            )
        if self._strikes >= self.hub.settings.flood_disconnect_after:
            raise AbuseError(f"flooding: {self._strikes} requests in a row over the rate limit")

    def dispatch(self, request: Request) -> Pending | None:
        row = HANDLERS.get(type(request))
        if row is None or self.state is State.CLOSING:
            return None
        handler = row[_COLUMN[self.state]]
        if handler is None:
            self.error(texts.NOT_LOGGED_IN.format(request=WIRE_TYPE[type(request)]))
            return None
        try:
            return handler(self, request)
        except ClientError as exc:
            self.error(exc.message)
            return None

    # handlers: each takes the request it is registered for in HANDLERS

    def _check_name(self, name: str) -> None:
        if not is_valid_name(name, self.hub.settings.max_name_chars):
            raise ClientError(texts.NAME_INVALID.format(limit=self.hub.settings.max_name_chars))
        if self.hub.is_reserved(name):
            raise ClientError(texts.NAME_RESERVED.format(name=name))

    def _check_password(self, password: str) -> None:
        if not 0 < len(password) <= self.hub.settings.max_password_chars:
            raise ClientError(
                texts.PASSWORD_INVALID.format(limit=self.hub.settings.max_password_chars)
            )

    def on_register(self, request: Register) -> Pending | None:
        self._check_name(request.username)
        self._check_password(request.password)
        if self.hub.is_online(request.username) or not self.hub.accounts.claim(request.username):
            self.error(texts.USERNAME_EXISTS)
            return None
        self.claimed_name = request.username
        return self._register(request)

    async def _register(self, request: Register) -> None:
        self._hold()
        try:
            accounts = self.hub.accounts
            outcome = await accounts.complete_registration(request.username, request.password)
            if outcome == RegisterOutcome.OK:
                log.info(
                    "registered: user=%s addr=%s conn=%d",
                    request.username,
                    self.peer.address,
                    self.peer.conn_id,
                )
                self.reply({"type": "register", "status": "ok"})
            else:
                self.error(texts.USERNAME_EXISTS)
        finally:
            self.release_claim()
            self._release()

    def release_claim(self) -> None:
        """Also called on disconnect: the task may be cancelled before it ever ran."""
        if self.claimed_name is not None:
            self.hub.accounts.release(self.claimed_name)
            self.claimed_name = None

    def on_login(self, request: Login) -> Pending:
        return self._login(request)

    async def _login(self, request: Login) -> None:
        self._hold()
        try:
            outcome = await self.hub.accounts.authenticate(request.username, request.password)
            if self.state is State.CLOSING:
                return
            if outcome != LoginOutcome.OK:
                # One fixed format, matched by the shipped fail2ban filter.
                log.warning(
                    "auth failure: user=%s addr=%s conn=%d reason=%s",
                    loggable(request.username),
                    self.peer.address,
                    self.peer.conn_id,
                    outcome,
                )
                self.error(texts.LOGIN_FAILED)
                return
            log.info(
                "login: user=%s addr=%s conn=%d",
                request.username,
                self.peer.address,
                self.peer.conn_id,
            )
            self.reply({"type": "login", "status": "ok", "username": request.username})
            self.hub.log_in(self, request.username)
        finally:
            self._release()

    def on_chat_anonymous(self, request: Chat) -> Pending | None:
        self.hub.make_guest(self, request.requested_name)
        return self.on_chat(request)

    def on_chat(self, request: Chat) -> Pending | None:
        content = request.content
        if not content.strip():
            return None  # an empty announce makes a guest but is not broadcast
        limit = self.hub.settings.max_content_chars
        if len(content) > limit:
            raise ClientError(texts.CONTENT_TOO_LONG.format(length=len(content), limit=limit))
        if request.private_to is not None:
            self.hub.send_private(self, request.private_to, content)
            return None
        command = SLASH_COMMAND.match(content)
        if command is not None and request.channel is None:
            verb, channel = command.groups()
            if verb == "join":
                return self.hub.join_channel(self, channel, slash_command=True)
            self.hub.leave_channel(self, channel, slash_command=True)
            return None
        self.hub.send_channel(self, request.channel or DEFAULT_CHANNEL, content)
        return None

    def on_status(self, request: SetStatus) -> None:
        self.hub.set_status(self, request.state)

    def on_users(self, request: ListUsers) -> None:
        self.reply(self.hub.users_reply(self, request.reply_type))

    def on_ping(self, request: Ping) -> None:
        self.pings += 1
        self.reply({"type": "pong"})

    @property
    def only_pinged(self) -> bool:
        """A health check: it asked for nothing but pongs."""
        return 0 < self.requests == self.pings

    def on_hello(self, request: Hello) -> None:
        self.features = frozenset(f for f in request.features if f in FEATURES)
        self.reply(self.hub.hello_reply(self))

    def on_join(self, request: JoinChannel) -> Pending | None:
        return self.hub.join_channel(self, request.channel)

    def on_leave(self, request: LeaveChannel) -> None:
        self.hub.leave_channel(self, request.channel)

    def on_channels(self, request: ListChannels) -> None:
        self.reply(self.hub.channels_reply(request.reply_type))

    def on_history(self, request: History) -> Pending:
        return self.hub.history(self, request)

    def on_typing(self, request: Typing) -> None:
        self.hub.relay_typing(self, request)

    def on_unknown(self, request: Unknown) -> None:
        log.debug("conn=%d ignored unknown type %r", self.peer.conn_id, request.type_name[:40])


Handler = Callable[[Session, Any], Pending | None]

_COLUMN: Final = {State.ANONYMOUS: 0, State.GUEST: 1, State.USER: 2}

# The whole state machine. None: answered with "log in first".
# A chat from an anonymous connection makes it a guest (PROTOCOL-COMPAT: Guests).
HANDLERS: Final[dict[type, tuple[Handler | None, Handler | None, Handler | None]]] = {
    #              anonymous                     guest                  user
    Register: (Session.on_register, Session.on_register, Session.on_register),
    Login: (Session.on_login, Session.on_login, Session.on_login),
    Chat: (Session.on_chat_anonymous, Session.on_chat, Session.on_chat),
    SetStatus: (None, Session.on_status, Session.on_status),
    ListUsers: (Session.on_users, Session.on_users, Session.on_users),
    Ping: (Session.on_ping, Session.on_ping, Session.on_ping),
    Hello: (Session.on_hello, Session.on_hello, Session.on_hello),
    JoinChannel: (None, Session.on_join, Session.on_join),
    LeaveChannel: (None, Session.on_leave, Session.on_leave),
    ListChannels: (Session.on_channels, Session.on_channels, Session.on_channels),
    History: (None, Session.on_history, Session.on_history),
    Typing: (None, Session.on_typing, Session.on_typing),
    Unknown: (Session.on_unknown, Session.on_unknown, Session.on_unknown),
}
