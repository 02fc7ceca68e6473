"""Command line: ``python3 -m classcord [serve|healthcheck|import-users|backup|...]``.

Every server flag is generated from ``Settings``, so ``--help`` lists each limit
with its ``CLASSCORD_*`` variable and default.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import importlib
import json
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from classcord import __version__
from classcord.config import (
    Settings,
    env_name,
    field_types,
    flag_name,
    parse_value,
    port_from_environment,
    settings_from,
)
from classcord.errors import SettingsError

if TYPE_CHECKING:
    from classcord.server import ClassCordServer

log = logging.getLogger("classcord")

EXIT_USAGE = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Subcommands whose code lives in their own module, imported only when used. Each
# module provides add_arguments(parser) and run(args) -> int.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("classcord.doctor", "check every network hop from this machine to the server"),
    "bench": ("classcord.bench.cli", "load-test a server and compare it with a baseline"),
    "client": ("classcord.client", "an interactive terminal chat client"),
    "admin": ("classcord.admin_client", "control the running server through its admin socket"),
}


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "server settings", "each flag also reads the variable named beside it; a flag wins"
    )
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        kind = field_types()[field.name]
        default = getattr(defaults, field.name)
        help_text = f"{field.metadata['help']} [{env_name(field.name)}, default: {default!r}]"
        group.add_argument(
            flag_name(field.name),
            dest=f"setting_{field.name}",
            metavar=field.name.split("_")[-1].upper(),
            type=_converter(kind, flag_name(field.name)),
            default=None,
            help=help_text,
        )


def _converter(kind: type, name: str) -> Any:
    def convert(raw: str) -> Any:
        try:
            return parse_value(kind, raw, name)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, f"setting_{name}")
        for name in field_types()
        if hasattr(args, f"setting_{name}")
    }
    return settings_from(overrides)


class OneLineErrorParser(argparse.ArgumentParser):
    """A usage mistake is one line on stderr and exit code 2, not a page of usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="classcord",
        description="ClassCord classroom chat server. Without a command: serve.",
    )
    parser.add_argument("--version", action="version", version=f"classcord {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the chat server (the default)")
    _add_settings_flags(serve)

    health = commands.add_parser(
        "healthcheck",
        help="exit 0 if the server answers and can keep data (ping, database, disk)",
    )
    health.add_argument("--host", default="127.0.0.1", help="server address [127.0.0.1]")
    health.add_argument(
        "--port", type=int, default=None, help="server port [CLASSCORD_PORT or 12345]"
    )
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait [3]")
    health.add_argument(
        "--data-dir", default=None, help="the server's data folder [CLASSCORD_DATA_DIR or data]"
    )
    health.add_argument(
        "--tls",
        action="store_true",
        help="ping through the TLS port (default port CLASSCORD_TLS_PORT or 12346)",
    )
    health.add_argument(
        "--cafile",
        default=None,
        help="with --tls: the class CA (ca.pem); without it the certificate is checked "
        "against the server's own certificate file (CLASSCORD_TLS_CERT_FILE)",
    )

    importer = commands.add_parser(
        "import-users", help="hash the old server's users.pkl into the database"
    )
    importer.add_argument("pickle", type=Path, help="path to users.pkl")
    importer.add_argument(
        "--data-dir", default=None, help="data folder [CLASSCORD_DATA_DIR or data]"
    )

    backup = commands.add_parser("backup", help="consistent copy of the database, with retention")
    backup.add_argument("--data-dir", default=None, help="data folder [CLASSCORD_DATA_DIR or data]")
    backup.add_argument("--dest", type=Path, default=None, help="backup folder [DATA_DIR/backups]")
    backup.add_argument("--keep", type=int, default=7, help="backups to keep, newest first [7]")

    names = commands.add_parser(
        "check-names", help="list accounts that are one name under the identity rule"
    )
    names.add_argument("--data-dir", default=None, help="data folder [CLASSCORD_DATA_DIR or data]")

    for name, (module_name, help_text) in LAZY_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(lazy_module=module_name)
    return parser


def _configure_logging(settings: Settings) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if settings.log_file:
        Path(settings.log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(settings.log_file, encoding="utf-8"))
    logging.basicConfig(
        level=settings.log_level.upper(), format=LOG_FORMAT, handlers=handlers, force=True
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    known = {"serve", "healthcheck", "import-users", "backup", "check-names", *LAZY_COMMANDS}
    if not argv or (argv[0] not in known and argv[0] not in {"-h", "--help", "--version"}):
        argv.insert(0, "serve")
    if argv[0] in {"-h", "--help"}:
        # One page with every flag: the server's are what people look for.
        print(parser.format_help())
        print(_subparser(parser, "serve").format_help())
        return 0
    if argv[0] in LAZY_COMMANDS:
        return _run_lazy(argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "healthcheck":
            if args.tls:
                port = args.port if args.port is not None else _tls_port_from_environment()
                context = _healthcheck_tls_context(args.cafile)
                return healthcheck(args.host, port, args.timeout, args.data_dir, context)
            port = args.port if args.port is not None else port_from_environment()
            return healthcheck(args.host, port, args.timeout, args.data_dir)
        if args.command == "import-users":
            return import_users(args.pickle, _data_settings(args.data_dir))
        if args.command == "backup":
            from classcord.backup import run_backup

            return run_backup(_data_settings(args.data_dir), args.dest, args.keep)
        if args.command == "check-names":
            return check_names(_data_settings(args.data_dir))
        return serve(settings_from_args(args))
    except SettingsError as exc:
        print(f"classcord: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise KeyError(name)


def _run_lazy(argv: list[str]) -> int:
    module_name, help_text = LAZY_COMMANDS[argv[0]]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        print(f"classcord: the '{argv[0]}' command is not available in this build", file=sys.stderr)
        return EXIT_USAGE
    sub = OneLineErrorParser(prog=f"classcord {argv[0]}", description=help_text)
    module.add_arguments(sub)
    result: int = module.run(sub.parse_args(argv[1:]))
    return result


def _data_settings(data_dir: str | None) -> Settings:
    return settings_from({"data_dir": data_dir})


async def start_server(settings: Settings) -> ClassCordServer:
    """The composition root: storage, accounts, history, hub, server, admin socket.

    ``serve`` and the in-process tests both start the server through here."""
    from classcord.accounts import Accounts
    from classcord.admin import start_admin_socket
    from classcord.history import History
    from classcord.hub import Hub
    from classcord.moderation_service import ModerationService
    from classcord.server import ClassCordServer
    from classcord.storage import DataFolderLock, Storage, StorageWorker, prepare_data_dir

    tls = None
    if settings.tls_enabled:
        from classcord.tls import TlsEndpoint

        # A certificate that cannot be read stops the start, before anything opens.
        tls = TlsEndpoint(
            Path(settings.tls_cert_file),
            Path(settings.tls_key_file),
            settings.tls_handshake_timeout,
        )
    prepare_data_dir(settings.data_path)
    lock = DataFolderLock.acquire(settings.data_path)
    try:
        storage = StorageWorker(Storage(settings.database_path))
    except BaseException:
        lock.close()
        raise
    accounts = Accounts(settings, storage)
    history = History(
        storage,
        retry_initial=settings.history_retry_initial_seconds,
        retry_max=settings.history_retry_max_seconds,
        read_timeout=settings.storage_timeout_seconds,
        max_pending=settings.history_max_pending,
    )
    hub = Hub(settings, accounts, history)
    moderation = ModerationService(settings, hub, accounts, history, storage)
    server = ClassCordServer(settings, storage, accounts, history, hub, moderation, tls)
    server.hold_until_closed(lock)
    try:
        await server.start()
    except BaseException:
        await storage.close(settings.shutdown_storage_seconds)
        accounts.close()
        lock.close()
        raise
    admin = await start_admin_socket(server, settings.admin_socket_path)
    if admin is not None:
        server.close_at_shutdown(admin)
    server.announce_ready()
    return server


def _reload_tls(server: ClassCordServer) -> None:
    """SIGHUP: re-read the TLS certificate; a mistake is logged, the old one stays."""
    try:
        server.reload_tls()
    except SettingsError as exc:
        log.error("tls: reload refused, the old certificate stays in use: %s", exc)


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT. Every start-up failure is one line and an exit code:
    2 for a setting that cannot work (an unresolvable host), 1 otherwise."""
    _configure_logging(settings)
    import sqlite3

    from classcord.errors import StorageError

    wedged = False

    async def run() -> None:
        nonlocal wedged
        server = await start_server(settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, server.request_shutdown, signal.Signals(signum).name)
        loop.add_signal_handler(signal.SIGHUP, _reload_tls, server)
        await server.wait_closed()
        wedged = server.storage_wedged

    try:
        asyncio.run(run())
    except StorageError as exc:
        log.error("%s", exc)
        return 1
    except sqlite3.Error as exc:
        from classcord.storage import sqlite_hint

        log.error("cannot use database %s: %s%s", settings.database_path, exc, sqlite_hint(exc))
        return 1
    except socket.gaierror as exc:
        log.error(
            "host %r cannot be resolved (%s): set CLASSCORD_HOST or --host to an address"
            " of this machine, such as 0.0.0.0 or 127.0.0.1",
            settings.host,
            exc.strerror,
        )
        return EXIT_USAGE
    except OSError as exc:
        log.error("%s", listen_error(settings, exc))
        return 1
    if wedged:
        # The storage thread is stuck in the kernel (a dead disk): nothing more can be
        # saved, and shutdown has already said what was lost. Do not wait for it.
        logging.shutdown()
        os._exit(1)
    return 0


def listen_error(settings: Settings, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {settings.host}:{settings.port}: port {settings.port} is"
            f" already in use; see who holds it with \"ss -ltnp 'sport = :{settings.port}'\","
            " stop it or choose another port with --port (CLASSCORD_PORT), or run"
            " 'python3 -m classcord doctor'"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {settings.host}:{settings.port}: {settings.host} is not an"
            " address of this machine; use 0.0.0.0 (every interface) or 127.0.0.1"
        )
    return f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"


def _tls_port_from_environment() -> int:
    raw = os.environ.get("CLASSCORD_TLS_PORT", "").strip()
    return int(raw) if raw.isdigit() and 0 < int(raw) <= 65535 else Settings().tls_port


def _healthcheck_tls_context(cafile: str | None) -> ssl.SSLContext:
    """The class CA if given; else the server's own certificate, which a container
    health check finds in its environment. The host name is not checked here: the
    check runs on 127.0.0.1, which the certificate need not name."""
    trusted = cafile or os.environ.get("CLASSCORD_TLS_CERT_FILE") or None
    context = ssl.create_default_context(cafile=trusted)
    context.check_hostname = False
    # The server's own certificate is a leaf, not a CA: trust it as it is.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def healthcheck(
    host: str,
    port: int,
    timeout: float,
    data_dir: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> int:
    """One line, ``healthy: ...`` or ``unhealthy: REASON``; exit 0 or 1.

    The ping proves the chat port answers; the admin socket's ``health`` proves the
    server can keep data (a committed write, free space, nothing waiting too long).
    Without the admin socket, a local free-space check stands in, and the line says so."""
    from classcord.health import check_disk, megabytes

    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = tls.wrap_socket(raw, server_hostname=host) if tls else raw
            sock.sendall(b'{"type": "ping"}\n')
            reply = sock.makefile("rb").readline(65536)
        ok = json.loads(reply).get("type") == "pong"
    except (OSError, ValueError, AttributeError) as exc:
        print(f"unhealthy: {host}:{port}: {exc}")
        return 1
    if not ok:
        print(f"unhealthy: {host}:{port} did not answer the ping with pong")
        return 1
    try:
        settings = settings_from({"data_dir": data_dir})
    except SettingsError:
        settings = Settings().replace(data_dir=data_dir or Settings().data_dir)
    left = max(0.1, timeout - (time.monotonic() - started))
    from classcord.admin_client import request
    from classcord.errors import ImpostorSocket

    path = settings.admin_socket_path
    try:
        answer = request(path, "health", [f"{left * 0.8:.3f}"], timeout=left)
    except ImpostorSocket as exc:
        print(f"unhealthy: {exc}")
        return 1
    except TimeoutError:
        print(f"unhealthy: {host}:{port} answers, but not its health request within {left:.1f} s")
        return 1
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        if not settings.data_path.is_dir():
            # Run from elsewhere (another folder, the host): only the ping says anything.
            print(
                f"healthy: {host}:{port} answers ping (no data folder {settings.data_path}"
                f" here and admin socket unreachable: {reason}; disk and database not checked)"
            )
            return 0
        disk = check_disk(settings.data_path, settings.health_min_free_bytes)
        if disk.problem:
            print(f"unhealthy: {disk.problem}")
            return 1
        print(
            f"healthy: {host}:{port} answers ping, {megabytes(disk.free_bytes)} free"
            f" (admin socket {path} unreachable: {reason};"
            " database not checked)"
        )
        return 0
    result = answer.get("result") if answer.get("ok") else None
    if not isinstance(result, dict):
        print(f"unhealthy: health request failed: {answer.get('error')}")
        return 1
    if not result.get("healthy"):
        print(f"unhealthy: {'; '.join(result.get('problems') or ['unknown'])}")
        return 1
    history = result.get("history") or {}
    print(
        f"healthy: {host}:{port} answers ping, database writable,"
        f" {megabytes(int(result.get('free_bytes', 0)))} free,"
        f" {history.get('pending', 0)} messages pending"
    )
    return 0


def import_users(path: Path, settings: Settings) -> int:
    from classcord.accounts import import_legacy_users
    from classcord.errors import DataFolderBusy, LegacyImportError, StorageError

    try:
        report = import_legacy_users(path, settings)
    except DataFolderBusy as exc:
        print(
            f"classcord import-users: {exc}. A running server would not know the imported"
            " accounts: stop it, import, then start it again",
            file=sys.stderr,
        )
        return 1
    except (LegacyImportError, StorageError) as exc:
        print(f"classcord import-users: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"classcord import-users: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    print(
        f"imported {len(report.imported)} users into {settings.database_path}; "
        f"{len(report.skipped_existing)} already existed, "
        f"{len(report.skipped_invalid)} skipped (invalid, reserved or unusable)"
    )
    for name, why in report.skipped_invalid:
        print(f"  skipped: {name!r}: {why}")
    return 0


def check_names(settings: Settings) -> int:
    """Accounts made before the identity rule that are one name under it (or hold a
    reserved name): reported for the admin to rename or ban, never merged."""
    from classcord.errors import StorageError
    from classcord.identity import collisions
    from classcord.storage import Storage

    if not settings.database_path.exists():
        print(f"classcord check-names: no database at {settings.database_path}", file=sys.stderr)
        return 1
    try:
        storage = Storage(settings.database_path)
        try:
            names = [name for _id, name in storage.user_ids()]
        finally:
            storage.close()
    except StorageError as exc:
        print(f"classcord check-names: {exc}", file=sys.stderr)
        return 1
    groups = collisions(names)
    if not groups:
        print(f"{len(names)} accounts, no two of them are one name")
        return 0
    print(f"{len(groups)} groups of accounts are one name under the identity rule:")
    for group in groups:
        print("  " + ", ".join(ascii(name) if not name.isprintable() else name for name in group))
    print("They all still log in with their exact names; ban or rename the impostors.")
    return 1
