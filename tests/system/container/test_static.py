"""Checks of the container files that need no Docker engine: linters, the compose
file as docker-compose 1.29 reads it, .env.example, the Dockerfile's rules, the
scripts' --help/--dry-run, the SBOM and the docs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from classcord import __version__
from classcord.config import Settings, env_name
from tests.conftest import require_system
from tests.system.container.conftest import ROOT, clean_env, require_compose, run, venv_tool

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
MY_SCRIPTS = ["build-base-image.sh", "sbom.sh", "container-restore.sh"]
# Server settings the container fixes itself instead of reading them from .env.
FIXED_IN_CONTAINER = {"host", "port", "data_dir", "log_file"}
# Variables only compose reads (interpolation), not the server.
COMPOSE_ONLY = {
    "COMPOSE_PROJECT_NAME",
    "CLASSCORD_BIND",
    "CLASSCORD_PORT",
    "CLASSCORD_IMAGE",
    "CLASSCORD_VERSION",
    "CLASSCORD_PYTHON_IMAGE",
    "CLASSCORD_BRIDGE",
    "CLASSCORD_CPUS",
    "CLASSCORD_MEMORY",
    "CLASSCORD_BACKUP_KEEP",
}


def tool(name: str) -> str:
    found = venv_tool(name)
    if found is None:
        require_system(f"{name} is not installed (pip install -e '.[tools]')")
        raise AssertionError("unreachable")
    return found


def yaml_module() -> Any:
    return pytest.importorskip("yaml")


# What .env.example sets (uncommented) and the compose file requires.
MINIMAL_ENV = ["CLASSCORD_BIND=0.0.0.0", "CLASSCORD_PORT=12345"]


def compose_config(tmp_path: Path, env_lines: list[str]) -> dict[str, Any]:
    """The compose file as docker-compose 1.29 resolves it with this env file."""
    command = require_compose(1)
    env_file = tmp_path / "test.env"
    env_file.write_text("\n".join(env_lines) + "\n", encoding="utf-8")
    result = run(
        [*command, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        env=clean_env(),
        timeout=60,
    )
    config: dict[str, Any] = yaml_module().safe_load(result.stdout)
    return config


# --- linters -----------------------------------------------------------------------


def test_hadolint_passes_with_the_strict_rules() -> None:
    result = run([tool("hadolint"), "--no-color", "Dockerfile"], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_config_catches_what_its_defaults_miss(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:12.5\nCMD python3 -m classcord\n", encoding="utf-8")
    result = run([tool("hadolint"), "--no-color", str(bad)], check=False)
    assert result.returncode != 0
    for rule in ("DL3057", "DL3049"):
        assert rule in result.stdout


def test_shellcheck_passes_on_every_script() -> None:
    scripts = sorted(str(p) for p in (ROOT / "scripts").glob("**/*.sh"))
    assert scripts
    result = run([tool("shellcheck"), "-x", *scripts, str(ROOT / ".ci" / "run")], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_passes_on_the_compose_file() -> None:
    rules = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"
    result = run([tool("yamllint"), "-d", rules, str(COMPOSE_FILE)], check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the compose file ----------------------------------------------------------------


def test_compose_file_avoids_what_docker_compose_1_29_rejects() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    raw = yaml_module().safe_load(text)
    assert "version" not in raw
    assert "name" not in raw
    for forbidden in ("start_interval", "include:", "develop:", "host_ip", "required:"):
        assert forbidden not in text, forbidden
    for service in raw["services"].values():
        # v2.26+ refuses deploy.resources beside pids_limit; 1.29 refuses its pids.
        assert "deploy" not in service
        assert all(isinstance(port, str) for port in service.get("ports", []))
        assert "env_file" not in service  # a missing .env would stop docker-compose 1.29
    assert "latest" not in text


@pytest.mark.parametrize("major", [1, 2], ids=["compose-1.29", "compose-v2"])
def test_both_composes_accept_the_file_with_env_example(major: int, tmp_path: Path) -> None:
    """`config -q` of docker-compose 1.29 and of Compose v2 (Debian 13's 2.26),
    in a copy of the repository's files as a student has them after
    `cp .env.example .env`."""
    command = require_compose(major)
    for name in ("docker-compose.yml", ".env.example"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    (tmp_path / ".env").write_bytes(ENV_EXAMPLE.read_bytes())
    done = run([*command, "config", "-q"], env=clean_env(), cwd=tmp_path, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""
    names = run([*command, "config", "--volumes"], env=clean_env(), cwd=tmp_path, timeout=60)
    assert names.stdout.split() == ["classcord-data"]


@pytest.mark.parametrize("major", [1, 2], ids=["compose-1.29", "compose-v2"])
def test_both_composes_say_when_env_is_missing(major: int, tmp_path: Path) -> None:
    """Without .env, compose stops before making a volume named after the folder
    or asking Docker Hub for an image, and says how to make .env."""
    command = require_compose(major)
    (tmp_path / "docker-compose.yml").write_bytes(COMPOSE_FILE.read_bytes())
    done = run([*command, "config", "-q"], env=clean_env(), cwd=tmp_path, check=False, timeout=60)
    assert done.returncode != 0
    assert ".env is missing or has no CLASSCORD_BIND: cp .env.example .env" in done.stderr


def test_docker_compose_1_29_accepts_the_file_with_defaults(tmp_path: Path) -> None:
    config = compose_config(tmp_path, MINIMAL_ENV)
    server = config["services"]["classcord"]
    assert server["image"] == f"classcord:{__version__}"
    assert server["build"]["args"]["PYTHON_IMAGE"] == "python:3.12-slim-bookworm"
    assert server["ports"] == ["0.0.0.0:12345:12345/tcp"]
    assert server["restart"] == "unless-stopped"
    assert server["init"] is True
    assert server["read_only"] is True
    assert server["tmpfs"] == ["/tmp:size=16m,mode=1777"]
    assert server["cap_drop"] == ["ALL"]
    assert server["security_opt"] == ["no-new-privileges:true"]
    assert server["user"] == "10001:10001"
    assert server["ulimits"]["nofile"] == {"soft": 4096, "hard": 4096}
    assert server["pids_limit"] == 128
    assert server["cpus"] == 1.0
    assert server["mem_limit"] == "256M"
    assert server["mem_reservation"] == "64M"
    assert server["logging"] == {
        "driver": "json-file",
        "options": {"max-size": "10m", "max-file": "3"},
    }
    assert server["healthcheck"]["test"][:5] == ["CMD", "python", "-m", "classcord", "healthcheck"]
    assert server["volumes"] == ["classcord-data:/data:rw"]
    assert server["networks"] == {"classcord": None}
    assert server["environment"]["CLASSCORD_PORT"] == "12345"
    assert server["environment"]["CLASSCORD_DATA_DIR"] == "/data"
    backup = config["services"]["backup"]
    assert backup["profiles"] == ["backup"]
    assert backup["network_mode"] == "none"
    assert backup["command"][:4] == ["python", "-m", "classcord", "backup"]
    assert backup["restart"] == "no"
    assert backup["read_only"] is True
    bridge = config["networks"]["classcord"]["driver_opts"]["com.docker.network.bridge.name"]
    assert bridge == "br-classcord"
    assert len(bridge) <= 15  # Linux interface names
    assert "classcord-data" in config["volumes"]


def test_docker_compose_1_29_accepts_env_example_and_passes_settings(tmp_path: Path) -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    lines += ["CLASSCORD_PORT=2345", "CLASSCORD_BIND=127.0.0.1", "CLASSCORD_RATE_BURST=61"]
    config = compose_config(tmp_path, lines)
    server = config["services"]["classcord"]
    assert server["ports"] == ["127.0.0.1:2345:12345/tcp"]
    # The host port never changes the port inside the container.
    assert server["environment"]["CLASSCORD_PORT"] == "12345"
    assert server["environment"]["CLASSCORD_RATE_BURST"] == "61"
    assert server["environment"]["CLASSCORD_MAX_CONNECTIONS"] is None  # unset: server default


def _pass_through_names() -> set[str]:
    raw = yaml_module().safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    environment = raw["services"]["classcord"]["environment"]
    return {name for name, value in environment.items() if value is None}


def test_every_server_setting_is_either_fixed_or_passed_through() -> None:
    """A setting added to Settings must be added to docker-compose.yml and
    .env.example too: this test names it."""
    settings = {f.name for f in dataclasses.fields(Settings)}
    passed = {name.removeprefix("CLASSCORD_").lower() for name in _pass_through_names()}
    assert passed | FIXED_IN_CONTAINER == settings, (
        f"missing: {sorted(settings - passed - FIXED_IN_CONTAINER)}, "
        f"unknown: {sorted(passed - settings)}"
    )


def _env_example_entries() -> dict[str, str]:
    """NAME -> value of every `NAME=value` or `# NAME=value` line."""
    entries: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        found = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]*)=(.*)", line)
        if found:
            entries.setdefault(found.group(1), found.group(2))
    return entries


def test_env_example_documents_every_variable_with_its_default() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    used = interpolated | _pass_through_names() | {"COMPOSE_PROJECT_NAME"}
    documented = _env_example_entries()
    assert used - set(documented) == set(), "used by docker-compose.yml, not in .env.example"
    assert set(documented) - used == set(), "in .env.example, not used by docker-compose.yml"
    assert interpolated == COMPOSE_ONLY - {"COMPOSE_PROJECT_NAME"}
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        name = env_name(field.name)
        if name not in documented or field.name in FIXED_IN_CONTAINER:
            continue
        value = getattr(defaults, field.name)
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        assert documented[name] == shown, f"{name}: .env.example shows {documented[name]!r}"
    # Compose-level defaults agree with the compose file; the two that .env must
    # set (so that a missing .env is noticed) have no default there.
    required = set(re.findall(r"\$\{([A-Z0-9_]+)\?", text))
    assert required == {"CLASSCORD_BIND", "CLASSCORD_PORT"}
    for name in COMPOSE_ONLY - {"COMPOSE_PROJECT_NAME"} - required:
        in_compose = re.search(r"\$\{" + name + r":-([^}]*)\}", text)
        assert in_compose, name
        assert documented[name] == in_compose.group(1), name
    assert [f"{name}={documented[name]}" for name in sorted(required)] == MINIMAL_ENV


# --- the Dockerfile and .dockerignore -----------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    pairs = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def test_dockerfile_uses_only_what_the_classic_builder_understands() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not text.startswith("# syntax"), "a syntax directive needs BuildKit"
    for buildkit_only in ("--mount", "--chmod", "--link", "--network=", "--security", "<<"):
        assert buildkit_only not in text, buildkit_only


def test_dockerfile_rules() -> None:
    instructions = _instructions()
    assert instructions[0] == ("ARG", "PYTHON_IMAGE=python:3.12-slim-bookworm")
    assert instructions[1] == ("FROM", "${PYTHON_IMAGE}")
    args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG")
    assert args["CLASSCORD_VERSION"] == __version__, "keep it equal to classcord.__version__"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "the image must not run as root"
    final_user = users[-1].replace("${CLASSCORD_UID}", args["CLASSCORD_UID"])
    uid = final_user.split(":")[0]
    assert uid.isdigit(), "a numeric UID (runAsNonRoot-style checks need it)"
    assert int(uid) != 0
    by_keyword: dict[str, list[str]] = {}
    for keyword, rest in instructions:
        by_keyword.setdefault(keyword, []).append(rest)
    assert json.loads(by_keyword["CMD"][-1]) == ["python", "-m", "classcord", "serve"]
    health = by_keyword["HEALTHCHECK"][-1]
    exec_form = json.loads(health[health.index("CMD") + 3 :])
    assert exec_form[:4] == ["python", "-m", "classcord", "healthcheck"]
    assert by_keyword["EXPOSE"] == ["12345"]
    assert by_keyword["VOLUME"] == ['["/data"]']
    env = " ".join(by_keyword["ENV"])
    for wanted in ("PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "CLASSCORD_DATA_DIR=/data"):
        assert wanted in env
    copies = by_keyword["COPY"]
    assert copies == ["classcord/ /app/classcord/"], "copy only the package"
    assert "latest" not in DOCKERFILE.read_text(encoding="utf-8")


def test_compose_and_dockerfile_agree_on_the_version() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert set(re.findall(r"\$\{CLASSCORD_VERSION:-([^}]*)\}", text)) == {__version__}


def test_dockerignore_keeps_data_secrets_and_caches_out() -> None:
    patterns = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    for wanted in (
        ".git",
        ".env",
        ".venv",
        "data",
        "**/*.db",
        "**/*.db-wal",
        "**/users.pkl",
        "**/*.log",
        "**/__pycache__",
        ".pytest_cache",
        ".mypy_cache",
    ):
        assert wanted in patterns, wanted


# --- scripts -------------------------------------------------------------------------


@pytest.mark.parametrize("script", MY_SCRIPTS)
def test_script_has_help(script: str) -> None:
    result = run([str(ROOT / "scripts" / script), "--help"])
    assert result.stdout.startswith("Usage: scripts/" + script)
    assert "--dry-run" in result.stdout


def test_build_base_image_refuses_latest_and_dry_runs(tmp_path: Path) -> None:
    script = str(ROOT / "scripts" / "build-base-image.sh")
    refused = run([script, "--image", "classcord-base:latest"], check=False)
    assert refused.returncode == 2
    cache = tmp_path / "cache"
    result = run(
        [script, "--dry-run", "--image", "classcord-dry:none", "--cache-dir", str(cache)],
        env=clean_env(),
    )
    assert "+ debootstrap --variant=minbase --include=python3 bookworm" in result.stdout
    assert "+ docker import" in result.stdout
    assert not cache.exists(), "--dry-run must not change anything"


def restore_script(*args: str) -> Any:
    script = str(ROOT / "scripts" / "container-restore.sh")
    return run([script, *args], env=clean_env(), check=False)


def test_container_restore_dry_run_changes_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / "ok.env"
    env_file.write_bytes(ENV_EXAMPLE.read_bytes())
    result = restore_script(
        "--dry-run", "--compose", "docker-compose", "--env-file", str(env_file),
        "classcord-20250101-000000.db",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "container-restore.sh: using docker-compose (Compose v" in result.stdout
    assert f"+ docker-compose --env-file {env_file} stop classcord" in result.stdout
    assert f"+ docker-compose --env-file {env_file} start classcord" in result.stdout
    assert result.stdout.splitlines()[-1] == "container-restore.sh: dry run, nothing changed"
    refused = restore_script("--dry-run", "--env-file", str(env_file), "../etc/passwd")
    assert refused.returncode == 2


@pytest.mark.parametrize("major", [1, 2], ids=["compose-1.29", "compose-v2"])
def test_container_restore_asks_compose_its_version(major: int, tmp_path: Path) -> None:
    """Picked by asking `version`, not by name; said on the first line."""
    command = " ".join(require_compose(major))
    env_file = tmp_path / "ok.env"
    env_file.write_bytes(ENV_EXAMPLE.read_bytes())
    done = restore_script("--dry-run", "--compose", command, "--env-file", str(env_file), "--list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"container-restore.sh: using {command} (Compose v{major}, ")
    broken = restore_script("--compose", "false", "--env-file", str(env_file), "--list")
    assert broken.returncode == 1
    assert "'false' does not answer 'version --short'" in broken.stderr


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (None, "cp .env.example .env"),
        (["CLASSCORD_PORT=12345:12345", "CLASSCORD_BIND=0.0.0.0"], "give the host port only"),
        (["CLASSCORD_PORT=99999", "CLASSCORD_BIND=0.0.0.0"], "a number from 1 to 65535"),
        (["CLASSCORD_PORT=port", "CLASSCORD_BIND=0.0.0.0"], "a number from 1 to 65535"),
        (["CLASSCORD_BIND=0.0.0.0"], "CLASSCORD_PORT is not set"),
        (["CLASSCORD_PORT=12345", "CLASSCORD_BIND=localhost"], "write an address"),
        (["CLASSCORD_PORT=12345", "CLASSCORD_BIND=0.0.0.0:12345"], "with no port"),
        (["CLASSCORD_PORT=12345\r", "CLASSCORD_BIND=0.0.0.0\r"], "Windows line endings"),
        (["CLASSCORD_PORT=1", "CLASSCORD_BIND=0.0.0.0", "COMPOSE_PROJECT_NAME=Ma Classe"], "lower"),
    ],
)
def test_scripts_explain_env_file_mistakes(
    lines: list[str] | None, message: str, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    if lines is not None:
        env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = restore_script("--dry-run", "--env-file", str(env_file), "--list")
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""  # nothing run, not even compose


def test_sbom_script_writes_a_valid_cyclonedx_sbom(tmp_path: Path) -> None:
    tool("cyclonedx-py")
    output = tmp_path / "sbom" / "classcord.cdx.json"
    dry = run([str(ROOT / "scripts" / "sbom.sh"), "--dry-run", "--output", str(output)])
    assert "cyclonedx-py" in dry.stdout
    assert not output.exists()
    run([str(ROOT / "scripts" / "sbom.sh"), "--output", str(output)], timeout=300)
    sbom = json.loads(output.read_text(encoding="utf-8"))
    assert sbom["bomFormat"] == "CycloneDX"
    assert sbom["specVersion"] == "1.6"
    component = sbom["metadata"]["component"]
    assert component["name"] == "classcord"
    assert component["version"] == __version__
    assert component["type"] == "application"
    assert component["licenses"][0]["license"]["id"] == "MIT"
    # Standard library only: nothing third-party to list.
    assert sbom.get("components", []) == []


# --- docs ----------------------------------------------------------------------------


def test_containers_doc_covers_the_issue() -> None:
    doc = (ROOT / "CONTAINERS.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", doc, flags=re.MULTILINE)
    assert "Networking: from a SLAM PC to the container" in headings
    for topic in (
        "Alpine",
        "docker compose",
        "docker-compose",
        ".env",
        "healthy",
        "docker compose logs",
        "run --rm backup",
        "/etc/cron.d/",
        "container-restore.sh",
        "scripts/sbom.sh",
        "scripts/build-base-image.sh",
        "trivy",
        "Troubleshooting",
        "12345",
        "/data",
    ):
        assert topic in doc, topic
    # Every script the doc names exists.
    for script in set(re.findall(r"scripts/[\w.-]+\.sh", doc)):
        assert (ROOT / script).is_file(), script


# --- scripts/test.sh's own set-up ------------------------------------------------------


@pytest.fixture
def test_sh_copy() -> Iterator[Path]:
    """scripts/test.sh in a folder of its own (it works on the folder above it),
    where any user may work: /var/tmp, not pytest's root-only folder."""
    base = Path(tempfile.mkdtemp(prefix="classcord-test-sh-", dir="/var/tmp"))
    try:
        base.chmod(0o777)
        root = base / "repo"
        (root / "scripts").mkdir(parents=True)
        for name in ("scripts/test.sh", "pyproject.toml"):
            (root / name).write_bytes((ROOT / name).read_bytes())
        (root / "scripts" / "test.sh").chmod(0o755)
        yield root
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_test_sh_rebuilds_a_half_made_venv(test_sh_copy: Path) -> None:
    root = test_sh_copy
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)  # but no bin/pip
    done = run([str(root / "scripts" / "test.sh"), "--dry-run", "--fast"], check=False)
    assert done.returncode == 0, done.stderr
    venv = root / ".venv"
    assert f"test.sh: {venv} is half made (no bin/python or bin/pip): rebuilding it" in done.stdout
    assert f"+ rm -rf {venv}" in done.stdout
    assert f"+ python3 -m venv {venv}" in done.stdout
    assert (venv / "bin" / "python").is_symlink(), "--dry-run must not change anything"


def test_test_sh_says_what_to_install_when_venv_fails(test_sh_copy: Path) -> None:
    """Debian's python3 without python3-venv: as root test.sh installs it; a user
    is told what to install, and no half-made .venv is left for the next run."""
    root = test_sh_copy
    fake = root.parent / "python-without-venv"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin"\n'
        '  echo "The virtual environment was not created successfully because ensurepip'
        ' is not available." >&2; exit 1; fi\n'
        f'exec {sys.executable} "$@"\n',
        encoding="utf-8",
    )
    fake.chmod(0o755)
    command = [str(root / "scripts" / "test.sh"), "--fast"]
    if os.geteuid() == 0:
        root.chmod(0o777)
        fake.chmod(0o755)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = run(command, check=False, env=dict(clean_env(), PYTHON=str(fake)))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "install python3-venv (as root: apt-get install python3-venv)" in done.stderr
    assert not (root / ".venv").exists()


def test_test_sh_fetches_debian13_tools_with_a_private_apt(test_sh_copy: Path) -> None:
    """Debian 13's Compose v2 and buildx come from the machine's own Debian mirror
    under a private sources list and apt state; a dry run shows it and does nothing."""
    root = test_sh_copy
    done = run([str(root / "scripts" / "test.sh"), "--dry-run"], check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    apt = root / ".venv" / "debian13"
    lines = done.stdout.splitlines()
    source = [line for line in lines if line.startswith("+ echo 'deb ")]
    assert len(source) == 1, lines
    mirror = source[0].split()[3]
    configured = "".join(
        path.read_text(errors="replace")
        for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
        if path.is_file()
    )
    assert mirror in configured, "the mirror comes from the machine's own sources"
    assert source[0].endswith(f"trixie main' > {apt}/sources.list")
    download = [line for line in lines if " download -q docker-compose docker-buildx" in line]
    assert len(download) == 1, lines
    for option in (
        f"Dir::Etc::sourcelist={apt}/sources.list",
        "Dir::Etc::sourceparts=-",
        f"Dir::State={apt}/state",
        f"Dir::Cache={apt}/cache",
    ):
        assert option in download[0]
    plugins = root / ".venv" / "docker-config" / "cli-plugins"
    for name in ("docker-compose", "docker-buildx"):
        assert f"/usr/libexec/docker/cli-plugins/{name} {plugins}/{name}" in done.stdout
    assert not (root / ".venv").exists(), "--dry-run must not change anything"
