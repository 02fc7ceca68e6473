"""Admin control through a Unix socket in the data folder, never a network port.

The socket is created owner-only (0600), so only the account running the server
(or root) can use it: inside the container that is the app user, reached with
``docker compose exec classcord python -m classcord admin who``.
One JSON request line per connection, one JSON reply line. This is the server side;
the ``classcord admin`` command is ``admin_client.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classcord.errors import AdminError, SettingsError
from classcord.moderation import parse_duration, parse_role
from classcord.protocol import has_lone_surrogate

if TYPE_CHECKING:
    from classcord.server import ClassCordServer

log = logging.getLogger("classcord.admin")

# The classroom controls, with the words of the chat commands (PROTOCOL.md).
MODERATION_COMMANDS = (
    "mute",
    "unmute",
    "silence",
    "slow",
    "private",
    "delete",
    "kick",
    "ban",
    "unban",
    "announce",
)
# Those whose first argument is a user's name.
NAMED_COMMANDS = frozenset({"mute", "unmute", "delete", "kick", "ban", "unban"})
COMMANDS = (
    "who",
    "say",
    *MODERATION_COMMANDS,
    "role",
    "modlog",
    "unlock",
    "stats",
    "channels",
    "health",
    "reload-tls",
    "shutdown",
)


class AdminService:
    """Executes admin commands against a running server."""

    def __init__(self, server: ClassCordServer) -> None:
        self.server = server

    async def execute(self, request: dict[str, Any]) -> Any:
        command = request.get("command")
        args = request.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise AdminError("args must be a list of strings")
        if any(has_lone_surrogate(arg) for arg in args):
            # SQLite cannot store it: a reason holding one would block every save.
            raise AdminError("an argument holds half of a UTF-16 surrogate pair")
        if command == "who":
            return self.who()
        if command == "say":
            text = " ".join(args).strip()
            if not text:
                raise AdminError("usage: say TEXT")
            return {"notified": self.server.hub.notify_all(text)}
        if command in MODERATION_COMMANDS:
            return await self._moderate(command, args)
        if command == "role":
            return await self._role(args)
        if command == "modlog":
            return await self._modlog(args)
        if command == "stats":
            return self.server.stats()
        if command == "channels":
            hub = self.server.hub
            return [
                {"channel": name, "members": sorted(s.name for s in hub.channel_members(name))}
                for name in hub.channel_names()
            ]
        if command == "health":
            from classcord.health import server_health

            return await server_health(self.server, _timeout_arg(args))
        if command == "unlock":
            return self._unlock(args)
        if command == "reload-tls":
            try:
                return {"fingerprint": self.server.reload_tls()}
            except SettingsError as exc:
                raise AdminError(f"{exc}; the old certificate stays in use") from None
        if command == "shutdown":
            self.server.request_shutdown("admin shutdown")
            return {"shutting_down": True}
        raise AdminError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")

    def who(self) -> list[dict[str, Any]]:
        sessions = sorted(
            (c.session for c in self.server.connections), key=lambda s: s.peer.conn_id
        )
        rows = []
        for session in sessions:
            entry = self.server.hub.online(session.name) if session.identified else None
            rows.append(
                {
                    "conn": session.peer.conn_id,
                    "name": session.name,
                    "kind": session.state.value,
                    "role": session.role.value,
                    "state": entry.state if entry else "",
                    "address": session.peer.address,
                    "channels": sorted(session.channels),
                    "since": datetime.fromtimestamp(session.connected_at).isoformat(
                        timespec="seconds"
                    ),
                    "queued_bytes": session.peer.queued_bytes(),
                }
            )
        return rows

    async def _moderate(self, command: str, args: list[str]) -> dict[str, Any]:
        """A chat command run as ``admin``, who may act on every role."""
        words = list(args)
        if command in NAMED_COMMANDS and words:
            # The name is one shell word; the chat syntax quotes it when it has spaces.
            if '"' in words[0]:
                raise AdminError("a name cannot hold a double quote")
            if not words[0] or any(c.isspace() for c in words[0]):
                words[0] = f'"{words[0]}"'
        moderation = self.server.moderation
        online = self.server.hub.online(args[0]) if args else None
        connections = len(online.members) if online is not None else 0
        result = await moderation.run_text(None, " ".join([command, *words]))
        if not result.ok:
            raise AdminError(" ".join(result.lines))
        reply: dict[str, Any] = {"done": result.everything()}
        if command in {"kick", "ban"}:
            reply["closed"] = connections
        if command in {"ban", "unban"}:
            reply.update(user=args[0], banned=command == "ban")
        return reply

    async def _role(self, args: list[str]) -> dict[str, Any]:
        role = parse_role(args[1]) if len(args) == 2 else None
        if role is None:
            raise AdminError("usage: role USER teacher|moderator|student")
        result = await self.server.moderation.admin_set_role(args[0], role)
        if not result.ok:
            raise AdminError(" ".join(result.lines))
        return {"user": args[0], "role": role.value, "done": result.everything()}

    async def _modlog(self, args: list[str]) -> list[dict[str, Any]]:
        """``modlog [--since WHEN] [N]``: WHEN is an ISO date or time, or a duration
        back from now (``2h``, ``7d``)."""
        moderation = self.server.moderation
        since: float | None = None
        rest = list(args)
        if rest[:1] == ["--since"]:
            if len(rest) < 2:
                raise AdminError("usage: modlog [--since WHEN] [N]")
            since = _since(rest[1], moderation.clock())
            rest = rest[2:]
        limit = moderation.limits.max_modlog_entries
        if rest:
            word = rest[0]
            if len(rest) > 1 or not (word.isascii() and word.isdigit()) or len(word) > 9:
                raise AdminError("usage: modlog [--since WHEN] [N]")
            limit = max(1, int(word))
        entries = await moderation.log_entries(since, limit)
        return [entry.as_json(moderation.tz) for entry in entries]

    def _unlock(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise AdminError("usage: unlock USER")
        cleared = self.server.accounts.unlock(args[0])
        log.warning("admin: unlocked user=%s (%d lockouts cleared)", args[0], cleared)
        return {"user": args[0], "cleared": cleared}


def _since(text: str, now: float) -> float:
    back = parse_duration(text, 10 * 366 * 86_400)
    if back is not None:
        return now - back
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise AdminError(
            f"--since {text!r}: give a date (2026-12-01), a time (2026-12-01T14:00)"
            " or a duration back from now (2h, 7d)"
        ) from None


def _timeout_arg(args: list[str]) -> float | None:
    if not args:
        return None
    try:
        return float(args[0])
    except ValueError:
        raise AdminError("usage: health [TIMEOUT_SECONDS]") from None


class AdminListener:
    """The listening admin socket; closing it also removes its file."""

    def __init__(self, unix_server: asyncio.AbstractServer, path: Path) -> None:
        self._unix_server = unix_server
        self.path = path

    def close(self) -> None:
        self._unix_server.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


async def start_admin_socket(server: ClassCordServer, path: Path) -> AdminListener | None:
    """Listen on ``path`` (0600); None, with a warning, where that is impossible."""
    service = AdminService(server)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = _peer_uid(writer)
            if uid is not None and uid not in {0, os.geteuid()}:
                # The socket is 0600 already; this holds even if its mode was changed.
                log.warning("admin: refused a connection from uid %d", uid)
                return
            line = await reader.readline()
            reply: dict[str, Any]
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise AdminError("request must be a JSON object")
                reply = {"ok": True, "result": await service.execute(request)}
            except (AdminError, ValueError) as exc:
                reply = {"ok": False, "error": str(exc)}
            writer.write(json.dumps(reply, ensure_ascii=True).encode() + b"\n")
            await writer.drain()
        except Exception:
            log.exception("admin request failed")
        finally:
            writer.close()

    if not _claim_socket_path(path):
        log.warning("admin socket %s is used by another server: admin disabled", path)
        return None
    old_umask = os.umask(0o177)
    try:
        unix_server = await asyncio.start_unix_server(
            handle, path, limit=server.settings.admin_max_request_bytes
        )
    except OSError as exc:
        log.warning("admin socket %s unavailable (%s): admin disabled", path, exc)
        return None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    return AdminListener(unix_server, path)


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _claim_socket_path(path: Path) -> bool:
    """False when a live server answers there; a file left by a crash is removed,
    and so is one another user planted (the data folder is ours: a second server of
    ours is impossible while we hold its lock)."""
    with contextlib.suppress(FileNotFoundError):
        owner = path.lstat().st_uid
        if owner != os.geteuid():
            log.warning("admin socket %s belonged to uid %d: removed", path, owner)
            path.unlink()
            return True
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return True
    return False
