"""The TLS port in process: the same protocol as 12345, handshakes that fail or
stall are logged and delay nobody, and a certificate reload drops nobody."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from classcord import tls
from classcord.cli import start_server
from classcord.config import Settings
from classcord.errors import SettingsError
from classcord.server import ClassCordServer
from tests.conftest import make_settings
from tests.support.certificates import (
    ClassCertificates,
    make_class_certificates,
    make_expired_certificate,
)
from tests.support.clients import LineClient


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> ClassCertificates:
    return make_class_certificates(
        tmp_path_factory.mktemp("tls"), "--ip", "127.0.0.1", "--name", "localhost"
    )


@dataclass
class TlsServer:
    server: ClassCordServer

    @property
    def context(self) -> ssl.SSLContext:
        assert self.server.tls is not None
        return self.server.tls.context

    @property
    def tls_port(self) -> int:
        assert self.server.tls is not None
        assert self.server.tls.port is not None
        return self.server.tls.port


@pytest.fixture
async def tls_server(tmp_path: Path, certs: ClassCertificates) -> AsyncIterator[TlsServer]:
    settings: Settings = make_settings(
        tmp_path / "data",
        tls_cert_file=str(certs.cert),
        tls_key_file=str(certs.key),
        tls_port=0,
        tls_handshake_timeout=1.0,
    )
    server = await start_server(settings)  # composed as `serve` composes it
    yield TlsServer(server)
    await server.shutdown()


async def tls_client(port: int, cafile: Path, host: str = "127.0.0.1") -> LineClient:
    context = tls.client_context(str(cafile), None)
    return await LineClient.connect(port, ssl=context, server_hostname=host)


async def test_the_full_protocol_on_the_tls_port_with_a_plaintext_peer(
    tls_server: TlsServer, certs: ClassCertificates
) -> None:
    secure = await tls_client(tls_server.tls_port, certs.ca)
    plain = await LineClient.connect(tls_server.server.port)
    await secure.account("alice")
    await plain.account("bob")
    assert (await secure.recv())["user"] == "bob"
    await plain.send({"type": "message", "content": "salut"})
    got = await secure.recv()
    assert (got["from"], got["content"]) == ("bob", "salut")
    await secure.send({"type": "message", "subtype": "private", "to": "bob", "content": "chut"})
    assert (await plain.recv())["content"] == "chut"
    cert = secure.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert len(tls.fingerprint(cert).split(":")) == 32
    for client in (secure, plain):
        await client.close()


async def test_a_client_without_the_class_ca_refuses_and_the_server_logs_it(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    context = tls.client_context(None, None)  # the system's CAs only
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await LineClient.connect(tls_server.tls_port, ssl=context, server_hostname="127.0.0.1")
    assert "donnez --cafile" in tls.explain_verification_error(caught.value)
    for _ in range(50):
        if "tls: handshake failed" in caught_text(caplog):
            break
        await asyncio.sleep(0.02)
    assert "tls: handshake failed addr=127.0.0.1 reason=" in caught_text(caplog)


def caught_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


async def test_a_wrong_host_name_is_refused(
    tls_server: TlsServer, certs: ClassCertificates
) -> None:
    context = tls.client_context(str(certs.ca), None)
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await LineClient.connect(tls_server.tls_port, ssl=context, server_hostname="10.9.9.9")
    assert "ne couvre pas cette adresse" in tls.explain_verification_error(caught.value)


async def test_an_expired_certificate_is_refused(
    tmp_path: Path, certs: ClassCertificates, tls_server: TlsServer
) -> None:
    pem, key = make_expired_certificate(certs, tmp_path / "expired")
    tls.load_certificate(tls_server.context, pem, key)
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await tls_client(tls_server.tls_port, certs.ca)
    assert "expiré" in tls.explain_verification_error(caught.value)


async def test_plaintext_sent_to_the_tls_port_is_refused_and_logged(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="classcord.tls")
    client = await LineClient.connect(tls_server.tls_port)
    await client.send({"type": "ping"})
    assert await client.closed()
    await client.close()
    for _ in range(50):
        if "tls: handshake failed" in caught_text(caplog):
            break
        await asyncio.sleep(0.02)
    assert "tls: handshake failed addr=127.0.0.1 reason=" in caught_text(caplog)


async def test_a_stalled_handshake_delays_nobody_and_times_out(
    tls_server: TlsServer, certs: ClassCertificates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="classcord.tls")
    stalled = [await LineClient.connect(tls_server.tls_port) for _ in range(20)]  # never hello
    loop = asyncio.get_running_loop()
    started = loop.time()
    quick = await tls_client(tls_server.tls_port, certs.ca)
    await quick.account("quick")
    assert loop.time() - started < 1.0  # well under the 1 s handshake deadline
    for client in stalled:
        assert await client.closed(timeout=5)
        await client.close()
    assert "reason=handshake timed out" in caught_text(caplog)
    await quick.close()


async def test_a_reload_keeps_connections_and_new_ones_get_the_new_certificate(
    tls_server: TlsServer, certs: ClassCertificates, tmp_path: Path
) -> None:
    before = await tls_client(tls_server.tls_port, certs.ca)
    await before.account("alice")
    old = before.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    mine = tmp_path / "class"  # the shared certificates stay as they are
    shutil.copytree(certs.folder, mine)
    renewed = make_class_certificates(mine, "--ip", "127.0.0.1", "--renew")
    tls.load_certificate(tls_server.context, renewed.cert, renewed.key)
    after = await tls_client(tls_server.tls_port, certs.ca)
    new = after.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert new != old
    assert await before.ping_ms() >= 0  # still connected, same session
    with contextlib.suppress(ConnectionError):
        await after.close()
    await before.close()


def test_a_pinned_fingerprint_is_checked(certs: ClassCertificates) -> None:
    der = ssl.PEM_cert_to_DER_cert(certs.cert.read_text(encoding="ascii"))
    good = tls.fingerprint(der)
    assert tls.check_pin(der, good) is None
    assert tls.check_pin(der, good.replace(":", "").lower()) is None
    assert "is not the expected" in (tls.check_pin(der, "00" * 32) or "")


async def test_the_terminal_client_over_tls_checks_the_certificate(
    tls_server: TlsServer, certs: ClassCertificates, tmp_path: Path
) -> None:
    from classcord.client.connection import TlsOptions, open_session
    from tests.asyncio.test_client import ScriptConsole

    port = tls_server.tls_port
    console = ScriptConsole(['{"type":"ping"}'])
    tls_ok = TlsOptions(str(certs.ca), None)
    code = await open_session("127.0.0.1", port, console, raw=True, wait=0.3, tls=tls_ok)
    assert code == 0
    assert console.shown[0] == '{\n  "type": "pong"\n}'

    other = make_class_certificates(tmp_path / "other-class", "--ip", "127.0.0.1")
    console = ScriptConsole(["/quit"])
    wrong_ca = TlsOptions(str(other.ca), None)
    assert await open_session("127.0.0.1", port, console, tls=wrong_ca) == 1
    assert "certificat refusé" in console.warned[0]

    console = ScriptConsole(["/quit"])
    code = await open_session("localhost", port, console, tls=TlsOptions(str(certs.ca), None))
    assert code == 0, console.warned  # the DNS name in the certificate's SANs

    der = ssl.PEM_cert_to_DER_cert(certs.cert.read_text(encoding="ascii"))
    console = ScriptConsole(['{"type":"ping"}'])
    pinned = TlsOptions(None, tls.fingerprint(der))
    assert await open_session("127.0.0.1", port, console, raw=True, wait=0.3, tls=pinned) == 0
    console = ScriptConsole(["/quit"])
    bad_pin = TlsOptions(None, "AB" * 32)
    assert await open_session("127.0.0.1", port, console, tls=bad_pin) == 1
    assert "n'est pas" not in console.warned[0]
    assert "is not the expected" in console.warned[0]


async def test_hello_on_the_plaintext_port_points_to_the_tls_port(
    tls_server: TlsServer, certs: ClassCertificates
) -> None:
    plain = await LineClient.connect(tls_server.server.port)
    await plain.send({"type": "hello", "features": []})
    assert (await plain.recv())["tls"] == {"port": tls_server.tls_port}
    secure = await tls_client(tls_server.tls_port, certs.ca)
    await secure.send({"type": "hello", "features": []})
    assert "tls" not in await secure.recv()
    legacy = await LineClient.connect(tls_server.server.port)
    await legacy.account("legacy")  # a legacy client sees nothing new
    for client in (plain, secure, legacy):
        await client.close()


async def test_a_broken_reload_keeps_the_old_certificate(
    tls_server: TlsServer, certs: ClassCertificates, tmp_path: Path
) -> None:
    assert tls_server.server.tls is not None
    before = tls_server.server.tls.fingerprint()
    endpoint = tls_server.server.tls
    endpoint.key_file = tmp_path / "missing.key"
    with pytest.raises(SettingsError, match="cannot load the TLS certificate"):
        endpoint.reload()
    client = await tls_client(tls_server.tls_port, certs.ca)
    der = client.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert tls.fingerprint(der) == before
    await client.close()
