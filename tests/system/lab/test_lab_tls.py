"""TLS across the simulated classroom: a SLAM PC reaches the TLS port through the
host's NAT helper and the VM's firewall, and verifies a certificate whose SAN is
the host's LAN address (what students type); the doctor names a missing address."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.certificates import ClassCertificates, make_class_certificates
from tests.system.lab.conftest import Lab, checks_by_hop, reset_lab

pytestmark = [pytest.mark.system, pytest.mark.slow]

HOST = "10.0.108.90"  # the SISR host's LAN address
VM_BRIDGED = "10.0.108.150"
TLS_PORT = 12346


@pytest.fixture
def lab(plain_lab: Lab) -> Iterator[Lab]:
    yield plain_lab
    reset_lab(plain_lab)


def tls_server_behind_nat(lab: Lab, folder: str, address: str) -> ClassCertificates:
    """The server in the VM with a certificate for ``address``, its TLS port
    forwarded by the host's NAT and opened in the VM's firewall."""
    certs = make_class_certificates(lab.tmp / folder, "--ip", address)
    lab.start_server(
        "0.0.0.0", "--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key),
        "--tls-port", str(TLS_PORT),
    )  # fmt: skip
    lab.host_nat("--vm-ip", "10.0.2.15", "--port", str(TLS_PORT), "--vm-port", str(TLS_PORT))
    lab.firewall("--for", "plain", "--port", str(TLS_PORT))
    return certs


def doctor_through_tls(lab: Lab, certs: ClassCertificates) -> dict[str, Any]:
    """The doctor's report for the host's address, through the TLS port."""
    return lab.doctor(
        "--target", HOST, "--tls", "--tls-port", str(TLS_PORT), "--cafile", str(certs.ca)
    )


def test_a_slam_pc_reaches_the_tls_port_through_nat_and_firewall(lab: Lab) -> None:
    certs = tls_server_behind_nat(lab, "tls-host", HOST)
    # The raw client reads its input lines from stdin: give it one ping.
    done = lab.run_in(
        "slam", "sh", "-c",
        f"printf '{{\"type\":\"ping\"}}\\n' | {sys.executable} -m classcord client --tls"
        f" --cafile {certs.ca} --host {HOST} --port {TLS_PORT} --raw --wait 1",
        check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"type": "pong"' in done.stdout
    report = doctor_through_tls(lab, certs)
    hops = checks_by_hop(report)
    assert (hops["tls"]["status"], hops["tls-cert"]["status"]) == ("ok", "ok"), json.dumps(hops)


def test_the_doctor_names_the_host_address_missing_from_the_certificate(lab: Lab) -> None:
    # Made for the VM's bridged address only: behind NAT students type the host's.
    certs = tls_server_behind_nat(lab, "tls-vm", VM_BRIDGED)
    refused = lab.run_in(
        "slam", "sh", "-c",
        f"printf '/quit\\n' | {sys.executable} -m classcord client --tls --cafile {certs.ca}"
        f" --host {HOST} --port {TLS_PORT}",
        check=False, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "ne couvre pas cette adresse" in refused.stdout + refused.stderr
    report = doctor_through_tls(lab, certs)
    cert = checks_by_hop(report)["tls-cert"]
    assert cert["status"] == "fail"
    assert HOST in cert["summary"]
