"""The host-side helpers and the scripts' common contract (--help, --dry-run, undo),
without a hypervisor: a fake VBoxManage records what it is asked, VMware's nat.conf
is a temporary file. None of these needs root or touches the network."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import socket
import stat
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_system


def free_port() -> int:
    """A port nothing listens on now: the helpers refuse a port in use on the host
    (nothing binds it afterwards: only the fake hypervisor hears of it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "scripts"
BASH_SCRIPTS = [
    "vm-firewall.sh",
    "nat-linux-host.sh",
    "nat-virtualbox.sh",
    "nat-vmware.sh",
    "classroom-lab.sh",
]


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, **(env or {})),
    )


@pytest.mark.parametrize("name", BASH_SCRIPTS)
def test_every_script_has_help_strict_mode_and_dry_run(name: str) -> None:
    path = SCRIPTS / name
    assert path.stat().st_mode & stat.S_IXUSR, f"{name} is not executable"
    text = path.read_text()
    assert "set -euo pipefail" in text
    done = run(str(path), "--help")
    assert done.returncode == 0, done.stderr
    assert "--dry-run" in done.stdout
    assert "--undo" in done.stdout or name == "classroom-lab.sh"


def test_the_powershell_helper_documents_its_parameters() -> None:
    text = (SCRIPTS / "nat-windows-portproxy.ps1").read_text()
    for word in ("-VmAddress", "-Undo", "-DryRun", "-FirewallOnly", ".SYNOPSIS"):
        assert word in text
    assert "Set-StrictMode" in text
    assert "portproxy add v4tov4" in text.replace('", "', " ").replace('"', "")
    assert "-Profile Any" in text


# --- VirtualBox with a fake VBoxManage ------------------------------------------

FAKE_VBOXMANAGE = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    # A stand-in for VBoxManage: state in $FAKE_VBOX (JSON), calls logged in $FAKE_VBOX.log.
    import json, os, sys
    path = os.environ["FAKE_VBOX"]
    state = json.load(open(path))
    args = sys.argv[1:]
    with open(path + ".log", "a") as log:
        log.write(" ".join(args) + "\\n")
    def save():
        json.dump(state, open(path, "w"))
    if args[:1] == ["showvminfo"]:
        if args[1] != state["vm"]:
            print("VBoxManage: error: Could not find a registered machine", file=sys.stderr)
            sys.exit(1)
        print('name="%s"' % state["vm"])
        print('VMState="%s"' % state["state"])
        print('nic1="%s"' % state["nic"])
        print('nat-network1="NatNetwork"')
        for i, rule in enumerate(state["rules"]):
            print('Forwarding(%d)="%s"' % (i, rule))
    elif args[:2] == ["natnetwork", "list"]:
        print("NAT Networks:\\n\\nName:        NatNetwork\\nNetwork:     10.0.2.0/24")
    elif args[:1] in (["controlvm"], ["modifyvm"]):
        value = args[3:]
        if value[0] == "delete":
            state["rules"] = [r for r in state["rules"] if r.split(",")[0] != value[1]]
        else:
            state["rules"].append(value[0])
        save()
    elif args[:2] == ["natnetwork", "modify"]:
        pass
    else:
        sys.exit(2)
    """
)


class FakeVBox:
    def __init__(self, tmp: Path) -> None:
        self.binary = tmp / "VBoxManage"
        self.binary.write_text(FAKE_VBOXMANAGE)
        self.binary.chmod(0o755)
        self.state_file = tmp / "vbox.json"
        self.set(vm="ClassCord-VM", state="running", nic="nat", rules=[])

    def set(self, **state: object) -> None:
        current = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        current.update(state)
        self.state_file.write_text(json.dumps(current))

    @property
    def rules(self) -> list[str]:
        rules: list[str] = json.loads(self.state_file.read_text())["rules"]
        return rules

    @property
    def calls(self) -> list[str]:
        log = Path(str(self.state_file) + ".log")
        return log.read_text().splitlines() if log.exists() else []

    def script(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"VBOXMANAGE": str(self.binary), "FAKE_VBOX": str(self.state_file)}
        return run(str(SCRIPTS / "nat-virtualbox.sh"), *args, env=env)


@pytest.fixture
def vbox(tmp_path: Path) -> FakeVBox:
    return FakeVBox(tmp_path)


def test_virtualbox_running_vm_gets_a_controlvm_rule_and_undo_removes_it(vbox: FakeVBox) -> None:
    port = str(free_port())
    done = vbox.script("--vm", "ClassCord-VM", "--port", port)
    assert done.returncode == 0, done.stderr
    assert vbox.rules == [f"classcord,tcp,,{port},,12345"]
    assert f"controlvm ClassCord-VM natpf1 classcord,tcp,,{port},,12345" in vbox.calls
    assert f"+ {vbox.binary} controlvm 'ClassCord-VM' natpf1" in done.stdout
    assert "not 10.0.2.15" in done.stdout
    assert "10.0.2.2" in done.stdout

    again = vbox.script("--vm", "ClassCord-VM", "--port", port)
    assert again.returncode == 0, again.stderr
    assert vbox.rules == [f"classcord,tcp,,{port},,12345"], "re-running must not duplicate"

    undo = vbox.script("--vm", "ClassCord-VM", "--undo")
    assert undo.returncode == 0, undo.stderr
    assert vbox.rules == []
    assert "controlvm ClassCord-VM natpf1 delete classcord" in vbox.calls


def test_virtualbox_stopped_vm_uses_modifyvm(vbox: FakeVBox) -> None:
    vbox.set(state="poweroff")
    port = str(free_port())
    done = vbox.script("--vm", "ClassCord-VM", "--port", port, "--guest-port", "2000")
    assert done.returncode == 0, done.stderr
    assert f"modifyvm ClassCord-VM --natpf1 classcord,tcp,,{port},,2000" in vbox.calls
    assert "applies when it starts" in done.stdout


def test_virtualbox_dry_run_changes_nothing(vbox: FakeVBox) -> None:
    done = vbox.script("--vm", "ClassCord-VM", "--port", str(free_port()), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "controlvm 'ClassCord-VM' natpf1 'classcord,tcp" in done.stdout
    assert vbox.rules == []
    assert all(call.startswith("showvminfo ") for call in vbox.calls), vbox.calls


def test_virtualbox_prints_commands_that_paste_into_powershell(vbox: FakeVBox) -> None:
    """A VM name with spaces and the rule (commas make an array in PowerShell)
    are printed in single quotes, which PowerShell and bash both read as they are."""
    vbox.set(vm="Debian 12 SISR")
    port = str(free_port())
    done = vbox.script("--vm", "Debian 12 SISR", "--port", port)
    assert done.returncode == 0, done.stderr
    line = f"+ {vbox.binary} controlvm 'Debian 12 SISR' natpf1 'classcord,tcp,,{port},,12345'"
    assert line in done.stdout.splitlines()
    assert vbox.rules == [f"classcord,tcp,,{port},,12345"]


def test_virtualbox_dry_run_without_vboxmanage(tmp_path: Path) -> None:
    path = f"{tmp_path}:/usr/bin:/bin"  # no VBoxManage anywhere
    env = {"PATH": path, "VBOXMANAGE": ""}
    done = run(str(SCRIPTS / "nat-virtualbox.sh"), "--vm", "Ma VM", "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "+ VBoxManage controlvm 'Ma VM' natpf1 'classcord,tcp,,12345,,12345'" in lines
    assert "modifyvm 'Ma VM' --natpf1 'classcord,tcp,,12345,,12345'" in done.stdout
    assert lines[-1] == "nat-virtualbox.sh: dry run, nothing changed"
    refused = run(str(SCRIPTS / "nat-virtualbox.sh"), "--vm", "Ma VM", env=env)
    assert refused.returncode != 0
    assert "VBoxManage not found" in refused.stderr


@pytest.mark.parametrize(
    ("state", "nic", "message"),
    [
        ("running", "bridged", "no forwarding needed"),
        ("running", "hostonly", "host-only"),
        ("running", "natnetwork", "--natnetwork NatNetwork"),
        ("saved", "nat", "saved state"),
    ],
)
def test_virtualbox_explains_what_is_wrong(
    vbox: FakeVBox, state: str, nic: str, message: str
) -> None:
    vbox.set(state=state, nic=nic)
    done = vbox.script("--vm", "ClassCord-VM", "--port", str(free_port()))
    assert done.returncode != 0
    assert message in done.stderr
    assert vbox.rules == []


def test_virtualbox_unknown_vm_and_port_clash(vbox: FakeVBox) -> None:
    done = vbox.script("--vm", "Nope")
    assert done.returncode != 0
    assert "no VM named 'Nope'" in done.stderr
    port = str(free_port())
    vbox.set(rules=[f"ssh,tcp,,{port},,22"])
    done = vbox.script("--vm", "ClassCord-VM", "--port", port)
    assert done.returncode != 0
    assert "already forwards host port" in done.stderr


def test_virtualbox_refuses_a_port_in_use_on_the_host(vbox: FakeVBox) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        done = vbox.script("--vm", "ClassCord-VM", "--port", port)
    assert done.returncode != 0
    assert "already in use" in done.stderr


def test_virtualbox_nat_network(vbox: FakeVBox) -> None:
    port = str(free_port())
    done = vbox.script("--natnetwork", "NatNetwork", "--guest-ip", "10.0.2.4", "--port", port)
    assert done.returncode == 0, done.stderr
    rule = f"classcord:tcp:[]:{port}:[10.0.2.4]:12345"
    assert f"natnetwork modify --netname NatNetwork --port-forward-4 {rule}" in vbox.calls
    missing_ip = vbox.script("--natnetwork", "NatNetwork")
    assert missing_ip.returncode != 0
    assert "--guest-ip" in missing_ip.stderr
    undo = vbox.script("--natnetwork", "NatNetwork", "--undo")
    assert undo.returncode == 0
    assert "natnetwork modify --netname NatNetwork --port-forward-4 delete classcord" in vbox.calls


# --- VMware's nat.conf ----------------------------------------------------------

NAT_CONF = """\
# VMware NAT configuration file

[host]
ip = 192.168.133.2
netmask = 255.255.255.0

[incomingtcp]
# Use these with care - anyone can enter into your VM through these...
#8080 = 172.16.3.128:80

[incomingudp]
#6000 = 172.16.3.128:6001
"""


def vmware(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(str(SCRIPTS / "nat-vmware.sh"), "--conf", str(conf), "--restart", "true", *args)


def test_vmware_adds_replaces_and_undoes_exactly(tmp_path: Path) -> None:
    conf = tmp_path / "nat.conf"
    conf.write_text(NAT_CONF)
    port = str(free_port())
    done = vmware(conf, "--vm-ip", "192.168.133.128", "--port", port)
    assert done.returncode == 0, done.stderr
    text = conf.read_text()
    assert f"{port} = 192.168.133.128:12345" in text
    assert text.index(f"{port} =") < text.index("[incomingudp]")
    assert "+ true" in done.stdout, "the NAT service restart must be shown"

    done = vmware(conf, "--vm-ip", "192.168.133.129", "--port", port)
    assert done.returncode == 0, done.stderr
    assert conf.read_text().count(f"{port} =") == 1
    assert f"{port} = 192.168.133.129:12345" in conf.read_text()

    done = vmware(conf, "--undo", "--port", port)
    assert done.returncode == 0, done.stderr
    assert conf.read_text() == NAT_CONF


def test_vmware_keeps_someone_elses_forward_unless_forced(tmp_path: Path) -> None:
    conf = tmp_path / "nat.conf"
    port = str(free_port())
    theirs = NAT_CONF.replace("[incomingtcp]\n", f"[incomingtcp]\n{port} = 192.168.133.50:80\n")
    conf.write_text(theirs)
    done = vmware(conf, "--vm-ip", "192.168.133.128", "--port", port)
    assert done.returncode != 0
    assert "already forwards port" in done.stderr
    assert conf.read_text() == theirs
    done = vmware(conf, "--vm-ip", "192.168.133.128", "--port", port, "--force")
    assert done.returncode == 0, done.stderr
    assert "192.168.133.50" not in conf.read_text()


def test_vmware_dry_run_and_wrong_file(tmp_path: Path) -> None:
    conf = tmp_path / "nat.conf"
    conf.write_text(NAT_CONF)
    done = vmware(conf, "--vm-ip", "192.168.133.128", "--port", str(free_port()), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert conf.read_text() == NAT_CONF
    other = tmp_path / "other.conf"
    other.write_text("[host]\nip = 1.2.3.4\n")
    done = vmware(other, "--vm-ip", "192.168.133.128")
    assert done.returncode != 0
    assert "[incomingtcp]" in done.stderr


# --- dry runs of the VM-side and Linux host scripts --------------------------------


def test_vm_firewall_dry_run_prints_the_block_and_changes_nothing(tmp_path: Path) -> None:
    after = tmp_path / "etc" / "ufw" / "after.rules"
    after.parent.mkdir(parents=True)
    after.write_text("*filter\nCOMMIT\n")
    done = run(
        str(SCRIPTS / "vm-firewall.sh"), "--dry-run", "--rootdir", str(tmp_path),
        "--source", "10.0.108.0/24",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert after.read_text() == "*filter\nCOMMIT\n"
    out = done.stdout
    assert "-A DOCKER-USER -m conntrack --ctstate DNAT" in out
    assert "-j ufw-user-forward" in out
    assert "route allow proto tcp from 10.0.108.0/24 to any port 12345" in out
    assert "allow 22/tcp" in out


def test_vm_firewall_rejects_bad_sources() -> None:
    done = run(str(SCRIPTS / "vm-firewall.sh"), "--dry-run", "--source", "10.0.108.0/33")
    assert done.returncode != 0
    assert "--source" in done.stderr


def test_nat_linux_host_needs_a_vm_address() -> None:
    done = run(str(SCRIPTS / "nat-linux-host.sh"), "--dry-run")
    assert done.returncode != 0
    assert "--vm-ip is required" in done.stderr


# --- dry runs show every change, and never claim to have done it ------------------


@contextlib.contextmanager
def netns() -> Iterator[str]:
    """A network namespace of the test's own (its own netfilter tables and
    ip_forward), with a veth link 10.77.0.1/24 standing for the VM's network."""
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables") is None:
        require_system("needs root, ip and iptables (a network namespace of its own)")
    name = f"cc-dry-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (
            "ip link set lo up",
            "ip link add vmlink type veth peer name vmpeer",
            "ip link set vmpeer up",
            "ip addr add 10.77.0.1/24 dev vmlink",
            "ip link set vmlink up",
            "sysctl -q -w net.ipv4.ip_forward=0",
        ):
            subprocess.run(["ip", "netns", "exec", name, *command.split()], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def in_ns(name: str, *command: str) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", name, *command)


def test_vm_firewall_undo_dry_run_shows_all_four_deletes(tmp_path: Path) -> None:
    after = tmp_path / "etc" / "ufw" / "after.rules"
    after.parent.mkdir(parents=True)
    after.write_text("*filter\nCOMMIT\n")
    with netns() as ns:
        # The block as ufw loads it: 4 tagged rules in DOCKER-USER.
        applied = in_ns(
            ns, str(SCRIPTS / "vm-firewall.sh"), "--dry-run", "--rootdir", str(tmp_path)
        )
        block = [
            line.strip()
            for line in applied.stdout.splitlines()
            if line.strip().startswith("-A DOCKER-USER") and "classcord-vm-firewall" in line
        ]
        assert len(block) == 4, applied.stdout
        in_ns(ns, "iptables", "-N", "DOCKER-USER")
        for rule in block:
            words = shlex.split(rule.replace("-j ufw-user-forward", "-j RETURN"))  # no ufw here
            assert in_ns(ns, "iptables", *words).returncode == 0
        before = in_ns(ns, "iptables", "-S", "DOCKER-USER").stdout
        done = in_ns(
            ns, str(SCRIPTS / "vm-firewall.sh"), "--undo", "--dry-run", "--rootdir", str(tmp_path)
        )
        assert done.returncode == 0, done.stderr
        deletes = [line for line in done.stdout.splitlines() if "iptables -D DOCKER-USER" in line]
        assert deletes == [f"+ iptables -D DOCKER-USER {n}" for n in (4, 3, 2, 1)]
        assert done.stdout.splitlines()[-1] == "vm-firewall.sh: dry run, nothing changed"
        assert in_ns(ns, "iptables", "-S", "DOCKER-USER").stdout == before
        # The same deletes for real leave nothing of ours.
        real = in_ns(ns, str(SCRIPTS / "vm-firewall.sh"), "--undo", "--rootdir", str(tmp_path))
        assert real.returncode == 0, real.stderr
        assert "classcord" not in in_ns(ns, "iptables", "-S", "DOCKER-USER").stdout


def test_nat_linux_host_undo_dry_run_includes_ip_forward(tmp_path: Path) -> None:
    script = str(SCRIPTS / "nat-linux-host.sh")
    with netns() as ns:
        assert in_ns(ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
        dry_add = in_ns(ns, script, "--vm-ip", "10.77.0.15", "--dry-run")
        assert dry_add.returncode == 0, dry_add.stderr
        assert "+ sysctl -q -w net.ipv4.ip_forward=1" in dry_add.stdout
        assert dry_add.stdout.splitlines()[-1] == "nat-linux-host.sh: dry run, nothing changed"
        added = in_ns(ns, script, "--vm-ip", "10.77.0.15")
        assert added.returncode == 0, added.stderr
        assert in_ns(ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"
        rules = in_ns(ns, "iptables-save").stdout

        dry = in_ns(ns, script, "--undo", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        assert sum("iptables -t" in line and " -D " in line for line in lines) == 4, dry.stdout
        assert "+ sysctl -q -w net.ipv4.ip_forward=0" in lines
        assert lines[-1] == "nat-linux-host.sh: dry run, nothing changed"
        assert in_ns(ns, "iptables-save").stdout == rules
        assert in_ns(ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"

        undone = in_ns(ns, script, "--undo")
        assert undone.returncode == 0, undone.stderr
        assert "classcord" not in in_ns(ns, "iptables-save").stdout
        assert in_ns(ns, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"


def test_no_dry_run_claims_to_have_done_something(vbox: FakeVBox, tmp_path: Path) -> None:
    conf = tmp_path / "nat.conf"
    ours = "[incomingtcp]\n# classcord port 12345\n12345 = 192.168.133.128:12345\n"
    conf.write_text(NAT_CONF.replace("[incomingtcp]\n", ours))
    vbox.set(rules=["classcord,tcp,,12345,,12345"])
    runs = [
        vbox.script("--vm", "ClassCord-VM", "--port", str(free_port()), "--dry-run"),
        vbox.script("--vm", "ClassCord-VM", "--undo", "--dry-run"),
        vmware(conf, "--vm-ip", "192.168.133.128", "--port", str(free_port()), "--dry-run"),
        vmware(conf, "--undo", "--port", "12345", "--dry-run"),
        run(str(SCRIPTS / "vm-firewall.sh"), "--dry-run", "--rootdir", str(tmp_path)),
        run(str(SCRIPTS / "vm-firewall.sh"), "--undo", "--dry-run", "--rootdir", str(tmp_path)),
    ]
    for done in runs:
        assert done.returncode == 0, done.args
        last = done.stdout.strip().splitlines()[-1]
        assert last.endswith("dry run, nothing changed"), (done.args, done.stdout)
        assert not any(
            word in line for line in done.stdout.splitlines() for word in ("done.", " removed")
        ), done.stdout
    assert vbox.rules == ["classcord,tcp,,12345,,12345"]
