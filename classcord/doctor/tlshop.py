"""The TLS hop: a real handshake with the class CA, the certificate's addresses and
its expiry date, then ``ping``/``pong`` through it.

Gathering (``probe_tls``) is apart from the verdicts (``tls_checks``), which are
pure functions of the probes, like the rest of the doctor.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from classcord.doctor.check import Check, Status
from classcord.doctor.facts import Target
from classcord.doctor.roundtrip import ping

EXPIRY_WARNING_DAYS = 30


class TlsOutcome(enum.Enum):
    PONG = "pong"
    REFUSED = "refused"
    UNTRUSTED = "untrusted"  # not signed by the CA given
    ERROR = "error"
    NO_PONG = "no-pong"


@dataclasses.dataclass(frozen=True)
class TlsProbe:
    target: Target
    outcome: TlsOutcome
    detail: str
    not_after: datetime | None = None
    addresses: tuple[str, ...] = ()  # the certificate's IP and DNS names
    hostname_ok: bool = False


def _names(cert: Mapping[str, object]) -> tuple[str, ...]:
    entries = cert.get("subjectAltName", ())
    assert isinstance(entries, tuple)
    return tuple(str(value) for _kind, value in entries)


def probe_tls(target: Target, cafile: str | None, timeout: float) -> TlsProbe:
    """Handshake with the CA (the host name is checked apart, to say which address
    the certificate lacks), then one ping."""
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False  # checked below, with a better message
    try:
        raw = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as exc:
        return TlsProbe(target, TlsOutcome.REFUSED, exc.strerror or str(exc))
    try:
        with context.wrap_socket(raw, server_hostname=target.host) as tls:
            cert = tls.getpeercert() or {}
            not_after_text = cert.get("notAfter")
            not_after = (
                datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after_text), UTC)
                if isinstance(not_after_text, str)
                else None
            )
            addresses = _names(cert)
            data = ping(tls, timeout)
    except ssl.SSLCertVerificationError as exc:
        raw.close()
        return TlsProbe(target, TlsOutcome.UNTRUSTED, exc.verify_message or str(exc))
    except (OSError, ssl.SSLError) as exc:
        raw.close()
        return TlsProbe(target, TlsOutcome.ERROR, str(exc))
    hostname_ok = target.host in addresses
    try:
        reply = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        reply = None
    if not (isinstance(reply, dict) and reply.get("type") == "pong"):
        return TlsProbe(
            target, TlsOutcome.NO_PONG, "no pong after the handshake", not_after, addresses
        )
    return TlsProbe(target, TlsOutcome.PONG, "pong", not_after, addresses, hostname_ok)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def tls_checks(
    probes: Sequence[TlsProbe], now: float | None = None, required: Iterable[str] | None = None
) -> list[Check]:
    """One check for the hop through every address, one for the certificate.

    ``required``: the addresses students type, which the certificate must hold
    (the ``--target`` addresses); by default every address probed but loopback."""
    now = time.time() if now is None else now
    checks: list[Check] = []
    failed = [p for p in probes if p.outcome is not TlsOutcome.PONG]
    details = tuple(
        f"{p.target.host}:{p.target.port}: {p.outcome.value} ({p.detail})" for p in probes
    )
    if not probes:
        return [Check("tls", Status.SKIP, "no address to check", title="TLS port")]
    if any(p.outcome is TlsOutcome.UNTRUSTED for p in failed):
        checks.append(
            Check(
                "tls",
                Status.FAIL,
                "the certificate is not signed by the class CA given with --cafile",
                "give --cafile the ca.pem of scripts/tls-class-ca.sh, or make the server"
                " certificate again with that script and restart (or reload) the server",
                details,
                "TLS port",
            )
        )
    elif failed:
        checks.append(
            Check(
                "tls",
                Status.FAIL,
                f"{len(failed)} of {len(probes)} addresses give no pong over TLS",
                "is TLS on (CLASSCORD_TLS_CERT_FILE and _KEY_FILE)? is the TLS port published"
                " (docker-compose.tls.yml) and forwarded like 12345 (the NAT helpers, --port"
                " 12346)?",
                details,
                "TLS port",
            )
        )
    else:
        checks.append(Check("tls", Status.OK, "pong over TLS", "", details, "TLS port"))
    seen = [p for p in probes if p.addresses or p.not_after]
    if not seen:
        return checks
    addresses = seen[0].addresses
    # 127.0.0.1 is the doctor's own way in, and behind NAT nobody types the VM's
    # own address: only the addresses students use must be in the certificate.
    needed = (
        set(required)
        if required is not None
        else {p.target.host for p in seen if not _is_loopback(p.target.host)}
    )
    missing = sorted(needed - set(addresses))
    expiry = seen[0].not_after
    facts: tuple[str, ...] = (f"addresses in the certificate: {', '.join(addresses) or 'none'}",)
    if expiry is not None:
        facts += (f"valid until {expiry:%Y-%m-%d %H:%M} UTC",)
    if expiry is not None and expiry.timestamp() < now:
        checks.append(
            Check(
                "tls-cert",
                Status.FAIL,
                "the certificate has expired",
                "scripts/tls-class-ca.sh --renew with the same addresses, then reload",
                facts,
                "TLS certificate",
            )
        )
    elif missing:
        checks.append(
            Check(
                "tls-cert",
                Status.FAIL,
                f"the certificate does not hold {', '.join(missing)}: clients that check the"
                " host name refuse it there",
                "scripts/tls-class-ca.sh --renew --ip ... with every address students type"
                " (the Windows host's LAN address behind NAT), then reload",
                facts,
                "TLS certificate",
            )
        )
    elif expiry is not None and expiry.timestamp() - now < EXPIRY_WARNING_DAYS * 86400:
        checks.append(
            Check(
                "tls-cert",
                Status.WARN,
                f"the certificate expires in less than {EXPIRY_WARNING_DAYS} days",
                "scripts/tls-class-ca.sh --renew with the same addresses, then reload",
                facts,
                "TLS certificate",
            )
        )
    else:
        checks.append(
            Check(
                "tls-cert",
                Status.OK,
                "covers every address checked",
                "",
                facts,
                "TLS certificate",
            )
        )
    return checks
