"""The optional TLS port: the same protocol as port 12345, inside TLS.

IRC's answer to passwords in clear (RFC 7194: a separate TLS port beside the
plaintext one, no STARTTLS). The standard library's ``ssl`` with its secure
defaults, TLS 1.2 at least, no renegotiation.

The handshake is driven here, not by ``create_server(ssl=...)``: asyncio silently
drops a connection whose handshake fails, and a classroom needs the reason in the
log (a student's client that does not trust the class CA, plaintext sent to the
TLS port, a handshake that never finishes). Each handshake runs in its own task
with a deadline, so a stalled one never delays anybody else; once it succeeds the
connection is handed to the ordinary ``Connection``, which cannot tell the
difference.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

from classcord.errors import SettingsError

log = logging.getLogger("classcord.tls")


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context with the library's secure defaults; SettingsError (one line,
    exit code 2) when the files cannot be read or do not match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION
    load_certificate(context, cert_file, key_file)
    return context


def load_certificate(context: ssl.SSLContext, cert_file: Path, key_file: Path) -> None:
    """(Re)load the certificate and key: new handshakes use them, connections made
    before keep theirs, so a reload drops nobody."""
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"cannot load the TLS certificate {cert_file} and key {key_file}: {exc}"
        ) from None


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint as ``AB:CD:...``, the form `openssl x509 -fingerprint
    -sha256` prints and the teacher writes on the board."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def handshake_reason(exc: BaseException) -> str:
    """One short reason for the log line."""
    if isinstance(exc, TimeoutError) or "taking longer than" in str(exc):
        return "handshake timed out"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or exc.strerror or str(exc)
        return f"{reason}"
    if isinstance(exc, ConnectionError):
        return f"connection lost during the handshake ({exc.__class__.__name__})"
    return f"{exc.__class__.__name__}: {exc}"


class TlsAcceptor(asyncio.Protocol):
    """Accepts one TCP connection on the TLS port and drives its handshake; on
    success the ordinary connection protocol takes over the TLS transport."""

    def __init__(
        self,
        context: ssl.SSLContext,
        timeout: float,
        connection_factory: Callable[[], asyncio.Protocol],
    ) -> None:
        self._context = context
        self._timeout = timeout
        self._connection_factory = connection_factory
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # Nothing is read before the TLS layer is in place.
        transport.pause_reading()
        self._task = asyncio.get_running_loop().create_task(self._handshake(transport))

    async def _handshake(self, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "local"
        loop = asyncio.get_running_loop()
        connection = self._connection_factory()
        try:
            secure = await loop.start_tls(
                transport,
                connection,
                self._context,
                server_side=True,
                ssl_handshake_timeout=self._timeout,
            )
        except (OSError, TimeoutError, ConnectionError, ssl.SSLError) as exc:
            # One line, matched by nothing in fail2ban: auth failures on the TLS
            # port are the ordinary "auth failure:" lines of the connection.
            log.warning("tls: handshake failed addr=%s reason=%s", address, handshake_reason(exc))
            transport.abort()
            return
        if secure is None:  # the peer went away as the handshake ended
            transport.abort()
            return
        connection.connection_made(secure)

    def data_received(self, data: bytes) -> None:  # pragma: no cover - reading is paused
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


def client_context(cafile: str | None, pinned: str | None) -> ssl.SSLContext:
    """What the terminal client verifies: the class CA (or the system's), the host
    name or IP address in the certificate, and, with a pin, the exact certificate."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if pinned:
        # A pinned self-signed certificate: no CA to check, the pin is the check
        # (see check_pin after the handshake).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_pin(der: bytes | None, pinned: str) -> str | None:
    """None when the certificate is the pinned one, else why not."""
    if der is None:
        return "the server sent no certificate"
    got = fingerprint(der)
    wanted = pinned.upper().replace("-", ":")
    if ":" not in wanted:  # also accept the 64 hex digits without colons
        wanted = ":".join(wanted[i : i + 2] for i in range(0, len(wanted), 2))
    if got != wanted:
        return f"fingerprint {got} is not the expected {wanted}"
    return None


def explain_verification_error(exc: BaseException) -> str:
    """Why the client refused a certificate, in words a student can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or str(exc)
        if "Hostname mismatch" in message or "IP address mismatch" in message:
            return (
                f"certificat refusé : il ne couvre pas cette adresse ({message}) ;"
                " utilisez l'adresse écrite au tableau ou refaites le certificat avec elle"
            )
        if "expired" in message:
            return f"certificat refusé : il a expiré ({message})"
        if "self-signed" in message or "unable to get local issuer" in message:
            return (
                f"certificat refusé : il n'est pas signé par une autorité connue ({message}) ;"
                " donnez --cafile avec le fichier ca.pem de la classe"
            )
        return f"certificat refusé : {message}"
    if isinstance(exc, ssl.SSLError):
        return f"échec TLS : {exc.reason or exc}"
    return str(exc)


async def start_tls_listener(
    host: str,
    port: int,
    context: ssl.SSLContext,
    handshake_timeout: float,
    connection_factory: Callable[[], asyncio.Protocol],
) -> asyncio.Server:
    """Listen on the TLS port; each accepted socket gets its own handshake task."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: TlsAcceptor(context, handshake_timeout, connection_factory),
        host,
        port,
        reuse_address=True,
        backlog=1024,
    )


class TlsEndpoint:
    """The TLS listener of a server, with its certificate, which can be reloaded
    (SIGHUP, ``admin reload-tls``) without dropping anybody."""

    def __init__(self, cert_file: Path, key_file: Path, handshake_timeout: float) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.handshake_timeout = handshake_timeout
        self.context = server_context(cert_file, key_file)
        self._listener: asyncio.Server | None = None

    @property
    def port(self) -> int | None:
        if self._listener is None or not self._listener.sockets:
            return None
        port: int = self._listener.sockets[0].getsockname()[1]
        return port

    async def start(
        self, host: str, port: int, connection_factory: Callable[[], asyncio.Protocol]
    ) -> None:
        self._listener = await start_tls_listener(
            host, port, self.context, self.handshake_timeout, connection_factory
        )
        log.info("tls: listening on %s:%d (certificate %s)", host, self.port, self.fingerprint())

    def fingerprint(self) -> str:
        der = ssl.PEM_cert_to_DER_cert(self.cert_file.read_text(encoding="ascii"))
        return fingerprint(der)

    def reload(self) -> str:
        """Load the files again; on a mistake the old certificate stays in use and
        SettingsError says why. Returns the new fingerprint."""
        load_certificate(self.context, self.cert_file, self.key_file)
        new = self.fingerprint()
        log.info("tls: certificate reloaded (%s)", new)
        return new

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
