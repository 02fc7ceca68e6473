"""The classroom path without Docker: SLAM PC -> SISR host (Linux NAT helper) -> VM
(ufw) -> the real ClassCord server, with real clients from the SLAM namespace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.lab.conftest import Lab, checks_by_hop, reset_lab

pytestmark = [pytest.mark.system, pytest.mark.slow]

HOST = "10.0.108.90"  # the SISR host's LAN address: what SLAM students type
VM_BRIDGED = "10.0.108.150"


@pytest.fixture
def lab(plain_lab: Lab) -> Iterator[Lab]:
    yield plain_lab
    reset_lab(plain_lab)


def test_host_nat_helper_forwards_and_undo_removes_it(lab: Lab) -> None:
    lab.start_server("0.0.0.0")
    refused = lab.chat("slam", HOST)
    assert refused == {**refused, "ok": False, "stage": "connect", "error": "refused"}
    assert lab.run_in("host", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"

    out = lab.host_nat("--vm-ip", "10.0.2.15")
    assert f"{HOST} (lan0)" in out, "the helper must name the address SLAM clients use"
    assert lab.chat("slam", HOST)["ok"] is True
    assert lab.chat("other", HOST)["ok"] is True
    # Like VirtualBox NAT: the server sees every client as the host's VM-side address.
    log = (lab.tmp / next(p.name for p in lab.tmp.glob("server-*.log"))).read_text()
    assert "addr=10.0.2.2" in log

    # Running it twice replaces, never duplicates.
    lab.host_nat("--vm-ip", "10.0.2.15")
    saved = lab.run_in("host", "iptables-save").stdout
    assert saved.count("classcord-nat-12345") == 4

    lab.host_nat("--undo")
    assert lab.chat("slam", HOST)["error"] == "refused"
    assert "classcord" not in lab.run_in("host", "iptables-save").stdout
    assert lab.run_in("host", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"


def test_host_nat_helper_refuses_a_port_taken_on_the_host(lab: Lab) -> None:
    with lab.hold_port("host", 12345):
        done = lab.run_in("host", "scripts/nat-linux-host.sh", "--vm-ip", "10.0.2.15", check=False)
    assert done.returncode != 0
    assert "already in use" in done.stderr
    assert "classcord" not in lab.run_in("host", "iptables-save").stdout


def test_vm_firewall_for_a_plain_server_behind_nat(lab: Lab) -> None:
    lab.start_server("0.0.0.0")
    lab.host_nat("--vm-ip", "10.0.2.15")
    # Only the LAN: behind NAT the VM sees 10.0.2.2, so everyone is dropped.
    lab.firewall("--for", "plain", "--source", "10.0.108.0/24")
    assert lab.chat("slam", HOST)["error"] == "timeout"
    report = lab.doctor("--target", HOST)
    firewall = checks_by_hop(report)["firewall"]
    assert firewall["status"] == "fail"
    assert "10.0.2.2" in firewall["summary"]
    # The defaults (LAN + 10.0.2.2) let the class in.
    lab.firewall("--for", "plain")
    assert lab.chat("slam", HOST)["ok"] is True
    lab.ufw("reload")
    assert lab.chat("slam", HOST)["ok"] is True
    assert lab.doctor("--target", HOST)["ok"] is True


def test_bridged_mode(lab: Lab) -> None:
    lab.set_mode("bridged")
    lab.start_server("0.0.0.0")
    assert lab.chat("slam", VM_BRIDGED)["ok"] is True
    # The host does not forward anything in bridged mode.
    assert lab.chat("slam", HOST)["error"] == "refused"
    lab.firewall("--for", "plain", "--source", "10.0.108.20")
    assert lab.chat("slam", VM_BRIDGED)["ok"] is True
    assert lab.chat("other", VM_BRIDGED)["error"] == "timeout"
    report = lab.doctor()
    checks = checks_by_hop(report)
    assert report["ok"] is True
    assert "bridged" in checks["network"]["summary"]
    assert VM_BRIDGED in checks["network"]["summary"]


def test_doctor_reports_a_server_bound_to_localhost(lab: Lab) -> None:
    lab.start_server("127.0.0.1")
    lab.host_nat("--vm-ip", "10.0.2.15")
    assert lab.chat("slam", HOST)["ok"] is False
    report = lab.doctor("--target", HOST)
    checks = checks_by_hop(report)
    assert report["ok"] is False
    assert checks["server"]["status"] == "ok"
    assert checks["listen"]["status"] == "fail"
    assert "127.0.0.1" in checks["listen"]["summary"]
    assert "0.0.0.0" in checks["listen"]["fix"]
    assert report["verdict"].startswith("Broken hop: listening address")


def test_doctor_reports_a_missing_forward(lab: Lab) -> None:
    lab.start_server("0.0.0.0")
    report = lab.doctor("--target", HOST)
    checks = checks_by_hop(report)
    assert report["ok"] is False
    for hop in ("server", "listen"):
        assert checks[hop]["status"] == "ok", checks[hop]
    remote = checks[f"roundtrip {HOST}:12345"]
    assert remote["status"] == "fail"
    assert "nothing forwards port 12345" in remote["summary"]
    assert "host's forwarding" in report["verdict"]
    lab.host_nat("--vm-ip", "10.0.2.15")
    report = lab.doctor("--target", HOST)
    assert report["ok"] is True, report
    assert "VirtualBox NAT" in checks_by_hop(report)["network"]["summary"]


def test_doctor_reports_nothing_listening(lab: Lab) -> None:
    report = lab.doctor()
    checks = checks_by_hop(report)
    assert checks["server"]["status"] == "fail"
    assert "nothing listens on port 12345" in checks["server"]["summary"]
    assert report["verdict"].startswith("Broken hop: server")
