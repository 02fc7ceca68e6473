"""One connection's state: the whole state machine, as two tables.

Theory of operation
-------------------
A connection's bytes are framed into lines by the I/O layer (``driver.py``), and
each line comes here through ``Session.receive_line``:

1. the rate limit takes a token (or the line is refused, and sustained flooding is
   abuse);
2. ``protocol.parse_request`` turns the line into a typed request, or a
   ``ClientError`` that is answered with an error line;
3. ``HANDLERS[type(request)]`` gives one cell per state: the handler for that
   request in the session's current state, or ``None`` ("log in first");
4. a handler that must wait (password hashing, the database) returns a coroutine;
   the driver awaits it before the next line of that connection, so replies keep
   the order of requests.

The session is the only writer of its state. Every change goes through
``_transition`` and the table ``TRANSITIONS`` of (state, event) to state; a change
the table does not list is a bug. ``hub.py`` owns everything shared between
connections (names, channels, presence, routing) and sees a session only as a
``Member``; the session reaches its accounts and settings directly.

::

                  first message            login ok
    ANONYMOUS ───────────────────▶ GUEST ───────────▶ USER ◀─┐ login ok
        │ └─────────────────── login ok ─────────────▲  └─────┘
        │                                            │
        └──────── evicted / disconnected ──▶ CLOSING ◀── (from every state)
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol

from classcord import __version__, texts
from classcord.accounts import Accounts, LoginOutcome, RegisterOutcome
from classcord.config import Settings
from classcord.errors import AbuseError, ClientError, InternalError, RecipientUnavailable
from classcord.hub import Hub
from classcord.identity import is_reserved_name, name_problem
from classcord.moderation import Role
from classcord.moderation_service import ModerationService
from classcord.protocol import (
    DEFAULT_CHANNEL,
    FEATURES,
    REQUEST_CLASSES,
    SLASH_COMMAND,
    WIRE_TYPE,
    ChannelHistory,
    Chat,
    Hello,
    JoinChannel,
    LeaveChannel,
    ListChannels,
    ListUsers,
    Login,
    Moderate,
    Ping,
    PrivateHistory,
    Register,
    Request,
    SetStatus,
    Typing,
    Unknown,
    decode_line,
    encode,
    error_reply,
    loggable,
    parse_request,
)
from classcord.storage import GUEST_TOKEN_PREFIX, account_token

log = logging.getLogger("classcord.session")

Pending = Coroutine[Any, Any, None]

# One empty set shared by every new connection (frozenset() is no singleton).
EMPTY_SET: Final[frozenset[str]] = frozenset()


class State(enum.Enum):
    ANONYMOUS = "anonymous"
    GUEST = "guest"
    USER = "user"
    CLOSING = "closing"


class Event(enum.Enum):
    FIRST_MESSAGE = "a message before any login"
    LOGGED_IN = "login accepted"
    EVICTED = "evicted"
    DISCONNECTED = "disconnected"


_EVERY_STATE: Final = tuple(State)

# Every state change there is. A pair missing here is a bug, not a client mistake.
TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (State.ANONYMOUS, Event.FIRST_MESSAGE): State.GUEST,
    (State.ANONYMOUS, Event.LOGGED_IN): State.USER,
    (State.GUEST, Event.LOGGED_IN): State.USER,
    (State.USER, Event.LOGGED_IN): State.USER,
    **{(state, Event.EVICTED): State.CLOSING for state in _EVERY_STATE},
    **{(state, Event.DISCONNECTED): State.CLOSING for state in _EVERY_STATE},
}


class Peer(Protocol):
    """What a session needs from its connection."""

    @property
    def conn_id(self) -> int: ...

    @property
    def address(self) -> str: ...

    def send(self, data: bytes | memoryview) -> None: ...

    def close(self, reason: str) -> None: ...

    def queued_bytes(self) -> int: ...

    @property
    def tls_port(self) -> int | None:
        """The server's TLS port, when there is one and this connection is not on it."""


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
    # Slots: ten thousand idle connections are ten thousand sessions (and the login
    # guard keeps a weak reference to each).
    __slots__ = (
        "__weakref__",
        "_bucket",
        "_clock",
        "_features",
        "_held",
        "_last_strike",
        "_name",
        "_state",
        "_strikes",
        "_token",
        "_warned",
        "accounts",
        "channels",
        "claimed_name",
        "connected_at",
        "hub",
        "moderation",
        "peer",
        "pings",
        "push",
        "requests",
        "role",
        "said_hello",
        "settings",
    )

    def __init__(
        self,
        peer: Peer,
        hub: Hub,
        accounts: Accounts,
        settings: Settings,
        moderation: ModerationService,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peer = peer
        self.hub = hub
        self.accounts = accounts
        self.settings = settings
        self.moderation = moderation
        self.role = Role.STUDENT  # an account's, from moderation; guests stay students
        self._state = State.ANONYMOUS
        self._name = ""
        self.channels: frozenset[str] = EMPTY_SET  # the hub keeps it
        self._features: frozenset[str] = EMPTY_SET
        self.said_hello = False  # opted in to the extensions: typed events, errors
        self.connected_at = time.time()
        self.requests = 0
        self.pings = 0
        self._bucket = TokenBucket(settings.rate_per_second, settings.rate_burst, clock)
        self._clock = clock
        self._strikes = 0
        self._last_strike = -float("inf")
        self._warned = False
        self._held: list[bytes | memoryview] | None = None
        # What ``deliver`` does now: the connection's send, or the held list. The hub
        # calls it straight for each recipient of a fan-out (one call per delivery).
        self.push: Callable[[bytes | memoryview], None] = peer.send
        self.claimed_name: str | None = None
        self._token = ""

    def __repr__(self) -> str:
        return f"<Session #{self.peer.conn_id} {self._state.value} {self._name!r}>"

    @property
    def state(self) -> State:
        return self._state

    @property
    def name(self) -> str:
        return self._name

    @property
    def features(self) -> frozenset[str]:
        return self._features

    @property
    def token(self) -> str:
        """Who this is in private conversations: ``u<id>`` for an account, a token
        of its own for a guest, so nobody who later takes the name can read them."""
        return self._token

    @property
    def identified(self) -> bool:
        return self._state in (State.GUEST, State.USER)

    def _transition(self, event: Event) -> None:
        new = TRANSITIONS.get((self._state, event))
        if new is None:
            raise InternalError(f"no transition from {self._state.value} on {event.value}")
        log.debug(
            "state: conn=%d %s -> %s (%s)",
            self.peer.conn_id,
            self._state.value,
            new.value,
            event.value,
        )
        self._state = new

    def _enter_hub(self, name: str, event: Event) -> None:
        """Become a guest or a user: the state first, then the name in the hub."""
        if self.identified:
            self.hub.leave(self)
        self._transition(event)
        if self._state is State.USER:
            account = self.accounts.account_id(name)
            if account is None:
                raise InternalError(f"logged in as {name!r} with no account id")
            self._token = account_token(account)
            self.role = self.moderation.role_of(name)
        else:
            self._token = GUEST_TOKEN_PREFIX + secrets.token_hex(12)
            self.role = Role.STUDENT
        self._name = self.hub.enter(self, name, guest=self._state is State.GUEST)

    # output

    def reply(self, payload: dict[str, Any]) -> None:
        """An answer to this connection's own request: never held back."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("reply: conn=%d type=%s", self.peer.conn_id, payload.get("type"))
        self.hub.settle_for(self)
        self.peer.send(encode(payload))

    def deliver(self, data: bytes) -> None:
        """A push from someone else: held while a login reply is outstanding, so the
        reply is the first line the client reads after its request (the hub has
        handed out what this member was owed before calling it)."""
        self.push(data)

    def error(self, message: str) -> None:
        self.reply(error_reply(message))

    def notify(self, content: str) -> None:
        """A notice for this connection alone (shutdown reaches anonymous ones too)."""
        self.hub.notify(self, content)

    def _hold(self) -> None:
        # What the member is owed already goes out before the reply, as it would
        # have without the hub's pending block.
        self.hub.settle_for(self)
        if self._held is None:
            self._held = []
            self.push = self._held.append

    def release_before_close(self) -> None:
        """The connection closes: what the hub owes it, and what was held for a
        reply that will not come, go out first."""
        if self._held is None:
            self.hub.settle_for(self)
        else:
            self._release()

    def _release(self) -> None:
        self.hub.settle_for(self)  # into the held lines, which come out in order
        held, self._held = self._held, None
        self.push = self.peer.send
        for data in held or ():
            self.peer.send(data)

    # lifecycle, driven by the connection and the hub

    def evict(self, reason: str) -> None:
        """Asked by the hub (kick, ban, name conflict): offline now, then closed."""
        self.hub.leave(self)
        if self._state is not State.CLOSING:
            self._transition(Event.EVICTED)
        self.peer.close(reason)

    def disconnected(self) -> None:
        """The connection is gone: free what it held."""
        self.release_claim()
        self.hub.leave(self)
        self._transition(Event.DISCONNECTED)

    # input

    def receive_line(self, raw: bytes) -> Pending | None:
        """Handle one framed line; a coroutine is returned when the handler must wait."""
        if self._state is State.CLOSING:
            return None
        if not self._bucket.take():
            if self._strike() and raw.strip():
                self.error(texts.RATE_LIMITED)
            return None
        self._warned = False
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
            self.settings.max_line_bytes,
        )
        if not self._bucket.take():
            self._strike()
        else:
            self._warned = False
        self.error(texts.LINE_TOO_LONG.format(limit=self.settings.max_line_bytes))

    def _strike(self) -> bool:
        """Count a request refused over the rate; True when the client should be told
        (the first refusal after an accepted request, not every one of a flood).

        Flooding is sustained refusals: ``flood_disconnect_after`` of them with no
        pause of ``flood_window_seconds`` in between, however they are paced, so a
        client that refills one token at a time is cut off too."""
        now = self._clock()
        if now - self._last_strike > self.settings.flood_window_seconds:
            self._strikes = 0
        self._last_strike = now
        self._strikes += 1
        if self._strikes == 1:  # once per episode, not once per dropped line
            log.info(
                "limit: conn=%d addr=%s user=%s over the rate limit, requests dropped",
                self.peer.conn_id,
                self.peer.address,
                self._name or "-",
            )
        if self._strikes >= self.settings.flood_disconnect_after:
            raise AbuseError(
                f"flooding: {self._strikes} requests over the rate limit"
                f" with no {self.settings.flood_window_seconds:g} s pause"
            )
        warn, self._warned = not self._warned, True
        return warn

    def dispatch(self, request: Request) -> Pending | None:
        if self._state is State.CLOSING:
            return None
        if log.isEnabledFor(logging.DEBUG):
            # The request's type only: never its fields, which hold passwords.
            log.debug(
                "request: conn=%d state=%s type=%s",
                self.peer.conn_id,
                self._state.value,
                WIRE_TYPE.get(type(request), "unknown"),
            )
        handler = HANDLERS[type(request)][_COLUMN[self._state]]
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
        problem = name_problem(name, self.settings.max_name_chars)
        if problem is not None:
            raise ClientError(problem)
        if is_reserved_name(name):
            raise ClientError(texts.NAME_RESERVED.format(name=name))

    def _check_password(self, password: str) -> None:
        if not 0 < len(password) <= self.settings.max_password_chars:
            raise ClientError(texts.PASSWORD_INVALID.format(limit=self.settings.max_password_chars))

    def on_register(self, request: Register) -> Pending | None:
        self._check_name(request.username)
        self._check_password(request.password)
        if self.hub.is_online(request.username) or not self.accounts.claim(request.username):
            self.error(texts.USERNAME_EXISTS)
            return None
        self.claimed_name = request.username
        self._hold()
        return self._register(request)

    async def _register(self, request: Register) -> None:
        try:
            outcome = await self.accounts.complete_registration(
                request.username, request.password, client=self
            )
            if outcome is RegisterOutcome.OK:
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
            self.accounts.release(self.claimed_name)
            self.claimed_name = None

    def on_login(self, request: Login) -> Pending:
        # Held now, not when the coroutine first runs: a push that arrives in
        # between must still come after the reply.
        self._hold()
        return self._login(request)

    async def _login(self, request: Login) -> None:
        try:
            outcome = await self.accounts.authenticate(
                request.username, request.password, client=self
            )
            if self._state is State.CLOSING:
                return
            banned = None
            if outcome is LoginOutcome.OK:
                banned = self.moderation.ban_of_account(request.username)
                if banned is not None:
                    outcome = LoginOutcome.BANNED
            if outcome is not LoginOutcome.OK:
                # One fixed format, matched by the shipped fail2ban filter. A login
                # refused unhashed because the hashers are busy is no guess at a
                # password: under a storm it would be thousands of lines a second.
                level = logging.DEBUG if outcome is LoginOutcome.BUSY else logging.WARNING
                log.log(
                    level,
                    "auth failure: user=%s addr=%s conn=%d reason=%s",
                    loggable(request.username),
                    self.peer.address,
                    self.peer.conn_id,
                    outcome.value,
                )
                refusal = error_reply(texts.LOGIN_FAILED)
                if banned is not None and self.said_hello:
                    # The text stays the contract's; an opted-in client learns why.
                    refusal.update(reason="banned", detail=banned)
                self.reply(refusal)
                return
            log.info(
                "login: user=%s addr=%s conn=%d",
                request.username,
                self.peer.address,
                self.peer.conn_id,
            )
            self.reply({"type": "login", "status": "ok", "username": request.username})
            self._enter_hub(request.username, Event.LOGGED_IN)
        finally:
            self._release()

    def on_chat_anonymous(self, request: Chat) -> Pending | None:
        self._enter_hub(self.hub.guest_name(request.requested_name), Event.FIRST_MESSAGE)
        log.info(
            "guest: name=%s addr=%s conn=%d",
            loggable(self._name),
            self.peer.address,
            self.peer.conn_id,
        )
        if self.said_hello:
            # An opted-in client learns the name it got (alice_2), which a legacy
            # client can only guess from the user list.
            self.reply({"type": "guest", "status": "ok", "name": self._name})
        return self.on_chat(request)

    def on_chat(self, request: Chat) -> Pending | None:
        content = request.content
        if not content.strip():
            return None  # an empty announce makes a guest but is not broadcast
        limit = self.settings.max_content_chars
        if len(content) > limit:
            raise ClientError(texts.CONTENT_TOO_LONG.format(length=len(content), limit=limit))
        moderation = self.moderation
        if request.private_to is not None:
            if moderation.state.private_restricted and moderation.refuse_private(
                self, request.private_to
            ):
                return None
            try:
                self.hub.send_private(self, request.private_to, content)
            except RecipientUnavailable as exc:
                if self.said_hello:
                    raise
                # Client family A prints an error line raw in the chat window: a
                # legacy client gets the news as a private message from Serveur.
                self.hub.notify_private(self, exc.message)
                return None
            log.debug(
                "message: conn=%d from=%s private to=%s",
                self.peer.conn_id,
                self._name,
                loggable(request.private_to),
            )
            return None
        first = content[:1]
        if first == "/" or first.isspace():
            found = moderation.command_in(self, content)
            if found is not None:
                return moderation.answer_in_chat(self, found)
        command = SLASH_COMMAND.match(content)
        if command is not None and request.channel is None:
            verb, channel = command.groups()
            if verb == "join":
                return self.hub.join_channel(self, channel, slash_command=True)
            self.hub.leave_channel(self, channel, slash_command=True)
            return None
        channel = request.channel or DEFAULT_CHANNEL
        if moderation.state.posting_restricted:
            # Membership first: slow mode must not count a post that is refused.
            channel = self.hub.member_channel(self, channel)
            if moderation.refuse_post(self, channel):
                return None
        self.hub.send_channel(self, channel, content)
        log.debug(
            "message: conn=%d from=%s channel=%s", self.peer.conn_id, self._name, loggable(channel)
        )
        return None

    def on_status(self, request: SetStatus) -> None:
        log.debug("status: conn=%d user=%s state=%s", self.peer.conn_id, self._name, request.state)
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
        self.said_hello = True
        self._features = frozenset(f for f in request.features if f in FEATURES)
        settings = self.settings
        reply: dict[str, Any] = {
            "type": "hello",
            "features": sorted(self._features),
            "available": list(FEATURES),
            "server": f"classcord/{__version__}",
            "default_channel": DEFAULT_CHANNEL,
            "role": self.role.value,
            "limits": {
                "max_line_bytes": settings.max_line_bytes,
                "max_content_chars": settings.max_content_chars,
                "max_name_chars": settings.max_name_chars,
                "rate_per_second": settings.rate_per_second,
                "rate_burst": settings.rate_burst,
            },
        }
        tls_port = self.peer.tls_port
        if tls_port is not None:
            # An STS-like hint: passwords can go through the TLS port instead.
            reply["tls"] = {"port": tls_port}
        self.reply(reply)

    def on_join(self, request: JoinChannel) -> Pending | None:
        return self.hub.join_channel(self, request.channel)

    def on_leave(self, request: LeaveChannel) -> None:
        self.hub.leave_channel(self, request.channel)

    def on_channels(self, request: ListChannels) -> None:
        self.reply(self.hub.channels_reply(request.reply_type, self if self.identified else None))

    def on_channel_history(self, request: ChannelHistory) -> Pending:
        return self.hub.channel_history(self, request.channel, request.limit)

    def on_private_history(self, request: PrivateHistory) -> Pending:
        return self.hub.private_history(self, request.with_user, request.limit)

    def refuse_private_history(self, request: PrivateHistory) -> None:
        # A guest's conversations end with the guest: they belong to no account.
        raise ClientError(texts.HISTORY_PRIVATE_NEEDS_LOGIN)

    def on_moderate(self, request: Moderate) -> Pending:
        limit = self.settings.max_content_chars
        if len(request.command) > limit:
            raise ClientError(
                texts.CONTENT_TOO_LONG.format(length=len(request.command), limit=limit)
            )
        return self._moderate(request.command)

    async def _moderate(self, command: str) -> None:
        result = await self.moderation.run_text(self, command)
        self.reply(
            {
                "type": "moderate",
                "status": "ok" if result.ok else "refused",
                # What everyone read came as its own line already.
                "lines": result.lines,
            }
        )

    def on_typing(self, request: Typing) -> None:
        state = self.moderation.state
        if state.posting_restricted and state.mute_of(self._name) is not None:
            return  # a muted user's typing would be a message of its own
        self.hub.relay_typing(self, request)

    def on_unknown(self, request: Unknown) -> None:
        log.debug("conn=%d ignored unknown type %r", self.peer.conn_id, request.type_name[:40])


Handler = Callable[[Session, Any], Pending | None]

_COLUMN: Final = {State.ANONYMOUS: 0, State.GUEST: 1, State.USER: 2}

# What each request does in each state. None: answered with "log in first".
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
    ChannelHistory: (None, Session.on_channel_history, Session.on_channel_history),
    PrivateHistory: (None, Session.refuse_private_history, Session.on_private_history),
    Typing: (None, Session.on_typing, Session.on_typing),
    Moderate: (None, Session.on_moderate, Session.on_moderate),
    Unknown: (Session.on_unknown, Session.on_unknown, Session.on_unknown),
}

if set(HANDLERS) != REQUEST_CLASSES:  # pragma: no cover - caught at import, in every test
    raise InternalError(
        f"HANDLERS and the request registry differ: {set(HANDLERS) ^ REQUEST_CLASSES}"
    )
