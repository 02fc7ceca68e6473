"""The classroom path with the container: SLAM PC -> SISR host -> VM (ufw) -> Docker's
published port -> the ClassCord container built from the repository's Dockerfile
and started with its docker-compose.yml, inside the lab's own Docker daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.lab.conftest import Lab, checks_by_hop, reset_lab

pytestmark = [pytest.mark.system, pytest.mark.slow]

HOST = "10.0.108.90"
VM_BRIDGED = "10.0.108.150"
SLAM = "10.0.108.20"
TAG = "classcord-vm-firewall"


def ensure_container(lab: Lab) -> None:
    if "lab Docker: running" not in lab.script("status"):
        lab.script("docker-start")
    lab.script("compose", "up", "-d", timeout=300)
    lab.wait_for_pong()


@pytest.fixture
def lab(docker_lab: Lab) -> Iterator[Lab]:
    yield docker_lab
    reset_lab(docker_lab)
    ensure_container(docker_lab)


def live_block(lab: Lab) -> int:
    return lab.run_in("vm", "iptables", "-S", "DOCKER-USER").stdout.count(TAG)


def assert_only_slam_gets_in(lab: Lab, address: str) -> None:
    assert lab.chat("slam", address)["ok"] is True
    assert lab.chat("other", address)["error"] == "timeout"


def test_ufw_alone_does_not_protect_a_published_port(lab: Lab) -> None:
    """The trap: default deny plus a rule for one address, yet everyone gets in."""
    lab.set_mode("bridged")
    lab.ufw("default", "deny", "incoming")
    lab.ufw("allow", "proto", "tcp", "from", SLAM, "to", "any", "port", "12345")
    lab.ufw("--force", "enable")
    assert lab.chat("slam", VM_BRIDGED)["ok"] is True
    assert lab.chat("other", VM_BRIDGED)["ok"] is True  # wide open: the bug
    firewall = checks_by_hop(lab.doctor())["firewall"]
    assert firewall["status"] == "warn"
    assert "does NOT filter" in firewall["summary"]


def test_firewall_script_protects_the_published_port(lab: Lab) -> None:
    lab.set_mode("bridged")
    out = lab.firewall("--source", SLAM)
    assert "append the 'classcord-vm-firewall' block" in out
    assert_only_slam_gets_in(lab, VM_BRIDGED)
    report = lab.doctor()
    assert report["ok"] is True, report
    assert checks_by_hop(report)["firewall"]["status"] == "ok"

    lab.ufw("reload")
    assert live_block(lab) == 4, "ufw reload must not pile up or lose the block"
    assert_only_slam_gets_in(lab, VM_BRIDGED)

    lab.script("docker-stop")
    lab.script("docker-start")
    lab.wait_for_pong()
    assert_only_slam_gets_in(lab, VM_BRIDGED)

    # Boot order: netfilter empty, ufw's boot script first, then Docker.
    lab.script("vm-reboot", timeout=300)
    lab.wait_for_pong()
    forward = lab.run_in("vm", "iptables", "-S", "FORWARD").stdout.splitlines()
    assert forward[1] == "-A FORWARD -j DOCKER-USER", forward
    assert live_block(lab) == 4
    assert_only_slam_gets_in(lab, VM_BRIDGED)


def test_undo_removes_the_block_so_ufw_disable_is_safe(lab: Lab) -> None:
    lab.set_mode("bridged")
    lab.firewall("--source", SLAM)
    # What happens without the undo: ufw stopped, block still loaded, nobody gets in.
    lab.ufw("disable")
    assert lab.chat("slam", VM_BRIDGED)["error"] == "timeout"
    firewall = checks_by_hop(lab.doctor())["firewall"]
    assert firewall["status"] == "fail"
    assert "--undo" in firewall["fix"]

    lab.ufw("--force", "enable")
    lab.firewall("--undo")
    lab.ufw("disable")
    assert live_block(lab) == 0
    after_rules = Path(lab.ufw_root, "etc/ufw/after.rules").read_text()
    assert TAG not in after_rules
    assert lab.chat("slam", VM_BRIDGED)["ok"] is True
    assert lab.chat("other", VM_BRIDGED)["ok"] is True


def test_full_nat_path_from_slam_pc_to_container(lab: Lab) -> None:
    lab.host_nat("--vm-ip", "10.0.2.15")
    lab.firewall()  # defaults: the classroom LAN and 10.0.2.2
    assert lab.chat("slam", HOST)["ok"] is True
    assert lab.chat("other", HOST)["ok"] is True  # behind NAT both are 10.0.2.2
    report = lab.doctor("--target", HOST)
    assert report["ok"] is True, report
    assert live_block(lab) == 4

    # Forgetting 10.0.2.2 locks the whole class out; the doctor says why.
    lab.firewall("--source", "10.0.108.0/24")
    assert lab.chat("slam", HOST)["error"] == "timeout"
    report = lab.doctor("--target", HOST)
    checks = checks_by_hop(report)
    assert checks["firewall"]["status"] == "fail"
    assert "10.0.2.2" in checks["firewall"]["summary"]
    assert report["verdict"].startswith("Broken hop: VM firewall")


def test_doctor_reports_a_port_published_on_localhost(lab: Lab) -> None:
    lab.script("compose", "up", "-d", env={"CLASSCORD_BIND": "127.0.0.1"}, timeout=300)
    lab.wait_for_pong()
    lab.host_nat("--vm-ip", "10.0.2.15")
    assert lab.chat("slam", HOST)["ok"] is False
    report = lab.doctor("--target", HOST)
    listen = checks_by_hop(report)["listen"]
    assert listen["status"] == "fail"
    assert "127.0.0.1" in listen["summary"]
    assert "CLASSCORD_BIND=0.0.0.0" in listen["fix"]


def test_doctor_reports_the_port_taken_twice(lab: Lab) -> None:
    """Day 2's server still running when the container should start."""
    lab.script("compose", "stop", timeout=120)
    lab.start_server("0.0.0.0")
    lab.script("compose", "up", "-d", check=False, timeout=300)
    report = lab.doctor()
    server = checks_by_hop(report)["server"]
    assert server["status"] == "fail"
    assert "taken by" in server["summary"] or "wanted twice" in server["summary"]
