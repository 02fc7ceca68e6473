"""Terminal chat client: ``python3 -m classcord client --host H --port P [--raw]``.

For students without a graphical client: slash commands (``/login``, ``/guest``,
``/msg``, ``/join``...) and plain text to the current channel, with incoming messages
shown while you type. ``--raw`` is a netcat that pretty-prints what the server sends.

Three layers, like the server. Pure helpers with no I/O: ``commands`` (parsing what
is typed), ``display`` (what to show for each server line, via ``escape`` and
``timestamps``), ``guest`` (the name a guest got), ``pacing`` (staying under the
rate limit) and ``texts``. A ``console`` that does the blocking terminal reads on
one daemon thread, so the event loop never waits on stdin. And the asyncio client:
``server_link`` (requests and their replies), ``chat`` (the commands), ``raw``
(``--raw``) and ``connection`` (connect, run one of them, close). The client's own
texts are French, like the server's notices.

This module holds only the command line: ``classcord.cli`` calls ``add_arguments``
and ``run``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from typing import Final

from classcord.client.connection import TLS_DEFAULT_PORT, TlsOptions, open_session
from classcord.client.console import (
    TerminalConsole,
    restore_terminal_mode,
    save_terminal_mode,
)
from classcord.client.exit_codes import EXIT_INTERRUPTED
from classcord.config import Settings, port_from_environment

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = Settings().port
PORT_VARIABLE: Final = "CLASSCORD_PORT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Client de discussion en terminal. Tapez /help une fois connecté. "
        "Les commandes peuvent aussi venir d'un fichier : "
        "printf '/guest bob\\nbonjour\\n/quit\\n' | python3 -m classcord client"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"adresse du serveur [{DEFAULT_HOST}]")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port du serveur [{PORT_VARIABLE} ou {DEFAULT_PORT}]",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="comme netcat : chaque ligne tapée part telle quelle, chaque ligne reçue "
        "est affichée en JSON indenté",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        help="secondes d'attente de la connexion et des réponses [15]",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="se connecter au port TLS du serveur (port 12346 par défaut) en vérifiant "
        "son certificat : nom ou adresse, autorité, validité",
    )
    parser.add_argument(
        "--cafile",
        default=None,
        help="avec --tls : le fichier ca.pem de la classe (sinon, les autorités du système)",
    )
    parser.add_argument(
        "--fingerprint",
        default=None,
        help="avec --tls : empreinte SHA-256 attendue du certificat (celle écrite au "
        "tableau), pour un certificat auto-signé",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=1.0,
        help="avec --raw, après la fin de l'entrée : fermer quand le serveur s'est tu "
        "pendant ce nombre de secondes [1]",
    )


def run(args: argparse.Namespace) -> int:
    if args.port is not None:
        port = args.port
    else:
        port = TLS_DEFAULT_PORT if args.tls else port_from_environment()
    tls = TlsOptions(args.cafile, args.fingerprint) if args.tls else None
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    saved = save_terminal_mode()

    async def main() -> int:
        console = TerminalConsole(asyncio.get_running_loop())
        return await open_session(
            args.host, port, console, args.raw, args.timeout, args.wait, tls=tls
        )

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        restore_terminal_mode(saved)
