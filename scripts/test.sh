#!/usr/bin/env bash
# The whole test suite, set-up included: system packages (when root), the venv,
# lint, type checks and pytest. Usage: scripts/test.sh [pytest args...]
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/test.sh [--dry-run] [--fast] [--help] [PYTEST_ARGS...]

Sets up everything the suite needs, then runs ruff, mypy --strict and pytest.
  - as root: installs missing Debian packages (docker.io, debootstrap, ufw,
    iptables, iproute2, conntrack, procps, systemd, openssl, openjdk-17-jdk-headless,
    inspircd, ngircd) with apt-get, and
    python3-venv when `python3 -m venv` fails for lack of it;
  - never leaves the system services of inspircd and ngircd running (the
    benchmark starts their binaries itself, with private configurations): they
    are installed under a temporary /usr/sbin/policy-rc.d that forbids starting
    services (unless the machine already has one), and on every run a packaged
    daemon found running is stopped and the service disabled at boot
    (undo: update-rc.d NAME enable, or systemctl enable NAME);
  - creates .venv (rebuilt when a previous run left it half made) and installs
    the package with its dev and tool dependencies, plus docker-compose 1.29
    (Debian 12's Compose v1);
  - downloads Debian 13's docker-compose (Compose v2) and docker-buildx packages
    with `apt-get download` under a private sources list and apt state in
    .venv/debian13 (the machine's apt configuration is not changed), unpacks
    them into .venv/docker-config/cli-plugins and exports DOCKER_CONFIG there,
    so `docker compose` and `docker buildx` are the versions Debian 13 ships;
  - runs ruff check, ruff format --check, mypy --strict classcord, pytest.
Tests that need root, Docker or network namespaces skip when those are missing,
unless CLASSCORD_REQUIRE_SYSTEM_TESTS=1 (set by .ci/run), where they fail.
  --dry-run  print the set-up steps without running them
  --fast     no set-up beyond the venv; ruff, mypy and pytest tests/core
             tests/asyncio only (the rings that need no root and no Docker)
USAGE
}

DRY_RUN=0
FAST=0
PYTEST_ARGS=()
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        --dry-run) DRY_RUN=1 ;;
        --fast) FAST=1 ;;
        *) PYTEST_ARGS+=("$arg") ;;
    esac
done

cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
# openssl and a JDK for the TLS tests (tls-class-ca.sh, keytool, the Java client).
# inspircd and ngircd for the benchmark's IRC peers (classcord bench --spawn ...).
APT_PACKAGES=(docker.io debootstrap ufw iptables iproute2 conntrack procps systemd openssl
              openjdk-17-jdk-headless inspircd ngircd)
# Packages whose postinst would start a system service that must never run here:
# the IRC daemons would hold port 6667 and take CPU from the benchmarks.
NO_SERVICE_PACKAGES=(inspircd ngircd)
POLICY_RC=/usr/sbin/policy-rc.d
# Debian 13 (trixie) packages whose Docker CLI plugins the suite runs: Compose v2
# and BuildKit's client, as a Debian 13 student has them.
DEBIAN13_SUITE=trixie
DEBIAN13_PACKAGES=(docker-compose docker-buildx)
DOCKER_CONFIG_DIR="$VENV/docker-config"

run() {
    echo "+ $*"
    if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

install_system_packages() {
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: not root or no apt-get: system packages not installed (system tests may skip)"
        return 0
    fi
    local missing=() held=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" && continue
        if is_no_service_package "$pkg"; then held+=("$pkg"); else missing+=("$pkg"); fi
    done
    if [ "$((${#missing[@]} + ${#held[@]}))" -gt 0 ]; then
        run apt-get update -qq
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
    if [ "${#held[@]}" -gt 0 ]; then
        install_without_starting "${held[@]}"
    fi
    local pkg
    for pkg in "${NO_SERVICE_PACKAGES[@]}"; do
        stop_packaged_service "$pkg"
    done
}

is_no_service_package() {
    local pkg
    for pkg in "${NO_SERVICE_PACKAGES[@]}"; do
        [ "$pkg" = "$1" ] && return 0
    done
    return 1
}

remove_policy_rc() {
    echo "+ rm -f $POLICY_RC"
    rm -f "$POLICY_RC"
}

# Debian's maintainer scripts start a service through invoke-rc.d (or
# deb-systemd-invoke), which first asks /usr/sbin/policy-rc.d: exit code 101
# means "not allowed". A policy the machine already has (Docker images ship
# one) is left alone; ours exists only for this install.
install_without_starting() {
    local placed=0
    if [ ! -e "$POLICY_RC" ]; then
        printf '+ printf %s > %s  # removed after the install\n' "'#!/bin/sh\\nexit 101\\n'" "$POLICY_RC"
        if [ "$DRY_RUN" -eq 0 ]; then
            trap remove_policy_rc EXIT
            printf '#!/bin/sh\nexit 101\n' > "$POLICY_RC"
            chmod 0755 "$POLICY_RC"
            placed=1
        fi
    fi
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    if [ "$placed" -eq 1 ]; then
        remove_policy_rc
        trap - EXIT
    fi
}

# Stop the packaged daemon of $1 if it runs, and disable its service at boot.
# Only the process in the package's own pid file, running the package's own
# binary, is stopped: the benchmark's daemons (private pid files) are not.
stop_packaged_service() {
    local name=$1
    [ -x "/etc/init.d/$name" ] || [ -f "/lib/systemd/system/$name.service" ] || return 0
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        if systemctl is-active --quiet "$name" || systemctl is-enabled --quiet "$name" 2>/dev/null; then
            run systemctl disable --now "$name"
        fi
        return 0
    fi
    local pidfile pid
    pidfile="/run/$name/$name.pid"
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "/usr/sbin/$name" ]; then
        run "/etc/init.d/$name" stop
        if [ "$DRY_RUN" -eq 0 ] && kill -0 "$pid" 2>/dev/null; then
            run kill "$pid"
        fi
    fi
    if compgen -G "/etc/rc[2-5].d/S*$name" >/dev/null && command -v update-rc.d >/dev/null 2>&1; then
        run update-rc.d "$name" disable
    fi
}

is_root_with_apt() {
    [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1
}

make_venv() {
    local python=$1
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "+ $python -m venv $VENV"
        return 0
    fi
    echo "+ $python -m venv $VENV"
    if "$python" -m venv "$VENV"; then return 0; fi
    # Debian's python3 has no venv/ensurepip without python3-venv (python3.X-venv).
    rm -rf "$VENV"
    if ! is_root_with_apt; then
        echo "test.sh: '$python -m venv' failed; install python3-venv (as root: apt-get install python3-venv)" >&2
        exit 1
    fi
    local minor
    minor=$("$python" -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}-venv")')
    run apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv "$minor"
    run "$python" -m venv "$VENV"
}

setup_venv() {
    local python=${PYTHON:-python3}
    local stamp="$VENV/.classcord-deps"
    local wanted
    wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
    local rebuild=0
    if [ -d "$VENV" ] && { [ ! -x "$VENV/bin/python" ] || [ ! -x "$VENV/bin/pip" ]; }; then
        echo "test.sh: $VENV is half made (no bin/python or bin/pip): rebuilding it"
        run rm -rf "$VENV"
        rebuild=1
    fi
    if [ "$rebuild" -eq 1 ] || [ ! -x "$VENV/bin/python" ]; then
        make_venv "$python"
    fi
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
        run "$VENV/bin/pip" install -q --upgrade pip
        run "$VENV/bin/pip" install -q -e ".[dev,tools]"
        # docker-compose 1.29 (Debian's v1) is only used to validate the compose
        # file; its metadata pins an old PyYAML that fails to build on 3.11.
        run "$VENV/bin/pip" install -q --no-deps "docker-compose==1.29.2"
        [ "$DRY_RUN" -eq 1 ] || echo "$wanted" > "$stamp"
    fi
}

setup_fail2ban_regex() {
    # fail2ban-regex checks the shipped filter against real log lines. Installing
    # the fail2ban package would start a service that touches the host firewall,
    # so its files are only unpacked into the venv.
    local target="$VENV/fail2ban"
    if [ -x "$VENV/bin/fail2ban-regex" ] || ! command -v apt-get >/dev/null 2>&1; then
        return 0
    fi
    local download
    download=$(mktemp -d)
    if (cd "$download" && run apt-get download -q fail2ban); then
        run dpkg-deb -x "$download"/fail2ban_*.deb "$target"
        if [ "$DRY_RUN" -eq 0 ]; then
            printf '#!/usr/bin/env bash\nPYTHONPATH="%s" exec "%s" "%s" "$@"\n' \
                "$target/usr/lib/python3/dist-packages" "$VENV/bin/python" \
                "$target/usr/bin/fail2ban-regex" > "$VENV/bin/fail2ban-regex"
            chmod +x "$VENV/bin/fail2ban-regex"
        fi
    else
        echo "test.sh: could not download fail2ban; the fail2ban-regex test will skip or fail"
    fi
    rm -rf "$download"
}

# The URI of the machine's own Debian mirror: the first source of the running
# release's main suite in /etc/apt/sources.list or sources.list.d (one-line or
# deb822 format). Nothing is hardcoded, nothing of the machine's is changed.
debian_mirror() {
    local codename
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [ -n "$codename" ] || return 1
    local files=()
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 1
    awk -v want="$codename" '
        function has_suite(list,   n, i, parts) {
            n = split(list, parts, /[ \t]+/)
            for (i = 1; i <= n; i++) if (parts[i] == want) return 1
            return 0
        }
        # one-line format: deb [options] URI SUITE COMPONENTS...
        /^[ \t]*deb[ \t]/ {
            line = $0; sub(/\[[^]]*\]/, "", line); n = split(line, w, /[ \t]+/)
            i = (w[1] == "") ? 2 : 1
            if (w[i + 2] == want) { print w[i + 1]; exit }
            next
        }
        # deb822: a blank line ends a stanza
        /^[ \t]*$/ { if (uris != "" && suites != "" && has_suite(suites)) { split(uris, u, /[ \t]+/); print u[1]; exit } uris = ""; suites = ""; next }
        /^URIs:/ { uris = $0; sub(/^URIs:[ \t]*/, "", uris) }
        /^Suites:/ { suites = $0; sub(/^Suites:[ \t]*/, "", suites) }
        END { if (uris != "" && suites != "" && has_suite(suites)) { split(uris, u, /[ \t]+/); print u[1] } }
    ' "${files[@]}" | head -n 1
}

setup_debian13_docker_tools() {
    local plugins="$DOCKER_CONFIG_DIR/cli-plugins"
    if [ -x "$plugins/docker-compose" ] && [ -x "$plugins/docker-buildx" ]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
        echo "test.sh: no apt-get/dpkg-deb: Compose v2 and buildx not installed (their tests skip or fail)"
        return 0
    fi
    local mirror
    mirror=$(debian_mirror || true)
    if [ -z "$mirror" ]; then
        echo "test.sh: no Debian mirror found in /etc/apt/sources.list*: Compose v2 and buildx not installed"
        return 0
    fi
    local apt_dir="$VENV/debian13"
    local apt_opts=(
        -o "Dir::Etc::sourcelist=$apt_dir/sources.list"
        -o "Dir::Etc::sourceparts=-"
        -o "Dir::State=$apt_dir/state"
        -o "Dir::Cache=$apt_dir/cache"
        -o "APT::Sandbox::User=root"
    )
    run mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
    echo "+ echo 'deb $mirror $DEBIAN13_SUITE main' > $apt_dir/sources.list"
    if [ "$DRY_RUN" -eq 0 ]; then
        echo "deb $mirror $DEBIAN13_SUITE main" > "$apt_dir/sources.list"
    fi
    run apt-get "${apt_opts[@]}" update -qq
    run env -C "$apt_dir/debs" apt-get "${apt_opts[@]}" download -q "${DEBIAN13_PACKAGES[@]}"
    run mkdir -p "$plugins"
    local pkg
    for pkg in "${DEBIAN13_PACKAGES[@]}"; do
        run rm -rf "$apt_dir/unpacked"
        if [ "$DRY_RUN" -eq 1 ]; then
            echo "+ dpkg-deb -x $apt_dir/debs/${pkg}_*.deb $apt_dir/unpacked"
        else
            dpkg-deb -x "$apt_dir/debs/${pkg}"_*.deb "$apt_dir/unpacked"
        fi
        run install -m 0755 "$apt_dir/unpacked/usr/libexec/docker/cli-plugins/$pkg" "$plugins/$pkg"
    done
    run rm -rf "$apt_dir/unpacked" "$apt_dir/debs"
}

if [ "$FAST" -eq 0 ]; then
    install_system_packages
fi
setup_venv
if [ "$FAST" -eq 0 ]; then
    setup_fail2ban_regex
    setup_debian13_docker_tools
fi
[ "$DRY_RUN" -eq 0 ] || exit 0

export PATH="$VENV/bin:$PATH"
export PYTHONASYNCIODEBUG=1
# `docker compose` and `docker buildx` are then Debian 13's (see above); the
# Compose v1 of Debian 12 is .venv/bin/docker-compose.
export DOCKER_CONFIG="$DOCKER_CONFIG_DIR"
echo "+ ruff check"; ruff check .
echo "+ ruff format --check"; ruff format --check .
echo "+ mypy --strict classcord"; mypy --strict classcord
if [ "$FAST" -eq 1 ]; then
    echo "+ pytest tests/core tests/asyncio"
    exec python -m pytest tests/core tests/asyncio "${PYTEST_ARGS[@]}"
fi
echo "+ pytest"; exec python -m pytest "${PYTEST_ARGS[@]}"
