"""The image on its own: metadata, user, read-only root, build context, PID 1."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest

from classcord import __version__, texts
from tests.system.container.chat import ChatClient, wait_answering
from tests.system.container.conftest import (
    DEBIAN12,
    FLAVOURS,
    ROOT,
    BuiltImage,
    Flavour,
    ImageRegistry,
    assert_no_build_warning,
    docker,
    inspect,
    run,
)

pytestmark = pytest.mark.system

APP_UID = 10001


def test_image_metadata(image: BuiltImage) -> None:
    data = inspect(image.tag)
    config = data["Config"]
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Cmd"] == ["python", "-m", "classcord", "serve"]
    assert config["ExposedPorts"] == {"12345/tcp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert config["WorkingDir"] == "/app"
    env = config["Env"]
    for wanted in ("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "CLASSCORD_DATA_DIR=/data"):
        assert wanted in env
    health = config["Healthcheck"]
    assert health["Test"][:5] == ["CMD", "python", "-m", "classcord", "healthcheck"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.source"]
    size_mb = int(str(data["Size"])) / 1e6
    print(f"image {image.tag}: {size_mb:.0f} MB, built in {image.build_seconds:.1f} s")


@pytest.mark.parametrize("builder", FLAVOURS, ids=["classic", "buildkit"])
def test_builds_without_a_warning(builder: Flavour, images: ImageRegistry) -> None:
    """The classic builder (Debian 12's 20.10 client) and BuildKit (buildx, as on
    Debian 13), each from an empty cache: not one warning line."""
    tag = images.new_tag(f"-nocache-{builder.name}")
    built = images.build(tag, ROOT, builder, "--no-cache")
    assert_no_build_warning(built.output)
    if builder is DEBIAN12:
        assert "Successfully tagged" in built.output  # the classic builder's words
    else:
        assert "naming to docker.io/library/" in built.output  # BuildKit's


def test_runs_as_non_root_on_a_read_only_root(image: BuiltImage) -> None:
    probe = r"""
import json, os, subprocess, sys
def writable(path):
    try:
        with open(path, "w"):
            pass
    except OSError as exc:
        return exc.strerror
    os.remove(path)
    return "writable"
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(),
    "data_owner": os.stat("/data").st_uid,
    "app_writable_by_user": os.access("/app/classcord", os.W_OK),
    "root_fs": writable("/app/probe"),
    "etc": writable("/etc/probe"),
    "data": writable("/data/probe"),
    "tmp": writable("/tmp/probe"),
    "app": sorted(os.listdir("/app")),
    "version": subprocess.run([sys.executable, "-m", "classcord", "--version"],
                              capture_output=True, text=True).stdout.strip(),
}))
"""
    out = docker(
        "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none",
        image.tag, "python", "-c", probe,
    )  # fmt: skip
    facts = json.loads(out)
    assert facts["uid"] == APP_UID
    assert facts["gid"] == APP_UID
    assert facts["data_owner"] == APP_UID
    assert facts["app_writable_by_user"] is False
    assert facts["root_fs"] == "Read-only file system"
    assert facts["etc"] == "Read-only file system"
    assert facts["data"] == "writable"
    assert facts["tmp"] == "writable"
    assert facts["app"] == ["classcord"]
    assert facts["version"] == f"classcord {__version__}"
    # Even with a writable root, the code is not the app user's to change.
    out = docker(
        "run", "--rm", "--network", "none", image.tag,
        "python", "-c", "import os; print(os.access('/app/classcord/server.py', os.W_OK))",
    )  # fmt: skip
    assert out.strip() == "False"


def test_build_context_keeps_data_and_secrets_out(images: ImageRegistry, tmp_path: Path) -> None:
    """A working copy full of the things a class really has lying around: none of
    them reaches the image."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "classcord", context / "classcord")
    planted = [
        "data/classcord.db",
        "classcord.db",
        "users.pkl",
        "classcord/users.pkl",
        "classcord/old.db",
        "classcord/old.db-wal",
        "classcord/server.log",
        "classcord/__pycache__/stale.cpython-311.pyc",
        ".git/config",
        ".env",
        ".venv/bin/python",
        "backups/classcord-20250101-000000.db",
    ]
    for relative in planted:
        path = context / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("must not reach the image\n", encoding="utf-8")
    tag = images.new_tag("-context")
    images.build(tag, context, DEBIAN12)
    listing = docker(
        "run", "--rm", "--network", "none", tag, "python", "-c",
        "import os; print('\\n'.join(os.path.join(d, f) for d, _, fs in os.walk('/app') "
        "for f in fs))",
    )  # fmt: skip
    files = listing.split()
    assert files, "the image has no /app files"
    assert all(f.startswith("/app/classcord/") for f in files), files
    for leak in ("users.pkl", "old.db", "old.db-wal", "server.log", "stale.cpython-311.pyc"):
        assert not any(f.endswith("/" + leak) for f in files), leak
    found = docker(
        "run", "--rm", "--network", "none", "--user", "0", tag, "sh", "-c",
        "find / -xdev \\( -name users.pkl -o -name 'classcord*.db' -o -name .env \\) -print",
    )  # fmt: skip
    assert found.strip() == ""


def test_pid1_handles_sigterm_without_init(image: BuiltImage) -> None:
    """`docker run` with no --init: the server is PID 1 and still stops at once,
    telling its clients."""
    name = f"cctest-pid1-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "-e", "CLASSCORD_SCRYPT_N=1024", "-p", "127.0.0.1::12345", image.tag,
    )  # fmt: skip
    try:
        port = int(docker("port", name, "12345").split()[0].rpartition(":")[2])
        assert docker("exec", name, "cat", "/proc/1/cmdline").startswith("python\0-m\0classcord")
        wait_answering(port)
        with ChatClient(port) as alice:
            alice.account("alice", "motdepasse")
            started = time.monotonic()
            docker("stop", "-t", "10", name)
            stop_seconds = time.monotonic() - started
            lines = alice.read_until_closed()
        print(f"docker stop (server as PID 1): {stop_seconds:.2f} s")
        assert stop_seconds < 5, stop_seconds
        assert any(
            m.get("from") == texts.SERVER_NAME and m.get("content") == texts.SHUTDOWN_NOTICE
            for m in lines
        ), lines
        assert docker("inspect", "-f", "{{.State.ExitCode}}", name).strip() == "0"
    finally:
        # -v: the anonymous /data volume of this container goes too.
        run(["docker", "rm", "-f", "-v", name], check=False)
