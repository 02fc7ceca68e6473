"""scripts/tls-class-ca.sh as a teacher runs it: --help, --dry-run, the SANs, the CA
made once and reused, the fingerprint, --undo."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.certificates import SCRIPT, make_class_certificates


def script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


def x509(pem: Path, *args: str) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(pem), "-noout", *args],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def test_help_and_a_dry_run_that_writes_nothing(tmp_path: Path) -> None:
    assert "--owner UID" in script("--help").stdout
    done = script("--dir", str(tmp_path / "tls"), "--ip", "10.0.108.90", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "+ openssl req -x509" in done.stdout
    assert "dry run: nothing was written" in done.stdout
    assert not (tmp_path / "tls" / "ca.pem").exists()
    assert script("--dir", str(tmp_path / "x")).returncode != 0  # no address given
    assert script("--ip", "not-an-ip", "--dir", str(tmp_path / "y")).returncode != 0


def test_the_certificate_holds_every_address_and_the_ca_is_reused(tmp_path: Path) -> None:
    certs = make_class_certificates(
        tmp_path / "tls", "--ip", "10.0.108.90", "--ip", "192.168.1.50", "--name", "vm.lan"
    )
    sans = x509(certs.cert, "-ext", "subjectAltName")
    for expected in ("IP Address:10.0.108.90", "IP Address:192.168.1.50", "DNS:vm.lan"):
        assert expected in sans
    ca_before = x509(certs.ca, "-fingerprint", "-sha256")
    subprocess.run(
        ["openssl", "verify", "-CAfile", str(certs.ca), str(certs.cert)], check=True,
        capture_output=True,
    )  # fmt: skip
    again = script("--dir", str(certs.folder), "--ip", "10.0.108.91", "--renew")
    assert again.returncode == 0, again.stderr
    assert "reusing the class CA" in again.stdout
    assert x509(certs.ca, "-fingerprint", "-sha256") == ca_before  # truststores stay valid
    assert "10.0.108.91" in x509(certs.cert, "-ext", "subjectAltName")
    assert "sha256 Fingerprint=" in again.stdout  # for the board
    assert certs.truststore.exists()
    assert (certs.folder / "ca" / "ca.key").stat().st_mode & 0o077 == 0


def test_undo_removes_what_it_made(tmp_path: Path) -> None:
    certs = make_class_certificates(tmp_path / "tls", "--ip", "127.0.0.1")
    dry = script("--dir", str(certs.folder), "--undo", "--dry-run")
    assert dry.stdout.count("+ rm -rf") == 4
    assert certs.cert.exists()
    assert script("--dir", str(certs.folder), "--undo").returncode == 0
    assert not certs.folder.exists()
