"""Fixtures for the container tests, against a real Docker engine.

- ``docker_engine``: root, ``docker`` and ``dockerd`` are required; when no engine
  answers, ``dockerd`` is started in the background (log in ``DOCKERD_LOG``) and
  waited for. It is left running afterwards, like the base image, so later runs
  are fast; nothing else is left behind.
- ``base_image``: the configured base (``CLASSCORD_PYTHON_IMAGE``, default
  ``python:3.12-slim-bookworm``) when present or pullable; otherwise the stand-in
  that ``scripts/build-base-image.sh`` makes with debootstrap (kept, with its
  tarball in /var/cache/classcord, and reused while it exists).
- ``FLAVOURS``: the toolsets students have. ``debian12``: the 20.10 docker client,
  docker-compose 1.29 (v1) and the classic builder; ``debian13``: Compose v2.26
  and BuildKit through buildx 0.13 (Debian 13's packages, which scripts/test.sh
  puts in a private DOCKER_CONFIG). ``flavour`` is parametrized over both.
- ``image``: the ClassCord image built from the repository by the flavour's
  builder, under a tag unique to the run; removed at the end.
- ``compose_project``: a compose project with a unique name, published on
  127.0.0.1 on a host port Docker chooses (read back with ``compose port``) and
  its own bridge name; ``down -v`` plus a sweep by label removes its containers,
  volume and network even when the test fails.

Missing prerequisites skip, or fail when CLASSCORD_REQUIRE_SYSTEM_TESTS=1.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from classcord import __version__
from tests.conftest import require_system

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_BASE_IMAGE = "python:3.12-slim-bookworm"
STANDIN_BASE_IMAGE = "classcord-base:bookworm-python3"
TEST_IMAGE = "classcord-test"
DOCKERD_LOG = Path("/var/log/classcord-test-dockerd.log")
DOCKERD_START_TIMEOUT = 60.0
HEALTHY_TIMEOUT = 90.0
# Labels compose (v1 and v2) puts on what it creates.
PROJECT_LABEL = "com.docker.compose.project"


def run(
    args: list[str],
    *,
    check: bool = True,
    timeout: float = 180.0,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; on failure show both streams."""
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def docker(*args: str, check: bool = True, timeout: float = 180.0) -> str:
    return run(["docker", *args], check=check, timeout=timeout, env=clean_env()).stdout


def clean_env(buildkit: bool = False) -> dict[str, str]:
    """The test's environment without CLASSCORD_* or COMPOSE_* settings, so that
    only what a test writes in its env file reaches compose; the builder chosen
    explicitly (Debian 12's docker.io has only the classic one)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CLASSCORD_", "COMPOSE_", "DOCKER_BUILDKIT"))
    }
    flag = "1" if buildkit else "0"
    env.update(
        {
            "DOCKER_BUILDKIT": flag,
            # docker-compose 1.29: build through the docker CLI (and so buildx).
            "COMPOSE_DOCKER_CLI_BUILD": flag,
            # docker-compose 1.29 with current libraries warns on every call.
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def venv_tool(name: str) -> str | None:
    """A tool from the running venv first (scripts/test.sh installs them there)."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)


def compose_v1() -> list[str] | None:
    found = venv_tool("docker-compose")
    return [found] if found else None


def compose_major(command: list[str]) -> int | None:
    """Ask a compose which it is: 1 (docker-compose 1.x) or 2 (v2 and later, whose
    `version --short` is e.g. 2.26.1-4), or None when it does not answer."""
    try:
        done = run([*command, "version", "--short"], check=False, timeout=30, env=clean_env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    head = done.stdout.strip().lstrip("v").split(".", 1)[0]
    return int(head) if done.returncode == 0 and head.isdigit() else None


@functools.cache
def _compose_for(major: int) -> tuple[str, ...] | None:
    command = compose_v1() if major == 1 else ["docker", "compose"]
    if command is None or compose_major(command) != major:
        return None
    return tuple(command)


def require_compose(major: int) -> list[str]:
    """The compose of that generation the suite runs: v1 is the venv's
    docker-compose 1.29.2, v2 the `docker compose` plugin (Debian 13's 2.26.1
    from scripts/test.sh's DOCKER_CONFIG)."""
    command = _compose_for(major)
    if command is None:
        where = "pip install docker-compose==1.29.2" if major == 1 else "the docker-compose plugin"
        require_system(f"Compose v{major} is not installed ({where}; see scripts/test.sh)")
        raise AssertionError("unreachable")
    return list(command)


@dataclass(frozen=True)
class Flavour:
    """A Compose and a builder, as one kind of student machine has them."""

    name: str
    compose_major: int
    buildkit: bool

    @property
    def compose(self) -> list[str]:
        return require_compose(self.compose_major)

    def env(self) -> dict[str, str]:
        return clean_env(buildkit=self.buildkit)

    def docker_client(self) -> str:
        """The classic builder through Debian 12's own 20.10 client: newer clients
        (28 here, first on PATH) print a deprecation notice for it. BuildKit
        through whichever client is first on PATH, with the buildx plugin."""
        if self.buildkit:
            if run(["docker", "buildx", "version"], check=False, timeout=30).returncode != 0:
                require_system("docker buildx is not installed (see scripts/test.sh)")
            return "docker"
        old = Path("/usr/bin/docker")
        return str(old) if old.is_file() else "docker"


DEBIAN12 = Flavour("debian12", compose_major=1, buildkit=False)
DEBIAN13 = Flavour("debian13", compose_major=2, buildkit=True)
FLAVOURS = [DEBIAN12, DEBIAN13]
# The other two pairs a class can have: Debian 13 without docker-buildx (it is
# only recommended) and Compose 1.29 building through a BuildKit-enabled CLI.
CROSSED = [
    Flavour("v2-classic", compose_major=2, buildkit=False),
    Flavour("v1-buildkit", compose_major=1, buildkit=True),
]


def _engine_answers() -> bool:
    try:
        return run(["docker", "info"], check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if os.geteuid() != 0:
        require_system("the container tests need root (to start dockerd and debootstrap)")
    for tool in ("docker", "dockerd"):
        if shutil.which(tool) is None:
            require_system(f"{tool} is not installed (apt-get install docker.io)")
    if _engine_answers():
        return
    # setsid -f: dockerd outlives the test run and is not a child of pytest.
    with DOCKERD_LOG.open("ab") as log:
        subprocess.run(
            ["setsid", "-f", "dockerd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    deadline = time.monotonic() + DOCKERD_START_TIMEOUT
    while time.monotonic() < deadline:
        if _engine_answers():
            return
        time.sleep(1)
    tail = DOCKERD_LOG.read_text(errors="replace")[-3000:]
    pytest.fail(f"dockerd did not answer within {DOCKERD_START_TIMEOUT:.0f} s:\n{tail}")


def image_exists(name: str) -> bool:
    return run(["docker", "image", "inspect", name], check=False, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def base_image(docker_engine: None) -> str:
    wanted = os.environ.get("CLASSCORD_PYTHON_IMAGE", DEFAULT_BASE_IMAGE)
    if image_exists(wanted):
        return wanted
    try:
        pulled = run(["docker", "pull", wanted], check=False, timeout=300).returncode == 0
    except subprocess.TimeoutExpired:
        pulled = False
    if pulled:
        return wanted
    if image_exists(STANDIN_BASE_IMAGE):
        return STANDIN_BASE_IMAGE
    if shutil.which("debootstrap") is None:
        require_system(f"{wanted} cannot be pulled and debootstrap is not installed")
    run([str(ROOT / "scripts" / "build-base-image.sh")], timeout=900)
    assert image_exists(STANDIN_BASE_IMAGE)
    return STANDIN_BASE_IMAGE


@dataclass
class BuiltImage:
    tag: str
    build_seconds: float
    output: str

    @property
    def version(self) -> str:
        return self.tag.split(":", 1)[1]


@dataclass
class ImageRegistry:
    """Image tags created by this run, removed at the end of the session."""

    base: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    tags: list[str] = field(default_factory=list)
    built: dict[str, BuiltImage] = field(default_factory=dict)

    def new_tag(self, suffix: str = "") -> str:
        tag = f"{TEST_IMAGE}:{__version__}-{self.token}{suffix}"
        self.tags.append(tag)
        return tag

    def build(
        self, tag: str, context: Path = ROOT, flavour: Flavour | None = None, *extra: str
    ) -> BuiltImage:
        """Build with the flavour's builder (default: Debian 12's classic one)."""
        flavour = flavour or DEBIAN12
        started = time.monotonic()
        command = [flavour.docker_client(), "build", *extra]
        command += ["--build-arg", f"PYTHON_IMAGE={self.base}"]
        done = run([*command, "-t", tag, str(context)], env=flavour.env(), timeout=600)
        seconds = time.monotonic() - started
        print(f"build of {tag} ({flavour.name}): {seconds:.1f} s")
        return BuiltImage(tag, seconds, done.stdout + done.stderr)

    def for_flavour(self, flavour: Flavour) -> BuiltImage:
        """One image per flavour and session, built by that flavour's builder."""
        if flavour.name not in self.built:
            self.built[flavour.name] = self.build(self.new_tag(f"-{flavour.name}"), ROOT, flavour)
        return self.built[flavour.name]


@pytest.fixture(scope="session")
def images(base_image: str) -> Iterator[ImageRegistry]:
    registry = ImageRegistry(base_image)
    yield registry
    for tag in registry.tags:
        run(["docker", "image", "rm", "-f", tag], check=False, timeout=120)


@pytest.fixture(params=FLAVOURS, ids=lambda f: f.name)
def flavour(request: pytest.FixtureRequest) -> Flavour:
    found: Flavour = request.param
    return found


@pytest.fixture
def image(images: ImageRegistry, flavour: Flavour) -> BuiltImage:
    return images.for_flavour(flavour)


@dataclass
class ComposeProject:
    """One compose deployment of the repository's docker-compose.yml."""

    name: str
    flavour: Flavour
    env_file: Path
    settings: dict[str, str]
    # More compose files after docker-compose.yml (the TLS override).
    extra_files: tuple[Path, ...] = ()

    @property
    def command(self) -> list[str]:
        return self.flavour.compose

    @property
    def port(self) -> int:
        """The host port Docker chose for 12345 (it changes with each start)."""
        out = self("port", "classcord", "12345").stdout.strip()
        host, _, port = out.rpartition(":")
        assert host == "127.0.0.1", out
        assert port.isdigit(), out
        return int(port)

    @property
    def volume(self) -> str:
        return f"{self.name}_classcord-data"

    def write_env_file(self) -> None:
        lines = [f"COMPOSE_PROJECT_NAME={self.name}"]
        lines += [f"{key}={value}" for key, value in self.settings.items()]
        self.env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def base_args(self) -> list[str]:
        self.write_env_file()
        return [
            *self.command,
            "--env-file",
            str(self.env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            *(arg for extra in self.extra_files for arg in ("-f", str(extra))),
            "-p",
            self.name,
        ]

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        return run([*self.base_args(), *args], check=check, timeout=timeout, env=self.flavour.env())

    def container_id(self, service: str = "classcord") -> str:
        found = self("ps", "-q", service).stdout.split()
        assert len(found) == 1, f"expected one {service} container, got {found}"
        return found[0]

    def sweep(self) -> None:
        """Remove whatever is left with this project's label."""
        label = f"label={PROJECT_LABEL}={self.name}"
        for kind, listing in (
            ("container", ["ps", "-aq", "--filter", label]),
            ("volume", ["volume", "ls", "-q", "--filter", label]),
            ("network", ["network", "ls", "-q", "--filter", label]),
        ):
            for item in run(["docker", *listing], check=False, timeout=60).stdout.split():
                remove = ["rm", "-f", item] if kind == "container" else [kind, "rm", item]
                run(["docker", *remove], check=False, timeout=60)


def new_project(flavour: Flavour, image: BuiltImage, base_image: str, tmp: Path) -> ComposeProject:
    token = uuid.uuid4().hex[:8]
    return ComposeProject(
        name=f"cctest{token}",
        flavour=flavour,
        env_file=tmp / f"compose-{token}.env",
        settings={
            "CLASSCORD_BIND": "127.0.0.1",
            # Empty: Docker picks a free host port (no race with other tests).
            "CLASSCORD_PORT": "",
            "CLASSCORD_IMAGE": image.tag.split(":", 1)[0],
            "CLASSCORD_VERSION": image.version,
            "CLASSCORD_PYTHON_IMAGE": base_image,
            "CLASSCORD_BRIDGE": f"br-cc{token}",
            # Server settings flow from the env file into the container.
            "CLASSCORD_SHUTDOWN_TIMEOUT": "3",
            "CLASSCORD_MAX_CONNECTIONS": "500",
            "CLASSCORD_SCRYPT_N": "1024",
        },
    )


@contextlib.contextmanager
def deployed(project: ComposeProject) -> Iterator[ComposeProject]:
    try:
        yield project
    finally:
        project("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=120)
        project.sweep()


@pytest.fixture
def compose_project(
    flavour: Flavour, image: BuiltImage, base_image: str, tmp_path: Path
) -> Iterator[ComposeProject]:
    with deployed(new_project(flavour, image, base_image, tmp_path)) as project:
        yield project


def inspect(container: str) -> dict[str, Any]:
    data = json.loads(docker("inspect", container))
    assert isinstance(data, list)
    assert len(data) == 1
    found: dict[str, Any] = data[0]
    return found


def health_status(container: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", container).strip()


def _last_check_failed(container: str) -> bool:
    log = docker("inspect", "-f", "{{json .State.Health.Log}}", container, check=False)
    try:
        entries = json.loads(log) or []
    except ValueError:
        return True
    return bool(entries) and entries[-1].get("ExitCode") != 0


def wait_healthy(container: str, timeout: float = HEALTHY_TIMEOUT) -> float:
    """Wait for Docker to report the container healthy; returns the seconds taken."""
    started = time.monotonic()
    status = ""
    while time.monotonic() - started < timeout:
        status = health_status(container)
        if status == "healthy":
            return time.monotonic() - started
        state = docker("inspect", "-f", "{{.State.Status}}", container).strip()
        if state in {"exited", "dead"} or (status == "unhealthy" and _last_check_failed(container)):
            break
        # Right after a restart Docker may still show the dead process's "unhealthy"
        # with no failed check of the new one: keep waiting for the new checks.
        time.sleep(0.5)
    done = run(["docker", "logs", "--tail", "50", container], check=False)
    checks = docker("inspect", "-f", "{{json .State.Health.Log}}", container, check=False)
    raise AssertionError(
        f"container {container} is {status!r}, not healthy; health checks:\n{checks}\n"
        f"logs:\n{done.stdout}{done.stderr}"
    )


# What a build must not print: useradd's SYS_UID_MAX warning, the classic
# builder's deprecation notice of newer clients, BuildKit's own warnings.
BUILD_WARNING = re.compile(r"warning|deprecated|\[91m", re.IGNORECASE)


def assert_no_build_warning(output: str) -> None:
    found = [line for line in output.splitlines() if BUILD_WARNING.search(line)]
    assert not found, "the build warned:\n" + "\n".join(found)
