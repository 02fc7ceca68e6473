"""The TLS port of the real server process, with a Java client of our own compiled
here, as SLAM students write theirs: it proves the Java lines PROTOCOL.md gives."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_system
from tests.support.certificates import ClassCertificates, make_class_certificates
from tests.support.clients import LineClient
from tests.support.process import ServerProcess

JAVA_SOURCE = Path(__file__).resolve().parents[1] / "support" / "java" / "TlsChat.java"
TLS_LISTENING = re.compile(r"tls: listening on \S+:(\d+)")


@pytest.fixture(scope="module")
def java_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("javac") is None or shutil.which("java") is None:
        require_system("a JDK (javac, java) is needed for the Java TLS client test")
    build = tmp_path_factory.mktemp("java")
    done = subprocess.run(
        ["javac", "-d", str(build), str(JAVA_SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return build


@pytest.fixture
def certs(tmp_path: Path) -> ClassCertificates:
    if shutil.which("keytool") is None:
        require_system("keytool (from a JDK) is needed to make the Java truststore")
    return make_class_certificates(tmp_path / "tls", "--ip", "127.0.0.1")


@pytest.fixture
def tls_process(tmp_path: Path, certs: ClassCertificates) -> Iterator[tuple[ServerProcess, int]]:
    server = ServerProcess(
        tmp_path / "data",
        0,
        "--tls-cert-file",
        str(certs.cert),
        "--tls-key-file",
        str(certs.key),
        "--tls-port",
        "0",
    ).start()
    try:
        assert server.wait_for_log("tls: listening on")
        match = TLS_LISTENING.search(server.log)
        assert match, server.log
        yield server, int(match.group(1))
    finally:
        server.kill()


def run_java(
    build: Path, host: str, port: int, truststore: Path, name: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["java", "-cp", str(build), "TlsChat", host, str(port), str(truststore), "classcord", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_java_client_logs_in_and_chats_over_tls(
    java_client: Path, certs: ClassCertificates, tls_process: tuple[ServerProcess, int]
) -> None:
    server, tls_port = tls_process
    watcher = await LineClient.connect(server.port)  # a legacy client on 12345
    await watcher.account("watcher")
    done = await asyncio.to_thread(
        run_java, java_client, "127.0.0.1", tls_port, certs.truststore, "java"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        '{"type": "register", "status": "ok"}',
        '{"type": "login", "status": "ok", "username": "java"}',
        '{"type": "pong"}',
    ]
    assert (await watcher.recv_type("message"))["content"] == "Bonjour en TLS"
    await watcher.close()


def test_the_java_client_refuses_another_ca_and_a_name_not_in_the_certificate(
    java_client: Path,
    certs: ClassCertificates,
    tls_process: tuple[ServerProcess, int],
    tmp_path: Path,
) -> None:
    server, tls_port = tls_process
    other = make_class_certificates(tmp_path / "other", "--ip", "127.0.0.1")
    done = run_java(java_client, "127.0.0.1", tls_port, other.truststore, "intruder")
    assert done.returncode != 0
    assert "PKIX path" in done.stderr
    # The certificate holds 127.0.0.1 only: "localhost" is refused, thanks to
    # setEndpointIdentificationAlgorithm("HTTPS").
    done = run_java(java_client, "localhost", tls_port, certs.truststore, "intruder")
    assert done.returncode != 0
    assert "No name matching localhost found" in done.stderr
    assert server.wait_for_log("tls: handshake failed addr=127.0.0.1")


def test_the_documented_openssl_and_client_commands_work(
    certs: ClassCertificates, tls_process: tuple[ServerProcess, int]
) -> None:
    """PROTOCOL.md's two terminal commands for the TLS port, as printed there."""
    _, tls_port = tls_process
    # Interactive, as a student types it (-quiet keeps it open after the input).
    openssl = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{tls_port}", "-CAfile", str(certs.ca),
         "-verify_return_error", "-quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert openssl.stdin is not None
        assert openssl.stdout is not None
        openssl.stdin.write('{"type":"ping"}\n')
        openssl.stdin.flush()
        ready, _, _ = select.select([openssl.stdout], [], [], 15)
        assert ready, "openssl s_client got no reply"
        assert openssl.stdout.readline().strip() == '{"type": "pong"}'
    finally:
        openssl.kill()
        openssl.communicate(timeout=10)
    client = subprocess.run(
        [sys.executable, "-m", "classcord", "client", "--tls", "--cafile", str(certs.ca),
         "--host", "127.0.0.1", "--port", str(tls_port), "--raw"],
        input='{"type":"ping"}\n', capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert client.returncode == 0, client.stderr
    assert '"type": "pong"' in client.stdout


def doctor_tls(port: int, tls_port: int, cafile: Path, tmp_path: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "classcord", "doctor", "--json", "--port", str(port),
         "--tls", "--tls-port", str(tls_port), "--cafile", str(cafile),
         "--docker-host", f"unix://{tmp_path}/no-docker.sock",
         "--ufw-rootdir", str(tmp_path / "no-ufw"),
         "--skip-own-address"],  # test traffic stays on 127.0.0.1
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    return {c["hop"]: c["status"] for c in report["checks"]}


def test_the_doctor_checks_the_tls_hop_and_the_certificate(
    certs: ClassCertificates, tls_process: tuple[ServerProcess, int], tmp_path: Path
) -> None:
    server, tls_port = tls_process
    statuses = doctor_tls(server.port, tls_port, certs.ca, tmp_path)
    assert (statuses["tls"], statuses["tls-cert"]) == ("ok", "ok")
    other = make_class_certificates(tmp_path / "other", "--ip", "127.0.0.1")
    assert doctor_tls(server.port, tls_port, other.ca, tmp_path)["tls"] == "fail"


def test_the_doctor_does_not_blame_the_certificate_for_its_own_loopback(
    tmp_path: Path,
) -> None:
    """127.0.0.1 is how the doctor gets in, not an address students type (the lab
    shows a missing LAN address named as the fault)."""
    named_only = make_class_certificates(tmp_path / "tls", "--name", "classcord.lan")
    server = ServerProcess(
        tmp_path / "data", 0, "--tls-cert-file", str(named_only.cert),
        "--tls-key-file", str(named_only.key), "--tls-port", "0",
    ).start()  # fmt: skip
    try:
        assert server.wait_for_log("tls: listening on")
        match = TLS_LISTENING.search(server.log)
        assert match
        statuses = doctor_tls(server.port, int(match.group(1)), named_only.ca, tmp_path)
        assert (statuses["tls"], statuses["tls-cert"]) == ("ok", "ok")
    finally:
        server.kill()


def test_sighup_and_admin_reload_tls_keep_connections(
    certs: ClassCertificates, tls_process: tuple[ServerProcess, int], tmp_path: Path
) -> None:
    import signal
    import socket
    import ssl

    server, tls_port = tls_process
    context = ssl.create_default_context(cafile=str(certs.ca))
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw:
        kept = context.wrap_socket(raw, server_hostname="127.0.0.1")
        before = kept.getpeercert(binary_form=True)
        make_class_certificates(certs.folder, "--ip", "127.0.0.1", "--renew")  # same files
        server.signal(signal.SIGHUP)
        assert server.wait_for_log("tls: certificate reloaded")
        kept.sendall(b'{"type":"ping"}\n')
        assert kept.makefile("rb").readline() == b'{"type": "pong"}\n'  # not dropped
        with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw2:
            fresh = context.wrap_socket(raw2, server_hostname="127.0.0.1")
            assert fresh.getpeercert(binary_form=True) != before
            fresh.close()
        kept.close()
    done = subprocess.run(
        [sys.executable, "-m", "classcord", "admin", "reload-tls", "--data-dir",
         str(server.data_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "fingerprint:" in done.stdout


def test_tls_only_closes_12345_and_the_tls_healthcheck_passes(
    certs: ClassCertificates, tmp_path: Path
) -> None:
    server = ServerProcess(
        tmp_path / "data", 0, "--tls-cert-file", str(certs.cert), "--tls-key-file",
        str(certs.key), "--tls-port", "0", "--tls-only", "true",
    ).start()  # fmt: skip
    try:
        assert "with TLS only" in server.log
        assert f"tls: listening on 127.0.0.1:{server.port}" in server.log
        plain = subprocess.run(
            [sys.executable, "-m", "classcord", "healthcheck", "--port", str(server.port),
             "--data-dir", str(server.data_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert plain.returncode == 1  # TLS only: a plaintext ping gets nowhere
        for extra in (["--cafile", str(certs.ca)], []):
            env = dict(os.environ, CLASSCORD_TLS_CERT_FILE=str(certs.cert))
            done = subprocess.run(
                [sys.executable, "-m", "classcord", "healthcheck", "--tls", "--port",
                 str(server.port), "--data-dir", str(server.data_path), *extra],
                capture_output=True, text=True, timeout=30, check=False, env=env,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stdout.startswith("healthy:")
    finally:
        server.kill()
