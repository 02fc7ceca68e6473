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
those facts, so every verdict can be tested without a machine to break:

- ``facts``: the records the gathering fills in (listeners, containers, ufw
  rules, interfaces, round trips) and ``Facts``, all of them together;
- ``listeners``, ``docker``, ``firewall``, ``network``, ``roundtrip``: one source of
  facts each (/proc/net/tcp, the Docker API, ufw and iptables, ``ip``, a socket);
- ``check`` and ``diagnosis``: a ``Check`` per hop, from pure functions of ``Facts``;
- ``report``: the text and JSON output;
- this module: the command's flags, gathering every fact, and the exit code.
"""

from __future__ import annotations

import argparse
import ipaddress
import os

from classcord.config import Settings, port_from_environment
from classcord.doctor.check import Status
from classcord.doctor.diagnosis import diagnose, verdict
from classcord.doctor.docker import gather_docker
from classcord.doctor.facts import Facts, Target
from classcord.doctor.firewall import gather_firewall
from classcord.doctor.listeners import find_listeners
from classcord.doctor.network import detect_mode, gather_network
from classcord.doctor.report import render_json, render_text
from classcord.doctor.roundtrip import parse_target, round_trip
from classcord.doctor.tlshop import probe_tls, tls_checks

DEFAULT_PORT = Settings().port
DEFAULT_TLS_PORT = Settings().tls_port
DEFAULT_CAFILE = "tls/ca.pem"
DEFAULT_LAN = "10.0.108.0/24"
DEFAULT_TIMEOUT = 3.0


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
        default=port_from_environment(),
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
    parser.add_argument(
        "--tls",
        action="store_true",
        help="also check the TLS port: handshake with the class CA, the certificate's "
        "addresses and expiry, pong through it",
    )
    parser.add_argument(
        "--tls-port",
        type=int,
        default=int(os.environ.get("CLASSCORD_TLS_PORT", DEFAULT_TLS_PORT) or DEFAULT_TLS_PORT),
        help=f"with --tls: the TLS port [CLASSCORD_TLS_PORT or {DEFAULT_TLS_PORT}]",
    )
    parser.add_argument(
        "--cafile",
        default=DEFAULT_CAFILE,
        help=f"with --tls: the class CA made by scripts/tls-class-ca.sh [{DEFAULT_CAFILE}]",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    facts = gather(args)
    checks = diagnose(facts)
    if args.tls:
        # The same addresses as the plaintext round trips, on the TLS port.
        probes = [
            probe_tls(Target(trip.target.host, args.tls_port), args.cafile, args.timeout)
            for trip in facts.round_trips
        ]
        # With --target, those are the addresses students type; else the VM's own.
        targets = [parse_target(text, args.tls_port).host for text in args.target or []]
        checks += tls_checks(probes, required=targets or None)
    final = verdict(checks, bool(args.target), facts.port)
    if args.json:
        print(render_json(facts, checks, final))
    else:
        print(render_text(facts, checks, final))
    return 1 if any(c.status is Status.FAIL for c in checks) else 0
