"""The IRC dialect of the load generator: just enough IRC for the fan-out job.

The C daemons measured beside ClassCord (InspIRCd, ngircd) are driven through the
same clients as ClassCord; only the bytes differ. A client registers (``NICK`` and
``USER``, then waits for ``001``), joins the one room every client is in, and
sends ``PRIVMSG #room`` lines carrying the JSON clients' payload
(``~b~<sender> <seq> <send time>~``), so that delivery counts and latency are
computed by the same code. A channel message is not echoed to its sender, like a
ClassCord global message, so the expected number of deliveries is the same too.

After the handshake nothing is parsed, only counted (see ``client``). The settle
phase's round trip is ``PING``/``PONG`` with the server; a server's own ``PING`` is
answered with a ``PONG``. ``NAMES #room`` stands in for ClassCord's ``users``.
Clients told not to join the room (``bench idle --no-room``) are only registered;
their roster is the user count of ``LUSERS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from classcord.bench.client import (
    DELIVERY,
    ERROR,
    MESSAGE_MARK,
    PONG,
    SERVER_PING,
    BenchClient,
    Dialect,
    HandshakeError,
)

# The generated configurations name the daemon this; the dialect counts its error
# numerics by that prefix (a numeric can't be told from a payload's digits otherwise).
SERVER_NAME: Final = "bench.irc"
ROOM: Final = "#room"
PING_COOKIE: Final = "bench"
RPL_WELCOME: Final = "001"
RPL_NAMREPLY: Final = "353"
RPL_ENDOFNAMES: Final = "366"
RPL_LUSERCLIENT: Final = "251"
# "There are 9 users and 1 invisible on 1 servers" (InspIRCd counts invisible users
# apart; ngircd says "and 0 services" there).
LUSERS_COUNTS: Final = re.compile(r"There are (\d+) users and (\d+) (\w+)")
_SERVER_PREFIX: Final = f":{SERVER_NAME} ".encode()


@dataclass(frozen=True)
class Message:
    """One parsed IRC line: ``:prefix COMMAND param param :trailing``."""

    prefix: str
    command: str
    params: tuple[str, ...]


def parse_line(line: bytes) -> Message:
    """Parse one line (its CR LF optional). Lenient: bytes that are not UTF-8 are
    replaced, and a line with no command parses to an empty command."""
    text = line.decode("utf-8", errors="replace").rstrip("\r\n")
    prefix = ""
    if text.startswith(":"):
        prefix, _, text = text[1:].partition(" ")
    head, has_trailing, trailing = text.partition(" :")
    words = head.split()
    if not words:
        return Message(prefix, "", ())
    params = [*words[1:], trailing] if has_trailing else words[1:]
    return Message(prefix, words[0].upper(), tuple(params))


def is_error(message: Message) -> bool:
    """Error numerics (4xx, 5xx) and the server's ``ERROR`` before it closes."""
    command = message.command
    return command == "ERROR" or (len(command) == 3 and command.isdigit() and command[0] in "45")


def registration_lines(nick: str) -> bytes:
    return f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode()


def join_line(room: str = ROOM) -> bytes:
    return f"JOIN {room}\r\n".encode()


def pong_for(message: Message) -> bytes:
    """The answer to a ``PING`` read during the handshake (same token)."""
    token = message.params[-1] if message.params else SERVER_NAME
    return f"PONG :{token}\r\n".encode()


async def _wait_for(client: BenchClient, command: str, seconds: float) -> Message:
    """Read lines until ``command`` arrives; an error line on the way fails the
    handshake, a ``PING`` is answered, anything else (others joining) is skipped."""
    while True:
        message = parse_line(await client.read_line(seconds))
        if message.command == command:
            return message
        if message.command == "PING":
            client.write(pong_for(message))
        elif is_error(message):
            raise HandshakeError(f"{message.command} {' '.join(message.params)}"[:200])


async def irc_handshake(client: BenchClient, auth: str, password: str, seconds: float) -> None:
    """Register and join the room. IRC has no accounts: ``auth`` and ``password``
    are ClassCord's and ignored here (the nick is the client's name)."""
    del auth, password
    client.write(registration_lines(client.name))
    await _wait_for(client, RPL_WELCOME, seconds)
    client.logged_in = True
    if client.joins_room:
        client.write(join_line())
        await _wait_for(client, RPL_ENDOFNAMES, seconds)


def lusers_count(message: Message) -> int:
    """The users a ``251`` reply counts, invisible ones included."""
    match = LUSERS_COUNTS.search(message.params[-1] if message.params else "")
    if match is None:
        raise HandshakeError(f"unexpected LUSERS reply: {message.params}")
    invisible = int(match.group(2)) if match.group(3) == "invisible" else 0
    return int(match.group(1)) + invisible


async def irc_roster(client: BenchClient, seconds: float) -> int:
    """``NAMES #room``: the number of nicks listed before the end of the list; or,
    for a client in no room, the number of users ``LUSERS`` counts."""
    if not client.joins_room:
        client.write(b"LUSERS\r\n")
        return lusers_count(await _wait_for(client, RPL_LUSERCLIENT, seconds))
    client.write(f"NAMES {ROOM}\r\n".encode())
    names = 0
    while True:
        message = parse_line(await client.read_line(seconds))
        if message.command == RPL_NAMREPLY and message.params:
            names += len(message.params[-1].split())
        elif message.command == RPL_ENDOFNAMES:
            return names
        elif message.command == "PING":
            client.write(pong_for(message))
        elif is_error(message):
            raise HandshakeError(f"NAMES refused: {message.command}")


def irc_departure(name: str, guest: bool) -> bytes:
    """A dropped client's ``QUIT`` as its channel's members see it. Only its own
    lines start with ``:name!``, and after it joined it sends nothing else."""
    del guest
    return f":{name}!".encode()


IRC_DIALECT: Final = Dialect(
    name="irc",
    marks=(
        (MESSAGE_MARK, DELIVERY),
        (_SERVER_PREFIX + b"PONG ", PONG),
        (_SERVER_PREFIX + b"4", ERROR),
        (_SERVER_PREFIX + b"5", ERROR),
        (b"ERROR :", ERROR),
        (b"PING :", SERVER_PING),
    ),
    message_format=b"PRIVMSG " + ROOM.encode() + b" :~b~%d %d %d~\r\n",
    ping_line=f"PING {PING_COOKIE}\r\n".encode(),
    pong_line=f"PONG :{SERVER_NAME}\r\n".encode(),
    handshake=irc_handshake,
    roster=irc_roster,
    departure=irc_departure,
)
