"""The diagnosis: pure functions from the gathered facts to one verdict per hop,
and the final sentence that names the first broken hop."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
from collections.abc import Sequence

from classcord.doctor.check import Check, Status
from classcord.doctor.facts import Container, Facts, Listener, Mode, Outcome, RoundTrip, UfwRule
from classcord.doctor.network import VBOX_NAT_GATEWAY, detect_mode


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
