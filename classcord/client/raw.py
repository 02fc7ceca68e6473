"""``--raw``: netcat with a pretty printer, for looking at the protocol itself."""

from __future__ import annotations

import asyncio
import contextlib

from classcord.client.console import Console
from classcord.client.display import pretty
from classcord.client.exit_codes import EXIT_CONNECTION, EXIT_OK
from classcord.client.texts import CLOSED_BY_SERVER, ERROR


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
