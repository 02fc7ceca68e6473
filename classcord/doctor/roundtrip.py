"""The real test of a hop: connect, send ClassCord's ``ping`` and wait for ``pong``."""

from __future__ import annotations

import errno
import json
import socket
import time

from classcord.doctor.facts import Outcome, RoundTrip, Target

MAX_REPLY_BYTES = 65536


def parse_target(text: str, default_port: int) -> Target:
    """``10.0.108.90``, ``10.0.108.90:12345``, ``[::1]:12345`` or a host name."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        return Target(host, int(port) if port else default_port)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return Target(host, int(port))
    return Target(text, default_port)


def ping(sock: socket.socket, timeout: float) -> bytes:
    """Send ``ping`` on a connected socket (plain or TLS); the reply's first bytes."""
    sock.settimeout(timeout)
    sock.sendall(b'{"type":"ping"}\n')
    data = b""
    while b"\n" not in data and len(data) < MAX_REPLY_BYTES:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def round_trip(target: Target, timeout: float, local: bool = False) -> RoundTrip:
    """Connect, send ``{"type":"ping"}`` and wait for ``{"type": "pong"}``."""
    started = time.monotonic()

    def result(outcome: Outcome, detail: str = "") -> RoundTrip:
        return RoundTrip(target, outcome, detail, time.monotonic() - started, local)

    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except ConnectionRefusedError:
        return result(Outcome.REFUSED, "connection refused")
    except TimeoutError:
        return result(Outcome.TIMEOUT, f"no answer to the connection within {timeout:g} s")
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return result(Outcome.UNREACHABLE, exc.strerror or str(exc))
        if isinstance(exc, socket.gaierror):
            return result(Outcome.UNREACHABLE, f"unknown host name: {exc}")
        return result(Outcome.ERROR, str(exc))
    with sock:
        try:
            data = ping(sock, timeout)
        except TimeoutError:
            return result(Outcome.NO_REPLY, f"connected, but no reply within {timeout:g} s")
        except ConnectionResetError:
            return result(Outcome.CLOSED, "connected, then reset")
        except OSError as exc:
            return result(Outcome.ERROR, str(exc))
    if not data:
        return result(Outcome.CLOSED, "connected, then closed without a reply")
    line = data.split(b"\n", 1)[0]
    try:
        reply = json.loads(line)
    except ValueError:
        return result(Outcome.BAD_REPLY, f"not JSON: {line[:60]!r}")
    if isinstance(reply, dict) and reply.get("type") == "pong":
        return result(Outcome.PONG, "pong")
    return result(Outcome.BAD_REPLY, f"unexpected reply: {line[:80].decode('utf-8', 'replace')}")
