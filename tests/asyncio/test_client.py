"""The terminal client: pure helpers, the chat logic against an in-process server
through a scripted console, and the real ``python3 -m classcord client`` process
piped (and on a pseudo-terminal) against the real server process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime

import pytest

from classcord.client.commands import Command, history_request, parse_input
from classcord.client.connection import open_session
from classcord.client.display import describe, pretty
from classcord.client.escape import clean
from classcord.client.guest import guest_name
from classcord.client.pacing import Pacer
from classcord.client.timestamps import clock
from classcord.server import ClassCordServer
from tests.support.clients import LineClient
from tests.support.process import refused_port

Step = str | Callable[[], Awaitable[object]]


class ScriptConsole:
    """A console whose input is a script: lines, or coroutines run between lines
    (to act with other clients at a precise point). What the client shows is kept."""

    def __init__(
        self,
        steps: Iterable[Step] = (),
        passwords: Iterable[str] = (),
        interactive: bool = False,
    ) -> None:
        self.steps: deque[Step] = deque(steps)
        self.passwords = deque(passwords)
        self.shown: list[str] = []
        self.warned: list[str] = []
        self.prompts: list[str] = []
        self._interactive = interactive

    @property
    def interactive(self) -> bool:
        return self._interactive

    async def read_line(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        while self.steps:
            step = self.steps.popleft()
            if isinstance(step, str):
                return step
            await step()
        return None

    async def read_bytes(self) -> bytes | None:
        line = await self.read_line("")
        return None if line is None else line.encode("utf-8")

    async def read_password(self, prompt: str) -> str | None:
        self.prompts.append(prompt)
        return self.passwords.popleft() if self.passwords else None

    def show(self, text: str) -> None:
        self.shown.append(text)

    def warn(self, text: str) -> None:
        self.warned.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.shown)

    async def until(self, fragment: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while fragment not in self.text:
            if time.monotonic() > deadline:
                raise AssertionError(f"{fragment!r} never shown in:\n{self.text}")
            await asyncio.sleep(0.01)


async def forever() -> None:
    await asyncio.Event().wait()


def run_script(
    port: int, *steps: Step, **options: object
) -> tuple[ScriptConsole, asyncio.Task[int]]:
    console = ScriptConsole(steps, **options)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(open_session("127.0.0.1", port, console))
    return console, task


async def chat(port: int, *steps: Step, **options: object) -> tuple[ScriptConsole, int]:
    console, task = run_script(port, *steps, **options)
    code = await asyncio.wait_for(task, 20)
    return console, code


@pytest.fixture
async def alice(server: ClassCordServer) -> AsyncIterator[LineClient]:
    line = await LineClient.connect(server.port)
    await line.account("alice")
    yield line
    await line.close()


# --- pure helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("bonjour", Command("say", ("bonjour",))),
        ("  ", None),
        ("//join #dev", Command("say", ("/join #dev",))),
        ("/msg bob salut toi", Command("msg", ("bob", "salut toi"))),
        ('/msg "Jean D" salut', Command("msg", ("Jean D", "salut"))),
        ("/msg bob", Command("msg", ())),
        ("/w bob hé", Command("msg", ("bob", "hé"))),
        ("/login alice", Command("login", ("alice",))),
        ("/login alice mot de passe", Command("login", ("alice", "mot de passe"))),
        ("/register bob pw\r", Command("register", ("bob", "pw"))),
        ("/guest", Command("guest", ())),
        ("/GUEST zoé", Command("guest", ("zoé",))),
        ("/status away", Command("status", ("away",))),
        ("/join #dev", Command("join", ("#dev",))),
        ("/leave", Command("leave", ())),
        ("/history bob 5", Command("history", ("bob", "5"))),
        ("/who", Command("users", ())),
        ("/exit", Command("quit", ())),
        ("/dance", Command("unknown", ("dance",))),
    ],
)
def test_parse_input(line: str, command: Command | None) -> None:
    assert parse_input(line) == command


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), {"type": "history"}),
        (("#dev",), {"type": "history", "channel": "#dev"}),
        (("#dev", "10"), {"type": "history", "channel": "#dev", "limit": 10}),
        (("bob",), {"type": "history", "with": "bob"}),
        (("5",), {"type": "history", "limit": 5}),
        (("a", "b"), None),
    ],
)
def test_history_request(args: tuple[str, ...], expected: dict[str, object] | None) -> None:
    assert history_request(args) == expected


def test_clock_reads_the_iso_timestamp() -> None:
    today = datetime(2025, 6, 20, 18, 0, 0)
    assert clock("2025-06-20T14:52:43.123456", today) == "14:52:43"
    assert clock("2025-06-20T14:52:43", today) == "14:52:43"
    assert clock("2025-06-19T14:52:43.1", today, with_date=True) == "2025-06-19 14:52:43"
    assert clock("2025-06-20T14:52:43.1", today, with_date=True) == "14:52:43"
    assert clock("20/06 T14:52:43 bizarre", today) == "14:52:43"
    assert clock(None, today) == "18:00:00"
    assert clock(12, today) == "18:00:00"


def test_clean_escapes_what_could_drive_the_terminal() -> None:
    assert clean("é à ç \u00a0!") == "é à ç \u00a0!"
    assert clean("\x1b[2Jrouge\x07") == "\\x1b[2Jrouge\\x07"
    assert clean("abc\u202edef") == "abc\\u202edef"
    assert clean("a\tb\rc") == "a\\tb\\rc"


def test_describe_each_kind_of_line() -> None:
    stamp = "2025-06-20T14:52:43.123456"
    message = {"type": "message", "subtype": "global", "from": "bob", "content": "salut"}
    assert describe({**message, "timestamp": stamp}) == ["[14:52:43] <bob> salut"]
    assert describe({**message, "timestamp": stamp, "channel": "#dev"}) == [
        "[14:52:43] #dev <bob> salut"
    ]
    assert describe({**message, "timestamp": stamp, "content": "a\nb"}) == [
        "[14:52:43] <bob> a\n                 b"
    ]
    private = {**message, "subtype": "private", "to": "alice", "timestamp": stamp}
    assert describe(private, me="alice") == ["[14:52:43] [privé] <bob> salut"]
    assert describe(private, me="Bob") == ["[14:52:43] [privé → alice] <bob> salut"]
    notice = {**message, "from": "Serveur", "content": "Bienvenue", "timestamp": stamp}
    assert describe(notice) == ["[14:52:43] *** Bienvenue"]
    system = {"type": "system", "content": "Arrêt", "timestamp": stamp}
    assert describe(system) == ["[14:52:43] *** Arrêt"]
    (status,) = describe({"type": "status", "user": "bob", "state": "away"})
    assert status.endswith("] *** bob est absent(e).")
    (error,) = describe({"type": "error", "message": "Login failed.", "error": "Login failed."})
    assert error.endswith("] !!! Erreur : Login failed.")
    users = {"users": ["alice", "bob"], "states": {"alice": "online", "bob": "dnd"}}
    assert describe({"type": "list_users", **users}, me="alice") == [
        "*** En ligne (2) : alice (vous), bob (occupé(e))."
    ]
    channels = {
        "type": "channels",
        "channels": [{"name": "#dev", "members": 2}, {"name": "#general", "members": 5}],
    }
    assert describe(channels, joined={"#general", "#dev"}, current="#dev") == [
        "*** Salons : #dev (2 membre(s), salon courant), #general (5 membre(s), rejoint)."
    ]
    history = {"type": "history", "channel": "#dev", "messages": [{**message, "timestamp": stamp}]}
    lines = describe(history)
    assert lines[0] == "*** Historique de #dev (1 message(s)) :"
    assert lines[1].endswith(" <bob> salut")
    assert describe({"type": "history", "with": "bob", "messages": []}) == [
        "*** Aucun message dans l'historique de bob."
    ]
    assert describe({"type": "pong"}) == []
    assert describe({"type": "typing", "user": "bob"}) == []
    assert describe({"type": "mystery", "x": 1}) == ['[?] {"type": "mystery", "x": 1}']


@pytest.mark.parametrize(
    ("requested", "before", "after", "name"),
    [
        ("bob", [], ["bob"], "bob"),
        ("alice", ["alice"], ["alice", "alice_2"], "alice_2"),
        (None, ["invité"], ["invité", "invité_2"], "invité_2"),
        ("x" * 64, [], ["x" * 62 + "_2"], "x" * 62 + "_2"),
        ("bad\nname", [], ["invité"], "invité"),
        ("bob", [], ["bob_2", "bob_3"], None),
        ("Bob", ["carl"], ["bob", "carl"], "bob"),
    ],
)
def test_guest_name_from_the_users_lists(
    requested: str | None, before: list[str], after: list[str], name: str | None
) -> None:
    assert guest_name(requested, before, after) == name


def test_pacer_keeps_under_the_server_rate() -> None:
    now = [0.0]
    pacer = Pacer(20.0, 60, lambda: now[0])
    waits = [pacer.reserve() for _ in range(45)]
    assert waits == [0.0] * 45  # 75 % of the burst at once
    assert pacer.reserve() == pytest.approx(1 / 18)  # then 90 % of the rate
    now[0] += 10.0
    assert pacer.reserve() == 0.0


def test_pretty_indents_json_and_tolerates_the_rest() -> None:
    assert pretty(b'{"type":"pong"}\n') == '{\n  "type": "pong"\n}'
    assert pretty(b'{"content":"caf\\u00e9"}\r\n') == '{\n  "content": "café"\n}'
    assert pretty(b"hello \x1b[31m\n") == "(ligne non JSON) hello \\x1b[31m"
    assert pretty(b"\xff\xfe\n") == "(ligne non JSON) \ufffd\ufffd"


# --- the chat logic against an in-process server ----------------------------------------


async def test_guest_gets_a_suffix_and_talks(server: ClassCordServer, alice: LineClient) -> None:
    console, code = await chat(server.port, "/guest alice", "bonjour", "/quit")
    assert code == 0
    assert "Vous êtes invité(e) sous le nom alice_2 (alice était pris)." in console.text
    assert await alice.recv() == {"type": "status", "user": "alice_2", "state": "online"}
    message = await alice.recv()
    assert (message["from"], message["content"]) == ("alice_2", "bonjour")
    assert "timestamp" in message
    assert "channel" not in message  # the default channel stays legacy-shaped
    assert any(line.endswith("] <alice_2> bonjour") for line in console.shown)


async def test_register_logs_in_and_messages_flow_both_ways(
    server: ClassCordServer, alice: LineClient
) -> None:
    async def alice_speaks() -> None:
        await alice.recv_type("status")
        await alice.send({"type": "message", "content": "salut bob"})

    async def bob_sees_it() -> None:
        await console.until("<alice> salut bob")

    console, task = run_script(
        server.port,
        "/register bob pw",
        alice_speaks,
        bob_sees_it,
        "/msg alice rien que pour toi",
        "/status absent",
        "/users",
        "/quit",
    )
    assert await asyncio.wait_for(task, 20) == 0
    text = console.text
    assert "*** Compte bob créé.\n*** Connecté(e) en tant que bob." in text
    assert "[privé → alice] <bob> rien que pour toi" in text
    assert "*** Votre statut : absent(e)." in text
    assert "*** En ligne (2) : alice, bob (absent(e), vous)." in text
    private = await alice.recv()
    assert private["subtype"] == "private"
    assert (private["from"], private["to"]) == ("bob", "alice")
    assert await alice.recv() == {"type": "status", "user": "bob", "state": "away"}
    assert await alice.recv() == {"type": "status", "user": "bob", "state": "offline"}
    await alice.expect_silence()  # no echo of alice's own line, nothing else


async def test_incoming_lines_show_while_waiting_for_input(
    server: ClassCordServer, alice: LineClient
) -> None:
    console, task = run_script(server.port, "/guest bob", forever)
    await console.until("sous le nom bob")
    await alice.recv_type("status")
    await alice.send({"type": "message", "content": "tu es là ?"})
    await alice.send({"type": "message", "subtype": "private", "to": "bob", "content": "psst"})
    await alice.send({"type": "status", "state": "dnd"})
    await console.until("*** alice est occupé(e) (ne pas déranger).")
    assert any(line.endswith("] <alice> tu es là ?") for line in console.shown)
    assert any(line.endswith("] [privé] <alice> psst") for line in console.shown)
    assert console.prompts[-1] == "#general bob> "
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_channels_join_talk_leave(server: ClassCordServer, alice: LineClient) -> None:
    await alice.send({"type": "join_channel", "channel": "#dev"})
    await alice.recv_type("join_channel")
    console, code = await chat(
        server.port,
        "/guest bob",
        "/join #Dev",
        "ça compile",
        "/channels",
        "/history",
        "/leave",
        "retour",
        "/leave #general",
        "/quit",
    )
    assert code == 0
    text = console.text
    assert "*** Vous avez rejoint #dev (2 membre(s)) : vos messages y vont." in text
    assert "*** Aucun message dans l'historique de #dev." in text  # history_on_join
    assert "] #dev <bob> ça compile" in text
    assert "#dev (2 membre(s), salon courant), #general (2 membre(s), rejoint)" in text
    assert "*** Historique de #dev (1 message(s)) :" in text
    assert "*** Vous avez quitté #dev : retour dans #general." in text
    assert "!!! Erreur : Impossible de quitter le salon #general." in text
    in_dev = await alice.recv_type("message")
    assert (in_dev["channel"], in_dev["content"]) == ("#dev", "ça compile")
    back = await alice.recv_type("message")
    assert back["content"] == "retour"
    assert "channel" not in back


async def test_errors_are_shown_clearly(server: ClassCordServer, alice: LineClient) -> None:
    await alice.send({"type": "register", "username": "carol", "password": "pw"})
    await alice.recv_type("register")
    console, code = await chat(
        server.port,
        "avant de se connecter",
        "/login alice faux",
        "/login alice",
        "/register alice pw",
        "/guest carol",
        "/msg personne allô",
        "/msg carol tu es là ?",
        "/status bronzer",
        "/join #pas bon",
        "/join #a.b",
        "/dance",
        "/msg",
        "x" * 2001,
        "/quit",
    )
    assert code == 0
    text = console.text
    assert "!!! Erreur : Identifiez-vous d'abord" in text
    assert "!!! Erreur : Login failed.\n*** Nom ou mot de passe incorrect" in text
    assert "Mot de passe manquant : hors d'un terminal, /login NOM MOTDEPASSE." in text
    assert "!!! Erreur : Username already exists.\n*** Ce nom est déjà pris" in text
    assert "sous le nom carol_2 (carol était pris)" in text
    assert "!!! Erreur : Utilisateur inconnu : personne." in text
    assert "!!! Erreur : carol est hors ligne : le message est conservé" in text
    assert "Statut inconnu : bronzer. Valeurs possibles : online, away, dnd, invisible." in text
    assert "Usage : /join #SALON" in text
    assert "Nom de salon invalide : #a.b" in text
    assert "Commande inconnue : /dance (tapez /help)." in text
    assert "Usage : /msg NOM TEXTE" in text
    assert "Message trop long (2001 caractères, maximum 2000) : non envoyé." in text
    await alice.recv_type("status")  # carol_2 online
    await alice.recv_type("status")  # carol_2 offline
    await alice.expect_silence()  # nothing typed before the guest was made went out


async def test_interactive_passwords_are_asked(server: ClassCordServer) -> None:
    console, code = await chat(
        server.port,
        "/register dora",
        "/register eve",
        "/quit",
        passwords=["s3cret", "s3cret", "one", "two"],
        interactive=True,
    )
    assert code == 0
    assert console.prompts.count("Mot de passe : ") == 2
    assert console.prompts.count("Mot de passe (encore) : ") == 2
    assert "Connecté(e) en tant que dora." in console.text
    assert "Les deux mots de passe diffèrent : compte non créé." in console.text
    assert server.accounts.is_registered("dora")
    assert not server.accounts.is_registered("eve")


async def test_a_piped_file_is_paced_under_the_rate_limit(
    server: ClassCordServer, alice: LineClient
) -> None:
    lines = [f"ligne {n}" for n in range(80)]
    console, code = await chat(server.port, "/guest bob", *lines, "/quit")
    assert code == 0
    assert "Trop de requêtes" not in console.text
    received: list[str] = []
    while len(received) < 80:
        message = await alice.recv_type("message")
        received.append(message["content"])
    assert received == lines


async def test_server_shutdown_ends_the_client_with_code_1(server: ClassCordServer) -> None:
    console, task = run_script(server.port, "/guest bob", forever)
    await console.until("sous le nom bob")
    await server.shutdown()
    assert await asyncio.wait_for(task, 10) == 1
    assert "Le serveur s'arrête" in console.text  # the notice, as a system line
    assert console.warned == ["Connexion fermée par le serveur."]


async def test_cannot_connect_is_a_clear_error() -> None:
    with refused_port() as port:
        console, code = await chat(port, "/quit")
    assert code == 1
    (warning,) = console.warned
    assert "impossible de se connecter à 127.0.0.1:" in warning
    assert "Connection refused" in warning
    assert "python3 -m classcord healthcheck" in warning


# --- against servers that are not ClassCord --------------------------------------------


@contextlib.asynccontextmanager
async def fake_server(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    listener = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await listener.wait_closed()


async def test_legacy_server_without_hello_and_non_json_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A student's server ignores hello and ping: the client must still work."""
    monkeypatch.setattr("classcord.client.chat.HELLO_TIMEOUT", 0.2)

    async def legacy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if b'"login"' in line:
                writer.write(b'{"type": "login", "status": "ok", "username": "bob"}\n')
                writer.write(b"Bienvenue sur mon serveur !\n")
            elif b'"message"' in line:
                writer.write(line.replace(b'"content"', b'"from": "echo", "content"'))

    async with fake_server(legacy) as port:
        console, code = await chat(port, "/login bob pw", "salut", "/quit")
    assert code == 0
    text = console.text
    assert "serveur sans extensions" in text
    assert "Connecté(e) en tant que bob." in text
    assert "(ligne non JSON) Bienvenue sur mon serveur !" in text


async def test_raw_mode_sends_lines_as_they_are(server: ClassCordServer) -> None:
    console = ScriptConsole(['{"type":"ping"}', "pas du json", '{"type":"users"}'])
    code = await open_session("127.0.0.1", server.port, console, raw=True, wait=0.3)
    assert code == 0
    assert console.shown[0] == '{\n  "type": "pong"\n}'
    assert '"message": "JSON invalide (colonne 1)' in console.shown[1]
    assert console.shown[2].startswith('{\n  "type": "users",\n  "users": []')


def test_describe_survives_a_type_that_is_not_text() -> None:
    for odd in ([1], {"a": 1}, None, 3):
        (line,) = describe({"type": odd, "content": "x"})
        assert line
