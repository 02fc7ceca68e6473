"""The chat session: the hello, then each typed line run as a command.

The client asks for the extensions it can show; against a server without them (a
student's) it falls back to what every server does: login, guests, messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from classcord.client.commands import STATUS_ALIASES, Command, history_request, parse_input
from classcord.client.console import Console
from classcord.client.display import describe, error_line, speech_line
from classcord.client.escape import clean, text_of
from classcord.client.exit_codes import EXIT_CONNECTION, EXIT_OK
from classcord.client.guest import guest_name, user_names
from classcord.client.server_link import ServerLink
from classcord.client.texts import (
    ALREADY_IDENTIFIED,
    BACK_TO,
    CLOSED_BY_SERVER,
    CONTENT_TOO_LONG,
    GOODBYE,
    GUEST_AS,
    GUEST_RENAMED,
    GUEST_UNKNOWN,
    HELP,
    JOINED,
    LEFT,
    LOG_IN_FIRST,
    LOGGED_IN,
    LOGIN_HINT,
    NO_MODERATION,
    PASSWORD_AGAIN,
    PASSWORD_MISMATCH,
    PASSWORD_MISSING,
    PASSWORD_PROMPT,
    REGISTER_HINT,
    REGISTERED,
    STATUS_SET,
    STATUS_SHORT,
    STATUS_UNKNOWN,
    UNKNOWN_COMMAND,
    USAGE,
    USAGES,
    WELCOME,
    WELCOME_LEGACY,
)
from classcord.client.timestamps import clock
from classcord.protocol import DEFAULT_CHANNEL, SLASH_COMMAND, STATUS_VALUES, name_key
from classcord.texts import GUEST_NAME, LOGIN_FAILED

# Extensions this client displays; it never shows typing, so it does not ask for it.
FEATURES: Final = ("system", "history_on_join", "moderation")
HELLO_TIMEOUT: Final = 3.0


@dataclass
class ChatState:
    name: str = ""
    role: str = "anonymous"  # anonymous, guest or user
    channel: str = DEFAULT_CHANNEL
    channels: set[str] = field(default_factory=lambda: {DEFAULT_CHANNEL})
    limits: dict[str, Any] = field(default_factory=dict)


class ChatClient:
    """One chat session over a connection: the ``ServerLink`` shows what the server
    sends; the command loop reads the console and runs each command."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        console: Console,
        timeout: float = 15.0,
    ) -> None:
        self._console = console
        self.state = ChatState()
        self._link = ServerLink(reader, writer, console, timeout, self._show)
        self._features: frozenset[str] = frozenset()

    def _show(self, obj: dict[str, Any]) -> None:
        state = self.state
        for text in describe(obj, state.name, state.channels, state.channel):
            self._console.show(text)

    def _note(self, text: str) -> None:
        self._console.show(f"*** {text}")

    def _error(self, text: str) -> None:
        self._console.show(error_line(text))

    # the session

    async def run(self) -> int:
        link = self._link
        link.start()
        hello = await link.ask(
            {"type": "hello", "features": list(FEATURES)}, {"hello"}, True, HELLO_TIMEOUT
        )
        address = link.address()
        if hello is not None and hello.get("type") == "hello":
            link.extensions = True
            granted = hello.get("features")
            self._features = frozenset(granted) if isinstance(granted, list) else frozenset()
            limits = hello.get("limits")
            self.state.limits = limits if isinstance(limits, dict) else {}
            rate = self.state.limits.get("rate_per_second")
            burst = self.state.limits.get("rate_burst")
            if isinstance(rate, int | float) and isinstance(burst, int):
                link.pacer.configure(float(rate), burst)
            server = clean(text_of(hello.get("server")) or "ClassCord")
            self._note(WELCOME.format(address=address, server=server))
        elif hello is not None or link.closed.is_set():
            # An error instead: the server refused us (full) and is closing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.closed.wait(), HELLO_TIMEOUT)
            self._console.warn(CLOSED_BY_SERVER)
            return EXIT_CONNECTION
        else:
            self._note(WELCOME_LEGACY.format(address=address))
        return await self._command_loop()

    def _prompt(self) -> str:
        state = self.state
        return f"{state.channel} {state.name}> " if state.name else "> "

    async def _next_line(self) -> str | None:
        """The next typed line; None at end of input. Raises ConnectionError when the
        server closes the connection first."""
        read = asyncio.ensure_future(self._console.read_line(self._prompt()))
        closed = asyncio.ensure_future(self._link.closed.wait())
        try:
            await asyncio.wait({read, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if read.done():
            return read.result()
        read.cancel()
        raise ConnectionError(CLOSED_BY_SERVER)

    async def _command_loop(self) -> int:
        while True:
            try:
                line = await self._next_line()
            except ConnectionError:
                self._console.warn(CLOSED_BY_SERVER)
                return EXIT_CONNECTION
            command = parse_input(line) if line is not None else Command("quit")
            if command is None:
                continue
            if command.name == "quit":
                await self._link.barrier()
                self._link.quitting = True
                self._note(GOODBYE)
                return EXIT_OK
            await self._execute(command)
            if self._link.closed.is_set():
                self._console.warn(CLOSED_BY_SERVER)
                return EXIT_CONNECTION

    async def _execute(self, command: Command) -> None:
        handlers: dict[str, Callable[[tuple[str, ...]], Any]] = {
            "say": self._say,
            "msg": self._msg,
            "login": self._login,
            "register": self._register,
            "guest": self._guest,
            "status": self._status,
            "join": self._join,
            "leave": self._leave,
            "channels": self._channels,
            "users": self._users,
            "history": self._history,
            "help": self._help,
            "moderate": self._moderate,
        }
        handler = handlers.get(command.name)
        if handler is None:
            self._error(UNKNOWN_COMMAND.format(name=clean(command.args[0])))
            return
        await handler(command.args)

    # the commands

    def _usage(self, command: str) -> None:
        self._error(USAGE.format(usage=USAGES[command]))

    def _identified(self) -> bool:
        if self.state.role == "anonymous":
            self._error(LOG_IN_FIRST)
            return False
        return True

    def _fits(self, content: str) -> bool:
        limit = self.state.limits.get("max_content_chars")
        if isinstance(limit, int) and len(content) > limit:
            self._error(CONTENT_TOO_LONG.format(length=len(content), limit=limit))
            return False
        return True

    def _echo(self, tag: str, content: str) -> None:
        self._console.show(speech_line(clock(None), tag, clean(self.state.name), content))

    async def _say(self, args: tuple[str, ...]) -> None:
        (content,) = args
        if not self._identified() or not self._fits(content):
            return
        channel = self.state.channel
        slash = SLASH_COMMAND.match(content)
        if slash is not None and channel == DEFAULT_CHANNEL:
            # The server would take it as the command: do it properly.
            verb, target = slash.groups()
            await (self._join if verb == "join" else self._leave)((target,))
            return
        payload: dict[str, Any] = {"type": "message", "subtype": "global", "content": content}
        if channel != DEFAULT_CHANNEL:
            payload["channel"] = channel
        if await self._link.send(payload):
            self._echo("" if channel == DEFAULT_CHANNEL else f"{channel} ", content)

    async def _msg(self, args: tuple[str, ...]) -> None:
        if len(args) != 2:
            self._usage("msg")
            return
        to, content = args
        if not self._identified() or not self._fits(content):
            return
        payload = {"type": "message", "subtype": "private", "to": to, "content": content}
        if await self._link.send(payload):
            self._echo(f"[privé → {clean(to)}] ", content)

    async def _password(self, command: str, args: tuple[str, ...]) -> tuple[str, str] | None:
        if not args or len(args) > 2:
            self._usage(command)
            return None
        if len(args) == 2:
            return args[0], args[1]
        if not self._console.interactive:
            self._error(PASSWORD_MISSING.format(command=command))
            return None
        password = await self._console.read_password(PASSWORD_PROMPT)
        if not password:
            return None
        if command == "register":
            again = await self._console.read_password(PASSWORD_AGAIN)
            if again != password:
                self._error(PASSWORD_MISMATCH)
                return None
        return args[0], password

    async def _login(self, args: tuple[str, ...]) -> None:
        credentials = await self._password("login", args)
        if credentials is not None:
            await self._log_in(*credentials)

    async def _log_in(self, name: str, password: str) -> None:
        payload = {"type": "login", "username": name, "password": password}
        reply = await self._link.request(payload, {"login"})
        if reply is None:
            return
        if reply.get("type") == "error":
            if reply.get("message") == LOGIN_FAILED:
                self._note(LOGIN_HINT)
            return
        state = self.state
        state.name = text_of(reply.get("username")) or name
        state.role = "user"
        state.channel = DEFAULT_CHANNEL
        state.channels = {DEFAULT_CHANNEL}
        self._note(LOGGED_IN.format(name=clean(state.name)))

    async def _register(self, args: tuple[str, ...]) -> None:
        credentials = await self._password("register", args)
        if credentials is None:
            return
        name, password = credentials
        payload = {"type": "register", "username": name, "password": password}
        reply = await self._link.request(payload, {"register"})
        if reply is None:
            return
        if reply.get("type") == "error":
            # Matched as a substring of the server's texts.USERNAME_EXISTS.
            if "already exists" in text_of(reply.get("message")):
                self._note(REGISTER_HINT)
            return
        self._note(REGISTERED.format(name=clean(name)))
        await self._log_in(name, password)

    async def _guest(self, args: tuple[str, ...]) -> None:
        if len(args) > 1:
            self._usage("guest")
            return
        if self.state.role != "anonymous":
            self._error(ALREADY_IDENTIFIED.format(name=clean(self.state.name)))
            return
        requested = args[0] if args else None
        before = await self._link.request({"type": "users"}, {"users"}, quiet=True)
        if before is None or before.get("type") == "error":
            return
        # An empty global message makes a guest and is not broadcast (client B1 does it).
        announce: dict[str, Any] = {"type": "message", "subtype": "global", "content": ""}
        if requested:
            announce["from"] = requested
        if not await self._link.send(announce):
            return
        after = await self._link.request({"type": "users"}, {"users"}, quiet=True)
        self.state.role = "guest"
        self.state.name = requested or GUEST_NAME
        if after is None or after.get("type") == "error":
            return
        name = guest_name(requested, user_names(before), user_names(after))
        shown_request = clean(requested or GUEST_NAME)
        if name is None:
            self._note(GUEST_UNKNOWN.format(requested=shown_request))
            return
        self.state.name = name
        if name_key(name) == name_key(requested or GUEST_NAME):
            self._note(GUEST_AS.format(name=clean(name)))
        else:
            self._note(GUEST_RENAMED.format(name=clean(name), requested=shown_request))

    async def _status(self, args: tuple[str, ...]) -> None:
        if len(args) != 1:
            self._usage("status")
            return
        state = STATUS_ALIASES.get(args[0].lower())
        if state is None:
            allowed = ", ".join(STATUS_VALUES)
            self._error(STATUS_UNKNOWN.format(state=clean(args[0]), allowed=allowed))
            return
        if not self._identified():
            return
        if await self._link.send({"type": "status", "state": state}):
            self._note(STATUS_SET.format(state=STATUS_SHORT[state]))

    async def _join(self, args: tuple[str, ...]) -> None:
        if len(args) != 1:
            self._usage("join")
            return
        if not self._identified():
            return
        link = self._link
        history = link.follow_up({"history"}) if "history_on_join" in self._features else None
        payload = {"type": "join_channel", "channel": args[0]}
        reply = await link.request(payload, {"join_channel"}, then=history)
        if reply is None or reply.get("type") != "join_channel":
            return
        channel = text_of(reply.get("channel")) or args[0]
        self.state.channels.add(channel)
        self.state.channel = channel
        self._note(JOINED.format(channel=clean(channel), members=reply.get("members", "?")))
        if history is not None:  # shown after the join, before anything typed next
            recent = await link.wait(history.future)
            if recent is not None and recent.get("type") == "history":
                self._show(recent)

    async def _leave(self, args: tuple[str, ...]) -> None:
        if len(args) > 1:
            self._usage("leave")
            return
        if not self._identified():
            return
        target = args[0] if args else self.state.channel
        payload = {"type": "leave_channel", "channel": target}
        reply = await self._link.request(payload, {"leave_channel"})
        if reply is None or reply.get("type") != "leave_channel":
            return
        channel = text_of(reply.get("channel")) or target
        self.state.channels.discard(channel)
        if self.state.channel == channel:
            self.state.channel = DEFAULT_CHANNEL
            self._note(BACK_TO.format(channel=clean(channel), current=DEFAULT_CHANNEL))
        else:
            self._note(LEFT.format(channel=clean(channel)))

    async def _channels(self, args: tuple[str, ...]) -> None:
        await self._link.request({"type": "channels"}, {"channels"})

    async def _users(self, args: tuple[str, ...]) -> None:
        await self._link.request({"type": "users"}, {"users"})

    async def _history(self, args: tuple[str, ...]) -> None:
        request = history_request(args)
        if request is None:
            self._usage("history")
            return
        if not self._identified():
            return
        if "channel" not in request and "with" not in request:
            request["channel"] = self.state.channel
        await self._link.request(request, {"history"})

    async def _moderate(self, args: tuple[str, ...]) -> None:
        """A classroom control (``/mute lea 10m``, or ``/mod who``) as a ``moderate``
        request, to a server that offers them."""
        (command,) = args
        if not self._identified():
            return
        if "moderation" not in self._features:
            # An older server would broadcast "/mute ..." to the class as a message.
            self._error(NO_MODERATION)
            return
        await self._link.send({"type": "moderate", "command": command})

    async def _help(self, args: tuple[str, ...]) -> None:
        for line in HELP.splitlines():
            self._console.show(line)

    async def close(self) -> None:
        await self._link.close()
