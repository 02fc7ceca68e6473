"""Certificates for the TLS tests, made with the project's own scripts/tls-class-ca.sh
(and openssl for the broken ones: another CA, an expired certificate)."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_system

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "tls-class-ca.sh"


@dataclass(frozen=True)
class ClassCertificates:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.folder / "server" / "server.pem"

    @property
    def key(self) -> Path:
        return self.folder / "server" / "server.key"

    @property
    def truststore(self) -> Path:
        return self.folder / "truststore.p12"


def make_class_certificates(folder: Path, *args: str) -> ClassCertificates:
    if shutil.which("openssl") is None:
        require_system("openssl is not installed (apt-get install openssl)")
    done = subprocess.run(
        ["bash", str(SCRIPT), "--dir", str(folder), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return ClassCertificates(folder)


def make_expired_certificate(ca: ClassCertificates, folder: Path) -> tuple[Path, Path]:
    """Signed by the class CA for 127.0.0.1, and already expired."""
    folder.mkdir(parents=True, exist_ok=True)
    key, csr, ext, pem = (folder / n for n in ("e.key", "e.csr", "e.ext", "e.pem"))
    openssl = ["openssl"]
    subprocess.run(
        [*openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=expired"],
        check=True, capture_output=True,
    )  # fmt: skip
    ext.write_text("subjectAltName=IP:127.0.0.1\n", encoding="ascii")
    subprocess.run(
        [*openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca.ca),
         "-CAkey", str(ca.folder / "ca" / "ca.key"), "-CAserial", str(ca.folder / "ca" / "ca.srl"),
         "-out", str(pem), "-days", "0", "-extfile", str(ext)],
        check=True, capture_output=True,
    )  # fmt: skip
    # -days 0 ends its validity this very second: wait for the next one.
    time.sleep(1.05 - time.time() % 1)
    return pem, key
