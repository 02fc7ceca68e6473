"""The compose deployment, as a class runs it: chat through the published port,
hardening, stop, restarts, upgrades and backups on the named volume."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from classcord import texts
from tests.conftest import require_system
from tests.system import serve
from tests.system.container.chat import ChatClient, Message, wait_answering
from tests.system.container.conftest import (
    CROSSED,
    DEBIAN12,
    DEBIAN13,
    ROOT,
    BuiltImage,
    ComposeProject,
    Flavour,
    ImageRegistry,
    assert_no_build_warning,
    deployed,
    docker,
    inspect,
    new_project,
    require_compose,
    run,
    wait_healthy,
)

pytestmark = pytest.mark.system

PASSWORD = "mot de passe"
# Run inside the container: SIGKILL the server process (not PID 1, which is init).
KILL_SERVER = """
import os
for pid in filter(str.isdigit, os.listdir("/proc")):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        if pid != "1" and f.read().startswith(b"python\\0-m\\0classcord\\0serve"):
            os.kill(int(pid), 9)
"""


def is_chat(content: str) -> Any:
    return lambda m: m.get("type") == "message" and m.get("content") == content


def contents(history: list[Message]) -> list[str]:
    return [str(m.get("content")) for m in history]


LOG_TIME = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO classcord\.server: "


def shutdown_seconds(logs: str) -> float:
    """From the server's "SIGTERM: stopping" line to its last "stopped:" line."""
    start = re.findall(LOG_TIME + "SIGTERM: stopping", logs)
    end = re.findall(LOG_TIME + "stopped: ", logs)
    assert start, logs
    assert end, logs
    moments = [datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in (start[-1], end[-1])]
    return (moments[1] - moments[0]).total_seconds()


def up(project: ComposeProject, *flags: str) -> str:
    project("up", "-d", *(flags or ("--no-build",)), timeout=600)
    container = project.container_id()
    print(f"{project.name} ({project.flavour.name}): healthy after {wait_healthy(container):.1f} s")
    return container


def restore_script(project: ComposeProject, *args: str) -> subprocess.CompletedProcess[str]:
    return run(
        [
            str(ROOT / "scripts" / "container-restore.sh"),
            "--compose", " ".join(project.command),
            "--env-file", str(project.env_file),
            *args,
        ],
        env=project.flavour.env(),
    )  # fmt: skip


def chat_between_two_users(project: ComposeProject, message: str) -> None:
    port = project.port
    with ChatClient(port) as alice, ChatClient(port) as bob:
        alice.account("alice", PASSWORD)
        bob.account("bob", PASSWORD)
        online = alice.recv_until(lambda m: m.get("type") == "status")
        assert online == {"type": "status", "user": "bob", "state": "online"}
        bob.send({"type": "message", "subtype": "global", "content": message})
        received = alice.recv_until(is_chat(message))
        assert received["from"] == "bob"
        assert "T" in received["timestamp"]


def test_chat_hardening_and_fast_stop(compose_project: ComposeProject) -> None:
    project = compose_project
    container = up(project)

    # Hardening as docker-compose.yml asks for it, checked on the real container.
    data = inspect(container)
    host = data["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Init"] is True
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["NanoCpus"] == 1_000_000_000
    assert host["PidsLimit"] == 128
    assert {"Name": "nofile", "Soft": 4096, "Hard": 4096} in host["Ulimits"]
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "10m"},
    }
    assert host["Tmpfs"] == {"/tmp": "size=16m,mode=1777"}
    # An empty host port in .env: Docker chooses one, `compose port` tells it.
    assert host["PortBindings"] == {"12345/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    config = data["Config"]
    assert config["User"] == "10001:10001"
    assert ":latest" not in str(config["Image"])
    # Settings flow from the env file; unset ones keep the server's default.
    env = config["Env"]
    assert "CLASSCORD_MAX_CONNECTIONS=500" in env
    assert "CLASSCORD_PORT=12345" in env
    # (compose lists an unset pass-through variable bare, which Docker drops.)
    assert not any(e.startswith("CLASSCORD_RATE_BURST=") for e in env)
    inside = docker("exec", container, "env").splitlines()
    assert "CLASSCORD_MAX_CONNECTIONS=500" in inside
    assert not any(e.startswith("CLASSCORD_RATE_BURST") for e in inside)
    # The named network has the fixed bridge name a firewall rule can use.
    bridge = project.settings["CLASSCORD_BRIDGE"]
    run(["ip", "link", "show", bridge])
    networks = data["NetworkSettings"]["Networks"]
    assert list(networks) == [f"{project.name}_classcord"]

    chat_between_two_users(project, "Bonjour depuis le conteneur, ça marche !")
    # The admin socket on the volume answers `docker compose exec`.
    stats = project("exec", "-T", "classcord", "python", "-m", "classcord", "admin", "stats")
    assert "accounts: 2" in stats.stdout
    # The classroom controls in CONTAINERS.md's `exec` form, stored on the volume.
    admin = ("exec", "-T", "classcord", "python", "-m", "classcord", "admin")
    assert "maintenant professeur" in project(*admin, "role", "alice", "teacher").stdout
    assert "en sourdine" in project(*admin, "mute", "bob", "10m", "bavardages").stdout
    modlog = json.loads(project(*admin, "modlog", "--since", "2h", "--json").stdout)
    assert [(r["action"], r["target"], r["reason"]) for r in modlog["result"]] == [
        ("role", "alice", ""),
        ("mute", "bob", "bavardages"),
    ]

    # A crash is followed by a restart (restart: unless-stopped).
    # The exec may itself die with the container (exit 137): its status is not checked.
    docker("exec", container, "python", "-c", KILL_SERVER, check=False)
    deadline = time.monotonic() + 30
    while docker("inspect", "-f", "{{.RestartCount}}", container).strip() == "0":
        assert time.monotonic() < deadline, "the container was not restarted"
        time.sleep(0.5)
    wait_healthy(container)
    port = project.port
    wait_answering(port)

    # docker stop (compose stop) with clients connected: quick, and they are told.
    with ChatClient(port) as alice, ChatClient(port) as bob:
        alice.login("alice", PASSWORD)
        bob.login("bob", PASSWORD)
        # `docker stop` itself: docker-compose 1.29 alone takes seconds to start.
        started = time.monotonic()
        docker("stop", "-t", "15", container)
        stop_seconds = time.monotonic() - started
        for client in (alice, bob):
            lines = client.read_until_closed()
            notices = [m for m in lines if m.get("from") == texts.SERVER_NAME]
            assert notices, lines
            assert notices[-1]["type"] == "message"
            assert notices[-1]["subtype"] == "global"
            assert notices[-1]["content"] == texts.SHUTDOWN_NOTICE
    logs = project("logs", "--no-color", "classcord").stdout
    assert "listening on 0.0.0.0:12345" in logs
    server_seconds = shutdown_seconds(logs)
    print(
        f"docker stop with 2 clients ({project.flavour.name}): {stop_seconds:.2f} s in all, "
        f"{server_seconds:.3f} s in the server (grace period 15 s)"
    )
    # Far below the grace period: the server stopped by itself, it was not killed.
    assert stop_seconds < 5, stop_seconds
    assert server_seconds < 3, server_seconds
    assert docker("inspect", "-f", "{{.State.ExitCode}}", container).strip() == "0"


def test_data_survives_down_up_and_a_rebuild(
    compose_project: ComposeProject, images: ImageRegistry
) -> None:
    project = compose_project
    first = up(project)
    chat_between_two_users(project, "Message à garder")

    project("down")
    volumes = docker("volume", "ls", "-q").split()
    assert project.volume in volumes, "compose down (without -v) must keep the volume"
    up(project)
    with ChatClient(project.port) as alice:
        assert alice.login("alice", PASSWORD)["status"] == "ok"
        assert "Message à garder" in contents(alice.history())
    if project.flavour.name != "debian12":
        return  # the upgrade below rebuilds from scratch: once is enough

    # A new image (here: rebuilt from scratch under a new tag, as an upgrade is) on
    # the same volume keeps every user and message.
    new_version = images.new_tag("-upgrade").split(":", 1)[1]
    project.settings["CLASSCORD_VERSION"] = new_version
    project("build", "--no-cache", "classcord", timeout=600)
    second = up(project)
    assert second != first
    labels = inspect(second)["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == new_version
    port = project.port
    with ChatClient(port) as alice, ChatClient(port) as bob:
        assert alice.login("alice", PASSWORD)["status"] == "ok"
        assert bob.login("bob", PASSWORD)["status"] == "ok"
        assert "Message à garder" in contents(alice.history())


BACKUP_LINE = re.compile(r"backup written: /data/backups/(classcord-\d{8}-\d{6}\.db)")


def test_backup_job_makes_a_restorable_copy(compose_project: ComposeProject) -> None:
    project = compose_project
    up(project)
    chat_between_two_users(project, "avant la sauvegarde")

    # The batch job, as cron runs it, while the server keeps running.
    result = project("run", "--rm", "-T", "backup")
    match = BACKUP_LINE.search(result.stdout)
    assert match, result.stdout
    backup = match.group(1)

    # A failing backup says so with its exit status (the root is read-only).
    failed = project(
        "run", "--rm", "-T", "backup", "python", "-m", "classcord", "backup",
        "--data-dir", "/data", "--dest", "/app/backups", check=False,
    )  # fmt: skip
    assert failed.returncode != 0
    assert "failed" in failed.stderr

    # Changes made after the backup...
    with ChatClient(project.port) as carol:
        carol.account("carol", PASSWORD)
        carol.send({"type": "message", "subtype": "global", "content": "après la sauvegarde"})
        time.sleep(0.5)

    # ...are gone once the backup is restored, and what it held is back.
    restore = restore_script(project, backup)
    assert f"container-restore.sh: using {' '.join(project.command)} (Compose v" in restore.stdout
    assert "restore: current database saved as /data/backups/pre-restore-" in restore.stdout
    wait_healthy(project.container_id())
    port = project.port
    with ChatClient(port) as alice, ChatClient(port) as carol:
        assert alice.login("alice", PASSWORD)["status"] == "ok"
        history = contents(alice.history())
        assert "avant la sauvegarde" in history
        assert "après la sauvegarde" not in history
        refused = carol.login("carol", PASSWORD)
        assert refused["type"] == "error"
        assert refused["message"] == texts.LOGIN_FAILED
    listing = restore_script(project, "--list").stdout
    assert backup in listing
    assert "pre-restore-" in listing


def test_backup_job_fails_without_a_database(compose_project: ComposeProject) -> None:
    """On a fresh volume there is nothing to copy: non-zero, and no file made."""
    try:
        result = compose_project("run", "--rm", "-T", "backup", check=False)
    except subprocess.TimeoutExpired:  # pragma: no cover - reported as a failure
        pytest.fail("the backup job hung")
    assert result.returncode != 0
    assert "no database" in result.stderr


@pytest.mark.parametrize("crossed", CROSSED, ids=lambda f: f.name)
def test_up_build_and_chat_with_the_other_pairs(
    crossed: Flavour, images: ImageRegistry, base_image: str, tmp_path: Path
) -> None:
    """`up -d --build` as a student types it, for the two other pairs of Compose
    and builder a class can have: the image is built by compose itself, with no
    warning."""
    tag = images.new_tag(f"-up-{crossed.name}")
    project = new_project(crossed, BuiltImage(tag, 0.0, ""), base_image, tmp_path)
    with deployed(project):
        started = time.monotonic()
        done = project("up", "-d", "--build", timeout=600)
        container = project.container_id()
        wait_healthy(container)
        print(f"{crossed.name}: up -d --build to healthy in {time.monotonic() - started:.1f} s")
        assert_no_build_warning(done.stdout + done.stderr)
        chat_between_two_users(project, f"construit par {crossed.name}")


def test_moving_from_a_server_without_docker_keeps_the_accounts(
    compose_project: ComposeProject, tmp_path: Path
) -> None:
    """CONTAINERS.md's move from the systemd service to the container: stop the
    service, `python3 -m classcord backup` of its data folder, then
    `container-restore.sh --from-host` into the volume. The file is 0600 root's,
    as root's backup of the service's folder is: no chmod needed."""
    project = compose_project
    data = tmp_path / "service-data"
    service, port = serve.start(serve.serve_command(data))
    try:
        with ChatClient(port) as dora:
            dora.account("dora", PASSWORD)
            dora.send({"type": "message", "subtype": "global", "content": "écrit sans Docker"})
            time.sleep(0.5)
        service.terminate()
        assert service.wait(10) == 0
    finally:
        serve.stop(service)
    made = run([sys.executable, "-m", "classcord", "backup", "--data-dir", str(data)])
    backup = Path(re.findall(r"backup written: (\S+\.db)", made.stdout)[0])
    backup.chmod(0o600)

    up(project)
    restored = restore_script(project, "--from-host", str(backup))
    assert "restore: received the host file as /data/backups/from-host-" in restored.stdout
    wait_healthy(project.container_id())
    with ChatClient(project.port) as dora:
        assert dora.login("dora", PASSWORD)["status"] == "ok"
        assert "écrit sans Docker" in contents(dora.history())
    # And back out: a copy of the volume's database on the host, by container id.
    out = tmp_path / "from-volume.db"
    docker("cp", f"{project.container_id()}:/data/backups/", str(tmp_path / "copied"))
    copies = sorted((tmp_path / "copied").glob("from-host-*.db"))
    assert copies, list((tmp_path / "copied").iterdir())
    copies[0].rename(out)
    assert out.stat().st_size > 0


def quick_start_commands() -> list[str]:
    """The commands of CONTAINERS.md's quick start, comments removed."""
    doc = (ROOT / "CONTAINERS.md").read_text(encoding="utf-8")
    block = re.search(r"Quick start[^\n]*\n\n```bash\n(.*?)```", doc, flags=re.DOTALL)
    assert block, "no quick start block in CONTAINERS.md"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("flavour", [DEBIAN12, DEBIAN13], ids=["debian12", "debian13"])
def test_quick_start_word_for_word(
    flavour: Flavour, images: ImageRegistry, base_image: str, tmp_path: Path
) -> None:
    """The quick start in a copy of the repository, with `docker-compose` being
    Debian 12's 1.29 or Debian 13's (the v2 binary, which Debian 13 also
    installs as /usr/bin/docker-compose). Only the shell adds what this machine
    needs: a unique project, 127.0.0.1 and a port Docker picks, the local base."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    binary = Path(require_compose(1)[0]) if flavour.compose_major == 1 else None
    if binary is None:
        plugin = Path(os.environ.get("DOCKER_CONFIG", "")) / "cli-plugins" / "docker-compose"
        if not plugin.is_file():
            require_system("Debian 13's docker-compose binary is not installed (scripts/test.sh)")
        binary = plugin
    (bin_dir / "docker-compose").symlink_to(binary)
    copy = tmp_path / "classcord"
    copy.mkdir()
    for name in ("docker-compose.yml", ".env.example", "Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "classcord", copy / "classcord")
    image = BuiltImage(images.new_tag(f"-quick-{flavour.name}"), 0.0, "")
    project = new_project(flavour, image, base_image, tmp_path)
    env = flavour.env()
    env.update(project.settings)
    env["COMPOSE_PROJECT_NAME"] = project.name
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    commands = quick_start_commands()
    assert commands == ["cp .env.example .env", "docker-compose up -d --build", "docker-compose ps"]
    with deployed(project):
        for command in commands:
            done = subprocess.run(
                command, shell=True, cwd=copy, env=env, capture_output=True, text=True,
                timeout=600, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
        assert_no_build_warning(done.stdout + done.stderr)
        container = project.container_id()
        wait_healthy(container)
        chat_between_two_users(project, "démarrage rapide")
