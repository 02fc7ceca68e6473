"""What the doctor found on this machine: plain records, filled by the gathering
modules (listeners, docker, firewall, network, roundtrip) and read by the diagnosis."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import ipaddress

# Interfaces that belong to containers or to virtual networks hosted here, not to
# the VM's own link to the outside.
VIRTUAL_PREFIXES = ("lo", "docker", "br-", "veth", "virbr", "vboxnet", "vmnet", "cni", "flannel")

IPv4 = ipaddress.IPv4Address
AnyAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def _host_port(host: object, port: int) -> str:
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return text == "localhost"
