"""Stop and start: SIGTERM within its deadline with every client told, and a restart
on the same port right after."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

from classcord import texts
from tests.support.clients import LineClient

from .conftest import Spawn

SHUTDOWN_TIMEOUT_S = 2.0
# Exit may take the deadline plus the final flush and interpreter exit.
EXIT_MARGIN_S = 3.0


def _is_notice(line: dict[str, object]) -> bool:
    return (
        line.get("type") == "message"
        and line.get("subtype") == "global"
        and line.get("from") == texts.SERVER_NAME
        and line.get("content") == texts.SHUTDOWN_NOTICE
        and isinstance(line.get("timestamp"), str)
        and "T" in str(line.get("timestamp"))
    )


async def test_sigterm_notifies_everyone_and_exits_within_the_deadline(spawn: Spawn) -> None:
    server = spawn(
        "--shutdown-timeout", str(SHUTDOWN_TIMEOUT_S),
        "--rate-per-second", "100000", "--rate-burst", "100000",
        "--send-queue-bytes", str(64 * 1024 * 1024),
    )  # fmt: skip
    alice, bob = await LineClient.connect(server.port), await LineClient.connect(server.port)
    await alice.sign_in("alice")
    await bob.sign_in("bob")
    guest = await LineClient.connect(server.port)
    await guest.send({"type": "message", "subtype": "global", "content": "", "from": "g"})
    await guest.ping_ms()
    anonymous = await LineClient.connect(server.port)
    await anonymous.ping_ms()

    # A logged-in reader that stopped reading, with megabytes waiting for it: it can
    # never take the notice, and must not hold the shutdown past its deadline.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    stalled = LineClient(*await asyncio.open_connection(sock=sock))
    await stalled.sign_in("stalled")
    stalled.writer.transport.pause_reading()  # type: ignore[attr-defined]
    big = "x" * 1900
    for _ in range(4000):  # ~8 MB towards "stalled", more than the kernel buffers hold
        alice.writer.write(
            b'{"type": "message", "subtype": "global", "content": "%s"}\n' % big.encode()
        )
    await alice.writer.drain()
    await alice.ping_ms(30)  # the server has handled the burst

    started = time.monotonic()
    server.signal(signal.SIGTERM)
    for client in (alice, bob, guest, anonymous):
        lines = await client.lines_until_closed(SHUTDOWN_TIMEOUT_S + EXIT_MARGIN_S)
        assert lines is not None, "not closed within the deadline"
        assert lines, "closed without the notice"
        assert _is_notice(lines[-1]), lines[-3:]
    assert server.wait(SHUTDOWN_TIMEOUT_S + EXIT_MARGIN_S) == 0
    assert time.monotonic() - started < SHUTDOWN_TIMEOUT_S + EXIT_MARGIN_S
    for client in (alice, bob, guest, anonymous, stalled):
        await client.close()


async def test_restart_on_the_same_port_right_after_a_stop(spawn: Spawn) -> None:
    first = spawn()
    port = first.port
    clients = [await LineClient.connect(port) for _ in range(5)]
    await clients[0].login("alice")
    for client in clients:
        await client.ping_ms()
    first.signal(signal.SIGTERM)  # server-side closes leave TIME_WAIT sockets on the port
    assert first.wait(10) == 0
    for client in clients:
        await client.close()
    second = spawn(port=port)  # raises if the port is refused ("address in use")
    assert second.port == port
    client = await LineClient.connect(port)
    await client.sign_in("alice")
    await client.close()
    second.signal(signal.SIGTERM)
    assert second.wait(10) == 0
    third = spawn(port=port)
    assert third.port == port
