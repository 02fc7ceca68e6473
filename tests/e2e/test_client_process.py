"""The terminal client as a user runs it: ``python3 -m classcord client`` against the
real server process."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from classcord import admin_client
from tests.support.clients import LineClient
from tests.support.process import ServerProcess, refused_port

Step = str | Callable[[], Awaitable[object]]


# --- the real processes --------------------------------------------------------------


@pytest.fixture
def running(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "data").start()
    yield process
    process.kill()


async def run_client(port: int, stdin: bytes, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "classcord",
        "client",
        "--port",
        str(port),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode is not None
    return process.returncode, out.decode("utf-8"), err.decode("utf-8")


async def test_piped_guest_session_end_to_end(running: ServerProcess) -> None:
    watcher = await LineClient.connect(running.port)
    await watcher.account("alice")
    code, out, err = await run_client(running.port, b"/guest bob\nhello\n/quit\n")
    assert (code, err) == (0, "")
    assert "Vous êtes invité(e) sous le nom bob." in out
    assert "] <bob> hello" in out
    assert out.rstrip().endswith("*** Déconnecté.")
    assert (await watcher.recv())["user"] == "bob"
    message = await watcher.recv()
    assert (message["from"], message["content"], message["subtype"]) == ("bob", "hello", "global")
    await watcher.close()


async def test_end_of_input_quits_after_the_last_replies(running: ServerProcess) -> None:
    script = "/register zoé pw\n/join #dev\ncafé ☕\n/history #dev\n".encode()
    code, out, _ = await run_client(running.port, script)
    assert code == 0
    assert "*** Historique de #dev (1 message(s)) :" in out
    assert "#dev <zoé> café ☕" in out


async def test_a_teacher_moderates_from_the_terminal_client(running: ServerProcess) -> None:
    teacher, lea = await LineClient.connect(running.port), await LineClient.connect(running.port)
    await teacher.account("prof")
    await teacher.close()
    await lea.account("lea")
    socket_path = running.data_path / "admin.sock"
    reply = await asyncio.to_thread(admin_client.request, socket_path, "role", ["prof", "teacher"])
    assert reply["ok"], reply
    script = b"/login prof secret\n/mute lea 10m bavardages\n/mod who\n/ban lea\n"
    code, out, err = await run_client(running.port, script)
    assert (code, err) == (0, "")
    assert "*** lea est en sourdine jusqu" in out  # the typed event's text
    assert "*** lea (élève, online), en sourdine jusqu" in out  # /mod who
    assert "*** lea a été banni." in out
    told = [(await lea.recv_type("message"))["content"] for _ in range(3)]
    assert told[0] == "prof est maintenant professeur."
    assert told[1].startswith("lea est en sourdine jusqu")
    assert await lea.closed()  # banned: her connection is closed
    await lea.close()


async def test_raw_mode_end_to_end(running: ServerProcess) -> None:
    code, out, _ = await run_client(
        running.port, b'{"type":"ping"}\r\nnot json\n', "--raw", "--wait", "0.3"
    )
    assert code == 0
    assert out.startswith('{\n  "type": "pong"\n}\n{\n  "type": "error",')
    assert "JSON invalide" in out


async def test_client_help_and_refused_connection() -> None:
    code, out, _ = await run_client(0, b"", "--help")
    assert code == 0
    assert "--raw" in out
    with refused_port() as port:
        code, out, err = await run_client(port, b"/quit\n")
    assert code == 1
    assert "impossible de se connecter" in err


# The client on a real terminal: a pseudo-terminal that is the child's controlling
# terminal, so getpass and readline behave as they do for a student.
LOGIN_TTY = "import os, sys; os.login_tty(0); os.execv(sys.executable, sys.argv[1:])"


class PtyClient:
    def __init__(self, port: int) -> None:
        self.master, slave = pty.openpty()
        self.output = b""
        self._more = asyncio.Event()
        command = [sys.executable, "-c", LOGIN_TTY, sys.executable, "-m", "classcord"]
        self.process = subprocess.Popen(
            [*command, "client", "--port", str(port)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(os.environ, TERM="xterm"),
        )
        os.close(slave)
        asyncio.get_running_loop().add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the child closed the terminal
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.output += data
        self._more.set()

    def type(self, text: str) -> None:
        os.write(self.master, text.encode("utf-8"))

    async def expect(self, fragment: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while fragment.encode("utf-8") not in self.output:
                self._more.clear()
                await self._more.wait()

    def close(self) -> int:
        asyncio.get_running_loop().remove_reader(self.master)
        try:
            code = self.process.wait(10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self.master)
        return code


async def test_on_a_terminal_passwords_are_hidden_and_typing_survives_incoming_lines(
    running: ServerProcess,
) -> None:
    alice = await LineClient.connect(running.port)
    await alice.account("alice")
    terminal = PtyClient(running.port)
    try:
        await terminal.expect("/help pour l'aide.")
        terminal.type("/register carol\n")
        await terminal.expect("Mot de passe : ")
        terminal.type("hunter2\n")
        await terminal.expect("Mot de passe (encore) : ")
        terminal.type("hunter2\n")
        await terminal.expect("#general carol> ")
        terminal.type("je tap")
        await terminal.expect("je tap")
        await alice.recv_type("status")
        await alice.send({"type": "message", "content": "coucou"})
        # The incoming line is printed above, and the half-typed line is redrawn.
        await terminal.expect("<alice> coucou\r\n#general carol> je tap")
        terminal.type("e\n")
        message = await alice.recv_type("message")
        assert (message["from"], message["content"]) == ("carol", "je tape")
        # Ctrl+D once readline has the terminal again (typed between two prompts, the
        # terminal's own line discipline would take it).
        await terminal.expect("<carol> je tape\r\n#general carol> ")
        await asyncio.sleep(0.3)
        terminal.type("\x04")  # Ctrl+D
        await terminal.expect("Déconnecté.")
    finally:
        code = terminal.close()
        await alice.close()
    assert code == 0
    assert b"hunter2" not in terminal.output  # never echoed
