"""TLS in the container, as CONTAINERS.md's TLS section runs it, with both Compose
flavours: the class CA from scripts/tls-class-ca.sh, the docker-compose.tls.yml
override (the TLS port published, the certificate bind-mounted read-only), a
health check through TLS, a chat over TLS, a reload without drops, and TLS only."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import ssl
import time
from pathlib import Path

import pytest

from tests.conftest import require_system
from tests.support.certificates import ClassCertificates, make_class_certificates

from .conftest import (
    ROOT,
    BuiltImage,
    ComposeProject,
    Flavour,
    compose_major,
    deployed,
    new_project,
    require_compose,
    run,
    wait_healthy,
)

TLS_OVERRIDE = ROOT / "docker-compose.tls.yml"
CONTAINER_UID = "10001"


def tls_port(project: ComposeProject) -> int:
    out = project("port", "classcord", "12346").stdout.strip()
    host, _, port = out.rpartition(":")
    assert host == "127.0.0.1", out
    return int(port)


def tls_line(port: int, ca: Path, line: dict[str, object]) -> dict[str, object]:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(json.dumps(line).encode() + b"\n")
        reply = json.loads(tls.makefile("rb").readline())
        assert isinstance(reply, dict)
        return reply


def java_build(tmp_path: Path) -> Path:
    if shutil.which("javac") is None:
        require_system("a JDK (javac) is needed for the Java TLS client")
    build = tmp_path / "java"
    source = ROOT / "tests" / "support" / "java" / "TlsChat.java"
    run(["javac", "-d", str(build), str(source)], timeout=180)
    return build


@pytest.fixture
def certs(tmp_path: Path) -> ClassCertificates:
    return make_class_certificates(tmp_path / "tls", "--ip", "127.0.0.1", "--owner", CONTAINER_UID)


@pytest.mark.parametrize("major", [1, 2], ids=["compose-1.29", "compose-v2"])
def test_both_composes_accept_the_tls_override(
    major: int, certs: ClassCertificates, tmp_path: Path
) -> None:
    command = require_compose(major)
    assert compose_major(command) == major
    env = tmp_path / "tls.env"
    env.write_text(
        (ROOT / ".env.example").read_text(encoding="utf-8")
        + f"\nCLASSCORD_TLS_DIR={certs.folder / 'server'}\n",
        encoding="utf-8",
    )
    done = run(
        [*command, "--env-file", str(env), "-f", str(ROOT / "docker-compose.yml"),
         "-f", str(TLS_OVERRIDE), "config"],
        timeout=120,
    )  # fmt: skip
    assert "12346" in done.stdout
    assert "/run/classcord-tls" in done.stdout


def test_tls_in_the_container_chat_health_reload_and_tls_only(
    flavour: Flavour, image: BuiltImage, base_image: str, certs: ClassCertificates, tmp_path: Path
) -> None:
    project = new_project(flavour, image, base_image, tmp_path)
    project = dataclasses.replace(project, extra_files=(TLS_OVERRIDE,))
    server_dir = str(certs.folder / "server")
    project.settings.update({"CLASSCORD_TLS_PORT": "", "CLASSCORD_TLS_DIR": server_dir})
    register = {"type": "register", "username": "tls", "password": "pw"}
    login = {"type": "login", "username": "tls", "password": "pw"}
    with deployed(project):
        project("up", "-d", "--no-build", timeout=600)
        container = project.container_id()
        healthy = wait_healthy(container)
        print(f"{project.name} ({flavour.name}) with TLS: healthy after {healthy:.1f} s")
        port = tls_port(project)
        assert tls_line(port, certs.ca, {"type": "ping"}) == {"type": "pong"}
        assert tls_line(port, certs.ca, register) == {"type": "register", "status": "ok"}
        # The Java client of PROTOCOL.md, with the truststore the script made.
        java = run(
            ["java", "-cp", str(java_build(tmp_path)), "TlsChat", "127.0.0.1", str(port),
             str(certs.truststore), "classcord", "java"],
            timeout=120,
        )  # fmt: skip
        assert '{"type": "login", "status": "ok", "username": "java"}' in java.stdout
        # The certificate is not in the image: it is the bind mount, read-only.
        mounts = json.loads(run(["docker", "inspect", container]).stdout)[0]["Mounts"]
        tls_mount = next(m for m in mounts if m["Destination"] == "/run/classcord-tls")
        assert tls_mount["RW"] is False
        # A renewed certificate is picked up without a restart.
        renew = ("--ip", "127.0.0.1", "--renew", "--owner", CONTAINER_UID)
        make_class_certificates(certs.folder, *renew)
        project("kill", "-s", "HUP", "classcord")
        for _ in range(50):
            if "tls: certificate reloaded" in project("logs", "classcord").stdout:
                break
            time.sleep(0.2)
        assert "tls: certificate reloaded" in project("logs", "classcord").stdout
        admin = ("python", "-m", "classcord", "admin", "reload-tls")
        assert "fingerprint:" in project("exec", "-T", "classcord", *admin).stdout
        # TLS only: 12345 closes, the health check (through TLS) stays green.
        project.settings["CLASSCORD_TLS_ONLY"] = "true"
        project("up", "-d", "--no-build", timeout=600)
        wait_healthy(project.container_id())
        assert tls_line(tls_port(project), certs.ca, login)["status"] == "ok"
        assert "with TLS only" in project("logs", "classcord").stdout
