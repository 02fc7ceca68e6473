"""Terminal chat client: ``python3 -m classcord client --host H --port P [--raw]``.

For students without a graphical client: slash commands (``/login``, ``/guest``,
``/msg``, ``/join``...) and plain text to the current channel, with incoming messages
shown while you type. ``--raw`` is a netcat that pretty-prints what the server sends.

Three layers, like the server: pure helpers (command parsing, display text, pacing)
with no I/O; a console that does the blocking terminal reads on one daemon thread, so
the event loop never waits on stdin (pipes and plain files included, which
``connect_read_pipe`` cannot watch); and the asyncio client that talks to the server.
The client's own texts are French, like the server's notices.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import queue
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

from classcord.protocol import DEFAULT_CHANNEL, STATUS_VALUES, name_key

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 12345
PORT_VARIABLE: Final = "CLASSCORD_PORT"
# Extensions this client displays; it never shows typing, so it does not ask for it.
FEATURES: Final = ("system", "history_on_join")
SERVER_NAME: Final = "Serveur"
# History replies hold up to 200 messages of 2,000 escaped characters: be generous.
READ_LIMIT: Final = 16 * 1024 * 1024
HELLO_TIMEOUT: Final = 3.0
# Stay under the server's rate limit (announced in the hello reply) when a file is piped.
PACE_RATE_SHARE: Final = 0.9
PACE_BURST_SHARE: Final = 0.75
EXIT_OK: Final = 0
EXIT_CONNECTION: Final = 1
EXIT_INTERRUPTED: Final = 130

STATUS_ALIASES: Final = {
    "online": "online",
    "en-ligne": "online",
    "enligne": "online",
    "away": "away",
    "absent": "away",
    "absente": "away",
    "dnd": "dnd",
    "occupe": "dnd",
    "occupé": "dnd",
    "occupee": "dnd",
    "occupée": "dnd",
    "invisible": "invisible",
}
STATUS_WORDS: Final = {
    "online": "est en ligne",
    "away": "est absent(e)",
    "dnd": "est occupé(e) (ne pas déranger)",
    "invisible": "est invisible",
    "offline": "est hors ligne",
}
STATUS_SHORT: Final = {
    "online": "en ligne",
    "away": "absent(e)",
    "dnd": "occupé(e)",
    "invisible": "invisible",
    "offline": "hors ligne",
}
# The server reads a global message "/join #x" or "/leave #x" as that command.
SERVER_SLASH: Final = re.compile(r"^/(join|leave)\s+(\S+)\s*$")
UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})
BIDI_CONTROLS: Final = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

HELP: Final = """\
Commandes :
  /register NOM               créer un compte (mot de passe demandé), puis se connecter
  /login NOM                  se connecter (mot de passe demandé)
  /guest [NOM]                entrer comme invité (un suffixe est ajouté si le nom est pris)
  TEXTE                       envoyer au salon courant
  //TEXTE                     envoyer un texte qui commence par /
  /msg NOM TEXTE              message privé (nom avec espaces : /msg "Jean D" TEXTE)
  /status ÉTAT                online, away, dnd ou invisible (ou en-ligne, absent, occupé)
  /join #SALON                rejoindre un salon ; il devient le salon courant
  /leave [#SALON]             quitter un salon (par défaut : le salon courant)
  /channels                   liste des salons
  /users                      qui est en ligne
  /history [#SALON|NOM] [N]   les N derniers messages d'un salon ou d'une conversation privée
  /help                       cette aide
  /quit                       quitter
Sans terminal (commandes lues dans un fichier ou un tube), le mot de passe suit le nom :
  /login NOM MOTDEPASSE"""
WELCOME: Final = (
    "Connecté à {address} ({server}). Identifiez-vous : /login NOM, /register NOM "
    "ou /guest [NOM]. /help pour l'aide."
)
WELCOME_LEGACY: Final = (
    "Connecté à {address} (serveur sans extensions : ni salons ni historique). "
    "Identifiez-vous : /login NOM, /register NOM ou /guest [NOM]."
)
CANNOT_CONNECT: Final = (
    "classcord client : impossible de se connecter à {address} ({reason}). "
    "Le serveur est-il lancé ? Vérifiez avec : python3 -m classcord healthcheck "
    "--host {host} --port {port}"
)
CLOSED_BY_SERVER: Final = "Connexion fermée par le serveur."
GOODBYE: Final = "Déconnecté."
NO_REPLY: Final = "Pas de réponse du serveur en {timeout:g} s."
LOG_IN_FIRST: Final = "Identifiez-vous d'abord : /login NOM, /register NOM ou /guest [NOM]."
ALREADY_IDENTIFIED: Final = "Vous êtes déjà connecté(e) sous le nom {name}."
UNKNOWN_COMMAND: Final = "Commande inconnue : /{name} (tapez /help)."
USAGE: Final = "Usage : {usage}"
# Prompts and messages about passwords, not passwords.
PASSWORD_PROMPT: Final = "Mot de passe : "  # noqa: S105
PASSWORD_AGAIN: Final = "Mot de passe (encore) : "  # noqa: S105
PASSWORD_MISMATCH: Final = "Les deux mots de passe diffèrent : compte non créé."  # noqa: S105
PASSWORD_MISSING: Final = "Mot de passe manquant : hors d'un terminal, /{command} NOM MOTDEPASSE."  # noqa: S105
LOGGED_IN: Final = "Connecté(e) en tant que {name}."
LOGIN_HINT: Final = (
    "Nom ou mot de passe incorrect (après plusieurs échecs, le compte est bloqué une minute)."
)
REGISTERED: Final = "Compte {name} créé."
REGISTER_HINT: Final = "Ce nom est déjà pris : choisissez-en un autre."
GUEST_AS: Final = "Vous êtes invité(e) sous le nom {name}."
GUEST_RENAMED: Final = "Vous êtes invité(e) sous le nom {name} ({requested} était pris)."
GUEST_UNKNOWN: Final = (
    "Vous êtes invité(e), mais le serveur n'a pas dit sous quel nom (demandé : {requested})."
)
CONTENT_TOO_LONG: Final = "Message trop long ({length} caractères, maximum {limit}) : non envoyé."
STATUS_UNKNOWN: Final = "Statut inconnu : {state}. Valeurs possibles : {allowed}."
STATUS_SET: Final = "Votre statut : {state}."
JOINED: Final = "Vous avez rejoint {channel} ({members} membre(s)) : vos messages y vont."
LEFT: Final = "Vous avez quitté {channel}."
BACK_TO: Final = "Vous avez quitté {channel} : retour dans {current}."
ERROR: Final = "!!! Erreur : {message}"
ONLINE: Final = "En ligne ({count}) : {names}."
NOBODY: Final = "Personne en ligne."
CHANNELS: Final = "Salons : {channels}."
HISTORY_HEAD: Final = "Historique de {what} ({count} message(s)) :"
HISTORY_EMPTY: Final = "Aucun message dans l'historique de {what}."
HISTORY_TAIL: Final = "Fin de l'historique."
YOU: Final = "vous"
NON_JSON: Final = "(ligne non JSON) {line}"

T = TypeVar("T")


# --- pure helpers ------------------------------------------------------------


def clean(text: str) -> str:
    """Make remote text safe for a terminal: control, bidi and separator characters
    are shown escaped, so nobody can move the cursor, recolour or reorder a screen."""
    if text.isprintable():
        return text
    return "".join(
        ch.encode("unicode_escape", errors="backslashreplace").decode("ascii")
        if ch in BIDI_CONTROLS or unicodedata.category(ch) in UNSAFE_CATEGORIES
        else ch
        for ch in text
    )


def clean_block(text: str, indent: int) -> str:
    """Clean each line of a multi-line text; continuation lines are indented."""
    lines = [clean(line) for line in text.split("\n")]
    return ("\n" + " " * indent).join(lines)


def clock(timestamp: object, now: datetime | None = None, with_date: bool = False) -> str:
    """``HH:MM:SS`` from the server's ISO timestamp (local time when missing or odd).

    With ``with_date`` (history), a timestamp from another day also shows its date."""
    now = now or datetime.now()
    if isinstance(timestamp, str):
        try:
            when = datetime.fromisoformat(timestamp)
        except ValueError:
            time_part = timestamp.partition("T")[2][:8]
            return time_part if re.fullmatch(r"\d\d:\d\d:\d\d", time_part) else timestamp[:19]
        if with_date and when.date() != now.date():
            return when.strftime("%Y-%m-%d %H:%M:%S")
        return when.strftime("%H:%M:%S")
    return now.strftime("%H:%M:%S")


def text_of(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else json.dumps(value)


@dataclass(frozen=True, slots=True)
class Command:
    """One line typed by the user: ``say`` for plain text, else the slash command."""

    name: str
    args: tuple[str, ...] = ()


def _first_word(rest: str) -> tuple[str, str]:
    """Split off one word, or one ``"quoted name"`` (names may contain spaces)."""
    rest = rest.lstrip()
    if rest.startswith('"'):
        closing = rest.find('"', 1)
        if closing > 0:
            return rest[1:closing], rest[closing + 1 :].lstrip()
    word, _, remainder = rest.partition(" ")
    return word, remainder.lstrip()


def parse_input(line: str) -> Command | None:
    """Parse one typed line; None for a blank one. Unknown commands parse too (as
    ``unknown``), so the caller can say so."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    if line.startswith("//"):
        return Command("say", (line[1:],))
    if not line.startswith("/"):
        return Command("say", (line,))
    verb, _, rest = line[1:].partition(" ")
    verb = verb.lower()
    aliases = {"exit": "quit", "q": "quit", "w": "msg", "who": "users"}
    verb = aliases.get(verb, verb)
    if verb == "msg":
        to, content = _first_word(rest)
        return Command(verb, (to, content) if to and content else ())
    if verb in {"login", "register", "guest"}:
        name, password = _first_word(rest)
        args = tuple(part for part in (name, password) if part)
        return Command(verb, args)
    if verb in {"status", "join", "leave", "history", "channels", "users", "help", "quit"}:
        return Command(verb, tuple(rest.split()))
    return Command("unknown", (verb,))


USAGES: Final = {
    "msg": "/msg NOM TEXTE",
    "login": "/login NOM [MOTDEPASSE]",
    "register": "/register NOM [MOTDEPASSE]",
    "guest": "/guest [NOM]",
    "status": "/status online|away|dnd|invisible",
    "join": "/join #SALON",
    "leave": "/leave [#SALON]",
    "history": "/history [#SALON|NOM] [N]",
}


def history_request(args: tuple[str, ...]) -> dict[str, Any] | None:
    """``/history [#chan|USER] [N]`` as a request; None when the arguments are wrong."""
    request: dict[str, Any] = {"type": "history"}
    rest = list(args)
    if rest and rest[-1].isdigit():
        request["limit"] = int(rest.pop())
    if len(rest) > 1:
        return None
    if rest:
        key = "channel" if rest[0].startswith("#") else "with"
        request[key] = rest[0]
    return request


def guest_name(requested: str | None, before: Iterable[str], after: Iterable[str]) -> str | None:
    """The name the server gave us as a guest, from ``users`` before and after.

    The server answers nothing to the announce that makes a guest, and adds ``_2``,
    ``_3``... to a name that is taken, so the new name in the list is ours. None
    when it cannot be told (several matching guests arrived at the same moment)."""
    base = requested.strip() if requested and requested.strip() else "invité"
    old = {name_key(name) for name in before}
    new = [name for name in after if name_key(name) not in old]
    if base in new or any(name_key(name) == name_key(base) for name in new):
        return next(name for name in new if name_key(name) == name_key(base))
    candidates = []
    for name in new:
        match = re.fullmatch(r"(.*)_(\d+)", name)
        if match and name_key(base).startswith(name_key(match.group(1))):
            candidates.append(name)
    if len(candidates) == 1:
        return candidates[0]
    if len(new) == 1 and not candidates:
        return new[0]  # the requested name was invalid and replaced
    return None


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
        prefix = f"[{stamp}] *** "
        return prefix + clean_block(content, len(prefix))
    else:
        tag = f"{clean(channel)} " if isinstance(channel, str) and channel else ""
    prefix = f"[{stamp}] {tag}<{sender}> "
    return prefix + clean_block(content, len(prefix))


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
    if kind == "message":
        return [_message_line(obj, me)]
    if kind == "system":
        prefix = f"[{clock(obj.get('timestamp'))}] *** "
        return [prefix + clean_block(text_of(obj.get("content")), len(prefix))]
    if kind == "status":
        user = clean(text_of(obj.get("user")) or "?")
        state = text_of(obj.get("state"))
        words = STATUS_WORDS.get(state, f"a le statut {clean(state)}")
        return [f"[{clock(None)}] *** {user} {words}."]
    if kind == "error":
        message = text_of(obj.get("message") or obj.get("error")) or "?"
        return [f"[{clock(None)}] " + ERROR.format(message=clean_block(message, 13))]
    if kind in {"users", "list_users", "userlist"}:
        return [_users_line(obj, me)]
    if kind in {"channels", "list_channels", "channel_list"}:
        return [_channels_line(obj, joined, current)]
    if kind == "history":
        return _history_lines(obj, me)
    if kind in {"pong", "typing", "hello", "login", "register", "join_channel", "leave_channel"}:
        return []  # shown by the client, which knows what it asked for
    return [f"[?] {clean(json.dumps(obj, ensure_ascii=False))}"]


def pretty(line: bytes) -> str:
    """``--raw`` display: indented JSON, or the line itself when it is not JSON."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        obj = json.loads(text)
    except ValueError:
        return NON_JSON.format(line=clean(text))
    return clean_block(json.dumps(obj, indent=2, ensure_ascii=False), 0)


class Pacer:
    """A token bucket that makes the sender wait instead of hitting the server's limit."""

    def __init__(
        self, rate: float, burst: int, clock_fn: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock_fn
        self.configure(rate, burst)
        self._tokens = float(self._burst)
        self._stamp = clock_fn()

    def configure(self, rate: float, burst: int) -> None:
        self._rate = max(rate * PACE_RATE_SHARE, 0.001)
        self._burst = max(int(burst * PACE_BURST_SHARE), 1)

    def reserve(self) -> float:
        """Take one token; returns how long to wait before sending (0: now)."""
        now = self._clock()
        self._tokens = min(float(self._burst), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    async def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


# --- the terminal ------------------------------------------------------------------


class Console(Protocol):
    """What the client needs from a terminal (tests use a scripted one)."""

    @property
    def interactive(self) -> bool: ...

    async def read_line(self, prompt: str) -> str | None: ...

    async def read_bytes(self) -> bytes | None: ...

    async def read_password(self, prompt: str) -> str | None: ...

    def show(self, text: str) -> None: ...

    def warn(self, text: str) -> None: ...


Job = tuple[Callable[[], Any], asyncio.Future[Any]]


class TerminalConsole:
    """stdin and stdout. Blocking reads run one at a time on a daemon thread, asked for
    by the event loop, so a piped script is read only as fast as it is executed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fd = sys.stdin.fileno()
        self._interactive = sys.stdin.isatty()
        self._redraw = self._interactive and sys.stdout.isatty()
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._buffer = b""
        self._prompt: str | None = None
        self._held: list[str] | None = None
        self._readline: Any = None
        if self._interactive:
            with contextlib.suppress(ImportError):
                import readline  # line editing and history for input()

                self._readline = readline
        threading.Thread(target=self._work, name="classcord-stdin", daemon=True).start()

    @property
    def interactive(self) -> bool:
        return self._interactive

    def _work(self) -> None:
        while True:
            job, future = self._jobs.get()
            try:
                result = job()
            except BaseException as exc:  # handed to the loop, which owns the future
                self._post(future, None, exc)
            else:
                self._post(future, result, None)

    def _post(self, future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
        def settle() -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(settle)

    async def _call(self, job: Callable[[], T]) -> T:
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((job, future))
        return await future

    def _input(self, prompt: str) -> str | None:
        self._prompt = prompt
        try:
            return input(prompt)
        except EOFError:  # Ctrl+D: end the prompt's line
            print(flush=True)
            return None
        finally:
            self._prompt = None

    def _read_fd_line(self) -> bytes | None:
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader's
        # lock can make the interpreter abort at exit.
        while b"\n" not in self._buffer:
            chunk = os.read(self._fd, 65536)
            if not chunk:
                line, self._buffer = self._buffer, b""
                return line or None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    async def read_line(self, prompt: str) -> str | None:
        if self._interactive:
            return await self._call(lambda: self._input(prompt))
        line = await self._call(self._read_fd_line)
        return None if line is None else line.decode("utf-8", errors="replace").rstrip("\r")

    async def read_bytes(self) -> bytes | None:
        if self._interactive:
            text = await self._call(lambda: self._input(""))
            return None if text is None else text.encode("utf-8")
        return await self._call(self._read_fd_line)

    async def read_password(self, prompt: str) -> str | None:
        import getpass

        def ask() -> str | None:
            try:
                return getpass.getpass(prompt)
            except EOFError:
                return None

        self._held = []
        try:
            return await self._call(ask)
        finally:
            held, self._held = self._held, None
            for text in held:
                self.show(text)

    def show(self, text: str) -> None:
        if self._held is not None:  # not in the middle of a password prompt
            self._held.append(text)
            return
        prompt = self._prompt
        if self._redraw and prompt is not None:
            typed = self._readline.get_line_buffer() if self._readline is not None else ""
            sys.stdout.write(f"\r\x1b[2K{text}\n{prompt}{typed}")
            sys.stdout.flush()
            return
        print(text, flush=True)

    def warn(self, text: str) -> None:
        sys.stdout.flush()
        print(text, file=sys.stderr, flush=True)


# --- the chat client ---------------------------------------------------------------


@dataclass
class Waiter:
    """A reply the command loop waits for; ``then``, a second reply due right after
    it, is waited for from the same read (both can arrive in one segment)."""

    types: frozenset[str]
    future: asyncio.Future[dict[str, Any] | None]
    quiet: bool
    then: Waiter | None = None


@dataclass
class ChatState:
    name: str = ""
    role: str = "anonymous"  # anonymous, guest or user
    channel: str = DEFAULT_CHANNEL
    channels: set[str] = field(default_factory=lambda: {DEFAULT_CHANNEL})
    limits: dict[str, Any] = field(default_factory=dict)


class ChatClient:
    """One connection: a task shows what the server sends; the command loop reads the
    console and waits for the reply of each request that has one, so a piped script
    runs in order (``/login`` is answered before the next line is sent)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        console: Console,
        timeout: float = 15.0,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._console = console
        self._timeout = timeout
        self.state = ChatState()
        self._pacer = Pacer(20.0, 60)
        self._waiter: Waiter | None = None
        self._closed = asyncio.Event()
        self._quitting = False
        self._extensions = False
        self._features: frozenset[str] = frozenset()
        self._reader_task: asyncio.Task[None] | None = None

    # server -> screen

    async def _read_server(self) -> None:
        try:
            while line := await self._reader.readline():
                self._on_line(line)
        except (ConnectionError, ValueError) as exc:  # ValueError: line over READ_LIMIT
            if not self._quitting:
                self._console.show(f"[{clock(None)}] " + ERROR.format(message=str(exc)))
        finally:
            self._closed.set()
            self._settle(None)

    def _settle(self, reply: dict[str, Any] | None) -> bool:
        waiter, self._waiter = self._waiter, None
        if waiter is None or waiter.future.done():
            return False
        waiter.future.set_result(reply)
        if waiter.then is not None:
            if reply is not None and reply.get("type") != "error":
                self._waiter = waiter.then
            else:
                waiter.then.future.set_result(None)
        return waiter.quiet and (reply is None or reply.get("type") != "error")

    def _on_line(self, line: bytes) -> None:
        try:
            obj = json.loads(line)
        except ValueError:
            self._console.show(pretty(line))
            return
        if not isinstance(obj, dict):
            self._console.show(f"[?] {clean(json.dumps(obj, ensure_ascii=False))}")
            return
        quiet = False
        waiter = self._waiter
        if waiter is not None and obj.get("type") in waiter.types:
            quiet = self._settle(obj)
        if not quiet:
            self._show(obj)

    def _show(self, obj: dict[str, Any]) -> None:
        state = self.state
        for text in describe(obj, state.name, state.channels, state.channel):
            self._console.show(text)

    def _note(self, text: str) -> None:
        self._console.show(f"*** {text}")

    def _error(self, text: str) -> None:
        self._console.show(f"[{clock(None)}] " + ERROR.format(message=text))

    # screen -> server

    async def _send(self, payload: dict[str, Any]) -> bool:
        if self._closed.is_set():
            return False
        await self._pacer.wait()
        try:
            self._writer.write(json.dumps(payload, ensure_ascii=True).encode("ascii") + b"\n")
            await self._writer.drain()
        except ConnectionError:
            return False
        return True

    async def _ask(
        self,
        payload: dict[str, Any],
        types: Iterable[str],
        quiet: bool = False,
        timeout: float | None = None,
        then: Waiter | None = None,
    ) -> dict[str, Any] | None:
        """Send a request and wait for its reply or an error line. None: no reply."""
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._waiter = Waiter(frozenset(types) | {"error"}, future, quiet, then)
        if not await self._send(payload):
            self._settle(None)
        return await self._wait(future, timeout)

    async def _wait(
        self, future: asyncio.Future[dict[str, Any] | None], timeout: float | None = None
    ) -> dict[str, Any] | None:
        limit = self._timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            if self._waiter is not None and self._waiter.future is future:
                self._waiter = None
            if not self._closed.is_set() and timeout is None:
                self._error(NO_REPLY.format(timeout=limit))
            return None

    def _follow_up(self, types: Iterable[str]) -> Waiter:
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        return Waiter(frozenset(types) | {"error"}, future, quiet=True)

    async def _request(
        self,
        payload: dict[str, Any],
        types: Iterable[str],
        quiet: bool = False,
        then: Waiter | None = None,
    ) -> dict[str, Any] | None:
        """Like ``_ask``, after a ping: an error line still due for an earlier message
        (unknown recipient...) is shown before, never taken for this reply."""
        await self._barrier()
        return await self._ask(payload, types, quiet, then=then)

    async def _barrier(self) -> None:
        if self._extensions:
            await self._ask({"type": "ping"}, {"pong"}, quiet=True)

    # the session

    async def run(self) -> int:
        self._reader_task = asyncio.get_running_loop().create_task(self._read_server())
        hello = await self._ask(
            {"type": "hello", "features": list(FEATURES)}, {"hello"}, True, HELLO_TIMEOUT
        )
        address = self._address()
        if hello is not None and hello.get("type") == "hello":
            self._extensions = True
            granted = hello.get("features")
            self._features = frozenset(granted) if isinstance(granted, list) else frozenset()
            limits = hello.get("limits")
            self.state.limits = limits if isinstance(limits, dict) else {}
            rate = self.state.limits.get("rate_per_second")
            burst = self.state.limits.get("rate_burst")
            if isinstance(rate, int | float) and isinstance(burst, int):
                self._pacer.configure(float(rate), burst)
            server = clean(text_of(hello.get("server")) or "ClassCord")
            self._note(WELCOME.format(address=address, server=server))
        elif hello is not None or self._closed.is_set():
            # An error instead: the server refused us (full) and is closing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), HELLO_TIMEOUT)
            self._console.warn(CLOSED_BY_SERVER)
            return EXIT_CONNECTION
        else:
            self._note(WELCOME_LEGACY.format(address=address))
        return await self._command_loop()

    def _address(self) -> str:
        peer = self._writer.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"{peer[0]}:{peer[1]}"
        return "?"

    def _prompt(self) -> str:
        state = self.state
        return f"{state.channel} {state.name}> " if state.name else "> "

    async def _next_line(self) -> str | None:
        """The next typed line; None at end of input. Raises ConnectionError when the
        server closes the connection first."""
        read = asyncio.ensure_future(self._console.read_line(self._prompt()))
        closed = asyncio.ensure_future(self._closed.wait())
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
                await self._barrier()
                self._quitting = True
                self._note(GOODBYE)
                return EXIT_OK
            await self._execute(command)
            if self._closed.is_set():
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
        }
        handler = handlers.get(command.name)
        if handler is None:
            self._error(UNKNOWN_COMMAND.format(name=clean(command.args[0])))
            return
        await handler(command.args)

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
        prefix = f"[{clock(None)}] {tag}<{clean(self.state.name)}> "
        self._console.show(prefix + clean_block(content, len(prefix)))

    async def _say(self, args: tuple[str, ...]) -> None:
        (content,) = args
        if not self._identified() or not self._fits(content):
            return
        channel = self.state.channel
        slash = SERVER_SLASH.match(content)
        if slash is not None and channel == DEFAULT_CHANNEL:
            # The server would take it as the command: do it properly.
            verb, target = slash.groups()
            await (self._join if verb == "join" else self._leave)((target,))
            return
        payload: dict[str, Any] = {"type": "message", "subtype": "global", "content": content}
        if channel != DEFAULT_CHANNEL:
            payload["channel"] = channel
        if await self._send(payload):
            self._echo("" if channel == DEFAULT_CHANNEL else f"{channel} ", content)

    async def _msg(self, args: tuple[str, ...]) -> None:
        if len(args) != 2:
            self._usage("msg")
            return
        to, content = args
        if not self._identified() or not self._fits(content):
            return
        payload = {"type": "message", "subtype": "private", "to": to, "content": content}
        if await self._send(payload):
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
        reply = await self._request(payload, {"login"})
        if reply is None:
            return
        if reply.get("type") == "error":
            if reply.get("message") == "Login failed.":
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
        reply = await self._request(payload, {"register"})
        if reply is None:
            return
        if reply.get("type") == "error":
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
        before = await self._request({"type": "users"}, {"users"}, quiet=True)
        if before is None or before.get("type") == "error":
            return
        # An empty global message makes a guest and is not broadcast (client B1 does it).
        announce: dict[str, Any] = {"type": "message", "subtype": "global", "content": ""}
        if requested:
            announce["from"] = requested
        if not await self._send(announce):
            return
        after = await self._request({"type": "users"}, {"users"}, quiet=True)
        self.state.role = "guest"
        self.state.name = requested or "invité"
        if after is None or after.get("type") == "error":
            return
        name = guest_name(requested, _names(before), _names(after))
        shown_request = clean(requested or "invité")
        if name is None:
            self._note(GUEST_UNKNOWN.format(requested=shown_request))
            return
        self.state.name = name
        if name_key(name) == name_key(requested or "invité"):
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
        if await self._send({"type": "status", "state": state}):
            self._note(STATUS_SET.format(state=STATUS_SHORT[state]))

    async def _join(self, args: tuple[str, ...]) -> None:
        if len(args) != 1:
            self._usage("join")
            return
        if not self._identified():
            return
        history = self._follow_up({"history"}) if "history_on_join" in self._features else None
        payload = {"type": "join_channel", "channel": args[0]}
        reply = await self._request(payload, {"join_channel"}, then=history)
        if reply is None or reply.get("type") != "join_channel":
            return
        channel = text_of(reply.get("channel")) or args[0]
        self.state.channels.add(channel)
        self.state.channel = channel
        self._note(JOINED.format(channel=clean(channel), members=reply.get("members", "?")))
        if history is not None:  # shown after the join, before anything typed next
            recent = await self._wait(history.future)
            if recent is not None and recent.get("type") == "history":
                self._show(recent)

    async def _leave(self, args: tuple[str, ...]) -> None:
        if len(args) > 1:
            self._usage("leave")
            return
        if not self._identified():
            return
        target = args[0] if args else self.state.channel
        reply = await self._request({"type": "leave_channel", "channel": target}, {"leave_channel"})
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
        await self._request({"type": "channels"}, {"channels"})

    async def _users(self, args: tuple[str, ...]) -> None:
        await self._request({"type": "users"}, {"users"})

    async def _history(self, args: tuple[str, ...]) -> None:
        request = history_request(args)
        if request is None:
            self._usage("history")
            return
        if not self._identified():
            return
        if "channel" not in request and "with" not in request:
            request["channel"] = self.state.channel
        await self._request(request, {"history"})

    async def _help(self, args: tuple[str, ...]) -> None:
        for line in HELP.splitlines():
            self._console.show(line)

    async def close(self) -> None:
        self._quitting = True
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task


def _names(reply: Mapping[str, Any]) -> list[str]:
    users = reply.get("users")
    return [user for user in users if isinstance(user, str)] if isinstance(users, list) else []


# --- raw mode --------------------------------------------------------------------


async def raw_session(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    console: Console,
    wait: float,
) -> int:
    """netcat with a pretty printer: input lines go out as they are; after the end of
    input, what the server still sends is shown until it has been quiet ``wait`` s."""
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    last_line = loop.time()

    async def receive() -> None:
        nonlocal last_line
        try:
            while line := await reader.readline():
                last_line = loop.time()
                console.show(pretty(line))
        except (ConnectionError, ValueError) as exc:
            console.warn(ERROR.format(message=str(exc)))
        finally:
            closed.set()

    receiver = loop.create_task(receive())
    try:
        while not closed.is_set():
            read = asyncio.ensure_future(console.read_bytes())
            closed_wait = asyncio.ensure_future(closed.wait())
            await asyncio.wait({read, closed_wait}, return_when=asyncio.FIRST_COMPLETED)
            closed_wait.cancel()
            if not read.done():
                read.cancel()
                break
            line = read.result()
            if line is None:
                last_line = max(last_line, loop.time())
                while not closed.is_set() and (left := last_line + wait - loop.time()) > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), left)
                return EXIT_OK
            try:
                writer.write(line.removesuffix(b"\n") + b"\n")
                await writer.drain()
            except ConnectionError:
                break
        console.warn(CLOSED_BY_SERVER)
        return EXIT_CONNECTION
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver


# --- entry points --------------------------------------------------------------------


async def open_session(
    host: str,
    port: int,
    console: Console,
    raw: bool = False,
    timeout: float = 15.0,
    wait: float = 1.0,
) -> int:
    """Connect and run a chat (or raw) session until the user quits or the server
    closes; returns the exit code."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=READ_LIMIT), timeout
        )
    except (OSError, TimeoutError) as exc:
        errno = exc.errno if isinstance(exc, OSError) else None
        reason = os.strerror(errno) if errno else str(exc)
        address = f"{host}:{port}"
        console.warn(
            CANNOT_CONNECT.format(
                address=address, reason=reason or "délai dépassé", host=host, port=port
            )
        )
        return EXIT_CONNECTION
    if raw:
        try:
            return await raw_session(reader, writer, console, wait)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    client = ChatClient(reader, writer, console, timeout)
    try:
        return await client.run()
    finally:
        await client.close()


def _default_port() -> int:
    raw = os.environ.get(PORT_VARIABLE, "")
    return int(raw) if raw.isdigit() else DEFAULT_PORT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Client de discussion en terminal. Tapez /help une fois connecté. "
        "Les commandes peuvent aussi venir d'un fichier : "
        "printf '/guest bob\\nbonjour\\n/quit\\n' | python3 -m classcord client"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"adresse du serveur [{DEFAULT_HOST}]")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port du serveur [{PORT_VARIABLE} ou {DEFAULT_PORT}]",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="comme netcat : chaque ligne tapée part telle quelle, chaque ligne reçue "
        "est affichée en JSON indenté",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="secondes d'attente de la connexion et des réponses [15]",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=1.0,
        help="avec --raw, après la fin de l'entrée : fermer quand le serveur s'est tu "
        "pendant ce nombre de secondes [1]",
    )


def run(args: argparse.Namespace) -> int:
    port = args.port if args.port is not None else _default_port()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    saved = _terminal_mode()

    async def main() -> int:
        console = TerminalConsole(asyncio.get_running_loop())
        return await open_session(args.host, port, console, args.raw, args.timeout, args.wait)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _restore_terminal(saved)


def _terminal_mode() -> list[Any] | None:
    """The terminal's settings, to restore them if we exit while readline has it."""
    try:
        import termios
    except ImportError:  # not on Windows
        return None
    try:
        return termios.tcgetattr(sys.stdin.fileno())
    except (termios.error, OSError, ValueError):  # not a terminal
        return None


def _restore_terminal(saved: list[Any] | None) -> None:
    if saved is None:
        return
    import termios

    with contextlib.suppress(termios.error, OSError, ValueError):
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
