"""The doctor: parsers and verdicts on made-up facts (no machine needed), round
trips against small servers on 127.0.0.1, and the command against the real server."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from classcord.doctor.check import Check, Status
from classcord.doctor.diagnosis import check_round_trip, diagnose, verdict
from classcord.doctor.docker import docker_socket_path, gather_docker, parse_containers
from classcord.doctor.facts import (
    Container,
    DockerFacts,
    Facts,
    FirewallFacts,
    Interface,
    Listener,
    Mode,
    NetworkFacts,
    Outcome,
    PublishedPort,
    RoundTrip,
    Target,
    UfwRule,
)
from classcord.doctor.firewall import parse_ufw_user_rules
from classcord.doctor.listeners import find_listeners, parse_proc_net_tcp
from classcord.doctor.network import detect_mode, parse_ip_addr_json
from classcord.doctor.roundtrip import parse_target, round_trip

LAN = ipaddress.IPv4Network("10.0.108.0/24")
PORT = 12345
ANY = ipaddress.ip_address("0.0.0.0")
LOCALHOST = ipaddress.ip_address("127.0.0.1")


# --- parsers -----------------------------------------------------------------------

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:3039 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1
   1: 00000000:3039 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1
   2: 0F02000A:3039 0202000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 3333 1
   3: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1
"""

PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:3039 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5555 1
   1: 0000000000000000FFFF00000100007F:3039 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6666 1
"""  # noqa: E501


def test_proc_net_tcp_listeners_on_the_port() -> None:
    found = parse_proc_net_tcp(PROC_NET_TCP, PORT)
    assert [(str(item.address), item.inode) for item in found] == [
        ("127.0.0.1", 1111),
        ("0.0.0.0", 2222),
    ]
    assert found[0].is_loopback
    assert found[1].is_wildcard


def test_proc_net_tcp6_listeners_and_v4_mapped_addresses() -> None:
    found = parse_proc_net_tcp(PROC_NET_TCP6, PORT)
    assert [str(item.address) for item in found] == ["::", "127.0.0.1"]


def test_listeners_of_this_process_are_found_with_their_owner() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        found = find_listeners(port)
    assert [str(item.address) for item in found] == ["127.0.0.1"]
    assert found[0].pid is not None
    assert "python" in found[0].process


UFW_USER_RULES = """\
*filter
:ufw-user-input - [0:0]
### RULES ###

### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in comment=636c617373636f72642d737368
-A ufw-user-input -p tcp --dport 22 -j ACCEPT

### tuple ### allow tcp 12345 0.0.0.0/0 any 10.0.108.0/24 in comment=636c617373636f72642d766d2d6669726577616c6c
-A ufw-user-input -p tcp --dport 12345 -s 10.0.108.0/24 -j ACCEPT

### tuple ### route:allow tcp 12345 0.0.0.0/0 any 10.0.2.2 in
-A ufw-user-forward -p tcp --dport 12345 -s 10.0.2.2 -j ACCEPT

### tuple ### deny any 6000:6007 0.0.0.0/0 any 0.0.0.0/0 in
### END RULES ###
"""  # noqa: E501


def test_ufw_user_rules_are_read_from_the_tuples() -> None:
    rules = parse_ufw_user_rules(UFW_USER_RULES)
    assert rules == [
        UfwRule("allow", False, "tcp", "22", "0.0.0.0/0", "classcord-ssh"),
        UfwRule("allow", False, "tcp", "12345", "10.0.108.0/24", "classcord-vm-firewall"),
        UfwRule("allow", True, "tcp", "12345", "10.0.2.2", ""),
        UfwRule("deny", False, "any", "6000:6007", "0.0.0.0/0", ""),
    ]


@pytest.mark.parametrize(
    ("dport", "protocol", "covered"),
    [
        ("12345", "tcp", True),
        ("12345", "udp", False),
        ("any", "any", True),
        ("80,12345", "tcp", True),
        ("12000:13000", "tcp", True),
        ("6000:6007", "tcp", False),
        ("22", "tcp", False),
    ],
)
def test_ufw_rule_ports(dport: str, protocol: str, covered: bool) -> None:
    assert UfwRule("allow", False, protocol, dport, "any").covers_port(PORT) is covered


def test_ufw_rule_sources() -> None:
    rule = UfwRule("allow", True, "tcp", "12345", "10.0.108.0/24")
    assert rule.covers_source(ipaddress.IPv4Address("10.0.108.20"))
    assert not rule.covers_source(ipaddress.IPv4Address("10.0.2.2"))
    assert UfwRule("allow", True, "tcp", "12345", "0.0.0.0/0").covers_source(
        ipaddress.IPv4Address("10.0.2.2")
    )


DOCKER_PS = [
    {
        "Id": "a" * 64,
        "Names": ["/classcord-classcord-1"],
        "Image": "classcord:1.0.0",
        "State": "running",
        "Status": "Up 3 minutes (healthy)",
        "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 12345, "PublicPort": 12345, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 12345, "PublicPort": 12345, "Type": "tcp"},
        ],
    },
    {
        "Id": "b" * 64,
        "Names": ["/other"],
        "Image": "nginx",
        "State": "exited",
        "Status": "Exited (0) 2 hours ago",
        "Ports": [],
    },
]


def test_docker_containers_from_the_api() -> None:
    first, second = parse_containers(DOCKER_PS)
    assert first.name == "classcord-classcord-1"
    assert first.health == "healthy"
    assert {p.host_ip for p in first.publishes(PORT)} == {"0.0.0.0", "::"}
    assert second.state == "exited"
    assert second.publishes(PORT) == ()


def test_docker_socket_from_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert docker_socket_path(None) == "/var/run/docker.sock"
    assert docker_socket_path("unix:///run/lab/docker.sock") == "/run/lab/docker.sock"
    assert docker_socket_path("tcp://10.0.0.1:2375") is None
    monkeypatch.setenv("DOCKER_HOST", "unix:///x.sock")
    assert docker_socket_path(None) == "/x.sock"


def test_docker_unreachable_is_reported_not_raised(tmp_path: Path) -> None:
    facts = gather_docker(f"unix://{tmp_path}/missing.sock", 1.0)
    assert not facts.reachable
    assert "no Docker socket" in facts.error


IP_ADDR_JSON = json.dumps(
    [
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {
            "ifname": "enp0s3",
            "addr_info": [
                {"family": "inet", "local": "10.0.2.15", "prefixlen": 24},
                {"family": "inet6", "local": "fe80::1", "prefixlen": 64},
            ],
        },
        {
            "ifname": "docker0",
            "addr_info": [{"family": "inet", "local": "172.17.0.1", "prefixlen": 16}],
        },
    ]
)


def test_ip_addr_json() -> None:
    interfaces = parse_ip_addr_json(IP_ADDR_JSON)
    assert [i.name for i in interfaces] == ["lo", "enp0s3", "docker0"]
    network = NetworkFacts(tuple(interfaces))
    assert [i.name for i in network.outside_interfaces()] == ["enp0s3"]


def network(address: str, gateway: str | None, name: str = "enp0s3") -> NetworkFacts:
    return NetworkFacts(
        (
            Interface("lo", (ipaddress.IPv4Interface("127.0.0.1/8"),)),
            Interface(name, (ipaddress.IPv4Interface(address),)),
            Interface("docker0", (ipaddress.IPv4Interface("172.17.0.1/16"),)),
        ),
        ipaddress.IPv4Address(gateway) if gateway else None,
        name if gateway else "",
    )


@pytest.mark.parametrize(
    ("address", "gateway", "mode"),
    [
        ("10.0.2.15/24", "10.0.2.2", Mode.VBOX_NAT),
        ("10.0.2.4/24", "10.0.2.1", Mode.VBOX_NATNETWORK),
        ("192.168.56.101/24", None, Mode.VBOX_HOST_ONLY),
        ("10.0.108.150/24", "10.0.108.254", Mode.BRIDGED),
        ("192.168.133.128/24", "192.168.133.2", Mode.VMWARE_NAT),
        ("172.20.0.5/16", "172.20.0.1", Mode.OTHER),
    ],
)
def test_network_mode(address: str, gateway: str | None, mode: Mode) -> None:
    found, main = detect_mode(network(address, gateway), LAN)
    assert found is mode
    assert str(main) == address.split("/", maxsplit=1)[0]


def test_no_network() -> None:
    lonely = NetworkFacts((Interface("lo", (ipaddress.IPv4Interface("127.0.0.1/8"),)),))
    assert detect_mode(lonely, LAN) == (Mode.NONE, None)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("10.0.108.90", Target("10.0.108.90", PORT)),
        ("10.0.108.90:2000", Target("10.0.108.90", 2000)),
        ("[::1]:2000", Target("::1", 2000)),
        ("[::1]", Target("::1", PORT)),
        ("sisr-pc.lan", Target("sisr-pc.lan", PORT)),
    ],
)
def test_targets(text: str, target: Target) -> None:
    assert parse_target(text, PORT) == target


# --- verdicts on made-up facts -----------------------------------------------------

CLASSCORD = "python3 -m classcord serve --host 0.0.0.0"
NO_DOCKER = DockerFacts(False, "no Docker socket at /var/run/docker.sock")
NO_UFW = FirewallFacts(installed=False)
NAT_VM = network("10.0.2.15/24", "10.0.2.2")
BRIDGED_VM = network("10.0.108.150/24", "10.0.108.254")


def facts(**changes: object) -> Facts:
    base = Facts(
        port=PORT,
        lan=LAN,
        listeners=(Listener(ANY, PORT, 1, 42, "python3", CLASSCORD),),
        docker=NO_DOCKER,
        firewall=NO_UFW,
        network=NAT_VM,
        round_trips=(),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def by_hop(checks: list[Check]) -> dict[str, Check]:
    return {check.hop: check for check in checks}


def container(**changes: object) -> Container:
    base = Container(
        "classcord-classcord-1",
        "classcord:1.0.0",
        "running",
        "Up 5 minutes (healthy)",
        "healthy",
        (PublishedPort("0.0.0.0", PORT, 12345),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


PROXY = Listener(ANY, PORT, 7, 99, "docker-proxy", "/usr/bin/docker-proxy -proto tcp")


def docker_facts(*containers: Container) -> DockerFacts:
    return DockerFacts(True, "", True, containers, "iptables")


def ufw(**changes: object) -> FirewallFacts:
    base = FirewallFacts(
        installed=True,
        enabled=True,
        active=True,
        default_input="DROP",
        rules=(
            UfwRule("allow", False, "tcp", "22", "0.0.0.0/0"),
            UfwRule("allow", True, "tcp", "12345", "10.0.108.0/24"),
            UfwRule("allow", True, "tcp", "12345", "10.0.2.2"),
        ),
        block_in_after_rules=True,
        docker_user_exists=True,
        live_block_rules=4,
        forward_jumps_to_docker_user=True,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_healthy_plain_server() -> None:
    checks = by_hop(diagnose(facts()))
    assert checks["server"].status is Status.OK
    assert checks["listen"].status is Status.OK
    assert checks["docker"].status is Status.SKIP
    assert "VirtualBox NAT" in checks["network"].summary


def test_nothing_listening() -> None:
    check = by_hop(diagnose(facts(listeners=())))["server"]
    assert check.status is Status.FAIL
    assert "nothing listens on port 12345" in check.summary
    assert "--host 0.0.0.0" in check.fix


def test_server_bound_to_localhost() -> None:
    listener = Listener(LOCALHOST, PORT, 1, 42, "python3", "python3 -m classcord")
    check = by_hop(diagnose(facts(listeners=(listener,))))["listen"]
    assert check.status is Status.FAIL
    assert "127.0.0.1 only" in check.summary
    assert "--host 0.0.0.0" in check.fix


def test_server_bound_to_an_address_the_vm_lost() -> None:
    listener = Listener(ipaddress.ip_address("10.0.2.99"), PORT, 1, 42, "python3", CLASSCORD)
    check = by_hop(diagnose(facts(listeners=(listener,))))["listen"]
    assert check.status is Status.FAIL
    assert "DHCP" in check.summary


def test_container_running_and_healthy() -> None:
    checks = by_hop(diagnose(facts(listeners=(PROXY,), docker=docker_facts(container()))))
    assert checks["server"].status is Status.OK
    assert "classcord-classcord-1" in checks["server"].summary
    assert checks["listen"].status is Status.OK
    assert checks["docker"].status is Status.OK


def test_container_unhealthy() -> None:
    sick = container(status="Up 2 minutes (unhealthy)", health="unhealthy")
    check = by_hop(diagnose(facts(listeners=(PROXY,), docker=docker_facts(sick))))["server"]
    assert check.status is Status.FAIL
    assert "docker logs classcord-classcord-1" in check.fix


def test_container_published_on_localhost_only() -> None:
    local = container(ports=(PublishedPort("127.0.0.1", PORT, 12345),))
    proxy = dataclasses.replace(PROXY, address=LOCALHOST)
    check = by_hop(diagnose(facts(listeners=(proxy,), docker=docker_facts(local))))["listen"]
    assert check.status is Status.FAIL
    assert "CLASSCORD_BIND=0.0.0.0" in check.fix


def test_port_taken_by_an_old_service_so_the_container_cannot_start() -> None:
    stuck = container(state="created", status="Created", health="")
    check = by_hop(diagnose(facts(docker=docker_facts(stuck))))["server"]
    assert check.status is Status.FAIL
    assert "taken by python3 (pid 42)" in check.summary


def test_container_runs_but_publishes_nothing() -> None:
    bare = container(ports=())
    check = by_hop(diagnose(facts(listeners=(), docker=docker_facts(bare))))["docker"]
    assert check.status is Status.FAIL
    assert "none publishes port 12345" in check.summary


def test_docker_nftables_backend_has_no_docker_user() -> None:
    nft = dataclasses.replace(docker_facts(container()), firewall_backend="nftables")
    check = by_hop(diagnose(facts(listeners=(PROXY,), docker=nft)))["docker"]
    assert check.status is Status.WARN
    assert "DOCKER-USER" in check.summary


def docker_firewall(**changes: object) -> Check:
    state = facts(listeners=(PROXY,), docker=docker_facts(container()), firewall=ufw(**changes))
    return by_hop(diagnose(state))["firewall"]


def test_firewall_with_the_block_and_the_route_rules() -> None:
    check = docker_firewall()
    assert check.status is Status.OK
    assert "10.0.2.2" in check.summary


def test_firewall_route_rules_use_the_container_port() -> None:
    """CLASSCORD_PORT=2000 publishes 2000 -> 12345: ufw route rules see 12345."""
    moved = container(ports=(PublishedPort("0.0.0.0", 2000, 12345),))
    proxy = dataclasses.replace(PROXY, port=2000)
    state = facts(port=2000, listeners=(proxy,), docker=docker_facts(moved), firewall=ufw())
    assert by_hop(diagnose(state))["firewall"].status is Status.OK


def test_firewall_active_without_the_block_leaves_the_container_open() -> None:
    check = docker_firewall(block_in_after_rules=False, live_block_rules=0)
    assert check.status is Status.WARN
    assert "does NOT filter" in check.summary
    assert "vm-firewall.sh" in check.fix


def test_firewall_block_written_but_not_loaded() -> None:
    check = docker_firewall(live_block_rules=0)
    assert check.status is Status.FAIL
    assert check.fix == "sudo ufw reload"


def test_firewall_block_without_route_rules_drops_everyone() -> None:
    check = docker_firewall(rules=(UfwRule("allow", False, "tcp", "12345", "10.0.108.0/24"),))
    assert check.status is Status.FAIL
    assert "ufw route allow" in check.summary


def test_firewall_behind_virtualbox_nat_must_allow_10_0_2_2() -> None:
    check = docker_firewall(rules=(UfwRule("allow", True, "tcp", "12345", "10.0.108.0/24"),))
    assert check.status is Status.FAIL
    assert "10.0.2.2" in check.summary
    assert "--source 10.0.2.2" in check.fix


def test_firewall_stopped_with_the_block_still_loaded_blocks_everyone() -> None:
    check = docker_firewall(active=False, enabled=False)
    assert check.status is Status.FAIL
    assert "--undo" in check.fix


def test_firewall_inactive() -> None:
    check = docker_firewall(active=False, live_block_rules=0)
    assert check.status is Status.WARN
    assert "open to anyone" in check.summary


def test_firewall_for_a_plain_server_in_bridged_mode() -> None:
    rules = (UfwRule("allow", False, "tcp", "12345", "10.0.108.20"),)
    state = facts(network=BRIDGED_VM, firewall=ufw(rules=rules, block_in_after_rules=False))
    assert by_hop(diagnose(state))["firewall"].status is Status.OK
    rules = (UfwRule("allow", False, "tcp", "12345", "192.168.1.0/24"),)
    state = facts(network=BRIDGED_VM, firewall=ufw(rules=rules))
    check = by_hop(diagnose(state))["firewall"]
    assert check.status is Status.FAIL
    assert "10.0.108.0/24" in check.summary


def test_firewall_blocks_a_plain_server() -> None:
    state = facts(firewall=ufw(rules=(UfwRule("allow", False, "tcp", "22", "0.0.0.0/0"),)))
    check = by_hop(diagnose(state))["firewall"]
    assert check.status is Status.FAIL
    assert "'ufw allow'" in check.summary


def test_firewall_not_readable_without_root() -> None:
    state = facts(firewall=FirewallFacts(True, readable=False, error="run the doctor with sudo"))
    assert by_hop(diagnose(state))["firewall"].status is Status.WARN


def trip(outcome: Outcome, host: str = "10.0.108.90", local: bool = False) -> Check:
    result = RoundTrip(Target(host, PORT), outcome, "detail", 0.01, local)
    return check_round_trip(facts(), result)


def test_round_trip_verdicts() -> None:
    assert trip(Outcome.PONG).status is Status.OK
    refused = trip(Outcome.REFUSED)
    assert "nothing forwards port 12345" in refused.summary
    assert "nat-virtualbox.sh" in refused.fix
    assert "Public" in trip(Outcome.TIMEOUT).fix
    assert "forwards the port but the VM side refuses" in trip(Outcome.CLOSED).summary
    assert "not like ClassCord" in trip(Outcome.BAD_REPLY).summary
    assert "does not answer ping" in trip(Outcome.NO_REPLY).summary
    local_refused = trip(Outcome.REFUSED, "127.0.0.1", local=True)
    assert "nothing accepts connections" in local_refused.summary
    assert "CLASSCORD_HOST=0.0.0.0" in trip(Outcome.CLOSED, "127.0.0.1", local=True).fix
    assert "host's forwarding" in refused.label
    assert "inside the VM" in local_refused.label


def test_verdict_names_the_first_broken_hop() -> None:
    listener = Listener(LOCALHOST, PORT, 1, 42, "python3", CLASSCORD)
    checks = diagnose(facts(listeners=(listener,)))
    assert verdict(checks, False, PORT).startswith("Broken hop: listening address.")
    healthy = diagnose(facts())
    final = verdict(healthy, False, PORT)
    assert "--target" in final
    assert "Test-NetConnection" in final


# --- round trips over real sockets on 127.0.0.1 ----------------------------------


@pytest.fixture
def tiny_server() -> Iterator[Callable[[Callable[[socket.socket], None]], Target]]:
    """A one-connection TCP server on 127.0.0.1 port 0 running ``behaviour``."""
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(behaviour: Callable[[socket.socket], None]) -> Target:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    behaviour(conn)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return Target("127.0.0.1", listener.getsockname()[1])

    yield start
    for listener in listeners:
        listener.close()
    for thread in threads:
        thread.join(5)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def test_round_trip_pong(tiny_server: Callable[..., Target]) -> None:
    def pong(conn: socket.socket) -> None:
        assert json.loads(_read_line(conn)) == {"type": "ping"}
        conn.sendall(b'{"type": "pong"}\n')

    assert round_trip(tiny_server(pong), 2.0).outcome is Outcome.PONG


def test_round_trip_other_program(tiny_server: Callable[..., Target]) -> None:
    def http(conn: socket.socket) -> None:
        _read_line(conn)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    result = round_trip(tiny_server(http), 2.0)
    assert result.outcome is Outcome.BAD_REPLY
    assert "HTTP" in result.detail


def test_round_trip_closed_without_reply(tiny_server: Callable[..., Target]) -> None:
    def close(conn: socket.socket) -> None:
        _read_line(conn)

    assert round_trip(tiny_server(close), 2.0).outcome is Outcome.CLOSED


def test_round_trip_silent(tiny_server: Callable[..., Target]) -> None:
    done = threading.Event()

    def silent(conn: socket.socket) -> None:
        _read_line(conn)
        done.wait(5)

    result = round_trip(tiny_server(silent), 0.3)
    done.set()
    assert result.outcome is Outcome.NO_REPLY


def test_round_trip_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        assert round_trip(Target("127.0.0.1", port), 2.0).outcome is Outcome.REFUSED
