"""Start the server under test as a child process and stop it cleanly.

ClassCord and the baseline print ``listening on HOST:PORT`` when ready; their output
goes to a log file (never a pipe nobody reads, which would block a server that
prints per event). The IRC daemons measured beside them are started by ``ircd``;
``make_server`` picks the right one for a kind. Used by the benchmarks and by the
fault tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Self

from classcord.bench import ircd
from classcord.bench.child import ChildServer

# The plaintext listener (the TLS one says "tls: listening on", matched apart).
READY_PATTERN: Final = re.compile(r"(?<!tls: )listening on (\S+):(\d+)")
READY_TIMEOUT: Final = 30.0
POLL_INTERVAL: Final = 0.02
# classcord-tls: ClassCord measured through its TLS port (a throwaway certificate);
# inspircd, ngircd: the Debian packages' IRC daemons, spoken to in IRC.
KINDS: Final = ("classcord", "classcord-tls", "baseline", *ircd.KINDS)
TLS_READY_PATTERN: Final = re.compile(r"tls: listening on (\S+):(\d+)")
# ``classcord@DIR``: ClassCord from another source tree (a checkout of an earlier
# commit), so that a change is measured side by side with what it replaces.
SOURCE_SEPARATOR: Final = "@"

# Limits a benchmark must lift on ClassCord: the defaults suit people, not a load
# generator that sends hundreds of messages a second from one address.
BENCH_SERVER_FLAGS: Final = (
    "--rate-per-second", "1000000",
    "--rate-burst", "1000000",
    "--max-connections", "20000",
    "--max-connections-per-address", "20000",
)  # fmt: skip
BENCH_SERVER_ENV: Final = {
    # Hundreds of clients register at once: none may be refused as "busy".
    "CLASSCORD_LOGIN_HASHES_IN_FLIGHT": "1000000",
    "CLASSCORD_LOGIN_HASHES_PER_CONNECTION": "1000000",
}
CHEAP_HASHING_FLAGS: Final = ("--scrypt-n", "2", "--scrypt-r", "1")


class ServerStartError(RuntimeError):
    pass


def package_root() -> str:
    """The folder holding the ``classcord`` package, for a child's PYTHONPATH."""
    return str(Path(__file__).resolve().parent.parent.parent)


def split_kind(kind: str) -> tuple[str, str | None]:
    """``classcord@/tmp/before`` gives ("classcord", "/tmp/before")."""
    base, _, source = kind.partition(SOURCE_SEPARATOR)
    return base, source or None


def is_valid_kind(kind: str) -> bool:
    base, source = split_kind(kind)
    if source is not None:
        return (
            base in ("classcord", "classcord-tls")
            and (Path(source) / "classcord" / "__main__.py").is_file()
        )
    return base in KINDS


def dialect_of(kind: str) -> str:
    """The load generator's dialect for a server kind (see ``classcord.bench.worker``)."""
    return "irc" if split_kind(kind)[0] in ircd.KINDS else "json"


def not_applicable(kind: str, scenario: str) -> str | None:
    """Why ``scenario`` cannot be run against ``kind``, or None when it can."""
    if split_kind(kind)[0] in ircd.KINDS:
        return ircd.NOT_APPLICABLE.get(scenario)
    return None


def make_server(kind: str, extra_args: Sequence[str] = ()) -> ServerProcess | ircd.IrcdProcess:
    """An unstarted server of ``kind`` on 127.0.0.1 and a free port."""
    if split_kind(kind)[0] in ircd.KINDS:
        return ircd.IrcdProcess(kind)
    return ServerProcess(kind, extra_args=extra_args)


def make_bench_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, for the TLS step only."""
    cert, key = folder / "bench-tls.pem", folder / "bench-tls.key"
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServerStartError("the classcord-tls step needs openssl (apt-get install openssl)")
    subprocess.run(  # noqa: S603 - fixed arguments
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=bench",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def child_env(source: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    root = str(Path(source).resolve()) if source else package_root()
    env["PYTHONPATH"] = root + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONASYNCIODEBUG", None)  # debug mode would measure the debugger
    # Limits a load generator must lift, as variables: a tree that predates a
    # setting ignores its variable, where an unknown flag would stop it.
    env.update(BENCH_SERVER_ENV)
    return env


def server_command(
    kind: str, host: str, port: int, data_dir: str, extra: Sequence[str] = ()
) -> list[str]:
    kind, _source = split_kind(kind)
    if kind == "classcord-tls":
        cert, key = make_bench_certificate(Path(data_dir))
        tls = ("--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-port", "0")
        return [*server_command("classcord", host, port, data_dir), *tls, *extra]
    if kind == "classcord":
        return [
            sys.executable, "-m", "classcord", "serve",
            "--host", host, "--port", str(port), "--data-dir", data_dir, *extra,
        ]  # fmt: skip
    if kind == "baseline":
        return [
            sys.executable, "-m", "classcord.bench.baseline",
            "--host", host, "--port", str(port), *extra,
        ]  # fmt: skip
    raise ValueError(f"unknown server kind {kind!r}, expected one of {KINDS}")


class ServerProcess(ChildServer):
    """One ClassCord or baseline child: its pid, address, data folder and log."""

    def __init__(
        self,
        kind: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | None = None,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.host = host
        self.requested_port = port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"classcord-{split_kind(kind)[0]}-")
            data_dir = self._tmp.name
        self.data_dir = data_dir
        self.extra_args = tuple(extra_args)
        source = split_kind(kind)[1]
        # Only a classcord@DIR server moves: the others keep the caller's folder
        # (where a relative --data-dir, and the default "data", are).
        self.source_root = str(Path(source).resolve()) if source else None
        self.env = child_env(source) if env is None else env
        self.log_path = Path(data_dir) / f"{split_kind(kind)[0]}-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.ready_seconds = 0.0
        # With classcord-tls, clients connect to the TLS port with this CA file.
        self.tls_cafile: str | None = None

    def start(self, timeout: float = READY_TIMEOUT) -> Self:
        cmd = server_command(
            self.kind, self.host, self.requested_port, self.data_dir, self.extra_args
        )
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            offset = log.tell()
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                # `python -m` looks in the working folder first: run where the
                # package under test is, or a classcord@DIR run would measure ours.
                cwd=self.source_root,
            )
        deadline = started + timeout
        while time.monotonic() < deadline:
            pattern = TLS_READY_PATTERN if split_kind(self.kind)[0] == "classcord-tls" else None
            match = (pattern or READY_PATTERN).search(self.read_log(offset))
            if match:
                self.port = int(match.group(2))
                if pattern is not None:
                    self.tls_cafile = str(Path(self.data_dir) / "bench-tls.pem")
                self.ready_seconds = time.monotonic() - started
                return self
            if self.proc.poll() is not None:
                status = self.proc.returncode
                raise ServerStartError(
                    f"{self.kind} server exited with {status}:\n{self.read_log(offset)}"
                )
            time.sleep(POLL_INTERVAL)
        self.kill()
        raise ServerStartError(f"{self.kind} server not ready after {timeout}s:\n{self.read_log()}")

    def read_log(self, offset: int = 0) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signum)
