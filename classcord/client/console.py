"""The terminal: what the client needs from one, and the real one on stdin/stdout.

Blocking terminal reads run on one daemon thread, so the event loop never waits on
stdin (pipes and plain files included, which ``connect_read_pipe`` cannot watch).
Lines that arrive while the user types are printed above the prompt, and the
half-typed line is redrawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


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
        if self._held is not None:  # a password prompt is up: shown once it is done
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


def save_terminal_mode() -> list[Any] | None:
    """The terminal's settings, to restore them if we exit while readline has it."""
    try:
        import termios
    except ImportError:  # not on Windows
        return None
    try:
        return termios.tcgetattr(sys.stdin.fileno())
    except (termios.error, OSError, ValueError):  # not a terminal
        return None


def restore_terminal_mode(saved: list[Any] | None) -> None:
    if saved is None:
        return
    import termios

    with contextlib.suppress(termios.error, OSError, ValueError):
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
