"""Containers and their published ports, from Docker's HTTP API on its unix socket
(no docker CLI needed)."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import socket
from collections.abc import Iterable
from typing import Any

from classcord.doctor.facts import Container, DockerFacts, PublishedPort


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
