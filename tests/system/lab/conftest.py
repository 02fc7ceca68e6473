"""The simulated classroom (scripts/classroom-lab.sh) as pytest fixtures.

Every lab gets a unique name (``cc-`` + 6 hex digits), so parallel or leftover runs
never collide, and is removed by a finalizer even when a test fails. Traffic only
goes between the namespaces the lab created; the machine's own firewall is never
touched (ufw runs on a private copy of its configuration inside the VM namespace),
and a check at the end proves the host's iptables carry nothing of ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_system
from tests.system.container.conftest import require_compose

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "scripts"
LAB_SCRIPT = SCRIPTS / "classroom-lab.sh"
CHAT_CLIENT = Path(__file__).resolve().parent / "chat_client.py"
PORT = 12345
# Lines of the host's own ruleset that would betray a leak from the lab.
LEAK = re.compile(r"classcord|10\.0\.108\.|10\.0\.2\.|ufw-")


def _missing_prerequisites(docker: bool) -> str:
    if sys.platform != "linux":
        return "the classroom lab needs Linux"
    if os.geteuid() != 0:
        return "the classroom lab needs root (network namespaces, iptables)"
    tools = ["ip", "iptables", "iptables-save", "ufw", "nsenter", "sysctl", "ss"]
    if docker:
        tools += ["dockerd", "containerd", "docker"]
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return f"missing tools for the classroom lab: {', '.join(missing)}"
    probe = f"cc-probe-{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return ""


def host_leak_lines() -> set[str]:
    """The host's iptables lines that mention anything of the lab's."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return {line for line in out.splitlines() if LEAK.search(line)}


class Lab:
    """One classroom: namespaces LAB-{lan,slam,other,host,vm}, see classroom-lab.sh."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp
        self.env: dict[str, str] = {}
        self.servers: list[subprocess.Popen[str]] = []

    # --- running things -------------------------------------------------------
    def script(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 180,
        env: dict[str, str] | None = None,
    ) -> str:
        done = subprocess.run(
            [str(LAB_SCRIPT), "--name", self.name, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=dict(os.environ, **(env or {})),
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"classroom-lab.sh {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done.stdout + done.stderr

    def ns(self, role: str) -> str:
        return f"{self.name}-{role}"

    def run_in(
        self, role: str, *command: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns(role), *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"in {self.ns(role)}: {' '.join(command)} failed ({done.returncode}):\n"
                f"{done.stdout}\n{done.stderr}"
            )
        return done

    def refresh_env(self) -> None:
        out = self.script("env")
        self.env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    @property
    def ufw_root(self) -> str:
        return self.env["UFW_ROOT"]

    @property
    def docker_host(self) -> str:
        return self.env["DOCKER_HOST"]

    def ufw(self, *args: str) -> str:
        return self.script("ufw", "--", *args)

    def firewall(self, *args: str) -> str:
        return self.run_in(
            "vm", str(SCRIPTS / "vm-firewall.sh"), "--rootdir", self.ufw_root, *args
        ).stdout

    def host_nat(self, *args: str) -> str:
        return self.run_in("host", str(SCRIPTS / "nat-linux-host.sh"), *args).stdout

    def set_mode(self, mode: str) -> None:
        self.script("mode", mode)
        self.refresh_env()

    # --- ClassCord -----------------------------------------------------------
    def start_server(self, host: str = "0.0.0.0", *extra: str) -> subprocess.Popen[str]:
        """The real server (python3 -m classcord serve) in the VM namespace."""
        data = self.tmp / f"data-{secrets.token_hex(3)}"
        log = (self.tmp / f"server-{secrets.token_hex(3)}.log").open("w")
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns("vm"),
                sys.executable,
                "-m",
                "classcord",
                "serve",
                "--host",
                host,
                "--port",
                str(PORT),
                "--data-dir",
                str(data),
                "--scrypt-n",
                "1024",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        log.close()
        self.servers.append(process)
        self.wait_for_pong(host if host != "0.0.0.0" else "127.0.0.1")
        return process

    def stop_servers(self) -> None:
        for process in self.servers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        self.servers.clear()

    def wait_for_pong(self, host: str = "127.0.0.1", seconds: float = 60) -> None:
        """Poll the server from inside the VM until it answers ping."""
        deadline = time.monotonic() + seconds
        while True:
            done = self.run_in(
                "vm",
                sys.executable,
                "-m",
                "classcord",
                "healthcheck",
                "--host",
                host,
                "--port",
                str(PORT),
                "--timeout",
                "1",
                check=False,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no pong from {host}:{PORT} in the VM: {done.stdout}")
            time.sleep(0.3)

    @contextlib.contextmanager
    def hold_port(self, role: str, port: int) -> Iterator[None]:
        """Some other program listening on ``port`` in namespace ``role``."""
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns(role),
                sys.executable,
                "-c",
                "import socket, time\n"
                f"s = socket.socket(); s.bind(('0.0.0.0', {port})); s.listen()\n"
                "print('ready', flush=True); time.sleep(600)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        try:
            assert process.stdout.readline().strip() == "ready"
            yield
        finally:
            process.kill()
            process.wait(5)
            process.stdout.close()

    def chat(self, role: str, host: str, timeout: float = 2.0) -> dict[str, Any]:
        """Two real clients from namespace ``role``: register, log in, talk."""
        tag = secrets.token_hex(3)
        done = self.run_in(
            role,
            sys.executable,
            str(CHAT_CLIENT),
            host,
            str(PORT),
            "--user",
            f"eleve-{role}-{tag}",
            "--peer",
            f"binome-{role}-{tag}",
            "--timeout",
            str(timeout),
            check=False,
            timeout=60,
        )
        try:
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise AssertionError(f"chat client output: {done.stdout}\n{done.stderr}") from exc
        return result

    def doctor(self, *args: str) -> dict[str, Any]:
        done = self.run_in(
            "vm",
            sys.executable,
            "-m",
            "classcord",
            "doctor",
            "--json",
            "--timeout",
            "1.5",
            "--ufw-rootdir",
            self.ufw_root,
            "--docker-host",
            self.docker_host,
            *args,
            check=False,
        )
        try:
            report: dict[str, Any] = json.loads(done.stdout)
        except ValueError as exc:
            raise AssertionError(f"doctor output: {done.stdout}\n{done.stderr}") from exc
        assert done.returncode == (0 if report["ok"] else 1)
        return report

    # --- Docker in the VM ----------------------------------------------------
    def docker(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["docker", "-H", self.docker_host, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {done.stdout}\n{done.stderr}")
        return done.stdout


def checks_by_hop(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["hop"]: check for check in report["checks"]}


@contextlib.contextmanager
def make_lab(tmp: Path, docker: bool) -> Iterator[Lab]:
    reason = _missing_prerequisites(docker)
    if reason:
        require_system(reason)
    before = host_leak_lines()
    lab = Lab(f"cc-{secrets.token_hex(3)}", tmp)
    try:
        lab.script("up", *(["--docker"] if docker else []), timeout=120)
        lab.refresh_env()
        yield lab
    finally:
        lab.stop_servers()
        lab.script("down", check=False, timeout=180)
        leftovers = [
            ns
            for ns in subprocess.run(
                ["ip", "netns", "list"], capture_output=True, text=True, check=False
            ).stdout.split()
            if ns.startswith(lab.name + "-")
        ]
        assert not leftovers, f"namespaces left behind: {leftovers}"
        assert not Path(f"/run/classcord-lab/{lab.name}").exists(), "lab state left behind"
        assert host_leak_lines() == before, "the host's iptables changed"


@pytest.fixture(scope="module")
def plain_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A classroom without Docker: the server runs directly in the VM."""
    with make_lab(tmp_path_factory.mktemp("lab"), docker=False) as lab:
        yield lab


@pytest.fixture(scope="module")
def docker_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A classroom whose VM runs its own Docker daemon and the repository's
    docker-compose.yml (image built from the Dockerfile on the stand-in base image)."""
    compose = " ".join(require_compose(2))  # the lab runs Compose v2 (Debian 13's)
    with make_lab(tmp_path_factory.mktemp("lab"), docker=True) as lab:
        lab.script("base-image", timeout=900)
        out = lab.script("compose", "up", "-d", "--build", timeout=600)
        assert f"classroom-lab.sh: using {compose} (Compose v2," in out, out
        lab.wait_for_pong()
        yield lab


def reset_lab(lab: Lab) -> None:
    """Back to the starting point between tests: servers stopped, host forward
    removed, firewall as freshly installed, VM in NAT mode."""
    lab.stop_servers()
    lab.host_nat("--undo")
    lab.host_nat("--undo", "--port", "12346")  # the TLS tests forward 12346 too
    lab.script("ufw-reset")
    lab.refresh_env()
    if lab.env.get("LAB_MODE") != "nat":
        lab.set_mode("nat")
