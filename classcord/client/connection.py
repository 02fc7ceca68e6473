"""Connect to the server, run a chat (or raw) session on the connection, close it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from dataclasses import dataclass
from typing import Final

from classcord import tls as tls_support
from classcord.client.chat import ChatClient
from classcord.client.console import Console
from classcord.client.exit_codes import EXIT_CONNECTION
from classcord.client.raw import raw_session
from classcord.client.texts import CANNOT_CONNECT
from classcord.config import Settings

# History replies hold up to 200 messages of 2,000 escaped characters: be generous.
READ_LIMIT: Final = 16 * 1024 * 1024
TLS_DEFAULT_PORT: Final = Settings.tls_port


@dataclass(frozen=True)
class TlsOptions:
    cafile: str | None
    fingerprint: str | None


async def open_session(
    host: str,
    port: int,
    console: Console,
    raw: bool = False,
    timeout: float = 15.0,
    wait: float = 1.0,
    tls: TlsOptions | None = None,
) -> int:
    """Connect and run a chat (or raw) session until the user quits or the server
    closes; returns the exit code."""
    context = tls_support.client_context(tls.cafile, tls.fingerprint) if tls else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                limit=READ_LIMIT,
                ssl=context,
                server_hostname=host if context is not None else None,
            ),
            timeout,
        )
    except ssl.SSLError as exc:
        console.warn(
            f"classcord client : {host}:{port} : {tls_support.explain_verification_error(exc)}"
        )
        return EXIT_CONNECTION
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
    if tls is not None and tls.fingerprint:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        problem = tls_support.check_pin(der, tls.fingerprint)
        if problem is not None:
            console.warn(f"classcord client : {host}:{port} : certificat refusé : {problem}")
            writer.close()
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
