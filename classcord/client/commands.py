"""What the user types, parsed: slash commands, plain text, and their arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# What /status accepts (English, as on the wire, or French) and the state it means.
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


# The classroom controls: sent to the server as typed (PROTOCOL.md).
MODERATION_VERBS: Final = frozenset(
    {"mute", "unmute", "silence", "slow", "private", "delete", "kick", "ban", "unban"}
    | {"announce", "modlog", "role", "aide"}
)


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
    if verb in MODERATION_VERBS:
        return Command("moderate", (f"{verb} {rest}".strip(),))
    if verb == "mod" and rest.strip():
        # /mod who: the moderation /who (the client's own /who lists the users).
        return Command("moderate", (rest.strip(),))
    return Command("unknown", (verb,))


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
