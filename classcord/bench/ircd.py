"""The IRC daemons measured beside ClassCord: InspIRCd and ngircd, as Debian ships them.

Each run starts the package's binary directly, in the foreground, with a private
configuration generated into a temporary folder (pid file, log and MOTD there
too): a listener on 127.0.0.1 only, no TLS, no DNS or ident lookups, flood
protection off and connection limits far above the benchmark's 10,000 clients.
The system service the package installs is never used.

A daemon reports nothing we could wait for on every version, so the port is
chosen first (bind port 0, read it, release it) and the daemon is ready when it
holds a listening socket on that port and accepts a connection. Another process
may take the port between our release and the daemon's bind: then the daemon
fails or never listens there, and the start is retried on a fresh port.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final, Self

from classcord.bench.child import ChildServer
from classcord.bench.irc import SERVER_NAME

KINDS: Final = ("inspircd", "ngircd")
# Scenarios that measure what only ClassCord has.
NOT_APPLICABLE: Final = {
    "storm": "a login storm measures ClassCord's password hashing; IRC has no accounts",
}
PACKAGES: Final = {"inspircd": "inspircd", "ngircd": "ngircd"}
START_ATTEMPTS: Final = 5
READY_TIMEOUT: Final = 15.0
POLL_INTERVAL: Final = 0.05
# Far above the 10,000 clients of the idle scenario (and RLIMIT_NOFILE of 20,000).
MAX_CLIENTS: Final = 50_000
# A receiver may fall this far behind before the daemon drops it: ClassCord's
# default send-queue limit, so that a stall is judged the same way.
SEND_QUEUE_BYTES: Final = 1_048_576
# PINGs the daemons send to idle clients: rare enough that none falls inside a run
# (the clients answer them anyway).
PING_SECONDS: Final = 3600
TCP_LISTEN: Final = "0A"  # the state column of /proc/net/tcp
MOTD: Final = "ClassCord benchmark peer\n"
# InspIRCd keeps running when its one port is taken; this in its output says so
# (ngircd exits). Either way the attempt ends without waiting for the timeout.
BIND_FAILED: Final = "already in use"
RUN_DIR: Final = "run"  # where a daemon that drops root may write its pid file
NGIRCD_ROOT_USER: Final = "nobody"  # whom ngircd becomes when started as root


class IrcdStartError(RuntimeError):
    pass


def binary(kind: str) -> str | None:
    """The package's binary: on PATH, or in /usr/sbin (not on a user's PATH)."""
    return shutil.which(kind) or shutil.which(kind, path="/usr/sbin:/usr/local/sbin")


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def inspircd_config(folder: Path, host: str, port: int) -> str:
    """InspIRCd 3. Flood protection is its "fakelag": each command adds 1000 to a
    penalty that drains by ``commandrate`` a second, and a client past
    ``threshold`` times 1000 is held back (fakelag on) or cut off (off). The rate
    drains any penalty within a second and the threshold is near the 32-bit
    bound; fakelag is off so a client that still reached it would show as
    disconnected instead of silently delayed. No module is loaded: no ident, no
    cloaking, no connection-flood bans."""
    return f"""\
<server name="{SERVER_NAME}" description="ClassCord benchmark peer" network="bench">
<admin name="bench" nick="bench" email="bench@{SERVER_NAME}">
<bind address="{host}" port="{port}" type="clients">
<connect allow="*" name="bench"
         timeout="60" pingfreq="{PING_SECONDS}"
         localmax="{MAX_CLIENTS}" globalmax="{MAX_CLIENTS}" limit="{MAX_CLIENTS}"
         maxconnwarn="no" resolvehostnames="no" useident="no"
         commandrate="1000000000" threshold="4000000" fakelag="no"
         recvq="{SEND_QUEUE_BYTES}" softsendq="{SEND_QUEUE_BYTES}"
         hardsendq="{SEND_QUEUE_BYTES}" maxchans="20">
<files motd="{folder / "motd.txt"}">
<pid file="{folder / "inspircd.pid"}">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default"
     target="{folder / "inspircd.log"}">
<performance softlimit="{MAX_CLIENTS}" somaxconn="4096" clonesonconnect="no"
             quietbursts="yes">
<channels users="20" opers="60">
<limits maxnick="30">
<options syntaxhints="no" announcets="no">
"""


def ngircd_config(folder: Path, host: str, port: int) -> str:
    """ngircd 26. Flood protection is its penalty time: a client that sends more
    than 3 commands per loop, or 256 bytes a second, is paused for a second;
    ``MaxPenaltyTime = 0`` turns every penalty into none (its documented switch).
    PAM is compiled in and on by default: off, or every client would need a
    password. ``MaxConnections = 0`` (no limit) and not a large number: ngircd
    allocates its connection table at that size and scans the whole table on every
    pass of its loop (50,000 slots cost 35 MB and a fifth of a core while idle).
    ``MotdPhrase`` replaces the MOTD file. Started as root, it becomes
    ``nobody`` (it refuses to stay root), so its pid file goes in a folder that
    user may write."""
    return f"""\
[Global]
Name = {SERVER_NAME}
Info = ClassCord benchmark peer
Listen = {host}
Ports = {port}
PidFile = {folder / RUN_DIR / "ngircd.pid"}
MotdPhrase = {MOTD.strip()}
HelpFile = {folder / "help.txt"}

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = {PING_SECONDS}
PongTimeout = 600

[Options]
DNS = no
Ident = no
PAM = no
ConnectIPv6 = no
"""


CONFIGS: Final = {"inspircd": inspircd_config, "ngircd": ngircd_config}
CONFIG_NAMES: Final = {"inspircd": "inspircd.conf", "ngircd": "ngircd.conf"}


def daemon_command(kind: str, program: str, config: Path, as_root: bool) -> list[str]:
    """The foreground command line. InspIRCd refuses to run as root unless told."""
    if kind == "inspircd":
        root = ["--runasroot"] if as_root else []
        return [program, "--nofork", "--config", str(config), *root]
    if kind == "ngircd":
        return [program, "--nodaemon", "--config", str(config)]
    raise ValueError(f"unknown IRC daemon {kind!r}, expected one of {KINDS}")


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets ``pid`` holds open."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def listening_inodes(table: str, host: str, port: int) -> set[int]:
    """Inodes of the sockets listening on ``host:port`` in a /proc/net/tcp text."""
    packed = socket.inet_aton(host)[::-1].hex().upper()  # little-endian, as the kernel prints
    wanted = f"{packed}:{port:04X}"
    found = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[1] == wanted and fields[3] == TCP_LISTEN:
            found.add(int(fields[9]))
    return found


def listens_on(pid: int, host: str, port: int) -> bool:
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        return False
    return bool(listening_inodes(table, host, port) & socket_inodes(pid))


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class IrcdProcess(ChildServer):
    """One IRC daemon child, with the interface of ``spawn.ServerProcess`` that the
    benchmark uses (start, stop, cleanup, pid, port, read_log)."""

    def __init__(self, kind: str, *, host: str = "127.0.0.1") -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown IRC daemon {kind!r}, expected one of {KINDS}")
        self.kind = kind
        self.host = host
        self.port = 0
        self.tls_cafile: str | None = None
        self.ready_seconds = 0.0
        self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
            prefix=f"classcord-{kind}-"
        )
        self.folder = Path(self._tmp.name)
        self.log_path = self.folder / f"{kind}-stdout.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.command: list[str] = []
        self.config_text = ""

    def write_config(self, port: int) -> Path:
        run = self.folder / RUN_DIR
        run.mkdir(exist_ok=True)
        if self.kind == "ngircd" and os.geteuid() == 0:
            nobody = pwd.getpwnam(NGIRCD_ROOT_USER)
            os.chown(run, nobody.pw_uid, nobody.pw_gid)
            self.folder.chmod(0o711)  # it may pass through, not list
        (self.folder / "motd.txt").write_text(MOTD)
        (self.folder / "help.txt").write_text("")
        config = self.folder / CONFIG_NAMES[self.kind]
        self.config_text = CONFIGS[self.kind](self.folder, self.host, port)
        config.write_text(self.config_text)
        return config

    def start(self, timeout: float = READY_TIMEOUT) -> Self:
        program = binary(self.kind)
        if program is None:
            raise IrcdStartError(
                f"{self.kind} is not installed (apt-get install {PACKAGES[self.kind]})"
            )
        failures = []
        for _attempt in range(START_ATTEMPTS):
            port = free_port(self.host)
            config = self.write_config(port)
            self.command = daemon_command(self.kind, program, config, os.geteuid() == 0)
            if self._launch(port, timeout):
                return self
            failures.append(f"port {port}: {self.read_log()[-600:]}")
            self.stop()
        raise IrcdStartError(
            f"{self.kind} did not start in {START_ATTEMPTS} attempts:\n" + "\n".join(failures)
        )

    def _launch(self, port: int, timeout: float) -> bool:
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            offset = log.tell()
            self.proc = subprocess.Popen(  # noqa: S603 - the package's binary, our config
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.folder,
            )
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None or BIND_FAILED in self._output_since(offset):
                return False  # e.g. the port was taken meanwhile
            # Ours, not whoever took the port after we released it.
            if listens_on(self.proc.pid, self.host, port) and accepts(self.host, port):
                self.port = port
                self.ready_seconds = time.monotonic() - started
                return True
            time.sleep(POLL_INTERVAL)
        return False

    def _output_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", errors="replace")

    def read_log(self) -> str:
        """The daemon's output, then its own log file (InspIRCd writes one)."""
        parts = []
        for path in (self.log_path, self.folder / f"{self.kind}.log"):
            try:
                parts.append(path.read_bytes().decode("utf-8", errors="replace"))
            except OSError:
                continue
        return "".join(parts)
