"""ufw's configuration (its files, or a copy under --ufw-rootdir) and the live
iptables chains, DOCKER-USER included."""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

from classcord.doctor.commands import run_command
from classcord.doctor.facts import FirewallFacts, UfwRule

FIREWALL_TAG = "classcord-vm-firewall"
FIREWALL_MARK = f"# BEGIN {FIREWALL_TAG}"

_TUPLE = re.compile(r"^### tuple ### (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)(?: (.*))?$")


def parse_ufw_user_rules(text: str) -> list[UfwRule]:
    """Rules from ufw's user.rules, whose ``### tuple ###`` lines are its own record."""
    rules = []
    for line in text.splitlines():
        match = _TUPLE.match(line.strip())
        if not match:
            continue
        action, protocol, dport, _dst, _sport, source, _direction, extra = match.groups()
        route = action.startswith("route:")
        action = action.removeprefix("route:")
        comment = ""
        for word in (extra or "").split():
            if word.startswith("comment="):
                with contextlib.suppress(ValueError):
                    comment = bytes.fromhex(word[len("comment=") :]).decode("utf-8", "replace")
        rules.append(UfwRule(action, route, protocol, dport, source, comment))
    return rules


def _shell_value(text: str, name: str) -> str:
    match = re.search(rf"^{name}=[\"']?([^\"'\n]*)", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def gather_firewall(rootdir: str | None) -> FirewallFacts:
    root = Path(rootdir) if rootdir else Path("/")
    etc = root / "etc"
    installed = shutil.which("ufw") is not None or (etc / "ufw").is_dir()
    if not installed:
        return FirewallFacts(installed=False)
    try:
        conf = (etc / "ufw" / "ufw.conf").read_text()
        defaults = (etc / "default" / "ufw").read_text()
        user_rules = (etc / "ufw" / "user.rules").read_text()
        after_rules = (etc / "ufw" / "after.rules").read_text()
    except PermissionError:
        return FirewallFacts(True, readable=False, error="run the doctor with sudo")
    except OSError as exc:
        return FirewallFacts(True, readable=False, error=str(exc))
    enabled = _shell_value(conf, "ENABLED").lower() == "yes"
    after_lines = [line for line in after_rules.splitlines() if FIREWALL_MARK not in line]
    block = FIREWALL_MARK in after_rules
    others = any(line.startswith("-A DOCKER-USER") for line in after_lines) and not block

    active: bool | None = None
    docker_user: bool | None = None
    live: int | None = None
    jump: bool | None = None
    error = ""
    code, _ = run_command(["iptables", "-n", "-L", "ufw-user-input"])
    if code in (0, 1):
        active = code == 0
        code, out = run_command(["iptables", "-S", "DOCKER-USER"])
        docker_user = code == 0
        live = out.count(f"--comment {FIREWALL_TAG}") if code == 0 else 0
        code, out = run_command(["iptables", "-S", "FORWARD"])
        jump = code == 0 and "-j DOCKER-USER" in out
    else:
        error = "cannot read iptables (run the doctor with sudo)"
    return FirewallFacts(
        installed=True,
        readable=True,
        enabled=enabled,
        active=active,
        default_input=_shell_value(defaults, "DEFAULT_INPUT_POLICY").upper(),
        rules=tuple(parse_ufw_user_rules(user_rules)),
        block_in_after_rules=block,
        other_docker_user_rules_in_after_rules=others,
        docker_user_exists=docker_user,
        live_block_rules=live,
        forward_jumps_to_docker_user=jump,
        error=error,
    )
