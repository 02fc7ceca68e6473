"""The doctor's TLS verdicts, as pure functions of what the probes saw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from classcord.doctor.check import Status
from classcord.doctor.facts import Target
from classcord.doctor.tlshop import TlsOutcome, TlsProbe, tls_checks

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOST = Target("10.0.108.90", 12346)
LOCAL = Target("127.0.0.1", 12346)


def probe(target: Target, *, days: int = 300, names: tuple[str, ...] = ("10.0.108.90",
          "127.0.0.1"), outcome: TlsOutcome = TlsOutcome.PONG) -> TlsProbe:  # fmt: skip
    return TlsProbe(target, outcome, outcome.value, NOW + timedelta(days=days), names, True)


def by_hop(probes: list[TlsProbe]) -> dict[str, Status]:
    return {c.hop: c.status for c in tls_checks(probes, NOW.timestamp())}


def test_all_good() -> None:
    assert by_hop([probe(LOCAL), probe(HOST)]) == {"tls": Status.OK, "tls-cert": Status.OK}


def test_the_host_lan_address_missing_from_the_certificate_is_named() -> None:
    checks = tls_checks([probe(LOCAL, names=("127.0.0.1",)), probe(HOST, names=("127.0.0.1",))],
                        NOW.timestamp())  # fmt: skip
    cert = next(c for c in checks if c.hop == "tls-cert")
    assert cert.status is Status.FAIL
    assert "10.0.108.90" in cert.summary
    assert "--ip" in cert.fix


def test_expired_and_expiring_soon() -> None:
    assert by_hop([probe(LOCAL, days=-1)])["tls-cert"] is Status.FAIL
    assert by_hop([probe(LOCAL, days=10)])["tls-cert"] is Status.WARN


def test_an_untrusted_certificate_and_a_closed_port() -> None:
    untrusted = TlsProbe(LOCAL, TlsOutcome.UNTRUSTED, "self-signed certificate")
    checks = tls_checks([untrusted], NOW.timestamp())
    assert [c.status for c in checks] == [Status.FAIL]
    assert "class CA" in checks[0].summary
    closed = TlsProbe(LOCAL, TlsOutcome.REFUSED, "Connection refused")
    (check,) = tls_checks([closed], NOW.timestamp())
    assert check.status is Status.FAIL
    assert "docker-compose.tls.yml" in check.fix


def test_only_the_addresses_students_type_must_be_in_the_certificate() -> None:
    vm_nat = Target("10.0.2.15", 12346)  # behind NAT nobody types the VM's address
    probes = [probe(LOCAL, names=("10.0.108.90",)), probe(vm_nat, names=("10.0.108.90",)),
              probe(HOST, names=("10.0.108.90",))]  # fmt: skip
    checks = {c.hop: c for c in tls_checks(probes, NOW.timestamp(), required=["10.0.108.90"])}
    assert checks["tls-cert"].status is Status.OK
    checks = {c.hop: c for c in tls_checks(probes, NOW.timestamp(), required=["10.0.108.91"])}
    assert checks["tls-cert"].status is Status.FAIL
    assert "10.0.108.91" in checks["tls-cert"].summary
