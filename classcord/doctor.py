"""``python3 -m classcord doctor``: check each network hop that can be seen from the
VM and say, in plain words, which one is broken and how to fix it.

The path of a SLAM client is: SLAM PC -> the SISR host's LAN address -> the host's
port forwarding (VirtualBox NAT, VMware NAT, portproxy, iptables) -> the VM -> ufw
-> Docker's published port -> the container -> the server. From inside the VM the
doctor sees the server process or container, the address it listens on, Docker's
port publishing, ufw and its DOCKER-USER block, the VM's addresses and network
mode, and it can make a real ``ping``/``pong`` round trip to any address (the host's
LAN address sends the connection out through the host's forwarding and back).

Gathering facts (files in /proc, ``ip``, ``iptables``, ufw's files, the Docker API,
sockets) is kept apart from the diagnosis, which is a set of pure functions of
those facts, so every verdict can be tested without a machine to break.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import errno
import http.client
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_PORT = 12345
DEFAULT_LAN = "10.0.108.0/24"
DEFAULT_TIMEOUT = 3.0
FIREWALL_TAG = "classcord-vm-firewall"
FIREWALL_MARK = f"# BEGIN {FIREWALL_TAG}"
VBOX_NAT_NET = ipaddress.IPv4Network("10.0.2.0/24")
VBOX_NAT_GATEWAY = ipaddress.IPv4Address("10.0.2.2")
VBOX_NATNETWORK_GATEWAY = ipaddress.IPv4Address("10.0.2.1")
VBOX_HOST_ONLY_NET = ipaddress.IPv4Network("192.168.56.0/24")
MAX_REPLY_BYTES = 65536
COMMAND_TIMEOUT = 10.0
# Interfaces that belong to containers or to virtual networks hosted here, not to
# the VM's own link to the outside.
VIRTUAL_PREFIXES = ("lo", "docker", "br-", "veth", "virbr", "vboxnet", "vmnet", "cni", "flannel")

IPv4 = ipaddress.IPv4Address
AnyAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


TITLES = {
    "server": "server",
    "listen": "listening address",
    "docker": "Docker",
    "firewall": "VM firewall (ufw)",
    "network": "VM network",
}


class Status(enum.Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclasses.dataclass(frozen=True)
class Check:
    """One verdict about one hop."""

    hop: str
    status: Status
    summary: str
    fix: str = ""
    details: tuple[str, ...] = ()
    title: str = ""  # how the hop is named for people; defaults to ``hop``

    @property
    def label(self) -> str:
        return self.title or TITLES.get(self.hop, self.hop)

    def as_dict(self) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "title": self.label,
            "status": self.status.value,
            "summary": self.summary,
            "fix": self.fix,
            "details": list(self.details),
        }


# --- facts ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Listener:
    address: AnyAddress
    port: int
    inode: int
    pid: int | None = None
    process: str = ""  # short name, e.g. "python3" or "docker-proxy"
    cmdline: str = ""

    @property
    def is_loopback(self) -> bool:
        return self.address.is_loopback

    @property
    def is_wildcard(self) -> bool:
        return self.address.is_unspecified

    @property
    def is_docker_proxy(self) -> bool:
        return self.process == "docker-proxy" or "docker-proxy" in self.cmdline

    def describe(self) -> str:
        who = f"{self.process or 'a program'}"
        if self.pid is not None:
            who += f" (pid {self.pid})"
        return f"{who} on {_host_port(self.address, self.port)}"


@dataclasses.dataclass(frozen=True)
class PublishedPort:
    host_ip: str  # "" or "0.0.0.0" means every address
    host_port: int
    container_port: int

    @property
    def loopback_only(self) -> bool:
        return _is_loopback(self.host_ip)


@dataclasses.dataclass(frozen=True)
class Container:
    name: str
    image: str
    state: str  # running, exited, restarting, created, paused, dead
    status: str  # e.g. "Up 3 minutes (healthy)"
    health: str = ""  # healthy, unhealthy, starting, or "" without a healthcheck
    ports: tuple[PublishedPort, ...] = ()

    def publishes(self, port: int) -> tuple[PublishedPort, ...]:
        return tuple(p for p in self.ports if p.host_port == port)


@dataclasses.dataclass(frozen=True)
class DockerFacts:
    reachable: bool
    error: str = ""
    installed: bool = False
    containers: tuple[Container, ...] = ()
    firewall_backend: str = ""  # "iptables", "nftables" or "" when unknown


@dataclasses.dataclass(frozen=True)
class UfwRule:
    action: str  # allow, deny, reject, limit
    route: bool  # a `ufw route` rule (FORWARD) rather than an INPUT rule
    protocol: str  # tcp, udp, any
    dport: str  # "12345", "80,443", "6000:6007" or "any"
    source: str  # "0.0.0.0/0", "10.0.108.0/24", ...
    comment: str = ""

    def covers_port(self, port: int) -> bool:
        if self.protocol not in ("tcp", "any"):
            return False
        if self.dport == "any":
            return True
        for part in self.dport.split(","):
            low, _, high = part.partition(":")
            with contextlib.suppress(ValueError):
                if int(low) <= port <= int(high or low):
                    return True
        return False

    def covers_source(self, address: IPv4) -> bool:
        if self.source in ("any", "0.0.0.0/0"):
            return True
        try:
            return address in ipaddress.ip_network(self.source, strict=False)
        except ValueError:
            return False


@dataclasses.dataclass(frozen=True)
class FirewallFacts:
    installed: bool
    readable: bool = True  # False when not root: rules and state unknown
    enabled: bool = False  # ENABLED=yes in ufw.conf (starts at boot)
    active: bool | None = None  # ufw's chains are loaded now (None: unknown)
    default_input: str = ""  # DROP, REJECT or ACCEPT
    rules: tuple[UfwRule, ...] = ()
    block_in_after_rules: bool = False
    other_docker_user_rules_in_after_rules: bool = False
    docker_user_exists: bool | None = None
    live_block_rules: int | None = None  # rules tagged classcord-vm-firewall in DOCKER-USER
    forward_jumps_to_docker_user: bool | None = None
    error: str = ""


@dataclasses.dataclass(frozen=True)
class Interface:
    name: str
    addresses: tuple[ipaddress.IPv4Interface, ...]


@dataclasses.dataclass(frozen=True)
class NetworkFacts:
    interfaces: tuple[Interface, ...]
    gateway: IPv4 | None = None
    gateway_interface: str = ""
    error: str = ""

    def outside_interfaces(self) -> tuple[Interface, ...]:
        return tuple(
            i for i in self.interfaces if not i.name.startswith(VIRTUAL_PREFIXES) and i.addresses
        )

    def local_addresses(self) -> set[AnyAddress]:
        found: set[AnyAddress] = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
        for interface in self.interfaces:
            found.update(a.ip for a in interface.addresses)
        return found


class Mode(enum.Enum):
    VBOX_NAT = "VirtualBox NAT"
    VBOX_NATNETWORK = "VirtualBox NAT Network"
    VBOX_HOST_ONLY = "VirtualBox host-only network"
    BRIDGED = "bridged (directly on the classroom LAN)"
    VMWARE_NAT = "VMware NAT (probably)"
    OTHER = "unknown network"
    NONE = "no network"


@dataclasses.dataclass(frozen=True)
class Target:
    host: str
    port: int

    def __str__(self) -> str:
        return _host_port(self.host, self.port)


class Outcome(enum.Enum):
    PONG = "pong"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    CLOSED = "closed"  # accepted, then closed without a reply
    NO_REPLY = "no-reply"  # accepted, nothing came back in time
    BAD_REPLY = "bad-reply"  # a reply that is not ClassCord's pong
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class RoundTrip:
    target: Target
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0
    local: bool = False  # the target is an address of this machine


@dataclasses.dataclass(frozen=True)
class Facts:
    port: int
    lan: ipaddress.IPv4Network
    listeners: tuple[Listener, ...]
    docker: DockerFacts
    firewall: FirewallFacts
    network: NetworkFacts
    round_trips: tuple[RoundTrip, ...]


# --- small helpers -----------------------------------------------------------------


def _host_port(host: object, port: int) -> str:
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return text == "localhost"


def _run(command: Sequence[str]) -> tuple[int, str]:
    """Run a read-only command; (exit code, stdout). 127 when it is not installed."""
    if shutil.which(command[0]) is None:
        return 127, ""
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument lists, no shell
            list(command),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 126, str(exc)
    return done.returncode, done.stdout


# --- listening sockets (/proc/net/tcp) -------------------------------------------


def _decode_proc_address(text: str) -> tuple[AnyAddress, int]:
    """``0100007F:3039`` -> (127.0.0.1, 12345); IPv6 is four little-endian words."""
    hex_address, hex_port = text.split(":")
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address: AnyAddress
    if len(words) == 4:
        address = ipaddress.IPv4Address(words)
    else:
        address = ipaddress.IPv6Address(words)
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    return address, int(hex_port, 16)


def parse_proc_net_tcp(text: str, port: int) -> list[Listener]:
    """Listening sockets on ``port`` from the text of /proc/net/tcp or tcp6."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "0A":  # 0A: TCP_LISTEN
            continue
        try:
            address, local_port = _decode_proc_address(fields[1])
            inode = int(fields[9])
        except ValueError:
            continue
        if local_port == port:
            found.append(Listener(address, local_port, inode))
    return found


def _socket_owners(inodes: set[int], proc: Path = Path("/proc")) -> dict[int, tuple[int, str, str]]:
    """inode -> (pid, name, command line), for the processes we may look into."""
    owners: dict[int, tuple[int, str, str]] = {}
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link in wanted:
                    name = (entry / "comm").read_text().strip()
                    cmdline = (
                        (entry / "cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode("utf-8", "replace")
                    )
                    owners[wanted[link]] = (int(entry.name), name, cmdline.strip())
        except OSError:
            continue
        if len(owners) == len(wanted):
            break
    return owners


def find_listeners(port: int) -> tuple[Listener, ...]:
    listeners: list[Listener] = []
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            listeners += parse_proc_net_tcp(Path(f"/proc/net/{name}").read_text(), port)
    owners = _socket_owners({item.inode for item in listeners}) if listeners else {}
    result = []
    for item in listeners:
        if item.inode in owners:
            pid, process, cmdline = owners[item.inode]
            result.append(dataclasses.replace(item, pid=pid, process=process, cmdline=cmdline))
        else:
            result.append(item)
    return tuple(result)


# --- Docker (its HTTP API on the unix socket, no docker CLI needed) ---------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def docker_socket_path(docker_host: str | None) -> str | None:
    """The unix socket of DOCKER_HOST (or the default); None for tcp:// hosts."""
    value = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if value.startswith("unix://"):
        return value[len("unix://") :]
    if value.startswith("/"):
        return value
    return None


def _docker_get(path: str, socket_path: str, timeout: float) -> Any:
    connection = _UnixHTTPConnection(socket_path, timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise OSError(f"Docker API {path}: HTTP {response.status}")
    return json.loads(body)


def _parse_health(status: str) -> str:
    for word in ("unhealthy", "healthy", "health: starting"):
        if f"({word})" in status:
            return "starting" if word == "health: starting" else word
    return ""


def parse_containers(listing: Iterable[dict[str, Any]]) -> list[Container]:
    """Containers from the Docker API's /containers/json answer."""
    containers = []
    for item in listing:
        names = item.get("Names") or ["?"]
        ports = []
        for port in item.get("Ports") or []:
            if port.get("Type") == "tcp" and port.get("PublicPort"):
                ports.append(
                    PublishedPort(
                        str(port.get("IP", "")), int(port["PublicPort"]), int(port["PrivatePort"])
                    )
                )
        status = str(item.get("Status", ""))
        containers.append(
            Container(
                name=str(names[0]).lstrip("/"),
                image=str(item.get("Image", "")),
                state=str(item.get("State", "")),
                status=status,
                health=_parse_health(status),
                ports=tuple(sorted(set(ports), key=lambda p: (p.host_port, p.host_ip))),
            )
        )
    return containers


def _wanted_ports(inspect: dict[str, Any]) -> tuple[PublishedPort, ...]:
    """Ports a stopped container would publish (HostConfig.PortBindings)."""
    bindings = (inspect.get("HostConfig") or {}).get("PortBindings") or {}
    found = []
    for key, values in bindings.items():
        number, _, protocol = str(key).partition("/")
        if protocol != "tcp":
            continue
        for value in values or []:
            with contextlib.suppress(ValueError, TypeError):
                found.append(
                    PublishedPort(str(value.get("HostIp", "")), int(value["HostPort"]), int(number))
                )
    return tuple(found)


def gather_docker(docker_host: str | None, timeout: float) -> DockerFacts:
    installed = shutil.which("dockerd") is not None or shutil.which("docker") is not None
    path = docker_socket_path(docker_host)
    if path is None:
        return DockerFacts(False, "only unix:// Docker hosts are checked", installed)
    if not os.path.exists(path):
        return DockerFacts(False, f"no Docker socket at {path}", installed)
    try:
        listing = _docker_get("/containers/json?all=1", path, timeout)
        containers = parse_containers(listing)
        detailed = []
        for container, item in zip(containers, listing, strict=True):
            found = container
            if container.state != "running" or container.ports:
                inspect = _docker_get(f"/containers/{item['Id']}/json", path, timeout)
                if container.state != "running":
                    found = dataclasses.replace(found, ports=_wanted_ports(inspect))
                health = ((inspect.get("State") or {}).get("Health") or {}).get("Status")
                if health:
                    found = dataclasses.replace(found, health=str(health))
            detailed.append(found)
        info = _docker_get("/info", path, timeout)
    except PermissionError:
        return DockerFacts(False, f"permission denied on {path} (run the doctor with sudo)", True)
    except (OSError, ValueError, KeyError, http.client.HTTPException) as exc:
        return DockerFacts(False, f"Docker does not answer on {path}: {exc}", True)
    backend = ""
    if isinstance(info, dict):
        raw = info.get("FirewallBackend")
        if isinstance(raw, dict):
            backend = str(raw.get("Driver", ""))
    return DockerFacts(True, "", True, tuple(detailed), backend)


# --- ufw and the DOCKER-USER chain -------------------------------------------------

_TUPLE = re.compile(r"^### tuple ### (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)(?: (.*))?$")


def parse_ufw_user_rules(text: str) -> list[UfwRule]:
    """Rules from ufw's user.rules, whose ``### tuple ###`` lines are its own record."""
    rules = []
    for line in text.splitlines():
        match = _TUPLE.match(line.strip())
        if not match:
            continue
        action, protocol, dport, _dst, _sport, source, _direction, extra = match.groups()
        route = action.startswith("route:")
        action = action.removeprefix("route:")
        comment = ""
        for word in (extra or "").split():
            if word.startswith("comment="):
                with contextlib.suppress(ValueError):
                    comment = bytes.fromhex(word[len("comment=") :]).decode("utf-8", "replace")
        rules.append(UfwRule(action, route, protocol, dport, source, comment))
    return rules


def _shell_value(text: str, name: str) -> str:
    match = re.search(rf"^{name}=[\"']?([^\"'\n]*)", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def gather_firewall(rootdir: str | None) -> FirewallFacts:
    root = Path(rootdir) if rootdir else Path("/")
    etc = root / "etc"
    installed = shutil.which("ufw") is not None or (etc / "ufw").is_dir()
    if not installed:
        return FirewallFacts(installed=False)
    try:
        conf = (etc / "ufw" / "ufw.conf").read_text()
        defaults = (etc / "default" / "ufw").read_text()
        user_rules = (etc / "ufw" / "user.rules").read_text()
        after_rules = (etc / "ufw" / "after.rules").read_text()
    except PermissionError:
        return FirewallFacts(True, readable=False, error="run the doctor with sudo")
    except OSError as exc:
        return FirewallFacts(True, readable=False, error=str(exc))
    enabled = _shell_value(conf, "ENABLED").lower() == "yes"
    after_lines = [line for line in after_rules.splitlines() if FIREWALL_MARK not in line]
    block = FIREWALL_MARK in after_rules
    others = any(line.startswith("-A DOCKER-USER") for line in after_lines) and not block

    active: bool | None = None
    docker_user: bool | None = None
    live: int | None = None
    jump: bool | None = None
    error = ""
    code, _ = _run(["iptables", "-n", "-L", "ufw-user-input"])
    if code in (0, 1):
        active = code == 0
        code, out = _run(["iptables", "-S", "DOCKER-USER"])
        docker_user = code == 0
        live = out.count(f"--comment {FIREWALL_TAG}") if code == 0 else 0
        code, out = _run(["iptables", "-S", "FORWARD"])
        jump = code == 0 and "-j DOCKER-USER" in out
    else:
        error = "cannot read iptables (run the doctor with sudo)"
    return FirewallFacts(
        installed=True,
        readable=True,
        enabled=enabled,
        active=active,
        default_input=_shell_value(defaults, "DEFAULT_INPUT_POLICY").upper(),
        rules=tuple(parse_ufw_user_rules(user_rules)),
        block_in_after_rules=block,
        other_docker_user_rules_in_after_rules=others,
        docker_user_exists=docker_user,
        live_block_rules=live,
        forward_jumps_to_docker_user=jump,
        error=error,
    )


# --- the VM's addresses ---------------------------------------------------------


def parse_ip_addr_json(text: str) -> list[Interface]:
    interfaces = []
    for item in json.loads(text or "[]"):
        addresses = []
        for info in item.get("addr_info") or []:
            if info.get("family") == "inet":
                with contextlib.suppress(ValueError, KeyError):
                    addresses.append(
                        ipaddress.IPv4Interface(f"{info['local']}/{info.get('prefixlen', 32)}")
                    )
        interfaces.append(Interface(str(item.get("ifname", "?")), tuple(addresses)))
    return interfaces


def gather_network() -> NetworkFacts:
    code, out = _run(["ip", "-j", "-4", "addr", "show"])
    if code != 0:
        return NetworkFacts((), error="cannot run 'ip -j addr' (iproute2 missing?)")
    try:
        interfaces = parse_ip_addr_json(out)
    except ValueError as exc:
        return NetworkFacts((), error=f"cannot read 'ip -j addr': {exc}")
    gateway: IPv4 | None = None
    gateway_interface = ""
    code, out = _run(["ip", "-j", "-4", "route", "show", "default"])
    if code == 0:
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            routes = json.loads(out or "[]")
            if routes:
                gateway = ipaddress.IPv4Address(routes[0]["gateway"])
                gateway_interface = str(routes[0].get("dev", ""))
    return NetworkFacts(tuple(interfaces), gateway, gateway_interface)


def detect_mode(network: NetworkFacts, lan: ipaddress.IPv4Network) -> tuple[Mode, IPv4 | None]:
    """The VM's network mode and its main address, from its addresses and gateway."""
    candidates = [a for i in network.outside_interfaces() for a in i.addresses]
    if not candidates:
        return Mode.NONE, None
    # Prefer the address on the default route's interface.
    main = candidates[0]
    for interface in network.outside_interfaces():
        if interface.name == network.gateway_interface and interface.addresses:
            main = interface.addresses[0]
    for address in candidates:
        if address.ip in lan:
            return Mode.BRIDGED, address.ip
    if main.ip in VBOX_NAT_NET:
        if network.gateway == VBOX_NATNETWORK_GATEWAY:
            return Mode.VBOX_NATNETWORK, main.ip
        return Mode.VBOX_NAT, main.ip
    if main.ip in VBOX_HOST_ONLY_NET:
        return Mode.VBOX_HOST_ONLY, main.ip
    gateway = network.gateway
    if (
        gateway is not None
        and gateway in main.network
        and int(gateway) & 0xFF == 2
        and main.ip in ipaddress.IPv4Network("192.168.0.0/16")
    ):
        return Mode.VMWARE_NAT, main.ip
    return Mode.OTHER, main.ip


# --- the round trip ------------------------------------------------------------


def parse_target(text: str, default_port: int) -> Target:
    """``10.0.108.90``, ``10.0.108.90:12345``, ``[::1]:12345`` or a host name."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        return Target(host, int(port) if port else default_port)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return Target(host, int(port))
    return Target(text, default_port)


def round_trip(target: Target, timeout: float, local: bool = False) -> RoundTrip:
    """Connect, send ``{"type":"ping"}`` and wait for ``{"type": "pong"}``."""
    started = time.monotonic()

    def result(outcome: Outcome, detail: str = "") -> RoundTrip:
        return RoundTrip(target, outcome, detail, time.monotonic() - started, local)

    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except ConnectionRefusedError:
        return result(Outcome.REFUSED, "connection refused")
    except TimeoutError:
        return result(Outcome.TIMEOUT, f"no answer to the connection within {timeout:g} s")
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return result(Outcome.UNREACHABLE, exc.strerror or str(exc))
        if isinstance(exc, socket.gaierror):
            return result(Outcome.UNREACHABLE, f"unknown host name: {exc}")
        return result(Outcome.ERROR, str(exc))
    with sock:
        try:
            sock.settimeout(timeout)
            sock.sendall(b'{"type":"ping"}\n')
            data = b""
            while b"\n" not in data and len(data) < MAX_REPLY_BYTES:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            return result(Outcome.NO_REPLY, f"connected, but no reply within {timeout:g} s")
        except ConnectionResetError:
            return result(Outcome.CLOSED, "connected, then reset")
        except OSError as exc:
            return result(Outcome.ERROR, str(exc))
    if not data:
        return result(Outcome.CLOSED, "connected, then closed without a reply")
    line = data.split(b"\n", 1)[0]
    try:
        reply = json.loads(line)
    except ValueError:
        return result(Outcome.BAD_REPLY, f"not JSON: {line[:60]!r}")
    if isinstance(reply, dict) and reply.get("type") == "pong":
        return result(Outcome.PONG, "pong")
    return result(Outcome.BAD_REPLY, f"unexpected reply: {line[:80].decode('utf-8', 'replace')}")


# --- diagnosis (pure) ----------------------------------------------------------


def _classcord_listeners(facts: Facts) -> tuple[Listener, ...]:
    return tuple(item for item in facts.listeners if item.port == facts.port)


def _publishing(facts: Facts) -> tuple[Container, ...]:
    return tuple(c for c in facts.docker.containers if c.publishes(facts.port))


def _running_publishers(facts: Facts) -> tuple[Container, ...]:
    return tuple(c for c in _publishing(facts) if c.state == "running")


def _uses_docker(facts: Facts) -> bool:
    return bool(_running_publishers(facts)) or any(
        item.is_docker_proxy for item in _classcord_listeners(facts)
    )


START_HINT = (
    "start the server: 'docker compose up -d' (or 'docker-compose up -d') for the "
    "container, or 'python3 -m classcord --host 0.0.0.0 --port {port}' without Docker"
)


def check_server(facts: Facts) -> Check:
    port = facts.port
    listeners = _classcord_listeners(facts)
    publishers = _publishing(facts)
    running = _running_publishers(facts)
    own = [item for item in listeners if not item.is_docker_proxy]
    stopped = [c for c in publishers if c.state != "running"]
    if running:
        container = running[0]
        if own:
            return Check(
                "server",
                Status.FAIL,
                f"port {port} is wanted twice: container '{container.name}' and "
                f"{own[0].describe()}",
                "stop the other program (an old systemd service? see "
                f"'sudo ss -ltnp sport = :{port}' and 'systemctl list-units | grep -i classcord')",
            )
        if container.health == "unhealthy":
            return Check(
                "server",
                Status.FAIL,
                f"container '{container.name}' runs but is unhealthy: the server inside does "
                "not answer its health check",
                f"read its log: 'docker logs {container.name}'",
            )
        status = Status.WARN if container.health == "starting" else Status.OK
        return Check(
            "server",
            status,
            f"container '{container.name}' is running ({container.status})",
            "wait a few seconds: its health check has not passed yet"
            if status is Status.WARN
            else "",
        )
    if stopped:
        container = stopped[0]
        detail = ""
        if own:
            detail = f"; port {port} is taken by {own[0].describe()}, so Docker cannot publish it"
        return Check(
            "server",
            Status.FAIL,
            f"container '{container.name}' is {container.state} ({container.status}){detail}",
            f"read 'docker logs {container.name}', fix the cause, then 'docker compose up -d'"
            + ("; stop the other program first" if own else ""),
        )
    if own:
        item = own[0]
        is_classcord = "classcord" in item.cmdline
        return Check(
            "server",
            Status.OK if is_classcord or not item.cmdline else Status.WARN,
            f"{item.describe()}" + ("" if is_classcord else " (is it ClassCord?)"),
            ""
            if is_classcord or not item.cmdline
            else "the round trip below tells whether it speaks ClassCord",
        )
    if listeners:  # only docker-proxy, but no container known (Docker unreadable)
        return Check("server", Status.OK, f"Docker publishes port {port} (docker-proxy)")
    return Check(
        "server",
        Status.FAIL,
        f"nothing listens on port {port} in this VM and no container publishes it",
        START_HINT.format(port=port),
    )


def check_listen(facts: Facts) -> Check:
    port = facts.port
    listeners = _classcord_listeners(facts)
    published = [p for c in _running_publishers(facts) for p in c.publishes(port)]
    if published and all(p.loopback_only for p in published):
        return Check(
            "listen",
            Status.FAIL,
            f"Docker publishes port {port} on {published[0].host_ip} only: other machines "
            "cannot connect",
            "publish on every address: CLASSCORD_BIND=0.0.0.0 in .env (compose) or "
            f"'-p {port}:12345' instead of '-p 127.0.0.1:{port}:12345', then "
            "'docker compose up -d'",
        )
    if not listeners:
        if published:
            return Check(
                "listen",
                Status.OK,
                f"Docker publishes port {port} on every address (iptables, no docker-proxy)",
            )
        return Check("listen", Status.SKIP, "no listening socket to check")
    if any(item.is_wildcard for item in listeners):
        return Check("listen", Status.OK, f"listening on every address (0.0.0.0:{port})")
    if all(item.is_loopback for item in listeners):
        return Check(
            "listen",
            Status.FAIL,
            f"the server listens on {listeners[0].address} only: other machines cannot connect",
            "restart it on every address: 'python3 -m classcord --host 0.0.0.0' "
            "(or CLASSCORD_HOST=0.0.0.0)",
        )
    addresses = ", ".join(sorted({str(item.address) for item in listeners}))
    vm_addresses = facts.network.local_addresses()
    if not any(item.address in vm_addresses for item in listeners):
        return Check(
            "listen",
            Status.FAIL,
            f"the server listens on {addresses}, which is no longer an address of this VM "
            "(DHCP gave it another one?)",
            "restart it with --host 0.0.0.0 so it does not depend on the address",
        )
    return Check(
        "listen",
        Status.WARN,
        f"the server listens on {addresses} only",
        "prefer --host 0.0.0.0: a fixed address breaks when DHCP changes it",
    )


def check_docker(facts: Facts) -> Check:
    docker = facts.docker
    if not docker.reachable:
        if docker.installed and "permission denied" in docker.error:
            return Check("docker", Status.WARN, docker.error, "sudo python3 -m classcord doctor")
        if not _uses_docker(facts):
            return Check("docker", Status.SKIP, f"Docker not checked: {docker.error}")
        return Check("docker", Status.WARN, docker.error, "run the doctor with sudo")
    if docker.firewall_backend == "nftables":
        return Check(
            "docker",
            Status.WARN,
            "Docker uses its nftables firewall backend: there is no DOCKER-USER chain, so "
            "scripts/vm-firewall.sh cannot filter its published ports",
            'use the iptables backend (remove "firewall-backend" from /etc/docker/daemon.json)',
        )
    publishers = _publishing(facts)
    if not publishers:
        running = [c.name for c in docker.containers if c.state == "running"]
        if running and not _classcord_listeners(facts):
            return Check(
                "docker",
                Status.FAIL,
                f"container(s) {', '.join(running)} run but none publishes port {facts.port}",
                f"publish it: 'ports: - \"{facts.port}:12345\"' in docker-compose.yml "
                f"or 'docker run -p {facts.port}:12345 ...'",
            )
        return Check("docker", Status.INFO, f"no container publishes port {facts.port}")
    names = ", ".join(f"{c.name} ({c.state})" for c in publishers)
    return Check("docker", Status.OK, f"port {facts.port} is published by: {names}")


def _source_problem(facts: Facts, mode: Mode, rules: Sequence[UfwRule]) -> str:
    """Why the allowed sources miss the SLAM clients, or "" when they do not."""
    if mode is Mode.VBOX_NAT:
        first = [r for r in rules if r.covers_source(VBOX_NAT_GATEWAY)]
        if not first or first[0].action not in ("allow", "limit"):
            return "with VirtualBox NAT every client arrives from 10.0.2.2"
    if mode is Mode.BRIDGED:
        for rule in rules:
            if rule.action not in ("allow", "limit"):
                continue
            if rule.source in ("any", "0.0.0.0/0"):
                return ""
            with contextlib.suppress(ValueError):
                if ipaddress.ip_network(rule.source, strict=False).overlaps(facts.lan):
                    return ""
        return f"the SLAM PCs are in {facts.lan}"
    return ""


def check_firewall(facts: Facts) -> Check:
    fw = facts.firewall
    port = facts.port
    if not fw.installed:
        return Check(
            "firewall",
            Status.INFO,
            "ufw is not installed: nothing filters the port in the VM",
            "for a real deployment: sudo apt-get install ufw, then sudo scripts/vm-firewall.sh",
        )
    if not fw.readable or fw.active is None:
        return Check(
            "firewall", Status.WARN, f"firewall not checked: {fw.error}", "run the doctor with sudo"
        )
    docker = _uses_docker(facts)
    if not fw.active:
        if fw.live_block_rules:
            return Check(
                "firewall",
                Status.FAIL,
                "ufw is stopped but its DOCKER-USER block is still loaded: every new "
                f"connection to the container's port {port} is dropped",
                "sudo scripts/vm-firewall.sh --undo (or sudo ufw enable)",
            )
        return Check(
            "firewall",
            Status.WARN,
            f"ufw is inactive: port {port} is open to anyone who reaches the VM",
            "sudo scripts/vm-firewall.sh",
        )
    mode, _ = detect_mode(facts.network, facts.lan)
    if docker:
        if fw.block_in_after_rules and not fw.live_block_rules:
            return Check(
                "firewall",
                Status.FAIL,
                "the DOCKER-USER block is in after.rules but not loaded",
                "sudo ufw reload",
            )
        if not fw.live_block_rules:
            if fw.other_docker_user_rules_in_after_rules:
                return Check(
                    "firewall",
                    Status.WARN,
                    "ufw is active with custom DOCKER-USER rules in after.rules (ufw-docker?): "
                    "check they filter the classroom, not all of 10.0.0.0/8",
                    "sudo scripts/vm-firewall.sh replaces them with a block that uses ufw's "
                    "route rules",
                )
            return Check(
                "firewall",
                Status.WARN,
                f"ufw is active but does NOT filter the container's port {port}: Docker's "
                "published ports bypass ufw's rules, so it is open to everyone",
                "sudo scripts/vm-firewall.sh (installs the DOCKER-USER block and opens the "
                "port with 'ufw route allow')",
            )
        # Route rules see the packet after Docker's DNAT: the container's port.
        inner = {p.container_port for c in _running_publishers(facts) for p in c.publishes(port)}
        port = min(inner) if inner else port
        rules = [r for r in fw.rules if r.route and r.covers_port(port)]
        kind = "route"
    else:
        rules = [r for r in fw.rules if not r.route and r.covers_port(port)]
        kind = "input"
    allowed = [r for r in rules if r.action in ("allow", "limit")]
    if not allowed and not (not docker and fw.default_input == "ACCEPT"):
        command = "ufw route allow" if kind == "route" else "ufw allow"
        return Check(
            "firewall",
            Status.FAIL,
            f"ufw blocks port {port}: no '{command}' rule for it",
            "sudo scripts/vm-firewall.sh --source <subnet> "
            "(default: the classroom LAN and 10.0.2.2)",
        )
    sources = ", ".join(sorted({r.source for r in allowed})) or "anyone (default accept)"
    problem = _source_problem(facts, mode, rules)
    if problem:
        return Check(
            "firewall",
            Status.FAIL,
            f"ufw lets in port {port} only from {sources}, but {problem}",
            f"sudo scripts/vm-firewall.sh --source {facts.lan} --source 10.0.2.2"
            if mode is Mode.VBOX_NAT
            else f"sudo scripts/vm-firewall.sh --source {facts.lan}",
        )
    where = "the container's published port" if docker else "the server"
    return Check("firewall", Status.OK, f"ufw active; {where} ({port}/tcp) allowed from {sources}")


def check_network(facts: Facts) -> Check:
    network = facts.network
    if network.error:
        return Check("network", Status.WARN, network.error)
    mode, address = detect_mode(network, facts.lan)
    port = facts.port
    if mode is Mode.NONE or address is None:
        return Check(
            "network",
            Status.FAIL,
            "this VM has no IPv4 address outside loopback and Docker",
            "check the VM's network adapter (VirtualBox: Settings > Network > Adapter 1 "
            "attached) and 'ip -br addr'",
        )
    listing = tuple(
        f"{i.name}: {', '.join(str(a) for a in i.addresses)}" for i in network.outside_interfaces()
    )
    if network.gateway:
        listing += (f"default gateway: {network.gateway} ({network.gateway_interface})",)
    host = "the host's LAN address (Windows: ipconfig, the 10.0.108.x address), not " + str(address)
    advice = {
        Mode.VBOX_NAT: (
            f"VirtualBox NAT, VM address {address}: SLAM clients use {host}; the host must "
            f"forward port {port} to guest port {port} (scripts/nat-virtualbox.sh); "
            "every client then appears as 10.0.2.2"
        ),
        Mode.VBOX_NATNETWORK: (
            f"VirtualBox NAT Network, VM address {address}: SLAM clients use {host}; add a "
            "port forwarding rule to the NAT network (scripts/nat-virtualbox.sh --natnetwork)"
        ),
        Mode.VBOX_HOST_ONLY: (
            f"VirtualBox host-only network, VM address {address}: the LAN cannot reach it; "
            "forward from the host (scripts/nat-windows-portproxy.ps1) or add a NAT or "
            "bridged adapter"
        ),
        Mode.BRIDGED: (
            f"bridged on the classroom LAN: SLAM clients use {address} port {port} "
            "directly; no forwarding on the host (note: DHCP may change this address)"
        ),
        Mode.VMWARE_NAT: (
            f"VMware NAT (probably), VM address {address}: SLAM clients use {host}; forward "
            f"port {port} in VMware's NAT settings (scripts/nat-vmware.sh)"
        ),
        Mode.OTHER: (
            f"VM address {address} (not the classroom LAN {facts.lan}): if the VM is behind "
            "NAT, SLAM clients use the host's LAN address and the host forwards the port; "
            f"if it is bridged, they use {address}"
        ),
    }[mode]
    status = Status.WARN if mode is Mode.VBOX_HOST_ONLY else Status.INFO
    return Check("network", status, advice, details=listing)


def check_round_trip(facts: Facts, trip: RoundTrip) -> Check:
    check = _check_round_trip(trip)
    if trip.local:
        title = f"round trip to {trip.target} (from inside the VM)"
    else:
        title = f"round trip through {trip.target} (the host's forwarding)"
    return dataclasses.replace(check, title=title)


def _check_round_trip(trip: RoundTrip) -> Check:
    hop = f"roundtrip {trip.target}"
    port = trip.target.port
    outcome = trip.outcome
    if outcome is Outcome.PONG:
        if trip.local:
            return Check(
                hop,
                Status.OK,
                f"pong in {trip.seconds * 1000:.0f} ms; from inside the VM this proves the "
                "server runs, not that the LAN can reach it",
            )
        return Check(
            hop,
            Status.OK,
            f"pong in {trip.seconds * 1000:.0f} ms: the path through that address works",
        )
    if trip.local:
        fixes = {
            Outcome.REFUSED: (
                f"nothing accepts connections on {trip.target}",
                START_HINT.format(port=port)
                + "; if it runs, it listens on another address: use --host 0.0.0.0",
            ),
            Outcome.CLOSED: (
                f"{trip.target} accepted the connection and closed it without a reply",
                "with Docker, the server inside the container listens on 127.0.0.1 or "
                "crashed: set CLASSCORD_HOST=0.0.0.0 in the container and read "
                "'docker logs <container>'",
            ),
        }
    else:
        fixes = {
            Outcome.REFUSED: (
                f"{trip.target} refuses the connection: nothing forwards port {port} there",
                "add the port forwarding on the host (scripts/nat-virtualbox.sh, nat-vmware.sh, "
                "nat-windows-portproxy.ps1 or nat-linux-host.sh) and check that "
                f"{trip.target.host} is the host's LAN address",
            ),
            Outcome.TIMEOUT: (
                f"no answer from {trip.target}: a firewall drops the connection, or it is not "
                "the right address",
                "on a Windows host: the Windows Defender Firewall rule for the port (Private "
                "AND Public profiles); in this VM: the ufw rule for the address clients arrive "
                "from (10.0.2.2 with VirtualBox NAT)",
            ),
            Outcome.CLOSED: (
                f"{trip.target} accepted the connection and closed it without a reply: the "
                "host forwards the port but the VM side refuses",
                "the forward points to the wrong VM address or port, or the server in the VM "
                "is down, bound to 127.0.0.1, or blocked by ufw for the host's address",
            ),
        }
    common = {
        Outcome.TIMEOUT: (
            f"no answer from {trip.target} within the timeout",
            "a firewall drops the connection",
        ),
        Outcome.UNREACHABLE: (
            f"{trip.target.host} cannot be reached from here ({trip.detail})",
            "check the address and the VM's default route ('ip route')",
        ),
        Outcome.NO_REPLY: (
            f"{trip.target} accepts connections but does not answer ping",
            "another program uses the port, or an old ClassCord without ping: check "
            f"'sudo ss -ltnp sport = :{port}'",
        ),
        Outcome.BAD_REPLY: (
            f"{trip.target} answers, but not like ClassCord ({trip.detail})",
            f"another program uses port {port}: 'sudo ss -ltnp sport = :{port}'",
        ),
        Outcome.ERROR: (f"{trip.target}: {trip.detail}", ""),
        Outcome.REFUSED: (f"{trip.target} refuses the connection", ""),
        Outcome.CLOSED: (f"{trip.target} closed the connection without a reply", ""),
    }
    summary, fix = fixes.get(outcome) or common[outcome]
    return Check(hop, Status.FAIL, summary, fix, (f"{outcome.value}: {trip.detail}",))


def diagnose(facts: Facts) -> list[Check]:
    checks = [
        check_server(facts),
        check_listen(facts),
        check_docker(facts),
        check_firewall(facts),
        check_network(facts),
    ]
    checks += [check_round_trip(facts, trip) for trip in facts.round_trips]
    return checks


def verdict(checks: Sequence[Check], has_remote_target: bool, port: int) -> str:
    failed = [c for c in checks if c.status is Status.FAIL]
    if failed:
        first = failed[0]
        return f"Broken hop: {first.label}. {first.summary}." + (
            f" Fix: {first.fix}." if first.fix else ""
        )
    advice = (
        f"Now test from a SLAM PC: 'nc -vz <host LAN address> {port}' (Linux) or "
        f"'Test-NetConnection <host LAN address> -Port {port}' (PowerShell)."
    )
    if not has_remote_target:
        return (
            "Nothing broken in what this VM can see. Give --target <host LAN address> to "
            "check the host's forwarding too. " + advice
        )
    return "Nothing broken on the path checked from here. " + advice


# --- gathering and output ----------------------------------------------------------


def gather(args: argparse.Namespace) -> Facts:
    port: int = args.port
    network = gather_network()
    local = network.local_addresses()
    targets = [Target("127.0.0.1", port)]
    _mode, main = detect_mode(network, args.lan)
    if main is not None and not args.skip_own_address:
        targets.append(Target(str(main), port))
    targets += [parse_target(text, port) for text in args.target or []]
    seen: set[Target] = set()
    trips = []
    for target in targets:
        if target in seen:
            continue
        seen.add(target)
        try:
            is_local = ipaddress.ip_address(target.host) in local
        except ValueError:
            is_local = target.host == "localhost"
        trips.append(round_trip(target, args.timeout, local=is_local))
    return Facts(
        port=port,
        lan=args.lan,
        listeners=find_listeners(port),
        docker=gather_docker(args.docker_host, args.timeout),
        firewall=gather_firewall(args.ufw_rootdir),
        network=network,
        round_trips=tuple(trips),
    )


LABELS = {
    Status.OK: "[ OK ]",
    Status.INFO: "[INFO]",
    Status.WARN: "[WARN]",
    Status.FAIL: "[FAIL]",
    Status.SKIP: "[SKIP]",
}


def render_text(facts: Facts, checks: Sequence[Check], final: str) -> str:
    lines = [f"ClassCord doctor: port {facts.port}, seen from this machine", ""]
    for check in checks:
        lines.append(f"{LABELS[check.status]} {check.label}: {check.summary}")
        lines.extend(f"         {detail}" for detail in check.details)
        if check.fix and check.status in (Status.FAIL, Status.WARN):
            lines.append(f"         fix: {check.fix}")
    lines += ["", final]
    return "\n".join(lines)


def _port_default() -> int:
    raw = os.environ.get("CLASSCORD_PORT", "")
    return int(raw) if raw.isdigit() else DEFAULT_PORT


def _network(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an IPv4 subnet: {text}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check every network hop visible from this VM (server, listening address, Docker, "
        "ufw, the VM's network mode) and make real ping/pong round trips. Run it in the VM, "
        "with sudo to see the firewall and Docker."
    )
    parser.add_argument(
        "--port",
        type=int,
        default=_port_default(),
        help=f"the port SLAM clients use [CLASSCORD_PORT or {DEFAULT_PORT}]",
    )
    parser.add_argument(
        "--target",
        action="append",
        metavar="HOST[:PORT]",
        help="also make a round trip to this address, e.g. the SISR host's LAN address "
        "(repeatable)",
    )
    parser.add_argument(
        "--lan",
        type=_network,
        default=_network(os.environ.get("CLASSCORD_LAN", DEFAULT_LAN)),
        help=f"the classroom LAN [CLASSCORD_LAN or {DEFAULT_LAN}]",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per network step [3]"
    )
    parser.add_argument(
        "--docker-host",
        default=None,
        help="Docker socket [DOCKER_HOST or unix:///var/run/docker.sock]",
    )
    parser.add_argument(
        "--ufw-rootdir",
        default=None,
        help="read ufw's configuration from this copy (as ufw --rootdir); the lab uses it",
    )
    parser.add_argument(
        "--skip-own-address",
        action="store_true",
        help="no round trip to this machine's own LAN address (only 127.0.0.1 and --target)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    facts = gather(args)
    checks = diagnose(facts)
    final = verdict(checks, bool(args.target), facts.port)
    if args.json:
        print(
            json.dumps(
                {
                    "port": facts.port,
                    "checks": [c.as_dict() for c in checks],
                    "verdict": final,
                    "ok": not any(c.status is Status.FAIL for c in checks),
                },
                indent=2,
            )
        )
    else:
        print(render_text(facts, checks, final))
    return 1 if any(c.status is Status.FAIL for c in checks) else 0
