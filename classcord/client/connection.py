"""Connect to the server, run a chat (or raw) session on the connection, close it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Final

from classcord.client.chat import ChatClient
from classcord.client.console import Console
from classcord.client.exit_codes import EXIT_CONNECTION
from classcord.client.raw import raw_session
from classcord.client.texts import CANNOT_CONNECT

# History replies hold up to 200 messages of 2,000 escaped characters: be generous.
READ_LIMIT: Final = 16 * 1024 * 1024


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
