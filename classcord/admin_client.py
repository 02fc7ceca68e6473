"""The ``classcord admin`` command: one request to the running server's admin socket.

See ``admin.py`` for the server side and why the socket is owner-only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any

from classcord.admin import COMMANDS
from classcord.config import settings_from
from classcord.errors import ImpostorSocket
from classcord.storage import describe_owner


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("command", choices=COMMANDS, help="what to do")
    parser.add_argument(
        "args",
        nargs="*",
        help=(
            "USER [REASON] for kick, USER [DURATION] [REASON] for mute and ban, USER for"
            " unmute/unban/unlock, USER ROLE for role, TEXT for say and announce; the"
            " other classroom controls take the words of their chat command (see README)"
        ),
    )
    parser.add_argument(
        "--since",
        default=None,
        help="modlog: from this date or time (2026-12-01, 2026-12-01T14:00) or this long ago (2h)",
    )
    parser.add_argument("--data-dir", default=None, help="data folder [CLASSCORD_DATA_DIR or data]")
    parser.add_argument(
        "--socket", type=Path, default=None, help="admin socket [DATA_DIR/admin.sock]"
    )
    parser.add_argument("--json", action="store_true", help="print the raw JSON reply")


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (Linux SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def trusted_uids() -> set[int]:
    return {0, os.geteuid()}


def request(path: Path, command: str, args: list[str], timeout: float = 10.0) -> dict[str, Any]:
    """One request. Refuses a socket another user owns or serves (a squatter in a
    shared folder would otherwise receive our commands and answer what it likes)."""
    owner = path.lstat().st_uid
    if owner not in trusted_uids():
        raise ImpostorSocket(
            f"admin socket {path} belongs to user {describe_owner(owner)}, not to you"
            f" ({describe_owner(os.geteuid())}) or root: refusing to talk to it (another"
            " user may have planted it); stop that process and restart the server"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        if hasattr(socket, "SO_PEERCRED") and peer_uid(sock) not in trusted_uids():
            raise ImpostorSocket(
                f"the process behind admin socket {path} runs as user"
                f" {describe_owner(peer_uid(sock))}: refusing to talk to it"
            )
        sock.sendall(json.dumps({"command": command, "args": args}).encode() + b"\n")
        with sock.makefile("rb") as reader:
            reply = json.loads(reader.readline())
    if not isinstance(reply, dict):
        raise ValueError("unexpected reply from the admin socket")
    return reply


def run(args: argparse.Namespace) -> int:
    path = args.socket or settings_from({"data_dir": args.data_dir}).admin_socket_path
    words = list(args.args)
    if args.since is not None:
        words = ["--since", args.since, *words]
    try:
        reply = request(path, args.command, words)
    except ImpostorSocket as exc:
        print(f"classcord admin: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(
            f"classcord admin: cannot reach the server at {path}: {exc}\n"
            "Is it running, with the same data folder, and are you the user running it?",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    elif not reply.get("ok"):
        print(f"classcord admin: {reply.get('error')}", file=sys.stderr)
    else:
        print(_human(args.command, reply["result"]))
    return 0 if reply.get("ok") else 1


def _human(command: str, result: Any) -> str:
    if command == "who":
        if not result:
            return "nobody is connected"
        lines = [f"{'conn':>5}  {'name':<20} {'kind':<9} {'state':<9} {'address':<15} since"]
        for row in result:
            lines.append(
                f"{row['conn']:>5}  {row['name'] or '-':<20} {row['kind']:<9} "
                f"{row['state'] or '-':<9} {row['address']:<15} {row['since']}  "
                f"{' '.join(row['channels'])}"
            )
        return "\n".join(lines)
    if command == "channels":
        return "\n".join(
            f"{row['channel']:<20} {len(row['members']):>4}  {', '.join(row['members'])}"
            for row in result
        )
    if command == "modlog":
        if not result:
            return "the moderation log is empty"
        return "\n".join(
            " ".join(
                f"{key}={row[key] if row[key] not in (None, '') else '-'}"
                for key in ("time", "actor", "action", "target", "until", "reason", "channel")
            )
            for row in result
        )
    if isinstance(result, dict) and "done" in result:
        return "\n".join(result["done"])
    if isinstance(result, dict):
        return "\n".join(f"{key}: {value}" for key, value in result.items())
    return str(result)
